// Architecture configs of the checkpoints the papers use, as shipped on the Hugging Face Hub
// (config.json fields that determine shapes). Parameter counts come from these alone; no weights.
import Foundation

public enum Architectures {
    public static let t5Small = T5Config(vocabSize: 32128, dModel: 512, dKv: 64, dFf: 2048, numLayers: 6, numHeads: 8)
    public static let t5Base = T5Config(vocabSize: 32128, dModel: 768, dKv: 64, dFf: 3072, numLayers: 12, numHeads: 12)
    public static let t5Large = T5Config(vocabSize: 32128, dModel: 1024, dKv: 64, dFf: 4096, numLayers: 24, numHeads: 16)
    public static let flanT5Base = T5Config(vocabSize: 32128, dModel: 768, dKv: 64, dFf: 2048, numLayers: 12, numDecoderLayers: 12,
                                            numHeads: 12, feedForwardProj: "gated-gelu", tieWordEmbeddings: false)
    public static let gpt2 = GPT2Config(vocabSize: 50257, nEmbd: 768, nLayer: 12, nHead: 12, nPositions: 1024)
    public static let gpt2Medium = GPT2Config(vocabSize: 50257, nEmbd: 1024, nLayer: 24, nHead: 16, nPositions: 1024)
    public static let gpt2Large = GPT2Config(vocabSize: 50257, nEmbd: 1280, nLayer: 36, nHead: 20, nPositions: 1024)

    /// Hub ids (and short names) → architecture.
    public static let known: [String: ModelConfig] = [
        "t5-small": .t5(t5Small), "google-t5/t5-small": .t5(t5Small),
        "t5-base": .t5(t5Base), "google-t5/t5-base": .t5(t5Base),
        "t5-large": .t5(t5Large), "google-t5/t5-large": .t5(t5Large),
        "google/flan-t5-base": .t5(flanT5Base), "flan-t5-base": .t5(flanT5Base),
        "gpt2": .gpt2(gpt2), "openai-community/gpt2": .gpt2(gpt2),
        "gpt2-medium": .gpt2(gpt2Medium), "openai-community/gpt2-medium": .gpt2(gpt2Medium),
        "gpt2-large": .gpt2(gpt2Large), "openai-community/gpt2-large": .gpt2(gpt2Large),
        "embedded:t5-tiny": .t5(EmbeddedBackbones.t5Tiny), "embedded:gpt2-tiny": .gpt2(EmbeddedBackbones.gpt2Tiny),
    ]
}

extension ModelConfig {
    public var parameterCount: Int {
        switch self {
        case .t5(let c): return T5Model.parameterCount(c)
        case .gpt2(let c): return GPT2Model.parameterCount(c)
        }
    }

    public var summary: [String: Any] {
        switch self {
        case .t5(let c):
            return ["arch": "t5", "variant": c.isGated ? "v1.1 (gated-\(c.activation), untied lm_head)" : "v1.0 (relu, tied head, d^-0.5 rescale)",
                    "d_model": c.dModel, "d_kv": c.dKv, "d_ff": c.dFf, "num_heads": c.numHeads, "encoder_layers": c.numLayers,
                    "decoder_layers": c.decoderLayers, "vocab_size": c.vocabSize, "relative_attention_num_buckets": c.buckets,
                    "relative_attention_max_distance": c.maxDistance, "total_params": parameterCount]
        case .gpt2(let c):
            return ["arch": "gpt2", "n_embd": c.nEmbd, "n_layer": c.nLayer, "n_head": c.nHead, "n_positions": c.nPositions,
                    "n_inner": c.inner, "vocab_size": c.vocabSize, "head": c.tied ? "tied to wte" : "untied lm_head",
                    "total_params": parameterCount]
        }
    }
}
