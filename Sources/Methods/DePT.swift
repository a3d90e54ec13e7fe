// DePT (Shi & Lipani 2023, official code): prompt P ∈ R^{m×d} plus a position-indexed low-rank
// update of the input embeddings, ΔE = (α/√r)·A·B with A ∈ R^{s×r} (kaiming-uniform), B ∈ R^{r×d}
// (zeros), added to token positions 0..L−1 (METHODS §2.4: α/√r, not LoRA's α/r). A and B form the
// "secondary" parameter group with its own learning rate. Count md + sr + rd.
import Support
import Foundation
import Models
import Tensor

public final class DePT: TuningMethod {
    public static let name = "dept"
    public static let configKeys = ["m", "s", "r", "alpha", "init"]
    public static let initRules = MethodConfig.tableInitRules
    public static let hasSecondaryGroup = true
    /// DePT's code initialises P from text by default (`text_init=True`, METHODS §2.4): the token
    /// rows of this text (with T5's </s>, as PEFT's TEXT init), cycled to m rows.
    public static let initText = "Classify this text is postive or not:"
    public static var defaults: MethodConfig { var c = MethodConfig.base(name); c.m = 60; c.r = 30; c.initialization = "text:" + initText; return c }
    public static let defaultProtocol = "dept-code"
    public let config: MethodConfig
    let p, a, b: Tensor
    public var trainable: [TrainableTensor] {
        [TrainableTensor(name: "prompt", tensor: p, group: .main), TrainableTensor(name: "lora_embedding_A", tensor: a, group: .secondary),
         TrainableTensor(name: "lora_embedding_B", tensor: b, group: .secondary)]
    }

    public init(config c: MethodConfig, backbone: Backbone, key: RNGKey) throws {
        config = c
        let d = backbone.dModel
        p = trainableLeaf(try promptTable(c, rows: c.m, backbone: backbone, key: key, method: "dept", defaultRule: "text:" + DePT.initText), "prompt")
        a = trainableLeaf(kaimingUniform([c.s, c.r], fanIn: c.r, key: key.derive("A")), "lora_embedding_A")
        b = trainableLeaf(Tensor(zeros: [c.r, d]), "lora_embedding_B")
    }

    public var scaling: Float { config.alpha / Float(config.r).squareRoot() }

    public func injection(drop: DropoutContext) throws -> Injection {
        Injection(prompt: p, inputDelta: scale(try matmul(a, b), scaling))           // (s, d)
    }

    public static func parameterCount(_ c: MethodConfig, architecture: ModelConfig) throws -> Int {
        c.m * architecture.dModel + c.s * c.r + c.r * architecture.dModel
    }
}
