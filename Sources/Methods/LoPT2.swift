// LoPT-2 (LoPT paper, "implementation simplification"): X = ELU(X0·U)·V with X0 ∈ R^{n×d} frozen
// (U[−0.5, 0.5]; unspecified in the paper), U ∈ R^{d×r}, V ∈ R^{r×d} bias-free linear maps with
// PyTorch's default init. Count 2rd (X0 not counted).
import Support
import Models
import Tensor

public final class LoPT2: TuningMethod {
    public static let name = "lopt2"
    public static let configKeys = ["n", "r", "init"]
    public static let initRules = ["uniform"]
    public static var defaults: MethodConfig { var c = MethodConfig.base(name); c.n = 20; c.r = 5; return c }
    public static let defaultProtocol = "lopt-paper"
    public let config: MethodConfig
    let x0, u, v: Tensor
    public var trainable: [TrainableTensor] {
        [TrainableTensor(name: "U", tensor: u, group: .main), TrainableTensor(name: "V", tensor: v, group: .main)]
    }
    public var state: [String: Tensor] { ["X0": x0, "U": u, "V": v] }

    public init(config c: MethodConfig, backbone: Backbone, key: RNGKey) throws {
        config = c
        try refuseTableInit(c, method: "lopt2", allowed: ["default"] + Self.initRules)
        let d = backbone.dModel
        x0 = Tensor.uniform([c.n, d], lo: -0.5, hi: 0.5, key: key.derive("X0"))
        x0.name = "X0"
        u = trainableLeaf(kaimingUniform([d, c.r], fanIn: d, key: key.derive("U")), "U")
        v = trainableLeaf(kaimingUniform([c.r, d], fanIn: c.r, key: key.derive("V")), "V")
    }

    public func injection(drop: DropoutContext) throws -> Injection {
        Injection(prompt: try matmul(elu(try matmul(x0, u)), v))                       // (n, d)
    }

    public static func parameterCount(_ c: MethodConfig, architecture: ModelConfig) throws -> Int { 2 * c.r * architecture.dModel }
    /// X0 (n × d, frozen; METHODS §2.7), saved with the method's state.
    public static func frozenParameterCount(_ c: MethodConfig, architecture: ModelConfig) -> Int { c.n * architecture.dModel }
}
