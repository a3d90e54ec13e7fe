import Foundation
import Harness
import Methods
import Store
import TestSupport
import Training
import XCTest

/// A worker taken for dead (another host's heartbeat older than the limit: a suspended laptop, a
/// stopped process) whose run another worker claimed again: when it wakes, its writes under the
/// old claim are not stored. It stored its result over the new claim's, with the new claim's
/// thread count and worker recorded beside the old claim's numbers (a reliability trial).
final class ClaimTakeoverTests: XCTestCase {
    /// A PT config of CB k 8 seed 1 on the embedded T5 with `epochs`.
    func config(epochs: Int) throws -> TrainConfig {
        var cfg = try TrainConfig.preset("dpt-paper", method: try MethodConfig.defaults("pt"), task: "cb", model: "embedded:t5-tiny", k: 8, seed: 1)
        cfg.epochs = epochs
        return cfg
    }

    /// The run of cell pt|cb|t5-small|k8, seed 1, of spec "s" [smoke] under `c`.
    func run(_ c: TrainConfig) -> RunSpec {
        RunSpec(spec: "s", profile: "smoke", cell: "pt|cb|t5-small|k8", variant: "pt", method: "pt", task: "cb",
                model: "t5-small", modelSpec: "embedded:t5-tiny", k: 8, seed: 1, config: c)
    }

    func testAWorkerWhoseClaimWasTakenOverStoresNothing() throws {
        let dir = tempDir("takeover")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let s = try ResultsStore(path: "\(dir)/s.sqlite")
        let cfg = try config(epochs: 2)
        try s.insertPending([run(cfg)])
        let first = try XCTUnwrap(try s.claim(worker: "hostA:1", pid: getpid()))
        try s.recordStart(first.id, weightsSha: nil, gitCommit: nil, toolVersion: "t", threads: 1, checkpoint: "ck", attempt: first.attempts)
        // Taken for dead and claimed again (as resetInterrupted does for another host's stale heartbeat).
        try s.db.query("UPDATE runs SET status='pending' WHERE id=?", [.int(first.id)])
        let second = try XCTUnwrap(try s.claim(worker: "hostB:2", pid: getpid()))
        XCTAssertEqual(second.id, first.id)
        XCTAssertEqual(second.attempts, first.attempts + 1)
        try s.recordStart(second.id, weightsSha: nil, gitCommit: nil, toolVersion: "t", threads: 2, checkpoint: "ck", attempt: second.attempts)
        func result(_ accuracy: Double, seconds: Double) -> TrainResult {
            let history = (1...2).map { EpochRecord(epoch: $0, step: 2 * $0, trainLoss: 1, metrics: ["accuracy": accuracy], selection: accuracy, seconds: seconds) }
            return TrainResult(config: cfg, status: .done, divergedAtStep: nil, bestEpoch: 2, best: ["accuracy": accuracy], last: ["accuracy": accuracy],
                               history: history, trainableParams: 1, trainExamples: 8, evalExamples: 8, dataFiles: [:], manifest: nil, smoke: true, predictions: nil)
        }
        // The old claim's worker wakes: its progress, start record, failure and result are not written.
        try s.recordStart(first.id, weightsSha: nil, gitCommit: nil, toolVersion: "t", threads: 1, checkpoint: "ck", attempt: first.attempts)
        try s.recordEpoch(first.id, done: 1, total: 2, seconds: 99, attempt: first.attempts)
        XCTAssertThrowsError(try s.complete(first.id, result: result(25, seconds: 1), attempt: first.attempts)) { e in
            XCTAssertTrue(e is ClaimTakenOver, "\(e)")
            XCTAssertTrue("\(e)".contains("claimed again since this worker claimed it (attempt 1; now attempt 2, by hostB:2"), "\(e)")
        }
        try s.fail(first.id, error: "late", attempt: first.attempts)
        XCTAssertFalse(try s.heartbeat(first.id, attempt: first.attempts), "the old claim's heartbeat finds it lost")
        XCTAssertFalse(try s.holdsClaim(first.id, attempt: first.attempts))
        XCTAssertTrue(try s.holdsClaim(second.id, attempt: second.attempts))
        XCTAssertFalse(try s.completeIdentity(first.id, identity: "x", json: "{}", attempt: first.attempts))
        var row = try XCTUnwrap(try s.db.query("SELECT status, threads, epoch_seconds FROM runs WHERE id=?", [.int(first.id)]).first)
        XCTAssertEqual(row["status"]?.text, "running")
        XCTAssertEqual(row["threads"]?.int, 2)
        XCTAssertNotEqual(row["epoch_seconds"]?.double, 99)
        XCTAssertEqual(try s.db.query("SELECT COUNT(*) AS n FROM scores").first?["n"]?.int, 0)
        // The current claim stores its result, and the progress columns follow the result.
        try s.complete(second.id, result: result(50, seconds: 1.5), attempt: second.attempts)
        row = try XCTUnwrap(try s.db.query("SELECT status, threads, epochs_done, epoch_seconds FROM runs WHERE id=?", [.int(first.id)]).first)
        XCTAssertEqual(row["status"]?.text, "done")
        XCTAssertEqual(row["threads"]?.int, 2)
        XCTAssertEqual(row["epochs_done"]?.int, 2)
        XCTAssertEqual(row["epoch_seconds"]?.double, 3)
        XCTAssertEqual(try s.db.query("SELECT value FROM scores WHERE kind='best'").first?["value"]?.double, 50)
    }

    /// A sweep of an edited spec while a live worker of the first sweep runs a cell and seed under
    /// the old settings: the plan reports that run as held (it was skipped without a word, and the
    /// second sweep exited 0 with its run never trained).
    func testAPlannedRunHeldByALiveWorkerOfOtherSettingsIsReported() throws {
        let dir = tempDir("held")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let s = try ResultsStore(path: "\(dir)/s.sqlite")
        let cfg = try config(epochs: 300)
        XCTAssertEqual(try s.insertPendingReporting([run(cfg)]).inserted, 1)
        _ = try XCTUnwrap(try s.claim(worker: "a", pid: getpid()))
        XCTAssertTrue(try s.insertPendingReporting([run(cfg)]).held.isEmpty, "the same settings: the live worker's run is this plan's")
        var edited = cfg
        edited.epochs = 250
        let plan = try s.insertPendingReporting([run(edited)])
        XCTAssertEqual(plan.held.map(\.seed), [1])
        XCTAssertEqual(plan.inserted, 0)
        XCTAssertEqual(plan.superseded, 0, "a running row is not sent to history")
    }

    /// `sweep --dry-run` names a planned run a live worker holds under other settings as held, not
    /// as this plan's run "running (live worker)"; a dead worker's such row is a rerun.
    func testDryRunNamesARunHeldUnderOtherSettings() throws {
        let dir = tempDir("heldplan")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let one = miniSpec.replacingOccurrences(of: "tasks: [cb, rte]", with: "tasks: [cb]").replacingOccurrences(of: "seeds: [1, 2]", with: "seeds: [1]")
            .replacingOccurrences(of: "  - {name: dpt, method: dpt, n: 8, r: 2}\n", with: "")
        try one.write(toFile: "\(dir)/s.yaml", atomically: true, encoding: .utf8)
        var o = SweepOptions(storePath: "\(dir)/s.sqlite", workers: 1, threads: 1, dataDir: try sharedData(), checkpointDir: "\(dir)/ck")
        o.manifestDir = "\(repoRoot)/Baselines/manifests"
        let store = try ResultsStore(path: o.storePath)
        let spec = try ExperimentSpec.load("\(dir)/s.yaml")
        _ = try store.insertPending(try store.withIdentities(try spec.expand(profile: "smoke"), dataDir: o.dataDir, manifestDir: o.manifestDir))
        let claimed = try XCTUnwrap(try store.claim(worker: "live", pid: getpid()))
        // A live worker on another host (its heartbeat fresh): liveness is not judged from here.
        try store.db.query("UPDATE runs SET host='another-host', heartbeat=? WHERE id=?", [.double(Date().timeIntervalSince1970), .int(claimed.id)])
        XCTAssertEqual(try SweepPlan.make(spec: spec, profile: "smoke", options: o).entries.map(\.state), [.running])
        try one.replacingOccurrences(of: "epochs: 4,", with: "epochs: 5,").write(toFile: "\(dir)/s.yaml", atomically: true, encoding: .utf8)
        let edited = try ExperimentSpec.load("\(dir)/s.yaml")
        XCTAssertEqual(try SweepPlan.make(spec: edited, profile: "smoke", options: o).entries.map(\.state), [.held])
        XCTAssertTrue(try SweepPlan.make(spec: edited, profile: "smoke", options: o).render().contains("held by a live worker under other settings"))
        try store.db.query("UPDATE runs SET host=?, worker_pid=999999 WHERE id=?", [.text(ProcessInfo.processInfo.hostName), .int(claimed.id)])  // its worker gone
        XCTAssertEqual(try SweepPlan.make(spec: edited, profile: "smoke", options: o).entries.map(\.state), [.changed])
    }

    /// The dry run names the data files its runs would read that are a subset of the official
    /// split (ReCoRD's validation subset here; it was said only when each run started).
    func testDryRunNamesSubsetData() throws {
        let dir = tempDir("subsetplan")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let data = try sharedData()
        guard !FileManager.default.fileExists(atPath: "\(data)/superglue/record/val.jsonl") else { throw XCTSkip("the full ReCoRD validation file is here: no subset to name") }
        try miniSpec.replacingOccurrences(of: "tasks: [cb, rte]", with: "tasks: [cb, record]").write(toFile: "\(dir)/s.yaml", atomically: true, encoding: .utf8)
        var o = SweepOptions(storePath: "\(dir)/s.sqlite", workers: 1, threads: 1, dataDir: data, checkpointDir: "\(dir)/ck")
        o.manifestDir = "\(repoRoot)/Baselines/manifests"
        let plan = try SweepPlan.make(spec: try ExperimentSpec.load("\(dir)/s.yaml"), profile: "smoke", options: o)
        XCTAssertEqual(plan.subsetFiles, ["record validation: superglue/record/val.subset5.jsonl (the full file superglue/record/val.jsonl is missing)"])
        XCTAssertTrue(plan.render().contains("data that is a subset of the official split"))
    }
}
