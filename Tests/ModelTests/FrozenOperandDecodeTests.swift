import Models
import Support
import Tensor
import XCTest

/// Greedy decoding packs the weights and the encoder states once (`FrozenOperands`, registered by
/// `T5Model.generate`): the tokens must be those of packing every product on the fly, in each
/// cross-attention form (the absorbed form reads the encoder states at every step, `.auto` releases
/// them mid-decode when it projects K/V), and the packed path must actually run.
final class FrozenOperandDecodeTests: XCTestCase {
    func testDecodeWithPackedFrozenOperandsGivesTheSameTokens() throws {
        try XCTSkipIf(BLAS.kernel == .openblas, "packing is a property of the own kernels; OpenBLAS selected")
        let m = try T5Model.random(config: EmbeddedBackbones.t5Tiny, key: RNGKey(seed: 5))
        let (b, l, d) = (3, 40, EmbeddedBackbones.t5Tiny.dModel)
        let embeds = Tensor.normal([b, l, d], std: 1, key: RNGKey(seed: 6))
        var maskValues = [Float](repeating: 1, count: b * l)
        for j in 30..<l { maskValues[l + j] = 0 }          // row 1 padded after 30 tokens
        let mask = Tensor(shape: [b, l], values: maskValues)
        let saved = (FrozenOperands.isEnabled, m.crossAttentionMode)
        defer { FrozenOperands.isEnabled = saved.0; m.crossAttentionMode = saved.1 }
        for mode in [T5Model.CrossAttentionMode.auto, .absorbed, .projected] {
            m.crossAttentionMode = mode
            var tokens: [[[Int32]]] = []
            for packing in [false, true] {
                FrozenOperands.isEnabled = packing
                let before = FrozenOperands.productsFromPacked
                let enc = try m.encode(embeds: embeds, mask: mask, drop: .eval)
                tokens.append(try m.generate(encoder: enc, encoderMask: mask, maxNewTokens: 24))
                let used = FrozenOperands.productsFromPacked - before
                if packing { XCTAssertGreaterThan(used, 0, "\(mode): no product read a packed operand") } else { XCTAssertEqual(used, 0) }
            }
            XCTAssertEqual(tokens[0], tokens[1], "\(mode): packed frozen operands changed the decode")
            XCTAssertGreaterThan(tokens[0].map(\.count).max()!, 16, "\(mode): the decode must run many steps")
        }
    }

    /// Decodes shorter than `T5Model.packedDecodingMinSteps` keep no packed copies (for as much
    /// memory as the weights they would save at most five packing passes): no product reads one,
    /// while a decode of that many steps does.
    func testShortDecodesPackOnTheFly() throws {
        try XCTSkipIf(BLAS.kernel == .openblas, "packing is a property of the own kernels; OpenBLAS selected")
        let m = try T5Model.random(config: EmbeddedBackbones.t5Tiny, key: RNGKey(seed: 5))
        let (b, l, d) = (3, 40, EmbeddedBackbones.t5Tiny.dModel)
        let embeds = Tensor.normal([b, l, d], std: 1, key: RNGKey(seed: 6))
        let mask = Tensor(shape: [b, l], values: [Float](repeating: 1, count: b * l))
        let steps = T5Model.packedDecodingMinSteps
        var used: [Int] = [], decoded: [[[Int32]]] = []
        for n in [steps - 1, steps] {
            let before = FrozenOperands.productsFromPacked
            let tokens = try m.generate(encoder: try m.encode(embeds: embeds, mask: mask, drop: .eval), encoderMask: mask, maxNewTokens: n)
            XCTAssertEqual(tokens.map(\.count).max(), n + 1, "the decode must run all \(n) steps")
            used.append(FrozenOperands.productsFromPacked - before)
            decoded.append(tokens)
        }
        // Greedy decoding is prefix-consistent: the short decode's tokens are the long one's first.
        XCTAssertEqual(decoded[0], decoded[1].map { Array($0.prefix(steps)) })
        XCTAssertEqual(used[0], 0, "a \(steps - 1)-step decode read packed copies")
        XCTAssertGreaterThan(used[1], 0, "a \(steps)-step decode read no packed copy")
    }
}
