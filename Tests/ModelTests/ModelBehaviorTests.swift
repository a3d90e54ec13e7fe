import Support
import Foundation
import Methods
import Models
@testable import Tensor
import XCTest

final class ModelBehaviorTests: XCTestCase {
    func tinyT5() throws -> T5Model { try T5Model.random(config: EmbeddedBackbones.t5Tiny, key: RNGKey(seed: 3)) }

    /// Teacher-forced pass with a soft prompt (n, d) fed as a method feeds it: `Injection.inputs`
    /// → `inputsEmbeds`.
    func forward(_ m: T5Model, inputIds: [Int32], attentionMask: [Float], labels: [Int32], batch: Int, prompt: Tensor,
                 drop: DropoutContext = .eval) throws -> T5Model.Output {
        let (e, mask) = try Injection(prompt: prompt).inputs(for: m, inputIds: inputIds, attentionMask: attentionMask, batch: batch)
        return try m.forward(inputsEmbeds: e, attentionMask: mask, labels: labels, drop: drop)
    }

    /// Frozen backbone: a prompt-tuning step computes the prompt gradient and no weight gradient.
    func testFrozenBackboneOnlyPromptGradient() throws {
        let m = try tinyT5()
        let prompt = Tensor.normal([5, 64], std: 0.5, key: RNGKey(seed: 4), requiresGrad: true)
        let tape = Tape()
        let out = try tape.record {
            try forward(m, inputIds: [10, 11, 12, 1, 20, 21, 1, 0], attentionMask: [1, 1, 1, 1, 1, 1, 1, 0],
                        labels: [51, 1, 52, 1], batch: 2, prompt: prompt)
        }
        tape.backward(out.loss)
        XCTAssertNotNil(prompt.grad)
        XCTAssertGreaterThan(prompt.grad!.array.map(abs).max()!, 0)
        XCTAssertTrue(m.parameters.allSatisfy { $0.tensor.grad == nil })
        XCTAssertEqual(out.encoderHidden.shape, [2, 9, 64])
    }

    /// Training-mode dropout is a pure function of the key: same key → identical loss and
    /// gradient, another key → a different loss; eval mode ignores keys.
    func testDropoutDeterminism() throws {
        let m = try tinyT5()
        let prompt = Tensor.normal([3, 64], key: RNGKey(seed: 5), requiresGrad: true)
        func run(_ key: RNGKey?) throws -> (Float, [Float]) {
            prompt.zeroGrad()
            let tape = Tape()
            let out = try tape.record {
                try forward(m, inputIds: [5, 6, 7, 1], attentionMask: [1, 1, 1, 1], labels: [9, 1], batch: 1, prompt: prompt,
                            drop: DropoutContext(key: key, p: 0.1))
            }
            tape.backward(out.loss)
            return (out.loss.scalar, prompt.grad!.array)
        }
        let a = try run(RNGKey(seed: 1).derive(7)), b = try run(RNGKey(seed: 1).derive(7)), c = try run(RNGKey(seed: 1).derive(8))
        XCTAssertEqual(a.0, b.0)
        XCTAssertEqual(a.1, b.1)
        XCTAssertNotEqual(a.0, c.0)
        let e1 = try run(nil), e2 = try run(nil)
        XCTAssertEqual(e1.0, e2.0)
        XCTAssertNotEqual(e1.0, a.0)
    }

    /// KV-cached greedy decoding equals argmax over full teacher-forced re-runs of the decoder.
    func testCachedGenerationMatchesFullRecompute() throws {
        let m = try tinyT5()
        let ids: [Int32] = [10, 40, 41, 42, 1, 30, 31, 1, 0, 0]
        let mask: [Float] = [1, 1, 1, 1, 1, 1, 1, 1, 0, 0]
        let (emb, em) = try Injection().inputs(for: m, inputIds: ids, attentionMask: mask, batch: 2)
        let enc = try m.encode(embeds: emb, mask: em, drop: .eval)
        let gen = try m.generate(encoder: enc, encoderMask: em, maxNewTokens: 6)
        for b in 0..<2 {
            var rows: [Int32] = [0]
            for _ in 0..<6 {
                let encB = try narrow(enc, axis: 0, start: b, length: 1)
                let maskB = try narrow(em, axis: 0, start: b, length: 1)
                let logits = try m.decode(ids: rows, batch: 1, encoder: encB, encoderMask: maskB, drop: .eval)
                let V = logits.shape[2], last = logits.data + (rows.count - 1) * V
                var best = 0
                for j in 1..<V where last[j] > last[best] { best = j }
                rows.append(Int32(best))
                if best == 1 { break }
            }
            XCTAssertEqual(Array(gen[b].prefix(rows.count)), rows, "row \(b)")
        }
    }

    /// Absorbed cross-attention (no per-layer K/V) against transformers' projected form on the
    /// same model: training loss and gradients (prompt, and cross-attention weights under full
    /// fine-tuning, dropout on), eval logits and greedy tokens.
    func testAbsorbedCrossAttentionMatchesProjected() throws {
        let m = try tinyT5()
        let prompt = Tensor.normal([6, 64], std: 0.5, key: RNGKey(seed: 6), requiresGrad: true)
        let ids: [Int32] = (0..<40).map { Int32(3 + ($0 * 37) % 250) }
        var mask = [Float](repeating: 1, count: 40)
        mask[17] = 0; mask[18] = 0; mask[19] = 0
        let labels: [Int32] = [51, 60, 1, 52, 1, -100]
        let watched = m.parameters.first { $0.name == "decoder.block.1.layer.1.EncDecAttention.k.weight" }!.tensor
        let watchedV = m.parameters.first { $0.name == "decoder.block.0.layer.1.EncDecAttention.v.weight" }!.tensor
        func run(_ mode: T5Model.CrossAttentionMode, fullFT: Bool) throws -> (Float, [[Float]]) {
            m.crossAttentionMode = mode
            m.setTrainable(fullFT)
            defer { m.setTrainable(false); for (_, t) in m.parameters { t.zeroGrad() } }
            prompt.zeroGrad()
            let tape = Tape()
            let out = try tape.record {
                try forward(m, inputIds: ids, attentionMask: mask, labels: labels, batch: 2, prompt: prompt,
                            drop: DropoutContext(key: RNGKey(seed: 9), p: 0.1))
            }
            tape.backward(out.loss)
            return (out.loss.scalar, [prompt.grad!.array] + (fullFT ? [watched.grad!.array, watchedV.grad!.array] : []))
        }
        for fullFT in [false, true] {
            let (la, ga) = try run(.absorbed, fullFT: fullFT), (lp, gp) = try run(.projected, fullFT: fullFT)
            XCTAssertEqual(la, lp, accuracy: 1e-5 * max(1, abs(lp)))
            XCTAssertEqual(ga.count, gp.count)
            for (a, p) in zip(ga, gp) {
                let scale = p.map(abs).max()!
                XCTAssertGreaterThan(scale, 0)
                for i in 0..<p.count { XCTAssertEqual(a[i], p[i], accuracy: 1e-4 * scale) }
            }
        }
        let (emb, em) = try Injection(prompt: prompt).inputs(for: m, inputIds: ids, attentionMask: mask, batch: 2)
        var tokens: [[[Int32]]] = []
        for mode in [T5Model.CrossAttentionMode.absorbed, .projected] {
            m.crossAttentionMode = mode
            let enc = try m.encode(embeds: emb, mask: em, drop: .eval)
            tokens.append(try m.generate(encoder: enc, encoderMask: em, maxNewTokens: 5))
        }
        XCTAssertEqual(tokens[0], tokens[1])
        // `.auto` generation starts absorbed and projects K/V once absorbed steps stop paying off
        // (here at step 15 of 20: 46 keys, d = 64, 4 heads): same tokens as either form throughout.
        XCTAssertTrue(crossAttentionAbsorbedIsCheaper(queries: 13, keys: 46, model: 64, inner: 64, heads: 4))
        XCTAssertFalse(crossAttentionAbsorbedIsCheaper(queries: 20, keys: 46, model: 64, inner: 64, heads: 4))
        var long: [[[Int32]]] = []
        for mode in [T5Model.CrossAttentionMode.auto, .absorbed, .projected] {
            m.crossAttentionMode = mode
            let enc = try m.encode(embeds: emb, mask: em, drop: .eval)
            long.append(try m.generate(encoder: enc, encoderMask: em, maxNewTokens: 20))
        }
        XCTAssertGreaterThan(long[0].map(\.count).max()!, 16, "some row must run past the switch")
        XCTAssertEqual(long[0], long[1])
        XCTAssertEqual(long[0], long[2])
        m.crossAttentionMode = .auto
        // The automatic choice: few label tokens over a long input → absorbed; long targets → projected.
        XCTAssertTrue(crossAttentionAbsorbedIsCheaper(queries: 3, keys: 356, model: 512, inner: 512, heads: 8))
        XCTAssertFalse(crossAttentionAbsorbedIsCheaper(queries: 200, keys: 356, model: 512, inner: 512, heads: 8))
        XCTAssertFalse(crossAttentionAbsorbedIsCheaper(queries: 6, keys: 5, model: 64, inner: 64, heads: 4))
    }

    /// No-gradient encoder passes stream the batch in chunks of rows (length buckets with the own
    /// kernels); the result is the whole batch's at every real position (encoder states, logits,
    /// loss, greedy tokens), and a recording tape or dropout turns streaming off.
    func testStreamedEncoderMatchesWholeBatch() throws {
        let m = try tinyT5()
        defer { m.streamTokens = T5Model.Runtime().streamTokens }
        let B = 5, L = 9
        let ids: [Int32] = (0..<(B * L)).map { Int32(3 + ($0 * 53) % 250) }
        var mask = [Float](repeating: 1, count: B * L)
        mask[L - 1] = 0; mask[3 * L - 2] = 0; mask[3 * L - 1] = 0   // real lengths 8, 9, 7, 9, 9
        let labels: [Int32] = (0..<(B * 2)).map { $0 % 2 == 1 ? 1 : Int32(40 + $0) }
        let maskTensor = Tensor(shape: [B, L], values: mask)
        XCTAssertEqual(realKeyLengths(maskTensor), [8, 9, 7, 9, 9])
        m.streamTokens = 20
        // Own kernels: rows 0 and 2 (8 positions each), then 1 and 3, then 4 (9 positions: 16 ≥ L).
        // OpenBLAS: 45 rows → consecutive chunks of 2 and 3 sequences over all 9 positions.
        let expected: [T5Model.StreamChunk] = BLAS.kernel == .openblas
            ? [.init(rows: [0, 1], length: 9), .init(rows: [2, 3, 4], length: 9)]
            : [.init(rows: [0, 2], length: 8), .init(rows: [1, 3], length: 9), .init(rows: [4], length: 9)]
        XCTAssertEqual(m.streamChunks(mask: maskTensor, drop: .eval), expected)
        XCTAssertEqual(m.streamChunks(mask: maskTensor, drop: DropoutContext(key: RNGKey(seed: 1), p: 0.1)), [.init(rows: Array(0..<B), length: L)])
        Tape().record { XCTAssertEqual(m.streamChunks(mask: maskTensor, drop: .eval), [.init(rows: Array(0..<B), length: L)]) }
        let streamed = try m.forward(inputIds: ids, attentionMask: mask, labels: labels, batch: B)
        let (e1, m1) = try Injection().inputs(for: m, inputIds: ids, attentionMask: mask, batch: B)
        let genStreamed = try m.generate(embeds: e1, mask: m1, maxNewTokens: 4)
        m.streamTokens = 0
        XCTAssertEqual(m.streamChunks(mask: maskTensor, drop: .eval), [.init(rows: Array(0..<B), length: L)])
        let whole = try m.forward(inputIds: ids, attentionMask: mask, labels: labels, batch: B)
        let (e2, m2) = try Injection().inputs(for: m, inputIds: ids, attentionMask: mask, batch: B)
        let genWhole = try m.generate(embeds: e2, mask: m2, maxNewTokens: 4)
        XCTAssertEqual(streamed.encoderHidden.shape, whole.encoderHidden.shape)
        // Padding positions hold what their chunk computed there (or 0): only real positions compare.
        let d = m.config.dModel
        for i in 0..<whole.encoderHidden.count where mask[i / d] == 1 {
            XCTAssertEqual(streamed.encoderHidden[i], whole.encoderHidden[i], accuracy: 1e-5)
        }
        for i in 0..<whole.logits.count { XCTAssertEqual(streamed.logits[i], whole.logits[i], accuracy: 1e-4) }
        XCTAssertEqual(streamed.loss.scalar, whole.loss.scalar, accuracy: 1e-5)
        XCTAssertEqual(genStreamed, genWhole)
    }

    /// Greedy decoding never reads the encoder states after a row's last real key: the absorbed
    /// cross-attention neither scores nor reads them, the projected form projects only each row's
    /// real positions, and its attention reads keys up to the last real one. With NaN written
    /// there, every form decodes the same tokens as with zeros, and the absorbed op gives the same
    /// bits (one query and three queries per row; a masked key inside a row stays read, as 0·E).
    func testDecodingNeverReadsEncoderPadding() throws {
        let m = try tinyT5()
        defer { m.crossAttentionMode = .auto }
        let lengths = [13, 6, 9], B = 3, L = 13, d = m.config.dModel
        var maskValues = [Float](repeating: 0, count: B * L)
        for (b, n) in lengths.enumerated() { for j in 0..<n { maskValues[b * L + j] = 1 } }
        maskValues[2 * L + 4] = 0
        let mask = Tensor(shape: [B, L], values: maskValues)
        // The random tiny model's greedy argmax is pad (0) at every step; with pad's embedding row
        // zero (its logit 0) the decode emits varied tokens, so reading NaN would show.
        let shared = m.parameters.first { $0.name == "shared.weight" }!.tensor
        let saved = Array(shared.array[0..<d])
        defer { for c in 0..<d { shared.data[c] = saved[c] } }
        for c in 0..<d { shared.data[c] = 0 }
        let ids: [Int32] = (0..<(B * L)).map { Int32(3 + ($0 * 61) % 250) }
        let states = try m.encode(embeds: try m.embed(inputIds: ids, batch: B), mask: mask, drop: .eval).array
        func memory(padding: Float) -> Tensor {
            var v = states
            for (b, n) in lengths.enumerated() { for i in ((b * L + n) * d)..<((b + 1) * L * d) { v[i] = padding } }
            return Tensor(shape: [B, L, d], values: v)
        }
        for mode in [T5Model.CrossAttentionMode.absorbed, .projected, .auto] {
            m.crossAttentionMode = mode
            let clean = try m.generate(encoder: memory(padding: 0), encoderMask: mask, maxNewTokens: 12)
            let poisoned = try m.generate(encoder: memory(padding: .nan), encoderMask: mask, maxNewTokens: 12)
            XCTAssertEqual(poisoned, clean, "\(mode)")
            XCTAssertGreaterThan(Set(clean.joined()).count, 3, "the decode must emit varied tokens to mean anything")
        }
        let inner = m.config.innerDim, heads = m.config.numHeads
        let wk = Tensor(shape: [inner, d], values: RNGKey(seed: 48).uniformArray(inner * d, lo: -0.2, hi: 0.2))
        let wv = Tensor(shape: [inner, d], values: RNGKey(seed: 49).uniformArray(inner * d, lo: -0.2, hi: 0.2))
        for tq in [1, 3] {
            let q = Tensor(shape: [B, tq, inner], values: RNGKey(seed: 50).uniformArray(B * tq * inner, lo: -1, hi: 1))
            let a = try crossAttentionAbsorbed(q: q, memory: memory(padding: 0), wk: wk, wv: wv, heads: heads, keyMask: mask)
            let b = try crossAttentionAbsorbed(q: q, memory: memory(padding: .nan), wk: wk, wv: wv, heads: heads, keyMask: mask)
            XCTAssertEqual(a.array.map(\.bitPattern), b.array.map(\.bitPattern), "tq \(tq)")
        }
    }

    /// `linear` inside `PaddedRows.with` computes each batch row's real positions only (at least
    /// 32): those get the bits of the whole product in forward and in the input gradient (written
    /// fresh, and added to an existing one), and the rest is 0, with every own kernel of this CPU.
    func testPaddedRowsLinearKeepsRealRowBits() throws {
        let B = 3, L = 40, inF = 24, outF = 20
        let live = [40, 7, 33]   // row 1 computes 32 positions
        let xv = RNGKey(seed: 51).uniformArray(B * L * inF, lo: -1, hi: 1)
        let w = Tensor(shape: [outF, inF], values: RNGKey(seed: 52).uniformArray(outF * inF, lo: -0.5, hi: 0.5))
        var gv = RNGKey(seed: 53).uniformArray(B * L * outF, lo: -1, hi: 1)
        for b in 0..<B { for i in ((b * L + live[b]) * outF)..<((b + 1) * L * outF) { gv[i] = 0 } }   // as in the encoder
        let gMask = Tensor(shape: [B, L, outF], values: gv)
        for kernel in BLAS.availableKernels where kernel != .openblas {
            try BLAS.withKernel(kernel) {
                func run(_ skip: Bool, consumers: Int) throws -> (y: [Float], dx: [Float]) {
                    PaddedRows.isEnabled = skip
                    defer { PaddedRows.isEnabled = true }
                    let x = Tensor(shape: [B, L, inF], values: xv, requiresGrad: true)
                    let tape = Tape()
                    let loss = try tape.record {
                        try PaddedRows.with(batch: B, length: L, live: live) {
                            var total: Tensor? = nil
                            for _ in 0..<consumers {
                                let t = sum(try mul(try linear(x, w), gMask))
                                total = try total.map { try add($0, t) } ?? t
                            }
                            return total!
                        }
                    }
                    let y = try PaddedRows.with(batch: B, length: L, live: live) { try linear(x, w) }
                    tape.backward(loss)
                    return (y.array, x.grad!.array)
                }
                for consumers in [1, 2] {
                    let (ys, dxs) = try run(true, consumers: consumers), (yw, dxw) = try run(false, consumers: consumers)
                    for b in 0..<B {
                        for t in 0..<L {
                            let real = t < live[b]
                            for c in 0..<outF {
                                let i = (b * L + t) * outF + c
                                if real { XCTAssertEqual(ys[i].bitPattern, yw[i].bitPattern, "\(kernel) y[\(b), \(t), \(c)]") }
                                else if t >= max(live[b], 32) { XCTAssertEqual(ys[i], 0, "\(kernel) y[\(b), \(t), \(c)] padding") }
                            }
                            for c in 0..<inF where real {
                                let i = (b * L + t) * inF + c
                                XCTAssertEqual(dxs[i].bitPattern, dxw[i].bitPattern, "\(kernel) \(consumers) consumers: dx[\(b), \(t), \(c)]")
                            }
                        }
                    }
                }
            }
        }
    }

    /// Training through the encoder with its linear layers over the real positions only
    /// (`PaddedRows`) gives the protocol's bits: the loss, the prompt's gradient and, in full
    /// fine-tuning, every weight's gradient are bit-identical to computing every position, with
    /// dropout on, over a batch whose rows are padded by 0 to 29 positions (L = 41); also with both
    /// sublayers checkpointed, whose backward recomputes them outside the forward's scope.
    func testEncoderTrainingOverRealPositionsIsBitIdentical() throws {
        for checkpoint in [false, true] {
            let m = try tinyT5()
            m.checkpointSelfAttention = checkpoint
            m.checkpointFeedForward = checkpoint
            try encoderTrainingOverRealPositions(m, label: "checkpointed \(checkpoint)")
        }
    }

    /// Self-attention checkpointing defaults to on exactly when backbone weights train (full
    /// fine-tuning), follows an explicit setting either way, and PROMPTREPRO_CHECKPOINT's values
    /// parse as documented (auto or empty = the default, none = off, unknown names rejected).
    func testSelfAttentionCheckpointingDefaultsToFullFineTuning() throws {
        let m = try tinyT5()
        XCTAssertNil(m.runtime.checkpointSelfAttention)
        XCTAssertFalse(m.checkpointSelfAttention, "only a prompt or adapter trains")
        m.setTrainable(true)
        XCTAssertTrue(m.checkpointSelfAttention, "full fine-tuning")
        m.checkpointSelfAttention = false
        XCTAssertFalse(m.checkpointSelfAttention, "explicit off")
        m.setTrainable(false)
        m.checkpointSelfAttention = true
        XCTAssertTrue(m.checkpointSelfAttention, "explicit on")
        XCTAssertFalse(m.checkpointFeedForward)
        XCTAssertNil(try T5Model.checkpointSublayers("auto"))
        XCTAssertEqual(try T5Model.checkpointSublayers("none"), [])
        XCTAssertNil(try T5Model.checkpointSublayers(""))
        XCTAssertEqual(try T5Model.checkpointSublayers("all"), ["ffn", "attention"])
        XCTAssertEqual(try T5Model.checkpointSublayers(" FFN "), ["ffn"])
        for bad in ["none,ffn", "attn", "auto,ffn"] {
            XCTAssertThrowsError(try T5Model.checkpointSublayers(bad), bad) { XCTAssertTrue("\($0)".contains(bad), "\($0)") }
        }
    }

    /// What checkpointing a self-attention sublayer costs, counted by the GEMM counter on a tiny T5
    /// full fine-tuning step with dropout: the checkpointed step's FLOPs minus the uncheckpointed
    /// one's are, per self-attention layer (encoder and decoder), the Q, K and V projections and
    /// P·V run again, nothing more: the second run's output projection computes no values, and the
    /// QKᵀ it runs replaces the one the uncheckpointed backward recomputes (P is kept for its
    /// backward). Fails if either saving is lost.
    func testCheckpointedSelfAttentionCostsOnlyItsProjectionsAndPV() throws {
        let m = try tinyT5()
        m.setTrainable(true)
        defer { m.setTrainable(false) }
        let c = m.config
        let (B, L, T) = (2, 40, 3)
        let ids: [Int32] = (0..<(B * L)).map { Int32(3 + ($0 * 37) % 250) }
        let labels: [Int32] = [51, 60, 1, 52, 70, 1]
        let mask = Tensor(shape: [B, L], values: [Float](repeating: 1, count: B * L))
        func flops(checkpoint: Bool) throws -> Int {
            m.checkpointSelfAttention = checkpoint
            let tape = Tape()
            let f0 = BLAS.flops
            let out = try tape.record {
                try m.forward(inputsEmbeds: try m.embed(inputIds: ids, batch: B), attentionMask: mask, labels: labels,
                              drop: DropoutContext(key: RNGKey(seed: 5), p: 0.1))
            }
            tape.backward(out.loss)
            for (_, t) in m.parameters { t.zeroGrad() }
            return BLAS.flops - f0
        }
        let plain = try flops(checkpoint: false), checkpointed = try flops(checkpoint: true)
        let (d, inner, H, dk) = (c.dModel, c.innerDim, c.numHeads, c.dKv)
        let encoder = c.numLayers * (2 * B * L * d * 3 * inner + B * H * 2 * L * dk * L)
        let decoder = c.decoderLayers * (2 * B * T * d * 3 * inner + B * H * 2 * T * dk * T)
        XCTAssertGreaterThan(plain, 0)
        XCTAssertEqual(checkpointed - plain, encoder + decoder)
    }

    /// Full fine-tuning with the FFN hidden states kept compact (nonzero values and a bitmap) gives
    /// every weight's gradient bit for bit as keeping them whole, with dropout on; also when the
    /// compact values land in mappings a previous step (other dropout masks, other nonzero counts
    /// and values) used and gave back (`StepMappings`).
    func testFullFineTuningWithCompactFFNHiddenStatesIsBitIdentical() throws {
        let m = try tinyT5()
        let ids: [Int32] = (0..<(4 * 40)).map { Int32(3 + ($0 * 37) % 250) }
        let labels: [Int32] = [51, 60, 1, 52, 1, -100, 70, 1, -100, 80, 81, 1]
        let saved = Tensor.compactMinimumElements
        defer { Tensor.compactMinimumElements = saved; m.setTrainable(false) }
        m.setTrainable(true)
        func run(_ minimum: Int, seed: UInt64 = 57) throws -> [[UInt32]] {
            Tensor.compactMinimumElements = minimum
            for (_, t) in m.parameters { t.zeroGrad() }
            let tape = Tape()
            let out = try tape.record {
                try m.forward(inputsEmbeds: try m.embed(inputIds: ids, batch: 4), attentionMask: Tensor(shape: [4, 40], values: [Float](repeating: 1, count: 160)),
                              labels: labels, drop: DropoutContext(key: RNGKey(seed: seed), p: 0.1))
            }
            tape.backward(out.loss)
            return m.parameters.map { ($0.tensor.grad?.array ?? []).map(\.bitPattern) }
        }
        let whole = try run(Int.max), before = Tensor.compactedActivations
        let compact = try run(0)  // 4 · 40 rows · 256 = 40,960 elements per encoder layer
        XCTAssertGreaterThanOrEqual(Tensor.compactedActivations - before, 2, "both encoder layers' FFN hidden states compacted")
        for (i, (a, b)) in zip(whole, compact).enumerated() {
            XCTAssertTrue(a == b, "gradient of \(m.parameters[i].name) differs first at element \(a.indices.first { a[$0] != b[$0] } ?? -1)")
        }
        XCTAssertFalse(whole.allSatisfy { $0.isEmpty })
        // A step with other dropout masks (other nonzero values and counts) leaves its mappings
        // behind; the next step's compact values land in them, over the old values.
        HeapMemory.releaseFree()
        XCTAssertEqual(StepMappings.keptCount, 0, "releaseFree unmaps the kept mappings")
        _ = try run(0, seed: 99)
        XCTAssertGreaterThanOrEqual(StepMappings.keptCount, 2, "the step's mappings are kept for the next")
        let reusedBefore = StepMappings.reused
        let again = try run(0)
        XCTAssertGreaterThan(StepMappings.reused - reusedBefore, 0, "a kept mapping served the next step")
        for (i, (a, b)) in zip(whole, again).enumerated() {
            XCTAssertTrue(a == b, "gradient of \(m.parameters[i].name) after reuse differs first at element \(a.indices.first { a[$0] != b[$0] } ?? -1)")
        }
    }

    /// The FFN's ReLU and dropout as one op (`T5Model.fusesReLUDropout`, the default) against the
    /// two ops: the same loss and every gradient bit for bit, for a prompt-tuning step (frozen
    /// backbone: only the prompt's gradient) and a full fine-tuning step (every weight's, the FFN
    /// hidden states kept compact), with dropout on; and the same greedy decode in eval mode.
    func testFusedReLUDropoutInTheFFNIsBitIdentical() throws {
        let m = try tinyT5()
        XCTAssertEqual(m.config.activation, "relu")
        let saved = T5Model.fusesReLUDropout, savedMinimum = Tensor.compactMinimumElements
        defer { T5Model.fusesReLUDropout = saved; Tensor.compactMinimumElements = savedMinimum; m.setTrainable(false) }
        Tensor.compactMinimumElements = 0  // the tiny model's FFN states are kept compact when wo trains
        let ids: [Int32] = (0..<(3 * 24)).map { Int32(3 + ($0 * 41) % 250) }
        let labels: [Int32] = [51, 60, 1, 52, 1, -100, 70, 81, 1]
        let mask = Tensor(shape: [3, 24], values: (0..<72).map { $0 % 24 < 24 - $0 / 24 * 5 ? 1 : 0 })
        func step(fused: Bool, trainable: Bool) throws -> [[UInt32]] {
            T5Model.fusesReLUDropout = fused
            m.setTrainable(trainable)
            for (_, t) in m.parameters { t.zeroGrad() }
            let prompt = Tensor.normal([4, 64], std: 0.5, key: RNGKey(seed: 12), requiresGrad: true)
            let tape = Tape()
            let out = try tape.record {
                try forward(m, inputIds: ids, attentionMask: mask.array, labels: labels, batch: 3, prompt: prompt,
                            drop: DropoutContext(key: RNGKey(seed: 13), p: 0.1))
            }
            tape.backward(out.loss)
            return [[out.loss.scalar.bitPattern], prompt.grad!.array.map(\.bitPattern)]
                + m.parameters.map { ($0.tensor.grad?.array ?? []).map(\.bitPattern) }
        }
        for trainable in [false, true] {
            let compactedBefore = Tensor.compactedActivations
            let two = try step(fused: false, trainable: trainable), one = try step(fused: true, trainable: trainable)
            if trainable { XCTAssertGreaterThanOrEqual(Tensor.compactedActivations - compactedBefore, 4, "FFN states kept compact in both runs") }
            XCTAssertEqual(two.count, one.count)
            for (i, (a, b)) in zip(two, one).enumerated() {
                let name = i == 0 ? "loss" : i == 1 ? "prompt" : m.parameters[i - 2].name
                XCTAssertTrue(a == b, "\(name) (trainable \(trainable)) differs first at element \(a.indices.first { a[$0] != b[$0] } ?? -1)")
            }
            XCTAssertEqual(two.dropFirst(2).contains { !$0.isEmpty }, trainable, "weight gradients only when trainable")
        }
        let (e, em) = try Injection().inputs(for: m, inputIds: ids, attentionMask: mask.array, batch: 3)
        func decode(_ fused: Bool) throws -> [[Int32]] {
            T5Model.fusesReLUDropout = fused
            return try m.generate(encoder: try m.encode(embeds: e, mask: em, drop: .eval), encoderMask: em, maxNewTokens: 5)
        }
        XCTAssertEqual(try decode(false), try decode(true))
    }

    /// The opt-in bf16 evaluation (`BF16Products`) of a T5 forward stays near the fp32 one: the
    /// loss within 1 % and every logit within 3 % of the logits' largest magnitude, while not
    /// equal to it (the products did run in bf16), on every bf16 kernel this CPU runs. A recording
    /// tape in the same scope stays fp32.
    func testBF16EvaluationStaysNearFP32() throws {
        try XCTSkipUnless(BF16Products.available, "no AVX512-BF16 on this CPU")
        let m = try tinyT5()
        let ids: [Int32] = (0..<(4 * 40)).map { Int32(3 + ($0 * 37) % 250) }
        let labels: [Int32] = [51, 60, 1, 52, 1, -100, 70, 1, -100, 80, 81, 1]
        func run() throws -> T5Model.Output {
            try m.forward(inputsEmbeds: try m.embed(inputIds: ids, batch: 4), attentionMask: Tensor(shape: [4, 40], values: [Float](repeating: 1, count: 160)),
                          labels: labels)
        }
        let fp32 = try run()
        let a = fp32.logits.array
        for kernel in BF16Products.availableKernels {
            let before = BF16Products.products
            let bf16 = try BF16Products.with(kernel: kernel) { try run() }
            XCTAssertGreaterThan(BF16Products.products, before, "\(kernel): products ran in bf16")
            let l32 = fp32.loss.array[0], l16 = bf16.loss.array[0]
            XCTAssertEqual(l16, l32, accuracy: 0.01 * abs(l32), "\(kernel)")
            let b = bf16.logits.array
            let scale = a.map(abs).max()!
            XCTAssertLessThan(zip(a, b).map { abs($0 - $1) }.max()!, 0.03 * scale, "\(kernel)")
            XCTAssertNotEqual(a, b, "\(kernel): bf16 products change the logits")
        }
        let recorded = try BF16Products.with { try Tape().record { try run() } }
        XCTAssertTrue(recorded.logits.array.map(\.bitPattern) == a.map(\.bitPattern), "a recording tape keeps fp32")
    }

    private func encoderTrainingOverRealPositions(_ m: T5Model, label: String) throws {
        let B = 3, T = 35
        let prompt = Tensor.normal([6, 64], std: 0.5, key: RNGKey(seed: 54), requiresGrad: true)
        let ids: [Int32] = (0..<(B * T)).map { Int32(3 + ($0 * 41) % 250) }
        var mask = [Float](repeating: 1, count: B * T)
        for t in 12..<T { mask[T + t] = 0 }        // row 1: 6 + 12 real of 41
        for t in 30..<T { mask[2 * T + t] = 0 }    // row 2: 6 + 30 real
        let labels: [Int32] = [51, 60, 1, 52, 1, -100, 70, 1, -100]
        func run(_ skip: Bool, fullFT: Bool) throws -> (Float, [[Float]], Int) {
            m.setTrainable(fullFT)
            defer { m.setTrainable(false); for (_, t) in m.parameters { t.zeroGrad() } }
            prompt.zeroGrad()
            let flops0 = BLAS.flops
            let tape = Tape()
            let out = try tape.record {
                let f = { try self.forward(m, inputIds: ids, attentionMask: mask, labels: labels, batch: B, prompt: prompt,
                                           drop: DropoutContext(key: RNGKey(seed: 55), p: 0.1)) }
                return skip ? try m.withEncoderOverRealPositions(f) : try f()
            }
            tape.backward(out.loss)
            return (out.loss.scalar, [prompt.grad!.array] + (fullFT ? m.parameters.map { $0.tensor.grad?.array ?? [] } : []), BLAS.flops - flops0)
        }
        for fullFT in [false, true] {
            let (ls, gs, fs) = try run(true, fullFT: fullFT), (lw, gw, fw) = try run(false, fullFT: fullFT)
            if BLAS.kernel != .openblas { XCTAssertLessThan(fs, fw, "the encoder's linear layers must skip the padding") }
            XCTAssertEqual(ls.bitPattern, lw.bitPattern, "\(label): loss (full FT \(fullFT))")
            XCTAssertEqual(gs.count, gw.count)
            for (i, (a, b)) in zip(gs, gw).enumerated() where a.map(\.bitPattern) != b.map(\.bitPattern) {
                let name = i == 0 ? "prompt" : m.parameters[i - 1].name
                let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
                XCTFail("\(label), full FT \(fullFT): gradient of \(name) differs (largest difference \(worst))")
            }
        }
    }

    /// `bucketLength`, worked by hand: a row's length rounded up to a multiple of 8, unless that
    /// reaches the padded length.
    func testBucketLength() {
        XCTAssertEqual(T5Model.bucketLength(real: 13, padded: 21), 16)
        XCTAssertEqual(T5Model.bucketLength(real: 16, padded: 21), 16)
        XCTAssertEqual(T5Model.bucketLength(real: 17, padded: 21), 21)   // 24 ≥ 21
        XCTAssertEqual(T5Model.bucketLength(real: 21, padded: 21), 21)
        XCTAssertEqual(T5Model.bucketLength(real: 1, padded: 21), 8)
        XCTAssertEqual(T5Model.bucketLength(real: 5, padded: 8), 8)
        XCTAssertEqual(T5Model.bucketLength(real: 100, padded: 356), 104)
        XCTAssertEqual(T5Model.bucketLength(real: 353, padded: 356), 356)
    }

    /// Length buckets give every real position of every row the bits of the padded batch
    /// (`encodeWhole`), with every GEMM kernel this CPU runs: rows whose real keys end inside the
    /// softmax's 8-wide vector part or in its scalar tail at the padded length (L = 21: 16 + 5),
    /// a row of full length, one of a single token, and a row without real keys (which keeps the
    /// padded length: its softmax is the uniform fallback over all keys).
    func testLengthBucketedEncoderIsBitIdenticalToPadded() throws {
        let m = try tinyT5()
        defer { m.streamTokens = T5Model.Runtime().streamTokens }
        let lengths = [21, 13, 17, 16, 1, 0, 9, 20, 5]
        let B = lengths.count, L = 21, d = m.config.dModel
        let embeds = Tensor(shape: [B, L, d], values: RNGKey(seed: 43).uniformArray(B * L * d, lo: -1, hi: 1))
        var maskValues = [Float](repeating: 0, count: B * L)
        for (b, n) in lengths.enumerated() { for j in 0..<n { maskValues[b * L + j] = 1 } }
        maskValues[6 * L + 3] = 0   // a masked key before the row's last real one
        let mask = Tensor(shape: [B, L], values: maskValues)
        for kernel in BLAS.availableKernels {
            try BLAS.withKernel(kernel) {
                m.streamTokens = 40
                let chunks = m.streamChunks(mask: mask, drop: .eval)
                if kernel != .openblas {
                    XCTAssertEqual(chunks.map(\.length), [8, 16, 16, 21, 21, 21, 21], "\(kernel)")
                    XCTAssertEqual(chunks.flatMap(\.rows).sorted(), Array(0..<B))
                }
                let before = FrozenOperands.productsFromPacked
                let bucketed = try m.encode(embeds: embeds, mask: mask, drop: .eval)
                let fromPacked = FrozenOperands.productsFromPacked - before
                m.streamTokens = 0
                let padded = try m.encode(embeds: embeds, mask: mask, drop: .eval)
                XCTAssertEqual(bucketed.shape, padded.shape)
                for (b, n) in lengths.enumerated() {
                    let real = n == 0 ? L : n
                    // OpenBLAS (no buckets: consecutive chunks) gives a row bits that depend on the
                    // product's row count, so there the streamed pass only agrees to rounding.
                    for i in (b * L * d)..<((b * L + real) * d) where kernel == .openblas
                        ? abs(bucketed[i] - padded[i]) > 1e-5 * max(1, abs(padded[i])) : bucketed[i].bitPattern != padded[i].bitPattern {
                        XCTFail("\(kernel): row \(b) (length \(n)) element \(i - b * L * d): \(bucketed[i]) bucketed, \(padded[i]) padded"); break
                    }
                }
                if kernel != .openblas { XCTAssertGreaterThan(fromPacked, 0, "\(kernel): no encoder product read a packed weight") }
            }
        }
    }

    /// A streamed encoder pass in consecutive chunks (24 rows of tokens: too few for length
    /// buckets) with the FFN's large weights (n·k = 2²⁰) gives the whole pass's bits with the AVX2
    /// kernel: the whole batch's 24 rows run our kernel there (`BLAS.fewRows` 16), so the chunks of
    /// 6, 6 and 12 rows must run it too (inside a frozen scope), not OpenBLAS.
    func testConsecutiveChunksKeepTheWholePassKernel() throws {
        try XCTSkipUnless(BLAS.availableKernels.contains(.avx2), "the AVX2 kernel does not run on this CPU")
        let config = T5Config(vocabSize: 32, dModel: 512, dKv: 64, dFf: 2048, numLayers: 1, numHeads: 8)
        let m = try T5Model.random(config: config, key: RNGKey(seed: 45))
        defer { m.streamTokens = T5Model.Runtime().streamTokens }
        let (B, L) = (4, 6)
        let embeds = Tensor(shape: [B, L, 512], values: RNGKey(seed: 46).uniformArray(B * L * 512, lo: -1, hi: 1))
        let mask = Tensor(shape: [B, L], values: [Float](repeating: 1, count: B * L))
        try BLAS.withKernel(.avx2) {
            m.streamTokens = 8
            XCTAssertEqual(m.streamChunks(mask: mask, drop: .eval).map(\.rows.count), [1, 1, 2])
            let chunked = try m.encode(embeds: embeds, mask: mask, drop: .eval)
            m.streamTokens = 0
            let whole = try m.encode(embeds: embeds, mask: mask, drop: .eval)
            XCTAssertEqual(zip(chunked.array, whole.array).filter { $0.bitPattern != $1.bitPattern }.count, 0,
                           "elements of the chunked pass that differ from the whole pass (OpenBLAS \(BLAS.coreName))")
        }
    }

    /// With at least four length buckets per thread, whole buckets run side by side (one per
    /// thread, longest first): every real position keeps the padded batch's bits, and the output
    /// is the same on 1, 2 and 3 threads, with every own GEMM kernel this CPU runs (24 rows of 1–23
    /// real tokens in 17 buckets).
    func testLengthBucketsSideBySideAreBitIdentical() throws {
        let m = try tinyT5()
        let saved = Parallel.threads
        defer { m.streamTokens = T5Model.Runtime().streamTokens; Parallel.configure(threads: saved) }
        let lengths = (0..<24).map { 1 + ($0 * 7) % 23 }
        let B = lengths.count, L = 23, d = m.config.dModel
        let embeds = Tensor(shape: [B, L, d], values: RNGKey(seed: 44).uniformArray(B * L * d, lo: -1, hi: 1))
        var maskValues = [Float](repeating: 0, count: B * L)
        for (b, n) in lengths.enumerated() { for j in 0..<n { maskValues[b * L + j] = 1 } }
        let mask = Tensor(shape: [B, L], values: maskValues)
        for kernel in BLAS.availableKernels where kernel != .openblas {
            try BLAS.withKernel(kernel) {
                m.streamTokens = 0
                Parallel.configure(threads: 1)
                let padded = try m.encode(embeds: embeds, mask: mask, drop: .eval)
                m.streamTokens = 24
                XCTAssertGreaterThanOrEqual(m.streamChunks(mask: mask, drop: .eval).count, 12, "\(kernel): too few buckets to run side by side on 3 threads")
                var reference: [UInt32]?
                for threads in [1, 2, 3] {
                    Parallel.configure(threads: threads)
                    let bucketed = try m.encode(embeds: embeds, mask: mask, drop: .eval)
                    let bits = bucketed.array.map(\.bitPattern)
                    if let reference {
                        XCTAssertEqual(zip(bits, reference).filter { $0 != $1 }.count, 0, "\(kernel): elements that differ from 1 thread's on \(threads) threads")
                    } else {
                        reference = bits
                    }
                    for (b, n) in lengths.enumerated() {
                        for i in (b * L * d)..<((b * L + n) * d) where bucketed[i].bitPattern != padded[i].bitPattern {
                            XCTFail("\(kernel) \(threads) threads: row \(b) (length \(n)) element \(i - b * L * d)"); break
                        }
                    }
                }
            }
        }
    }

    /// The streamed encoder runs layer by layer over the chunks with each layer's weights packed
    /// once (FrozenOperands): its output is bit-identical to encoding each chunk on its own (its
    /// rows over its positions), with every GEMM kernel this CPU runs, and the packed copies are
    /// read (own kernels). Consecutive chunks (OpenBLAS) of fewer than 32 rows run without the
    /// scope (it would change their kernel choice on hosts whose OpenBLAS has a fast kernel): still
    /// bit-identical, and nothing packed.
    func testLayerMajorStreamingIsBitIdenticalToChunkByChunk() throws {
        let m = try tinyT5()
        defer { m.streamTokens = T5Model.Runtime().streamTokens }
        let B = 7, d = m.config.dModel
        // (length, streamTokens): OpenBLAS: 112 rows → chunks of 2, 2, 3 sequences (32–48 rows);
        // 77 rows → chunks of 2, 2, 3 sequences (22–33 rows, one below 32).
        for (L, stream) in [(16, 36), (11, 25)] {
            let embeds = Tensor(shape: [B, L, d], values: RNGKey(seed: 41).uniformArray(B * L * d, lo: -1, hi: 1))
            var maskValues = [Float](repeating: 1, count: B * L)
            for b in 0..<B { for j in (L - b % 4)..<L { maskValues[b * L + j] = 0 } }
            let mask = Tensor(shape: [B, L], values: maskValues)
            for kernel in BLAS.availableKernels {
                try BLAS.withKernel(kernel) {
                    m.streamTokens = stream
                    let chunks = m.streamChunks(mask: mask, drop: .eval)
                    XCTAssertGreaterThanOrEqual(chunks.count, 3)
                    let before = FrozenOperands.productsFromPacked
                    let streamed = try m.encode(embeds: embeds, mask: mask, drop: .eval)
                    let fromPacked = FrozenOperands.productsFromPacked - before
                    m.streamTokens = 0
                    for c in chunks {
                        var rowsE: [Float] = [], rowsM: [Float] = []
                        for r in c.rows {
                            rowsE += Array(embeds.array[(r * L * d)..<((r * L + c.length) * d)])
                            rowsM += Array(maskValues[(r * L)..<(r * L + c.length)])
                        }
                        let alone = try m.encode(embeds: Tensor(shape: [c.rows.count, c.length, d], values: rowsE),
                                                 mask: Tensor(shape: [c.rows.count, c.length], values: rowsM), drop: .eval)
                        for (j, r) in c.rows.enumerated() {
                            for i in 0..<(c.length * d) where alone[j * c.length * d + i].bitPattern != streamed[r * L * d + i].bitPattern {
                                XCTFail("\(kernel) L \(L): chunk \(c.rows) row \(r) element \(i): \(alone[j * c.length * d + i]) alone, \(streamed[r * L * d + i]) streamed"); break
                            }
                        }
                    }
                    if kernel != .openblas {
                        XCTAssertGreaterThan(fromPacked, 0, "\(kernel): no encoder product read a packed weight")
                    } else {
                        XCTAssertEqual(fromPacked, 0, "\(kernel) L \(L): packed weights read")
                    }
                }
            }
        }
    }

    /// Deferring small weight gradients (decoder, LM head, tied embedding) to the end of backward
    /// changes when they are computed, not their values: full fine-tuning gradients bit-identical.
    func testDeferredWeightGradientsBitIdentical() throws {
        let m = try tinyT5()
        m.setTrainable(true)
        defer { m.setTrainable(false); Tape.defersSmallWeightGradients = true }
        let ids: [Int32] = (0..<24).map { Int32(3 + ($0 * 29) % 250) }
        func grads(_ deferring: Bool) throws -> [String: [Float]] {
            Tape.defersSmallWeightGradients = deferring
            for (_, t) in m.parameters { t.zeroGrad() }
            let tape = Tape()
            let out = try tape.record {
                try m.forward(inputIds: ids, attentionMask: [Float](repeating: 1, count: 24), labels: [51, 1, 52, 1], batch: 2,
                              drop: DropoutContext(key: RNGKey(seed: 4), p: 0.1))
            }
            tape.backward(out.loss)
            return Dictionary(uniqueKeysWithValues: m.parameters.map { ($0.name, $0.tensor.grad?.array ?? []) })
        }
        let deferred = try grads(true), immediate = try grads(false)
        XCTAssertEqual(deferred.count, m.parameters.count)
        XCTAssertFalse(deferred["shared.weight"]!.isEmpty)
        XCTAssertFalse(deferred["decoder.block.1.layer.2.DenseReluDense.wo.weight"]!.isEmpty)
        for (name, g) in immediate { XCTAssertEqual(deferred[name]!, g, name) }
    }
}
