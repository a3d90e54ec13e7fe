// Runs one case in the format of shared/parity/FORMAT.md: loss, logits, encoder output, prompt
// and weight gradients, greedy decode — all fp32, dropout off. The prompt (the case's or a PEFT
// adapter's) enters as PEFT passes it: through `Injection.inputs` as the model's `inputsEmbeds`.
import Foundation
import Models
import Tensor

public struct ParityCase: Decodable {
    public struct Generate: Decodable {
        public let maxNewTokens: Int
        enum CodingKeys: String, CodingKey { case maxNewTokens = "max_new_tokens" }
    }
    public let arch: String
    public let inputIds: [[Int]]
    public let attentionMask: [[Int]]
    public let labels: [[Int]]
    public let prompt: [[Double]]?
    public let generate: Generate?
    public let weightGrads: [String]?

    enum CodingKeys: String, CodingKey {
        case arch, labels, prompt, generate
        case inputIds = "input_ids", attentionMask = "attention_mask", weightGrads = "weight_grads"
    }

    public static func load(path: String) throws -> ParityCase {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw ConfigError(path: path, detail: "cannot read: \(error.localizedDescription)")
        }
        do { return try JSONDecoder().decode(ParityCase.self, from: data) } catch {
            throw ConfigError(path: path, detail: "not a parity case: \(error)")
        }
    }

    func flat(_ rows: [[Int]], _ what: String) throws -> [Int32] {
        guard let w = rows.first?.count, rows.allSatisfy({ $0.count == w }) else {
            throw TensorError.invalidArgument(op: "case", detail: "\(what) rows must all have the same length")
        }
        return rows.flatMap { $0.map { Int32($0) } }
    }
}

public enum ParityRunner {
    /// A PEFT adapter as the parity run applies it: its prompt (with a gradient slot, reported as
    /// `prompt_grad`), DePT's input update, and LoRA pairs keyed by weight name.
    static func apply(_ dir: String, parameters: [(name: String, tensor: Tensor)], dModel: Int, isT5: Bool) throws
        -> (Tensor?, Tensor?, [String: LinearAdapter]) {
        let a = try PEFTAdapter.load(directory: dir, parameters: parameters.map { ($0.name, $0.tensor.shape) }, dModel: dModel, isT5: isT5)
        a.encoderPrompt?.requiresGrad = true
        return (a.encoderPrompt, a.inputDelta, a.linearAdapters)
    }

    /// Executes `c` on the checkpoint in `modelDirectory`; returns the JSON object of FORMAT §1.3.
    /// `crossAttention` forces T5's cross-attention form (tests run both against the same reference).
    /// `adapter`: a PEFT adapter directory applied as PEFT applies it (its prompt replaces the
    /// case's; LoRA pairs attach to their weights; a T5 two-submodule prompt also prompts the decoder
    /// in forward, not in generation).
    public static func run(modelDirectory: String, case c: ParityCase,
                           crossAttention: T5Model.CrossAttentionMode = .auto, adapter: String? = nil) throws -> [String: Any] {
        let cfgPath = (modelDirectory as NSString).appendingPathComponent("config.json")
        let batch = c.inputIds.count
        let ids = try c.flat(c.inputIds, "input_ids")
        let mask = try c.flat(c.attentionMask, "attention_mask").map(Float.init)
        let labels = try c.flat(c.labels, "labels")
        var prompt: Tensor?
        if let p = c.prompt, let d = p.first?.count {
            prompt = Tensor(shape: [p.count, d], values: p.flatMap { $0.map(Float.init) }, requiresGrad: true)
        }
        var inputDelta: Tensor?  // DePT adapters
        let wanted = c.weightGrads ?? []
        var out: [String: Any] = [:]
        /// The tensors named in `weight_grads`; tied aliases resolve to the tensor they share
        /// (T5: encoder/decoder.embed_tokens and a tied lm_head → shared; GPT-2: lm_head → wte,
        /// names with or without the `transformer.` prefix).
        func params(_ list: [(name: String, tensor: Tensor)], aliases: [String: String]) throws -> [String: Tensor] {
            let byName = Dictionary(list.map { ($0.name, $0.tensor) }, uniquingKeysWith: { a, _ in a })
            var r: [String: Tensor] = [:]
            for n in wanted {
                guard let t = byName[n] ?? aliases[n].flatMap({ byName[$0] }) else {
                    throw TensorError.invalidArgument(op: "weight_grads", detail: "no parameter named '\(n)'")
                }
                t.requiresGrad = true
                r[n] = t
            }
            return r
        }
        let tape = Tape()
        /// Backward from the loss, then the keys every architecture reports.
        func record(loss: Tensor, logits: Tensor, grads: [String: Tensor]) {
            tape.backward(loss)
            out["loss"] = Double(loss.scalar)
            out["logits_shape"] = logits.shape
            out["logits"] = logits.array.map(Double.init)
            out["weight_grads"] = grads.mapValues { ($0.grad?.array ?? [Float](repeating: 0, count: $0.count)).map(Double.init) }
        }
        switch try ModelConfig.load(path: cfgPath) {
        case .t5:
            let model = try T5Model.load(directory: modelDirectory)
            model.crossAttentionMode = crossAttention
            if let adapter {
                (prompt, inputDelta, model.adapters) = try apply(adapter, parameters: model.parameters, dModel: model.config.dModel, isT5: true)
            }
            var aliases = ["encoder.embed_tokens.weight": "shared.weight", "decoder.embed_tokens.weight": "shared.weight"]
            if model.lmHead == nil { aliases["lm_head.weight"] = "shared.weight" }
            let grads = try params(model.parameters, aliases: aliases)
            let inj = Injection(prompt: prompt, inputDelta: inputDelta)
            let o = try tape.record { () -> T5Model.Output in
                let (embeds, m) = try inj.inputs(for: model, inputIds: ids, attentionMask: mask, batch: batch)
                return try model.forward(inputsEmbeds: embeds, attentionMask: m, labels: labels)
            }
            record(loss: o.loss, logits: o.logits, grads: grads)
            out["encoder_last_hidden_state"] = o.encoderHidden.array.map(Double.init)
            if let g = c.generate {
                let (embeds, m) = try inj.inputs(for: model, inputIds: ids, attentionMask: mask, batch: batch)
                let enc = try model.encode(embeds: embeds, mask: m, drop: .eval)
                out["generated_ids"] = try model.generate(encoder: enc, encoderMask: m, maxNewTokens: g.maxNewTokens).map { $0.map(Int.init) }
            }
        case .gpt2:
            let model = try GPT2Model.load(directory: modelDirectory)
            if let adapter {
                (prompt, inputDelta, model.adapters) = try apply(adapter, parameters: model.parameters, dModel: model.config.nEmbd, isT5: false)
            }
            var aliases = ["lm_head.weight": "\(model.prefix)wte.weight"]
            for (name, _) in model.parameters {
                let bare = name.hasPrefix("transformer.") ? String(name.dropFirst("transformer.".count)) : name
                aliases[bare] = name
                aliases["transformer." + bare] = name
            }
            let grads = try params(model.parameters, aliases: aliases)
            let n = prompt?.shape[0] ?? 0, L = ids.count / batch
            let o = try tape.record { () -> GPT2Model.Output in
                let (embeds, m) = try Injection(prompt: prompt, inputDelta: inputDelta).inputs(for: model, inputIds: ids, attentionMask: mask, batch: batch)
                return try model.forward(inputsEmbeds: embeds, attentionMask: m, labels: promptedLabels(labels, batch: batch, promptRows: n))
            }
            record(loss: o.loss, logits: n == 0 ? o.logits : try narrow(o.logits, axis: 1, start: n, length: L), grads: grads)  // text positions
        }
        if let prompt { out["prompt_grad"] = (prompt.grad?.array ?? [Float](repeating: 0, count: prompt.count)).map(Double.init) }
        return out
    }
}
