// Prompt tuning (Lester et al. 2021): P ∈ R^{n×d}, initialised from embedding rows (Google's
// sampled-vocab rule by default; `respt-vocab`, `uniform` U[−0.5, 0.5] and `normal` N(0,1) selectable).
import Models
import Tensor

public final class PromptTuning: TuningMethod {
    public static let name = "pt"
    public let config: MethodConfig
    public let prompt: Tensor
    public var trainable: [TrainableTensor] { [TrainableTensor(name: "prompt", tensor: prompt, group: "main")] }

    public init(config c: MethodConfig, backbone: Backbone, key: RNGKey) throws {
        config = c
        let d = backbone.dModel
        let p: Tensor
        switch c.initialization {
        case "sampled-vocab", "default": p = vocabRows(backbone.inputEmbeddings, n: c.n, key: key.derive("prompt"), respt: false)
        case "respt-vocab": p = vocabRows(backbone.inputEmbeddings, n: c.n, key: key.derive("prompt"), respt: true)
        case "uniform": p = Tensor.uniform([c.n, d], lo: -0.5, hi: 0.5, key: key.derive("prompt"))
        case "normal": p = Tensor.normal([c.n, d], key: key.derive("prompt"))
        default: throw MethodError("pt: unknown init '\(c.initialization)' (sampled-vocab, respt-vocab, uniform, normal)")
        }
        prompt = trainableLeaf(p, "prompt")
    }

    public func injection(drop: DropoutContext) throws -> Injection { Injection(prompt: prompt) }

    public static func parameterCount(_ c: MethodConfig, architecture: ModelConfig) throws -> Int { c.n * architecture.dModel }
}
