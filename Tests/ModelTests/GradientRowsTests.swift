import Support
import Foundation
import Methods
import Models
@testable import Tensor
import XCTest

/// A soft prompt before frozen token embeddings needs the first layer's input gradients at its
/// own positions only (Sources/Tensor/GradientRows.swift): the prompt's gradient and the loss
/// must keep every bit of the full computation, with fewer FLOPs when the prompt spans at least
/// 32 positions and the same FLOPs when it is shorter, on T5 (padding, dropout) and GPT-2, with
/// every own GEMM kernel of this CPU.
final class GradientRowsTests: XCTestCase {
    /// (loss bits, prompt gradient bits, GEMM FLOPs of the step) with marks on or off.
    func step(_ enabled: Bool, _ body: () throws -> (Tensor, Tensor)) throws -> (UInt32, [UInt32], Int) {
        GradientRows.isEnabled = enabled
        defer { GradientRows.isEnabled = true }
        let flops0 = BLAS.flops
        let (loss, prompt) = try body()
        return (loss.array[0].bitPattern, prompt.grad!.array.map(\.bitPattern), BLAS.flops - flops0)
    }

    /// Three ways the encoder runs in training: plainly, over each row's real positions (the
    /// training loss's `withEncoderOverRealPositions`: `PaddedRows` and shortened attention
    /// blocks, so the marks are clamped to each row's real span), and with its self-attention
    /// checkpointed (run again in backward).
    func testT5PromptGradientKeepsItsBitsWithFewerFLOPs() throws {
        let kernels = BLAS.availableKernels.filter { $0 != .openblas }
        try XCTSkipIf(kernels.isEmpty, "no own GEMM kernel runs on this CPU")
        let config = T5Config(vocabSize: 300, dModel: 64, dKv: 16, dFf: 128, numLayers: 2, numHeads: 4)
        let B = 3, L = 30
        let ids: [Int32] = (0..<(B * L)).map { Int32(3 + ($0 * 37) % 290) }
        var mask = [Float](repeating: 1, count: B * L)
        for t in 12..<L { mask[1 * L + t] = 0 }   // row 1 padded after 12 tokens
        let labels: [Int32] = [40, 41, 1, 42, 1, 0, 43, 44, 1]
        for mode in ["plain", "real positions", "checkpointed"] {
            let m = try T5Model.random(config: config, key: RNGKey(seed: 61))
            if mode == "checkpointed" { m.checkpointSelfAttention = true }
            for kernel in kernels {
                try BLAS.withKernel(kernel) {
                    for n in [40, 8] {   // 40 prompt positions: marked rows computed alone; 8: below 32, all rows
                        let p = Tensor.normal([n, 64], std: 0.5, key: RNGKey(seed: UInt64(62 + n)), requiresGrad: true)
                        func run() throws -> (Tensor, Tensor) {
                            p.zeroGrad()
                            let tape = Tape()
                            let drop = DropoutContext(key: RNGKey(seed: 63), p: 0.1)
                            let out = try tape.record { () -> T5Model.Output in
                                let (e, em) = try Injection(prompt: p).inputs(for: m, inputIds: ids, attentionMask: mask, batch: B)
                                if n >= 32 { XCTAssertEqual(e.gradientRows?.positions, GradientRows.isEnabled ? 0..<n : nil) }
                                let forward = { try m.forward(inputsEmbeds: e, attentionMask: em, labels: labels, drop: drop) }
                                return try mode == "real positions" ? m.withEncoderOverRealPositions(forward) : forward()
                            }
                            tape.backward(out.loss)
                            return (out.loss, p)
                        }
                        let on = try step(true, run), off = try step(false, run)
                        let what = "\(mode), \(kernel), n \(n)"
                        XCTAssertEqual(on.0, off.0, "\(what): loss")
                        XCTAssertEqual(on.1, off.1, "\(what): prompt gradient")
                        XCTAssertTrue(on.1.contains { $0 != 0 }, "a gradient of zeros would prove nothing")
                        if n >= 32 {
                            XCTAssertLessThan(on.2, off.2, "\(what): the first layer's input gradients over the prompt rows only")
                        } else {
                            XCTAssertEqual(on.2, off.2, "\(what): a span below 32 positions computes every row")
                        }
                    }
                }
            }
        }
    }

    func testGPT2PromptGradientKeepsItsBitsWithFewerFLOPs() throws {
        let kernels = BLAS.availableKernels.filter { $0 != .openblas }
        try XCTSkipIf(kernels.isEmpty, "no own GEMM kernel runs on this CPU")
        let config = GPT2Config(vocabSize: 300, nEmbd: 64, nLayer: 2, nHead: 4, nPositions: 128)
        let m = try GPT2Model.random(config: config, key: RNGKey(seed: 71))
        let B = 2, L = 20, n = 36
        let ids: [Int32] = (0..<(B * L)).map { Int32(5 + ($0 * 29) % 280) }
        let mask = [Float](repeating: 1, count: B * L)
        let labels = promptedLabels(ids, batch: B, promptRows: n)
        let p = Tensor.normal([n, 64], std: 0.5, key: RNGKey(seed: 72), requiresGrad: true)
        for kernel in kernels {
            try BLAS.withKernel(kernel) {
                func run() throws -> (Tensor, Tensor) {
                    p.zeroGrad()
                    let tape = Tape()
                    let out = try tape.record { () -> GPT2Model.Output in
                        let (e, em) = try Injection(prompt: p).inputs(for: m, inputIds: ids, attentionMask: mask, batch: B)
                        return try m.forward(inputsEmbeds: e, attentionMask: em, labels: labels, drop: DropoutContext(key: RNGKey(seed: 73), p: 0.1))
                    }
                    tape.backward(out.loss)
                    return (out.loss, p)
                }
                let on = try step(true, run), off = try step(false, run)
                XCTAssertEqual(on.0, off.0, "\(kernel): loss")
                XCTAssertEqual(on.1, off.1, "\(kernel): prompt gradient")
                XCTAssertTrue(on.1.contains { $0 != 0 })
                XCTAssertLessThan(on.2, off.2, "\(kernel): the first layer's input gradients over the prompt rows only")
            }
        }
    }

    /// Only what a trainable input reaches is marked: trainable token embeddings (full
    /// fine-tuning) leave the injected embeddings unmarked, and a linear layer whose weight trains
    /// passes no mark on.
    func testMarksFollowOnlyFrozenRowWiseOps() throws {
        let tape = Tape()
        try tape.record {
            let p = Tensor(shape: [4, 8], values: [Float](repeating: 0.1, count: 32), requiresGrad: true)
            let frozen = Tensor(zeros: [2, 40, 8]), trainable = Tensor(zeros: [2, 40, 8], requiresGrad: true)
            let e = try concat([repeatBatch(p, 2), frozen], axis: 1)
            XCTAssertEqual(e.gradientRows?.positions, 0..<4)
            XCTAssertNil(try concat([repeatBatch(p, 2), trainable], axis: 1).gradientRows)
            let w = Tensor(zeros: [8, 8]), wt = Tensor(zeros: [8, 8], requiresGrad: true)
            XCTAssertEqual(try linear(e, w).gradientRows?.positions, 0..<4)
            XCTAssertNil(try linear(e, wt).gradientRows)
            XCTAssertEqual(try rmsNorm(e, weight: Tensor(zeros: [8]), eps: 1e-6).gradientRows?.positions, 0..<4)
            XCTAssertNil(try mul(e, e).gradientRows)
            let c = Tensor(zeros: [44, 8]), ct = Tensor(zeros: [44, 8], requiresGrad: true), kv = Tensor(zeros: [2, 44, 8])
            XCTAssertEqual(try add(e, c).gradientRows?.positions, 0..<4)   // a constant on either side
            XCTAssertEqual(try add(c, e).gradientRows?.positions, 0..<4)
            XCTAssertNil(try add(e, ct).gradientRows)
            XCTAssertEqual(try narrow(e, axis: 2, start: 2, length: 4).gradientRows?.positions, 0..<4)
            XCTAssertNil(try narrow(e, axis: 1, start: 0, length: 20).gradientRows)   // other rows
            // Attention passes q's mark on only while K, V and the bias need no gradient.
            XCTAssertEqual(try attention(q: e, k: kv, v: kv, heads: 2).gradientRows?.positions, 0..<4)
            XCTAssertNil(try attention(q: e, k: e, v: kv, heads: 2).gradientRows)
        }
    }

    /// Attention whose K and V are frozen: the marked queries' gradient (dQ over the prompt rows
    /// alone, from dO rows of which only the marked ones are computed downstream) keeps its bits.
    func testAttentionWithFrozenKeysAndValuesKeepsTheQueryGradientBits() throws {
        let kernels = BLAS.availableKernels.filter { $0 != .openblas }
        try XCTSkipIf(kernels.isEmpty, "no own GEMM kernel runs on this CPU")
        let B = 2, n = 36, L = 24, d = 16, S = n + L
        let p = Tensor(shape: [n, d], values: RNGKey(seed: 81).uniformArray(n * d, lo: -1, hi: 1), requiresGrad: true)
        let tokens = Tensor(shape: [B, L, d], values: RNGKey(seed: 82).uniformArray(B * L * d, lo: -1, hi: 1))
        let k = Tensor(shape: [B, S, d], values: RNGKey(seed: 83).uniformArray(B * S * d, lo: -1, hi: 1))
        let v = Tensor(shape: [B, S, d], values: RNGKey(seed: 84).uniformArray(B * S * d, lo: -1, hi: 1))
        let w = Tensor(shape: [d, d], values: RNGKey(seed: 85).uniformArray(d * d, lo: -0.5, hi: 0.5))
        let g = Tensor(shape: [B, S, d], values: RNGKey(seed: 86).uniformArray(B * S * d, lo: -1, hi: 1))
        for kernel in kernels {
            try BLAS.withKernel(kernel) {
                func run() throws -> (Tensor, Tensor) {
                    p.zeroGrad()
                    let tape = Tape()
                    let loss = try tape.record { () -> Tensor in
                        let e = try concat([repeatBatch(p, B), tokens], axis: 1)
                        let o = try attention(q: e, k: k, v: v, heads: 2, options: AttentionOptions(scale: 0.25, dropout: 0.1, key: RNGKey(seed: 87)))
                        return sum(try mul(try linear(o, w), g))
                    }
                    tape.backward(loss)
                    return (loss, p)
                }
                let on = try step(true, run), off = try step(false, run)
                XCTAssertEqual(on.0, off.0, "\(kernel): loss")
                XCTAssertEqual(on.1, off.1, "\(kernel): prompt gradient")
                XCTAssertTrue(on.1.contains { $0 != 0 })
                XCTAssertLessThan(on.2, off.2, "\(kernel): dQ and the projection's dX over the prompt rows only")
            }
        }
    }
}
