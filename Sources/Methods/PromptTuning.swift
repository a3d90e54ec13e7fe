// Prompt tuning (Lester et al. 2021): P ∈ R^{n×d}, initialised from embedding rows (Google's
// sampled-vocab rule by default; `respt-vocab`, `uniform`, `normal`, `text:…` and `labels` selectable).
import Support
import Models
import Tensor

public final class PromptTuning: TuningMethod {
    public static let name = "pt"
    public static let configKeys = ["n", "init"]
    public static let initRules = MethodConfig.tableInitRules
    public static var defaults: MethodConfig { var c = MethodConfig.base(name); c.initialization = "sampled-vocab"; return c }
    public let config: MethodConfig
    public let prompt: Tensor
    public var trainable: [TrainableTensor] { [TrainableTensor(name: "prompt", tensor: prompt, group: .main)] }

    public init(config c: MethodConfig, backbone: Backbone, key: RNGKey) throws {
        config = c
        prompt = trainableLeaf(try promptTable(c, rows: c.n, backbone: backbone, key: key, method: "pt", defaultRule: "sampled-vocab"), "prompt")
    }

    public func injection(drop: DropoutContext) throws -> Injection { Injection(prompt: prompt) }

    public static func parameterCount(_ c: MethodConfig, architecture: ModelConfig) throws -> Int { c.n * architecture.dModel }
}
