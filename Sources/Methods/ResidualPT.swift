// Residual prompt tuning (Razdaibiedina et al. 2023), shared-MLP variant whose counts match DPT
// Tables 1/4: P' = LayerNorm(W_up·ReLU(W_down·p + b_down) + b_up) + p row-wise (LayerNorm with
// bias, eps 1e-5); m = bottleneck (400). Count nd + 2dm + m + 3d.
import Support
import Models
import Tensor

public final class ResidualPromptTuning: TuningMethod {
    public static let name = "respt"
    public static let configKeys = ["n", "m", "init"]
    public static let initRules = MethodConfig.tableInitRules
    public static var defaults: MethodConfig { var c = MethodConfig.base(name); c.initialization = "respt-vocab"; return c }
    public let config: MethodConfig
    let p, wDown, bDown, wUp, bUp, gamma, beta: Tensor
    public var trainable: [TrainableTensor] {
        [("prompt", p), ("mlp.down.weight", wDown), ("mlp.down.bias", bDown), ("mlp.up.weight", wUp), ("mlp.up.bias", bUp),
         ("mlp.norm.weight", gamma), ("mlp.norm.bias", beta)].map { TrainableTensor(name: $0.0, tensor: $0.1, group: .main) }
    }

    public init(config c: MethodConfig, backbone: Backbone, key: RNGKey) throws {
        config = c
        let d = backbone.dModel
        p = trainableLeaf(try promptTable(c, rows: c.n, backbone: backbone, key: key, method: "respt", defaultRule: "respt-vocab"), "prompt")
        wDown = trainableLeaf(kaimingUniform([c.m, d], fanIn: d, key: key.derive("down.w")), "mlp.down.weight")
        bDown = trainableLeaf(kaimingUniform([c.m], fanIn: d, key: key.derive("down.b")), "mlp.down.bias")
        wUp = trainableLeaf(kaimingUniform([d, c.m], fanIn: c.m, key: key.derive("up.w")), "mlp.up.weight")
        bUp = trainableLeaf(kaimingUniform([d], fanIn: c.m, key: key.derive("up.b")), "mlp.up.bias")
        gamma = trainableLeaf(Tensor(shape: [d], values: [Float](repeating: 1, count: d)), "mlp.norm.weight")
        beta = trainableLeaf(Tensor(zeros: [d]), "mlp.norm.bias")
    }

    public func injection(drop: DropoutContext) throws -> Injection {
        let h = relu(try linear(p, wDown, bias: bDown))                                // (n, m)
        let u = try linear(h, wUp, bias: bUp)                                          // (n, d)
        return Injection(prompt: try add(try layerNorm(u, weight: gamma, bias: beta, eps: 1e-5), p))
    }

    public static func parameterCount(_ c: MethodConfig, architecture: ModelConfig) throws -> Int {
        let d = architecture.dModel
        return c.n * d + 2 * d * c.m + c.m + 3 * d
    }
}
