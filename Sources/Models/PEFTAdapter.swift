// Hugging Face PEFT adapters in and out (peft 0.21: `adapter_config.json` + `adapter_model.safetensors`).
//
// PROMPT_TUNING: `prompt_embeddings` holds n·k rows, k = num_transformer_submodules. Rows 0..<n are
// prepended to the encoder's (T5) or the model's (GPT-2, labels then start with n × −100) input
// embeddings with mask ones. With k = 2 (PEFT's seq2seq default) rows n..<2n are stored but peft
// 0.21 never reads them for PROMPT_TUNING, in forward or in generate (PeftModelForSeq2SeqLM; checked
// by changing them: outputs unchanged, scripts/peft_interop.py); PromptRepro loads and ignores them.
// LORA: per targeted module `<module>.lora_A.weight` (r, in) and `<module>.lora_B.weight` (out, r),
// keys prefixed `base_model.model.`; output += s·x·Aᵀ·Bᵀ with s = lora_alpha/r (or lora_alpha/√r
// with use_rslora), where `rank_pattern` / `alpha_pattern` set r and lora_alpha per module (PEFT's
// `get_pattern_key`: a key matches a module name m when `re.match(rf"(.*\.)?({key})$", m)`).
// GPT-2's Conv1D weights are [in, out] (fan_in_fan_out), and A, B keep the same (r, in) / (out, r)
// shapes. The adapted modules are those the config selects (`LoRATargets`, as PEFT decides them);
// the file's tensors of other modules are left out, as PEFT's strict=False load leaves them. Settings that change the math in ways PromptRepro does not apply are refused by name:
// initialisations that rewrite the base weights (PiSSA, OLoRA, CorDA, LoftQ), DoRA, trained
// biases, layer replication, trainable token rows, and LoRA on embeddings or the LM head.
import Foundation
import Support
import Tensor

/// The fields of `adapter_config.json` PromptRepro reads (PEFT's names).
public struct PEFTAdapterConfig: Codable, Equatable {
    public enum Targets: Codable, Equatable {
        case list([String]), regex(String)
        public init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let s = try? c.decode(String.self) { self = .regex(s) } else { self = .list(try c.decode([String].self)) }
        }
        public func encode(to encoder: Encoder) throws {
            var c = encoder.singleValueContainer()
            switch self { case .list(let l): try c.encode(l); case .regex(let s): try c.encode(s) }
        }
    }
    public var peftType: String
    public var taskType: String?
    public var numVirtualTokens: Int?
    public var tokenDim: Int?
    public var numTransformerSubmodules: Int?
    public var r: Int?
    public var loraAlpha: Double?
    public var targetModules: Targets?
    public var useRslora: Bool?
    public var fanInFanOut: Bool?
    public var loraDropout: Double?
    public var bias: String?
    public var useDora: Bool?
    public var modulesToSave: [String]?
    public var baseModelNameOrPath: String?
    /// DePT's PEFT fork (PROMPT_TUNING_LORA): the input length s of the position-indexed update.
    public var maxLength: Int?

    enum CodingKeys: String, CodingKey {
        case peftType = "peft_type", taskType = "task_type", numVirtualTokens = "num_virtual_tokens", tokenDim = "token_dim"
        case numTransformerSubmodules = "num_transformer_submodules", r, loraAlpha = "lora_alpha", targetModules = "target_modules"
        case useRslora = "use_rslora", fanInFanOut = "fan_in_fan_out", loraDropout = "lora_dropout", bias, useDora = "use_dora"
        case modulesToSave = "modules_to_save", baseModelNameOrPath = "base_model_name_or_path", maxLength = "max_length"
    }
}

public struct PEFTError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// One LoRA pair on a frozen linear weight: Δ = s·x·Aᵀ·Bᵀ.
public final class PEFTLoRA: LinearAdapter {
    public let a: Tensor, b: Tensor, scaling: Float
    public init(a: Tensor, b: Tensor, scaling: Float) { self.a = a; self.b = b; self.scaling = scaling }
    public func delta(_ x: Tensor, drop: DropoutContext) throws -> Tensor { scale(try linear(try linear(x, a), b), scaling) }
}

/// A loaded PEFT adapter, resolved against a backbone's parameter names.
public struct PEFTAdapter {
    public let directory: String
    public let config: PEFTAdapterConfig
    /// sha256 of adapter_model.safetensors (provenance of evaluated runs).
    public let sha256: String
    public var encoderPrompt: Tensor?          // (n, d)
    /// Rows n..<2n of a two-submodule T5 table: stored by PEFT, read by nothing (kept for export).
    public var decoderPrompt: Tensor?          // (n, d)
    /// Our weight name → (A, B, scaling).
    public var lora: [(weight: String, a: Tensor, b: Tensor, scaling: Float)] = []
    /// DePT (PROMPT_TUNING_LORA): ΔE = (lora_alpha/√r)·A·B (s × d), added to the token embeddings.
    public var inputDelta: Tensor?

    /// Loads `directory` for a backbone whose parameters are `parameters` (HF names) and whose
    /// hidden size is `dModel`. Errors name the file and what is wrong: a missing or `.bin`-only
    /// adapter, an unsupported PEFT type or option, wrong shapes, adapter keys that match no module.
    public static func load(directory: String, parameters: [(name: String, shape: [Int])], dModel: Int, isT5: Bool) throws -> PEFTAdapter {
        let fm = FileManager.default
        let cfgPath = (directory as NSString).appendingPathComponent("adapter_config.json")
        let weights = (directory as NSString).appendingPathComponent("adapter_model.safetensors")
        guard let cfgData = fm.contents(atPath: cfgPath) else { throw PEFTError("\(cfgPath): not found (a PEFT adapter directory holds adapter_config.json)") }
        let config: PEFTAdapterConfig
        do { config = try JSONDecoder().decode(PEFTAdapterConfig.self, from: cfgData) } catch {
            throw PEFTError("\(cfgPath): not a PEFT adapter config (\(decodingProblem(error)))")
        }
        guard fm.fileExists(atPath: weights) else {
            let bin = (directory as NSString).appendingPathComponent("adapter_model.bin")
            if fm.fileExists(atPath: bin) {
                throw PEFTError("\(bin): pickled adapters are not read (unsafe to unpickle); save with `save_pretrained(dir, safe_serialization=True)` to get adapter_model.safetensors")
            }
            throw PEFTError("\(weights): not found")
        }
        // An adapter for the other kind of model (a CAUSAL_LM prompt on T5, a SEQ_2_SEQ_LM one on GPT-2)
        // may have the right shapes and still mean something else: refused.
        if let t = config.taskType, ["CAUSAL_LM", "SEQ_2_SEQ_LM"].contains(t), t != (isT5 ? "SEQ_2_SEQ_LM" : "CAUSAL_LM") {
            throw PEFTError("\(cfgPath): task_type \(t) is an adapter for \(t == "CAUSAL_LM" ? "a decoder-only (GPT-2)" : "an encoder-decoder (T5)") model; this model is \(isT5 ? "T5 (SEQ_2_SEQ_LM)" : "GPT-2 (CAUSAL_LM)")")
        }
        let raw = (try? JSONSerialization.jsonObject(with: cfgData)) as? [String: Any] ?? [:]
        let file = try SafeTensorsFile(path: weights)
        // Every tensor applied is finite: a NaN or ±inf weight scores as a constant prediction and
        // was stored beside real runs (`forward` refused it only at its output, naming neither file
        // nor tensor). Tensors the config leaves out (skipped with a warning, as PEFT skips them)
        // are not read.
        func applied(_ name: String) throws -> Tensor {
            let t = try file.tensor(name).detached()
            if let i = (0..<t.count).first(where: { !t.data[$0].isFinite }) {
                throw PEFTError("\(weights): tensor '\(name)' holds a non-finite value (\(t.data[i])) at element \(i) of shape \(t.shape) (a diverged or damaged adapter)")
            }
            return t
        }
        var out = PEFTAdapter(directory: directory, config: config, sha256: try SHA256.hex(file: weights))
        switch config.peftType {
        case "PROMPT_TUNING":
            // PEFT applies a prompt only in its task models (PeftModelForSeq2SeqLM / ForCausalLM); with
            // task_type null its plain PeftModel's forward ignores the prompt (the base model's loss),
            // and other task types are heads this harness does not have.
            guard let t = config.taskType, ["CAUSAL_LM", "SEQ_2_SEQ_LM"].contains(t) else {
                throw PEFTError("\(cfgPath): task_type \(config.taskType ?? "null") on a PROMPT_TUNING adapter: PEFT applies the prompt only with task_type \(isT5 ? "SEQ_2_SEQ_LM" : "CAUSAL_LM") (null: its PeftModel ignores the prompt; other types have their own heads)")
            }
            guard let n = config.numVirtualTokens, n > 0 else { throw PEFTError("\(cfgPath): PROMPT_TUNING needs num_virtual_tokens") }
            if let td = config.tokenDim, td != dModel {
                throw PEFTError("\(cfgPath): token_dim \(td), but this model's hidden size is \(dModel) (PEFT refuses such an adapter at load)")
            }
            let k = config.numTransformerSubmodules ?? (isT5 ? 2 : 1)
            guard k == 1 || (k == 2 && isT5) else { throw PEFTError("\(cfgPath): num_transformer_submodules \(k) is not supported for this model") }
            let extra = file.names.filter { $0 != "prompt_embeddings" }
            guard extra.isEmpty else { throw PEFTError("\(weights): tensor(s) \(extra.joined(separator: ", ")) are not part of a PROMPT_TUNING adapter") }
            guard file.entries["prompt_embeddings"] != nil else { throw PEFTError("\(weights): no 'prompt_embeddings' tensor") }
            let table = try applied("prompt_embeddings")
            guard table.shape == [n * k, dModel] else {
                throw PEFTError("\(weights): 'prompt_embeddings' has shape \(table.shape), expected [\(n * k), \(dModel)] (num_virtual_tokens \(n) × num_transformer_submodules \(k), hidden size \(dModel))")
            }
            out.encoderPrompt = try narrow(table, axis: 0, start: 0, length: n).detached()
            if k == 2 { out.decoderPrompt = try narrow(table, axis: 0, start: n, length: n).detached() }
        case "LORA":
            // LoRA layers apply whatever the task model (null included); a task type with a head of
            // its own (SEQ_CLS, TOKEN_CLS, QUESTION_ANS) or none (FEATURE_EXTRACTION) was trained
            // for another output than this model's LM head.
            if let t = config.taskType, !["CAUSAL_LM", "SEQ_2_SEQ_LM"].contains(t) {
                throw PEFTError("\(cfgPath): task_type \(t) is an adapter for a model with another head than the language-model head scored here")
            }
            guard let r = config.r, r > 0, let alpha = config.loraAlpha else { throw PEFTError("\(cfgPath): LORA needs r > 0 and lora_alpha") }
            if config.useDora == true { throw PEFTError("\(cfgPath): use_dora true (DoRA) is not supported") }
            // PEFT's bias "all" trains and saves every parameter whose name holds "bias" (on T5 the
            // relative_attention_bias tables: whole trained weights, which PromptRepro does not
            // load); "lora_only" the biases of LoRA-wrapped linears, which T5's have none of (plain
            // LoRA there, loaded), GPT-2's Conv1D layers have.
            if let b = config.bias, b != "none", !(isT5 && b == "lora_only") {
                throw PEFTError("\(cfgPath): bias '\(b)' (trained biases\(isT5 ? "; on T5 PEFT trains and saves the relative_attention_bias tables under it" : "")) is not supported")
            }
            if let m = config.modulesToSave, !m.isEmpty { throw PEFTError("\(cfgPath): modules_to_save \(m) (fully trained extra modules) is not supported") }
            try refuseUnsupportedLoRASettings(raw, cfgPath: cfgPath)
            let ranks = try patterns(raw, "rank_pattern", cfgPath: cfgPath)
            let alphas = try patterns(raw, "alpha_pattern", cfgPath: cfgPath)
            let byName = Dictionary(parameters.map { ($0.name, $0.shape) }, uniquingKeysWith: { a, _ in a })
            /// Our parameter name for a PEFT module name (with or without GPT-2's `transformer.` prefix).
            func weightName(_ module: String) -> String? {
                let bare = module.hasPrefix("transformer.") ? String(module.dropFirst("transformer.".count)) : module
                return [module + ".weight", bare + ".weight", "transformer." + bare + ".weight"].first { byName[$0] != nil }
            }
            // The modules PEFT wraps: those the config targets (`LoRATargets`) among the model's
            // named modules. A targeted embedding, position bias or LM head is refused; file keys of
            // modules the config does not target are left out, as PEFT's load (strict=False) leaves
            // them; a targeted module without tensors adds nothing where PEFT starts it with B = 0
            // and is refused otherwise (below).
            var targets = try LoRATargets(raw, config: config, cfgPath: cfgPath, isT5: isT5)
            targets.condense(moduleNames: LoRATargets.moduleNames(parameters.map(\.name), isT5: isT5))
            let linearModules = Dictionary(parameters.compactMap { p -> (String, String)? in
                guard p.shape.count == 2, let m = LoRATargets.linearModule(weight: p.name, isT5: isT5) else { return nil }
                return (m, p.name)
            }, uniquingKeysWith: { a, _ in a })
            let others = parameters.compactMap { LoRATargets.nonLinearModule(weight: $0.name, isT5: isT5) }
            if let hit = others.first(where: { targets.matches($0, allLinear: false) }) {
                throw PEFTError("\(cfgPath): target_modules selects '\(hit)', an embedding, position bias or the LM head: LoRA on those is not supported")
            }
            let targeted = Set(linearModules.keys.filter { targets.matches($0, allLinear: true) })
            guard !targeted.isEmpty else {  // PEFT: NoMatchingPeftModuleError
                throw PEFTError("\(cfgPath): target_modules / exclude_modules / layers_to_transform select no module of this model (PEFT refuses the adapter)")
            }
            var pairs: [String: (a: Tensor?, b: Tensor?)] = [:]
            var modules: [String: String] = [:]  // our weight name → PEFT's module name (what patterns match)
            var unmatched: [String] = [], unprefixed: [String] = [], untargeted: Set<String> = []
            for key in file.names {
                guard key.hasPrefix("base_model.model.") else { unprefixed.append(key); continue }
                let k = String(key.dropFirst("base_model.model.".count))
                let part: String
                if k.hasSuffix(".lora_A.weight") { part = "A" } else if k.hasSuffix(".lora_B.weight") { part = "B" } else { unmatched.append(key); continue }
                let module = String(k.dropLast(".lora_A.weight".count))
                guard let w = weightName(module), let peftModule = LoRATargets.linearModule(weight: w, isT5: isT5) else { unmatched.append(key); continue }
                guard targeted.contains(peftModule) else { untargeted.insert(peftModule); continue }
                modules[w] = peftModule
                let t = try applied(key)
                if part == "A" { pairs[w, default: (nil, nil)].a = t } else { pairs[w, default: (nil, nil)].b = t }
            }
            guard unprefixed.isEmpty else {
                throw PEFTError("\(weights): adapter key(s) without PEFT's 'base_model.model.' prefix: \(unprefixed.sorted().prefix(4).joined(separator: ", ")) — PEFT's load matches none of them and runs the base model; refused rather than applied")
            }
            guard unmatched.isEmpty else {
                throw PEFTError("\(weights): adapter key(s) name no linear weight PromptRepro adapts: \(unmatched.sorted().prefix(8).joined(separator: ", ")) (" + (unmatched.contains { $0.contains("lora_magnitude_vector") } ? "DoRA magnitudes (lora_magnitude_vector; PEFT applies them whatever use_dora says) are not supported; " : "")
                    + "LoRA on embeddings or the LM head, trained biases, DoRA and token rows are not supported; refused rather than left out)")
            }
            if !untargeted.isEmpty {
                FileHandle.standardError.write(Data("warning: \(weights): LoRA tensors of \(untargeted.count) module(s) that adapter_config.json does not target (target_modules, exclude_modules, layers_to_transform) are left out, as PEFT leaves them: \(untargeted.sorted().prefix(4).joined(separator: ", "))\(untargeted.count > 4 ? ", …" : "")\n".utf8))
            }
            // A targeted module without tensors: PEFT starts it from init_lora_weights and warns of
            // missing keys. Its default and Gaussian inits set B = 0, so such a module adds nothing
            // (left out here, with a warning); other inits would add a random update: refused.
            let missing = targeted.subtracting(modules.values)
            if !missing.isEmpty {
                let list = "\(missing.sorted().prefix(4).joined(separator: ", "))\(missing.count > 4 ? ", …" : "")"
                let initValue = raw["init_lora_weights"]
                let zeroB = initValue == nil || initValue is NSNull || (initValue as? String)?.lowercased() == "gaussian"
                    || (initValue as? Bool) == true
                guard zeroB else {
                    throw PEFTError("\(weights): adapter_config.json targets \(missing.count) module(s) with no LoRA tensors in the file: \(list) — PEFT would start them from init_lora_weights \(initValue.map { "\($0)" } ?? "") (a non-zero update) and warn of missing keys; refused")
                }
                FileHandle.standardError.write(Data("warning: \(weights): adapter_config.json targets \(missing.count) module(s) with no LoRA tensors in the file (\(list)); PEFT starts them with B = 0, so they add nothing\n".utf8))
            }
            for w in pairs.keys.sorted() {
                guard let a = pairs[w]!.a, let b = pairs[w]!.b else { throw PEFTError("\(weights): '\(w)' has only one of lora_A / lora_B") }
                let module = modules[w]!
                let rm = try patternValue(ranks, module: module, field: "rank_pattern", cfgPath: cfgPath).map { Int($0) } ?? r
                let am = try patternValue(alphas, module: module, field: "alpha_pattern", cfgPath: cfgPath) ?? alpha
                guard rm > 0 else { throw PEFTError("\(cfgPath): rank_pattern gives '\(module)' r \(rm)") }
                let scaling = Float(config.useRslora == true ? am / Double(rm).squareRoot() : am / Double(rm))
                let shape = byName[w]!
                let conv1D = !isT5  // GPT-2 Conv1D: [in, out]
                let (inF, outF) = conv1D ? (shape[0], shape[1]) : (shape[1], shape[0])
                guard a.shape == [rm, inF], b.shape == [outF, rm] else {
                    throw PEFTError("\(weights): '\(w)' lora_A \(a.shape) / lora_B \(b.shape), expected [\(rm), \(inF)] / [\(outF), \(rm)] (r \(rm) from \(ranks.isEmpty ? "r" : "r and rank_pattern"))")
                }
                out.lora.append((w, a, b, scaling))
            }
            guard !out.lora.isEmpty else { throw PEFTError("\(weights): no LoRA tensors") }
        case "PROMPT_TUNING_LORA":
            // DePT's fork of PEFT (ZhengxiangShi/DePT, peft/tuners/prompt_tuning_lora.py): the prompt plus
            // a position-indexed low-rank update of the input embeddings, scaled by lora_alpha/√r.
            guard let n = config.numVirtualTokens, let r = config.r, r > 0, let s = config.maxLength, let alpha = config.loraAlpha else {
                throw PEFTError("\(cfgPath): PROMPT_TUNING_LORA needs num_virtual_tokens, r, max_length and lora_alpha")
            }
            if let k = config.numTransformerSubmodules, k != 1 { throw PEFTError("\(cfgPath): num_transformer_submodules \(k) (DePT uses 1)") }
            func find(_ suffixes: [String]) -> String? { file.names.first { name in suffixes.contains { name == $0 || name.hasSuffix("." + $0) } } }
            guard let pk = find(["prompt_embeddings", "embedding.weight"]), let ak = find(["lora_embedding_A"]), let bk = find(["lora_embedding_B"]) else {
                throw PEFTError("\(weights): a DePT adapter holds prompt_embeddings, lora_embedding_A and lora_embedding_B (have: \(file.names.joined(separator: ", ")))")
            }
            let extra = file.names.filter { ![pk, ak, bk].contains($0) }
            guard extra.isEmpty else { throw PEFTError("\(weights): tensor(s) \(extra.joined(separator: ", ")) are not part of a DePT adapter") }
            let p = try applied(pk), a = try applied(ak), b = try applied(bk)
            guard p.shape == [n, dModel], a.shape == [s, r], b.shape == [r, dModel] else {
                throw PEFTError("\(weights): prompt \(p.shape), A \(a.shape), B \(b.shape); expected [\(n), \(dModel)], [\(s), \(r)], [\(r), \(dModel)]")
            }
            out.encoderPrompt = p
            out.inputDelta = scale(try matmul(a, b), Float(alpha / Double(r).squareRoot())).detached()
        default:
            throw PEFTError("\(cfgPath): peft_type '\(config.peftType)' is not supported (PROMPT_TUNING, LORA, PROMPT_TUNING_LORA)")
        }
        return out
    }

    /// Refuses LoRA settings whose math PromptRepro does not apply, naming the field: an
    /// initialisation that rewrites the base weights when PEFT loads the adapter (PiSSA, OLoRA,
    /// CorDA, LoftQ: the saved A, B only hold on that residual), trained LoRA biases, layer
    /// replication and trainable token rows.
    static func refuseUnsupportedLoRASettings(_ raw: [String: Any], cfgPath: String) throws {
        if let i = raw["init_lora_weights"] as? String {
            let rewrites = ["pissa", "olora", "corda", "loftq"]
            if rewrites.contains(where: { i.lowercased().hasPrefix($0) }) {
                throw PEFTError("\(cfgPath): init_lora_weights '\(i)' rewrites the base weights when PEFT loads the adapter (A and B hold only on that residual); not supported — save it converted (PEFT `save_pretrained(..., path_initial_model_for_weight_conversion=...)`) to get a plain LoRA adapter")
            }
        }
        // peft 0.21 fields that change what the adapter computes, or the base it applies to, when set.
        let changesTheMath: [(String, String)] = [
            ("target_parameters", "LoRA on parameters (PEFT's ParamWrapper adds B·A to the stored weight, transposed against a Conv1D LoRA)"),
            ("lora_bias", "a trained bias on lora_B"), ("layer_replication", "a model with repeated layers"),
            ("trainable_token_indices", "trained embedding rows"), ("alora_invocation_tokens", "activated LoRA: applied only after its invocation tokens"),
            ("use_qalora", "quantisation-aware LoRA"), ("use_bdlora", "block-diagonal LoRA"), ("arrow_config", "Arrow routing over several LoRAs"),
            ("lora_ga_config", "LoRA-GA, whose initialisation rewrites the base weights"), ("kasa_config", "KaSA"),
            ("monteclora_config", "MonteCLoRA"), ("velora_config", "VeLoRA")]
        for (field, what) in changesTheMath {
            guard let v = raw[field] else { continue }
            let set: Bool
            switch v {
            case is NSNull: set = false
            case let n as NSNumber: set = n.boolValue
            case let d as [String: Any]: set = !d.isEmpty
            case let a as [Any]: set = !a.isEmpty
            default: set = true
            }
            if set { throw PEFTError("\(cfgPath): \(field) \(v) (\(what)) is not supported") }
        }
    }

    /// Which modules a LORA config targets, as peft 0.21's `check_target_module_exists` decides
    /// for a module name (the base model's `named_modules()` name: T5 `encoder.block.0.layer.0.SelfAttention.q`,
    /// GPT-2 `transformer.h.0.attn.c_attn`): `exclude_modules` first (a string: `re.fullmatch`; a
    /// list: the name or a `.`-suffix), then `target_modules` — a string: `re.fullmatch`, or
    /// "all-linear" (any case: every linear module but the LM head); a list: the full name, or a
    /// `.`-suffix narrowed by `layers_to_transform` (an int or a list) to the layer index after the
    /// first `layers_pattern` segment (or, without one, the first numbered segment). A null
    /// `target_modules` takes PEFT's default for the model type (T5 q, v; GPT-2 c_attn).
    /// Errors: a pattern that is not a regular expression, fields of the wrong type, and the
    /// combinations LoraConfig refuses (layers with a string target_modules; a layers_pattern
    /// without layers_to_transform).
    struct LoRATargets {
        enum Form { case names([String]), regex(NSRegularExpression), allLinear }
        var form: Form
        let exclude: Form?
        let layers: Set<Int>?
        let layersPattern: [String]

        init(_ raw: [String: Any], config: PEFTAdapterConfig, cfgPath: String, isT5: Bool) throws {
            func regex(_ p: String, _ field: String) throws -> NSRegularExpression {
                guard let re = try? NSRegularExpression(pattern: "^(?:\(p))$") else { throw PEFTError("\(cfgPath): \(field) '\(p)' is not a regular expression") }
                return re
            }
            switch config.targetModules {
            case .regex(let p)?: form = p.lowercased() == "all-linear" ? .allLinear : .regex(try regex(p, "target_modules"))
            case .list(let l)?: form = .names(l)
            case nil: form = .names(isT5 ? ["q", "v"] : ["c_attn"])
            }
            switch raw["exclude_modules"] {
            case let p as String: exclude = .regex(try regex(p, "exclude_modules"))
            case let l as [String]: exclude = l.isEmpty ? nil : .names(l)
            case nil, is NSNull: exclude = nil
            default: throw PEFTError("\(cfgPath): exclude_modules must be a string or a list of strings")
            }
            switch raw["layers_to_transform"] {
            case let n as Int: layers = [n]
            case let l as [Int]: layers = l.isEmpty ? nil : Set(l)
            case nil, is NSNull: layers = nil
            default: throw PEFTError("\(cfgPath): layers_to_transform must be an integer or a list of integers")
            }
            switch raw["layers_pattern"] {
            case let p as String: layersPattern = p.isEmpty ? [] : [p]
            case let l as [String]: layersPattern = l
            case nil, is NSNull: layersPattern = []
            default: throw PEFTError("\(cfgPath): layers_pattern must be a string or a list of strings")
            }
            // LoraConfig.__post_init__'s refusals (peft 0.21.2): a string target_modules (a regex or
            // all-linear) takes no layers_to_transform or layers_pattern; a layers_pattern needs
            // layers_to_transform.
            let hasLayers = !(raw["layers_to_transform"] == nil || raw["layers_to_transform"] is NSNull)
            let hasPattern = !(raw["layers_pattern"] == nil || raw["layers_pattern"] is NSNull)
            if case .regex(_)? = config.targetModules, hasLayers || hasPattern {
                throw PEFTError("\(cfgPath): \(hasLayers ? "layers_to_transform" : "layers_pattern") cannot be used when target_modules is a string (PEFT refuses this config)")
            }
            if !layersPattern.isEmpty && !hasLayers {
                throw PEFTError("\(cfgPath): layers_pattern needs layers_to_transform (PEFT refuses this config)")
            }
        }

        /// PEFT's `inject_adapter` condensing (peft 0.21.2): a `target_modules` list of 20 names or
        /// more is replaced by the fewest suffixes that select the same modules among the model's
        /// `moduleNames` (`_find_minimal_target_modules`), when that is shorter. It matters for
        /// `layers_to_transform`: a full module name skips the layer filter, a suffix does not.
        mutating func condense(moduleNames: [String]) {
            guard case .names(let list) = form, list.count >= 20, !list.contains("") else { return }
            let targets = Set(list)
            let others = moduleNames.filter { n in !targets.contains(n) && !list.contains(where: { n.hasSuffix("." + $0) }) }
            func suffixes(_ s: String) -> [String] {  // shortest first
                let parts = s.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
                return (0..<parts.count).reversed().map { parts[$0...].joined(separator: ".") }
            }
            let otherSuffixes = Set(others.flatMap(suffixes))
            guard targets.isDisjoint(with: others) else { return }
            var required: Set<String> = []
            // Python sorts the items by their suffix lists (lexicographic over the lists).
            for (item, sfx) in targets.map({ ($0, suffixes($0)) }).sorted(by: { $0.1.lexicographicallyPrecedes($1.1) }) {
                for suffix in sfx where !required.contains(suffix) && !otherSuffixes.contains(suffix) {
                    if !required.contains(where: { item.hasSuffix("." + $0) }) { required.insert(suffix); break }
                }
            }
            let condensed = required.isEmpty ? targets : required
            if condensed.count < list.count { form = .names(condensed.sorted()) }
        }

        /// The base model's module names PEFT's condensing compares against: every prefix of every
        /// parameter's module path (modules without parameters end in other names than a linear's),
        /// GPT-2's with the `transformer.` prefix and the LM head's `lm_head`.
        static func moduleNames(_ parameters: [String], isT5: Bool) -> [String] {
            var out: Set<String> = []
            for p in parameters {
                var parts = p.split(separator: ".").map(String.init)
                guard parts.count > 1 else { continue }
                parts.removeLast()  // weight / bias
                if !isT5 && parts.first != "transformer" && parts.first != "lm_head" { parts.insert("transformer", at: 0) }
                for i in 1...parts.count { out.insert(parts[0..<i].joined(separator: ".")) }
            }
            return out.sorted()
        }

        /// Whether PEFT wraps `module`; `allLinear` says whether "all-linear" may select it (a
        /// linear module other than the LM head).
        func matches(_ module: String, allLinear: Bool) -> Bool {
            func listHit(_ l: [String]) -> Bool { l.contains { module == $0 || module.hasSuffix("." + $0) } }
            func full(_ re: NSRegularExpression) -> Bool { re.firstMatch(in: module, range: NSRange(module.startIndex..., in: module)) != nil }
            switch exclude {
            case .names(let l)?: if listHit(l) { return false }
            case .regex(let re)?: if full(re) { return false }
            default: break
            }
            switch form {
            case .regex(let re): return full(re)
            case .allLinear: return allLinear
            case .names(let l):
                if l.contains(module) { return true }  // a full module name: no layer filter (check_target_module_exists)
                guard l.contains(where: { module.hasSuffix("." + $0) }) else { return false }
                guard let layers else { return true }
                return layerIndex(module).map(layers.contains) ?? false
            }
        }

        /// The layer index PEFT reads from a module name for `layers_to_transform`.
        func layerIndex(_ module: String) -> Int? {
            let patterns = layersPattern.isEmpty ? [#"^.*?\.[^.]*\.(\d+)\."#] : layersPattern.map { #"^(?:|.*?\.)"# + "\($0)" + #"\.(\d+)\."# }
            for p in patterns {
                guard let re = try? NSRegularExpression(pattern: p),
                      let m = re.firstMatch(in: module, range: NSRange(module.startIndex..., in: module)),
                      let r = Range(m.range(at: 1), in: module) else { continue }
                return Int(module[r])
            }
            return nil
        }

        /// PEFT's module name of a linear weight PromptRepro can adapt (nil: an embedding, the LM
        /// head, a position bias, or not a weight): the weight's name without `.weight`, GPT-2's
        /// with its `transformer.` prefix (GPT2LMHeadModel's names).
        static func linearModule(weight: String, isT5: Bool) -> String? {
            guard weight.hasSuffix(".weight"), nonLinearModule(weight: weight, isT5: isT5) == nil else { return nil }
            let m = String(weight.dropLast(".weight".count))
            return isT5 || m.hasPrefix("transformer.") ? m : "transformer." + m
        }

        /// PEFT's module name of an embedding, position bias or LM head weight; nil for others.
        static func nonLinearModule(weight: String, isT5: Bool) -> String? {
            guard weight.hasSuffix(".weight") else { return nil }
            let m = String(weight.dropLast(".weight".count))
            let bare = m.hasPrefix("transformer.") ? String(m.dropFirst("transformer.".count)) : m
            if isT5 {
                return ["shared", "lm_head", "encoder.embed_tokens", "decoder.embed_tokens"].contains(m) || m.hasSuffix("relative_attention_bias") ? m : nil
            }
            if bare == "lm_head" { return "lm_head" }
            return ["wte", "wpe"].contains(bare) ? "transformer." + bare : nil
        }
    }

    /// `rank_pattern` / `alpha_pattern` of the raw config: key (a Python regex) → value.
    static func patterns(_ raw: [String: Any], _ field: String, cfgPath: String) throws -> [(key: String, value: Double, regex: NSRegularExpression)] {
        guard let v = raw[field], !(v is NSNull) else { return [] }
        guard let d = v as? [String: Any] else { throw PEFTError("\(cfgPath): \(field) must be an object of module pattern → number") }
        return try d.keys.sorted().map { key in
            guard let n = d[key] as? NSNumber else { throw PEFTError("\(cfgPath): \(field) '\(key)' is not a number") }
            // PEFT: re.match(rf"(.*\.)?({key})$", module) — anchored at the start, the key ends the name.
            guard let re = try? NSRegularExpression(pattern: "^(.*\\.)?(\(key))$") else { throw PEFTError("\(cfgPath): \(field) key '\(key)' is not a regular expression") }
            return (key, n.doubleValue, re)
        }
    }

    /// The value a pattern gives `module` (nil: none matches). PEFT takes the first matching key in
    /// the JSON's order, which a decoded dictionary does not keep: keys that match one module with
    /// different values are refused as ambiguous rather than resolved by a guess.
    static func patternValue(_ ps: [(key: String, value: Double, regex: NSRegularExpression)], module: String, field: String, cfgPath: String) throws -> Double? {
        let hits = ps.filter { $0.regex.firstMatch(in: module, range: NSRange(module.startIndex..., in: module)) != nil }
        guard let first = hits.first else { return nil }
        if hits.contains(where: { $0.value != first.value }) {
            throw PEFTError("\(cfgPath): \(field) keys \(hits.map { "'\($0.key)'" }.joined(separator: ", ")) all match module '\(module)' with different values (ambiguous)")
        }
        return first.value
    }

    /// LoRA pairs as linear adapters keyed by weight name (T5Model / GPT2Model `adapters`).
    public var linearAdapters: [String: LinearAdapter] {
        Dictionary(uniqueKeysWithValues: lora.map { ($0.weight, PEFTLoRA(a: $0.a, b: $0.b, scaling: $0.scaling) as LinearAdapter) })
    }

    /// Writes a PEFT adapter directory. PROMPT_TUNING: `prompt` (n, d) as an encoder-only (T5:
    /// num_transformer_submodules 1) or causal-LM prompt; LORA: `lora` pairs under their PEFT keys.
    public static func write(prompt: Tensor?, lora: [(module: String, a: Tensor, b: Tensor)], r: Int = 0, alpha: Double = 0,
                             targets: [String] = [], isT5: Bool, baseModel: String, to dir: String) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var cfg: [String: Any] = ["base_model_name_or_path": baseModel, "task_type": isT5 ? "SEQ_2_SEQ_LM" : "CAUSAL_LM",
                                  "inference_mode": true, "peft_version": "0.21.2", "revision": NSNull()]
        var tensors: [String: Tensor] = [:]
        if let prompt {
            cfg["peft_type"] = "PROMPT_TUNING"
            cfg["num_virtual_tokens"] = prompt.shape[0]
            cfg["token_dim"] = prompt.shape[1]
            cfg["num_transformer_submodules"] = 1
            cfg["prompt_tuning_init"] = "RANDOM"
            cfg["num_attention_heads"] = NSNull(); cfg["num_layers"] = NSNull()
            tensors["prompt_embeddings"] = prompt
        } else {
            cfg["peft_type"] = "LORA"
            cfg["r"] = r; cfg["lora_alpha"] = alpha; cfg["target_modules"] = targets; cfg["lora_dropout"] = 0.0
            cfg["bias"] = "none"; cfg["fan_in_fan_out"] = !isT5; cfg["use_rslora"] = false; cfg["use_dora"] = false
            for p in lora {
                tensors["base_model.model.\(p.module).lora_A.weight"] = p.a
                tensors["base_model.model.\(p.module).lora_B.weight"] = p.b
            }
        }
        let json = try JSONSerialization.data(withJSONObject: cfg, options: [.sortedKeys, .prettyPrinted])
        try json.write(to: URL(fileURLWithPath: (dir as NSString).appendingPathComponent("adapter_config.json")))
        try SafeTensorsFile.write(tensors, to: (dir as NSString).appendingPathComponent("adapter_model.safetensors"), metadata: ["format": "pt"])
    }
}
