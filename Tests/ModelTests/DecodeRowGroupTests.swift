import Foundation
import Models
import Support
import Tensor
import XCTest

/// `T5Model.decodingRowGroups`: a greedy decode split into one group of rows per thread must give
/// every row the bits of the decode of the whole batch (each step's logits, not only the argmax),
/// the same tokens when a whole group stops early, and the same `DecodeTraffic` totals.
final class DecodeRowGroupTests: XCTestCase {
    /// Large enough that the whole batch's FFN and LM head products (9 × 1024 × 256, 9 × 2048 × 256)
    /// are split over the threads by columns, while a group's (4 and 5 rows) run serially.
    let config = T5Config(vocabSize: 2048, dModel: 256, dKv: 32, dFf: 1024, numLayers: 1, numDecoderLayers: 2, numHeads: 8)

    func testRowGroupsGiveTheWholeBatchsBits() throws {
        try XCTSkipIf(BLAS.kernel == .openblas, "row groups run with the own kernels only; OpenBLAS selected")
        let savedThreads = Parallel.threads
        Parallel.configure(threads: 2)
        defer { Parallel.configure(threads: savedThreads) }
        let m = try T5Model.random(config: config, key: RNGKey(seed: 21))
        // 9 rows: groups of 4 and 5. Only the first group has padded rows, so the whole batch and the
        // first group decode over gathered real positions while the second group does not.
        let (b, l, d, v) = (9, 30, config.dModel, config.vocabSize)
        let embeds = Tensor.normal([b, l, d], std: 1, key: RNGKey(seed: 22))
        var maskValues = [Float](repeating: 1, count: b * l)
        for j in 19..<l { maskValues[1 * l + j] = 0 }   // row 1: 19 real positions
        for j in 7..<l { maskValues[2 * l + j] = 0 }    // row 2: 7
        let mask = Tensor(shape: [b, l], values: maskValues)
        let saved = (m.crossAttentionMode, m.runtime.decodingGroupMinRows)
        defer { m.crossAttentionMode = saved.0; m.runtime.decodingGroupMinRows = saved.1; m.onDecodingStep = nil }
        let steps = 14
        for mode in [T5Model.CrossAttentionMode.auto, .absorbed, .projected] {
            m.crossAttentionMode = mode
            var tokens: [[[Int32]]] = [], logits: [[UInt32]] = [], traffic: [DecodeTraffic.Totals] = []
            for minRows in [0, 4] {
                m.runtime.decodingGroupMinRows = minRows
                XCTAssertEqual(m.decodingRowGroups(batch: b, maxNewTokens: steps), minRows == 0 ? [0..<9] : [0..<4, 4..<9], "\(mode)")
                var bits = [UInt32](repeating: 0, count: steps * b * v), firstRows = Set<Int>()
                m.onDecodingStep = { step, first, lg in
                    firstRows.insert(first)
                    for i in 0..<lg.count { bits[(step * b + first) * v + i] = lg.data[i].bitPattern }
                }
                let before = DecodeTraffic.snapshot()
                tokens.append(try m.generate(encoder: try m.encode(embeds: embeds, mask: mask, drop: .eval), encoderMask: mask,
                                             maxNewTokens: steps))
                traffic.append(DecodeTraffic.snapshot().since(before))
                logits.append(bits)
                XCTAssertEqual(firstRows, minRows == 0 ? [0] : [0, 4], "\(mode)")
            }
            XCTAssertEqual(tokens[0].map(\.count), Array(repeating: steps + 1, count: b), "\(mode): every row must decode every step")
            XCTAssertEqual(tokens[1], tokens[0], "\(mode): the row groups changed the tokens")
            let differing = zip(logits[0], logits[1]).filter { $0 != $1 }.count
            XCTAssertEqual(differing, 0, "\(mode): \(differing) logits differ in their bits")
            XCTAssertEqual(traffic[1].readBytes, traffic[0].readBytes, "\(mode)")
            XCTAssertEqual(traffic[1].attentionReadBytes, traffic[0].attentionReadBytes, "\(mode)")
            XCTAssertEqual(traffic[1].weightFlops, traffic[0].weightFlops, "\(mode)")
            XCTAssertEqual(traffic[1].flops, traffic[0].flops, "\(mode): the same products")
            XCTAssertEqual(traffic.map(\.rowSteps), [b * steps, b * steps], "\(mode): every row computed at every step")
        }
        m.onDecodingStep = nil

        // Every row of the first group stops after its second token, one row of the second after
        // its fifth: the first group's thread ends early, and its rows get pad to the batch's length.
        m.crossAttentionMode = .auto
        var cut: [[[Int32]]] = [], asked: [[Int]] = [], rowSteps: [Int] = []
        for minRows in [0, 4] {
            m.runtime.decodingGroupMinRows = minRows
            var count = [Int](repeating: 0, count: b)
            let before = DecodeTraffic.snapshot()
            cut.append(try m.generate(encoder: try m.encode(embeds: embeds, mask: mask, drop: .eval), encoderMask: mask,
                                      maxNewTokens: steps) { row, t in
                count[row] += 1
                return row < 4 ? t.count == 2 : row == 5 && t.count == 5
            })
            rowSteps.append(DecodeTraffic.snapshot().since(before).rowSteps)
            asked.append(count)
        }
        // Row-steps computed, by hand: one group keeps all 9 rows for 14 steps (126); two groups,
        // the first's 4 rows for 2 steps and the second's 5 for 14 (8 + 70).
        XCTAssertEqual(rowSteps, [9 * steps, 4 * 2 + 5 * steps])
        XCTAssertEqual(cut[1], cut[0], "a group that stops early changed the tokens")
        XCTAssertEqual(asked[1], asked[0], "the stopping criterion was asked about other rows")
        XCTAssertEqual(asked[0], [2, 2, 2, 2, steps, 5, steps, steps, steps])
        let pad = Int32(m.config.padTokenId ?? 0)
        XCTAssertTrue(cut[1][0].dropFirst(3).allSatisfy { $0 == pad })
        XCTAssertEqual(cut[1].map(\.count), Array(repeating: steps + 1, count: b))
    }
}
