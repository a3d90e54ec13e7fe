// LoRA (Hu et al. 2022, PEFT semantics): on each targeted linear W, y = x·Wᵀ + (α/r)·dropout(x)·Aᵀ·Bᵀ
// with A ∈ R^{r×in} kaiming-uniform and B ∈ R^{out×r} zeros. Targets are the last name component
// of T5 weights ("q", "v" by default; "k", "o", "wi", "wo", …) or GPT-2 Conv1D names ("c_attn", …).
import Foundation
import Models
import Tensor

final class LoRAAdapter: LinearAdapter {
    let a, b: Tensor
    let scaling: Float
    let p: Float

    init(a: Tensor, b: Tensor, scaling: Float, dropout: Float) {
        self.a = a
        self.b = b
        self.scaling = scaling
        self.p = dropout
    }

    func delta(_ x: Tensor, drop: DropoutContext) throws -> Tensor {
        let k = drop.nextKey()
        let xd = (drop.training && p > 0) ? dropout(x, p: p, key: k) : x
        return scale(try linear(try linear(xd, a), b), scaling)
    }
}

public final class LoRA: TuningMethod {
    public static let name = "lora"
    public let config: MethodConfig
    public let trainable: [TrainableTensor]

    static func targetWeights(_ c: MethodConfig, _ params: [(name: String, shape: [Int])]) -> [(String, [Int])] {
        params.filter { p in
            let parts = p.name.split(separator: ".")
            guard parts.count >= 2, parts.last == "weight", p.shape.count == 2 else { return false }
            return c.targets.contains(String(parts[parts.count - 2]))
        }.map { ($0.name, $0.shape) }
    }

    public init(config c: MethodConfig, backbone: Backbone, key: RNGKey) throws {
        config = c
        let gpt2: Bool
        if case .gpt2 = backbone.architecture { gpt2 = true } else { gpt2 = false }
        let targets = LoRA.targetWeights(c, backbone.parameters.map { ($0.name, $0.tensor.shape) })
        guard !targets.isEmpty else { throw MethodError("lora: no weights match targets \(c.targets)") }
        var list: [TrainableTensor] = []
        for (name, shape) in targets {
            let (inF, outF) = gpt2 ? (shape[0], shape[1]) : (shape[1], shape[0])
            let a = trainableLeaf(kaimingUniform([c.r, inF], fanIn: inF, key: key.derive("\(name).A")), "\(name).lora_A")
            let b = trainableLeaf(Tensor(zeros: [outF, c.r]), "\(name).lora_B")
            backbone.adapters[name] = LoRAAdapter(a: a, b: b, scaling: c.alpha / Float(c.r), dropout: c.dropout)
            list += [TrainableTensor(name: a.name, tensor: a, group: "main"), TrainableTensor(name: b.name, tensor: b, group: "main")]
        }
        trainable = list
    }

    public func injection(drop: DropoutContext) throws -> Injection { Injection() }

    public static func parameterCount(_ c: MethodConfig, architecture: ModelConfig) throws -> Int {
        let shapes: [(String, [Int])]
        switch architecture {
        case .t5(let t): shapes = T5Model.parameterShapes(t, untiedHead: !t.tied)
        case .gpt2(let g): shapes = GPT2Model.parameterShapes(g)
        }
        return targetWeights(c, shapes.map { ($0.0, $0.1) }).reduce(0) { $0 + c.r * ($1.1[0] + $1.1[1]) }
    }
}
