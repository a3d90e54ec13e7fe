// LoPT-1 (LoPT paper): X = U·V, U ∈ R^{n×r}, V ∈ R^{r×d}, U[−0.5, 0.5]. The same factorisation
// and init as DPT (METHODS §6.14); differs only in settings (n = 10/20, r = ⌊n/4⌋, Adafactor).
import Support
import Models
import Tensor

public final class LoPT1: TuningMethod {
    public static let name = "lopt1"
    public static let configKeys = ["n", "r", "init"]
    public static let initRules = ["uniform"]
    public static var defaults: MethodConfig { var c = MethodConfig.base(name); c.n = 20; c.r = 5; return c }
    public static let defaultProtocol = "lopt-paper"
    public let config: MethodConfig
    let u, v: Tensor
    public var trainable: [TrainableTensor] {
        [TrainableTensor(name: "U", tensor: u, group: .main), TrainableTensor(name: "V", tensor: v, group: .main)]
    }

    public init(config c: MethodConfig, backbone: Backbone, key: RNGKey) throws {
        config = c
        try refuseTableInit(c, method: "lopt1", allowed: ["default"] + Self.initRules)
        u = trainableLeaf(Tensor.uniform([c.n, c.r], lo: -0.5, hi: 0.5, key: key.derive("U")), "U")
        v = trainableLeaf(Tensor.uniform([c.r, backbone.dModel], lo: -0.5, hi: 0.5, key: key.derive("V")), "V")
    }

    public func injection(drop: DropoutContext) throws -> Injection { Injection(prompt: try matmul(u, v)) }

    public static func parameterCount(_ c: MethodConfig, architecture: ModelConfig) throws -> Int { c.r * (c.n + architecture.dModel) }
}
