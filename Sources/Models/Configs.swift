// Typed mirrors of Hugging Face config.json files (house style §4): CodingKeys match the file,
// validation names the offending field.
import Foundation
import Support

public struct ConfigError: Error, CustomStringConvertible {
    public let path: String
    public let detail: String
    public var description: String { "\(path): \(detail)" }
    public init(path: String, detail: String) { self.path = path; self.detail = detail }
}

/// T5 v1.0 (relu, tied head with d^−0.5 rescale) and v1.1 / flan (gated-gelu, untied lm_head).
public struct T5Config: Codable, Equatable {
    public var vocabSize: Int
    public var dModel: Int
    public var dKv: Int
    public var dFf: Int
    public var numLayers: Int
    public var numDecoderLayers: Int?
    public var numHeads: Int
    public var relativeAttentionNumBuckets: Int?
    public var relativeAttentionMaxDistance: Int?
    public var dropoutRate: Float?
    public var layerNormEpsilon: Float?
    public var feedForwardProj: String?
    public var tieWordEmbeddings: Bool?
    public var scaleDecoderOutputs: Bool?
    public var decoderStartTokenId: Int?
    public var eosTokenId: Int?
    public var padTokenId: Int?
    public var modelType: String?
    /// Derived by transformers from `feed_forward_proj`; a stored value overrides it there, so a
    /// value that disagrees is refused rather than guessed.
    public var isGatedAct: Bool?
    public var denseActFn: String?

    enum CodingKeys: String, CodingKey {
        case isGatedAct = "is_gated_act", denseActFn = "dense_act_fn"
        case vocabSize = "vocab_size", dModel = "d_model", dKv = "d_kv", dFf = "d_ff", numLayers = "num_layers"
        case numDecoderLayers = "num_decoder_layers", numHeads = "num_heads"
        case relativeAttentionNumBuckets = "relative_attention_num_buckets"
        case relativeAttentionMaxDistance = "relative_attention_max_distance"
        case dropoutRate = "dropout_rate", layerNormEpsilon = "layer_norm_epsilon"
        case feedForwardProj = "feed_forward_proj", tieWordEmbeddings = "tie_word_embeddings"
        case scaleDecoderOutputs = "scale_decoder_outputs"
        case decoderStartTokenId = "decoder_start_token_id", eosTokenId = "eos_token_id", padTokenId = "pad_token_id"
        case modelType = "model_type"
    }

    public init(vocabSize: Int, dModel: Int, dKv: Int, dFf: Int, numLayers: Int, numDecoderLayers: Int? = nil,
                numHeads: Int, feedForwardProj: String = "relu", tieWordEmbeddings: Bool = true) {
        self.vocabSize = vocabSize
        self.dModel = dModel
        self.dKv = dKv
        self.dFf = dFf
        self.numLayers = numLayers
        self.numDecoderLayers = numDecoderLayers
        self.numHeads = numHeads
        self.relativeAttentionNumBuckets = 32
        self.relativeAttentionMaxDistance = 128
        self.dropoutRate = 0.1
        self.layerNormEpsilon = 1e-6
        self.feedForwardProj = feedForwardProj
        self.tieWordEmbeddings = tieWordEmbeddings
        self.decoderStartTokenId = 0
        self.eosTokenId = 1
        self.padTokenId = 0
        self.modelType = "t5"
    }

    public var decoderLayers: Int { numDecoderLayers ?? numLayers }
    public var buckets: Int { relativeAttentionNumBuckets ?? 32 }
    public var maxDistance: Int { relativeAttentionMaxDistance ?? 128 }
    public var dropout: Float { dropoutRate ?? 0.1 }
    public var eps: Float { layerNormEpsilon ?? 1e-6 }
    /// transformers' (5.24) defaults where config.json leaves the key out: MT5Config's FFN is
    /// gated-gelu, T5Config's relu (an mT5 config without the key was read as relu and refused for
    /// "missing …DenseReluDense.wi.weight"); both tie the head by default.
    public var tied: Bool { tieWordEmbeddings ?? true }
    public var projection: String { feedForwardProj ?? (modelType == "mt5" ? "gated-gelu" : "relu") }
    public var isGated: Bool { projection.hasPrefix("gated-") }
    /// Activation of the FFN as transformers resolves it: "gated-gelu" → gelu_new (tanh
    /// approximation, special-cased by transformers); otherwise the named activation ("gelu" is the
    /// exact erf GELU).
    public var activation: String {
        let proj = projection
        if proj == "gated-gelu" { return "gelu_new" }
        return proj.replacingOccurrences(of: "gated-", with: "")
    }
    public var innerDim: Int { numHeads * dKv }

    public func validate(path: String) throws {
        func bad(_ field: String, _ why: String) -> ConfigError { ConfigError(path: path, detail: "field '\(field)' \(why)") }
        for (f, v) in [("vocab_size", vocabSize), ("d_model", dModel), ("d_kv", dKv), ("d_ff", dFf),
                       ("num_layers", numLayers), ("num_heads", numHeads)] where v <= 0 {
            throw bad(f, "must be positive, got \(v)")
        }
        if let n = numDecoderLayers, n <= 0 { throw bad("num_decoder_layers", "must be positive, got \(n)") }
        // The encoder's buckets (two directions) are exact up to num_buckets/4 (integer division,
        // as transformers): below 4 that range is empty and the logarithm divides by zero (2 ran on
        // undefined integer conversions; transformers raises ZeroDivisionError). Odd counts run as
        // transformers runs them.
        if buckets < 4 { throw bad("relative_attention_num_buckets", "must be ≥ 4 (the encoder's exact range, num_buckets/4, is empty below), got \(buckets)") }
        // The decoder's buckets (one direction) are exact up to num_buckets/2 and logarithmic from
        // there to max_distance: at or below num_buckets/2 the logarithm's range is empty or
        // reversed: distances past num_buckets/2 get buckets below the exact range and, further
        // out, negative ones (transformers raises IndexError there; short sequences run, on
        // misplaced buckets). Refused whatever the length.
        if maxDistance <= buckets / 2 {
            throw bad("relative_attention_max_distance", "must exceed relative_attention_num_buckets/2 = \(buckets / 2) (the decoder's exact range), got \(maxDistance)")
        }
        let projections = ["relu", "gated-gelu", "gated-relu", "gelu", "gated-gelu_new", "gelu_new", "silu", "gated-silu"]
        if !projections.contains(projection) {
            throw bad("feed_forward_proj", "must be one of \(projections.map { "\"\($0)\"" }.joined(separator: ", ")), got \"\(projection)\"")
        }
        if let m = modelType, !["t5", "mt5"].contains(m) { throw bad("model_type", "must be \"t5\" or \"mt5\", got \"\(m)\"") }
        if let g = isGatedAct, g != isGated {
            throw bad("is_gated_act", "is \(g) but feed_forward_proj \"\(projection)\" says \(isGated); transformers would use is_gated_act, PromptRepro refuses the contradiction")
        }
        if let a = denseActFn, a != activation {
            throw bad("dense_act_fn", "\"\(a)\" contradicts feed_forward_proj \"\(projection)\"")
        }
        if !(eps > 0) { throw bad("layer_norm_epsilon", "must be positive, got \(eps)") }
    }
}

/// GPT-2 (LayerNorm with bias, gelu_new, learned positions, tied head, Conv1D [in, out] weights).
public struct GPT2Config: Codable, Equatable {
    public var vocabSize: Int
    public var nEmbd: Int
    public var nLayer: Int
    public var nHead: Int
    public var nPositions: Int
    public var nInner: Int?
    public var layerNormEpsilon: Float?
    public var activationFunction: String?
    public var scaleAttnWeights: Bool?
    public var scaleAttnByInverseLayerIdx: Bool?
    /// fp16 attention trick in transformers; in fp32 it computes the same scores (scaling before the
    /// product instead of after), so it is accepted and has no effect here.
    public var reorderAndUpcastAttn: Bool?
    public var tieWordEmbeddings: Bool?
    public var addCrossAttention: Bool?
    public var residPdrop: Float?
    public var embdPdrop: Float?
    public var attnPdrop: Float?
    public var eosTokenId: Int?
    public var modelType: String?

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size", nEmbd = "n_embd", nLayer = "n_layer", nHead = "n_head", nPositions = "n_positions"
        case nInner = "n_inner", layerNormEpsilon = "layer_norm_epsilon", activationFunction = "activation_function"
        case scaleAttnWeights = "scale_attn_weights", scaleAttnByInverseLayerIdx = "scale_attn_by_inverse_layer_idx"
        case reorderAndUpcastAttn = "reorder_and_upcast_attn", tieWordEmbeddings = "tie_word_embeddings"
        case addCrossAttention = "add_cross_attention"
        case residPdrop = "resid_pdrop", embdPdrop = "embd_pdrop", attnPdrop = "attn_pdrop"
        case eosTokenId = "eos_token_id", modelType = "model_type"
    }

    public init(vocabSize: Int, nEmbd: Int, nLayer: Int, nHead: Int, nPositions: Int) {
        self.vocabSize = vocabSize
        self.nEmbd = nEmbd
        self.nLayer = nLayer
        self.nHead = nHead
        self.nPositions = nPositions
        self.layerNormEpsilon = 1e-5
        self.activationFunction = "gelu_new"
        self.scaleAttnWeights = true
        self.scaleAttnByInverseLayerIdx = false
        self.residPdrop = 0.1
        self.embdPdrop = 0.1
        self.attnPdrop = 0.1
        self.eosTokenId = vocabSize - 1
        self.modelType = "gpt2"
    }

    public var inner: Int { nInner ?? 4 * nEmbd }
    public var eps: Float { layerNormEpsilon ?? 1e-5 }
    /// transformers' default for GPT-2 is a head tied to `wte`.
    public var tied: Bool { tieWordEmbeddings ?? true }

    public func validate(path: String) throws {
        func bad(_ field: String, _ why: String) -> ConfigError { ConfigError(path: path, detail: "field '\(field)' \(why)") }
        for (f, v) in [("vocab_size", vocabSize), ("n_embd", nEmbd), ("n_layer", nLayer), ("n_head", nHead),
                       ("n_positions", nPositions)] where v <= 0 {
            throw bad(f, "must be positive, got \(v)")
        }
        if nEmbd % nHead != 0 { throw bad("n_head", "\(nHead) must divide n_embd \(nEmbd)") }
        if let a = activationFunction, !["gelu_new", "gelu_pytorch_tanh", "gelu", "relu", "silu"].contains(a) {
            throw bad("activation_function", "\"\(a)\" is not supported (gelu_new, gelu_pytorch_tanh, gelu, relu, silu)")
        }
        if let m = modelType, m != "gpt2" { throw bad("model_type", "must be \"gpt2\", got \"\(m)\"") }
        if addCrossAttention == true { throw bad("add_cross_attention", "true (GPT-2 as a decoder with cross-attention) is not supported") }
        if let e = layerNormEpsilon, !(e > 0) { throw bad("layer_norm_epsilon", "must be positive, got \(e)") }
    }
}

extension T5Config {
    /// transformers' `T5Config.attribute_map`: the generic names a config.json may use instead.
    static let attributeMap = ["hidden_size": "d_model", "num_attention_heads": "num_heads", "num_hidden_layers": "num_layers", "head_dim": "d_kv"]
}

extension GPT2Config {
    /// transformers' `GPT2Config.attribute_map`.
    static let attributeMap = ["hidden_size": "n_embd", "max_position_embeddings": "n_positions", "num_attention_heads": "n_head", "num_hidden_layers": "n_layer"]
}

/// Which architecture a config.json describes.
public enum ModelConfig {
    case t5(T5Config)
    case gpt2(GPT2Config)

    /// `obj` as the typed config decodes it, read as transformers reads a config.json: a generic
    /// name of `aliases` (`attribute_map`, e.g. GPT-2's `hidden_size` for `n_embd`) stands for its
    /// field (both given with different values: refused), and `eos_token_id` may be a list (as
    /// generation configs write it): one id is that id; several are refused for T5, whose greedy
    /// decode stops on one (`eosListAllowed`: GPT-2's forward never reads it, the first is kept).
    static func normalised(_ obj: [String: Any], aliases: [String: String], path: String, eosListAllowed: Bool) throws -> Data {
        var o = obj
        for (alias, field) in aliases.sorted(by: { $0.key < $1.key }) {
            guard let v = o[alias] else { continue }
            if let given = o[field] {
                guard "\(given)" == "\(v)" else {
                    throw ConfigError(path: path, detail: "fields '\(alias)' (\(v)) and '\(field)' (\(given)) name the same setting (transformers' attribute_map) with different values")
                }
            } else {
                o[field] = v
            }
            o[alias] = nil
        }
        if let list = o["eos_token_id"] as? [Any] {
            let ids = list.compactMap { $0 as? Int }
            guard ids.count == list.count, !ids.isEmpty else {
                throw ConfigError(path: path, detail: "field 'eos_token_id' must be an integer or a list of integers, got \(list)")
            }
            guard ids.count == 1 || eosListAllowed else {
                throw ConfigError(path: path, detail: "field 'eos_token_id' lists \(ids.count) ids \(ids): PromptRepro's greedy decode stops on one; give the one the model ends its outputs with")
            }
            o["eos_token_id"] = ids[0]
        }
        return try JSONSerialization.data(withJSONObject: o)
    }

    public static func load(path: String) throws -> ModelConfig {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw ConfigError(path: path, detail: "cannot read: \(error.localizedDescription)")
        }
        return try parse(data, path: path)
    }

    public static func parse(_ data: Data, path: String) throws -> ModelConfig {
        let obj: [String: Any]
        do {
            guard let o = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw ConfigError(path: path, detail: "not a JSON object")
            }
            obj = o
        } catch let e as ConfigError { throw e } catch {
            throw ConfigError(path: path, detail: "malformed JSON: \(error.localizedDescription)")
        }
        let type = (obj["model_type"] as? String) ?? (obj["n_embd"] != nil ? "gpt2" : (obj["d_model"] != nil ? "t5" : ""))
        do {
            switch type {
            case "t5", "mt5":
                var t5 = obj
                // transformers' T5Config.__init__ sets num_decoder_layers from its own num_layers
                // argument before the attribute_map alias is applied: with num_hidden_layers and
                // no num_decoder_layers the decoder has the class default (T5 6, MT5 8), whatever
                // num_hidden_layers says (a review, against transformers 5.24).
                if t5["num_hidden_layers"] != nil, t5["num_layers"] == nil, t5["num_decoder_layers"] == nil {
                    t5["num_decoder_layers"] = type == "mt5" ? 8 : 6
                }
                let c = try JSONDecoder().decode(T5Config.self, from: try normalised(t5, aliases: T5Config.attributeMap, path: path, eosListAllowed: false))
                try c.validate(path: path)
                return .t5(c)
            case "gpt2":
                let c = try JSONDecoder().decode(GPT2Config.self, from: try normalised(obj, aliases: GPT2Config.attributeMap, path: path, eosListAllowed: true))
                try c.validate(path: path)
                return .gpt2(c)
            default:
                throw ConfigError(path: path, detail: "field 'model_type' is \"\(type)\"; supported: \"t5\", \"gpt2\"")
            }
        } catch let e as ConfigError { throw e } catch {
            throw ConfigError(path: path, detail: decodingProblem(error))  // "missing field 'd_kv'", "field 'x' has the wrong type", …
        }
    }
}
