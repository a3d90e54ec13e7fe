// LoRA (Hu et al. 2022, PEFT semantics): on each targeted linear W, y = x·Wᵀ + (α/r)·dropout(x)·Aᵀ·Bᵀ
// with A ∈ R^{r×in} kaiming-uniform and B ∈ R^{out×r} zeros. Targets match module names as PEFT's
// `target_modules` list does: a module is targeted when its name equals a target or ends with
// "." + target (T5: "q", "v" by default; "k", "o", "wi", "wo", "EncDecAttention.q", …; GPT-2 Conv1D:
// "c_attn", "c_proj", "attn.c_proj", "c_fc"). On GPT-2, whose q, k and v live in one fused
// `c_attn`, the T5 names q/k/v select `c_attn` (PEFT's GPT-2 default) and o selects `attn.c_proj`.
import Support
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
        // Its own rate, in every training step: not gated by the backbone's dropout (PEFT's
        // `lora_dropout` is an nn.Dropout of the adapter; it applied only with the backbone's on).
        let xd = (drop.isTrainingStep && p > 0) ? dropout(x, p: p, key: k!) : x
        return scale(try linear(try linear(xd, a), b), scaling)
    }
}

public final class LoRA: TuningMethod {
    public static let name = "lora"
    public static let configKeys = ["r", "alpha", "dropout", "targets"]
    public static let defaultProtocol = "lora-paper"
    public static var defaults: MethodConfig { var c = MethodConfig.base(name); c.r = 8; c.alpha = 8; c.targets = ["q", "v"]; return c }
    public let config: MethodConfig
    public let trainable: [TrainableTensor]

    /// Targets as matched on `architecture`: on GPT-2, T5 attention names map onto the fused Conv1D.
    public static func effectiveTargets(_ targets: [String], gpt2: Bool) -> [String] {
        guard gpt2 else { return targets }
        var out: [String] = []
        for t in targets {
            let m = ["q": "c_attn", "k": "c_attn", "v": "c_attn", "o": "attn.c_proj"][t] ?? t
            if !out.contains(m) { out.append(m) }
        }
        return out
    }

    /// 2-D weights (`<module>.weight`) whose module name matches a target (PEFT suffix rule).
    static func targetWeights(_ c: MethodConfig, _ params: [(name: String, shape: [Int])], gpt2: Bool) -> [(String, [Int])] {
        let targets = effectiveTargets(c.targets, gpt2: gpt2)
        return params.filter { p in
            guard p.name.hasSuffix(".weight"), p.shape.count == 2 else { return false }
            let module = String(p.name.dropLast(".weight".count))
            return targets.contains { module == $0 || module.hasSuffix("." + $0) }
        }.map { ($0.name, $0.shape) }
    }

    public init(config c: MethodConfig, backbone: Backbone, key: RNGKey) throws {
        config = c
        let gpt2: Bool
        if case .gpt2 = backbone.architecture { gpt2 = true } else { gpt2 = false }
        guard c.r > 0 else { throw MethodError("lora: r must be positive, got \(c.r)") }
        // Embeddings and the head are not linear layers here (PEFT's LoRA on them is a different module).
        let linears = backbone.parameters.filter { p in !["shared.weight", "lm_head.weight"].contains(p.name) && !p.name.hasSuffix("wte.weight") && !p.name.hasSuffix("wpe.weight") }
        let targets = LoRA.targetWeights(c, linears.map { ($0.name, $0.tensor.shape) }, gpt2: gpt2)
        guard !targets.isEmpty else {
            let modules = Set(linears.filter { $0.tensor.rank == 2 }.map { String($0.name.split(separator: ".").dropLast().last ?? "") }).sorted()
            throw MethodError("lora: no linear layer matches targets \(c.targets) (this model's layer names: \(modules.joined(separator: ", ")))")
        }
        var list: [TrainableTensor] = []
        for (name, shape) in targets {
            let (inF, outF) = gpt2 ? (shape[0], shape[1]) : (shape[1], shape[0])
            let a = trainableLeaf(kaimingUniform([c.r, inF], fanIn: inF, key: key.derive("\(name).A")), "\(name).lora_A")
            let b = trainableLeaf(Tensor(zeros: [outF, c.r]), "\(name).lora_B")
            backbone.adapters[name] = LoRAAdapter(a: a, b: b, scaling: c.alpha / Float(c.r), dropout: c.dropout)
            list += [TrainableTensor(name: a.name, tensor: a, group: .main), TrainableTensor(name: b.name, tensor: b, group: .main)]
        }
        trainable = list
    }

    public func injection(drop: DropoutContext) throws -> Injection { Injection() }

    public static func parameterCount(_ c: MethodConfig, architecture: ModelConfig) throws -> Int {
        let shapes: [(String, [Int])]
        var gpt2 = false
        switch architecture {
        case .t5(let t): shapes = T5Model.parameterShapes(t, untiedHead: !t.tied)
        case .gpt2(let g): shapes = GPT2Model.parameterShapes(g); gpt2 = true
        }
        let linears = shapes.filter { !["shared.weight", "lm_head.weight"].contains($0.0) && !$0.0.hasSuffix("wte.weight") && !$0.0.hasSuffix("wpe.weight") }
        return targetWeights(c, linears.map { ($0.0, $0.1) }, gpt2: gpt2).reduce(0) { $0 + c.r * ($1.1[0] + $1.1[1]) }
    }
}
