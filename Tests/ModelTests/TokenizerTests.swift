import Foundation
import Models
import XCTest

final class TokenizerTests: XCTestCase {
    /// shared/parity/tokenizer-*-example.json: texts and the ids transformers produced.
    func checkFixture(_ file: String, tokenizerDir: String, file f: StaticString = #filePath, line: UInt = #line) throws {
        let root = try sharedDir()
        let obj = try readJSON("\(root)/parity/\(file)") as! [String: Any]
        let texts = obj["texts"] as! [String]
        let ids = obj["ids"] as! [[Int]]
        let tok = try Tokenizers.load(directory: "\(root)/models/\(tokenizerDir)")
        var ok = 0
        for (t, e) in zip(texts, ids) {
            let got = tok.encode(t).map(Int.init)
            if got == e { ok += 1 } else { XCTFail("\(file): \(t.debugDescription)\n got \(got)\n exp \(e)", file: f, line: line) }
        }
        print("\(file): \(ok)/\(texts.count) texts match")
    }

    func testT5TokenizerJSONMatchesTransformers() throws {
        try checkFixture("tokenizer-t5-example.json", tokenizerDir: "t5-tokenizer")
    }

    func testGPT2TokenizerJSONMatchesTransformers() throws {
        try checkFixture("tokenizer-gpt2-example.json", tokenizerDir: "gpt2-tokenizer")
    }

    /// spiece.model gives the same ids as tokenizer.json except for the literal "</s>" case (FORMAT §2).
    func testSpieceModelAgreesWithTokenizerJSON() throws {
        let root = try sharedDir()
        let dir = NSTemporaryDirectory() + "spiece-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.copyItem(atPath: "\(root)/models/t5-tokenizer/spiece.model", toPath: "\(dir)/spiece.model")
        let spm = try Tokenizers.load(directory: dir)
        let json = try Tokenizers.load(directory: "\(root)/models/t5-tokenizer")
        let obj = try readJSON("\(root)/parity/tokenizer-t5-example.json") as! [String: Any]
        for t in obj["texts"] as! [String] where !t.contains("</s>") {
            XCTAssertEqual(spm.encode(t), json.encode(t), t.debugDescription)
        }
    }

    func testT5DecodeSkipsSpecialTokens() throws {
        let tok = try Tokenizers.load(directory: "\(try sharedDir())/models/t5-tokenizer")
        let ids = tok.encode("The quick brown fox, isn't it?")
        XCTAssertEqual(tok.decode(ids, skipSpecialTokens: true), "The quick brown fox, isn't it?")
        XCTAssertEqual(tok.decode([0] + tok.encode("entailment") + [0, 0], skipSpecialTokens: true), "entailment")
        XCTAssertTrue(tok.decode(ids, skipSpecialTokens: false).hasSuffix("</s>"))
    }

    func testGPT2RoundTrip() throws {
        let tok = try Tokenizers.load(directory: "\(try sharedDir())/models/gpt2-tokenizer")
        for t in ["Hello  world\n\n it's 2023!", "naïve café 漢字 🤖", "  lead", "trail  "] {
            XCTAssertEqual(tok.decode(tok.encode(t), skipSpecialTokens: false), t)
        }
    }

    func testByteTokenizer() throws {
        let tok = try Tokenizers.load(directory: "byte")
        XCTAssertEqual(tok.encode("hi"), [104 + 3, 105 + 3, 1])
        XCTAssertEqual(tok.encode("a</s>"), [97 + 3, 1, 1])
        XCTAssertEqual(tok.decode(tok.encode("é ok"), skipSpecialTokens: true), "é ok")
    }

    func testMalformedTokenizerJSONNamesFile() throws {
        let dir = NSTemporaryDirectory() + "badtok-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\"]]}}".write(toFile: "\(dir)/tokenizer.json", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try Tokenizers.load(directory: dir)) { e in
            XCTAssertTrue("\(e)".contains("tokenizer.json") && "\(e)".contains("vocab[0]"), "\(e)")
        }
        try "{\"model\": ".write(toFile: "\(dir)/tokenizer.json", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try Tokenizers.load(directory: dir)) { e in
            XCTAssertTrue("\(e)".contains("malformed JSON"), "\(e)")
        }
    }
}
