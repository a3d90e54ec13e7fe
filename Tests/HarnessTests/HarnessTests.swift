import Foundation
import Harness
import Methods
import Reports
import Store
import Support
import Tensor
import TestSupport
import Training
import XCTest


let miniSpec = """
spec: mini
title: mini test grid
paper: dpt
methods:
  - {name: dpt, method: dpt, n: 8, r: 2}
  - {name: pt, method: pt, n: 8}
tasks: [cb, rte]
models: [t5-small]
seeds: [1, 2]
k: [8]
profiles:
  smoke:
    models: {t5-small: "embedded:t5-tiny"}
    train: {epochs: 4, batch_size: 4, eval_limit: 16, eval_batch_size: 16, decode_max_tokens: 3, max_source_length: 96}
"""

/// Every stored score of a store, keyed by cell, seed, kind and metric.
func scores(_ db: String) throws -> [String: Double] {
    let s = try ResultsStore(path: db)
    var out: [String: Double] = [:]
    for r in try s.db.query("SELECT runs.cell, runs.seed, scores.kind, scores.metric, scores.value FROM scores JOIN runs ON runs.id = run_id") {
        out["\(r["cell"]!.text!)#\(r["seed"]!.int!)#\(r["kind"]!.text!)#\(r["metric"]!.text!)"] = r["value"]!.double!
    }
    return out
}

@discardableResult
func runCLI(_ args: [String], wait: Bool = true) throws -> Process {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: try binary())
    p.arguments = args
    p.currentDirectoryURL = URL(fileURLWithPath: repoRoot)
    p.standardError = FileHandle.nullDevice
    p.standardOutput = FileHandle.nullDevice
    var env = ProcessInfo.processInfo.environment
    env["PROMPTREPRO_THREADS"] = "1"
    p.environment = env
    try p.run()
    if wait { p.waitUntilExit() }
    return p
}

final class SpecTests: XCTestCase {
    func testExpansionAppliesProfilesOverridesAndVary() throws {
        let dir = tempDir("spec")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try (miniSpec + "\n  paper: {}\n").write(toFile: "\(dir)/mini.yaml", atomically: true, encoding: .utf8)
        let s = try ExperimentSpec.load("\(dir)/mini.yaml")
        let runs = try s.expand(profile: "smoke")
        XCTAssertEqual(runs.count, 2 * 2 * 1 * 1 * 2)
        XCTAssertEqual(Set(runs.map(\.cell)).count, 4)
        let r = runs.first { $0.variant == "dpt" && $0.task == "rte" && $0.seed == 2 }!
        XCTAssertEqual(r.cell, "dpt|rte|t5-small|k8")
        XCTAssertEqual(r.config.method.n, 8)
        XCTAssertEqual(r.config.method.r, 2)
        XCTAssertEqual(r.config.epochs, 4)
        XCTAssertEqual(r.config.model, "embedded:t5-tiny")
        XCTAssertEqual(r.config.protocolName, "dpt-paper")
        XCTAssertEqual(r.config.lr, 0.3)
        let paper = try s.expand(profile: "paper")
        XCTAssertEqual(paper.first!.config.model, "t5-small")
        XCTAssertEqual(paper.first!.config.epochs, 100)

        try miniSpec.replacingOccurrences(of: "n: 8, r: 2}", with: "n: 8, vary: {r: [1, 4]}}")
            .write(toFile: "\(dir)/vary.yaml", atomically: true, encoding: .utf8)
        let v = try ExperimentSpec.load("\(dir)/vary.yaml")
        XCTAssertEqual(v.variants.map(\.name), ["dpt-r1", "dpt-r4", "pt"])
        XCTAssertEqual(try v.expand(profile: "smoke").filter { $0.variant == "dpt-r4" }.first!.config.method.r, 4)

        try miniSpec.replacingOccurrences(of: "epochs: 4", with: "epoch: 4").write(toFile: "\(dir)/bad.yaml", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ExperimentSpec.load("\(dir)/bad.yaml")) { XCTAssertTrue("\($0)".contains("did you mean 'epochs'"), "\($0)") }
        try miniSpec.replacingOccurrences(of: "tasks: [cb, rte]", with: "tasks: [cb, rtee]").write(toFile: "\(dir)/bad2.yaml", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ExperimentSpec.load("\(dir)/bad2.yaml")) { XCTAssertTrue("\($0)".contains("did you mean 'rte'"), "\($0)") }
    }

    /// Every committed spec parses and expands in each of its profiles.
    func testCommittedSpecsExpand() throws {
        let dir = "\(repoRoot)/Baselines/specs"
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".yaml") }
        XCTAssertGreaterThanOrEqual(files.count, 12)
        for f in files {
            let s = try ExperimentSpec.load("\(dir)/\(f)")
            for p in s.profiles.keys { XCTAssertFalse(try s.expand(profile: p).isEmpty, "\(f) \(p)") }
        }
        let t1 = try ExperimentSpec.load("\(dir)/table1.yaml")
        XCTAssertEqual(try t1.expand(profile: "paper").count, 4 * 8 * 3 * 3)
        XCTAssertTrue(try t1.expand(profile: "smoke").allSatisfy { $0.config.model == "embedded:t5-tiny" })
    }
}

final class StoreTests: XCTestCase {
    /// The rank probe's per-epoch counts live in `epoch_metrics`: a v5 store's probe columns move
    /// there on open (values kept), and a finished run's `EpochRecord.extras` are stored there and
    /// averaged over seeds into the cell's probe points (DPT Figure 3).
    func testEpochMetricsMigrationAndProbePoints() throws {
        let dir = tempDir("epochm")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = "\(dir)/old.sqlite"
        do {  // a v5 store with one probe run and its per-epoch columns
            let db = try SQLiteDB(path: path)
            for v in 0..<5 { try db.exec(ResultsStore.migrations[v]); try db.exec("PRAGMA user_version = \(v + 1)") }
            try db.exec("""
                INSERT INTO runs (spec, profile, cell, variant, method, task, model, model_spec, k, seed, config_json, config_hash, status, created_at, identity)
                VALUES ('fig3', 'smoke', 'probe|cb|t5-small|k8', 'probe', 'probe', 'cb', 't5-small', 'embedded:t5-tiny', 8, 1, '{}', 'h', 'done', 'now', 'h');
                INSERT INTO epochs VALUES (1, 1, 4, 1.5, '{}', NULL, 7, 3, 10, 0.1);
                INSERT INTO epochs VALUES (1, 2, 8, 1.2, '{}', NULL, 6, 4, 9, 0.1);
                """)
        }
        // A shard of that schema merges into a new store, its probe values with it (a merge that
        // opened shards read only, without migrating them, failed: no such table epoch_metrics).
        try FileManager.default.copyItem(atPath: path, toPath: "\(dir)/shard.sqlite")
        let merged = try ResultsStore(path: "\(dir)/merged.sqlite")
        XCTAssertEqual(try merged.merge(from: "\(dir)/shard.sqlite"), 1)
        XCTAssertEqual(try merged.db.query("SELECT COUNT(*) AS n FROM epoch_metrics").first?["n"]?.int, 6)
        let s = try ResultsStore(path: path)
        XCTAssertEqual(s.schemaVersion, ResultsStore.migrations.count)
        let rows = try s.db.query("SELECT epoch, name, value FROM epoch_metrics ORDER BY epoch, name").map { "\($0["epoch"]!.int!) \($0["name"]!.text!) \($0["value"]!.double!)" }
        XCTAssertEqual(rows, ["1 probe_negative 3.0", "1 probe_positive 7.0", "1 probe_rank 10.0", "2 probe_negative 4.0", "2 probe_positive 6.0", "2 probe_rank 9.0"])
        XCTAssertEqual(try s.db.query("SELECT COUNT(*) AS n FROM epochs").first?["n"]?.int, 2)
        // A second seed through `complete`: the cell's probe points are the means over both seeds.
        var cfg = try TrainConfig.preset("dpt-paper", method: try MethodConfig.defaults("probe"), task: "cb", model: "embedded:t5-tiny", k: 8, seed: 2)
        cfg.epochs = 2
        try s.insertPending([RunSpec(spec: "fig3", profile: "smoke", cell: "probe|cb|t5-small|k8", variant: "probe", method: "probe", task: "cb",
                                     model: "t5-small", modelSpec: "embedded:t5-tiny", k: 8, seed: 2, config: cfg)])
        let claimed = try XCTUnwrap(try s.claim(worker: "t", pid: getpid()))
        var r = TrainResult(config: cfg, status: .done, divergedAtStep: nil, bestEpoch: 1, best: ["accuracy": 50], last: ["accuracy": 50],
                            history: [], trainableParams: 1, trainExamples: 8, evalExamples: 8, dataFiles: [:], manifest: nil, smoke: true, predictions: nil)
        for (ep, (p, q, k)) in [(1, (5.0, 5.0, 8.0)), (2, (4.0, 6.0, 7.0))] {
            r.history.append(EpochRecord(epoch: ep, step: 4 * ep, trainLoss: 1, metrics: ["accuracy": 50], selection: 50,
                                         extras: ["probe_positive": p, "probe_negative": q, "probe_rank": k], seconds: 0.1))
        }
        try s.complete(claimed.id, result: r)
        let cell = try XCTUnwrap(try s.cellResults(spec: "fig3", profile: "smoke").first)
        XCTAssertEqual(cell.probe, [ProbePoint(epoch: 1, positive: 6, negative: 4, rank: 9), ProbePoint(epoch: 2, positive: 5, negative: 5, rank: 8)])
        // A seed without an epoch's probe: that epoch's mean is over the seeds that logged it
        // (the cell's seed count divided it: 4.67 for the mean 4 of two seeds of three). By hand:
        // seed 2 loses epoch 2, seed 3 logs (3, 7, 6) and (2, 8, 5): epoch 1 is the mean of
        // (7, 3, 10), (5, 5, 8), (3, 7, 6); epoch 2 of (6, 4, 9) and (2, 8, 5).
        try s.db.query("DELETE FROM epoch_metrics WHERE run_id=? AND epoch=2", [.int(claimed.id)])
        var third = RunSpec(spec: "fig3", profile: "smoke", cell: "probe|cb|t5-small|k8", variant: "probe", method: "probe", task: "cb",
                            model: "t5-small", modelSpec: "embedded:t5-tiny", k: 8, seed: 3, config: cfg)
        third.config.seed = 3
        try s.insertPending([third])
        let claimed3 = try XCTUnwrap(try s.claim(worker: "t", pid: getpid()))
        r.history = [(1, (3.0, 7.0, 6.0)), (2, (2.0, 8.0, 5.0))].map { ep, v in
            EpochRecord(epoch: ep, step: 4 * ep, trainLoss: 1, metrics: ["accuracy": 50], selection: 50,
                        extras: ["probe_positive": v.0, "probe_negative": v.1, "probe_rank": v.2], seconds: 0.1)
        }
        try s.complete(claimed3.id, result: r)
        let three = try XCTUnwrap(try s.cellResults(spec: "fig3", profile: "smoke").first)
        XCTAssertEqual(three.probe, [ProbePoint(epoch: 1, positive: 5, negative: 5, rank: 8), ProbePoint(epoch: 2, positive: 4, negative: 6, rank: 7)])
    }

    /// Two connections opening a new store at once (a sweep and its workers, or a test polling it)
    /// both succeed: the one that loses the race finds the schema migrated instead of creating it twice.
    func testConcurrentOpenMigratesOnce() throws {
        let dir = tempDir("race")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for i in 0..<20 {
            let path = "\(dir)/s\(i).sqlite"
            var errors: [String] = []
            let lock = NSLock()
            DispatchQueue.concurrentPerform(iterations: 4) { _ in
                do { _ = try ResultsStore(path: path) } catch { lock.withLock { errors.append("\(error)") } }
            }
            XCTAssertEqual(errors, [], "store \(i)")
            XCTAssertEqual(try ResultsStore(path: path).schemaVersion, ResultsStore.migrations.count)
        }
    }

    func testMigrationsAndVersionGuard() throws {
        let dir = tempDir("mig")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let s = try ResultsStore(path: "\(dir)/a.sqlite")
        XCTAssertEqual(s.schemaVersion, 8)
        // v8's column: where an adopted run ran (`insertPending`).
        XCTAssertTrue(try s.db.query("PRAGMA table_info(runs)").contains { $0["name"]?.text == "adopted_from" })
        let tables = try s.db.query("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name").compactMap { $0["name"]?.text }
        XCTAssertEqual(Set(tables), ["runs", "epochs", "epoch_metrics", "scores", "predictions", "weights_hashes", "steps", "run_metrics"])
        XCTAssertEqual(try s.db.query("PRAGMA journal_mode").first?["journal_mode"]?.text, "wal")
        _ = try ResultsStore(path: "\(dir)/a.sqlite")  // reopening migrates nothing
        try s.db.exec("PRAGMA user_version = 99")
        XCTAssertThrowsError(try ResultsStore(path: "\(dir)/a.sqlite")) { XCTAssertTrue("\($0)".contains("newer")) }
    }

    /// A version-1 store (before run identities) migrates to version 2 keeping every run with its
    /// epochs and scores; the old config hash becomes the identity, so nothing is lost or rerun
    /// until a sweep computes the full identity.
    func testVersionOneStoreMigrates() throws {
        let dir = tempDir("mig1")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = "\(dir)/v1.sqlite"
        let raw = try SQLiteDB(path: path)
        try raw.exec(ResultsStore.migrations[0])
        try raw.exec("PRAGMA user_version = 1")
        try raw.exec("""
            INSERT INTO runs (spec, profile, cell, variant, method, task, model, model_spec, k, seed, config_json, config_hash, status, created_at)
            VALUES ('s','smoke','dpt|cb|t5-small|k8','dpt','dpt','cb','t5-small','embedded:t5-tiny',8,1,'{}','abc','done','2026-01-01');
            INSERT INTO epochs VALUES (1, 1, 2, 0.5, '{}', 40.0, NULL, NULL, NULL, 1.0);
            INSERT INTO scores VALUES (1, 'best', 'accuracy', 40.0, 1);
            """)
        let s = try ResultsStore(path: path)
        XCTAssertEqual(s.schemaVersion, ResultsStore.migrations.count)
        let row = try XCTUnwrap(try s.db.query("SELECT status, identity FROM runs").first)
        XCTAssertEqual(row["status"]?.text, "done")
        XCTAssertEqual(row["identity"]?.text, "abc")
        XCTAssertEqual(try s.db.query("SELECT COUNT(*) AS n FROM epochs").first?["n"]?.int, 1)
        XCTAssertEqual(try s.db.query("SELECT COUNT(*) AS n FROM scores").first?["n"]?.int, 1)
        XCTAssertEqual(try s.cellResults(spec: "s", profile: "smoke").first?.best["accuracy"]?.mean, 40)
    }

    /// mean and both standard deviations against hand-computed values.
    func testAggregationByHand() throws {
        let dir = tempDir("agg")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let s = try ResultsStore(path: "\(dir)/a.sqlite")
        let spec = try ExperimentSpec.load("\(repoRoot)/Baselines/specs/table1.yaml")
        let runs = try spec.expand(profile: "smoke").filter { $0.variant == "dpt" && $0.task == "cb" }
        XCTAssertEqual(runs.count, 3)
        try s.insertPending(runs)
        for (i, v) in [70.0, 74.0, 81.0].enumerated() {
            let c = try s.claim(worker: "t", pid: getpid())!
            var r = TrainResult(config: c.spec.config, status: .done, divergedAtStep: nil, bestEpoch: 2, best: ["accuracy": v], last: ["accuracy": v - 1],
                                history: [], trainableParams: 10, trainExamples: 8, evalExamples: 8, dataFiles: [:], manifest: nil, smoke: true, predictions: ["0"])
            r.config.seed = i + 1
            try s.complete(c.id, result: r)
        }
        let cell = try s.cellResults(spec: "table1", profile: "smoke").first!
        let st = cell.best["accuracy"]!
        // mean 75; deviations −5, −1, 6 → SS 62; sample std √31 = 5.5678; population √(62/3) = 4.5461
        XCTAssertEqual(st.mean, 75, accuracy: 1e-12)
        XCTAssertEqual(st.sampleStd!, 31.0.squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(st.populationStd, (62.0 / 3).squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(cell.last["accuracy"]!.mean, 74, accuracy: 1e-12)
        XCTAssertEqual(Stat([5]).sampleStd, nil)
    }

    /// Per-run measurements (`TrainResult.extras`) go to run_metrics, come back per cell as means
    /// over the seeds that have them (a run recorded before them has none), reach the md / csv / json
    /// outputs, and survive a merge.
    func testRunMetricsRoundTripAndMerge() throws {
        let dir = tempDir("metrics")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let s = try ResultsStore(path: "\(dir)/a.sqlite")
        let runs = try ExperimentSpec.load("\(repoRoot)/Baselines/specs/table1.yaml").expand(profile: "smoke").filter { $0.variant == "dpt" && $0.task == "cb" }
        try s.insertPending(runs)
        let extras: [[String: Double]?] = [["seconds_per_step": 0.5, "peak_rss_bytes": 1e9], ["seconds_per_step": 0.7, "peak_rss_bytes": 2e9], nil]
        for x in extras {
            let c = try s.claim(worker: "t", pid: getpid())!
            var r = TrainResult(config: c.spec.config, status: .done, divergedAtStep: nil, bestEpoch: 1, best: ["accuracy": 70], last: ["accuracy": 70],
                                history: [], trainableParams: 10, trainExamples: 8, evalExamples: 8, dataFiles: [:], manifest: nil, smoke: true, predictions: ["0"])
            r.extras = x
            try s.complete(c.id, result: r)
        }
        XCTAssertEqual(try s.db.query("SELECT COUNT(*) AS n FROM run_metrics").first?["n"]?.int, 4)
        let cell = try XCTUnwrap(s.cellResults(spec: "table1", profile: "smoke").first)
        XCTAssertEqual(cell.best["accuracy"]?.n, 3)
        XCTAssertEqual(cell.extras?["seconds_per_step"]?.n, 2)
        XCTAssertEqual(cell.extras?["seconds_per_step"]?.mean ?? 0, 0.6, accuracy: 1e-12)
        XCTAssertEqual(cell.extras?["peak_rss_bytes"]?.mean, 1.5e9)
        XCTAssertTrue(ResultsExport.efficiencyMarkdown([cell]).contains("| 1430.5 | 0.600 |"), ResultsExport.efficiencyMarkdown([cell]))
        XCTAssertTrue(ResultsExport.csv([cell], extras: true).contains(",extras,seconds_per_step,2,0.6000,"))
        XCTAssertFalse(ResultsExport.csv([cell]).contains("extras"))
        XCTAssertTrue(try ResultsExport.json([cell], spec: "table1", profile: "smoke").contains("\"seconds_per_step_per_seed\""))
        // A grid point of a search over two keys is named with a comma (and a name may hold a quote):
        // its csv rows keep the header's field count, RFC 4180 quoting (they had two fields more).
        var point = cell
        (point.variant, point.cell) = ("dpt@lr=0.3,r=2", "dpt@lr=0.3,r=2|cb|t5-small|k8")
        var quoted = cell
        (quoted.variant, quoted.cell) = ("say \"hi\"", "say \"hi\"|cb|t5-small|k8")
        let csv = ResultsExport.csv([point, quoted], profile: "smoke", gridPoints: ["dpt@lr=0.3,r=2": "dpt"])
        let table = Self.rfc4180(csv)
        XCTAssertEqual(table.first?.count, 18, csv)
        XCTAssertTrue(table.dropFirst().allSatisfy { $0.count == 18 }, csv)
        XCTAssertEqual(Set(table.dropFirst().filter { $0[0].hasPrefix("dpt@") }.map { [$0[1], $0[17]] }), [["dpt@lr=0.3,r=2", "dpt"]], csv)
        XCTAssertEqual(Set(table.dropFirst().filter { $0[0].hasPrefix("say") }.map { [$0[1], $0[17]] }), [["say \"hi\"", ""]], csv)
        let merged = try ResultsStore(path: "\(dir)/b.sqlite")
        XCTAssertEqual(try merged.merge(from: "\(dir)/a.sqlite"), 3)
        XCTAssertEqual(try merged.cellResults(spec: "table1", profile: "smoke").first?.extras?["peak_rss_bytes"]?.values, [1e9, 2e9])
    }

    /// An evaluated run never takes a sweep's cell through `merge` either (as `eval --db` refuses
    /// it): a shard's evaluated run joins as history beside the store's finished run, and a shard's
    /// trained run replaces an evaluated one here whatever their creation times, as `sweep` does.
    func testMergeKeepsSweepCellsFromEvaluatedRuns() throws {
        let dir = tempDir("mergeeval")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let run = try XCTUnwrap(try ExperimentSpec.load("\(repoRoot)/Baselines/specs/table1.yaml").expand(profile: "smoke")
            .first { $0.variant == "dpt" && $0.task == "cb" && $0.seed == 1 })
        func result(_ v: Double, _ status: RunStatus) -> TrainResult {
            TrainResult(config: run.config, status: status, divergedAtStep: nil, bestEpoch: 1, best: ["accuracy": v], last: ["accuracy": v], history: [],
                        trainableParams: 1, trainExamples: 8, evalExamples: 8, dataFiles: [:], manifest: nil, smoke: true, predictions: ["0"])
        }
        var evaluatedRun = run
        evaluatedRun.identity = "evaluated-adapter"
        func trained(_ path: String, _ v: Double) throws -> ResultsStore {
            let s = try ResultsStore(path: path)
            try s.insertPending([run])
            let c = try XCTUnwrap(try s.claim(worker: "t", pid: getpid()))
            try s.complete(c.id, result: result(v, .done))
            return s
        }
        func evaluated(_ path: String, _ v: Double) throws -> ResultsStore {
            let s = try ResultsStore(path: path)
            try s.recordEvaluated(evaluatedRun, result: result(v, .evaluated), adapterSha256: String(repeating: "0", count: 64))
            return s
        }
        func current(_ s: ResultsStore) throws -> [String] {
            try s.db.query("SELECT status FROM runs WHERE status != 'superseded'").compactMap { $0["status"]?.text }
        }
        // A shard's evaluated run against the store's trained one: the trained run stays.
        let main = try trained("\(dir)/main.sqlite", 70)
        _ = try evaluated("\(dir)/eval-shard.sqlite", 99)
        let r1 = try main.mergeReporting(from: "\(dir)/eval-shard.sqlite")
        XCTAssertEqual(try current(main), ["done"])
        XCTAssertEqual(try main.cellResults(spec: "table1", profile: "smoke").first?.best["accuracy"]?.mean, 70)
        XCTAssertTrue(r1.history.first?.contains("evaluated adapter run joins as history") == true, "\(r1.history)")
        // An evaluated run here (made after the shard's run) gives way to the shard's trained run.
        _ = try trained("\(dir)/train-shard.sqlite", 60)
        let other = try evaluated("\(dir)/other.sqlite", 99)
        try other.db.query("UPDATE runs SET created_at='9999-01-01T00:00:00.000Z'")
        XCTAssertEqual(try other.merge(from: "\(dir)/train-shard.sqlite"), 1)
        XCTAssertEqual(try current(other), ["done"])
        XCTAssertEqual(try other.cellResults(spec: "table1", profile: "smoke").first?.best["accuracy"]?.mean, 60)
    }

    /// A spec edited and then reverted: the finished runs of the original settings come back from
    /// history (their identity is the planned one) instead of being trained again, and the runs of
    /// the edit, pending, go to history.
    func testRevertedSpecTakesItsFinishedRunsBack() throws {
        let dir = tempDir("revert")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let s = try ResultsStore(path: "\(dir)/a.sqlite")
        let runs = try ExperimentSpec.load("\(repoRoot)/Baselines/specs/table1.yaml").expand(profile: "smoke").filter { $0.variant == "dpt" && $0.task == "cb" }
        XCTAssertEqual(try s.insertPendingReporting(runs).inserted, 3)
        while let c = try s.claim(worker: "t", pid: getpid()) {
            try s.complete(c.id, result: TrainResult(config: c.spec.config, status: .done, divergedAtStep: nil, bestEpoch: 1,
                                                     best: ["accuracy": 50 + Double(c.spec.seed)], last: ["accuracy": 40], history: [], trainableParams: 10,
                                                     trainExamples: 8, evalExamples: 8, dataFiles: [:], manifest: nil, smoke: true, predictions: ["0"]))
        }
        let edited = runs.map { r -> RunSpec in var r = r; r.config.lr *= 2; return r }
        let e = try s.insertPendingReporting(edited)
        XCTAssertEqual([e.inserted, e.superseded, e.restored], [3, 3, 0])
        // One run of the edit was running when its worker died: it goes to history as the others
        // (interrupted runs go back to pending before the plan, as `sweep` orders them).
        let claimed = try XCTUnwrap(try s.claim(worker: "t", pid: getpid()))
        try s.db.query("UPDATE runs SET worker_pid=999999999 WHERE id=?", [.int(claimed.id)])
        try s.db.query("UPDATE runs SET created_at='2000-01-01T00:00:00.000Z' WHERE status='superseded'")
        XCTAssertEqual(try s.resetInterrupted(spec: "table1", profile: "smoke"), 1)
        let back = try s.insertPendingReporting(runs)
        XCTAssertEqual([back.inserted, back.superseded, back.restored], [0, 3, 3])
        // Taken back, a run is planned now: merge ranks it by this time, not the old one.
        XCTAssertEqual(try s.db.query("SELECT COUNT(*) AS n FROM runs WHERE status='done' AND created_at < '2001'").first?["n"]?.int, 0)
        XCTAssertEqual(try s.db.query("SELECT COUNT(*) AS n FROM runs WHERE status='pending'").first?["n"]?.int, 0)
        let cell = try XCTUnwrap(try s.cellResults(spec: "table1", profile: "smoke").first)
        XCTAssertEqual(cell.best["accuracy"]?.values, [51, 52, 53])
        XCTAssertNil(try s.claim(worker: "t", pid: getpid()), "nothing left to train")
    }

    /// `merge` copies a finished run whole: every column of its row (progress, adapter sha256, the
    /// sample seed, …: a fixed column list left out those added to the schema after it) and every
    /// row of its child tables, and evaluated runs too (they were left in the shard).
    func testMergeCopiesEveryColumnAndEvaluatedRuns() throws {
        let dir = tempDir("mergecols")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let s = try ResultsStore(path: "\(dir)/a.sqlite")
        let runs = try ExperimentSpec.load("\(repoRoot)/Baselines/specs/table1.yaml").expand(profile: "smoke").filter { $0.variant == "dpt" && $0.task == "cb" }
        try s.insertPending(Array(runs.prefix(2)))
        for _ in 0..<2 {
            let c = try XCTUnwrap(try s.claim(worker: "t", pid: getpid()))
            try s.recordEpoch(c.id, done: 3, total: 3, seconds: 12.5 + Double(c.spec.seed))
            var r = TrainResult(config: c.spec.config, status: .done, divergedAtStep: nil, bestEpoch: 1, best: ["accuracy": 70], last: ["accuracy": 60],
                                history: [], trainableParams: 10, trainExamples: 8, evalExamples: 8, dataFiles: [:], manifest: nil, smoke: true,
                                predictions: ["0", "1"])
            r.extras = ["seconds_per_step": 0.5]
            try s.complete(c.id, result: r)
        }
        var ev = runs[2]
        ev.cell += "-adapter"
        try s.recordEvaluated(ev, result: TrainResult(config: ev.config, status: .evaluated, divergedAtStep: nil, bestEpoch: 0, best: ["accuracy": 55],
                                                      last: ["accuracy": 55], history: [], trainableParams: 7, trainExamples: 0, evalExamples: 8,
                                                      dataFiles: [:], manifest: nil, smoke: true, predictions: ["1"]),
                              adapterSha256: String(repeating: "ab", count: 32))
        let merged = try ResultsStore(path: "\(dir)/b.sqlite")
        XCTAssertEqual(try merged.merge(from: "\(dir)/a.sqlite"), 3)
        let skip: Set<String> = ["id", "worker_pid", "heartbeat", "checkpoint"]
        let mine = try s.db.query("SELECT * FROM runs ORDER BY cell, seed"), theirs = try merged.db.query("SELECT * FROM runs ORDER BY cell, seed")
        XCTAssertEqual(mine.count, 3)
        XCTAssertEqual(theirs.count, 3)
        for (a, b) in zip(mine, theirs) {
            for (name, value) in a where !skip.contains(name) {
                XCTAssertEqual(b[name], value, "runs.\(name) of \(a["cell"]?.text ?? "") seed \(a["seed"]?.int ?? 0)")
            }
        }
        XCTAssertEqual(theirs.compactMap { $0["epoch_seconds"]?.double }.sorted(), [13.5, 14.5])
        XCTAssertEqual(theirs.filter { $0["status"]?.text == "evaluated" }.first?["adapter_sha256"]?.text, String(repeating: "ab", count: 32))
        for table in ["epochs", "epoch_metrics", "scores", "predictions", "steps", "run_metrics"] {
            let count = "SELECT COUNT(*) AS n FROM \(table)"
            XCTAssertEqual(try merged.db.query(count).first?["n"]?.int, try s.db.query(count).first?["n"]?.int, table)
        }
        XCTAssertEqual(try merged.merge(from: "\(dir)/a.sqlite"), 0, "merging again adds nothing")
    }

    /// A finished run without a score its cell's other runs have is not counted: its cell's values
    /// once lost their place (compare paired them with the wrong seeds: Δ −3.50 where the seeds that
    /// have scores give +6.50). It counts as 'incomplete', and compare finds it missing.
    func testFinishedRunWithoutItsScoresIsIncomplete() throws {
        let dir = tempDir("incomplete")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let s = try ResultsStore(path: "\(dir)/a.sqlite")
        let runs = try ExperimentSpec.load("\(repoRoot)/Baselines/specs/table1.yaml").expand(profile: "smoke").filter { $0.variant == "dpt" && $0.task == "cb" }
        try s.insertPending(runs)
        var scoreOf: [Int: Double] = [:]
        for _ in runs {
            let c = try XCTUnwrap(try s.claim(worker: "t", pid: getpid()))
            let v = 50 + 10 * Double(c.spec.seed)
            scoreOf[c.spec.seed] = v
            try s.complete(c.id, result: TrainResult(config: c.spec.config, status: .done, divergedAtStep: nil, bestEpoch: 1, best: ["accuracy": v, "f1": v / 2],
                                                     last: ["accuracy": v, "f1": v / 2], history: [], trainableParams: 10, trainExamples: 8, evalExamples: 8,
                                                     dataFiles: [:], manifest: nil, smoke: true, predictions: nil))
        }
        let seeds = runs.map(\.seed).sorted()
        try s.db.query("DELETE FROM scores WHERE kind='best' AND metric='accuracy' AND run_id=(SELECT id FROM runs WHERE seed=?)", [.int(seeds[0])])
        // Another metric (not CB's selection metric) missing from one run leaves the cell's last f1, not the run.
        try s.db.query("DELETE FROM scores WHERE kind='last' AND metric='f1' AND run_id=(SELECT id FROM runs WHERE seed=?)", [.int(seeds[1])])
        let cell = try XCTUnwrap(s.cellResults(spec: "table1", profile: "smoke").first)
        XCTAssertNil(cell.last["f1"])
        XCTAssertNotNil(cell.best["f1"])
        XCTAssertEqual(cell.seeds, Array(seeds.dropFirst()))
        for (kind, stats) in [("best", cell.best), ("last", cell.last)] {
            for (metric, st) in stats {
                XCTAssertEqual(st.values.count, cell.replicates.count, "\(kind) \(metric)")
                let want = seeds.dropFirst().map { metric == "f1" ? scoreOf[$0]! / 2 : scoreOf[$0]! }
                XCTAssertEqual(st.values, want, "\(kind) \(metric): each value at its seed")
            }
        }
        XCTAssertEqual(cell.statuses, ["done": 2, "incomplete": 1])
        XCTAssertEqual(cell.failureMarker, "✗ incomplete 1/3")
        let missing = Compare.missing(expected: [CompareCell(task: "cb", model: cell.model, k: cell.k): seeds.map { Replicate(seed: $0) }],
                                      cells: [cell], variant: "dpt", label: "new")
        XCTAssertEqual(missing.count, 1)
        XCTAssertTrue(missing[0].contains("seed \(seeds[0]) missing (1 incomplete)"), missing[0])
    }

    /// A row a live worker is running is left to it: merge once replaced it under the worker (its
    /// result then landed in the shard's row, two executions mixed), and re-sharding set it to
    /// pending, so a second worker trained it again. A result for a row no longer running is refused.
    func testRunningRowsAreLeftToTheirWorker() throws {
        let dir = tempDir("running")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let runs = try ExperimentSpec.load("\(repoRoot)/Baselines/specs/table1.yaml").expand(profile: "smoke").filter { $0.variant == "dpt" && $0.task == "cb" }
        func result(_ spec: RunSpec, _ v: Double) -> TrainResult {
            TrainResult(config: spec.config, status: .done, divergedAtStep: nil, bestEpoch: 1, best: ["accuracy": v], last: ["accuracy": v], history: [],
                        trainableParams: 1, trainExamples: 8, evalExamples: 8, dataFiles: [:], manifest: nil, smoke: true, predictions: nil)
        }
        let shard = try ResultsStore(path: "\(dir)/shard.sqlite")
        try shard.insertPending(runs)
        while let c = try shard.claim(worker: "shard", pid: getpid()) { try shard.complete(c.id, result: result(c.spec, 60)) }
        let home = try ResultsStore(path: "\(dir)/home.sqlite")
        try home.insertPending(runs)
        let mine = try XCTUnwrap(try home.claim(worker: "here", pid: getpid()))
        XCTAssertEqual(try home.merge(from: "\(dir)/shard.sqlite"), 2, "the running run is not replaced")
        func status(_ id: Int) throws -> String? { try home.db.query("SELECT status FROM runs WHERE id=?", [.int(id)]).first?["status"]?.text }
        XCTAssertEqual(try status(mine.id), "running")
        try home.complete(mine.id, result: result(mine.spec, 70))
        XCTAssertEqual(try status(mine.id), "done")
        XCTAssertThrowsError(try home.complete(mine.id, result: result(mine.spec, 80))) { XCTAssertTrue("\($0)".contains("is no longer running here"), "\($0)") }
        try home.fail(mine.id, error: "late failure")
        XCTAssertEqual(try status(mine.id), "done", "a finished row keeps its result")
        XCTAssertEqual(try home.db.query("SELECT value FROM scores WHERE run_id=? AND kind='best'", [.int(mine.id)]).first?["value"]?.double, 70)

        // Re-sharding keeps a live worker's run running and puts a dead worker's back to pending.
        let paths = try ResultsStore.writeShards(runs, shards: 1, dir: "\(dir)/shards")
        let s0 = try ResultsStore(path: paths[0])
        let worker = Process()  // a live process whose command line names promptrepro, as a worker's does
        worker.executableURL = URL(fileURLWithPath: "/bin/bash")
        worker.arguments = ["-c", "exec -a promptrepro-worker sleep 60"]
        try worker.run()
        defer { worker.terminate() }
        Thread.sleep(forTimeInterval: 0.2)
        let live = try XCTUnwrap(try s0.claim(worker: "w", pid: worker.processIdentifier))
        let gone = try XCTUnwrap(try s0.claim(worker: "w", pid: getpid()))
        try s0.db.query("UPDATE runs SET worker_pid=? WHERE id=?", [.int(Int(Int32.max)), .int(gone.id)])
        _ = try ResultsStore.writeShards(runs, shards: 1, dir: "\(dir)/shards")
        let after = Dictionary(uniqueKeysWithValues: try s0.db.query("SELECT id, status FROM runs").map { ($0["id"]!.int!, $0["status"]!.text!) })
        XCTAssertEqual(after[live.id], "running")
        XCTAssertEqual(after[gone.id], "pending")
    }

    /// The ETA from hand-made per-epoch timings: epochs already trained are not counted again, a
    /// key never timed borrows its model's mean, a model never run makes the ETA a lower bound,
    /// and one run is never split across workers.
    func testETAFromHandMadeTimings() throws {
        let m = "embedded:t5-tiny"
        func key(_ method: String, _ task: String, _ model: String = m) -> TimingKey { TimingKey(method: method, task: task, model: model) }
        let timings = [key("dpt", "cb"): 2.0, key("pt", "cb"): 1.0]
        let remaining = [RemainingRun(key: key("dpt", "cb"), epochsTotal: 10, epochsDone: 4),   // 6 × 2 s = 12 s
                         RemainingRun(key: key("pt", "cb"), epochsTotal: 10),                   // 10 × 1 s = 10 s
                         RemainingRun(key: key("pt", "rte"), epochsTotal: 4)]                   // model mean 1.5 s → 6 s
        XCTAssertEqual(SweepETA.secondsPerEpoch(key("pt", "rte"), timings: timings), 1.5)
        XCTAssertEqual(SweepETA.estimate(remaining, timings: timings, workers: 1).seconds, 28)
        XCTAssertEqual(SweepETA.estimate(remaining, timings: timings, workers: 2).seconds, 14)     // 28 / 2
        XCTAssertEqual(SweepETA.estimate(remaining, timings: timings, workers: 8).seconds, 12)     // the longest run
        XCTAssertEqual(SweepETA.estimate(remaining, timings: timings, workers: 2).text, "14s")
        // Progress of a running run moves the ETA by its epochs, not by jumps.
        var later = remaining
        later[0].epochsDone = 9
        XCTAssertEqual(SweepETA.estimate(later, timings: timings, workers: 1).seconds, 18)
        let never = RemainingRun(key: key("pt", "cb", "t5-base"), epochsTotal: 100)
        let partial = SweepETA.estimate(remaining + [never], timings: timings, workers: 1)
        XCTAssertEqual(partial.unmeasured, 1)
        XCTAssertEqual(partial.text, "> 28s (1 runs never timed)")
        XCTAssertEqual(SweepETA.estimate([never], timings: timings, workers: 1).text, "unknown")
        XCTAssertEqual(SweepETA.estimate([], timings: timings, workers: 2).text, "0s")

        // Timings from a store: finished runs' epochs plus what a running run reported.
        let dir = tempDir("eta")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let s = try ResultsStore(path: "\(dir)/a.sqlite")
        let spec = try ExperimentSpec.load("\(repoRoot)/Baselines/specs/table1.yaml")
        let runs = try spec.expand(profile: "smoke").filter { $0.variant == "dpt" && $0.task == "cb" }
        try s.insertPending(runs)
        let a = try s.claim(worker: "t", pid: getpid())!
        func rec(_ e: Int, _ sec: Double) throws -> EpochRecord {  // no public memberwise init: decode one
            try JSONDecoder().decode(EpochRecord.self, from: Data("{\"epoch\":\(e),\"step\":\(e),\"trainLoss\":1,\"metrics\":{},\"seconds\":\(sec)}".utf8))
        }
        try s.complete(a.id, result: TrainResult(config: a.spec.config, status: .done, divergedAtStep: nil, bestEpoch: 1, best: [:], last: [:],
                                                 history: [try rec(1, 3), try rec(2, 5)], trainableParams: 1, trainExamples: 1, evalExamples: 1,
                                                 dataFiles: [:], manifest: nil, smoke: true, predictions: nil))
        let b = try s.claim(worker: "t", pid: getpid())!
        try s.recordEpoch(b.id, done: 2, total: 10, seconds: 4)
        let k = TimingKey(method: "dpt", task: "cb", model: runs[0].modelSpec)
        XCTAssertEqual(try s.epochTimings(), [k: 12.0 / 4])  // (3 + 5 + 4) s over 4 epochs
        let left = try s.remainingRuns(spec: "table1", profile: "smoke")
        XCTAssertEqual(left.sorted { $0.epochsDone < $1.epochsDone }.map(\.epochsDone), [0, 2])
        XCTAssertEqual(left.first { $0.epochsDone == 2 }?.epochsTotal, 10)
    }

    /// Resetting interrupted runs touches only the spec+profile being swept (a table4 sweep once
    /// reported table1's interrupted runs as its own).
    func testResetInterruptedIsScoped() throws {
        let dir = tempDir("scope")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let s = try ResultsStore(path: "\(dir)/a.sqlite")
        for name in ["table1", "table4"] {
            let spec = try ExperimentSpec.load("\(repoRoot)/Baselines/specs/\(name).yaml")
            try s.insertPending(Array(try spec.expand(profile: "smoke").prefix(2)))
            _ = try s.claim(worker: "gone", pid: 999_999_999, spec: name, profile: "smoke")  // a pid that cannot exist
        }
        XCTAssertEqual(try s.resetInterrupted(spec: "table4", profile: "smoke"), 1)
        XCTAssertEqual(try s.counts(spec: "table1")["running"], 1, "table1's run was reset by a table4 sweep")
        XCTAssertEqual(try s.counts(spec: "table4")["running"] ?? 0, 0)
        let c = try s.claim(worker: "w", pid: getpid(), spec: "table4", profile: "smoke")
        XCTAssertEqual(c?.spec.spec, "table4")
        // A claimed run names its host with its pid at once: a run last tried on another host, now
        // claimed here, is judged by this host's pid, not taken for dead by a sweep on that host
        // before the worker's `recordStart`.
        try s.db.query("UPDATE runs SET host='another-host', status='running', worker_pid=? WHERE id=?", [.int(Int(getpid())), .int(c!.id)])
        try s.db.query("UPDATE runs SET status='pending' WHERE id=?", [.int(c!.id)])
        let again = try XCTUnwrap(s.claim(worker: "w", pid: getpid(), spec: "table4", profile: "smoke"))
        XCTAssertEqual(again.id, c!.id)
        XCTAssertEqual(try s.db.query("SELECT host FROM runs WHERE id=?", [.int(again.id)]).first?["host"]?.text, ProcessInfo.processInfo.hostName)
        try s.release(c!.id)
        XCTAssertEqual(try s.db.query("SELECT status, worker, worker_pid FROM runs WHERE id=?", [.int(c!.id)]).first,
                       ["status": .text("pending"), "worker": .null, "worker_pid": .null])
    }

    func testClaimIsExclusive() throws {
        let dir = tempDir("claim")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = try ResultsStore(path: "\(dir)/a.sqlite"), b = try ResultsStore(path: "\(dir)/a.sqlite")
        let spec = try ExperimentSpec.load("\(repoRoot)/Baselines/specs/table1.yaml")
        XCTAssertEqual(try a.insertPending(try spec.expand(profile: "smoke")), 96)
        XCTAssertEqual(try a.insertPending(try spec.expand(profile: "smoke")), 0)  // idempotent
        var seen = Set<Int>()
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: 2) { i in
            let s = i == 0 ? a : b
            while let c = try? s.claim(worker: "w\(i)", pid: getpid()) {
                lock.lock(); XCTAssertFalse(seen.contains(c.id)); seen.insert(c.id); lock.unlock()
            }
        }
        XCTAssertEqual(seen.count, 96)
    }
}

final class SweepProcessTests: XCTestCase {
    /// Editing a spec reruns exactly the cells whose identity changed: the old rows stay as
    /// 'superseded' and tables use only the new ones; an unchanged rerun inserts nothing.
    func testEditedSpecRerunsExactlyTheChangedCells() throws {
        let data = try sharedData()
        let dir = tempDir("ident")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let db = "\(dir)/s.sqlite"
        func sweep(_ text: String) throws {
            try text.write(toFile: "\(dir)/mini.yaml", atomically: true, encoding: .utf8)
            XCTAssertEqual(try runCLI(["sweep", "\(dir)/mini.yaml", "--profile", "smoke", "--workers", "1", "--db", db, "--data-dir", data,
                                       "--checkpoints", "\(dir)/ck"]).terminationStatus, 0)
        }
        try sweep(miniSpec)
        let s = try ResultsStore(path: db)
        func ids() throws -> [String: Int] {
            var out: [String: Int] = [:]
            for r in try s.db.query("SELECT id, cell, seed FROM runs WHERE status != 'superseded'") { out["\(r["cell"]!.text!)#\(r["seed"]!.int!)"] = r["id"]!.int! }
            return out
        }
        let before = try ids()
        XCTAssertEqual(before.count, 8)
        try sweep(miniSpec)  // unchanged: nothing new
        XCTAssertEqual(try ids(), before)
        // Change only DPT's rank: the four DPT runs rerun, the four PT runs are kept.
        try sweep(miniSpec.replacingOccurrences(of: "{name: dpt, method: dpt, n: 8, r: 2}", with: "{name: dpt, method: dpt, n: 8, r: 3}"))
        let after = try ids()
        XCTAssertEqual(after.count, 8)
        for (key, id) in before {
            if key.hasPrefix("dpt|") { XCTAssertNotEqual(after[key], id, "\(key) should rerun") } else { XCTAssertEqual(after[key], id, "\(key) should be kept") }
        }
        XCTAssertEqual(try s.db.query("SELECT COUNT(*) AS n FROM runs WHERE status='superseded'").first?["n"]?.int, 4)
        XCTAssertTrue(try s.cellResults(spec: "mini", profile: "smoke").allSatisfy { $0.seeds.count == 2 }, "no cell mixes old and new runs")
        // A training setting of the profile changes every cell.
        try sweep(miniSpec.replacingOccurrences(of: "{name: dpt, method: dpt, n: 8, r: 2}", with: "{name: dpt, method: dpt, n: 8, r: 3}")
                    .replacingOccurrences(of: "epochs: 4", with: "epochs: 3"))
        XCTAssertTrue(Set(try ids().values).isDisjoint(with: Set(after.values)))
        XCTAssertEqual(try s.db.query("SELECT COUNT(*) AS n FROM runs WHERE status='superseded'").first?["n"]?.int, 12)
    }

    /// Two worker processes on one store finish every run exactly once; a sweep killed with SIGKILL
    /// mid-run and rerun ends with every run present once and the same scores as the clean sweep.
    func testTwoWorkersAndKillResume() throws {
        let data = try sharedData()
        let dir = tempDir("sweep")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try miniSpec.write(toFile: "\(dir)/mini.yaml", atomically: true, encoding: .utf8)
        // Clean reference sweep with two workers.
        let clean = try runCLI(["sweep", "\(dir)/mini.yaml", "--profile", "smoke", "--workers", "2", "--db", "\(dir)/clean.sqlite",
                                "--data-dir", data, "--checkpoints", "\(dir)/ck-clean", "--threads", "2"])
        XCTAssertEqual(clean.terminationStatus, 0)
        let cs = try ResultsStore(path: "\(dir)/clean.sqlite")
        let rows = try cs.db.query("SELECT status, attempts, worker FROM runs")
        XCTAssertEqual(rows.count, 8)
        XCTAssertTrue(rows.allSatisfy { $0["status"]?.text == "done" && $0["attempts"]?.int == 1 })
        XCTAssertEqual(Set(rows.compactMap { $0["worker"]?.text }).count, 2, "both workers took runs")
        // Every run records its invalid-output fractions (best epoch and last evaluation); cells and `results` show them.
        XCTAssertEqual(try cs.db.query("SELECT COUNT(*) AS n FROM run_metrics WHERE name IN ('invalid_fraction','invalid_fraction_last')").first?["n"]?.int, 16)
        XCTAssertTrue(try cs.cellResults(spec: "mini", profile: "smoke").allSatisfy { $0.invalidFraction?["best"]?.n == 2 })
        let reference = try scores("\(dir)/clean.sqlite")
        XCTAssertFalse(reference.isEmpty)

        // Interrupted sweep: one worker, killed once a run has written its first checkpoint.
        let db = "\(dir)/killed.sqlite"
        let first = try runCLI(["sweep", "\(dir)/mini.yaml", "--profile", "smoke", "--workers", "1", "--db", db, "--data-dir", data,
                                "--checkpoints", "\(dir)/ck"], wait: false)
        var killed = false
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline && first.isRunning {
            let cks = (try? FileManager.default.contentsOfDirectory(atPath: "\(dir)/ck")) ?? []
            if let done = try? ResultsStore(path: db).counts()["done"], done >= 1, cks.contains(where: { $0.hasSuffix(".safetensors") }) {
                // Freeze the sweep and its worker first, so the worker cannot finish its run (or sit
                // between two runs) while we look; then kill both with a run left 'running'.
                let s = try ResultsStore(path: db)
                let pids = Set(try s.db.query("SELECT worker_pid FROM runs WHERE worker_pid IS NOT NULL").compactMap { $0["worker_pid"]?.int })
                kill(first.processIdentifier, SIGSTOP)
                for pid in pids { kill(Int32(pid), SIGSTOP) }
                // A failed read must not leave the processes stopped: resume them and look again.
                if (try? s.db.query("SELECT id FROM runs WHERE status='running'"))?.isEmpty ?? true {
                    for pid in pids { kill(Int32(pid), SIGCONT) }  // caught between two runs: look again
                    kill(first.processIdentifier, SIGCONT)
                } else {
                    for pid in pids { kill(Int32(pid), SIGKILL) }
                    kill(first.processIdentifier, SIGKILL)
                    killed = true
                    break
                }
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        first.waitUntilExit()
        XCTAssertTrue(killed, "never saw a checkpointed running run")
        let mid = try ResultsStore(path: db).counts()
        XCTAssertEqual(mid["running"] ?? 0, 1, "the killed run is left 'running'")
        let resumed = try runCLI(["sweep", "\(dir)/mini.yaml", "--profile", "smoke", "--workers", "2", "--db", db, "--data-dir", data,
                                  "--checkpoints", "\(dir)/ck"])
        XCTAssertEqual(resumed.terminationStatus, 0)
        let s = try ResultsStore(path: db)
        XCTAssertEqual(try s.db.query("SELECT COUNT(*) AS n FROM runs").first?["n"]?.int, 8)
        XCTAssertEqual(try s.counts()["done"], 8)
        XCTAssertEqual(try s.db.query("SELECT COUNT(*) AS n FROM runs WHERE attempts = 2").first?["n"]?.int, 1)
        XCTAssertEqual(try scores(db), reference, "resumed sweep differs from the clean one")
        for r in try s.db.query("SELECT id FROM runs") {
            XCTAssertEqual(try s.db.query("SELECT COUNT(*) AS n FROM epochs WHERE run_id=?", [.int(r["id"]!.int!)]).first?["n"]?.int, 4)
        }
    }

    /// A sweep killed outright (SIGKILL: it cannot stop its workers) leaves no worker training
    /// unseen: the worker sees its parent gone at its next step, puts its run back to pending and
    /// exits, so at most the run it was finishing completes. Before, the orphaned worker went on
    /// claiming and training every pending run of the spec.
    func testWorkerStopsWhenItsSweepIsKilled() throws {
        let data = try sharedData()
        let dir = tempDir("orphan")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try miniSpec.write(toFile: "\(dir)/mini.yaml", atomically: true, encoding: .utf8)
        let db = "\(dir)/orphan.sqlite"
        let sweep = try runCLI(["sweep", "\(dir)/mini.yaml", "--profile", "smoke", "--workers", "1", "--db", db, "--data-dir", data,
                                "--checkpoints", "\(dir)/ck"], wait: false)
        var worker: Int32?
        var doneAtKill = 0
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline && sweep.isRunning && worker == nil {
            if let s = try? ResultsStore(path: db),
               let pid = (try? s.db.query("SELECT worker_pid FROM runs WHERE status='running' AND worker_pid IS NOT NULL"))?.first?["worker_pid"]?.int {
                worker = Int32(pid)
                kill(sweep.processIdentifier, SIGKILL)
                doneAtKill = (try? s.counts()["done"]) ?? 0
            } else {
                Thread.sleep(forTimeInterval: 0.02)
            }
        }
        sweep.waitUntilExit()
        let pid = try XCTUnwrap(worker, "never saw a running run")
        let gone = Date().addingTimeInterval(60)
        while Date() < gone && ProcessLiveness.isAlive(pid) { Thread.sleep(forTimeInterval: 0.1) }
        XCTAssertFalse(ProcessLiveness.isAlive(pid), "the worker still runs a minute after its sweep was killed")
        let counts = try ResultsStore(path: db).counts()
        XCTAssertEqual(counts["running"] ?? 0, 0, "the worker's run went back to pending")
        XCTAssertLessThanOrEqual(counts["done"] ?? 0, doneAtKill + 1, "the orphaned worker went on with other runs: \(counts)")
        XCTAssertGreaterThanOrEqual(counts["pending"] ?? 0, 8 - doneAtKill - 1)
    }
}

/// Reliability (issue 10): ten SIGKILLs at random points over one sweep, determinism across two
/// clean sweeps (scores and trainable tensors bit-identical), and a diverging run that does not
/// stop the sweep.
final class ReliabilityTests: XCTestCase {
    func artifacts(_ dir: String) throws -> [String: Data] {
        let root = "\(dir)/artifacts/mini-smoke"
        var out: [String: Data] = [:]
        for f in try FileManager.default.contentsOfDirectory(atPath: root) {
            // "<cell>-s<seed>-<identity>-store-<12 hex>.safetensors": keyed without the store's tag, which differs between stores.
            let key = f.replacingOccurrences(of: #"-store-[0-9a-f]{12}\.safetensors$"#, with: "", options: .regularExpression)
            XCTAssertNotEqual(key, f, "artifact \(f) is not named by its store")
            out[key] = try Data(contentsOf: URL(fileURLWithPath: "\(root)/\(f)"))
        }
        return out
    }

    func sweep(_ dir: String, _ name: String, workers: Int = 2, wait: Bool = true, extraSpec: String = "") throws -> Process {
        try runCLI(["sweep", "\(dir)/mini.yaml", "--profile", "smoke", "--workers", "\(workers)", "--db", "\(dir)/\(name).sqlite",
                    "--data-dir", try sharedData(), "--checkpoints", "\(dir)/\(name)/checkpoints"], wait: wait)
    }

    func testTenKillsDeterminismAndDivergence() throws {
        let dir = tempDir("rel")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // One extra method with an absurd learning rate diverges; the sweep goes on.
        let spec = miniSpec.replacingOccurrences(of: "  - {name: pt, method: pt, n: 8}",
                                                 with: "  - {name: pt, method: pt, n: 8}\n  - {name: boom, method: pt, n: 8, train: {lr: 1.0e12, clip_norm: null, schedule: constant}}")
        try spec.write(toFile: "\(dir)/mini.yaml", atomically: true, encoding: .utf8)
        let a = try sweep(dir, "a"), b = try sweep(dir, "b", workers: 1)
        XCTAssertEqual(a.terminationStatus, 0)
        XCTAssertEqual(b.terminationStatus, 0)
        let sa = try ResultsStore(path: "\(dir)/a.sqlite")
        XCTAssertEqual(try sa.counts()["done"], 8)
        XCTAssertEqual(try sa.counts()["diverged"], 4)
        XCTAssertNotNil(try sa.db.query("SELECT diverged_step FROM runs WHERE status='diverged'").first?["diverged_step"]?.int)
        let reference = try scores("\(dir)/a.sqlite")
        XCTAssertEqual(try scores("\(dir)/b.sqlite"), reference, "two clean sweeps differ")
        let arts = try artifacts("\(dir)/a")
        XCTAssertEqual(arts.count, 8)
        XCTAssertEqual(try artifacts("\(dir)/b"), arts, "trainable tensors differ between sweeps")
        let cells = try sa.cellResults(spec: "mini", profile: "smoke")
        XCTAssertEqual(cells.first { $0.variant == "boom" }?.divergedSeeds.count, 2)

        // Ten SIGKILLs at random points (Philox-seeded delays), then a final sweep.
        var rng = PhiloxStream(RNGKey(seed: 10))
        var kills = 0
        while kills < 10 {
            let p = try sweep(dir, "k", wait: false)
            Thread.sleep(forTimeInterval: 0.15 + Double(rng.nextInt(below: 900)) / 1000)
            if let s = try? ResultsStore(path: "\(dir)/k.sqlite"),
               let rows = try? s.db.query("SELECT worker_pid FROM runs WHERE status='running'") {
                for r in rows { if let pid = r["worker_pid"]?.int { kill(Int32(pid), SIGKILL) } }
            }
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            killWorkers(using: "\(dir)/k.sqlite")
            kills += 1
        }
        let final = try sweep(dir, "k")
        XCTAssertEqual(final.terminationStatus, 0)
        let sk = try ResultsStore(path: "\(dir)/k.sqlite")
        XCTAssertEqual(try sk.db.query("SELECT COUNT(*) AS n FROM runs").first?["n"]?.int, 12, "every run present exactly once")
        XCTAssertEqual(try sk.counts()["done"], 8)
        XCTAssertEqual(try sk.counts()["diverged"], 4)
        XCTAssertEqual(try scores("\(dir)/k.sqlite"), reference, "killed-and-resumed sweep differs from the clean one")
        XCTAssertEqual(try artifacts("\(dir)/k"), arts)
        for r in try sk.db.query("SELECT id, status FROM runs") where r["status"]?.text == "done" {
            XCTAssertEqual(try sk.db.query("SELECT COUNT(*) AS n FROM epochs WHERE run_id=?", [.int(r["id"]!.int!)]).first?["n"]?.int, 4)
        }
        print("reliability: 10 kills, attempts total \(try sk.db.query("SELECT SUM(attempts) AS n FROM runs").first?["n"]?.int ?? 0)")
    }
}


/// SIGKILLs every process whose command line mentions `db` (orphaned workers of a killed sweep).
func killWorkers(using db: String) {
    for pid in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
        guard let n = Int32(pid), n != getpid(), let cmd = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { continue }
        if String(decoding: cmd, as: UTF8.self).contains(db) { kill(n, SIGKILL) }
    }
}

/// Runs the CLI and returns (exit status, stderr).
/// Runs the CLI and returns (exit status, one of its streams as text); the other stream is dropped.
func runCLIText(_ args: [String], stdout: Bool, cwd: String = repoRoot, env extra: [String: String] = [:]) throws -> (Int32, String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: try binary())
    p.arguments = args
    p.currentDirectoryURL = URL(fileURLWithPath: cwd)
    if !extra.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(extra) { _, b in b } }
    let pipe = Pipe()
    if stdout { p.standardOutput = pipe; p.standardError = FileHandle.nullDevice } else { p.standardError = pipe; p.standardOutput = FileHandle.nullDevice }
    try p.run()
    let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    return (p.terminationStatus, text)
}

/// Runs `executable ARGS` in the checkout; (exit status, stdout and stderr together).
func runMerged(_ executable: String, _ args: [String]) throws -> (Int32, String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = args
    p.currentDirectoryURL = URL(fileURLWithPath: repoRoot)
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    try p.run()
    let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    return (p.terminationStatus, text)
}

/// (exit status, stdout).
func runStdout(_ args: [String]) throws -> (Int32, String) { try runCLIText(args, stdout: true) }

/// (exit status, stderr).
func runCapture(_ args: [String], cwd: String = repoRoot, env extra: [String: String] = [:]) throws -> (Int32, String) {
    try runCLIText(args, stdout: false, cwd: cwd, env: extra)
}

/// Bad input gets a clear error naming the file, the position and what is wrong, a non-zero exit,
/// and leaves the results store untouched.
final class BadInputTests: XCTestCase {
    func expect(_ args: [String], _ fragments: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let (status, err) = try runCapture(args)
        XCTAssertNotEqual(status, 0, "\(args.joined(separator: " ")) succeeded", file: file, line: line)
        for f in fragments { XCTAssertTrue(err.contains(f), "stderr of \(args.prefix(2).joined(separator: " ")) lacks '\(f)':\n\(err)", file: file, line: line) }
    }

    func testBadInputMatrix() throws {
        let data = try sharedData()
        let shared = (data as NSString).deletingLastPathComponent
        let dir = tempDir("bad")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fm = FileManager.default
        // A store with finished runs whose bytes must not change.
        try miniSpec.write(toFile: "\(dir)/mini.yaml", atomically: true, encoding: .utf8)
        XCTAssertEqual(try runCLI(["sweep", "\(dir)/mini.yaml", "--profile", "smoke", "--workers", "1", "--db", "\(dir)/store.sqlite",
                                   "--data-dir", data, "--checkpoints", "\(dir)/ck"]).terminationStatus, 0)
        let storeBefore = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/store.sqlite"))

        // Model files: truncated, lying header, wrong dtype, wrong shape, malformed config.
        let src = "\(shared)/parity/t5-v10-small-a"
        func modelCopy(_ name: String) throws -> String {
            let d = "\(dir)/\(name)"
            try fm.createDirectory(atPath: d, withIntermediateDirectories: true)
            try fm.copyItem(atPath: "\(src)/model/config.json", toPath: "\(d)/config.json")
            try fm.copyItem(atPath: "\(src)/model/model.safetensors", toPath: "\(d)/model.safetensors")
            return d
        }
        let caseFile = "\(src)/case.json"
        let bytes = try Data(contentsOf: URL(fileURLWithPath: "\(src)/model/model.safetensors"))
        let trunc = try modelCopy("trunc")
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: "\(trunc)/model.safetensors"))
        try expect(["forward", "--model", trunc, "--case", caseFile], ["\(trunc)/model.safetensors", "outside the", "truncated or header lies"])
        let lie = try modelCopy("lie")
        var l = bytes
        l[0] = 0xFF; l[1] = 0xFF; l[2] = 0xFF
        try l.write(to: URL(fileURLWithPath: "\(lie)/model.safetensors"))
        try expect(["forward", "--model", lie, "--case", caseFile], ["\(lie)/model.safetensors", "header length", "at byte 0"])
        let dtype = try modelCopy("dtype")
        let headerLen = Int(bytes[0]) | Int(bytes[1]) << 8 | Int(bytes[2]) << 16
        var header = String(decoding: bytes[8..<(8 + headerLen)], as: UTF8.self)
        header = header.replacingOccurrences(of: "\"encoder.final_layer_norm.weight\":{\"dtype\":\"F32\"", with: "\"encoder.final_layer_norm.weight\":{\"dtype\":\"I32\"")
        var d2 = bytes.prefix(8)
        d2.append(Data(header.utf8))
        d2.append(bytes[(8 + headerLen)...])
        try d2.write(to: URL(fileURLWithPath: "\(dtype)/model.safetensors"))
        try expect(["forward", "--model", dtype, "--case", caseFile], ["\(dtype)/model.safetensors", "encoder.final_layer_norm.weight", "dtype I32"])
        let shape = try modelCopy("shape")
        let cfg = try String(contentsOfFile: "\(shape)/config.json", encoding: .utf8).replacingOccurrences(of: "\"d_ff\": 64", with: "\"d_ff\": 65")
        try cfg.write(toFile: "\(shape)/config.json", atomically: true, encoding: .utf8)
        try expect(["forward", "--model", shape, "--case", caseFile], ["model.safetensors", "DenseReluDense.wi.weight", "expected [65, 32]"])
        let badcfg = try modelCopy("badcfg")
        try "{\"model_type\": \"t5\", \"d_model\": ".write(toFile: "\(badcfg)/config.json", atomically: true, encoding: .utf8)
        try expect(["info", "--model", badcfg], ["\(badcfg)/config.json", "malformed JSON"])
        // A worker given a store that is not there (a mistyped shard path) created an empty one
        // and exited 0; a file that is not a store is refused too.
        try expect(["worker", "--db", "\(dir)/nosuch.sqlite", "--data-dir", data], ["--db \(dir)/nosuch.sqlite: no such store"])
        XCTAssertFalse(fm.fileExists(atPath: "\(dir)/nosuch.sqlite"))
        try "not a store".write(toFile: "\(dir)/text.sqlite", atomically: true, encoding: .utf8)
        try expect(["worker", "--db", "\(dir)/text.sqlite", "--data-dir", data], ["\(dir)/text.sqlite: not a results store", "no run claimed"])
        // tokenizer.json malformed.
        let tok = "\(dir)/tok"
        try fm.createDirectory(atPath: tok, withIntermediateDirectories: true)
        try "{\"model\": {\"type\": \"BPE\", \"vocab\": []}}".write(toFile: "\(tok)/tokenizer.json", atomically: true, encoding: .utf8)
        try "[\"hi\"]".write(toFile: "\(dir)/texts.json", atomically: true, encoding: .utf8)
        try expect(["tokenize", "--tokenizer", tok, "--texts", "\(dir)/texts.json"], ["\(tok)/tokenizer.json", "model.vocab"])
        // A bad JSONL line in a predictions file, and in a data file.
        try "{\"idx\": 0, \"prediction\": \"0\"}\n{\"idx\": 1, \"prediction\": \"1\"}\n{oops\n".write(toFile: "\(dir)/preds.jsonl", atomically: true, encoding: .utf8)
        try expect(["score", "--task", "cb", "--predictions", "\(dir)/preds.jsonl", "--data-dir", data], ["\(dir)/preds.jsonl", "line 3"])
        let badData = "\(dir)/data"
        try fm.createDirectory(atPath: "\(badData)/superglue", withIntermediateDirectories: true)
        try fm.copyItem(atPath: "\(data)/superglue/cb", toPath: "\(badData)/superglue/cb")
        var lines = try String(contentsOfFile: "\(badData)/superglue/cb/train.jsonl", encoding: .utf8).split(separator: "\n").map(String.init)
        lines[4] = "{\"premise\": broken"
        try (lines.joined(separator: "\n") + "\n").write(toFile: "\(badData)/superglue/cb/train.jsonl", atomically: true, encoding: .utf8)
        try expect(["train", "--method", "pt", "--task", "cb", "--k", "8", "--epochs", "1", "--data-dir", badData, "--allow-unpinned"],
                   ["superglue/cb/train.jsonl", "line 5"])
        // Data that differs from the pin is refused; with --allow-unpinned the manifest's hash check refuses it.
        lines[4] = lines[5]
        try (lines.joined(separator: "\n") + "\n").write(toFile: "\(badData)/superglue/cb/train.jsonl", atomically: true, encoding: .utf8)
        try expect(["train", "--method", "pt", "--task", "cb", "--k", "8", "--epochs", "1", "--data-dir", badData], ["superglue/cb/train.jsonl", "differs from the pin"])
        try expect(["train", "--method", "pt", "--task", "cb", "--k", "8", "--epochs", "1", "--data-dir", badData, "--allow-unpinned"],
                   ["cb-k8-s1.json", "train-file hash mismatch"])
        // Unknown task, method, spec key (with a suggestion).
        try expect(["train", "--method", "pt", "--task", "cbb", "--data-dir", data], ["unknown task", "did you mean 'cb'"])
        try expect(["train", "--method", "dtp", "--task", "cb", "--data-dir", data], ["unknown method 'dtp'", "did you mean 'dpt'"])
        try miniSpec.replacingOccurrences(of: "seeds: [1, 2]", with: "sedes: [1, 2]").write(toFile: "\(dir)/bad.yaml", atomically: true, encoding: .utf8)
        try expect(["sweep", "\(dir)/bad.yaml", "--db", "\(dir)/store.sqlite", "--data-dir", data], ["\(dir)/bad.yaml", "unknown key 'sedes'", "did you mean 'seeds'"])
        try expect(["sweep", "\(dir)/mini.yaml", "--db", "\(dir)/store.sqlite", "--data-dir", "\(dir)/nope"], ["--data-dir: \(dir)/nope"])
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: "\(dir)/store.sqlite")), storeBefore, "a failed command changed the store")
    }

    /// A PROMPTREPRO_DATA that names no directory is an error, not a silent fall-back to data/.
    func testMissingDataEnvironmentIsAnError() throws {
        let (status, err) = try runCapture(["score", "--task", "cb", "--predictions", "/dev/null"], env: ["PROMPTREPRO_DATA": "/nonexistent/data"])
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(err.contains("PROMPTREPRO_DATA: /nonexistent/data"), err)
    }

    /// `train` finds the committed manifests and data lock from any working directory.
    func testTrainRunsFromAnyWorkingDirectory() throws {
        let data = try sharedData()
        let dir = tempDir("cwd")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (status, err) = try runCapture(["train", "--method", "pt", "--task", "cb", "--k", "8", "--epochs", "1", "--n", "4", "--eval-limit", "4",
                                            "--decode-max-tokens", "2", "--data-dir", data, "--out", "\(dir)/r.json"], cwd: dir)
        XCTAssertEqual(status, 0, err)
        let r = try String(contentsOfFile: "\(dir)/r.json", encoding: .utf8)
        XCTAssertTrue(r.contains("cb-k8-s1.json") && !r.contains("drawn"), "the committed manifest was used")
        XCTAssertTrue(r.contains("\"invalid_fraction\"") && err.contains("invalid outputs (name no label): best epoch"), err)
    }
}

/// A worker started by hand or by a SLURM job (review, 2026-12-06): a run a killed worker left
/// 'running' stayed so forever (only `sweep` reset it), and a worker whose runs failed exited 0, so
/// a SLURM array reported success.
final class HandStartedWorkerTests: XCTestCase {
    func testWorkerResetsDeadWorkersRunsAndFailsWhenRunsFail() throws {
        let data = try sharedData()
        let dir = tempDir("handworker")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try miniSpec.replacingOccurrences(of: "epochs: 4", with: "epochs: 1").write(toFile: "\(dir)/mini.yaml", atomically: true, encoding: .utf8)
        XCTAssertEqual(try runCLI(["shard", "\(dir)/mini.yaml", "--profile", "smoke", "--shards", "1", "--dir", "\(dir)/sh", "--data-dir", data]).terminationStatus, 0)
        let shard = "\(dir)/sh/shard-0.sqlite"
        // A run left 'running' by a worker of this host whose process is gone.
        let store = try ResultsStore(path: shard)
        try store.db.query("UPDATE runs SET status='running', host=?, worker_pid=?, worker='gone' WHERE id=1",
                           [.text(ProcessInfo.processInfo.hostName), .int(2_000_000_000)])
        // CB's validation file edited: its runs fail on the pin, RTE's finish.
        for task in ["cb", "rte"] {
            try FileManager.default.createDirectory(atPath: "\(dir)/data/superglue/\(task)", withIntermediateDirectories: true)
            for f in ["train.jsonl", "val.jsonl"] {
                try FileManager.default.copyItem(atPath: "\(data)/superglue/\(task)/\(f)", toPath: "\(dir)/data/superglue/\(task)/\(f)")
            }
        }
        try (try String(contentsOfFile: "\(dir)/data/superglue/cb/val.jsonl", encoding: .utf8) + "\n")
            .write(toFile: "\(dir)/data/superglue/cb/val.jsonl", atomically: true, encoding: .utf8)
        let (status, err) = try runCapture(["worker", "--db", shard, "--data-dir", "\(dir)/data", "--checkpoints", "\(dir)/ck", "--threads", "1"])
        XCTAssertEqual(status, 1, err)
        XCTAssertTrue(err.contains("worker: 1 run left running by a worker that no longer exists back to pending"), err)
        XCTAssertTrue(err.contains("worker: 4 of the 8 runs it claimed failed"), err)
        let statuses = try store.db.query("SELECT task, status FROM runs").map { "\($0["task"]!.text!) \($0["status"]!.text!)" }
        XCTAssertEqual(Set(statuses), ["cb failed", "rte done"], statuses.description)
    }
}

/// Shards + merge (the SLURM path without SLURM): every run finished exactly once, scores equal to
/// a single-store sweep, and merging twice adds nothing.
final class ShardMergeTests: XCTestCase {
    func testShardWorkersMerge() throws {
        let data = try sharedData()
        let dir = tempDir("shard")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try miniSpec.write(toFile: "\(dir)/mini.yaml", atomically: true, encoding: .utf8)
        // Planned where the data is not (a login node): the identities say "missing".
        try FileManager.default.createDirectory(atPath: "\(dir)/no-data", withIntermediateDirectories: true)
        XCTAssertEqual(try runCLI(["shard", "\(dir)/mini.yaml", "--profile", "smoke", "--shards", "3", "--dir", "\(dir)/shards",
                                   "--data-dir", "\(dir)/no-data"]).terminationStatus, 0)
        func identities(_ path: String) throws -> [String] {
            try ResultsStore(readOnlyPath: path).db.query("SELECT identity_json FROM runs WHERE status != 'superseded'").map { $0["identity_json"]?.text ?? "" }
        }
        XCTAssertTrue(try identities("\(dir)/shards/shard-0.sqlite").allSatisfy { $0.contains("\"missing\"") })
        var workers: [Process] = []
        for i in 0..<3 {
            workers.append(try runCLI(["worker", "--db", "\(dir)/shards/shard-\(i).sqlite", "--data-dir", data, "--checkpoints", "\(dir)/ck-\(i)",
                                       "--threads", "1", "--quiet"], wait: false))
        }
        for w in workers { w.waitUntilExit(); XCTAssertEqual(w.terminationStatus, 0) }
        let shards = (0..<3).map { "\(dir)/shards/shard-\($0).sqlite" }
        XCTAssertEqual(try runCLI(["merge", "--into", "\(dir)/main.sqlite"] + shards).terminationStatus, 0)
        XCTAssertEqual(try runCLI(["merge", "--into", "\(dir)/main.sqlite"] + shards).terminationStatus, 0)  // idempotent
        let main = try ResultsStore(path: "\(dir)/main.sqlite")
        XCTAssertEqual(try main.db.query("SELECT COUNT(*) AS n FROM runs").first?["n"]?.int, 8)
        XCTAssertEqual(try main.counts()["done"], 8)
        XCTAssertEqual(try main.db.query("SELECT COUNT(*) AS n FROM epochs").first?["n"]?.int, 32)
        XCTAssertEqual(try runCLI(["sweep", "\(dir)/mini.yaml", "--profile", "smoke", "--workers", "2", "--db", "\(dir)/single.sqlite",
                                   "--data-dir", data, "--checkpoints", "\(dir)/ck"]).terminationStatus, 0)
        XCTAssertEqual(try scores("\(dir)/main.sqlite"), try scores("\(dir)/single.sqlite"))
        // Each worker stored the hashes of the data it read: the merged runs are the same runs as
        // the single sweep's. Merged into that store they replace nothing (they replaced all 8
        // finished runs as "differs in data"), and a sweep there has nothing to rerun.
        XCTAssertFalse(try identities("\(dir)/main.sqlite").contains { $0.contains("missing") })
        XCTAssertEqual(Set(try identities("\(dir)/main.sqlite")), Set(try identities("\(dir)/single.sqlite")))
        let (rc, err) = try runCLIText(["merge", "--into", "\(dir)/single.sqlite"] + shards, stdout: false)
        XCTAssertEqual(rc, 0, err)
        XCTAssertFalse(err.contains("replaced"), err)
        XCTAssertEqual(try ResultsStore(readOnlyPath: "\(dir)/single.sqlite").db.query("SELECT COUNT(*) AS n FROM runs WHERE status='superseded'").first?["n"]?.int, 0)
    }
}

/// A full or read-only disk under the store: a clear error naming the store, a non-zero exit, and
/// the store still intact (integrity check passes, finished runs and scores unchanged). Uses small
/// tmpfs mounts, so it needs root (CI runs as root).
final class DiskFailureTests: XCTestCase {
    func sh(_ cmd: String) -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", cmd]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try? p.run()
        p.waitUntilExit()
        return p.terminationStatus
    }

    func testFullAndReadOnlyDisk() throws {
        let data = try sharedData()
        let dir = tempDir("disk")
        let mnt = "\(dir)/mnt"
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        guard getuid() == 0, sh("mount -t tmpfs -o size=4m tmpfs '\(mnt)'") == 0 else {
            if ProcessInfo.processInfo.environment["CI"] == "true" { XCTFail("cannot mount a tmpfs (needs root)") }
            throw XCTSkip("needs root to mount a tmpfs")
        }
        defer { _ = sh("umount -l '\(mnt)'"); try? FileManager.default.removeItem(atPath: dir) }
        try miniSpec.write(toFile: "\(dir)/mini.yaml", atomically: true, encoding: .utf8)
        let db = "\(mnt)/store.sqlite"
        XCTAssertEqual(try runCLI(["sweep", "\(dir)/mini.yaml", "--profile", "smoke", "--workers", "1", "--db", db, "--data-dir", data,
                                   "--checkpoints", "\(dir)/ck"]).terminationStatus, 0)
        func snapshot() throws -> (String, [String]) {
            let s = try SQLiteDB(path: db, readOnly: true)
            let ok = try s.query("PRAGMA integrity_check").first?["integrity_check"]?.text ?? "?"
            let rows = try s.query("SELECT runs.cell, runs.seed, kind, metric, value FROM scores JOIN runs ON runs.id = run_id ORDER BY 1, 2, 3, 4")
                .map { "\($0["cell"]!.text!)#\($0["seed"]!.int!)#\($0["kind"]!.text!)#\($0["metric"]!.text!)#\($0["value"]!.double!)" }
            return (ok, rows)
        }
        let before = try snapshot()
        XCTAssertEqual(before.0, "ok")
        XCTAssertEqual(before.1.count, 24)  // 8 runs × best/last × (CB: accuracy, macro-F1; RTE: accuracy)
        // Another spec's runs must be inserted: fill the disk first.
        let other = miniSpec.replacingOccurrences(of: "spec: mini", with: "spec: mini2").replacingOccurrences(of: "seeds: [1, 2]", with: "seeds: [1, 2, 3, 4, 5, 6, 7, 8, 9]")
        try other.write(toFile: "\(dir)/mini2.yaml", atomically: true, encoding: .utf8)
        _ = sh("dd if=/dev/zero of='\(mnt)/filler' bs=4k 2>/dev/null")
        let (full, fullErr) = try runCapture(["sweep", "\(dir)/mini2.yaml", "--profile", "smoke", "--db", db, "--data-dir", data, "--checkpoints", "\(dir)/ck2"])
        XCTAssertNotEqual(full, 0)
        XCTAssertTrue(fullErr.contains(db) && fullErr.contains("disk is full"), fullErr)
        try FileManager.default.removeItem(atPath: "\(mnt)/filler")
        XCTAssertEqual(try snapshot().0, "ok")
        XCTAssertEqual(try snapshot().1, before.1)
        // Read-only file system.
        XCTAssertEqual(sh("mount -o remount,ro '\(mnt)'"), 0)
        let (ro, roErr) = try runCapture(["sweep", "\(dir)/mini2.yaml", "--profile", "smoke", "--db", db, "--data-dir", data, "--checkpoints", "\(dir)/ck3"])
        XCTAssertNotEqual(ro, 0)
        XCTAssertTrue(roErr.contains(db) && (roErr.contains("read-only") || roErr.contains("cannot open")), roErr)
        XCTAssertEqual(sh("mount -o remount,rw '\(mnt)'"), 0)
        XCTAssertEqual(try snapshot().0, "ok")
        XCTAssertEqual(try snapshot().1, before.1)
    }
}

/// Starts the CLI without waiting, stderr into the file `log`, one thread per process.
func startCLI(_ args: [String], log: String, cwd: String = repoRoot, env extra: [String: String] = [:]) throws -> Process {
    _ = FileManager.default.createFile(atPath: log, contents: nil)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: try binary())
    p.arguments = args
    p.currentDirectoryURL = URL(fileURLWithPath: cwd)
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle(forWritingAtPath: log)
    p.environment = ProcessInfo.processInfo.environment.merging(["PROMPTREPRO_THREADS": "1"].merging(extra) { _, b in b }) { _, b in b }
    try p.run()
    return p
}

/// A process is gone when it does not exist or is a zombie.
func processGone(_ pid: Int32) -> Bool {
    if kill(pid, 0) != 0 { return true }
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return true }
    return stat[stat.index(close, offsetBy: 2)] == "Z"
}

/// Sweeps that are interrupted (SIGINT), lose a worker (SIGKILL) or cannot find a model end with
/// one clear line, leave no worker behind and no run 'running'; a rerun finishes everything.
final class SweepInterruptTests: XCTestCase {
    func testInterruptDeadWorkerAndResume() throws {
        let data = try sharedData()
        let dir = tempDir("intr")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // 36 epochs: a run caught at epoch 1–6 has 30 left, far more than the sweep's up to 0.5 s
        // between polls before it passes the signal on (with 12, both workers sometimes finished
        // their runs first and nothing was left to release).
        try miniSpec.replacingOccurrences(of: "epochs: 4,", with: "epochs: 36,").write(toFile: "\(dir)/mini.yaml", atomically: true, encoding: .utf8)
        let db = "\(dir)/s.sqlite"
        let args = ["sweep", "\(dir)/mini.yaml", "--profile", "smoke", "--workers", "2", "--db", db, "--data-dir", data, "--checkpoints", "\(dir)/ck"]
        /// Waits until a run has trained an epoch but no more than 6 of its 36 (so it is still
        /// training when the signal lands, not finishing); returns the running rows' worker pids.
        func waitForRunning(_ p: Process) throws -> [Int32] {
            let deadline = Date().addingTimeInterval(120)
            while Date() < deadline && p.isRunning {
                if let rows = try? ResultsStore(path: db).db.query("SELECT worker_pid FROM runs WHERE status='running' AND epochs_done BETWEEN 1 AND 6"), !rows.isEmpty {
                    return try ResultsStore(path: db).db.query("SELECT worker_pid FROM runs WHERE status='running'").compactMap { $0["worker_pid"]?.int.map(Int32.init) }
                }
                Thread.sleep(forTimeInterval: 0.05)
            }
            XCTFail("no run was running")
            return []
        }

        // SIGINT: workers stop within seconds, their runs go back to pending with nothing stored.
        let first = try startCLI(args, log: "\(dir)/first.log")
        let workers = try waitForRunning(first)
        XCTAssertFalse(workers.isEmpty)
        kill(first.processIdentifier, SIGINT)
        let t0 = Date()
        while first.isRunning && Date().timeIntervalSince(t0) < 10 { Thread.sleep(forTimeInterval: 0.05) }
        XCTAssertFalse(first.isRunning, "the sweep did not stop within 10 s of SIGINT")
        if first.isRunning { kill(first.processIdentifier, SIGKILL) }
        first.waitUntilExit()
        print("interrupt: sweep gone \(String(format: "%.2f", Date().timeIntervalSince(t0))) s after SIGINT")
        for w in workers { XCTAssertTrue(processGone(w), "worker \(w) survived the interrupt") }
        XCTAssertEqual(first.terminationStatus, 128 + SIGINT)
        let log1 = try String(contentsOfFile: "\(dir)/first.log", encoding: .utf8)
        XCTAssertTrue(log1.contains("interrupted: ") && log1.contains("runs back to pending; rerun the same command to resume"), log1)
        let s = try ResultsStore(path: db)
        XCTAssertEqual(try s.counts()["running"] ?? 0, 0)
        let released = try s.db.query("SELECT id, worker, worker_pid FROM runs WHERE status='pending' AND attempts > 0")
        XCTAssertFalse(released.isEmpty)
        XCTAssertTrue(log1.contains("interrupted: \(released.count) runs back to pending"), log1)
        for r in released {
            XCTAssertEqual(r["worker"], .null)
            XCTAssertEqual(r["worker_pid"], .null)
            XCTAssertEqual(try s.db.query("SELECT COUNT(*) AS n FROM epochs WHERE run_id=?", [r["id"]!]).first?["n"]?.int, 0, "partial results stored")
        }

        // A worker killed with SIGKILL: one line with a hint, its run back to pending, exit 1.
        let second = try startCLI(args, log: "\(dir)/second.log")
        let victims = try waitForRunning(second)
        if let v = victims.first { kill(v, SIGKILL) }
        second.waitUntilExit()
        let log2 = try String(contentsOfFile: "\(dir)/second.log", encoding: .utf8)
        XCTAssertEqual(second.terminationStatus, 1)
        XCTAssertEqual(log2.components(separatedBy: "\n").filter { $0.contains("died (signal 9)") && $0.contains("rerun the same command") }.count, 1, log2)
        XCTAssertEqual(try s.counts()["running"] ?? 0, 0, log2)

        // The rerun finishes everything and deletes every checkpoint.
        let (status, log3) = try runCapture(args, env: ["PROMPTREPRO_THREADS": "1"])
        XCTAssertEqual(status, 0, log3)
        XCTAssertEqual(try s.counts()["done"], 8)
        XCTAssertEqual(try s.db.query("SELECT COUNT(*) AS n FROM runs").first?["n"]?.int, 8)
        let left = try FileManager.default.contentsOfDirectory(atPath: "\(dir)/ck")
        XCTAssertTrue(left.isEmpty, "checkpoints left after the runs finished: \(left)")
    }

    /// A data directory without a split's file is refused before anything is planned, also with
    /// --allow-unpinned (which accepts other contents, not no file): the sweep had superseded every
    /// finished run and planned runs that all failed ("validation split not found").
    func testSweepRefusesAMissingSplitEvenUnpinned() throws {
        let data = try sharedData()
        let dir = tempDir("missingsplit")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try miniSpec.write(toFile: "\(dir)/mini.yaml", atomically: true, encoding: .utf8)
        let db = "\(dir)/s.sqlite"
        func sweep(_ dataDir: String, _ extra: [String] = []) throws -> (Int32, String) {
            try runCapture(["sweep", "\(dir)/mini.yaml", "--profile", "smoke", "--workers", "1", "--db", db, "--data-dir", dataDir, "--checkpoints", "\(dir)/ck"] + extra)
        }
        XCTAssertEqual(try sweep(data).0, 0)
        try FileManager.default.createDirectory(atPath: "\(dir)/data/superglue/cb", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "\(data)/superglue/cb/train.jsonl", toPath: "\(dir)/data/superglue/cb/train.jsonl")
        for extra in [["--allow-unpinned"], ["--allow-unpinned", "--dry-run"]] {
            let (status, err) = try sweep("\(dir)/data", extra)
            XCTAssertNotEqual(status, 0, err)
            XCTAssertTrue(err.contains("no cb validation file") && err.contains("nothing planned, no stored run superseded"), err)
        }
        XCTAssertEqual(try ResultsStore(path: db).counts(), ["done": 8])
        XCTAssertEqual(try ResultsStore(path: db).db.query("SELECT COUNT(*) AS n FROM runs WHERE status='superseded'").first?["n"]?.int, 0)
    }

    /// A read of an export compares the data files and manifests its runs read with those it finds
    /// now, as a store read does: after a validation row changed, `compare` from the export had
    /// shown the old numbers (and `report` the old numbers beside reference rows of the new data).
    func testExportReadLeavesOutRunsOfChangedData() throws {
        let data = try sharedData()
        let dir = tempDir("exportinputs")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try miniSpec.write(toFile: "\(dir)/mini.yaml", atomically: true, encoding: .utf8)
        for task in ["cb", "rte"] {
            try FileManager.default.createDirectory(atPath: "\(dir)/data/superglue", withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: "\(data)/superglue/\(task)", toPath: "\(dir)/data/superglue/\(task)")
        }
        let db = "\(dir)/s.sqlite"
        XCTAssertEqual(try runCapture(["sweep", "\(dir)/mini.yaml", "--profile", "smoke", "--workers", "1", "--db", db, "--data-dir", "\(dir)/data",
                                       "--checkpoints", "\(dir)/ck"]).0, 0)
        var (status, err) = try runCapture(["export", "\(dir)/mini.yaml", "--profile", "smoke", "--db", db, "--results-dir", "\(dir)/res", "--data-dir", "\(dir)/data"])
        XCTAssertEqual(status, 0, err)
        let cells = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/res/mini-smoke.cells.json"))) as? [[String: Any]]
        XCTAssertTrue(cells?.allSatisfy { ($0["runInputs"] as? [String: Any])?.count == 2 } == true, "every cell records its runs' inputs")
        func compare() throws -> (String, String) {
            let args = ["compare", "--spec", "\(dir)/mini.yaml", "--method", "dpt", "--baseline", "pt", "--db", "\(dir)/none.sqlite",
                        "--results-dir", "\(dir)/res", "--data-dir", "\(dir)/data", "--profile", "smoke"]
            return (try runStdout(args).1, try runCapture(args).1)
        }
        var (out, notes) = try compare()
        XCTAssertFalse(notes.contains("changed here since"), notes)
        XCTAssertTrue(out.contains("| cb |") && out.contains("| rte |"), out)
        // One validation label of CB changed.
        let val = "\(dir)/data/superglue/cb/val.jsonl"
        var lines = try String(contentsOfFile: val, encoding: .utf8).components(separatedBy: "\n")
        let first = lines[0]
        lines[0] = first.replacingOccurrences(of: "\"label\": \"contradiction\"", with: "\"label\": \"entailment\"")
        XCTAssertNotEqual(lines[0], first, "the shared CB validation file's first row is a contradiction")
        try lines.joined(separator: "\n").write(toFile: val, atomically: true, encoding: .utf8)
        (out, notes) = try compare()
        XCTAssertTrue(notes.contains("2 cells of") && notes.contains("ran on a data file or few-shot manifest that has changed here since"), notes)
        XCTAssertFalse(out.contains("| cb |"), out)
        XCTAssertTrue(out.contains("| rte |"), out)
    }

    /// The dry run's checkpoint estimate follows the optimizer: trainable × 4 B × 3 with AdamW
    /// (the tensors and two moments), × 2 at most with Adafactor (one second moment, factored for
    /// matrices). By hand: PT n = 500 on the embedded t5-tiny (d_model 64) trains 32,000 values:
    /// 384,000 B with AdamW, 256,000 B with Adafactor.
    func testDryRunCheckpointEstimateFollowsTheOptimizer() throws {
        let data = try sharedData()
        let dir = tempDir("adafactor-estimate")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for (optimizer, expected) in [("adamw-torch", "checkpoints ≈ 384.0 KB at peak"), ("adafactor", "checkpoints ≈ 256.0 KB at peak")] {
            try miniSpec.replacingOccurrences(of: "  - {name: dpt, method: dpt, n: 8, r: 2}\n  - {name: pt, method: pt, n: 8}", with: "  - {name: pt, method: pt, n: 500}")
                .replacingOccurrences(of: "tasks: [cb, rte]", with: "tasks: [cb]").replacingOccurrences(of: "seeds: [1, 2]", with: "seeds: [1]")
                .replacingOccurrences(of: "max_source_length: 96}", with: "max_source_length: 96, optimizer: \(optimizer)}")
                .write(toFile: "\(dir)/\(optimizer).yaml", atomically: true, encoding: .utf8)
            let (status, plan) = try runStdout(["sweep", "\(dir)/\(optimizer).yaml", "--profile", "smoke", "--workers", "1", "--db", "\(dir)/s.sqlite",
                                                "--data-dir", data, "--checkpoints", "\(dir)/ck", "--dry-run"])
            XCTAssertEqual(status, 0, plan)
            XCTAssertTrue(plan.contains("1 runs") || plan.contains("1 run"), plan)
            XCTAssertTrue(plan.contains(expected), "\(optimizer): \(plan)")
        }
    }

    /// --dry-run reports per cell what a sweep would do and changes nothing; a real sweep skips a
    /// missing model with one line; full fine-tuning artifacts are kept only with --keep-artifacts.
    func testDryRunMissingModelAndArtifacts() throws {
        let data = try sharedData()
        let dir = tempDir("dry")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let db = "\(dir)/s.sqlite"
        func args(_ spec: String, _ extra: [String] = []) -> [String] {
            ["sweep", "\(dir)/\(spec).yaml", "--profile", "smoke", "--workers", "2", "--db", db, "--data-dir", data, "--checkpoints", "\(dir)/ck"] + extra
        }
        try miniSpec.write(toFile: "\(dir)/mini.yaml", atomically: true, encoding: .utf8)
        XCTAssertEqual(try runCapture(args("mini"), env: ["PROMPTREPRO_THREADS": "1"]).0, 0)
        // PT's prompt length changes (4 runs rerun) and a model column whose checkpoint is missing.
        try miniSpec.replacingOccurrences(of: "{name: pt, method: pt, n: 8}", with: "{name: pt, method: pt, n: 6}")
            .replacingOccurrences(of: "models: [t5-small]", with: "models: [t5-small, t5-base]")
            .replacingOccurrences(of: "{t5-small: \"embedded:t5-tiny\"}", with: "{t5-small: \"embedded:t5-tiny\", t5-base: \"\(dir)/no-such-model\"}")
            .write(toFile: "\(dir)/edit.yaml", atomically: true, encoding: .utf8)
        let before = try Data(contentsOf: URL(fileURLWithPath: db))
        let (planStatus, plan) = try runStdout(args("edit", ["--dry-run"]))
        XCTAssertEqual(planStatus, 0, plan)
        print(plan)
        for f in ["16 runs, 4 to run", "4 rerun (identity changed), 4 done, 8 skipped (model missing)", "pt|cb|t5-small|k8", "rerun (identity changed) 1,2",
                  "dpt|cb|t5-small|k8", "done 1,2", "\(dir)/no-such-model: MISSING, 8 runs would be skipped", "s per epoch (measured)", "checkpoints ≈"] {
            XCTAssertTrue(plan.contains(f), "plan lacks '\(f)'")
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: db)), before, "--dry-run changed the store")
        XCTAssertEqual(try ResultsStore(path: db).counts(), ["done": 8])

        // The real sweep: one line for the missing model, its runs never inserted, exit 1.
        let (status, log) = try runCapture(args("edit"), env: ["PROMPTREPRO_THREADS": "1"])
        XCTAssertEqual(status, 1, log)
        XCTAssertEqual(log.components(separatedBy: "\n").filter { $0.contains("no-such-model") }.count, 2, log)  // the skip line and the summary
        XCTAssertTrue(log.contains("skipping model t5-base (\(dir)/no-such-model): 8 runs not started; not found in:"), log)
        XCTAssertFalse(log.contains("failed:"), log)
        let s = try ResultsStore(path: db)
        XCTAssertEqual(try s.db.query("SELECT COUNT(*) AS n FROM runs WHERE model='t5-base'").first?["n"]?.int, 0)
        XCTAssertEqual(try s.counts(), ["done": 8])

        // The edit reverted: the dry run plans no rerun for PT's n = 8 runs, which a sweep takes
        // back from history (it said "rerun (identity changed)" while the sweep trained nothing).
        let (revertStatus, revert) = try runStdout(args("mini", ["--dry-run"]))
        XCTAssertEqual(revertStatus, 0, revert)
        XCTAssertTrue(revert.contains("8 runs, 0 to run") && revert.contains("4 taken back from history"), revert)
        let (rs, rlog) = try runCapture(args("mini"), env: ["PROMPTREPRO_THREADS": "1"])
        XCTAssertEqual(rs, 0, rlog)
        XCTAssertTrue(rlog.contains("4 finished runs of these settings taken back from history instead of rerun"), rlog)
        XCTAssertEqual(try s.counts(spec: "mini", profile: "smoke"), ["done": 8])
        // Pending rows planned under an edit never trained (a shard of PT n = 6): the dry run of
        // the spec as it is calls PT's runs pending, not "rerun (identity changed)", which said
        // a finished result would be thrown away.
        try miniSpec.replacingOccurrences(of: "{name: pt, method: pt, n: 8}", with: "{name: pt, method: pt, n: 6}")
            .write(toFile: "\(dir)/n6.yaml", atomically: true, encoding: .utf8)
        XCTAssertEqual(try runCapture(["shard", "\(dir)/n6.yaml", "--profile", "smoke", "--shards", "1", "--dir", "\(dir)/sh", "--data-dir", data]).0, 0)
        let (shardPlanStatus, shardPlan) = try runStdout(args("mini", ["--dry-run"]).map { $0 == db ? "\(dir)/sh/shard-0.sqlite" : $0 })
        XCTAssertEqual(shardPlanStatus, 0, shardPlan)
        XCTAssertTrue(shardPlan.contains("8 runs, 8 to run") && shardPlan.contains("8 pending") && !shardPlan.contains("identity changed"), shardPlan)

        // Full fine-tuning keeps its final weights only with --keep-artifacts.
        let ft = miniSpec.replacingOccurrences(of: "spec: mini", with: "spec: ftmini")
            .replacingOccurrences(of: "  - {name: dpt, method: dpt, n: 8, r: 2}\n  - {name: pt, method: pt, n: 8}", with: "  - {name: ft, method: ft, train: {lr: 1.0e-4}}")
            .replacingOccurrences(of: "tasks: [cb, rte]", with: "tasks: [cb]").replacingOccurrences(of: "seeds: [1, 2]", with: "seeds: [1]")
            .replacingOccurrences(of: "epochs: 4", with: "epochs: 1")
        try ft.write(toFile: "\(dir)/ftmini.yaml", atomically: true, encoding: .utf8)
        let arts = "\(dir)/artifacts/ftmini-smoke"
        XCTAssertEqual(try runCapture(args("ftmini"), env: ["PROMPTREPRO_THREADS": "1"]).0, 0)
        XCTAssertEqual((try? FileManager.default.contentsOfDirectory(atPath: arts))?.count ?? 0, 0, "FT artifact written without --keep-artifacts")
        XCTAssertEqual(try runCapture(args("ftmini", ["--keep-artifacts"]).map { $0 == db ? "\(dir)/keep.sqlite" : $0 }, env: ["PROMPTREPRO_THREADS": "1"]).0, 0)
        let kept = try FileManager.default.contentsOfDirectory(atPath: arts)
        XCTAssertEqual(kept.count, 1)
        XCTAssertNotNil(kept.first?.range(of: #"^ft_cb_t5-small_k8-s1-[0-9a-f]{12}-store-[0-9a-f]{12}\.safetensors$"#, options: .regularExpression), "\(kept)")
    }
}

/// Several processes that find an empty cache generate the embedded backbones at once: every one
/// succeeds and the cache ends with one complete copy of each model and no temporary files.
final class ConcurrentCacheTests: XCTestCase {
    func testConcurrentEmbeddedGeneration() throws {
        let dir = tempDir("cache")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for round in 0..<3 {
            let cache = "\(dir)/cache-\(round)"
            var procs: [(Process, String)] = []
            for i in 0..<8 {
                let log = "\(dir)/info-\(round)-\(i).log"
                procs.append((try startCLI(["info", "--model", i % 2 == 0 ? "embedded:t5-tiny" : "embedded:gpt2-tiny"], log: log, cwd: dir,
                                           env: ["PROMPTREPRO_CACHE": cache]), log))
            }
            for (p, log) in procs {
                p.waitUntilExit()
                XCTAssertEqual(p.terminationStatus, 0, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
            }
            let entries = try FileManager.default.contentsOfDirectory(atPath: "\(cache)/embedded").sorted()
            XCTAssertEqual(entries, ["gpt2-tiny-v1", "t5-tiny-v1"], "round \(round)")
            for e in entries {
                XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: "\(cache)/embedded/\(e)").sorted(),
                               ["config.json", "model.safetensors", "tokenizer_config.json"])
            }
            if round > 0 {
                for e in entries {
                    XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: "\(cache)/embedded/\(e)/model.safetensors")),
                                   try Data(contentsOf: URL(fileURLWithPath: "\(dir)/cache-0/embedded/\(e)/model.safetensors")))
                }
            }
        }
    }
}

extension StoreTests {
    /// A plain RFC 4180 reader (quoted fields, doubled quotes inside them), written for the test:
    /// rows of fields.
    static func rfc4180(_ text: String) -> [[String]] {
        var rows: [[String]] = [], row: [String] = [], field = "", quoted = false, wasQuote = false
        for ch in text.unicodeScalars {
            if quoted {
                if ch == "\"" { quoted = false; wasQuote = true } else { field.unicodeScalars.append(ch) }
                continue
            }
            switch ch {
            case "\"": if wasQuote { field += "\"" }; quoted = true
            case ",": row.append(field); field = ""
            case "\n": row.append(field); rows.append(row); row = []; field = ""
            default: field.unicodeScalars.append(ch)
            }
            wasQuote = false
        }
        if !field.isEmpty || !row.isEmpty { row.append(field); rows.append(row) }
        return rows
    }
}
