// port of transformers/models/gpt2/modeling_gpt2.py (GPT2LMHeadModel); shared parity FORMAT §4.
//
// Notation: B batch, S sequence length (a method's prompt rows included), d = n_embd, H heads,
// F = n_inner, V vocab.
// Conv1D weights are stored [in, out] (y = x·W + b).
import Support
import Foundation
import Tensor

public final class GPT2Model {
    public let config: GPT2Config
    public let prefix: String                 // "transformer." or "" (Hub gpt2 files)
    public let wte: Tensor                    // [V, d]
    public let wpe: Tensor                    // [n_positions, d]
    /// The output head [V, d]: `wte` when `tie_word_embeddings` is true (the default), else the
    /// stored `lm_head.weight`.
    public let head: Tensor
    let blocks: [Block]
    let lnF: (Tensor, Tensor)
    public let parameters: [(name: String, tensor: Tensor)]
    /// Adapters (LoRA) on Conv1D weights, keyed by the weight's HF name.
    public var adapters: [String: LinearAdapter] = [:]

    struct Block {
        let ln1: (Tensor, Tensor), attnW: Tensor, attnB: Tensor, projW: Tensor, projB: Tensor
        let ln2: (Tensor, Tensor), fcW: Tensor, fcB: Tensor, fcProjW: Tensor, fcProjB: Tensor
    }

    /// Parameter names and shapes as stored by transformers; an untied head (`untiedHead`, nil:
    /// when config.json unties it) adds `lm_head.weight` (always unprefixed: it belongs to
    /// GPT2LMHeadModel, not to GPT2Model).
    public static func parameterShapes(_ c: GPT2Config, prefix: String = "transformer.", untiedHead: Bool? = nil) -> [(String, [Int])] {
        let d = c.nEmbd, f = c.inner
        var out: [(String, [Int])] = [("\(prefix)wte.weight", [c.vocabSize, d]), ("\(prefix)wpe.weight", [c.nPositions, d])]
        for i in 0..<c.nLayer {
            let p = "\(prefix)h.\(i)"
            out += [("\(p).ln_1.weight", [d]), ("\(p).ln_1.bias", [d]),
                    ("\(p).attn.c_attn.weight", [d, 3 * d]), ("\(p).attn.c_attn.bias", [3 * d]),
                    ("\(p).attn.c_proj.weight", [d, d]), ("\(p).attn.c_proj.bias", [d]),
                    ("\(p).ln_2.weight", [d]), ("\(p).ln_2.bias", [d]),
                    ("\(p).mlp.c_fc.weight", [d, f]), ("\(p).mlp.c_fc.bias", [f]),
                    ("\(p).mlp.c_proj.weight", [f, d]), ("\(p).mlp.c_proj.bias", [d])]
        }
        out += [("\(prefix)ln_f.weight", [d]), ("\(prefix)ln_f.bias", [d])]
        if untiedHead ?? !c.tied { out.append(("lm_head.weight", [c.vocabSize, d])) }
        return out
    }

    public static func parameterCount(_ c: GPT2Config) -> Int {
        parameterShapes(c).reduce(0) { $0 + $1.1.reduce(1, *) }
    }

    init(config c: GPT2Config, prefix: String, untiedHead: Bool? = nil, tensor: (String, [Int]) throws -> Tensor) throws {
        config = c
        self.prefix = prefix
        let (params, by) = try materialize(GPT2Model.parameterShapes(c, prefix: prefix, untiedHead: untiedHead), tensor)
        parameters = params
        func w(_ n: String) -> Tensor { by[prefix + n]! }
        wte = w("wte.weight")
        wpe = w("wpe.weight")
        blocks = (0..<c.nLayer).map { i in
            let p = "h.\(i)"
            return Block(ln1: (w("\(p).ln_1.weight"), w("\(p).ln_1.bias")), attnW: w("\(p).attn.c_attn.weight"),
                         attnB: w("\(p).attn.c_attn.bias"), projW: w("\(p).attn.c_proj.weight"), projB: w("\(p).attn.c_proj.bias"),
                         ln2: (w("\(p).ln_2.weight"), w("\(p).ln_2.bias")), fcW: w("\(p).mlp.c_fc.weight"),
                         fcB: w("\(p).mlp.c_fc.bias"), fcProjW: w("\(p).mlp.c_proj.weight"), fcProjB: w("\(p).mlp.c_proj.bias"))
        }
        lnF = (w("ln_f.weight"), w("ln_f.bias"))
        head = by["lm_head.weight"] ?? wte
    }

    public static func load(directory: String) throws -> GPT2Model {
        let cfgPath = (directory as NSString).appendingPathComponent("config.json")
        guard case .gpt2(let c) = try ModelConfig.load(path: cfgPath) else {
            throw ConfigError(path: cfgPath, detail: "field 'model_type' is not \"gpt2\"")
        }
        return try load(config: c, weights: try ModelFiles.openWeights(directory: directory))
    }

    /// The prefix of the stored tensor names: "transformer." (GPT2LMHeadModel's) or "" (Hub gpt2's).
    static func storedPrefix(_ store: WeightStore) -> String { store.has("transformer.wte.weight") ? "transformer." : "" }

    /// Whether the checkpoint has a head of its own, as transformers 5.24 decides it: config.json
    /// unties it (`tie_word_embeddings` false), or ties it but the checkpoint stores an
    /// `lm_head.weight` whose values differ from `wte`'s, which is then kept as a weight of its own
    /// (modeling_utils `tie_weights`; `WeightStore.storedHeadDiffers`). `load` and `info` read it.
    /// Errors: a tensor that cannot be read.
    public static func untiedHead(_ c: GPT2Config, in store: WeightStore) throws -> Bool {
        try !c.tied || store.storedHeadDiffers("lm_head.weight", from: "\(storedPrefix(store))wte.weight")
    }

    public static func load(config c: GPT2Config, weights store: WeightStore) throws -> GPT2Model {
        let prefix = storedPrefix(store)
        let untied = try untiedHead(c, in: store)
        if untied && c.tied {
            FileHandle.standardError.write(Data("warning: \(store.files.first?.path ?? "?"): 'lm_head.weight' differs from '\(prefix)wte.weight' although config.json ties them (tie_word_embeddings true or absent): it is used as the head, as transformers 5 does\n".utf8))
        }
        let expected = parameterShapes(c, prefix: prefix, untiedHead: untied)
        // Buffers of older files (causal-mask `attn.bias`, `attn.masked_bias`) are not parameters.
        try store.require(expected.map(\.0), ignoring: { $0.hasSuffix(".attn.bias") || $0.hasSuffix(".attn.masked_bias") },
                          tiedHead: untied ? nil : ("lm_head.weight", "\(prefix)wte.weight")) { missing in
            missing.contains("lm_head.weight") ? " (config.json says tie_word_embeddings: false, so the head must be stored)" : ""
        }
        return try GPT2Model(config: c, prefix: prefix, untiedHead: untied) { try store.load($0, shape: $1) }
    }

    /// Random weights as HF's GPT-2 init: N(0, 0.02), LayerNorm 1/0, biases 0.
    public static func random(config c: GPT2Config, key: RNGKey) throws -> GPT2Model {
        try GPT2Model(config: c, prefix: "transformer.") { name, shape in
            let n = shape.reduce(1, *)
            if name.contains("ln_") && name.hasSuffix(".weight") { return Tensor(shape: shape, values: [Float](repeating: 1, count: n)) }
            if name.hasSuffix(".bias") { return Tensor(zeros: shape) }
            return Tensor.normal(shape, std: 0.02, key: key.derive(name))
        }
    }

    public func setTrainable(_ on: Bool) { for (_, t) in parameters { t.requiresGrad = on } }

    public struct Output {
        public let loss: Tensor
        public let logits: Tensor      // (B, S, V)
    }

    /// The token embedding lookup wte[ids] → (B, L, d) (transformers' `get_input_embeddings()`):
    /// what a method builds `inputsEmbeds` from.
    public func embed(inputIds ids: [Int32], batch: Int) throws -> Tensor {
        try embedding(wte, ids: ids, shape: [batch, ids.count / max(batch, 1)])
    }

    func conv(_ x: Tensor, _ w: Tensor, _ b: Tensor, _ drop: DropoutContext) throws -> Tensor {
        let y = try linear(x, w, bias: b, layout: .inOut)
        guard let a = adapters[w.name] else { return y }
        return try add(y, a.delta(x, drop: drop))
    }

    /// Hidden states (B, S, d) after ln_f for `inputsEmbeds` (B, S, d) with key mask `attentionMask`
    /// (B, S), as transformers' GPT2Model with `inputs_embeds`: position ids 0..S−1 over the whole
    /// sequence (a method's prompt rows, which come first, take positions 0..n−1).
    public func hidden(inputsEmbeds x: Tensor, attentionMask mask: Tensor, drop: DropoutContext) throws -> Tensor {
        guard x.rank == 3, x.shape[2] == config.nEmbd, mask.shape == Array(x.shape.prefix(2)) else {
            throw TensorError.shapeMismatch(op: "GPT-2 inputs", detail: "inputs_embeds \(x.shape) must be [B, S, \(config.nEmbd)] with attention_mask [B, S], got \(mask.shape)")
        }
        let S = x.shape[1], d = config.nEmbd
        guard S <= config.nPositions else {
            throw TensorError.invalidArgument(op: "GPT-2", detail: "sequence of \(S) positions (prompt rows included) exceeds n_positions \(config.nPositions)")
        }
        let pos = try narrow(wpe, axis: 0, start: 0, length: S)                        // (S, d)
        var h = drop.apply(try add(x, pos))                                           // (B, S, d)
        let hd = d / config.nHead
        let scaleQK: Float = (config.scaleAttnWeights ?? true) ? 1 / Float(hd).squareRoot() : 1
        // The pre-activation is a temporary: the activation may overwrite it.
        let act: (Tensor) -> Tensor = ["relu": { relu($0, overwrite: true) }, "gelu": { gelu($0, overwrite: true) },
                                       "silu": { silu($0, overwrite: true) }][config.activationFunction ?? "gelu_new"]
            ?? { geluNew($0, overwrite: true) }
        for (layer, blk) in blocks.enumerated() {
            // scale_attn_by_inverse_layer_idx divides the scores by layer_idx + 1 as well.
            let scale = (config.scaleAttnByInverseLayerIdx ?? false) ? scaleQK / Float(layer + 1) : scaleQK
            let a = try layerNorm(h, weight: blk.ln1.0, bias: blk.ln1.1, eps: config.eps)
            let qkv = try conv(a, blk.attnW, blk.attnB, drop)                         // (B, S, 3d)
            let q = try narrow(qkv, axis: 2, start: 0, length: d)
            let k = try narrow(qkv, axis: 2, start: d, length: d)
            let v = try narrow(qkv, axis: 2, start: 2 * d, length: d)
            let ctx = try attention(q: q, k: k, v: v, heads: config.nHead, keyMask: mask,
                                    options: drop.attention(scale: scale, causal: true))
            h = try add(h, drop.apply(try conv(ctx, blk.projW, blk.projB, drop), overwrite: true))
            let m2 = try layerNorm(h, weight: blk.ln2.0, bias: blk.ln2.1, eps: config.eps)
            let f = act(try conv(m2, blk.fcW, blk.fcB, drop))                         // (B, S, F)
            h = try add(h, drop.apply(try conv(f, blk.fcProjW, blk.fcProjB, drop), overwrite: true))
        }
        return try layerNorm(h, weight: lnF.0, bias: lnF.1, eps: config.eps)
    }

    /// Causal LM loss as GPT2LMHeadModel with `inputs_embeds`: `labels` (B, S) aligned with
    /// `inputsEmbeds` (−100 ignored, −100 over a method's prompt rows) and shifted inside: position t
    /// predicts label t+1 (FORMAT §4.3).
    public func forward(inputsEmbeds: Tensor, attentionMask: Tensor, labels: [Int32], drop: DropoutContext = .eval) throws -> Output {
        let batch = inputsEmbeds.shape.first ?? 0, S = inputsEmbeds.rank == 3 ? inputsEmbeds.shape[1] : 0
        guard labels.count == batch * S else {
            throw TensorError.shapeMismatch(op: "GPT-2 labels", detail: "\(labels.count) labels for inputs_embeds \(inputsEmbeds.shape); labels must be [B, S] (−100 over prompt rows)")
        }
        // An inference pass starts by giving the heap's free pages back to the OS (`HeapMemory`):
        // what the previous pass and its caller freed (its outputs are freed only after it returns).
        HeapMemory.releaseFreeUnlessRecording()
        let h = try hidden(inputsEmbeds: inputsEmbeds, attentionMask: attentionMask, drop: drop)  // (B, S, d)
        let logits = try linear(h, head)                                               // (B, S, V)
        var targets = [Int32](repeating: ignoreIndex, count: batch * S)
        for b in 0..<batch {
            for t in 0..<(S - 1) { targets[b * S + t] = labels[b * S + t + 1] }
        }
        return Output(loss: try crossEntropy(logits, targets: targets), logits: logits)
    }

    /// Plain token input (`input_ids`, B × L, with `attentionMask` and `labels` B × L):
    /// `forward(inputsEmbeds:)` over `embed(inputIds:batch:)`.
    public func forward(inputIds: [Int32], attentionMask: [Float], labels: [Int32], batch: Int,
                        drop: DropoutContext = .eval) throws -> Output {
        try forward(inputsEmbeds: try embed(inputIds: inputIds, batch: batch),
                    attentionMask: Tensor(shape: [batch, inputIds.count / batch], values: attentionMask), labels: labels, drop: drop)
    }
}
