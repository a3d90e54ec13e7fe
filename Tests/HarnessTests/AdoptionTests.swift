import Foundation
import Harness
import Store
import TestSupport
import XCTest

/// A new method's spec that lists a stored spec's baseline with the same settings: its sweep adopts
/// the baseline's finished runs (same identity: config, task, manifest, data, weights) instead of
/// training them again, so `compare` can pair the new method with stored baselines at the cost of
/// the new method's runs only. A baseline whose settings differ in anything the identity covers
/// is trained.
/// A scratch folder with one store, smoke specs written into it (`smokeSpec`, one-epoch runs) and
/// swept into the store with one single-threaded worker.
struct SmokeSweeps {
    let data: String, dir: String, db: String
    static let train = "{epochs: 1, batch_size: 4, eval_limit: 8, eval_batch_size: 8, decode_max_tokens: 2, max_source_length: 64}"

    init(_ name: String) throws {
        data = try sharedData()
        dir = tempDir(name)
        db = "\(dir)/s.sqlite"
    }

    func remove() { try? FileManager.default.removeItem(atPath: dir) }

    /// Writes spec `name` of `methods` to `dir/name.yaml`; returns its path.
    func write(_ name: String, _ methods: [String], seeds: String = "[1, 2]") throws -> String {
        let path = "\(dir)/\(name).yaml"
        try smokeSpec(name, methods: methods, seeds: seeds, train: Self.train).write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// `promptrepro sweep SPEC --profile smoke` into the store, with `extra` arguments; its exit
    /// status and its stdout (`stdout`) or stderr.
    func sweep(_ spec: String, _ extra: [String] = [], stdout: Bool = false) throws -> (Int32, String) {
        try runCLIText(["sweep", spec, "--profile", "smoke", "--workers", "1", "--threads", "1", "--db", db, "--data-dir", data,
                        "--checkpoints", "\(dir)/ck"] + extra, stdout: stdout)
    }
}

final class AdoptionTests: XCTestCase {
    func testASpecListingStoredBaselinesAdoptsTheirFinishedRuns() throws {
        let scratch = try SmokeSweeps("adopt")
        defer { scratch.remove() }
        let (data, dir, db) = (scratch.data, scratch.dir, scratch.db)
        func write(_ name: String, _ methods: [String]) throws -> String { try scratch.write(name, methods) }
        func sweep(_ spec: String, _ extra: [String] = []) throws -> (Int32, String) { try scratch.sweep(spec, extra, stdout: !extra.isEmpty) }
        let base = try write("basea", ["{name: pt, method: pt, n: 4}"])
        var (rc, log) = try sweep(base)
        XCTAssertEqual(rc, 0, log)
        // The same baseline under another variant name, a new method, and the baseline with another
        // learning rate (its identity differs: trained).
        let newSpec = try write("newb", ["{name: ptbase, method: pt, n: 4}", "{name: pt8, method: pt, n: 8}",
                                         "{name: ptlr, method: pt, n: 4, train: {lr: 0.05}}"])
        let (prc, plan) = try sweep(newSpec, ["--dry-run"])
        XCTAssertEqual(prc, 0, plan)
        XCTAssertTrue(plan.contains("6 runs, 4 to run") && plan.contains("2 adopted (finished under another spec, profile or variant)"), plan)
        (rc, log) = try sweep(newSpec)
        XCTAssertEqual(rc, 0, log)
        XCTAssertTrue(log.contains("(4 new, 2 finished runs of identical settings, data, weights and task adopted from other specs"), log)

        let s = try ResultsStore(path: db)
        func rows(_ spec: String, _ variant: String) throws -> [[String: SQLiteDB.Value]] {
            try s.db.query("SELECT id, seed, status, adopted_from, identity FROM runs WHERE spec=? AND variant=? AND status != 'superseded' ORDER BY seed",
                           [.text(spec), .text(variant)])
        }
        let source = try rows("basea", "pt"), adopted = try rows("newb", "ptbase")
        XCTAssertEqual(source.count, 2)
        XCTAssertEqual(adopted.map { $0["status"]?.text }, ["done", "done"])
        XCTAssertEqual(adopted.map { $0["identity"]?.text }, source.map { $0["identity"]?.text })
        for (a, src) in zip(adopted, source) {
            let from = try XCTUnwrap(a["adopted_from"]?.text)
            XCTAssertTrue(from.hasPrefix("basea [smoke] pt|cb|") && from.hasSuffix("seed \(src["seed"]!.int!)"), from)
            // Its records came with it: the same scores, predictions, epochs and steps.
            for table in ["scores", "predictions", "epochs", "steps", "run_metrics"] {
                let count = { (id: SQLiteDB.Value) in try s.db.query("SELECT COUNT(*) AS n FROM \(table) WHERE run_id=?", [id]).first?["n"]?.int ?? -1 }
                XCTAssertEqual(try count(a["id"]!), try count(src["id"]!), table)
                XCTAssertGreaterThan(try count(a["id"]!), 0, table)
            }
            let score = { (id: SQLiteDB.Value) in try s.db.query("SELECT value FROM scores WHERE run_id=? AND kind='best' ORDER BY metric", [id]).map { $0["value"]?.double } }
            XCTAssertEqual(try score(a["id"]!), try score(src["id"]!))
        }
        // The new method and the changed baseline were trained here.
        for v in ["pt8", "ptlr"] {
            let r = try rows("newb", v)
            XCTAssertEqual(r.map { $0["status"]?.text }, ["done", "done"], v)
            XCTAssertTrue(r.allSatisfy { $0["adopted_from"]?.text == nil }, v)
        }
        // compare pairs the new method with the adopted baseline seed by seed.
        let (crc, cmp) = try runCLIText(["compare", "--spec", newSpec, "--method", "pt8", "--baseline", "ptbase", "--profile", "smoke",
                                         "--db", db, "--data-dir", data], stdout: true)
        XCTAssertEqual(crc, 0, cmp)
        XCTAssertTrue(cmp.contains("pt8") && cmp.contains("ptbase"), cmp)
        // A second sweep of the new spec has nothing to adopt or train.
        (rc, log) = try sweep(newSpec)
        XCTAssertEqual(rc, 0, log)
        XCTAssertFalse(log.contains("adopted"), log)
        XCTAssertEqual(try s.counts(spec: "newb", profile: "smoke"), ["done": 6])
        // Reads say which runs were adopted.
        let (rrc, read) = try runCLIText(["results", newSpec, "--profile", "smoke", "--db", db, "--data-dir", data], stdout: false)
        XCTAssertEqual(rrc, 0, read)
        XCTAssertTrue(read.contains("2 runs of spec newb [smoke] read here were adopted by a sweep, not trained in their own cells") && read.contains("← basea [smoke] pt|cb|"), read)
        // An export keeps where they ran, and a read of the export says it too.
        let res = "\(dir)/res"
        let (erc, elog) = try runCLIText(["export", newSpec, "--profile", "smoke", "--db", db, "--results-dir", res, "--data-dir", data], stdout: false)
        XCTAssertEqual(erc, 0, elog)
        let exported = try String(contentsOfFile: "\(res)/newb-smoke.json", encoding: .utf8)
        XCTAssertTrue(exported.contains("adopted_from_per_seed"), exported)
        XCTAssertEqual(try String(contentsOfFile: "\(res)/newb-smoke.cells.json", encoding: .utf8).components(separatedBy: "runAdoptedFrom").count, 2)
        let (xrc, xlog) = try runCLIText(["compare", "--spec", newSpec, "--method", "pt8", "--baseline", "ptbase", "--profile", "smoke",
                                          "--db", "\(dir)/none.sqlite", "--results-dir", res, "--data-dir", data], stdout: false)
        XCTAssertEqual(xrc, 0, xlog)
        XCTAssertTrue(xlog.contains("2 runs of spec newb [smoke] read here were adopted by a sweep"), xlog)
        // Each adopted run has its artifact under its own name (a link to the source's file).
        let artifacts = "\(dir)/artifacts"
        func files(_ sub: String, _ prefix: String) throws -> [String] {
            try FileManager.default.contentsOfDirectory(atPath: "\(artifacts)/\(sub)").filter { $0.hasPrefix(prefix) }.sorted()
        }
        let mine = try files("newb-smoke", "ptbase_cb_"), theirs = try files("basea-smoke", "pt_cb_")
        XCTAssertEqual(mine.count, 2, "\(mine)")
        for (a, b) in zip(mine, theirs) {
            XCTAssertEqual(FileManager.default.contents(atPath: "\(artifacts)/newb-smoke/\(a)"), FileManager.default.contents(atPath: "\(artifacts)/basea-smoke/\(b)"))
        }

        // A copy is never named as the source: a third spec adopts from the run that trained.
        (rc, log) = try sweep(try write("newc", ["{name: ptc, method: pt, n: 4}"]))
        XCTAssertEqual(rc, 0, log)
        XCTAssertTrue(try rows("newc", "ptc").allSatisfy { $0["adopted_from"]?.text?.hasPrefix("basea [smoke] pt|cb|") == true })
        // Another model column is another run, even where the same checkpoint stands in for it
        // (its tables' parameter counts are the column's): trained.
        let otherColumn = "\(dir)/cols.yaml"
        try smokeSpec("cols", methods: ["{name: pt, method: pt, n: 4}"], seeds: "[1, 2]", train: SmokeSweeps.train)
            .replacingOccurrences(of: "t5-small", with: "t5-base").write(toFile: otherColumn, atomically: true, encoding: .utf8)
        (rc, log) = try sweep(otherColumn)
        XCTAssertEqual(rc, 0, log)
        XCTAssertTrue(try rows("cols", "pt").allSatisfy { $0["adopted_from"]?.text == nil && $0["status"]?.text == "done" })
        // Pending rows of the planned identity (a sweep planned without adopting, interrupted) give
        // way to the finished twins; `insertPending(adopting: false)` (eval --db, shard) plans them.
        let pendingSpec = try ExperimentSpec.load(try write("newd", ["{name: ptd, method: pt, n: 4}"]), specsDir: dir)
        let planned = try s.withIdentities(try pendingSpec.expand(profile: "smoke"), dataDir: data, manifestDir: "\(repoRoot)/Baselines/manifests")
        XCTAssertEqual(try s.insertPending(planned, adopting: false), 2)
        XCTAssertEqual(try s.counts(spec: "newd", profile: "smoke"), ["pending": 2])
        let again = try s.insertPendingReporting(planned)
        XCTAssertEqual(again.adopted.count, 2)
        XCTAssertEqual(again.inserted, 0)
        XCTAssertEqual(try s.counts(spec: "newd", profile: "smoke"), ["done": 2])
        XCTAssertEqual(try s.db.query("SELECT COUNT(*) AS n FROM runs WHERE spec='newd' AND status='superseded' AND superseded_status='pending'").first?["n"]?.int, 2)
    }

    /// A diverged run keeps no artifact and is adopted all the same (training it again diverges
    /// again); a twin whose artifact is gone gives way to another twin of the identity that has
    /// one (an adopted copy's link), and where none has one the sweep trains and says why.
    func testDivergedTwinsAndTwinsWithoutTheirArtifact() throws {
        let scratch = try SmokeSweeps("adoptdiv")
        defer { scratch.remove() }
        let dir = scratch.dir
        func sweep(_ name: String, _ entry: String) throws -> (Int32, String) { try scratch.sweep(try scratch.write(name, [entry], seeds: "[1]")) }
        let s = try ResultsStore(path: scratch.db)
        func row(_ spec: String) throws -> [String: SQLiteDB.Value]? {
            try s.db.query("SELECT status, adopted_from FROM runs WHERE spec=? AND status != 'superseded'", [.text(spec)]).first
        }
        var (rc, log) = try sweep("diva", "{name: pt, method: pt, n: 4, train: {lr: 1.0e+30}}")
        XCTAssertEqual(rc, 0, log)
        XCTAssertEqual(try row("diva")?["status"]?.text, "diverged")
        (rc, log) = try sweep("divb", "{name: ptx, method: pt, n: 4, train: {lr: 1.0e+30}}")
        XCTAssertEqual(rc, 0, log)
        XCTAssertEqual(try row("divb")?["status"]?.text, "diverged")
        XCTAssertTrue(try row("divb")?["adopted_from"]?.text?.hasPrefix("diva [smoke] pt|cb|") == true, log)

        (rc, log) = try sweep("a", "{name: pt, method: pt, n: 4}")
        XCTAssertEqual(rc, 0, log)
        (rc, log) = try sweep("b", "{name: ptb, method: pt, n: 4}")
        XCTAssertTrue(try row("b")?["adopted_from"]?.text?.hasPrefix("a [smoke]") == true, log)
        let fm = FileManager.default
        for f in try fm.contentsOfDirectory(atPath: "\(dir)/artifacts/a-smoke") { try fm.removeItem(atPath: "\(dir)/artifacts/a-smoke/\(f)") }
        (rc, log) = try sweep("c", "{name: ptc, method: pt, n: 4}")
        XCTAssertEqual(rc, 0, log)
        // Adopted through b's linked artifact; the source named is still the run that trained.
        XCTAssertTrue(try row("c")?["adopted_from"]?.text?.hasPrefix("a [smoke]") == true, log)
        XCTAssertEqual(try fm.contentsOfDirectory(atPath: "\(dir)/artifacts/c-smoke").count, 1)
        for sub in ["b-smoke", "c-smoke"] {
            for f in try fm.contentsOfDirectory(atPath: "\(dir)/artifacts/\(sub)") { try fm.removeItem(atPath: "\(dir)/artifacts/\(sub)/\(f)") }
        }
        (rc, log) = try sweep("d", "{name: ptd, method: pt, n: 4}")
        XCTAssertEqual(rc, 0, log)
        XCTAssertNil(try row("d")?["adopted_from"]?.text)
        XCTAssertTrue(log.contains("note: 1 run of identical settings finished elsewhere in this store but is trained here"), log)
    }

    /// Full fine-tuning keeps its weights only with --keep-artifacts: a sweep that keeps them does
    /// not adopt a run whose source kept none (it trains), one that does not keep them adopts it.
    func testARunWhoseArtifactWouldBeMissingIsTrainedNotAdopted() throws {
        let scratch = try SmokeSweeps("adoptft")
        defer { scratch.remove() }
        let (dir, db) = (scratch.dir, scratch.db)
        func sweep(_ name: String, keep: Bool) throws -> (Int32, String) {
            try scratch.sweep(try scratch.write(name, ["{name: ft, method: ft, train: {lr: 1.0e-4}}"], seeds: "[1]"), keep ? ["--keep-artifacts"] : [])
        }
        var (rc, log) = try sweep("fta", keep: false)
        XCTAssertEqual(rc, 0, log)
        (rc, log) = try sweep("ftb", keep: true)
        XCTAssertEqual(rc, 0, log)
        XCTAssertFalse(log.contains("adopted"), log)
        let s = try ResultsStore(path: db)
        func from(_ spec: String) throws -> [String?] {
            try s.db.query("SELECT adopted_from FROM runs WHERE spec=? AND status='done'", [.text(spec)]).map { $0["adopted_from"]?.text }
        }
        XCTAssertEqual(try from("ftb"), [nil])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: "\(dir)/artifacts/ftb-smoke").count, 1)
        (rc, log) = try sweep("ftc", keep: false)
        XCTAssertEqual(rc, 0, log)
        XCTAssertTrue(log.contains("1 finished run of identical settings"), log)
        XCTAssertEqual(try from("ftc").count, 1)
        XCTAssertNotNil(try from("ftc").first ?? nil)
    }
}
