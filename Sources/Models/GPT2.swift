// port of transformers/models/gpt2/modeling_gpt2.py (GPT2LMHeadModel); shared parity FORMAT §4.
//
// Notation: B batch, n prompt rows, L text length, S = n + L, d = n_embd, H heads, F = n_inner.
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

    /// Parameter names and shapes as stored by transformers; an untied head adds `lm_head.weight`
    /// (always unprefixed: it belongs to GPT2LMHeadModel, not to GPT2Model).
    public static func parameterShapes(_ c: GPT2Config, prefix: String = "transformer.") -> [(String, [Int])] {
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
        if !c.tied { out.append(("lm_head.weight", [c.vocabSize, d])) }
        return out
    }

    public static func parameterCount(_ c: GPT2Config) -> Int {
        parameterShapes(c).reduce(0) { $0 + $1.1.reduce(1, *) }
    }

    init(config c: GPT2Config, prefix: String, tensor: (String, [Int]) throws -> Tensor) throws {
        config = c
        self.prefix = prefix
        let (params, by) = try materialize(GPT2Model.parameterShapes(c, prefix: prefix), tensor)
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
        head = c.tied ? wte : by["lm_head.weight"]!
    }

    public static func load(directory: String) throws -> GPT2Model {
        let cfgPath = (directory as NSString).appendingPathComponent("config.json")
        guard case .gpt2(let c) = try ModelConfig.load(path: cfgPath) else {
            throw ConfigError(path: cfgPath, detail: "field 'model_type' is not \"gpt2\"")
        }
        return try load(config: c, weights: try ModelFiles.openWeights(directory: directory))
    }

    public static func load(config c: GPT2Config, weights store: WeightStore) throws -> GPT2Model {
        let prefix = store.has("transformer.wte.weight") ? "transformer." : ""
        let expected = parameterShapes(c, prefix: prefix)
        // Buffers of older files (causal-mask `attn.bias`, `attn.masked_bias`) are not parameters.
        try store.require(expected.map(\.0), ignoring: { $0.hasSuffix(".attn.bias") || $0.hasSuffix(".attn.masked_bias") },
                          tiedHead: c.tied ? ("lm_head.weight", "\(prefix)wte.weight") : nil) { missing in
            missing.contains("lm_head.weight") ? " (config.json says tie_word_embeddings: false, so the head must be stored)" : ""
        }
        return try GPT2Model(config: c, prefix: prefix) { try store.load($0, shape: $1) }
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
        public let logits: Tensor      // (B, L, V) text positions only
        public let fullLogits: Tensor  // (B, S, V)
    }

    /// Hidden states (B, S, d) after ln_f for concat(prompt, wte[ids]) with positions 0..S−1.
    func conv(_ x: Tensor, _ w: Tensor, _ b: Tensor, _ drop: DropoutContext) throws -> Tensor {
        let y = try linear(x, w, bias: b, layout: .inOut)
        guard let a = adapters[w.name] else { return y }
        return try add(y, a.delta(x, drop: drop))
    }

    ///
    /// `inputDelta` (s×d, s ≥ L), DePT's position-indexed update, is added to the L token
    /// embeddings before the prompt is prepended (rows 0..L−1, broadcast over the batch), as DePT
    /// adds it to `inputs_embeds` of T5's encoder.
    public func hidden(inputIds: [Int32], attentionMask: [Float], batch: Int, prompt: Tensor?, inputDelta: Tensor? = nil,
                       drop: DropoutContext) throws -> Tensor {
        let L = inputIds.count / batch, d = config.nEmbd
        let n = prompt?.shape[0] ?? 0, S = n + L
        guard S <= config.nPositions else {
            throw TensorError.invalidArgument(op: "GPT-2", detail: "sequence of \(S) positions (prompt \(n) + text \(L)) exceeds n_positions \(config.nPositions)")
        }
        var x = try embedding(wte, ids: inputIds, shape: [batch, L])                  // (B, L, d)
        if let inputDelta {
            guard inputDelta.rank == 2, inputDelta.shape[1] == d, inputDelta.shape[0] >= L else {
                throw TensorError.shapeMismatch(op: "GPT-2 input delta", detail: "delta \(inputDelta.shape) must be [s ≥ \(L), \(d)]")
            }
            x = try add(x, try narrow(inputDelta, axis: 0, start: 0, length: L))      // broadcast over B
        }
        var m = attentionMask
        if let prompt {
            guard prompt.rank == 2, prompt.shape[1] == d else {
                throw TensorError.shapeMismatch(op: "GPT-2 prompt", detail: "prompt \(prompt.shape) must be [n, \(d)]")
            }
            x = try concat([repeatBatch(prompt, batch), x], axis: 1)                   // (B, S, d)
            m = []
            for b in 0..<batch { m += [Float](repeating: 1, count: n) + attentionMask[(b * L)..<((b + 1) * L)] }
        }
        let mask = Tensor(shape: [batch, S], values: m)
        let pos = try narrow(wpe, axis: 0, start: 0, length: S)                        // (S, d)
        var h = drop.apply(try add(x, pos))                                           // (B, S, d)
        let hd = d / config.nHead
        let scaleQK: Float = (config.scaleAttnWeights ?? true) ? 1 / Float(hd).squareRoot() : 1
        // The pre-activation is a temporary: the activation may overwrite it.
        let act: (Tensor) -> Tensor = ["relu": { relu($0, overwrite: true) }, "gelu": { gelu($0, overwrite: true) }][config.activationFunction ?? "gelu_new"]
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
            h = try add(h, drop.apply(try conv(ctx, blk.projW, blk.projB, drop)))
            let m2 = try layerNorm(h, weight: blk.ln2.0, bias: blk.ln2.1, eps: config.eps)
            let f = act(try conv(m2, blk.fcW, blk.fcB, drop))                         // (B, S, F)
            h = try add(h, drop.apply(try conv(f, blk.fcProjW, blk.fcProjB, drop)))
        }
        return try layerNorm(h, weight: lnF.0, bias: lnF.1, eps: config.eps)
    }

    /// Causal LM loss with labels (B, L) (−100 ignored), extended by n × −100 for the prompt and
    /// shifted: position t predicts extended label t+1 (FORMAT §4.3).
    public func forward(inputIds: [Int32], attentionMask: [Float], labels: [Int32], batch: Int,
                        prompt: Tensor? = nil, inputDelta: Tensor? = nil, drop: DropoutContext = .eval) throws -> Output {
        let L = inputIds.count / batch, n = prompt?.shape[0] ?? 0, S = n + L
        let h = try hidden(inputIds: inputIds, attentionMask: attentionMask, batch: batch, prompt: prompt, inputDelta: inputDelta, drop: drop)
        let logits = try linear(h, head)                                               // (B, S, V)
        var targets = [Int32](repeating: ignoreIndex, count: batch * S)
        for b in 0..<batch {
            for t in 0..<(S - 1) {
                let next = t + 1 - n  // text index predicted from position t
                if next >= 0 { targets[b * S + t] = labels[b * L + next] }
            }
        }
        let loss = try crossEntropy(logits, targets: targets)
        let text = n == 0 ? logits : try narrow(logits, axis: 1, start: n, length: L)
        return Output(loss: loss, logits: text, fullLogits: logits)
    }
}
