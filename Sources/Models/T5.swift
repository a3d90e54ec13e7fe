// port of transformers/models/t5/modeling_t5.py (v4.20–v5 semantics; see shared METHODS.md §5)
//
// Notation: B batch, L encoder length (prompt rows included), T decoder length, d = d_model,
// H heads, I = H·d_kv, F = d_ff, V vocab. Linear weights are torch [out, in].
import Support
import Foundation
import Tensor

public final class T5Model {
    public let config: T5Config
    public let shared: Tensor           // [V, d]
    public let lmHead: Tensor?          // [V, d], untied head (v1.1 / flan)
    public let scaleDecoderOutput: Bool // v1.0 tied head: h · d^−0.5 before the head
    let encoderBlocks: [Block]
    let decoderBlocks: [Block]
    let encoderBias: Tensor             // [buckets, H], block 0 of the encoder
    let decoderBias: Tensor
    let encoderFinal: Tensor, decoderFinal: Tensor
    /// Every distinct parameter under its Hugging Face name.
    public let parameters: [(name: String, tensor: Tensor)]
    /// Adapters (LoRA) on linear weights, keyed by the weight's HF name.
    public var adapters: [String: LinearAdapter] = [:]
    /// Performance switches that never change a result's meaning (T5Runtime.swift).
    public var runtime = Runtime()
    /// For tests and diagnostics: called after each greedy decoding step with the step (from 0),
    /// the batch index of the first row of `logits` and the logits of those rows [rows, 1, V]
    /// (all rows, or one thread's group of rows: `decodingRowGroups`). Calls are serialised.
    public var onDecodingStep: ((_ step: Int, _ firstRow: Int, _ logits: Tensor) -> Void)?

    struct Attn { let q, k, v, o: Tensor }
    struct FFN { let wi: Tensor?, wi0: Tensor?, wi1: Tensor?, wo: Tensor }
    struct Block {
        let selfNorm: Tensor, selfAttn: Attn
        let crossNorm: Tensor?, crossAttn: Attn?
        let ffnNorm: Tensor, ffn: FFN

        /// The block's projection matrices (the B operands of its GEMMs).
        var linearWeights: [Tensor] {
            [selfAttn.q, selfAttn.k, selfAttn.v, selfAttn.o] + (crossAttn.map { [$0.q, $0.k, $0.v, $0.o] } ?? [])
                + [ffn.wi, ffn.wi0, ffn.wi1].compactMap { $0 } + [ffn.wo]
        }
    }

    // MARK: config → parameter table

    /// Names and shapes of every parameter, in the order of the HF state dict.
    public static func parameterShapes(_ c: T5Config, untiedHead: Bool) -> [(String, [Int])] {
        let d = c.dModel, i = c.innerDim
        var out: [(String, [Int])] = [("shared.weight", [c.vocabSize, d])]
        func attn(_ p: String) -> [(String, [Int])] {
            [("\(p).q.weight", [i, d]), ("\(p).k.weight", [i, d]), ("\(p).v.weight", [i, d]), ("\(p).o.weight", [d, i])]
        }
        func ffn(_ p: String) -> [(String, [Int])] {
            c.isGated
                ? [("\(p).DenseReluDense.wi_0.weight", [c.dFf, d]), ("\(p).DenseReluDense.wi_1.weight", [c.dFf, d]),
                   ("\(p).DenseReluDense.wo.weight", [d, c.dFf]), ("\(p).layer_norm.weight", [d])]
                : [("\(p).DenseReluDense.wi.weight", [c.dFf, d]), ("\(p).DenseReluDense.wo.weight", [d, c.dFf]),
                   ("\(p).layer_norm.weight", [d])]
        }
        for b in 0..<c.numLayers {
            let p = "encoder.block.\(b)"
            out += attn("\(p).layer.0.SelfAttention")
            if b == 0 { out.append(("\(p).layer.0.SelfAttention.relative_attention_bias.weight", [c.buckets, c.numHeads])) }
            out.append(("\(p).layer.0.layer_norm.weight", [d]))
            out += ffn("\(p).layer.1")
        }
        out.append(("encoder.final_layer_norm.weight", [d]))
        for b in 0..<c.decoderLayers {
            let p = "decoder.block.\(b)"
            out += attn("\(p).layer.0.SelfAttention")
            if b == 0 { out.append(("\(p).layer.0.SelfAttention.relative_attention_bias.weight", [c.buckets, c.numHeads])) }
            out.append(("\(p).layer.0.layer_norm.weight", [d]))
            out += attn("\(p).layer.1.EncDecAttention")
            out.append(("\(p).layer.1.layer_norm.weight", [d]))
            out += ffn("\(p).layer.2")
        }
        out.append(("decoder.final_layer_norm.weight", [d]))
        if untiedHead { out.append(("lm_head.weight", [c.vocabSize, d])) }
        return out
    }

    /// Total parameters (tied embeddings counted once); `storedHeadDiffers` (nil when only the
    /// config is known: a head of its own exactly when `tie_word_embeddings` is false) decides the
    /// head as `load` does.
    public static func parameterCount(_ c: T5Config, storedHeadDiffers: Bool? = nil) -> Int {
        parameterShapes(c, untiedHead: headLayout(c, storedHeadDiffers: storedHeadDiffers ?? !c.tied).untied).reduce(0) { $0 + $1.1.reduce(1, *) }
    }

    /// Which head a checkpoint uses, as transformers 5.24 decides it.
    /// - The head: T5Config and MT5Config force `tie_word_embeddings` true, so `lm_head.weight` is
    ///   tied to `shared.weight` whatever config.json says, unless the checkpoint stores a head
    ///   whose values differ from the embedding's, which is then kept as a weight of its own
    ///   (modeling_utils `tie_weights`: "both are present in the checkpoints with different
    ///   values, so we will NOT tie them"). `storedHeadDiffers` is that test
    ///   (`WeightStore.storedHeadDiffers`).
    /// - The d^−0.5 scaling of the decoder output before the head: T5 scales when
    ///   `scale_decoder_outputs` says so (written by transformers ≥ 5) or, without it, when the
    ///   saved `tie_word_embeddings` is not false (configuration_t5 `__post_init__`); mT5
    ///   (`model_type` "mt5") never scales (modeling_mt5: `lm_logits = self.lm_head(sequence_output)`).
    public static func headLayout(_ c: T5Config, storedHeadDiffers: Bool) -> (untied: Bool, scale: Bool) {
        (storedHeadDiffers, c.modelType == "mt5" ? false : c.scaleDecoderOutputs ?? c.tied)
    }

    // MARK: construction

    init(config c: T5Config, untiedHead: Bool, scaleOutput: Bool, tensor: (String, [Int]) throws -> Tensor) throws {
        config = c
        let (params, byName) = try materialize(T5Model.parameterShapes(c, untiedHead: untiedHead), tensor)
        parameters = params
        func w(_ n: String) -> Tensor { byName[n]! }
        func attn(_ p: String) -> Attn { Attn(q: w("\(p).q.weight"), k: w("\(p).k.weight"), v: w("\(p).v.weight"), o: w("\(p).o.weight")) }
        func ffn(_ p: String) -> FFN {
            c.isGated
                ? FFN(wi: nil, wi0: w("\(p).DenseReluDense.wi_0.weight"), wi1: w("\(p).DenseReluDense.wi_1.weight"), wo: w("\(p).DenseReluDense.wo.weight"))
                : FFN(wi: w("\(p).DenseReluDense.wi.weight"), wi0: nil, wi1: nil, wo: w("\(p).DenseReluDense.wo.weight"))
        }
        shared = w("shared.weight")
        lmHead = untiedHead ? w("lm_head.weight") : nil
        scaleDecoderOutput = scaleOutput
        encoderBlocks = (0..<c.numLayers).map { b in
            let p = "encoder.block.\(b)"
            return Block(selfNorm: w("\(p).layer.0.layer_norm.weight"), selfAttn: attn("\(p).layer.0.SelfAttention"),
                         crossNorm: nil, crossAttn: nil, ffnNorm: w("\(p).layer.1.layer_norm.weight"), ffn: ffn("\(p).layer.1"))
        }
        decoderBlocks = (0..<c.decoderLayers).map { b in
            let p = "decoder.block.\(b)"
            return Block(selfNorm: w("\(p).layer.0.layer_norm.weight"), selfAttn: attn("\(p).layer.0.SelfAttention"),
                         crossNorm: w("\(p).layer.1.layer_norm.weight"), crossAttn: attn("\(p).layer.1.EncDecAttention"),
                         ffnNorm: w("\(p).layer.2.layer_norm.weight"), ffn: ffn("\(p).layer.2"))
        }
        encoderBias = w("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight")
        decoderBias = w("decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight")
        encoderFinal = w("encoder.final_layer_norm.weight")
        decoderFinal = w("decoder.final_layer_norm.weight")
    }

    /// Loads config.json + safetensors weights from a checkpoint directory.
    public static func load(directory: String) throws -> T5Model {
        let cfgPath = (directory as NSString).appendingPathComponent("config.json")
        guard case .t5(let c) = try ModelConfig.load(path: cfgPath) else {
            throw ConfigError(path: cfgPath, detail: "field 'model_type' is not \"t5\"")
        }
        return try load(config: c, weights: try ModelFiles.openWeights(directory: directory))
    }

    /// The stored embedding's names: `shared.weight`, or the copies older files hold instead.
    static let embeddingAliases: [String: [String]] = ["shared.weight": ["encoder.embed_tokens.weight", "decoder.embed_tokens.weight"]]

    /// Whether `store` holds an `lm_head.weight` with other values than its embedding (`shared`,
    /// or the first stored alias): `headLayout`'s `storedHeadDiffers`, as `load` and `info` read it.
    /// Errors: a tensor that cannot be read.
    public static func storedHeadDiffers(in store: WeightStore) throws -> Bool {
        let embedding = (["shared.weight"] + embeddingAliases["shared.weight"]!).first(where: store.has) ?? "shared.weight"
        return try store.storedHeadDiffers("lm_head.weight", from: embedding)
    }

    /// Refuses a file whose stored embedding tables (`shared.weight`, `encoder.embed_tokens.weight`,
    /// `decoder.embed_tokens.weight`) hold different values. transformers 4 ties the encoder's and
    /// decoder's tables to `shared.weight` whatever they hold; transformers 5 keeps a differing copy
    /// apart ("both are present in the checkpoints with different values, so we will NOT tie
    /// them"). This model has one table for the encoder, the decoder and a tied head, so it would
    /// compute what neither does (a review's checkpoint: loss 4.690 against transformers 5's 4.985,
    /// with no word). Equal copies, as every saved T5 holds, load as before.
    /// Errors: `SafeTensorsError` naming the file and both tensors; a tensor that cannot be read.
    public static func checkEmbeddingCopies(in store: WeightStore) throws {
        let stored = (["shared.weight"] + embeddingAliases["shared.weight"]!).filter(store.has)
        guard let first = stored.first else { return }
        for other in stored.dropFirst() where try store.storedHeadDiffers(other, from: first) {
            throw SafeTensorsError(path: store.location[other]?.path ?? store.files.first?.path ?? "?",
                detail: "'\(other)' holds other values than '\(first)': transformers 4 would use '\(first)' for it, transformers 5 its own copy; "
                    + "PromptRepro has one embedding table for the encoder, the decoder and a tied head and does not pick one. "
                    + "Save the checkpoint with equal copies (or '\(first)' alone) to load it")
        }
    }

    public static func load(config c: T5Config, weights store: WeightStore) throws -> T5Model {
        let aliases = embeddingAliases
        try checkEmbeddingCopies(in: store)
        let differs = try storedHeadDiffers(in: store)
        let (untied, scale) = headLayout(c, storedHeadDiffers: differs)
        let path = store.files.first?.path ?? "?"
        if differs && c.tied {
            FileHandle.standardError.write(Data("warning: \(path): 'lm_head.weight' differs from 'shared.weight' although config.json ties them (tie_word_embeddings true or absent): it is used as the head, as transformers 5 does\n".utf8))
        } else if !c.tied && !store.has("lm_head.weight") {
            FileHandle.standardError.write(Data("warning: \(path): config.json says tie_word_embeddings false but no 'lm_head.weight' is stored: the head is 'shared.weight', as transformers 5 ties it (transformers 4 starts a random head instead)\n".utf8))
        }
        let expected = parameterShapes(c, untiedHead: untied)
        // Older checkpoints carry an unused cross-attention position bias (transformers ignores it).
        try store.require(expected.map(\.0), aliases: aliases,
                          ignoring: { $0.hasSuffix("EncDecAttention.relative_attention_bias.weight") },
                          tiedHead: untied ? nil : ("lm_head.weight", "shared.weight"))
        return try T5Model(config: c, untiedHead: untied, scaleOutput: scale) { name, shape in
            if store.has(name) { return try store.load(name, shape: shape) }
            return try store.load(aliases[name]!.first(where: store.has)!, shape: shape)
        }
    }

    /// Random weights (embedded smoke backbone, benchmarks): N(0, σ) as HF's T5 init.
    public static func random(config c: T5Config, key: RNGKey) throws -> T5Model {
        let (untied, scale) = headLayout(c, storedHeadDiffers: !c.tied)
        return try T5Model(config: c, untiedHead: untied, scaleOutput: scale) { name, shape in
            let fanIn = Float(shape.last ?? 1)
            let std: Float = name.contains("layer_norm") ? 0 : (name.contains("relative_attention_bias") || name.contains("shared") || name.contains("lm_head") ? 1 : 1 / fanIn.squareRoot())
            if std == 0 { return Tensor(shape: shape, values: [Float](repeating: 1, count: shape.reduce(1, *))) }
            return Tensor.normal(shape, std: std, key: key.derive(name))
        }
    }

    /// Sets `requiresGrad` on every backbone weight (full fine-tuning) or none (frozen).
    public func setTrainable(_ on: Bool) { for (_, t) in parameters { t.requiresGrad = on } }

    // MARK: relative position bias

    /// HF `_relative_position_bucket` (log evaluated in float32 as transformers does).
    public static func relativeBucket(_ rp: Int, bidirectional: Bool, numBuckets: Int, maxDistance: Int) -> Int {
        var nb = numBuckets, ret = 0, n: Int
        if bidirectional {
            nb /= 2
            ret = rp > 0 ? nb : 0
            n = abs(rp)
        } else {
            n = max(-rp, 0)
        }
        let maxExact = nb / 2
        if n < maxExact { return ret + n }
        let ratio = logf(Float(n) / Float(maxExact)) / Float(log(Double(maxDistance) / Double(maxExact)))
        let large = maxExact + Int(ratio * Float(nb - maxExact))
        return ret + min(large, nb - 1)
    }

    /// bias[h, i, j] = table[bucket(j − (offset + i)), h] → [H, Tq, Tk]; backward scatter-adds into the table.
    func positionBias(_ table: Tensor, tq: Int, tk: Int, queryOffset: Int, bidirectional: Bool) -> Tensor {
        let h = config.numHeads
        var buckets = [Int32](repeating: 0, count: tq * tk)
        for i in 0..<tq {
            for j in 0..<tk {
                buckets[i * tk + j] = Int32(T5Model.relativeBucket(j - (queryOffset + i), bidirectional: bidirectional,
                                                                   numBuckets: config.buckets, maxDistance: config.maxDistance))
            }
        }
        let out = Tensor(zeros: [h, tq, tk])
        for hh in 0..<h {
            for e in 0..<(tq * tk) { out.data[hh * tq * tk + e] = table.data[Int(buckets[e]) * h + hh] }
        }
        if Tape.shouldRecord([table]) {
            let ob = out.box, tb = table.box
            Tape.push(out, inputs: [table]) {
                let g = ob.grad!.data, gt = tb.buffer()
                for hh in 0..<h { for e in 0..<(tq * tk) { gt[Int(buckets[e]) * h + hh] += g[hh * tq * tk + e] } }
            }
        }
        return out
    }

    // MARK: layers

    /// x·Wᵀ, plus the adapter's update when one is attached to W. `computesValues: false`: the
    /// values are left 0 (`linear`), for an output nothing reads.
    func lin(_ x: Tensor, _ w: Tensor, _ drop: DropoutContext, computesValues: Bool = true) throws -> Tensor {
        let y = try linear(x, w, computesValues: computesValues)
        guard let a = adapters[w.name] else { return y }
        return try add(y, a.delta(x, drop: drop))
    }

    /// `outputRead: false` (the checkpointed sublayer's second run, whose output nobody reads):
    /// the output projection records its node but computes no values, and the attention keeps its
    /// probabilities for the backward that follows at once instead of recomputing them there.
    func selfAttention(_ x: Tensor, _ a: Attn, bias: Tensor, mask: Tensor?, causal: Bool, drop: DropoutContext,
                       outputRead: Bool = true) throws -> Tensor {
        let q = try lin(x, a.q, drop), k = try lin(x, a.k, drop), v = try lin(x, a.v, drop)  // (B, T, I)
        var options = drop.attention(causal: causal)
        // In a checkpointed sublayer's second run P lives only until its backward, which follows at
        // once: keep it rather than compute it again there. (Its forward run keeps nothing.)
        options.recomputeProbabilities = recomputesProbabilities && outputRead
        options.realPositionsOnly = encoderSkipsPadding && !causal   // the encoder inside a training loss
        let ctx = try attention(q: q, k: k, v: v, heads: config.numHeads, bias: bias, keyMask: mask, options: options)
        return try lin(ctx, a.o, drop, computesValues: outputRead)                    // (B, T, d)
    }

    /// dropout(FFN(norm(h))), the update a block's feed-forward sublayer adds to h; checkpointed
    /// when `checkpointFeedForward` is on and a tape records.
    func feedForwardSublayer(_ h: Tensor, _ blk: Block, drop: DropoutContext) throws -> Tensor {
        let sublayer: ([Tensor], Bool) throws -> Tensor = { [unowned self] xs, outputRead in
            drop.apply(try self.feedForward(try rmsNorm(xs[0], weight: blk.ffnNorm, eps: self.config.eps), blk.ffn, drop: drop,
                                            outputRead: outputRead),
                       overwrite: true)  // the output projection's result: read by nothing else
        }
        return try checkpointed(checkpointFeedForward, inputs: [h], drop: drop, sublayer)
    }

    /// `sublayer(inputs, outputRead)`, under Tape.checkpoint when `on` and a tape records, with its
    /// dropout sites replayed when backward runs it again. `outputRead` is false in that second run
    /// only: nothing reads its output values, so the sublayer's output projection need not compute
    /// them (one GEMM per checkpointed sublayer fewer; the gradients keep their bits).
    /// The second run also runs in the forward's padding scopes (`encoderSkipsPadding`, the
    /// `PaddedRows` spans), which have ended by the time backward runs: it computes over the
    /// positions the forward computed, not the whole padded batch.
    func checkpointed(_ on: Bool, inputs: [Tensor], drop: DropoutContext,
                      _ sublayer: @escaping ([Tensor], Bool) throws -> Tensor) throws -> Tensor {
        guard on, Tape.isRecording else { return try sublayer(inputs, true) }
        let mark = drop.position
        let skipsPadding = encoderSkipsPadding, rows = PaddedRows.scope
        var runs = 0
        return try Tape.checkpoint(inputs: inputs) { [unowned self] xs in
            runs += 1
            if runs == 1 { return try drop.replaying(from: mark) { try sublayer(xs, true) } }
            return try self.withEncoderSkipsPadding(skipsPadding) {
                try PaddedRows.with(rows) { try drop.replaying(from: mark) { try sublayer(xs, false) } }
            }
        }
    }

    /// dropout(SelfAttention(norm(h))), the self-attention sublayer's update to h; checkpointed
    /// when `checkpointSelfAttention` is on and a tape records.
    func selfAttentionSublayer(_ h: Tensor, _ blk: Block, bias: Tensor, mask: Tensor?, causal: Bool, drop: DropoutContext) throws -> Tensor {
        let sublayer: ([Tensor], Bool) throws -> Tensor = { [unowned self] xs, outputRead in
            drop.apply(try self.selfAttention(try rmsNorm(xs[0], weight: blk.selfNorm, eps: self.config.eps), blk.selfAttn,
                                              bias: xs[1], mask: mask, causal: causal, drop: drop, outputRead: outputRead),
                       overwrite: true)  // the output projection's result: read by nothing else
        }
        return try checkpointed(checkpointSelfAttention, inputs: [h, bias], drop: drop, sublayer)
    }

    /// Whether the FFN's ReLU and dropout run as one op (`DropoutContext.applyAfterReLU`); false
    /// runs them as two, for the tests that hold the two forms to the same bits.
    nonisolated(unsafe) public static var fusesReLUDropout = true

    /// `outputRead: false`: the output projection computes no values (see `selfAttention`).
    func feedForward(_ x: Tensor, _ f: FFN, drop: DropoutContext, outputRead: Bool = true) throws -> Tensor {
        // The pre-activation is a temporary: the activation may overwrite it.
        let act: (Tensor) -> Tensor = ["relu": { relu($0, overwrite: true) }, "gelu": { gelu($0, overwrite: true) },
                                       "silu": { silu($0, overwrite: true) }][config.activation]
            ?? { geluNew($0, overwrite: true) }
        // h is read by nothing but the dropout (ReLU's and the product's gradients keep their own
        // operands or mask bits), so the dropped activation takes its storage: one (B, T, F) buffer
        // kept for backward instead of two. A ReLU and its dropout run as one op (`reluDropout`,
        // the same bits) unless `fusesReLUDropout` is off.
        let dropped: Tensor
        if let wi = f.wi, config.activation == "relu", Self.fusesReLUDropout {
            dropped = drop.applyAfterReLU(try lin(x, wi, drop), overwrite: true)      // (B, T, F)
        } else {
            let h: Tensor
            if let wi = f.wi {
                h = act(try lin(x, wi, drop))                                         // (B, T, F)
            } else {
                h = try mul(act(try lin(x, f.wi0!, drop)), try lin(x, f.wi1!, drop))
            }
            dropped = drop.apply(h, overwrite: true)
        }
        // After a ReLU (and dropout) about half of it is zero, and only the output projection's
        // weight gradient reads it in backward: when that weight trains (full fine-tuning),
        // backward keeps its nonzero values and a bitmap instead.
        if f.wi != nil, config.activation == "relu", f.wo.requiresGrad {
            dropped.keepCompactForBackward()
        }
        return try lin(dropped, f.wo, drop, computesValues: outputRead)               // (B, T, d)
    }

    // MARK: forward

    /// The token embedding lookup shared[ids] → (B, L, d) (transformers' `get_input_embeddings()`):
    /// what a method builds `inputsEmbeds` from.
    public func embed(inputIds ids: [Int32], batch: Int) throws -> Tensor {
        try embedding(shared, ids: ids, shape: [batch, ids.count / max(batch, 1)])
    }

    /// Encoder over input embeddings (B, L, d) (a method's soft-prompt rows included) with key mask (B, L).
    /// A streamed pass (`streamChunks`: no tape, no dropout) runs layer by layer, each layer over
    /// every chunk of batch rows in turn, inside a `FrozenOperands` scope of that layer's weights:
    /// the weights are packed for the GEMM kernel once per layer instead of once per chunk, and only
    /// one layer's packed copy exists at a time. With the own kernels the chunks are length buckets:
    /// each runs its rows over the first `bucketLength` positions of its longest row only, instead
    /// of the batch's padded length (an evaluation batch of CB with DPT's 100 prompt rows: 11,652
    /// instead of 19,936 positions). Each row's real positions get exactly the bits `encodeWhole`
    /// gives them (tested; `bucketLength` says why). The output keeps the batch's shape and row
    /// order; at a padding position it holds what its chunk computed there, or 0 past the chunk's
    /// length: values every attention over the encoder states masks.
    public func encode(embeds: Tensor, mask: Tensor, drop: DropoutContext) throws -> Tensor {
        let (B, L) = (embeds.shape[0], embeds.shape[1])
        let chunks = streamChunks(mask: mask, drop: drop)
        guard chunks.count > 1 || chunks[0].length < L else { return try encodeWhole(embeds: embeds, mask: mask, drop: drop) }
        let d = embeds.count / max(B * L, 1)
        var biases: [Int: Tensor] = [:]
        for c in chunks where biases[c.length] == nil {
            biases[c.length] = positionBias(encoderBias, tq: c.length, tk: c.length, queryOffset: 0, bidirectional: true)  // (H, n, n)
        }
        /// Rows `rows` of x [B, L, w] over their first n positions → [rows, n, w].
        func gather(_ x: Tensor, _ rows: [Int], _ n: Int) -> Tensor {
            let w = x.count / max(B * L, 1)
            let out = Tensor(zeros: [rows.count, n] + (x.rank == 3 ? [w] : []))
            for (i, r) in rows.enumerated() { (out.data + i * n * w).update(from: x.data + r * L * w, count: n * w) }
            return out
        }
        let x = drop.apply(embeds)
        var hs = chunks.map { gather(x, $0.rows, $0.length) }                          // (rows, n, d) each
        let masks = chunks.map { gather(mask, $0.rows, $0.length) }
        // Registering the weights lets a product with fewer than `BLAS.fewRows` rows run the own
        // kernel where it would otherwise run OpenBLAS (`BLAS.usesOwnKernel`; with OpenBLAS selected
        // a scope changes nothing). So they are registered exactly when `encodeWhole` runs the own
        // kernel for the whole batch (B·L ≥ fewRows, at most 32, so every length-bucketed pass);
        // otherwise (a pass that small) the chunks run without the scope, as encodeWhole would.
        let buckets = Self.bucketsByLength(batch: B, length: L)
        let frozen = BLAS.kernel != .openblas && B * L >= BLAS.fewRows(BLAS.kernel)
        // With many length buckets, whole buckets run side by side, one per thread (each bucket's
        // products and attention then run on that thread alone), longest first: one hand-over per
        // layer instead of one per product, whose fork and join cost up to a tenth of a 2-thread
        // evaluation on a KVM guest. Same bits: every op's result is independent of how its
        // rows, columns or (row, head) units are split over threads, and the kernel choice is the
        // whole product's (`BLAS.usesOwnKernel`, which does not look at the threads).
        let sideBySide = buckets && Parallel.threads > 1 && chunks.count >= 4 * Parallel.threads
        let slots = hs.map { Slot($0) }
        hs = []
        let longestFirst = chunks.indices.sorted { chunks[$0].rows.count * chunks[$0].length > chunks[$1].rows.count * chunks[$1].length }
        for blk in encoderBlocks {
            try FrozenOperands.scope(frozen ? blk.linearWeights : []) { _ in
                func layer(_ i: Int) throws {
                    slots[i].value = try encoderLayer(slots[i].value, blk, bias: biases[chunks[i].length]!, mask: masks[i], drop: drop)
                }
                if sideBySide {
                    try Parallel.unitsThrowing(chunks.count) { u in try layer(longestFirst[u]) }
                } else {
                    for i in chunks.indices { try layer(i) }
                }
            }
        }
        hs = slots.map(\.value)
        let out = Tensor(zeros: [B, L, d])
        for (i, c) in chunks.enumerated() {
            let y = try encoderFinalNorm(hs[i], drop: drop)
            hs[i] = y   // releases the chunk's last hidden states
            for (j, r) in c.rows.enumerated() { (out.data + r * L * d).update(from: y.data + j * c.length * d, count: c.length * d) }
        }
        return out
    }

    /// One length bucket's hidden states, replaced layer by layer (`encode` runs buckets side by side).
    private final class Slot {
        var value: Tensor
        init(_ value: Tensor) { self.value = value }
    }

    /// The encoder without streaming: every layer over the whole batch. With `encoderSkipsPadding`
    /// its linear layers compute each row's positions up to its last real key only (`PaddedRows`,
    /// with the own kernels): the real positions keep their bits, the padding (which every attention
    /// over it masks) holds 0 after a linear layer, and in training its gradient is 0 as before.
    func encodeWhole(embeds: Tensor, mask: Tensor, drop: DropoutContext) throws -> Tensor {
        let L = embeds.shape[1]
        var h = drop.apply(embeds)                                                    // (B, L, d)
        let bias = positionBias(encoderBias, tq: L, tk: L, queryOffset: 0, bidirectional: true)  // (H, L, L)
        let live = encoderSkipsPadding ? realKeyLengths(mask) : []   // [] (no rows given): every position
        try PaddedRows.with(batch: embeds.shape[0], length: L, live: live) {
            for blk in encoderBlocks { h = try encoderLayer(h, blk, bias: bias, mask: mask, drop: drop) }
        }
        return try encoderFinalNorm(h, drop: drop)                                    // (B, L, d)
    }

    /// One encoder block on h (B, L, d) → (B, L, d): self-attention and feed-forward sublayers, each
    /// added to h. Streamed and whole-batch encoding both run it, so they do the same operations.
    func encoderLayer(_ h: Tensor, _ blk: Block, bias: Tensor, mask: Tensor, drop: DropoutContext) throws -> Tensor {
        let h = try add(h, try selfAttentionSublayer(h, blk, bias: bias, mask: mask, causal: false, drop: drop))
        return try add(h, try feedForwardSublayer(h, blk, drop: drop))
    }

    /// The encoder's final RMS norm and dropout on h (B, L, d).
    func encoderFinalNorm(_ h: Tensor, drop: DropoutContext) throws -> Tensor {
        drop.apply(try rmsNorm(h, weight: encoderFinal, eps: config.eps))
    }

    /// Decoder (teacher forcing) → logits (B, T, V).
    public func decode(ids: [Int32], batch: Int, encoder: Tensor, encoderMask: Tensor, drop: DropoutContext) throws -> Tensor {
        let T = ids.count / batch
        var h = drop.apply(try embedding(shared, ids: ids, shape: [batch, T]))        // (B, T, d)
        let bias = positionBias(decoderBias, tq: T, tk: T, queryOffset: 0, bidirectional: false)
        for blk in decoderBlocks {
            h = try decoderBlock(h, blk, bias: bias, cache: nil, cross: .encoder(encoder), encoderMask: encoderMask, drop: drop)
        }
        h = drop.apply(try rmsNorm(h, weight: decoderFinal, eps: config.eps))
        return try head(h)
    }

    /// What a decoder layer's cross-attention reads: the encoder states (B, L, d), projected in the
    /// block or not as `absorbsCross` decides for its number of queries (teacher forcing); or, in
    /// incremental decoding, K/V already projected from them (B, L, I) each, or the states to attend
    /// in the absorbed form.
    enum CrossMemory {
        case encoder(Tensor)
        case projected(Tensor, Tensor)
        /// Greedy decoding's projected form: keys in key panels ([B, H, P, I/H, 64], `panelledKeys`)
        /// and values head by head ([B, H, L, I/H], `headMajorValues`), read by `singleQueryAttention`
        /// (same bits as `.projected`).
        case projectedForDecoding(panelledKeys: Tensor, headMajorValues: Tensor)
        case absorbed(Tensor)
    }

    /// One decoder block on h (B, T, d) → (B, T, d): causal self-attention, cross-attention over
    /// the encoder, feed-forward, each pre-norm with a residual. Teacher forcing (`cache` nil) runs
    /// the T rows at once under a causal mask (`bias` (H, T, T)); incremental decoding passes the
    /// new row (T = 1), appends its keys and values to `cache` at `layer`, and attends over every
    /// cached row (`bias` (H, 1, step+1)) with `cachedAttention` (Tensor/DecodeAttention.swift).
    func decoderBlock(_ h: Tensor, _ blk: Block, layer: Int = 0, bias: Tensor, cache: KVCache?, cross: CrossMemory,
                      encoderMask: Tensor, drop: DropoutContext) throws -> Tensor {
        var h = h
        if let cache {
            let x = try rmsNorm(h, weight: blk.selfNorm, eps: config.eps)
            let k = try lin(x, blk.selfAttn.k, drop), v = try lin(x, blk.selfAttn.v, drop)
            try cache.append(layer: layer, k: k, v: v)                                      // step+1 rows
            let a = try cachedAttention(q: try lin(x, blk.selfAttn.q, drop), cache: cache, layer: layer,
                                        heads: config.numHeads, bias: bias)
            h = try add(h, try lin(a, blk.selfAttn.o, drop))
        } else {
            h = try add(h, try selfAttentionSublayer(h, blk, bias: bias, mask: nil, causal: true, drop: drop))
        }
        let ca = blk.crossAttn!
        let q = try lin(try rmsNorm(h, weight: blk.crossNorm!, eps: config.eps), ca.q, drop)
        var memory = cross
        if case .encoder(let e) = cross {
            memory = absorbsCross(ca, queries: h.shape[1], keys: e.shape[1]) ? .absorbed(e) : .projected(try lin(e, ca.k, drop), try lin(e, ca.v, drop))
        }
        let ctx: Tensor
        switch memory {
        case .encoder: preconditionFailure("resolved above")
        case .projected(let k, let v):
            ctx = try attention(q: q, k: k, v: v, heads: config.numHeads, keyMask: encoderMask, options: drop.attention())
        case .projectedForDecoding(let kP, let v):
            let o = drop.attention()
            precondition(o.dropout == 0 || o.key == nil, "greedy decoding runs without dropout")
            ctx = try singleQueryAttention(q: q, keysT: kP, values: v, length: v.shape[2], heads: config.numHeads, bias: nil,
                                           keyMask: encoderMask, scale: o.scale)
        case .absorbed(let memory):
            ctx = try crossAttentionAbsorbed(q: q, memory: memory, wk: ca.k, wv: ca.v, heads: config.numHeads, keyMask: encoderMask,
                                             options: drop.attention())
        }
        h = try add(h, drop.apply(try lin(ctx, ca.o, drop), overwrite: true))
        return try add(h, try feedForwardSublayer(h, blk, drop: drop))
    }

    func head(_ h: Tensor) throws -> Tensor {
        let x = scaleDecoderOutput ? scale(h, 1 / Float(config.dModel).squareRoot()) : h
        return try linear(x, lmHead ?? shared)                                        // (B, T, V)
    }

    /// Decoder inputs: labels shifted right, start id first, −100 → pad id.
    public func shiftRight(_ labels: [Int32], batch: Int) -> [Int32] {
        let T = labels.count / batch
        let start = Int32(config.decoderStartTokenId ?? 0), pad = Int32(config.padTokenId ?? 0)
        var out = [Int32](repeating: 0, count: labels.count)
        for b in 0..<batch {
            out[b * T] = start
            for t in 1..<max(T, 1) {
                let l = labels[b * T + t - 1]
                out[b * T + t] = l == ignoreIndex ? pad : l
            }
        }
        return out
    }

    /// Everything one teacher-forced pass produces.
    public struct Output {
        public let loss: Tensor
        public let logits: Tensor        // (B, T, V)
        public let encoderHidden: Tensor // (B, L, d)
    }

    /// Teacher-forced pass over input embeddings, as transformers' T5ForConditionalGeneration with
    /// `inputs_embeds`: encoder over `inputsEmbeds` (B, L, d) with `attentionMask` (B, L) as its key
    /// mask and the decoder's cross-attention mask; decoder inputs are `labels` (B, T, −100 padded)
    /// shifted right; loss the mean token cross-entropy. A method's soft prompt or input update is
    /// already in `inputsEmbeds` (Methods: `TuningMethod.inputs`, METHODS §1).
    public func forward(inputsEmbeds: Tensor, attentionMask: Tensor, labels: [Int32], drop: DropoutContext = .eval) throws -> Output {
        guard inputsEmbeds.rank == 3, inputsEmbeds.shape[2] == config.dModel,
              attentionMask.shape == Array(inputsEmbeds.shape.prefix(2)) else {
            throw TensorError.shapeMismatch(op: "T5 inputs", detail: "inputs_embeds \(inputsEmbeds.shape) must be [B, L, \(config.dModel)] with attention_mask [B, L], got \(attentionMask.shape)")
        }
        let batch = inputsEmbeds.shape[0]
        // An inference pass starts by giving the heap's free pages back to the OS (`HeapMemory`):
        // what the previous pass and its caller freed (its outputs are freed only after it returns).
        HeapMemory.releaseFreeUnlessRecording()
        let enc = try encode(embeds: inputsEmbeds, mask: attentionMask, drop: drop)   // (B, L, d)
        let logits = try decode(ids: shiftRight(labels, batch: batch), batch: batch, encoder: enc, encoderMask: attentionMask, drop: drop)
        return Output(loss: try crossEntropy(logits, targets: labels), logits: logits, encoderHidden: enc)
    }

    /// Plain token input (`input_ids`, B × L, with `attentionMask` B × L): `forward(inputsEmbeds:)`
    /// over `embed(inputIds:batch:)`.
    public func forward(inputIds: [Int32], attentionMask: [Float], labels: [Int32], batch: Int,
                        drop: DropoutContext = .eval) throws -> Output {
        try forward(inputsEmbeds: try embed(inputIds: inputIds, batch: batch),
                    attentionMask: Tensor(shape: [batch, inputIds.count / batch], values: attentionMask), labels: labels, drop: drop)
    }

    // MARK: greedy generation with a KV cache

    /// Encodes `embeds` (consumed) and decodes greedily: the embeddings do not stay alive during
    /// decoding; the encoder states do only in the absorbed cross-attention form (otherwise only the
    /// cross-attention K/V computed from them).
    public func generate(embeds: consuming Tensor, mask: Tensor, maxNewTokens: Int,
                         stopRow: ((_ row: Int, _ tokens: ArraySlice<Int32>) -> Bool)? = nil) throws -> [[Int32]] {
        HeapMemory.releaseFree()  // what earlier calls freed goes back to the OS first (`HeapMemory`)
        let enc = try encode(embeds: consume embeds, mask: mask, drop: .eval)
        return try generate(encoder: consume enc, encoderMask: mask, maxNewTokens: maxNewTokens, stopRow: stopRow)
    }

    /// Greedy decode: start with the start id, append argmax; a row that emitted EOS gets pad
    /// afterwards; stops after `maxNewTokens` or when every row has finished. Rows include the start id.
    /// `stopRow(b, tokens)` (transformers' per-row stopping criterion), asked after each new token
    /// of an unfinished row with that row's tokens after the start id, ends the row as EOS does
    /// (pad afterwards; its tokens so far are kept without an EOS). Every other row gets the same
    /// tokens as without it: the batch keeps its rows, so each step's products are unchanged.
    /// `encoder` is consumed: in the projected cross-attention form it is released once the K/V are
    /// computed from it (when the caller passes its last reference); the absorbed form (chosen for
    /// few steps over a long input, see `CrossAttentionMode`) attends to it directly at every step.
    public func generate(encoder: consuming Tensor, encoderMask: Tensor, maxNewTokens: Int,
                         stopRow: ((_ row: Int, _ tokens: ArraySlice<Int32>) -> Bool)? = nil) throws -> [[Int32]] {
        // Nothing writes the weights or the encoder states while decoding: the own GEMM kernels pack
        // them once and reuse the packed copies at every step (same bits; PackedOperands.swift).
        // A copy takes as much memory as its weight (t5-base's decoder and head: ≈ 550 MB) and
        // saves a packing pass from the weight's third use on (the first packs on the fly, the
        // second makes the copy), so decodes shorter than `packedDecodingMinSteps` pack on the fly.
        var held: Tensor? = consume encoder
        // No trim at the end: the next inference call trims at its start (`HeapMemory`), so the
        // peak RSS of repeated calls stays the same (t5-base batch 32 × 356: 1003 MiB either way),
        // while the buffers the caller builds between calls (the next batch's input embeddings)
        // reuse the pages this decode freed instead of faulting fresh ones (t5-small generate,
        // 5 calls: 323 K → 266 K page faults; faults cost more under a hypervisor).
        // (Registered either way: registration also picks the kernel of few-row products, so a short
        // decode gives the bits of the same steps of a long one.)
        return try FrozenOperands.scope(parameters.map { $0.tensor }, packs: maxNewTokens >= Self.packedDecodingMinSteps) { frozen in
            let flops0 = BLAS.flops, clock0 = DispatchTime.now().uptimeNanoseconds
            let groups = decodingRowGroups(batch: encoderMask.shape[0], maxNewTokens: maxNewTokens)
            // Each group's encoder states are a view of its rows (no copy); the batch's states are
            // freed once every group has dropped its view (after projecting K/V).
            let enc = held.take()!
            let slots = groups.map { g in GroupDecode(encoder: rowsView(enc, g), mask: rowsView(encoderMask, g)) }
            _ = consume enc
            let lock = NSLock()
            func decodeGroup(_ g: Int) throws {
                let first = groups[g].lowerBound
                let one = try decode(encoder: slots[g].encoder.take()!, encoderMask: slots[g].mask, maxNewTokens: maxNewTokens,
                                     frozen: frozen, stopRow: stopRow.map { stop in { b, t in lock.withLock { stop(first + b, t) } } },
                                     observe: onDecodingStep.map { f in { step, logits in lock.withLock { f(step, first, logits) } } })
                slots[g].rows = one.rows
                slots[g].steps = one.steps
            }
            // Several groups decode side by side, each on a thread of its own (`decodingRowGroups`);
            // one group is the whole batch, its products split over the threads.
            if groups.count == 1 { try decodeGroup(0) } else { try Parallel.unitsThrowing(groups.count, decodeGroup) }
            // A group whose rows all ended stops early; the batch's rows get pad after their end up
            // to the longest group's length, as one decode of the whole batch gives them.
            let longest = slots.map { $0.rows.map(\.count).max() ?? 0 }.max() ?? 0
            let pad = Int32(config.padTokenId ?? 0)
            let rows = slots.flatMap { $0.rows.map { $0 + [Int32](repeating: pad, count: longest - $0.count) } }
            let steps = slots.map(\.steps)
            var traffic = DecodeTraffic.Totals()
            for s in 0..<(steps.map(\.count).max() ?? 0) {
                let running = steps.filter { $0.count > s }.map { $0[s] }
                let attention = running.reduce(0) { $0 + $1.attentionBytes }
                // The weights, read by every group, count once: the bytes a step must read at least once.
                traffic.readBytes += (running.map(\.weightBytes).max() ?? 0) + attention
                traffic.attentionReadBytes += attention
                traffic.weightFlops += running.reduce(0) { $0 + $1.weightFlops }
                traffic.rowSteps += running.reduce(0) { $0 + $1.rows }
            }
            traffic.flops = BLAS.flops - flops0
            traffic.seconds = Double(DispatchTime.now().uptimeNanoseconds - clock0) / 1e9
            DecodeTraffic.add(traffic)
            return rows
        }
    }

    /// One decoding step's bytes and weight FLOPs (`decode`), summed into `DecodeTraffic`.
    struct DecodingStepTraffic {
        var weightBytes: Int, attentionBytes: Int, weightFlops: Int
        /// Rows the step computed (its group's batch, finished rows included).
        var rows: Int
    }

    /// One row group's inputs and results (`generate`).
    private final class GroupDecode {
        var encoder: Tensor?
        let mask: Tensor
        var rows: [[Int32]] = []
        var steps: [DecodingStepTraffic] = []
        init(encoder: Tensor, mask: Tensor) { self.encoder = encoder; self.mask = mask }
    }

    /// Rows `r` of x [B, …] → [r.count, …], a view that keeps x alive (read only here).
    private func rowsView(_ x: Tensor, _ r: Range<Int>) -> Tensor {
        let per = x.count / max(x.shape[0], 1)
        return Tensor(shape: [r.count] + Array(x.shape.dropFirst()), borrowing: x.data + r.lowerBound * per, owner: x)
    }

    /// How a greedy decode of `batch` rows and up to `maxNewTokens` steps splits its rows over the
    /// threads: one contiguous group per thread, each decoded on its thread alone, when every group
    /// gets at least `Runtime.decodingGroupMinRows` rows, the decode keeps packed weights
    /// (`packedDecodingMinSteps` and `FrozenOperands.isEnabled`: otherwise every group would pack
    /// every weight on the fly at every step, twice the packing of one batch split by columns) and
    /// the own kernels run; otherwise one
    /// group (the whole batch, each product split over the threads).
    public func decodingRowGroups(batch: Int, maxNewTokens: Int) -> [Range<Int>] {
        let t = Parallel.threads, minRows = runtime.decodingGroupMinRows ?? Self.defaultDecodingGroupMinRows(BLAS.kernel)
        guard t > 1, minRows > 0, maxNewTokens >= Self.packedDecodingMinSteps, FrozenOperands.isEnabled, BLAS.kernel != .openblas,
              !BF16Products.isActive,
              batch >= t * minRows else { return [0..<batch] }
        return (0..<t).map { g in g * batch / t ..< (g + 1) * batch / t }
    }

    /// Bytes one greedy decoding step reads at least once (issue #21's end-to-end memory bound;
    /// `DecodeTraffic`), 4 per fp32 value:
    /// - every decoder block's projection weights (`Block.linearWeights`), except the
    ///   cross-attention's k and v in the layers whose keys and values are projected
    ///   (`projected[l]`), and the LM head (vocab × d_model);
    /// - per projected layer, each batch row's cross-attention keys and values over its real
    ///   encoder positions, `realKeys[b]` × 2 × inner; if any layer is absorbed, the encoder states
    ///   over the real positions, `realKeys[b]` × d_model, once for the step (every absorbed layer
    ///   reads the same states: the bytes a step must read, though each layer reads them again,
    ///   twice with the packed copies of long decodes: Eᵀ for the scores, E for the values);
    /// - per layer, each row's self-attention keys and values of the `selfKeys` steps so far
    ///   (this one included), `batch` × `selfKeys` × 2 × inner.
    /// Norm weights, embeddings and activations (a few values per row) are left out, and whether
    /// the bytes come from memory or a cache is not modelled: on the hosts measured, one step's
    /// bytes (t5-small, 56 rows: ≈ 0.4 GB) far exceed the L3. `projected` has one entry per decoder
    /// layer; `realKeys` one per batch row.
    public func decodingStepReadBytes(batch: Int, realKeys: [Int], selfKeys: Int, projected: [Bool]) -> Int {
        decodingStepWeightReadBytes(projected: projected)
            + decodingStepAttentionReadBytes(batch: batch, realKeys: realKeys, selfKeys: selfKeys, projected: projected)
    }

    /// The part of `decodingStepReadBytes` the step's weight products read: every decoder block's
    /// projection weights less the cross-attention's k and v of the projected layers, and the LM
    /// head; 4 bytes per value.
    func decodingStepWeightReadBytes(projected: [Bool]) -> Int {
        var floats = (lmHead ?? shared).count
        for (blk, isProjected) in zip(decoderBlocks, projected) {
            floats += blk.linearWeights.reduce(0) { $0 + $1.count }
            if isProjected, let a = blk.crossAttn { floats -= a.k.count + a.v.count }
        }
        return 4 * floats
    }

    /// The part of `decodingStepReadBytes` the step's attention reads (same arguments): the
    /// cross-attention's keys and values of the projected layers (Σ `realKeys` × 2 × inner each),
    /// the encoder states once if any layer is absorbed (Σ `realKeys` × d_model), and every
    /// layer's self-attention cache (`batch` × `selfKeys` × 2 × inner); 4 bytes per value. These
    /// bytes are read by products of one query row, 2 FLOPs per 4 bytes of keys or values and
    /// 4 × heads per 4 bytes of absorbed encoder states (memory-bound), while the
    /// rest, the weights, are read by products over all `batch` rows, 2 × `batch` FLOPs per 4 bytes
    /// (compute-bound for batches of a few dozen rows on the hosts measured).
    public func decodingStepAttentionReadBytes(batch: Int, realKeys: [Int], selfKeys: Int, projected: [Bool]) -> Int {
        let inner = config.innerDim, keys = realKeys.reduce(0, +)
        var floats = 0
        for (blk, isProjected) in zip(decoderBlocks, projected) {
            if isProjected, blk.crossAttn != nil { floats += keys * 2 * inner }
            floats += batch * selfKeys * 2 * inner
        }
        if projected.prefix(decoderBlocks.count).contains(false) { floats += keys * config.dModel }
        return 4 * floats
    }

    /// Greedy decodes of at least this many steps keep packed copies of the weights and encoder
    /// states for their steps (`generate`); shorter ones save at most five packing passes per
    /// weight with them, for as much memory as the weights.
    public static let packedDecodingMinSteps = 8

    private func decode(encoder: consuming Tensor, encoderMask: Tensor, maxNewTokens: Int, frozen: FrozenOperands,
                        stopRow: ((Int, ArraySlice<Int32>) -> Bool)?,
                        observe: ((Int, Tensor) -> Void)?) throws -> (rows: [[Int32]], steps: [DecodingStepTraffic]) {
        let B = encoder.shape[0]
        let start = Int32(config.decoderStartTokenId ?? 0), eos = Int32(config.eosTokenId ?? 1), pad = Int32(config.padTokenId ?? 0)
        let drop = DropoutContext.eval
        let L = encoder.shape[1]
        // Projected layers: cross-attention K/V once per layer. Absorbed layers attend to the encoder
        // states. How many steps run is unknown up front (rows stop at EOS), so `.auto` starts absorbed
        // and projects K/V at the first step where absorbed steps would have taken longer than projecting
        // once (`crossAttentionDecodingSwitchStep`: a time model; at most about twice the cheaper form's
        // time, whatever the number of steps).
        var crossKV: [(Tensor, Tensor)?] = Array(repeating: nil, count: decoderBlocks.count)
        var memory: Tensor? = encoder
        frozen.add(encoder)   // the absorbed cross-attention reads it at every step until K/V are projected
        _ = consume encoder
        // K/V of each row's real positions only (up to its last real key): the products' rows are
        // independent, so those get the bits of the whole [B, L] product; the rest stays 0 and is
        // never read (`singleQueryAttention` reads each row's keys up to its last real one). The
        // real rows are gathered once for all layers' projections, and the projections are laid
        // out for decoding straight from their compact rows.
        let real = realKeyLengths(encoderMask)
        var realRows: Tensor?
        func gatheredRealRows(_ x: Tensor) throws -> Tensor {
            if let realRows { return realRows }
            let rows = real.contains(where: { $0 < L }) ? try gatherRows(x, lengths: real) : x
            realRows = rows
            return rows
        }
        func project(_ l: Int) throws {
            guard crossKV[l] == nil, let memory else { return }
            let a = decoderBlocks[l].crossAttn!
            let rows = try gatheredRealRows(memory)
            crossKV[l] = (try panelledKeys(rows: try lin(rows, a.k, drop), heads: config.numHeads, lengths: real, keys: L),
                          try headMajorValues(rows: try lin(rows, a.v, drop), heads: config.numHeads, lengths: real, keys: L))
        }
        for (l, blk) in decoderBlocks.enumerated() where !absorbsCross(blk.crossAttn!, queries: 1, keys: L) { try project(l) }
        let switchStep = crossAttentionMode == .auto
            ? crossAttentionDecodingSwitchStep(maxSteps: maxNewTokens, keys: L, model: config.dModel, inner: config.innerDim,
                                               heads: config.numHeads)
            : nil
        func dropMemory() {
            if let m = memory { frozen.release(m) }
            memory = nil
            realRows = nil
        }
        if crossKV.allSatisfy({ $0 != nil }) { dropMemory() }
        let cache = KVCache(layers: decoderBlocks.count, batch: B, maxRows: max(1, maxNewTokens),
                            keyWidth: config.innerDim, valueWidth: config.innerDim)
        var rows = [[Int32]](repeating: [start], count: B)
        var finished = [Bool](repeating: false, count: B)
        var current = [Int32](repeating: start, count: B)
        var traffic: [DecodingStepTraffic] = []
        for step in 0..<maxNewTokens {
            if let switchStep, step + 1 == switchStep {
                for l in decoderBlocks.indices { try project(l) }
                dropMemory()
            }
            let isProjected = crossKV.map { $0 != nil }
            let weightBytes = decodingStepWeightReadBytes(projected: isProjected)
            let attentionBytes = decodingStepAttentionReadBytes(batch: B, realKeys: real, selfKeys: step + 1, projected: isProjected)
            traffic.append(DecodingStepTraffic(weightBytes: weightBytes, attentionBytes: attentionBytes, weightFlops: 2 * B * weightBytes / 4, rows: B))
            var h = try embedding(shared, ids: current, shape: [B, 1])                // (B, 1, d)
            let bias = positionBias(decoderBias, tq: 1, tk: step + 1, queryOffset: step, bidirectional: false)
            for (l, blk) in decoderBlocks.enumerated() {
                let cross: CrossMemory = crossKV[l].map { .projectedForDecoding(panelledKeys: $0.0, headMajorValues: $0.1) } ?? .absorbed(memory!)
                h = try decoderBlock(h, blk, layer: l, bias: bias, cache: cache, cross: cross, encoderMask: encoderMask, drop: drop)
            }
            let logits = try head(try rmsNorm(h, weight: decoderFinal, eps: config.eps))  // (B, 1, V)
            observe?(step, logits)
            let V = config.vocabSize
            // Each unfinished row's argmax (the first of equal maxima), rows over the threads.
            let argmax = UnsafeMutableBufferPointer<Int>.allocate(capacity: B)
            defer { argmax.deallocate() }
            let done = finished
            Parallel.forRange(B, costPerItem: V) { rows in
                for b in rows where !done[b] {
                    var best = 0
                    let row = logits.data + b * V
                    for j in 1..<V where row[j] > row[best] { best = j }
                    argmax[b] = best
                }
            }
            for b in 0..<B {
                var next = pad
                if !finished[b] {
                    next = Int32(argmax[b])
                    if next == eos { finished[b] = true }
                }
                rows[b].append(next)
                current[b] = next
                if !finished[b], let stopRow, stopRow(b, rows[b].dropFirst()) { finished[b] = true }
            }
            if finished.allSatisfy({ $0 }) { break }
        }
        return (rows, traffic)
    }
}
