import Foundation
import TestSupport
import XCTest

/// Errors about files and stores (not about the arguments) print "Error: …" and exit 1 without
/// ArgumentParser's usage block, which a `ValidationError` adds (exit 64): a missing store, an
/// adapter config that does not decode.
final class CommandErrorTests: XCTestCase {
    func testFileErrorsPrintNoUsageBlock() throws {
        let dir = tempDir("cmderr")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: "\(dir)/adapter", withIntermediateDirectories: true)
        try #"{"task_type": "SEQ_2_SEQ_LM"}"#.write(toFile: "\(dir)/adapter/adapter_config.json", atomically: true, encoding: .utf8)
        for (args, fragment) in [(["results", "table1", "--db", "\(dir)/none.sqlite"], "\(dir)/none.sqlite: no results store"),
                                 (["export", "table1", "--db", "\(dir)/none.sqlite"], "\(dir)/none.sqlite: no results store"),
                                 (["eval", "--model", "embedded:t5-tiny", "--adapter", "\(dir)/adapter", "--task", "cb"],
                                  "\(dir)/adapter/adapter_config.json: not a PEFT adapter config (missing field 'peft_type')")] {
            let (rc, err) = try runCLIText(args, stdout: false)
            XCTAssertEqual(rc, 1, "\(args): \(err)")
            XCTAssertTrue(err.contains(fragment) && !err.contains("Usage:"), "\(args): \(err)")
        }
        // An argument's own error keeps the usage block.
        let (rc, err) = try runCLIText(["compare", "--method", "pt", "--against", "nowhere"], stdout: false)
        XCTAssertEqual(rc, 64, err)
        XCTAssertTrue(err.contains("--against must be stored or published") && err.contains("Usage:"), err)
    }
}
