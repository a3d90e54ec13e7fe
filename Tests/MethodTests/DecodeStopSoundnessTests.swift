import Foundation
import Models
import Support
import Tasks
import TestSupport
import XCTest

/// Soundness of `DecodeStop.noLabel` with the real T5 tokenizer: a token sequence whose decoded,
/// stripped text IS a label (how `Metrics.rows` reads predictions) is never stopped at any of its
/// prefixes; and the rule does stop sequences that can no longer name one. Sequences mix label
/// tokens with tokens that decode to nothing (pad, sentinels, ids past the pieces), bare "▁",
/// punctuation the clean-up moves ("▁.", "▁'", "n't"), and random vocabulary.
final class DecodeStopSoundnessTests: XCTestCase {
    func testNoSequenceThatNamesALabelIsStoppedAtAnyPrefix() throws {
        let tok = try Tokenizers.load(directory: "\(try sharedDir())/models/t5-tokenizer")
        let labelSets = [["entailment", "contradiction", "neutral"], ["0", "1", "2"], ["not_entailment", "entailment"],
                         ["don't know", "yes", "no"], ["True", "False"], ["caf\u{E9}", "na\u{EF}ve"], ["A.", "B ."], ["don't", "isn't it"]]
        let eos = tok.eosId ?? 1
        func body(_ s: String) -> [Int32] { tok.encode(s).filter { $0 != eos } }
        let noise: [[Int32]] = [[0], [32099], [32127], body(" "), body("."), body(" ."), body("'"), body("n't"), body("x"),
                                body(" the"), body("é"), []]
        var rng = PhiloxStream(RNGKey(seed: 42))
        var named = 0, stopped = 0
        for labels in labelSets {
            let reach = LabelReachability(labels: labels)
            for _ in 0..<600 {
                var seq: [Int32] = []
                for _ in 0..<rng.nextInt(below: 3) { seq += noise[rng.nextInt(below: noise.count)] }
                if rng.nextInt(below: 4) != 0 {
                    // The label's tokens, or its characters cut into pieces encoded one by one (each
                    // piece gets SentencePiece's "▁": the clean-up may delete it again, as in "do n't").
                    let label = Array(labels[rng.nextInt(below: labels.count)])
                    var cuts = Set<Int>()
                    if rng.nextInt(below: 2) == 0, label.count > 1 { for _ in 0..<2 { cuts.insert(1 + rng.nextInt(below: label.count - 1)) } }
                    var from = 0
                    for c in cuts.sorted() + [label.count] { seq += body(String(label[from..<c])); from = c }
                }
                for _ in 0..<rng.nextInt(below: 3) {
                    seq += rng.nextInt(below: 2) == 0 ? noise[rng.nextInt(below: noise.count)] : [Int32(3 + rng.nextInt(below: 31_997))]
                }
                guard !seq.isEmpty else { continue }
                let final = pyStrip(tok.decode(seq, skipSpecialTokens: true))
                let firstStop = (1...seq.count).first { !reach.canStillNameALabel(tok.decode(Array(seq.prefix($0)), skipSpecialTokens: true)) }
                if labels.contains(final) {
                    named += 1
                    XCTAssertNil(firstStop, "\(labels): \(seq) decodes to the label \(final.debugDescription) but stops after \(firstStop ?? 0) tokens")
                }
                if let n = firstStop {
                    stopped += 1
                    // A stopped row's prediction (its text so far) names no label either: the score is unchanged.
                    XCTAssertFalse(labels.contains(pyStrip(tok.decode(Array(seq.prefix(n)), skipSpecialTokens: true))))
                }
            }
        }
        // The property must be exercised both ways.
        XCTAssertGreaterThan(named, 400)
        XCTAssertGreaterThan(stopped, 1000)
        print("decode-stop soundness: \(named) sequences name a label, \(stopped) stopped early")
    }

    /// A byte decoder shows an incomplete UTF-8 sequence as U+FFFD: the first byte of "é" must not
    /// stop a row whose label is "é" (the last character is not trusted).
    func testIncompleteBytesDoNotStopARow() {
        let tok = ByteTokenizer(addEOS: false)
        let reach = LabelReachability(labels: ["é", "no"])
        let ids = tok.encode("é")
        XCTAssertEqual(ids.count, 2)
        XCTAssertEqual(tok.decode([ids[0]], skipSpecialTokens: true), "\u{FFFD}")
        XCTAssertTrue(reach.canStillNameALabel(tok.decode([ids[0]], skipSpecialTokens: true)))
        XCTAssertTrue(reach.canStillNameALabel(tok.decode(ids, skipSpecialTokens: true)))
        XCTAssertFalse(reach.canStillNameALabel(tok.decode(tok.encode("éa!"), skipSpecialTokens: true)))
    }
}
