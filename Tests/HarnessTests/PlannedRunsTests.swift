import Foundation
import Harness
import Models
import Store
import Support
import TestSupport
import Training
import XCTest

/// Reads count only the runs a spec plans now: a k or seed taken out of the spec, or a config
/// edited since the sweep, leaves its stored rows out of `cellResults(planned:)` (hand-set scores),
/// `staleRuns` names them, and `supersedeUnplanned` moves the unplanned ones (not evaluated or
/// running rows) to history.
final class PlannedRunsTests: XCTestCase {
    func spec(_ dir: String, _ name: String, k: String, seeds: String, n: Int) throws -> ExperimentSpec {
        let text = """
        spec: plan
        paper: dpt
        methods:
          - {name: pt, method: pt, n: \(n)}
        tasks: [cb]
        models: [t5-small]
        seeds: \(seeds)
        k: \(k)
        profiles:
          smoke:
            models: {t5-small: "embedded:t5-tiny"}
            train: {epochs: 1, batch_size: 4}
        """
        try text.write(toFile: "\(dir)/\(name).yaml", atomically: true, encoding: .utf8)
        return try ExperimentSpec.load("\(dir)/\(name).yaml")
    }

    /// Finishes every pending run of `s` as done with score `v` (accuracy, best and last epoch).
    func finishAll(_ s: ResultsStore, _ v: Double) throws {
        while let c = try s.claim(worker: "t", pid: getpid()) {
            try s.complete(c.id, result: TrainResult(config: c.spec.config, status: .done, divergedAtStep: nil, bestEpoch: 1, best: ["accuracy": v],
                                                     last: ["accuracy": v], history: [], trainableParams: 1, trainExamples: 8, evalExamples: 8,
                                                     dataFiles: [:], manifest: nil, smoke: true, predictions: ["0"]))
        }
    }

    func testReadsFollowTheSpecAsItIsNow() throws {
        let dir = tempDir("plan")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let s = try ResultsStore(path: "\(dir)/a.sqlite")
        let swept = try spec(dir, "a", k: "[16, 32]", seeds: "[1, 2, 3]", n: 8)
        let runs = try swept.expand(profile: "smoke")
        XCTAssertEqual(runs.count, 6)
        try s.insertPending(runs)
        // Scores: k16 seeds 1–3 → 10, 20, 30; k32 → 40, 50, 60.
        while let c = try s.claim(worker: "t", pid: getpid()) {
            let v = Double((c.spec.k == 16 ? 0 : 30) + 10 * c.spec.seed)
            let r = TrainResult(config: c.spec.config, status: .done, divergedAtStep: nil, bestEpoch: 1, best: ["accuracy": v], last: ["accuracy": v],
                                history: [], trainableParams: 10, trainExamples: 8, evalExamples: 8, dataFiles: [:], manifest: nil, smoke: true, predictions: ["0"])
            try s.complete(c.id, result: r)
        }
        // Unfiltered (as before): both k cells, three seeds each.
        XCTAssertEqual(try s.cellResults(spec: "plan", profile: "smoke").map { $0.best["accuracy"]!.mean }, [20, 50])

        // The spec now lists k 16 and seeds 1, 2: one cell, mean (10 + 20) / 2 = 15.
        let narrowed = try spec(dir, "b", k: "[16]", seeds: "[1, 2]", n: 8).plannedRuns(profile: "smoke", store: s)
        let cells = try s.cellResults(spec: "plan", profile: "smoke", planned: narrowed)
        XCTAssertEqual(cells.map(\.k), [16])
        XCTAssertEqual(cells.first?.best["accuracy"]?.mean, 15)
        XCTAssertEqual(cells.first?.seeds, [1, 2])
        let stale = try s.staleRuns(spec: "plan", profile: "smoke", planned: narrowed)
        XCTAssertEqual(stale.count, 4)  // k16 seed 3, k32 seeds 1–3
        XCTAssertTrue(stale.allSatisfy { $0.reason == .unplanned })

        // The same runs with another method config (n 4), not re-swept: none counts.
        let edited = try spec(dir, "c", k: "[16]", seeds: "[1, 2]", n: 4).plannedRuns(profile: "smoke", store: s)
        XCTAssertTrue(try s.cellResults(spec: "plan", profile: "smoke", planned: edited).isEmpty)
        XCTAssertEqual(try s.staleRuns(spec: "plan", profile: "smoke", planned: edited).filter { $0.reason == .configChanged }.count, 2)

        // An evaluated row is never superseded; a running one is left to its worker. Only unplanned
        // pending and failed rows go to history: finished ones stay current (left out of reads),
        // so a spec that lists them again reuses them. An evaluated row counts only at a task,
        // model and k the spec runs, in a cell it does not train: here k 32 is out of the spec.
        try s.db.query("UPDATE runs SET status='evaluated' WHERE k=32 AND seed=1")
        try s.db.query("UPDATE runs SET status='running' WHERE k=32 AND seed=2")
        try s.db.query("UPDATE runs SET status='failed' WHERE k=32 AND seed=3")
        XCTAssertEqual(try s.cellResults(spec: "plan", profile: "smoke", planned: narrowed).map { $0.best["accuracy"]!.mean }, [15])
        XCTAssertEqual(try s.supersedeUnplanned(spec: "plan", profile: "smoke", planned: narrowed), 1)  // k32 seed 3
        XCTAssertEqual(try s.counts(spec: "plan", profile: "smoke"), ["done": 3, "evaluated": 1, "running": 1])
        let outside = Set(try s.staleRuns(spec: "plan", profile: "smoke", planned: narrowed).map(\.id))
        XCTAssertEqual(try s.counts(spec: "plan", profile: "smoke", excluding: outside), ["done": 2])
        // An evaluated row of a variant of its own at k 16 counts; in the cell of the spec's own
        // variant it stood in for the trained runs (the gate passed on the baseline's adapters
        // stored as the new method's): it does not.
        XCTAssertNil(narrowed.staleReason(cell: "peft-pt|cb|t5-small|k16", seed: 1, sampleSeed: 1, configJSON: "{}", status: "evaluated"))
        XCTAssertEqual(narrowed.staleReason(cell: "pt|cb|t5-small|k16", seed: 1, sampleSeed: 1, configJSON: "{}", status: "evaluated"), .evaluatedInPlannedCell)
        XCTAssertEqual(narrowed.staleReason(cell: "peft-pt|cb|t5-small|k32", seed: 1, sampleSeed: 1, configJSON: "{}", status: "evaluated"), .unplanned)
        XCTAssertEqual(narrowed.staleReason(cell: "peft-pt|rte|t5-small|k16", seed: 1, sampleSeed: 1, configJSON: "{}", status: "evaluated"), .unplanned)
        XCTAssertEqual(try s.supersedeUnplanned(spec: "plan", profile: "smoke", planned: narrowed), 0)
        // The swept spec's own plan leaves out only the evaluated row, which sits in a cell it trains
        // (and the superseded run, which a sweep inserts anew).
        try s.db.query("UPDATE runs SET status='done' WHERE status='running'")
        let again = try swept.plannedRuns(profile: "smoke", store: s)
        XCTAssertEqual(try s.staleRuns(spec: "plan", profile: "smoke", planned: again).map(\.reason), [.evaluatedInPlannedCell])
        XCTAssertEqual(try s.insertPending(try swept.expand(profile: "smoke")), 1)
        // A searched variant's cell whose search has not chosen under the spec as it is now: its
        // rows ran at an earlier search's choice and do not count (they counted whatever their
        // settings, and the gate passed on them after the grid lost that point); an evaluated
        // adapter stored there does not count either (the cell is the spec's), while one of a
        // variant of its own at the cell's task, model and k does.
        var undecided = narrowed
        undecided.undecidedCells = ["pt|cb|t5-small|k32"]
        XCTAssertEqual(undecided.staleReason(cell: "pt|cb|t5-small|k32", seed: 9, sampleSeed: 9, configJSON: "{}", status: "done"), .searchUndecided)
        XCTAssertEqual(undecided.staleReason(cell: "pt|cb|t5-small|k32", seed: 9, sampleSeed: 9, configJSON: "{}", status: "evaluated"), .evaluatedInPlannedCell)
        XCTAssertNil(undecided.staleReason(cell: "peft-pt|cb|t5-small|k32", seed: 9, sampleSeed: 9, configJSON: "{}", status: "evaluated"))
        XCTAssertEqual(narrowed.staleReason(cell: "pt|cb|t5-small|k32", seed: 9, sampleSeed: 9, configJSON: "{}", status: "done"), .unplanned)
    }

    /// Re-sharding an edited spec into the same folder: the pending rows it no longer plans go to
    /// history (no shard worker trains them); the finished ones stay.
    func testReshardingSupersedesUnplannedPendingRuns() throws {
        let dir = tempDir("reshard")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let runs = try spec(dir, "a", k: "[16, 32]", seeds: "[1, 2]", n: 8).expand(profile: "smoke")
        let path = try ResultsStore.writeShards(runs, shards: 1, dir: "\(dir)/sh")[0]
        let s = try ResultsStore(path: path)
        try s.db.query("UPDATE runs SET status='done' WHERE k=32 AND seed=1")
        _ = try ResultsStore.writeShards(try spec(dir, "b", k: "[16]", seeds: "[1, 2]", n: 8).expand(profile: "smoke"), shards: 1, dir: "\(dir)/sh")
        XCTAssertEqual(try s.counts(spec: "plan", profile: "smoke"), ["pending": 2, "done": 1])

        // A grown run list re-sharded over 2 stores: every run stays in the shard that holds it, and
        // none is pending in two shards.
        let one = try spec(dir, "c", k: "[16]", seeds: "[1]", n: 8).expand(profile: "smoke") + spec(dir, "c2", k: "[32]", seeds: "[1]", n: 8).expand(profile: "smoke")
        let two = try spec(dir, "d", k: "[16, 32]", seeds: "[1, 2, 3]", n: 8).expand(profile: "smoke")
        let paths = try ResultsStore.writeShards(one, shards: 2, dir: "\(dir)/grow")
        let before = try paths.map { try ResultsStore(path: $0).db.query("SELECT cell, seed FROM runs").map { "\($0["cell"]!.text!)#\($0["seed"]!.int!)" } }
        XCTAssertEqual(before.map(\.count), [1, 1])
        _ = try ResultsStore.writeShards(two, shards: 2, dir: "\(dir)/grow")
        let after = try paths.map { try ResultsStore(path: $0).db.query("SELECT cell, seed FROM runs WHERE status='pending'").map { "\($0["cell"]!.text!)#\($0["seed"]!.int!)" } }
        XCTAssertEqual(after.map(\.count), [3, 3])
        XCTAssertTrue(Set(after[0]).isDisjoint(with: after[1]), "\(after)")
        XCTAssertTrue(Set(after[0]).isSuperset(of: before[0]) && Set(after[1]).isSuperset(of: before[1]), "\(before) \(after)")
    }

    /// The plan compares configs without `threads`, as the run identity does: a spec whose only edit
    /// is its thread count keeps its runs.
    func testThreadsDoNotMakeARunStale() throws {
        let dir = tempDir("planthreads")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var run = try spec(dir, "a", k: "[16]", seeds: "[1]", n: 8).expand(profile: "smoke")[0]
        let stored = run.config.json
        run.config.threads = 2
        let plan = PlannedRuns(runs: [run])
        XCTAssertNil(plan.staleReason(cell: run.cell, seed: 1, sampleSeed: 1, configJSON: stored, status: "done"))
        run.config.epochs = 7
        XCTAssertEqual(PlannedRuns(runs: [run]).staleReason(cell: run.cell, seed: 1, sampleSeed: 1, configJSON: stored, status: "done"), .configChanged)
    }

    /// `merge` keeps a run planned after the shard's (a spec edited since the shards were written):
    /// the shard's run of the old config joins as history; an older run here is replaced as before.
    func testMergeKeepsTheNewerPlannedRun() throws {
        let dir = tempDir("mergenewer")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let old = try spec(dir, "a", k: "[16]", seeds: "[1]", n: 8).expand(profile: "smoke")
        let shard = try ResultsStore(path: "\(dir)/shard.sqlite")
        try shard.insertPending(old)
        try finishAll(shard, 10)
        let main = try ResultsStore(path: "\(dir)/main.sqlite")
        try main.insertPending(try spec(dir, "b", k: "[16]", seeds: "[1]", n: 4).expand(profile: "smoke"))
        try main.db.query("UPDATE runs SET created_at='9999-01-01T00:00:00.000Z'")  // planned after the shard's run
        try finishAll(main, 20)
        XCTAssertEqual(try main.merge(from: "\(dir)/shard.sqlite"), 1)
        XCTAssertEqual(try main.cellResults(spec: "plan", profile: "smoke").first?.best["accuracy"]?.mean, 20)
        XCTAssertEqual(try main.db.query("SELECT status FROM runs ORDER BY id").map { $0["status"]!.text! }, ["done", "superseded"])
        // A run here planned before the shard's is replaced.
        try main.db.query("UPDATE runs SET created_at='2000-01-01T00:00:00.000Z' WHERE status='done'")
        try main.db.query("DELETE FROM runs WHERE status='superseded'")
        XCTAssertEqual(try main.merge(from: "\(dir)/shard.sqlite"), 1)
        XCTAssertEqual(try main.cellResults(spec: "plan", profile: "smoke").first?.best["accuracy"]?.mean, 10)
    }

    /// A shard of another spec file of the same name replaces finished runs here: merge names each
    /// one with the identity parts that differ (it printed a count only), and sweeping the store's
    /// own spec again takes the replaced runs back from history.
    func testMergeNamesTheRunsItReplaces() throws {
        let data = try sharedData()
        let dir = tempDir("mergenames")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func planned(_ name: String, n: Int, _ s: ResultsStore) throws -> [RunSpec] {
            try s.withIdentities(try spec(dir, name, k: "[16]", seeds: "[1]", n: n).expand(profile: "smoke"), dataDir: data,
                                 manifestDir: "\(repoRoot)/Baselines/manifests")
        }
        let main = try ResultsStore(path: "\(dir)/main.sqlite")
        try main.insertPending(try planned("b", n: 4, main))
        try main.db.query("UPDATE runs SET created_at='2000-01-01T00:00:00.000Z'")  // planned before the shard's run
        try finishAll(main, 20)
        let shard = try ResultsStore(path: "\(dir)/shard.sqlite")
        try shard.insertPending(try planned("a", n: 8, shard))
        try finishAll(shard, 10)
        let report = try main.mergeReporting(from: "\(dir)/shard.sqlite")
        XCTAssertEqual(report.merged, 1)
        XCTAssertEqual(report.replaced.count, 1)
        XCTAssertTrue(report.replaced.first?.contains("seed 1: the run here (done) went to history; the shard's differs in config") == true, "\(report.replaced)")
        XCTAssertEqual(try main.cellResults(spec: "plan", profile: "smoke").first?.best["accuracy"]?.mean, 10)
        let back = try main.insertPendingReporting(try planned("b", n: 4, main))
        XCTAssertEqual(back.restored, 1)
        XCTAssertEqual(try main.cellResults(spec: "plan", profile: "smoke").first?.best["accuracy"]?.mean, 20)
    }

    /// Two stores of one spec finished on hosts of different GEMM kernels (or thread counts): the
    /// same identity, other numerics. Merge keeps the run here, as before, and now names each
    /// run it did not take with both setups (it kept the first silently).
    func testMergeNamesSameRunsOfOtherNumerics() throws {
        let dir = tempDir("mergenumerics")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let runs = try spec(dir, "a", k: "[16]", seeds: "[1, 2]", n: 8).expand(profile: "smoke")
        let main = try ResultsStore(path: "\(dir)/main.sqlite"), shard = try ResultsStore(path: "\(dir)/shard.sqlite")
        for s in [main, shard] { try s.insertPending(runs) }
        try finishAll(main, 20)
        try finishAll(shard, 10)
        try main.db.query("UPDATE runs SET tool_version='promptrepro avx512 12x32 mc 4092 kc 384 nc 160 + openblas Zen', threads=2")
        try shard.db.query("UPDATE runs SET tool_version='promptrepro avx2 6x16 mc 4092 kc 256 nc 128 + openblas Zen', threads=2 WHERE seed=1")
        // Another mc / nc and a calibration's mark only: the same bits, nothing to say.
        try shard.db.query("UPDATE runs SET tool_version='promptrepro avx512 12x32 mc 2400 kc 384 nc 320 + openblas Zen (calibrated)', threads=2 WHERE seed=2")
        let report = try main.mergeReporting(from: "\(dir)/shard.sqlite")
        XCTAssertEqual(report.merged, 0)
        XCTAssertEqual(report.keptOtherNumerics, ["c seed 1: kept the run here (promptrepro avx512 12x32 kc 384 + openblas Zen; threads 2); the shard's ran under promptrepro avx2 6x16 kc 256 + openblas Zen; threads 2"].map {
            $0.replacingOccurrences(of: "c seed", with: "\(runs[0].cell) seed") })
        XCTAssertEqual(try main.cellResults(spec: "plan", profile: "smoke").first?.best["accuracy"]?.mean, 20)
        // A run without a recorded setup (an evaluated run stored before they were recorded)
        // cannot be compared: not named ("the shard's ran under unknown; threads ?").
        try shard.db.query("UPDATE runs SET tool_version=NULL, threads=NULL")
        XCTAssertEqual(try main.mergeReporting(from: "\(dir)/shard.sqlite").keptOtherNumerics, [])
    }

    /// A diverged run is listed, not averaged: its setup does not make the cell's statistics mixed
    /// (with seed 2 diverged under another kernel, `results` showed n = 1 and said the cell
    /// "averaged runs of different GEMM kernels"). Evaluated runs are averaged: they count.
    func testMixedNumericsCountsTheRunsThatAreAveraged() throws {
        let dir = tempDir("mixeddiverged")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let s = try ResultsStore(path: "\(dir)/a.sqlite")
        try s.insertPending(try spec(dir, "a", k: "[16]", seeds: "[1, 2]", n: 8).expand(profile: "smoke"))
        try finishAll(s, 10)
        try s.db.query("UPDATE runs SET tool_version='promptrepro avx512 12x32 mc 4092 kc 384 nc 160 + openblas Zen', threads=2")
        try s.db.query("UPDATE runs SET tool_version='promptrepro avx2 6x16 mc 4092 kc 256 nc 128 + openblas Zen', status='diverged' WHERE seed=2")
        XCTAssertEqual(try s.mixedNumerics(spec: "plan", profile: "smoke", planned: nil), [:])
        try s.db.query("UPDATE runs SET status='evaluated' WHERE seed=2")
        XCTAssertEqual(try s.mixedNumerics(spec: "plan", profile: "smoke", planned: nil).values.first?.count, 2)
        // Reads of the per-step log count finished training runs only (evaluated runs have no steps).
        XCTAssertEqual(try s.mixedNumerics(spec: "plan", profile: "smoke", planned: nil, statuses: ["done"]), [:])
        // A record without a setup (an evaluated run stored before they were recorded) cannot be compared.
        try s.db.query("UPDATE runs SET tool_version=NULL, threads=NULL WHERE seed=2")
        XCTAssertEqual(try s.mixedNumerics(spec: "plan", profile: "smoke", planned: nil), [:])
    }

    /// Reads list cells in the spec's order, not the store's row order: a store whose rows were
    /// inserted in another order (shards merged the other way round) printed its rows differently.
    func testReadsListCellsInTheSpecsOrder() throws {
        let dir = tempDir("order")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let s = try ResultsStore(path: "\(dir)/a.sqlite")
        let sp = try spec(dir, "a", k: "[16, 32]", seeds: "[1]", n: 8)
        let runs = try sp.expand(profile: "smoke")
        XCTAssertEqual(runs.map(\.k), [16, 32])
        try s.insertPending(Array(runs.reversed()))
        try finishAll(s, 10)
        XCTAssertEqual(try s.cellResults(spec: "plan", profile: "smoke").map(\.k), [32, 16])  // store order without a plan
        XCTAssertEqual(try s.cellResults(spec: "plan", profile: "smoke", planned: try sp.plannedRuns(profile: "smoke", store: s)).map(\.k), [16, 32])
    }

    /// Cells the plan does not list that reads still show (evaluated adapters' runs, `eval
    /// --adapter`) come after the planned ones, by cell name, whatever order the store holds them
    /// in (they followed the store's rows, which differ between stores merged in other orders).
    func testReadsListUnplannedCellsByNameAfterThePlannedOnes() throws {
        let dir = tempDir("orderunplanned")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let s = try ResultsStore(path: "\(dir)/a.sqlite")
        let all = try spec(dir, "a", k: "[16, 32, 64]", seeds: "[1]", n: 8).expand(profile: "smoke")
        try s.insertPending(Array(all.reversed()))  // store order: 64, 32, 16
        try finishAll(s, 10)
        let byK = Dictionary(uniqueKeysWithValues: all.map { ($0.k, $0.cell) })
        XCTAssertLessThan(byK[16]!, byK[64]!)  // the names sort as the k's, against the store's order
        // Evaluated adapters of a variant of their own ("zz" sorts after "pt") at k 16 and 64.
        try s.db.query("UPDATE runs SET status='evaluated', variant='zz', cell='zz' || substr(cell, 3) WHERE cell != ?", [.text(byK[32]!)])
        let plan = try spec(dir, "b", k: "[16, 32, 64]", seeds: "[1]", n: 8).plannedRuns(profile: "smoke", store: s)
        try s.db.query("DELETE FROM runs WHERE cell IN (?, ?)", [.text(byK[16]!), .text(byK[64]!)])  // the spec's own k 16 and 64 runs: none stored
        XCTAssertEqual(try s.cellResults(spec: "plan", profile: "smoke").map(\.k), [64, 32, 16])  // store order without a plan
        XCTAssertEqual(try s.cellResults(spec: "plan", profile: "smoke", planned: plan).map(\.k), [32, 16, 64])
    }

    /// A shard run that failed (a worker refused on its data's pin before training; its identity
    /// planned without the data says "missing") replaced the finished run here as one of other
    /// data: a failed run now joins as history and the finished run stays.
    func testAFailedShardRunNeverReplacesAFinishedRun() throws {
        let data = try sharedData()
        let dir = tempDir("mergefailed")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let sp = try spec(dir, "a", k: "[16]", seeds: "[1]", n: 8), manifests = "\(repoRoot)/Baselines/manifests"
        let main = try ResultsStore(path: "\(dir)/main.sqlite")
        try main.insertPending(try main.withIdentities(try sp.expand(profile: "smoke"), dataDir: data, manifestDir: manifests))
        try main.db.query("UPDATE runs SET created_at='2000-01-01T00:00:00.000Z'")  // planned before the shard's run
        try finishAll(main, 20)
        let shard = try ResultsStore(path: "\(dir)/shard.sqlite")
        try shard.insertPending(try shard.withIdentities(try sp.expand(profile: "smoke"), dataDir: "\(dir)/nowhere", manifestDir: manifests))
        let c = try XCTUnwrap(try shard.claim(worker: "t", pid: getpid()))
        try shard.fail(c.id, error: "data differs from its pin")
        let report = try main.mergeReporting(from: "\(dir)/shard.sqlite")
        XCTAssertEqual(report.replaced, [])
        XCTAssertTrue(report.history.first?.contains("seed 1: kept the finished run here (done); the shard's run failed (it differs in data)") == true, "\(report.history)")
        XCTAssertEqual(try main.cellResults(spec: "plan", profile: "smoke").first?.best["accuracy"]?.mean, 20)
        XCTAssertEqual(try main.db.query("SELECT status, superseded_status FROM runs ORDER BY id").map { "\($0["status"]!.text!)/\($0["superseded_status"]?.text ?? "-")" },
                       ["done/-", "superseded/failed"])
        // A finished shard run of other data still replaces it, as before.
        try shard.db.query("UPDATE runs SET status='pending'")
        try finishAll(shard, 10)
        XCTAssertEqual(try main.mergeReporting(from: "\(dir)/shard.sqlite").replaced.count, 1)
        XCTAssertEqual(try main.cellResults(spec: "plan", profile: "smoke").first?.best["accuracy"]?.mean, 10)
    }

    /// A data file edited since the sweep (here in a copy of the data directory, as `--data-dir`
    /// gives it) leaves the rows run on the old file out of reads, as a config or task-file edit
    /// does; a read that cannot see the file (no data directory, or the file not there) compares
    /// the other parts only. `results` showed the old CB rows as current, and the gate passed.
    func testReadsLeaveOutRowsRunOnOtherInputs() throws {
        let shared = try sharedData()
        let dir = tempDir("planinputs")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = "\(dir)/data", cb = "\(dir)/data/superglue/cb"
        try FileManager.default.createDirectory(atPath: cb, withIntermediateDirectories: true)
        for f in ["train.jsonl", "val.jsonl"] { try FileManager.default.copyItem(atPath: "\(shared)/superglue/cb/\(f)", toPath: "\(cb)/\(f)") }
        let manifests = "\(repoRoot)/Baselines/manifests"
        let s = try ResultsStore(path: "\(dir)/a.sqlite")
        let sp = try spec(dir, "a", k: "[16]", seeds: "[1, 2]", n: 8)
        try s.insertPending(try s.withIdentities(try sp.expand(profile: "smoke"), dataDir: data, manifestDir: manifests))
        try finishAll(s, 10)
        func counted(_ dataDir: String?) throws -> (seeds: [Int], stale: [StaleRun]) {
            let plan = try sp.plannedRuns(profile: "smoke", store: s, dataDir: dataDir, manifestDir: manifests)
            return (try s.cellResults(spec: "plan", profile: "smoke", planned: plan).flatMap(\.seeds),
                    try s.staleRuns(spec: "plan", profile: "smoke", planned: plan))
        }
        XCTAssertEqual(try counted(data).seeds, [1, 2])
        // One validation label changed (same size, later modification time).
        var text = try String(contentsOfFile: "\(cb)/val.jsonl", encoding: .utf8)
        let range = try XCTUnwrap(text.range(of: "\"label\": \"contradiction\"") ?? text.range(of: "\"label\": \"entailment\""))
        text.replaceSubrange(range, with: text[range].contains("contradiction") ? "\"label\": \"entailment\"   " : "\"label\": \"contradiction\"")
        try text.write(toFile: "\(cb)/val.jsonl", atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(60)], ofItemAtPath: "\(cb)/val.jsonl")
        let after = try counted(data)
        XCTAssertEqual(after.seeds, [])
        XCTAssertEqual(after.stale.map(\.reason), [.inputsChanged, .inputsChanged])
        XCTAssertTrue(staleRunsNote(after.stale, spec: "plan", profile: "smoke")?.contains("2 run on other inputs") == true)
        // Not compared without the files: every row counts, as before.
        XCTAssertEqual(try counted(nil).seeds, [1, 2])
        XCTAssertEqual(try counted("\(dir)/nowhere").seeds, [1, 2])
        // The original file back: the rows count again.
        try FileManager.default.removeItem(atPath: "\(cb)/val.jsonl")
        try FileManager.default.copyItem(atPath: "\(shared)/superglue/cb/val.jsonl", toPath: "\(cb)/val.jsonl")
        XCTAssertEqual(try counted(data).seeds, [1, 2])
        // A checkpoint file that cannot be hashed (a dangling link beside the weights) leaves the
        // inputs uncompared, never the plan: a config edit still leaves the rows out (the whole
        // plan once fell back to counting every stored row, and an export wrote them).
        let model = "\(dir)/model"
        try FileManager.default.createDirectory(atPath: model, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: "\(model)/extra.safetensors", withDestinationPath: "\(dir)/nowhere.safetensors")
        let linked = try String(contentsOfFile: "\(dir)/a.yaml", encoding: .utf8).replacingOccurrences(of: "embedded:t5-tiny", with: model)
            .replacingOccurrences(of: "n: 8", with: "n: 4")
        try linked.write(toFile: "\(dir)/c.yaml", atomically: true, encoding: .utf8)
        let edited = try ExperimentSpec.load("\(dir)/c.yaml").plannedRuns(profile: "smoke", store: s, dataDir: data, manifestDir: manifests)
        XCTAssertEqual(try s.cellResults(spec: "plan", profile: "smoke", planned: edited).flatMap(\.seeds), [])
        XCTAssertEqual(Set(try s.staleRuns(spec: "plan", profile: "smoke", planned: edited).map(\.reason)), [.configChanged])

        // Runs planned where the data was not (a shard planned on a login node: "missing" in their
        // identity), then run by a worker that read it: a read that finds the data counts them.
        let t = try ResultsStore(path: "\(dir)/t.sqlite")
        try t.insertPending(try t.withIdentities(try sp.expand(profile: "smoke"), dataDir: "\(dir)/nowhere", manifestDir: manifests))
        XCTAssertTrue(try t.db.query("SELECT identity_json FROM runs").allSatisfy { $0["identity_json"]?.text?.contains("\"missing\"") == true })
        try finishAll(t, 10)
        let plan = try sp.plannedRuns(profile: "smoke", store: t, dataDir: data, manifestDir: manifests)
        XCTAssertEqual(try t.cellResults(spec: "plan", profile: "smoke", planned: plan).flatMap(\.seeds), [1, 2])
    }

    /// The checkpoint's config.json or tokenizer edited in place (GPT-2's `activation_function`
    /// or `layer_norm_epsilon`, a tokenizer's settings) moves every number while the weights stay:
    /// the identity hashed only the safetensors files, so the old rows stayed current and a sweep
    /// did not rerun them. Rows stored before the `model_files` part keep their run.
    func testAnEditedCheckpointConfigLeavesItsRowsOut() throws {
        let dir = tempDir("planmodelfiles")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let model = "\(dir)/model", data = try sharedData(), manifests = "\(repoRoot)/Baselines/manifests"
        try FileManager.default.copyItem(atPath: try EmbeddedBackbones.directory("t5-tiny"), toPath: model)
        let text = try String(contentsOfFile: "\(try spec(dir, "a", k: "[16]", seeds: "[1, 2]", n: 8).path)", encoding: .utf8)
        try text.replacingOccurrences(of: "embedded:t5-tiny", with: model).write(toFile: "\(dir)/m.yaml", atomically: true, encoding: .utf8)
        let sp = try ExperimentSpec.load("\(dir)/m.yaml")
        let s = try ResultsStore(path: "\(dir)/a.sqlite")
        let runs = try s.withIdentities(try sp.expand(profile: "smoke"), dataDir: data, manifestDir: manifests)
        XCTAssertTrue(runs[0].identityJSON!.contains("\"model_files\":\"config.json:"), runs[0].identityJSON!)
        try s.insertPending(runs)
        try finishAll(s, 10)
        func counted() throws -> (seeds: [Int], stale: [StaleRun]) {
            let plan = try sp.plannedRuns(profile: "smoke", store: s, dataDir: data, manifestDir: manifests)
            return (try s.cellResults(spec: "plan", profile: "smoke", planned: plan).flatMap(\.seeds),
                    try s.staleRuns(spec: "plan", profile: "smoke", planned: plan))
        }
        XCTAssertEqual(try counted().seeds, [1, 2])
        let original = try String(contentsOfFile: "\(model)/config.json", encoding: .utf8)
        var config = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(original.utf8)) as? [String: Any])
        XCTAssertNotNil(config["layer_norm_epsilon"])
        config["layer_norm_epsilon"] = 0.5
        try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys]).write(to: URL(fileURLWithPath: "\(model)/config.json"))
        let after = try counted()
        XCTAssertEqual(after.seeds, [])
        XCTAssertEqual(after.stale.map(\.reason), [.inputsChanged, .inputsChanged])
        // A worker given the planned run names the file that differs, with both hashes.
        let mismatch = try Worker.inputMismatch(runs[0], store: s, dataDir: data, manifestDir: manifests) ?? ""
        XCTAssertTrue(mismatch.hasPrefix("checkpoint files config.json (planned ") && !mismatch.contains("tokenizer"), mismatch)
        let rerun = try s.insertPendingReporting(try s.withIdentities(try sp.expand(profile: "smoke"), dataDir: data, manifestDir: manifests))
        XCTAssertEqual(rerun.superseded, 2, "the sweep reruns them")
        // A store whose rows were identified before the part: the same run when the rest agrees.
        try original.write(toFile: "\(model)/config.json", atomically: true, encoding: .utf8)
        // The shard index decides which shard a tensor is read from: it is one of the files.
        try "{\"weight_map\": {}}".write(toFile: "\(model)/model.safetensors.index.json", atomically: true, encoding: .utf8)
        XCTAssertTrue(try s.withIdentities([runs[0]], dataDir: data, manifestDir: manifests)[0].identityJSON!.contains("model.safetensors.index.json:"))
        try FileManager.default.removeItem(atPath: "\(model)/model.safetensors.index.json")
        let t = try ResultsStore(path: "\(dir)/t.sqlite")
        try t.insertPending(runs)
        for row in try t.db.query("SELECT id, identity_json FROM runs") {
            var o = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(row["identity_json"]!.text!.utf8)) as? [String: Any])
            o["model_files"] = nil
            let json = String(decoding: try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]), as: UTF8.self)
            try t.db.query("UPDATE runs SET identity=?, identity_json=? WHERE id=?", [.text(sha256Hex(json)), .text(json), row["id"]!])
        }
        try finishAll(t, 10)
        let again = try t.insertPendingReporting(try t.withIdentities(try sp.expand(profile: "smoke"), dataDir: data, manifestDir: manifests))
        XCTAssertEqual(again.inserted + again.superseded, 0)
        XCTAssertEqual(try t.db.query("SELECT identity FROM runs").compactMap { $0["identity"]?.text }.sorted(), runs.map { $0.identity! }.sorted())
    }

    /// The same shard merged again adds nothing: a run that joined as history (the run here was
    /// planned after it) joined again at every merge (5 → 10 → 15 … superseded rows).
    func testMergingAShardAgainAddsNoHistory() throws {
        let dir = tempDir("mergeagain")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let shard = try ResultsStore(path: "\(dir)/shard.sqlite")
        try shard.insertPending(try spec(dir, "a", k: "[16]", seeds: "[1, 2]", n: 8).expand(profile: "smoke"))
        try finishAll(shard, 10)
        let main = try ResultsStore(path: "\(dir)/main.sqlite")
        try main.insertPending(try spec(dir, "b", k: "[16]", seeds: "[1, 2]", n: 4).expand(profile: "smoke"))
        try main.db.query("UPDATE runs SET created_at='9999-01-01T00:00:00.000Z'")
        try finishAll(main, 20)
        let first = try main.mergeReporting(from: "\(dir)/shard.sqlite")
        XCTAssertEqual(first.merged, 2)
        XCTAssertEqual(first.history.count, 2)
        for _ in 0..<2 {
            let again = try main.mergeReporting(from: "\(dir)/shard.sqlite")
            XCTAssertEqual(again.merged, 0)
            XCTAssertEqual(again.history, [])
        }
        XCTAssertEqual(try main.db.query("SELECT status FROM runs ORDER BY id").map { $0["status"]!.text! }, ["done", "done", "superseded", "superseded"])
    }

    /// An export read under the current plan, as a store read counts rows (review of the first
    /// version, which dropped cells of evaluated adapters and whole cells for a seed taken out).
    func testExportedCellsFollowThePlan() throws {
        func cell(_ name: String, _ seeds: [Int], _ values: [Double], configs: String?, evaluated: Bool = false) -> CellResult {
            var c = CellResult(cell: name, variant: String(name.prefix { $0 != "|" }), method: "pt", task: "cb", model: "t5-small", k: 8, seeds: seeds,
                               statuses: [evaluated ? "evaluated" : "done": seeds.count], trainableParams: 1, best: ["accuracy": Stat(values)],
                               last: ["accuracy": Stat(values)], divergedSeeds: [], probe: nil)
            c.extras = ["paper_params": Stat(seeds.map { _ in 5 })]
            c.runConfigs = configs.map { h in Dictionary(uniqueKeysWithValues: seeds.map { (PlannedRuns.key(cell: name, seed: $0, sampleSeed: $0), h) }) }
            c.runStatuses = Dictionary(uniqueKeysWithValues: seeds.map { (PlannedRuns.key(cell: name, seed: $0, sampleSeed: $0), evaluated ? "evaluated" : "done") })
            return c
        }
        let plan = PlannedRuns([(PlannedRuns.key(cell: "a|cb", seed: 1, sampleSeed: 1), "h1"), (PlannedRuns.key(cell: "a|cb", seed: 2, sampleSeed: 2), "h1"),
                                (PlannedRuns.key(cell: "b|cb", seed: 1, sampleSeed: 1), "h1")])
        var a3 = cell("a|cb", [1, 2, 3], [10, 20, 60], configs: "h1")      // seed 3 taken out of the spec,
        a3.runStatuses?[PlannedRuns.key(cell: "a|cb", seed: 4, sampleSeed: 4)] = "diverged"  // and a diverged seed 4
        a3.statuses["diverged"] = 1
        a3.divergedSeeds = [4]
        a3.probe = [ProbePoint(epoch: 1, positive: 1, negative: 0, rank: 1)]
        let cells = [a3,
                     cell("b|cb", [1], [50], configs: "h2"),                  // run with another config
                     cell("c|cb", [1], [50], configs: "h1"),                  // a cell the spec no longer plans
                     cell("peft|cb", [1], [70], configs: "hx", evaluated: true),  // an evaluated adapter
                     cell("old|cb", [1], [40], configs: nil)]                 // an export from before the hashes
        let r = ExportedCells.current(cells, plan: plan)
        XCTAssertEqual(r.kept.map(\.cell), ["a|cb", "peft|cb", "old|cb"])
        XCTAssertEqual(r.stale, ["b|cb"])
        XCTAssertEqual(r.unplanned, ["c|cb"])
        XCTAssertEqual(r.seedsLeftOut, 2)
        let a = r.kept[0]
        XCTAssertEqual(a.seeds, [1, 2])
        // The status counts and diverged seeds are those of the planned runs (the marker said
        // "✗ diverged 1/4" for a seed the spec no longer has), and the probe's means over every
        // seed, which cannot be recomputed, are dropped.
        XCTAssertEqual(a.statuses, ["done": 2])
        XCTAssertEqual(a.divergedSeeds, [])
        XCTAssertNil(a.failureMarker)
        XCTAssertNil(a.probe)
        XCTAssertEqual(a.best["accuracy"]?.mean, 15)
        XCTAssertEqual(a.best["accuracy"]?.sampleStd ?? 0, 7.0710678, accuracy: 1e-6)
        XCTAssertEqual(a.extras?["paper_params"]?.n, 2)
        XCTAssertEqual(a.runConfigs?.count, 2)

        // Inputs: a cell whose runs read a data file or manifest other than the read finds now is
        // left out (a review: the export's old numbers showed beside reference rows of the edited
        // data); a part the read could not compute, or one stored as "missing", is not compared.
        var inputsPlan = plan
        inputsPlan.inputParts[PlannedRuns.key(cell: "a|cb", seed: 1, sampleSeed: 1)] = ["data.validation": "v.jsonl:new", "manifest": "m1"]
        var a2 = cell("a|cb", [1, 2], [10, 20], configs: "h1")
        a2.runInputs = [PlannedRuns.key(cell: "a|cb", seed: 1, sampleSeed: 1): ["data.validation": "v.jsonl:old", "manifest": "m1", "weights": "w"]]
        XCTAssertEqual(ExportedCells.current([a2], plan: inputsPlan).inputsChanged, ["a|cb"])
        XCTAssertEqual(ExportedCells.current([a2], plan: inputsPlan).kept.count, 0)
        XCTAssertEqual(ExportedCells.current([a2], plan: plan).kept.count, 1)  // nothing computed: not compared
        a2.runInputs = [PlannedRuns.key(cell: "a|cb", seed: 1, sampleSeed: 1): ["data.validation": "v.jsonl:new", "manifest": "m1"]]
        XCTAssertEqual(ExportedCells.current([a2], plan: inputsPlan).kept.count, 1)
        a2.runInputs = [PlannedRuns.key(cell: "a|cb", seed: 1, sampleSeed: 1): ["data.validation": "missing", "manifest": "m1"]]
        XCTAssertEqual(ExportedCells.current([a2], plan: inputsPlan).kept.count, 1)
        // Evaluated adapters follow the store's rule: in a cell the spec trains they are stale; at
        // a task, model and k it does not run, unplanned.
        XCTAssertEqual(ExportedCells.current([cell("a|cb", [1], [70], configs: "hx", evaluated: true)], plan: plan).adaptersInTrainedCells, ["a|cb"])
        // An adapter scored on a validation file that has changed since: left out too.
        var scored = cell("peft|cb", [1], [70], configs: "hx", evaluated: true)
        scored.runInputs = [PlannedRuns.key(cell: "peft|cb", seed: 1, sampleSeed: 1): ["data.validation": "v.jsonl:old"]]
        inputsPlan.validationData = ["cb": "v.jsonl:new"]
        XCTAssertEqual(ExportedCells.current([scored], plan: inputsPlan).adaptersChanged, ["peft|cb"])
        XCTAssertEqual(ExportedCells.current([scored], plan: plan).kept.count, 1)
        inputsPlan.validationData = ["cb": "v.jsonl:old"]
        XCTAssertEqual(ExportedCells.current([scored], plan: inputsPlan).kept.count, 1)
        // The task file's and the rules' parts, as a store read compares them: another template
        // (an edited task file) leaves the cell out; a rule the plan has and the run lacks too.
        var taskPlan = plan
        taskPlan.taskParts[PlannedRuns.key(cell: "a|cb", seed: 1, sampleSeed: 1)] = ["templates": "[\"new\"]", "rules": "[{\"r\":\"x\"}]"]
        var a3t = cell("a|cb", [1, 2], [10, 20], configs: "h1")
        a3t.runTaskParts = [PlannedRuns.key(cell: "a|cb", seed: 1, sampleSeed: 1): ["templates": "[\"new\"]", "rules": "[{\"r\":\"x\"}]"]]
        XCTAssertEqual(ExportedCells.current([a3t], plan: taskPlan).kept.count, 1)
        a3t.runTaskParts = [PlannedRuns.key(cell: "a|cb", seed: 1, sampleSeed: 1): ["templates": "[\"old\"]", "rules": "[{\"r\":\"x\"}]"]]
        XCTAssertEqual(ExportedCells.current([a3t], plan: taskPlan).stale, ["a|cb"])
        a3t.runTaskParts = [PlannedRuns.key(cell: "a|cb", seed: 1, sampleSeed: 1): ["templates": "[\"new\"]"]]
        XCTAssertEqual(ExportedCells.current([a3t], plan: taskPlan).stale, ["a|cb"])
        // An evaluated cell whose adapter has other weights at its path now.
        let adir = tempDir("exportadapter")
        defer { try? FileManager.default.removeItem(atPath: adir) }
        try Data("weights".utf8).write(to: URL(fileURLWithPath: "\(adir)/adapter_model.safetensors"))
        try Data("{}".utf8).write(to: URL(fileURLWithPath: "\(adir)/adapter_config.json"))
        let adapter = "\(adir)#sha256:\(sha256Hex("weights"))#adapter_config:\(sha256Hex("{}"))"
        var ev = cell("peft|cb", [1], [70], configs: "hx", evaluated: true)
        ev.runAdapters = [PlannedRuns.key(cell: "peft|cb", seed: 1, sampleSeed: 1): adapter]
        XCTAssertEqual(ExportedCells.current([ev], plan: plan).kept.count, 1)
        try Data("other weights".utf8).write(to: URL(fileURLWithPath: "\(adir)/adapter_model.safetensors"))
        XCTAssertEqual(ExportedCells.current([ev], plan: plan).adaptersChanged, ["peft|cb"])
        XCTAssertEqual(ExportedCells.current([cell("peft|rte", [1], [70], configs: "hx", evaluated: true)], plan: plan).unplanned, ["peft|rte"])
    }

    /// Another program's SQLite file given as --db to a read (results, compare) was switched to WAL
    /// and given the store's tables (2026-12-06 review); it is refused before anything is written,
    /// whichever command opens it. An empty file still becomes a new store.
    func testAForeignSQLiteFileIsRefusedUntouched() throws {
        let dir = tempDir("foreign")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Another program's SQLite file (journal mode DELETE, so that any write shows in its bytes).
        func foreignFile(_ name: String, _ sql: String) throws -> (path: String, bytes: Data) {
            let path = "\(dir)/\(name)"
            do {
                let foreign = try SQLiteDB(path: path, readOnly: false)
                try foreign.exec("PRAGMA journal_mode=DELETE")
                try foreign.exec(sql)
            }
            return (path, try Data(contentsOf: URL(fileURLWithPath: path)))
        }
        let (path, before) = try foreignFile("other.sqlite", "CREATE TABLE foo(a); INSERT INTO foo VALUES (1)")
        XCTAssertThrowsError(try ResultsStore(path: path)) { e in
            XCTAssertTrue("\(e)".contains("\(path): an SQLite file with tables or views foo and schema version 0, not a results store"), "\(e)")
        }
        // With a schema version of its own (not a store's: no runs table) it was half-migrated; a
        // table named runs (not a store's) with a schema version, and another program's file with
        // a high version ("upgrade promptrepro" was the answer), are refused as well.
        for (name, sql, fragment) in [("versioned.sqlite", "CREATE TABLE t(x); PRAGMA user_version=2", "tables or views t and schema version 2, not a results store"),
                                      ("runs.sqlite", "CREATE TABLE runs(name TEXT, started TEXT); PRAGMA user_version=2", "not a results store"),
                                      ("high.sqlite", "CREATE TABLE t(x); PRAGMA user_version=9", "not a results store")] {
            let (file, bytes) = try foreignFile(name, sql)
            XCTAssertThrowsError(try ResultsStore(path: file)) { e in XCTAssertTrue("\(e)".contains(fragment), "\(e)") }
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: file)), bytes, name)
        }
        // A store of this tool passes, as does one of a newer tool (refused as newer, not as foreign).
        _ = try ResultsStore(path: "\(dir)/real.sqlite")
        XCTAssertNoThrow(try ResultsStore(readOnlyPath: "\(dir)/real.sqlite"))
        XCTAssertThrowsError(try ResultsStore(readOnlyPath: path))
        for args in [["results", "\(dir)/s.yaml", "--db", path], ["compare", "--spec", "\(dir)/s.yaml", "--db", path, "--method", "dpt"]] {
            try miniSpec.write(toFile: "\(dir)/s.yaml", atomically: true, encoding: .utf8)
            let (status, err) = try runCapture(args)
            XCTAssertNotEqual(status, 0, args.joined(separator: " "))
            XCTAssertTrue(err.contains("not a results store"), err)
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), before, "the file is left as it was")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path + "-wal"))
        FileManager.default.createFile(atPath: "\(dir)/empty.sqlite", contents: Data())
        XCTAssertEqual(try ResultsStore(path: "\(dir)/empty.sqlite").schemaVersion, ResultsStore.migrations.count)
    }

    /// A file that is not a store is refused by name and left as it was (an empty file was turned
    /// into an 80 KB store and "merged 0 runs"); a shard whose worker never ran says so.
    func testMergeRefusesFilesThatAreNotStoresAndNamesUnfinishedRuns() throws {
        let dir = tempDir("mergebad")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let main = try ResultsStore(path: "\(dir)/main.sqlite")
        FileManager.default.createFile(atPath: "\(dir)/empty.sqlite", contents: Data())
        try "not a store\n".write(toFile: "\(dir)/text.sqlite", atomically: true, encoding: .utf8)
        // An SQLite file of other tables: refused, and not given the store's tables.
        let foreign = try SQLiteDB(path: "\(dir)/foreign.sqlite")
        try foreign.exec("CREATE TABLE t(x)")
        XCTAssertThrowsError(try main.mergeReporting(from: "\(dir)/foreign.sqlite")) { e in
            XCTAssertTrue("\(e)".contains("\(dir)/foreign.sqlite: an SQLite file with tables or views t") && "\(e)".contains("not a results store"), "\(e)")
        }
        XCTAssertEqual(try foreign.query("SELECT name FROM sqlite_master WHERE type='table'").compactMap { $0["name"]?.text }, ["t"])
        for (name, size) in [("empty.sqlite", 0), ("text.sqlite", 12)] {
            XCTAssertThrowsError(try main.mergeReporting(from: "\(dir)/\(name)")) { e in
                XCTAssertTrue("\(e)".contains("\(dir)/\(name): not a results store"), "\(e)")
            }
            XCTAssertEqual((try FileManager.default.attributesOfItem(atPath: "\(dir)/\(name)")[.size] as? NSNumber)?.intValue, size)
        }
        // The command checks its sources before it opens (or creates) the destination.
        XCTAssertNotEqual(try runCLI(["merge", "--into", "\(dir)/new.sqlite", "\(dir)/empty.sqlite"]).terminationStatus, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/new.sqlite"))
        XCTAssertNotEqual(try runCLI(["merge", "--into", "\(dir)/empty.sqlite", "\(dir)/main.sqlite"]).terminationStatus, 0)
        XCTAssertEqual((try FileManager.default.attributesOfItem(atPath: "\(dir)/empty.sqlite")[.size] as? NSNumber)?.intValue, 0)
        // A directory (`--into runs/`) is named as one (it was called an "empty file").
        let (rc, err) = try runCLIText(["merge", "--into", dir, "\(dir)/main.sqlite"], stdout: false)
        XCTAssertNotEqual(rc, 0)
        XCTAssertTrue(err.contains("\(dir): a directory, not a results store") && !err.contains("empty file"), err)
        let shard = try ResultsStore(path: "\(dir)/shard.sqlite")
        try shard.insertPending(try spec(dir, "a", k: "[16]", seeds: "[1, 2, 3]", n: 8).expand(profile: "smoke"))
        let report = try main.mergeReporting(from: "\(dir)/shard.sqlite")
        XCTAssertEqual(report.merged, 0)
        XCTAssertEqual(report.unfinished, ["pending": 3])
    }

    /// A checkpoint whose safetensors file is a link (a user's, or a snapshot's link to its blob)
    /// rewritten in place, same size: the weights' hash follows the file the link leads to. The
    /// hash cache read the link's own size and time, so the old hash stood and no run was redone.
    func testWeightsHashFollowsALinkedFileRewrittenInPlace() throws {
        let dir = tempDir("weightslink")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: "\(dir)/model", withIntermediateDirectories: true)
        try Data(repeating: 1, count: 4096).write(to: URL(fileURLWithPath: "\(dir)/blob"))
        try FileManager.default.createSymbolicLink(atPath: "\(dir)/model/model.safetensors", withDestinationPath: "\(dir)/blob")
        let s = try ResultsStore(path: "\(dir)/s.sqlite")
        let before = try s.weightsHash(directory: "\(dir)/model")
        XCTAssertEqual(before, try SHA256.hex(file: "\(dir)/blob"))
        let h = FileHandle(forWritingAtPath: "\(dir)/blob")!
        h.write(Data(repeating: 2, count: 100))
        h.closeFile()
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(60)], ofItemAtPath: "\(dir)/blob")
        let after = try s.weightsHash(directory: "\(dir)/model")
        XCTAssertNotEqual(after, before)
        XCTAssertEqual(after, try SHA256.hex(file: "\(dir)/blob"))
    }

    /// A data file rewritten with other content of the same size whose modification time is then
    /// put back (`touch -d`, a copy with `-p`): the cache was keyed by (path, size, mtime), so the
    /// old hash stood and rows of the old data read as current. Keyed by the change time, which no
    /// tool can set back, the new content is hashed.
    func testFileHashSeesARewriteWhoseModificationTimeWasRestored() throws {
        let dir = tempDir("hashmtime")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: "\(dir)/model", withIntermediateDirectories: true)
        let file = "\(dir)/val.jsonl", weights = "\(dir)/model/model.safetensors"
        let s = try ResultsStore(path: "\(dir)/s.sqlite")
        for path in [file, weights] {
            try Data("{\"label\": \"entailment\"}\n".utf8).write(to: URL(fileURLWithPath: path))
            let stamp = Date(timeIntervalSince1970: 1_700_000_000)
            try FileManager.default.setAttributes([.modificationDate: stamp], ofItemAtPath: path)
            let before = path == file ? try s.fileHash(path) : try s.weightsHash(directory: "\(dir)/model")
            XCTAssertEqual(before, try SHA256.hex(file: path))
            XCTAssertEqual(path == file ? try s.fileHash(path) : try s.weightsHash(directory: "\(dir)/model"), before, "unchanged file: cached hash")
            Thread.sleep(forTimeInterval: 0.02)
            try Data("{\"label\": \"neutral_xx\"}\n".utf8).write(to: URL(fileURLWithPath: path))
            try FileManager.default.setAttributes([.modificationDate: stamp], ofItemAtPath: path)
            let after = path == file ? try s.fileHash(path) : try s.weightsHash(directory: "\(dir)/model")
            XCTAssertNotEqual(after, before, path)
            XCTAssertEqual(after, try SHA256.hex(file: path))
        }
    }

    /// A worker that reads other inputs than its run was planned with (a shard planned on one data
    /// directory, its worker given another) fails the run, naming the part, instead of storing a
    /// result of other data under the planned identity; the same inputs run as planned.
    func testWorkerRefusesARunPlannedWithOtherInputs() throws {
        let shared = try sharedData()
        let dir = tempDir("workerinputs")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for copy in ["a", "b"] {
            try FileManager.default.createDirectory(atPath: "\(dir)/\(copy)/superglue/cb", withIntermediateDirectories: true)
            for f in ["train.jsonl", "val.jsonl"] {
                try FileManager.default.copyItem(atPath: "\(shared)/superglue/cb/\(f)", toPath: "\(dir)/\(copy)/superglue/cb/\(f)")
            }
        }
        try "\n".write(toFile: "\(dir)/b/superglue/cb/val.jsonl", atomically: true, encoding: .utf8)  // not the planned file
        let manifests = "\(repoRoot)/Baselines/manifests"
        let s = try ResultsStore(path: "\(dir)/s.sqlite")
        let runs = try s.withIdentities(try spec(dir, "a", k: "[16]", seeds: "[1]", n: 8).expand(profile: "smoke"), dataDir: "\(dir)/a", manifestDir: manifests)
        try s.insertPending(runs)
        XCTAssertNil(try Worker.inputMismatch(runs[0], store: s, dataDir: "\(dir)/a", manifestDir: manifests))
        let why = try XCTUnwrap(try Worker.inputMismatch(runs[0], store: s, dataDir: "\(dir)/b", manifestDir: manifests))
        XCTAssertTrue(why.hasPrefix("validation data (planned "), why)
        var o = WorkerOptions(storePath: "\(dir)/s.sqlite", spec: nil, profile: nil, dataDir: "\(dir)/b", checkpointDir: "\(dir)/ck", threads: 1)
        o.manifestDir = manifests
        o.allowUnpinned = true
        XCTAssertEqual(try Worker.run(o), 1)
        let row = try XCTUnwrap(try s.db.query("SELECT status, error FROM runs").first)
        XCTAssertEqual(row["status"]?.text, "failed")
        XCTAssertTrue(row["error"]?.text?.contains("was planned with other inputs than this worker reads: validation data") == true, "\(row)")
    }
}
