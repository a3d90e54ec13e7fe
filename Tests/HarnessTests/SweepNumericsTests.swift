import Foundation
import Store
import TestSupport
import XCTest

/// A sweep that adds runs to a cell whose finished runs ran under other numerics (another kernel,
/// OpenBLAS or thread count: other bits) says so before it starts, in its dry run too. It added
/// them without a word; only later reads named the mix.
final class SweepNumericsTests: XCTestCase {
    func testASweepNamesCellsWhoseFinishedRunsRanUnderOtherNumerics() throws {
        let data = try sharedData()
        let dir = tempDir("sweepnumerics")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func spec(seeds: String) throws -> String {
            let path = "\(dir)/tiny.yaml"
            try smokeSpec("tiny", methods: ["{name: pt, method: pt, n: 4}"], seeds: seeds,
                          train: "{epochs: 1, batch_size: 4, eval_limit: 4, eval_batch_size: 4, decode_max_tokens: 2, max_source_length: 64}")
                .write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        let db = "\(dir)/s.sqlite"
        func sweep(_ seeds: String, threads: String, dryRun: Bool = false) throws -> (Int32, String) {
            try runCLIText(["sweep", try spec(seeds: seeds), "--profile", "smoke", "--workers", "1", "--threads", threads, "--db", db,
                            "--data-dir", data, "--checkpoints", "\(dir)/ck"] + (dryRun ? ["--dry-run"] : []), stdout: dryRun)
        }
        var (rc, log) = try sweep("[1]", threads: "1")
        XCTAssertEqual(rc, 0, log)
        XCTAssertFalse(log.contains("other numerics"), log)
        // Seed 2 on the same split: nothing to say.
        (rc, log) = try sweep("[1, 2]", threads: "1", dryRun: true)
        XCTAssertEqual(rc, 0, log)
        XCTAssertFalse(log.contains("other numerics"), log)
        // On 2 threads (one worker of 2): the dry run and the sweep name the cell and both setups.
        (rc, log) = try sweep("[1, 2]", threads: "2", dryRun: true)
        XCTAssertEqual(rc, 0, log)
        XCTAssertTrue(log.contains("warning: 1 cell to be run holds finished runs under other numerics than this sweep's workers (promptrepro "), log)
        XCTAssertTrue(log.contains("; threads 2)") && log.contains("; threads 1"), log)
        (rc, log) = try sweep("[1, 2]", threads: "2")
        XCTAssertEqual(rc, 0, log)
        XCTAssertTrue(log.contains("warning: 1 cell to be run holds finished runs under other numerics"), log)
        // The reads name the mix the sweep warned of.
        XCTAssertEqual(try ResultsStore(path: db).mixedNumerics(spec: "tiny", profile: "smoke", planned: nil).count, 1)
        // So do the per-step reads, whose loss curves average the seeds (they said nothing).
        let (src, serr) = try runCLIText(["steps", try spec(seeds: "[1, 2]"), "--profile", "smoke", "--db", db], stdout: false)
        XCTAssertEqual(src, 0, serr)
        XCTAssertTrue(serr.contains("note: Mixed numerics: 1 cell"), serr)
    }
}
