import Foundation
import Models
import Tasks
import XCTest

/// Inputs that crashed a libFuzzer target (fuzz/regressions/<target>-*.): each must now give an
/// error or a result, never a crash. `make fuzz` writes new crash inputs to fuzz/crashes/.
final class FuzzRegressionTests: XCTestCase {
    func testReplayRegressions() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../fuzz").standardized.path
        var replayed = 0
        for dir in ["regressions", "crashes", "corpus/safetensors", "corpus/jsonl", "corpus/tokenizer"] {
            for f in (try? FileManager.default.contentsOfDirectory(atPath: "\(root)/\(dir)")) ?? [] where !f.hasPrefix(".") {
                let data = try Data(contentsOf: URL(fileURLWithPath: "\(root)/\(dir)/\(f)"))
                let target = dir.hasPrefix("corpus/") ? String(dir.dropFirst(7)) : String(f.prefix { $0 != "-" })
                switch target {
                case "safetensors":
                    _ = data.withUnsafeBytes { try? SafeTensorsHeader.parse($0, path: f) }
                case "jsonl":
                    let text = String(decoding: data, as: UTF8.self)
                    _ = try? Readers.superGLUE(text, path: f); _ = try? Readers.multiRC(text, path: f); _ = try? Readers.reCoRD(text, path: f)
                    _ = try? Readers.tsv(text, path: f); _ = try? Readers.agNews(text, path: f)
                case "tokenizer":
                    if let tok = try? Tokenizers.fromJSON(data, path: f) { _ = tok.decode(tok.encode("Hello wörld </s>"), skipSpecialTokens: true) }
                default:
                    XCTFail("\(dir)/\(f): name it <target>-… with target safetensors, jsonl or tokenizer")
                }
                replayed += 1
            }
        }
        XCTAssertGreaterThan(replayed, 5)
        // The overflow the tokenizer fuzzer found is now a clear error.
        let overflow = try Data(contentsOf: URL(fileURLWithPath: "\(root)/regressions/tokenizer-template-id-overflow.json"))
        XCTAssertThrowsError(try Tokenizers.fromJSON(overflow, path: "t.json")) { XCTAssertTrue("\($0)".contains("out of range"), "\($0)") }
    }
}
