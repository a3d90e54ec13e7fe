import Foundation
import Harness
import Models
import Store
import Tensor
import Training
import TestSupport
import XCTest

/// A sweep deletes this store's resume checkpoints that nothing will resume from: those of runs sent
/// to history, of finished runs and of ids the store does not hold; pending, running and failed runs
/// keep theirs, and other stores' checkpoints and other files are left alone.
final class CheckpointCleanupTests: XCTestCase {
    func testSweepRemovesCheckpointsNothingResumesFrom() throws {
        let scratch = try SmokeSweeps("ckclean")
        defer { scratch.remove() }
        let spec = try scratch.write("ckclean", ["{name: pt, method: pt, n: 4}"])
        // (A fresh store has no timings: the plan says so in words; it printed "≈ unknown with 1 workers".)
        var (rc, log) = try scratch.sweep(spec, ["--dry-run"], stdout: true)
        XCTAssertTrue(log.contains("time: unknown with 1 worker: no run of these models has been timed in this store yet"), log)
        (rc, log) = try scratch.sweep(spec)
        XCTAssertEqual(rc, 0, log)
        // The same spec with another learning rate: the two finished runs go to history.
        try smokeSpec("ckclean", methods: ["{name: pt, method: pt, n: 4, train: {lr: 0.05}}"], seeds: "[1, 2]", train: SmokeSweeps.train)
            .write(toFile: spec, atomically: true, encoding: .utf8)
        (rc, log) = try scratch.sweep(spec)
        XCTAssertEqual(rc, 0, log)

        let s = try ResultsStore(path: scratch.db)
        let superseded = try s.db.query("SELECT id FROM runs WHERE spec='ckclean' AND status='superseded' ORDER BY id").compactMap { $0["id"]?.int }
        let done = try s.db.query("SELECT id FROM runs WHERE spec='ckclean' AND status='done' ORDER BY id").compactMap { $0["id"]?.int }
        XCTAssertEqual(superseded.count, 2)
        XCTAssertEqual(done.count, 2)
        // Rows of other specs that must keep their checkpoints: pending (resumes), running (a worker
        // writes it now), failed (a retry resumes from it).
        var keep: [Int] = []
        for status in ["pending", "running", "failed"] {
            try s.db.query("""
                INSERT INTO runs (spec, profile, cell, variant, method, task, model, model_spec, k, seed, config_json, config_hash, status, created_at, identity)
                SELECT 'other-\(status)', profile, cell, variant, method, task, model, model_spec, k, seed, config_json, config_hash, ?, created_at, identity
                FROM runs WHERE id=?
                """, [.text(status), .int(done[0])])
            keep.append(s.db.lastInsertID)
        }
        let ck = "\(scratch.dir)/ck", tag = Worker.storeTag(scratch.db)
        try FileManager.default.createDirectory(atPath: ck, withIntermediateDirectories: true)
        func file(_ id: Int, tag t: String = tag) -> String { Worker.checkpointPath(checkpointDir: ck, storeTag: t, run: id) }
        // A checkpoint as a worker writes it: the run's tensors with its config in the metadata
        // (the worker's thread count, which a resume ignores, in place of the planned one).
        func config(_ id: Int) throws -> String { try XCTUnwrap(s.db.query("SELECT config_json FROM runs WHERE id=?", [.int(id)]).first?["config_json"]?.text) }
        func write(_ path: String, config: String, lr: Float? = nil) throws {
            var c = try JSONDecoder().decode(TrainConfig.self, from: Data(config.utf8))
            c.threads = 7
            if let lr { c.lr = lr }
            try SafeTensorsFile.write(["prompt": Tensor(shape: [1], values: [1])], to: path, metadata: ["config": c.json])
        }
        let gone = [superseded[0]] + done
        // A checkpoint a resume set aside as written under other numerics: gone with its run.
        let asideFile = file(done[0]) + ".other-numerics"
        // Kept: pending, running and failed rows' files; another store's (another tag); a file of
        // a finished id whose config is not its row's (a store at the same path on another host
        // sharing this directory); an id this store does not hold; files that are no checkpoint.
        var kept = keep.map { file($0) } + [file(superseded[0], tag: "0123456789ab"), file(999_999), "\(ck)/notes.txt",
                                            "\(ck)/store-\(tag)-run-x.safetensors", "\(ck)/store-\(tag)-run-0\(done[0]).safetensors"]
        for id in gone { try write(file(id), config: try config(id)) }
        try write(asideFile, config: try config(done[0]))
        for (i, path) in kept.enumerated() { try write(path, config: try config(i < keep.count ? keep[i] : done[0])) }
        let foreign = file(superseded[1])
        try write(foreign, config: try config(superseded[1]), lr: 0.123)
        kept.append(foreign)

        // A dry run changes nothing.
        (rc, log) = try scratch.sweep(spec, ["--dry-run"], stdout: true)
        XCTAssertEqual(rc, 0, log)
        for path in gone.map({ file($0) }) + kept { XCTAssertTrue(FileManager.default.fileExists(atPath: path), path) }

        // The next sweep of the spec (nothing left to train) removes the dead ones.
        (rc, log) = try scratch.sweep(spec)
        XCTAssertEqual(rc, 0, log)
        XCTAssertTrue(log.contains("removed \(gone.count + 1) checkpoints of runs nothing resumes"), log)
        for id in gone { XCTAssertFalse(FileManager.default.fileExists(atPath: file(id)), "run \(id)") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: asideFile))
        for path in kept { XCTAssertTrue(FileManager.default.fileExists(atPath: path), path) }
    }

    /// A `--checkpoints` path that is a file is refused before anything is planned: the sweep once
    /// planned the store, started workers that died at their first run and said "rerun the same
    /// command to resume"; a worker started by hand left its claimed run 'running'.
    func testACheckpointPathThatIsAFileIsRefusedFirst() throws {
        let scratch = try SmokeSweeps("ckfile")
        defer { scratch.remove() }
        let spec = try scratch.write("ckfile", ["{name: pt, method: pt, n: 4}"])
        try "hi".write(toFile: "\(scratch.dir)/ck", atomically: true, encoding: .utf8)   // the sweep's --checkpoints
        for extra in [["--dry-run"], []] {
            let (rc, err) = try scratch.sweep(spec, extra)
            XCTAssertNotEqual(rc, 0, err)
            XCTAssertTrue(err.contains("--checkpoints \(scratch.dir)/ck: a file, not a directory"), err)
            XCTAssertFalse(FileManager.default.fileExists(atPath: scratch.db), "\(extra): the store was planned")
        }
        try FileManager.default.removeItem(atPath: "\(scratch.dir)/ck")
        try FileManager.default.createDirectory(atPath: "\(scratch.dir)/ck", withIntermediateDirectories: true)
        XCTAssertEqual(try scratch.sweep(spec, ["--dry-run"]).0, 0)
        // A worker on a planned store, with a file for its checkpoints: refused, no run claimed.
        let s = try ResultsStore(path: scratch.db)
        try s.insertPending(try ExperimentSpec.load(spec).expand(profile: "smoke"))
        try "hi".write(toFile: "\(scratch.dir)/ck2", atomically: true, encoding: .utf8)
        let (rc, err) = try runCLIText(["worker", "--db", scratch.db, "--data-dir", scratch.data, "--checkpoints", "\(scratch.dir)/ck2"], stdout: false)
        XCTAssertNotEqual(rc, 0, err)
        XCTAssertTrue(err.contains("--checkpoints \(scratch.dir)/ck2: a file, not a directory"), err)
        XCTAssertEqual(try s.counts(spec: "ckfile")["running"] ?? 0, 0)
        // A --spec the store holds no run of is refused by name (it exited 0, "nothing to do").
        let (trc, terr) = try runCLIText(["worker", "--db", scratch.db, "--data-dir", scratch.data, "--checkpoints", "\(scratch.dir)/ck", "--spec", "ckfiel"], stdout: false)
        XCTAssertNotEqual(trc, 0, terr)
        XCTAssertTrue(terr.contains("--spec ckfiel: \(scratch.db) holds no run of that spec (did you mean 'ckfile'?); specs there: ckfile"), terr)
        XCTAssertEqual(try s.counts(spec: "ckfile")["pending"], 2)
    }
    /// A worker started by hand retries the failed runs of its store, as a sweep does: its own
    /// failure advice ("run the worker with the data directory … the shard used") led to "no
    /// pending run; nothing to do", and the runs stayed failed.
    func testAHandStartedWorkerRetriesFailedRuns() throws {
        let scratch = try SmokeSweeps("retry")
        defer { scratch.remove() }
        let spec = try scratch.write("retry", ["{name: pt, method: pt, n: 4}"])
        XCTAssertEqual(try runCLIText(["shard", spec, "--profile", "smoke", "--shards", "1", "--dir", "\(scratch.dir)/sh", "--data-dir", scratch.data], stdout: false).0, 0)
        // A data directory without CB's validation file: both runs fail (planned on other inputs).
        let bad = "\(scratch.dir)/bad/superglue/cb"
        try FileManager.default.createDirectory(atPath: bad, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "\(scratch.data)/superglue/cb/train.jsonl", toPath: "\(bad)/train.jsonl")
        let store = "\(scratch.dir)/sh/shard-0.sqlite"
        let (frc, ferr) = try runCLIText(["worker", "--db", store, "--data-dir", "\(scratch.dir)/bad", "--checkpoints", "\(scratch.dir)/ck", "--threads", "1"], stdout: false)
        XCTAssertEqual(frc, 1, ferr)
        XCTAssertEqual(try ResultsStore(path: store).counts(spec: "retry")["failed"], 2, ferr)
        let (rc, err) = try runCLIText(["worker", "--db", store, "--data-dir", scratch.data, "--checkpoints", "\(scratch.dir)/ck", "--threads", "1"], stdout: false)
        XCTAssertEqual(rc, 0, err)
        XCTAssertTrue(err.contains("worker: 2 failed runs back to pending, to retry"), err)
        XCTAssertEqual(try ResultsStore(path: store).counts(spec: "retry"), ["done": 2])
    }
}
