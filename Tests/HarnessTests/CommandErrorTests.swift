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
        // A tokenizer of another model (32,100 tokens beside tiny-random-t5's 1,302-row table):
        // refused before training, naming the tokenizer file and config.json (it failed on the
        // first id past the table, "id 17398 outside table of 1302 rows", naming neither).
        let shared = try sharedDir(), data = try sharedData()
        try FileManager.default.copyItem(atPath: "\(shared)/models/tiny-random-t5", toPath: "\(dir)/model")
        try FileManager.default.removeItem(atPath: "\(dir)/model/tokenizer.json")
        try FileManager.default.copyItem(atPath: "\(shared)/models/t5-tokenizer/tokenizer.json", toPath: "\(dir)/model/tokenizer.json")
        let (trc, terr) = try runCLIText(["train", "--method", "pt", "--task", "cb", "--k", "8", "--max-steps", "0", "--eval-limit", "2",
                                          "--model", "\(dir)/model", "--data-dir", data], stdout: false)
        XCTAssertNotEqual(trc, 0)
        XCTAssertTrue(terr.contains("\(dir)/model/tokenizer.json: the tokenizer has 32100 tokens") && terr.contains("\(dir)/model/config.json")
                      && terr.contains("has 1302 rows"), terr)
        // An argument's own error keeps the usage block.
        let (rc, err) = try runCLIText(["compare", "--method", "pt", "--against", "nowhere"], stdout: false)
        XCTAssertEqual(rc, 64, err)
        XCTAssertTrue(err.contains("--against must be stored or published") && err.contains("Usage:"), err)
    }
}
