import Models
import Support
import Tensor
import XCTest

/// `T5Model.generate(stopRow:)`: a row the criterion stops keeps its tokens so far and gets pad
/// afterwards; every other row gets exactly the tokens of the decode without a criterion, in each
/// cross-attention form; once every row has stopped the decode ends.
final class StoppingCriterionTests: XCTestCase {
    func testStoppedRowsKeepTheirPrefixAndOtherRowsAreUnchanged() throws {
        let m = try T5Model.random(config: EmbeddedBackbones.t5Tiny, key: RNGKey(seed: 11))
        let (b, l, d) = (4, 24, EmbeddedBackbones.t5Tiny.dModel)
        let embeds = Tensor.normal([b, l, d], std: 1, key: RNGKey(seed: 12))
        var maskValues = [Float](repeating: 1, count: b * l)
        for j in 17..<l { maskValues[2 * l + j] = 0 }
        let mask = Tensor(shape: [b, l], values: maskValues)
        let saved = m.crossAttentionMode
        defer { m.crossAttentionMode = saved }
        let pad = Int32(m.config.padTokenId ?? 0), eos = Int32(m.config.eosTokenId ?? 1)
        for mode in [T5Model.CrossAttentionMode.auto, .absorbed, .projected] {
            m.crossAttentionMode = mode
            let enc = try m.encode(embeds: embeds, mask: mask, drop: .eval)
            let full = try m.generate(encoder: enc, encoderMask: mask, maxNewTokens: 20)
            // Rows that reach EOS early cannot show the property; the random model must decode long rows.
            XCTAssertTrue(full[0].count > 12 && !full[0].dropFirst().prefix(5).contains(eos), "\(mode): row 0 ended early")
            var asked: [Int] = Array(repeating: 0, count: b)
            let stopAt = [0: 3, 3: 7]
            let cut = try m.generate(encoder: try m.encode(embeds: embeds, mask: mask, drop: .eval), encoderMask: mask, maxNewTokens: 20) { row, tokens in
                asked[row] += 1
                return stopAt[row] == tokens.count
            }
            for r in 0..<b {
                if let n = stopAt[r], !full[r].dropFirst().prefix(n).contains(eos) {
                    XCTAssertEqual(Array(cut[r].prefix(n + 1)), Array(full[r].prefix(n + 1)), "\(mode): row \(r) prefix")
                    XCTAssertTrue(cut[r].dropFirst(n + 1).allSatisfy { $0 == pad }, "\(mode): row \(r) after its stop")
                    XCTAssertEqual(asked[r], n, "\(mode): row \(r) asked after it stopped")
                } else {
                    XCTAssertEqual(cut[r], full[r], "\(mode): row \(r) changed")
                }
            }
            // Every row stopped after its second token: the decode ends there.
            let all = try m.generate(encoder: try m.encode(embeds: embeds, mask: mask, drop: .eval), encoderMask: mask, maxNewTokens: 20) { _, t in t.count == 2 }
            XCTAssertEqual(all.map(\.count), Array(repeating: 3, count: b), "\(mode)")
            XCTAssertEqual(all.map { Array($0.prefix(3)) }, full.map { Array($0.prefix(3)) }, "\(mode)")
        }
    }
}
