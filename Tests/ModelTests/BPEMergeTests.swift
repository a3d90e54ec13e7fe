import Foundation
@testable import Models
import TestSupport
import XCTest

/// The heap-ordered BPE merge against encoder.py's quadratic loop (OpenAI's GPT-2 reference, kept
/// here as `mergeQuadratic`) with GPT-2's real merges, on words of every kind: repeated letters (the
/// overlapping-pair case "aaaa"), digits, mixed scripts, random bytes. Both must give the same parts;
/// the ids of the long words also match transformers' in TokenizerTests' goldens and shared fixtures.
final class BPEMergeTests: XCTestCase {
    func testHeapMergeGivesEncoderPysParts() throws {
        let tok = try XCTUnwrap(try Tokenizers.load(directory: "\(try sharedDir())/models/gpt2-tokenizer") as? BPETokenizer)
        var rng = SplitMix(state: 21)  // fixed words, run to run
        var words = ["a", "aa", "aaa", "aaaa", "aaaaaaaaaaaaaaaaaaaaa", "ababababab", "lowerlowest", " the", " antidisestablishmentarianism",
                     "1234567890123", "!!!!!!!!", "naïve", "漢字漢字", "🤖🤖🤖", "Ġ", "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"]
        let alphabets = [Array("abcdefghijklmnopqrstuvwxyz"), Array("aeiou"), Array("ab"), Array("0123456789"), Array("ésñü漢🤖 .")]
        for _ in 0..<300 {
            let a = alphabets[Int.random(in: 0..<alphabets.count, using: &rng)]
            words.append(String((0..<Int.random(in: 1...80, using: &rng)).map { _ in a[Int.random(in: 0..<a.count, using: &rng)] }))
        }
        for w in words {
            let parts = w.utf8.map { String(tok.byteToChar[Int($0)]) }
            XCTAssertEqual(BPETokenizer.merge(parts, ranks: tok.ranks), mergeQuadratic(parts, ranks: tok.ranks), w)
        }
        // A 100,000-letter word: one encode (the quadratic loop took about 30 s at this length).
        let long = String(repeating: "abcdefghij", count: 10_000)
        XCTAssertFalse(tok.encode(long).isEmpty)
    }
}

/// SplitMix64 (Steele et al. 2014): a fixed stream for generated test inputs.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The loop as encoder.py writes it (quadratic in the word's length): the reference
/// `BPETokenizer.merge` is tested against.
func mergeQuadratic(_ initial: [String], ranks: [String: Int]) -> [String] {
    var parts = initial
    while parts.count > 1 {
        var best = Int.max, at = -1
        for i in 0..<(parts.count - 1) {
            if let r = ranks[parts[i] + " " + parts[i + 1]], r < best { best = r; at = i }
        }
        if at < 0 { break }
        let (a, b) = (parts[at], parts[at + 1])
        var merged: [String] = []
        var i = 0
        while i < parts.count {
            if i < parts.count - 1 && parts[i] == a && parts[i + 1] == b { merged.append(a + b); i += 2 } else { merged.append(parts[i]); i += 1 }
        }
        parts = merged
    }
    return parts
}
