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
    }

    /// A decode adds its steps' bytes to `DecodeTraffic` (the self-attention cache growing by one
    /// key a step) in the cross-attention form it runs, the FLOPs of its products and its wall seconds.
    func testDecodeAddsItsStepsBytes() throws {
        let m = try T5Model.random(config: config, key: RNGKey(seed: 2))
        let embeds = Tensor.normal([2, 3, 8], std: 1, key: RNGKey(seed: 3))
        let mask = Tensor(shape: [2, 3], values: [1, 1, 1, 1, 1, 0])
        // Per step, before the self-attention cache: projected 192 + 96 + 256 + 256 + 60 = 860
        // values; absorbed 192 + 192 + 256 + 256 + 40 = 936. Plus 24 per cached key (step i has i).
        for (mode, fixed) in [(T5Model.CrossAttentionMode.projected, 860), (.absorbed, 936)] {
            m.crossAttentionMode = mode
            let enc = try m.encode(embeds: embeds, mask: mask, drop: .eval)
            let bytes0 = DecodeTraffic.readBytes, decodeFlops0 = DecodeTraffic.decodeFlops, flops0 = BLAS.flops
            let seconds0 = DecodeTraffic.seconds, clock = DispatchTime.now().uptimeNanoseconds
            let tokens = try m.generate(encoder: enc, encoderMask: mask, maxNewTokens: 3)
            let wall = Double(DispatchTime.now().uptimeNanoseconds - clock) / 1e9
            XCTAssertGreaterThan(DecodeTraffic.seconds - seconds0, 0, "\(mode)")
            XCTAssertLessThanOrEqual(DecodeTraffic.seconds - seconds0, wall, "\(mode): the decode's seconds lie within the call's")
            let steps = tokens.map(\.count).max()! - 1
            XCTAssertGreaterThan(steps, 0, "\(mode)")
            XCTAssertEqual(DecodeTraffic.readBytes - bytes0, 4 * (fixed * steps + 24 * steps * (steps + 1) / 2), "\(mode)")
            let decodeFlops = DecodeTraffic.decodeFlops - decodeFlops0
            XCTAssertGreaterThan(decodeFlops, 0, "\(mode)")
            XCTAssertEqual(decodeFlops, BLAS.flops - flops0, "\(mode): the decode's FLOPs are every product it ran")
        }
    }
}
