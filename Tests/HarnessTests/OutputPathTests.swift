import Foundation
import TestSupport
import XCTest

/// `train --artifact it.safetensors` (a bare file name) once trained and evaluated, then failed with
/// "The file doesn't exist" naming neither the flag nor the file, and lost the run: the directory
/// of a bare name is "", which it tried to create. Bare names now write to the working directory,
/// and a path that cannot be written is refused, naming the flag, before anything trains.
final class OutputPathTests: XCTestCase {
    func testBareFileNamesAndUnwritablePaths() throws {
        let data = try sharedData()
        let dir = tempDir("outpaths")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let base = ["train", "--method", "pt", "--n", "4", "--task", "cb", "--k", "8", "--epochs", "1", "--eval-limit", "4",
                    "--decode-max-tokens", "2", "--data-dir", data]
        let (status, err) = try runCapture(base + ["--artifact", "it.safetensors", "--checkpoint", "ck.safetensors", "--out", "res.json"], cwd: dir)
        XCTAssertEqual(status, 0, err)
        for f in ["it.safetensors", "res.json"] { XCTAssertTrue(FileManager.default.fileExists(atPath: "\(dir)/\(f)"), f) }
        // Outputs under directories that do not exist yet: created (--out once failed after training).
        let (st0, e0) = try runCapture(base + ["--out", "newa/newb/out.json", "--artifact", "newc/a.safetensors"], cwd: dir)
        XCTAssertEqual(st0, 0, e0)
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(dir)/newa/newb/out.json"))
        try FileManager.default.createSymbolicLink(atPath: "\(dir)/dangling", withDestinationPath: "\(dir)/nothing-here")

        try "x".write(toFile: "\(dir)/afile", atomically: true, encoding: .utf8)
        for (flag, path) in [("--artifact", "\(dir)/afile/sub/it.safetensors"), ("--checkpoint", "\(dir)/afile/ck.safetensors"),
                             ("--artifact", dir), ("--out", "\(dir)/afile/r.json"), ("--save-adapter", "\(dir)/afile/ad"),
                             ("--checkpoint", "\(dir)/dangling/ck.safetensors"), ("--out", "\(dir)/dangling/sub/r.json")] {
            let (st, e) = try runCapture(base + [flag, path], cwd: dir)
            XCTAssertNotEqual(st, 0, "\(flag) \(path)")
            XCTAssertTrue(e.contains("\(flag) \(path)") && e.contains("nothing trained"), e)
            XCTAssertTrue(e.contains("is a directory") || e.contains("is not a directory") || e.contains("is a symbolic link to nothing"), e)
        }
    }
}
