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
        // Absorbed: all 192 cross weights, the encoder states (3 + 2) · 8 read twice = 80: 1024 values.
        XCTAssertEqual(m.decodingStepReadBytes(batch: 2, realKeys: [3, 2], selfKeys: 2, projected: [false]), 4096)
    }

    /// A decode adds its steps' bytes to `DecodeTraffic` (the self-attention cache growing by one
    /// key a step), the FLOPs of its products and its wall seconds.
    func testDecodeAddsItsStepsBytes() throws {
        let m = try T5Model.random(config: config, key: RNGKey(seed: 2))
        m.crossAttentionMode = .projected
        let embeds = Tensor.normal([2, 3, 8], std: 1, key: RNGKey(seed: 3))
        let mask = Tensor(shape: [2, 3], values: [1, 1, 1, 1, 1, 0])
        let enc = try m.encode(embeds: embeds, mask: mask, drop: .eval)
        let bytes0 = DecodeTraffic.readBytes, decodeFlops0 = DecodeTraffic.decodeFlops, flops0 = BLAS.flops
        let seconds0 = DecodeTraffic.seconds, clock = Date()
        let tokens = try m.generate(encoder: enc, encoderMask: mask, maxNewTokens: 3)
        let wall = Date().timeIntervalSince(clock)
        XCTAssertGreaterThan(DecodeTraffic.seconds - seconds0, 0)
        XCTAssertLessThanOrEqual(DecodeTraffic.seconds - seconds0, wall, "the decode's seconds lie within the call's")
        let steps = tokens.map(\.count).max()! - 1
        XCTAssertGreaterThan(steps, 0)
        // Per step 192 + 96 + 256 + 256 + 60 = 860 values, plus 24 per self-attention key (step i has i).
        XCTAssertEqual(DecodeTraffic.readBytes - bytes0, 4 * (860 * steps + 24 * steps * (steps + 1) / 2))
        let decodeFlops = DecodeTraffic.decodeFlops - decodeFlops0
        XCTAssertGreaterThan(decodeFlops, 0)
        XCTAssertEqual(decodeFlops, BLAS.flops - flops0, "the decode's FLOPs are every product it ran")
    }
}
