import Foundation
import Models
import Support
import Tensor
import XCTest

/// `T5Model.decodingStepReadBytes`, the bytes model of `bench-e2e`'s memory bound, on a config
/// small enough to count by hand: d_model 8, 2 heads of d_kv 3 (inner 6), d_ff 16, one decoder
/// layer, vocabulary 32, tied head. Its matrices: self q, k, v [6, 8] and o [8, 6] (4 × 48 = 192
/// values), cross the same (192, of which k and v are 96), wi [16, 8] and wo [8, 16] (256), head
/// [32, 8] (256).
final class DecodeTrafficTests: XCTestCase {
    let config = T5Config(vocabSize: 32, dModel: 8, dKv: 3, dFf: 16, numLayers: 1, numHeads: 2)

    func testStepBytesCountedByHand() throws {
        let m = try T5Model.random(config: config, key: RNGKey(seed: 2))
        // Two rows with 3 and 2 real encoder positions, 2 self-attention keys so far.
        // Projected: 192 + (192 − 96) + 256 + 256 weights, (3 + 2) · 2 · 6 = 60 cross K/V values,
        // 2 · 2 · 2 · 6 = 48 self K/V values: 908 values, 3632 bytes.
        XCTAssertEqual(m.decodingStepReadBytes(batch: 2, realKeys: [3, 2], selfKeys: 2, projected: [true]), 3632)
        // Absorbed: all 192 cross weights, the encoder states (3 + 2) · 8 = 40 once: 984 values.
        XCTAssertEqual(m.decodingStepReadBytes(batch: 2, realKeys: [3, 2], selfKeys: 2, projected: [false]), 3936)
        // The attention's part. Projected: the 60 cross K/V values and the 48 self K/V values, 432
        // bytes. Absorbed: the 40 encoder-state values and the 48 self K/V values, 352 bytes.
        XCTAssertEqual(m.decodingStepAttentionReadBytes(batch: 2, realKeys: [3, 2], selfKeys: 2, projected: [true]), 432)
        XCTAssertEqual(m.decodingStepAttentionReadBytes(batch: 2, realKeys: [3, 2], selfKeys: 2, projected: [false]), 352)
    }

    /// A decode adds its steps' bytes to `DecodeTraffic` (the self-attention cache growing by one
    /// key a step) in the cross-attention form it runs, of them the attention's, the FLOPs of its
    /// weight products and of all its products, and its wall seconds.
    func testDecodeAddsItsStepsBytes() throws {
        let m = try T5Model.random(config: config, key: RNGKey(seed: 2))
        let embeds = Tensor.normal([2, 3, 8], std: 1, key: RNGKey(seed: 3))
        let mask = Tensor(shape: [2, 3], values: [1, 1, 1, 1, 1, 0])
        // Per step: weights, projected 192 + 96 + 256 + 256 = 800 values, absorbed 192 + 192 + 256
        // + 256 = 896; attention, projected 60 cross K/V values, absorbed 40 encoder-state values,
        // plus 24 per cached key (step i has i). The weight products: 2 FLOPs per weight value and row.
        for (mode, weights, crossValues) in [(T5Model.CrossAttentionMode.projected, 800, 60), (.absorbed, 896, 40)] {
            m.crossAttentionMode = mode
            let enc = try m.encode(embeds: embeds, mask: mask, drop: .eval)
            let before = DecodeTraffic.snapshot(), flops0 = BLAS.flops, clock = DispatchTime.now().uptimeNanoseconds
            let tokens = try m.generate(encoder: enc, encoderMask: mask, maxNewTokens: 3)
            let wall = Double(DispatchTime.now().uptimeNanoseconds - clock) / 1e9
            let d = DecodeTraffic.snapshot().since(before)
            XCTAssertGreaterThan(d.seconds, 0, "\(mode)")
            XCTAssertLessThanOrEqual(d.seconds, wall, "\(mode): the decode's seconds lie within the call's")
            let steps = tokens.map(\.count).max()! - 1
            XCTAssertGreaterThan(steps, 0, "\(mode)")
            let attention = crossValues * steps + 24 * steps * (steps + 1) / 2
            XCTAssertEqual(d.attentionReadBytes, 4 * attention, "\(mode)")
            XCTAssertEqual(d.readBytes, 4 * (weights * steps + attention), "\(mode)")
            XCTAssertEqual(d.weightFlops, 2 * 2 * weights * steps, "\(mode)")
            XCTAssertEqual(d.rowSteps, 2 * steps, "\(mode): both rows at every step")
            XCTAssertEqual(d.flops, BLAS.flops - flops0, "\(mode): the decode's FLOPs are every product it ran")
            if mode == .projected {
                // Every product by hand: K and V of the 5 real encoder rows once (2 · 5 · 6 · 8 each);
                // per step i the weight products (3200), the cross-attention's scores and P·V over
                // each row's real keys (2 · 3 · n each, per head and row: 12 · (3 + 2) · 2 heads = 120)
                // and the self-attention's over the i cached keys (12 · i · 2 heads · 2 rows = 48 i).
                XCTAssertEqual(d.flops, 2 * 480 + (3200 + 120) * steps + 48 * steps * (steps + 1) / 2)
            } else {
                XCTAssertGreaterThan(d.flops, d.weightFlops)
            }
        }
    }
}
