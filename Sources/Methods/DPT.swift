// DPT (decomposed prompt tuning, official code): P = A·B with A ∈ R^{n×r}, B ∈ R^{r×d}, both
// U[−0.5, 0.5] (the code's init; the paper says "Gaussian" without a std). Count r(n + d).
import Support
import Models
import Tensor

public final class DPT: TuningMethod {
    public static let name = "dpt"
    public static let configKeys = ["n", "r", "init"]
    public static let initRules = ["uniform", "normal"]
    public let config: MethodConfig
    let a, b: Tensor
    public var trainable: [TrainableTensor] {
        [TrainableTensor(name: "prefix_first", tensor: a, group: .main), TrainableTensor(name: "prefix_second", tensor: b, group: .main)]
    }

    public init(config c: MethodConfig, backbone: Backbone, key: RNGKey) throws {
        config = c
        let d = backbone.dModel
        if c.initialization.hasPrefix("text:") || c.initialization == "labels" { try refuseTableInit(c, method: "dpt", allowed: []) }
        switch c.initialization {
        case "default", "uniform":
            a = trainableLeaf(Tensor.uniform([c.n, c.r], lo: -0.5, hi: 0.5, key: key.derive("A")), "prefix_first")
            b = trainableLeaf(Tensor.uniform([c.r, d], lo: -0.5, hi: 0.5, key: key.derive("B")), "prefix_second")
        case "normal":  // the paper's wording; std unspecified, N(0, 1) here
            a = trainableLeaf(Tensor.normal([c.n, c.r], key: key.derive("A")), "prefix_first")
            b = trainableLeaf(Tensor.normal([c.r, d], key: key.derive("B")), "prefix_second")
        default: throw MethodError("dpt: unknown init '\(c.initialization)' (\(Self.initRules.joined(separator: ", ")))")
        }
    }

    public func injection(drop: DropoutContext) throws -> Injection { Injection(prompt: try matmul(a, b)) }  // (n, d)

    public static func parameterCount(_ c: MethodConfig, architecture: ModelConfig) throws -> Int { c.r * (c.n + architecture.dModel) }
}
