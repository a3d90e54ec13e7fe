import Foundation
import Store
import TestSupport
import XCTest

/// Two stores sweeping into one checkpoint directory (the default runs/checkpoints is shared)
/// number their runs alike; a run's checkpoint is named by its store too, so neither resumes from
/// nor deletes the other's.
final class CheckpointNamingTests: XCTestCase {
    func testStoresSharingACheckpointDirectoryNeverShareACheckpoint() throws {
        let data = try sharedData()
        let dir = tempDir("cknames")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try miniSpec.replacingOccurrences(of: "tasks: [cb, rte]", with: "tasks: [cb]").replacingOccurrences(of: "seeds: [1, 2]", with: "seeds: [1]")
            .replacingOccurrences(of: "  - {name: dpt, method: dpt, n: 8, r: 2}\n", with: "")
            .write(toFile: "\(dir)/one.yaml", atomically: true, encoding: .utf8)
        var paths: [String] = []
        for name in ["a", "b"] {
            let db = "\(dir)/\(name).sqlite"
            let (status, err) = try runCapture(["sweep", "\(dir)/one.yaml", "--profile", "smoke", "--workers", "1", "--db", db, "--data-dir", data,
                                                "--checkpoints", "\(dir)/ck"])
            XCTAssertEqual(status, 0, err)
            // The summary says where the artifacts are, with this store's tag (workers run --quiet).
            let tag = try XCTUnwrap(err.range(of: #"/artifacts/mini-smoke/<cell>-s<seed>-<identity>-store-[0-9a-f]{12}\.safetensors"#, options: .regularExpression), err)
            // Named as a resolved path (it read runs/checkpoints/../artifacts/…), with one worker of one thread in the split line.
            XCTAssertTrue(err.contains("artifacts: \(URL(fileURLWithPath: dir).standardized.path)/artifacts/mini-smoke/") && !err.contains("/../"), err)
            XCTAssertNotNil(err.range(of: #"split 1 worker × (1 thread|[2-9]\d* threads) "#, options: .regularExpression), err)
            let rows = try ResultsStore(path: db).db.query("SELECT id, status, checkpoint, identity FROM runs")
            // Named by the run's identity too: a run of the cell with other settings writes its own file.
            let identity = String(try XCTUnwrap(rows.first?["identity"]?.text).prefix(12))
            XCTAssertTrue(FileManager.default.fileExists(atPath: "\(dir)/artifacts/mini-smoke/pt_cb_t5-small_k8-s1-\(identity)-store-"
                + err[tag].dropFirst("/artifacts/mini-smoke/<cell>-s<seed>-<identity>-store-".count)), "\(err[tag])")
            XCTAssertEqual(rows.count, 1)
            XCTAssertEqual(rows.first?["id"]?.int, 1)
            XCTAssertEqual(rows.first?["status"]?.text, "done")
            paths.append(try XCTUnwrap(rows.first?["checkpoint"]?.text))
        }
        XCTAssertNotEqual(paths[0], paths[1])
        XCTAssertTrue(paths.allSatisfy { $0.hasPrefix("\(dir)/ck/store-") && $0.hasSuffix("-run-1.safetensors") }, "\(paths)")
        // Run artifacts, beside the checkpoints, are named by the store as well: one each, neither
        // overwritten (a second store's sweep of the same spec once replaced the first's tensors).
        let arts = try FileManager.default.contentsOfDirectory(atPath: "\(dir)/artifacts/mini-smoke").sorted()
        XCTAssertEqual(arts.count, 2, "\(arts)")
        XCTAssertEqual(Set(arts.map { $0.replacingOccurrences(of: #"-store-[0-9a-f]{12}"#, with: "", options: .regularExpression) }).count, 1, "\(arts)")
    }
}
