import Foundation
@testable import Models
import Support
import Tensor
import XCTest

/// T5's relative position bias has a hand-written backward (`T5Model.positionBias`: a gather from
/// the [num_buckets, H] table, scatter-added back), checked here against central finite
/// differences as every Tensor op is: the encoder's bidirectional table, the decoder's causal one
/// with a query offset (a decoding step: the query at position `offset`), and distances past
/// `relative_attention_max_distance` (the last, clamped bucket collects many positions).
final class PositionBiasGradientTests: XCTestCase {
    func testPositionBiasGradientMatchesFiniteDifferences() throws {
        let model = try T5Model.random(config: EmbeddedBackbones.t5Tiny, key: RNGKey(seed: 3))
        let heads = model.config.numHeads, buckets = model.config.buckets
        let cases: [(bidirectional: Bool, tq: Int, tk: Int, offset: Int)] = [
            (true, 7, 7, 0), (true, 3, 200, 0), (false, 6, 6, 0), (false, 5, 9, 4), (false, 1, 160, 159)]
        for (n, c) in cases.enumerated() {
            let label = "\(c.bidirectional ? "bidirectional" : "causal") \(c.tq)×\(c.tk) offset \(c.offset)"
            let table = Tensor.uniform([buckets, heads], lo: -1, hi: 1, key: RNGKey(seed: 41, stream: UInt64(n)), requiresGrad: true)
            let w = RNGKey(seed: 42, stream: UInt64(n)).uniformArray(heads * c.tq * c.tk, lo: -1, hi: 1)
            func bias() -> Tensor { model.positionBias(table, tq: c.tq, tk: c.tk, queryOffset: c.offset, bidirectional: c.bidirectional) }
            // L = Σ w·bias, accumulated in Double.
            func project(_ t: Tensor) -> Double { (0..<t.count).reduce(0.0) { $0 + Double(w[$1]) * Double(t.data[$1]) } }
            XCTAssertEqual(bias().shape, [heads, c.tq, c.tk], label)
            let tape = Tape()
            let loss = try tape.record { sum(try mul(bias(), Tensor(shape: [heads, c.tq, c.tk], values: w))) }
            tape.backward(loss)
            let g = try XCTUnwrap(table.grad, label)
            var worst = 0.0, nonzero = 0
            let h: Float = 1e-2
            for i in 0..<table.count {
                let orig = table.data[i]
                table.data[i] = orig + h
                let up = project(bias())
                table.data[i] = orig - h
                let down = project(bias())
                table.data[i] = orig
                let numeric = (up - down) / Double(2 * h), analytic = Double(g.data[i])
                let q = abs(analytic - numeric) / (1e-4 + 1e-3 * abs(numeric))
                XCTAssertTrue(q <= 1, "\(label): table[\(i / heads), \(i % heads)]: analytic \(analytic) vs numeric \(numeric)")
                worst = max(worst, q.isNaN ? .infinity : q)
                if numeric != 0 { nonzero += 1 }
            }
            // Every head of every bucket the positions reach gets a gradient (short sequences
            // reach only the exact buckets of small distances).
            XCTAssertGreaterThanOrEqual(nonzero, heads * 4, "\(label): too few table entries reached")
            print(String(format: "position bias %@: worst error/tolerance %.3f over %d entries (%d with a gradient)", label, worst, table.count, nonzero))
        }
    }
}
