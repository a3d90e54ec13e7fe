// The tuning-method interface and registry. A method declares its trainable tensors (with their
// parameter group), initialises them from a seeded key, and either builds what is injected into
// the backbone's input (soft prompt, DePT's input delta: `Injection`, turned into the backbone's
// `inputsEmbeds` and mask by `Injection.inputs`) or modifies the backbone (FT, LoRA).
// Adding a method = one file + one line in `MethodRegistry.types` (house style §1).
import Foundation
import Models
import Support
import Tensor

/// What a method adds to the backbone's input for one forward pass.
public struct Injection {
    public var prompt: Tensor?      // (n, d), prepended to the input embeddings
    public var inputDelta: Tensor?  // (s, d), added to the first L token embeddings (DePT)
    public init(prompt: Tensor? = nil, inputDelta: Tensor? = nil) {
        self.prompt = prompt
        self.inputDelta = inputDelta
    }

    /// The backbone's `inputs_embeds` and `attention_mask` for token ids (B × L) and their mask
    /// (B × L), as PEFT builds them for transformers' T5ForConditionalGeneration / GPT2LMHeadModel
    /// (METHODS §1): embed(ids) + inputDelta[:L] (DePT, broadcast over B), then the prompt rows
    /// first, shared by the batch: inputsEmbeds = concat(prompt, …) (B, n+L, d), attentionMask =
    /// concat(ones(n), mask) (B, n+L). Without a prompt or delta: the plain token embeddings.
    public func inputs(for backbone: Backbone, inputIds: [Int32], attentionMask: [Float], batch: Int) throws
        -> (inputsEmbeds: Tensor, attentionMask: Tensor) {
        let L = inputIds.count / batch, d = backbone.dModel
        var embeds = try backbone.embed(inputIds: inputIds, batch: batch)              // (B, L, d)
        if let inputDelta {
            guard inputDelta.rank == 2, inputDelta.shape[1] == d, inputDelta.shape[0] >= L else {
                throw TensorError.shapeMismatch(op: "input delta", detail: "delta \(inputDelta.shape) must be [s ≥ \(L), \(d)]")
            }
            embeds = try add(embeds, try narrow(inputDelta, axis: 0, start: 0, length: L))  // broadcast over B
        }
        guard let prompt else { return (embeds, Tensor(shape: [batch, L], values: attentionMask)) }
        guard prompt.rank == 2, prompt.shape[1] == d else {
            throw TensorError.shapeMismatch(op: "soft prompt", detail: "prompt \(prompt.shape) must be [n, \(d)]")
        }
        let n = prompt.shape[0]
        embeds = try concat([repeatBatch(prompt, batch), embeds], axis: 1)            // (B, n+L, d)
        var m = [Float](repeating: 1, count: batch * (n + L))
        for b in 0..<batch { for t in 0..<L { m[b * (n + L) + n + t] = attentionMask[b * L + t] } }
        return (embeds, Tensor(shape: [batch, n + L], values: m))
    }
}

/// Causal-LM labels aligned with `inputs(…)`'s n + L rows: −100 over the n prompt rows, then each
/// row's labels (B × L) — as PEFT's PeftModelForCausalLM extends `labels` for GPT2LMHeadModel.
public func promptedLabels(_ labels: [Int32], batch: Int, promptRows n: Int) -> [Int32] {
    guard n > 0 else { return labels }
    let L = labels.count / batch
    var out: [Int32] = []
    out.reserveCapacity(batch * (n + L))
    for b in 0..<batch { out += [Int32](repeating: ignoreIndex, count: n) + labels[(b * L)..<((b + 1) * L)] }
    return out
}

/// Hyper-parameters of a method's architecture. Letters follow METHODS.md: n prompt length,
/// r rank, m ResPT bottleneck or DePT prompt length, s DePT max input length.
public struct MethodConfig: Codable, Equatable, Sendable {
    public var method: String
    public var n: Int
    public var r: Int
    public var m: Int
    public var s: Int
    public var alpha: Float
    public var dropout: Float
    public var targets: [String]
    public var initialization: String
    /// Token ids for `init: "text:…"` / `"labels"` (the trainer tokenizes the text or the label
    /// words; absent otherwise).
    public var initTokens: [Int32]?

    enum CodingKeys: String, CodingKey { case method, n, r, m, s, alpha, dropout, targets, initialization = "init", initTokens = "init_tokens" }

    public init(method: String, n: Int, r: Int, m: Int, s: Int, alpha: Float, dropout: Float, targets: [String], initialization: String) {
        self.method = method; self.n = n; self.r = r; self.m = m; self.s = s; self.alpha = alpha; self.dropout = dropout
        self.targets = targets; self.initialization = initialization
    }
    public static let keys = ["n", "r", "m", "s", "alpha", "dropout", "targets", "init"]

    /// The settings every method starts from (n 100, r 10, m 400, s 256, α 8); each method type
    /// adjusts them in its `defaults` (METHODS §2).
    public static func base(_ method: String) -> MethodConfig {
        MethodConfig(method: method, n: 100, r: 10, m: 400, s: 256, alpha: 8, dropout: 0, targets: [], initialization: "default")
    }

    /// The papers' settings of a registered method (its type's `defaults`); override fields as needed.
    public static func defaults(_ method: String) throws -> MethodConfig {
        try MethodRegistry.type(method).defaults
    }

    /// This config with `init: default` replaced by the method's own default rule where its
    /// defaults name one (PT: sampled-vocab; ResPT: its vocabulary rule; DePT: its code's text), so
    /// that a stored config names the rule that ran and `default` and that rule written out are one
    /// identity. Methods whose defaults keep `default` (DPT, LoPT-1/2: uniform) are left as they
    /// are, so there `init: uniform` and `init: default` remain two identities of one run.
    public func resolvingDefaultInit() -> MethodConfig {
        guard initialization == "default", let own = try? MethodConfig.defaults(method).initialization, own != "default" else { return self }
        var c = self
        c.initialization = own
        return c
    }
}

extension MethodConfig {
    /// The keys set to other than the method's defaults (`init` compared after
    /// `resolvingDefaultInit`) that the method does not read (`TuningMethod.configKeys`): e.g.
    /// `dropout` on respt (ResPT's MLP dropout is not an option here), `n` on ft. Such a setting
    /// would change nothing but the run's identity. Empty for an unregistered method.
    public func unreadSettings() -> [String] {
        guard let t = try? MethodRegistry.type(method) else { return [] }
        let d = t.defaults.resolvingDefaultInit(), c = resolvingDefaultInit()
        let differs: [String: Bool] = [
            "n": c.n != d.n, "r": c.r != d.r, "m": c.m != d.m, "s": c.s != d.s, "alpha": c.alpha != d.alpha,
            "dropout": c.dropout != d.dropout, "targets": c.targets != d.targets, "init": c.initialization != d.initialization]
        return MethodConfig.keys.filter { !t.configKeys.contains($0) && differs[$0] == true }
    }

    /// The `init` rules of a table prompt (`promptTable`: PT, Residual PT, DePT's P).
    public static let tableInitRules = ["sampled-vocab", "respt-vocab", "uniform", "normal", "text:<string>", "labels"]

    /// An `init` the method does not build by (`TuningMethod.initRules`) as one error sentence, nil
    /// when it does or reads no `init` (`unreadSettings` covers that). A run with it failed only
    /// when it started: every run of a sweep, each stored as failed.
    public func initProblem() -> String? {
        guard let t = try? MethodRegistry.type(method), t.configKeys.contains("init"), !t.initRules.isEmpty else { return nil }
        let rule = initialization
        if rule == "default" || t.initRules.contains(rule) || (rule.hasPrefix("text:") && t.initRules.contains("text:<string>")) { return nil }
        return "method \(method): unknown init '\(rule)' (one of: default, \(t.initRules.joined(separator: ", ")))"
    }

    /// What `train`, `params` and a spec refuse in a method config, as one error sentence:
    /// `unreadSettingsProblem`, else `initProblem`; nil when neither applies.
    public func settingsProblem() -> String? { unreadSettingsProblem() ?? initProblem() }

    /// `unreadSettings` as one error sentence, nil when there are none.
    public func unreadSettingsProblem() -> String? {
        let keys = unreadSettings()
        guard !keys.isEmpty, let t = try? MethodRegistry.type(method) else { return nil }
        let reads = t.configKeys.isEmpty ? "none of them" : t.configKeys.joined(separator: ", ")
        return "method \(method) does not read \(keys.map { "'\($0)'" }.joined(separator: ", ")) (it reads \(reads)); the setting would change only the run's identity"
    }
}

public struct MethodError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

func didYouMeanMethod(_ s: String) -> String { didYouMean(s, MethodRegistry.names) }

/// A frozen (or fully trainable) model that methods attach to.
public protocol Backbone: AnyObject {
    var dModel: Int { get }
    var inputEmbeddings: Tensor { get }
    var parameters: [(name: String, tensor: Tensor)] { get }
    var adapters: [String: LinearAdapter] { get set }
    var architecture: ModelConfig { get }
    func setTrainable(_ on: Bool)
    /// The token embedding lookup (B × L ids → (B, L, d)), transformers' `get_input_embeddings()`.
    func embed(inputIds: [Int32], batch: Int) throws -> Tensor
}

extension T5Model: Backbone {
    public var dModel: Int { config.dModel }
    public var inputEmbeddings: Tensor { shared }
    public var architecture: ModelConfig { .t5(config) }
}

extension GPT2Model: Backbone {
    public var dModel: Int { config.nEmbd }
    public var inputEmbeddings: Tensor { wte }
    public var architecture: ModelConfig { .gpt2(config) }
}

/// The optimizer group a trainable tensor belongs to: `main` (the run's lr), or `secondary` (its
/// own lr: DePT's low-rank pair, `lr_secondary`).
public enum ParamGroupKind: String, Sendable {
    case main, secondary
}

public struct TrainableTensor {
    public let name: String
    public let tensor: Tensor
    public let group: ParamGroupKind
    public init(name: String, tensor: Tensor, group: ParamGroupKind) { self.name = name; self.tensor = tensor; self.group = group }
}

public protocol TuningMethod: AnyObject {
    static var name: String { get }
    /// The papers' settings (METHODS §2): `MethodConfig.base(name)` adjusted.
    static var defaults: MethodConfig { get }
    /// The `MethodConfig.keys` the method reads (METHODS §2); a spec or flag that sets another
    /// to other than the method's default is refused (`MethodConfig.unreadSettings`).
    static var configKeys: [String] { get }
    /// The `init` values it builds its tensors by, besides `default` (`text:<string>` stands for
    /// any text); empty where it reads no `init`. A spec or flag naming another is refused before
    /// any run starts (`MethodConfig.initProblem`; building the method refuses it too).
    static var initRules: [String] { get }
    /// Whether some of its tensors train in the `secondary` group (its own `lr_secondary`: DePT's
    /// A and B); default false, where `lr_secondary` is not read.
    static var hasSecondaryGroup: Bool { get }
    /// The training preset (`TrainConfig.protocols`) the method uses in the papers' comparisons.
    static var defaultProtocol: String { get }
    var config: MethodConfig { get }
    var trainable: [TrainableTensor] { get }
    /// Everything a checkpoint must hold to rebuild the injection exactly (trainable + frozen buffers).
    var state: [String: Tensor] { get }
    init(config: MethodConfig, backbone: Backbone, key: RNGKey) throws
    func injection(drop: DropoutContext) throws -> Injection
    /// The backbone's `inputs_embeds` (B, n+L, d) and `attention_mask` (B, n+L) for token ids and
    /// their mask (B × L); the default is `injection(drop:).inputs(for:…)`, what every method uses.
    func inputs(for backbone: Backbone, inputIds: [Int32], attentionMask: [Float], batch: Int, drop: DropoutContext) throws
        -> (inputsEmbeds: Tensor, attentionMask: Tensor)
    /// Trainable parameters from the method's formula and the architecture config alone.
    static func parameterCount(_ c: MethodConfig, architecture: ModelConfig) throws -> Int
    /// Frozen parameters the method adds to the model and saves with its state (LoPT-2's X0,
    /// n × d); default 0.
    static func frozenParameterCount(_ c: MethodConfig, architecture: ModelConfig) -> Int
}

/// A method that reports measurements of its own tensors after every epoch (stored per epoch in
/// `epoch_metrics`, e.g. the rank probe's sign counts and rank for DPT Figure 3).
public protocol EpochDiagnostics {
    /// Name → value; names are stored as given.
    func epochMetrics() throws -> [String: Double]
}

extension TuningMethod {
    public static var defaults: MethodConfig { MethodConfig.base(name) }
    public static var initRules: [String] { [] }
    public static var defaultProtocol: String { "dpt-paper" }
    public static var hasSecondaryGroup: Bool { false }
    public static func frozenParameterCount(_ c: MethodConfig, architecture: ModelConfig) -> Int { 0 }
    public var trainableCount: Int { trainable.reduce(0) { $0 + $1.tensor.count } }

    public func inputs(for backbone: Backbone, inputIds: [Int32], attentionMask: [Float], batch: Int, drop: DropoutContext) throws
        -> (inputsEmbeds: Tensor, attentionMask: Tensor) {
        try injection(drop: drop).inputs(for: backbone, inputIds: inputIds, attentionMask: attentionMask, batch: batch)
    }
    public var state: [String: Tensor] { Dictionary(uniqueKeysWithValues: trainable.map { ($0.name, $0.tensor) }) }

    /// Copies saved values into this method's tensors (shapes must match).
    public func load(state saved: [String: Tensor]) throws {
        for (name, t) in state.sorted(by: { $0.key < $1.key }) {
            guard let s = saved[name] else { throw MethodError("checkpoint lacks tensor '\(name)'") }
            guard s.shape == t.shape else { throw MethodError("checkpoint tensor '\(name)' has shape \(s.shape), expected \(t.shape)") }
            t.copy(from: s)
        }
    }
}

/// The only list of methods: adding one is its file plus one line here (or `register` from
/// outside the module). CLI help, specs, tests and the parameter audit read it.
public enum MethodRegistry {
    nonisolated(unsafe) public private(set) static var types: [TuningMethod.Type] = [
        FullFineTuning.self, PromptTuning.self, ResidualPromptTuning.self, DePT.self, DPT.self,
        LoPT1.self, LoPT2.self, LoRA.self, RankProbe.self,
    ]
    public static var names: [String] { types.map { $0.name } }

    /// Adds a method defined outside this module (a plug-in, a test); its name must be new.
    public static func register(_ t: TuningMethod.Type) throws {
        guard !names.contains(t.name) else { throw MethodError("method '\(t.name)' is already registered") }
        types.append(t)
    }

    public static func type(_ name: String) throws -> TuningMethod.Type {
        guard let t = types.first(where: { $0.name == name }) else {
            throw MethodError("unknown method '\(name)'\(didYouMeanMethod(name)); known: \(names.joined(separator: ", "))")
        }
        return t
    }

    public static func make(_ c: MethodConfig, backbone: Backbone, key: RNGKey) throws -> TuningMethod {
        try type(c.method).init(config: c, backbone: backbone, key: key.derive("method/\(c.method)"))
    }

    public static func parameterCount(_ c: MethodConfig, architecture: ModelConfig) throws -> Int {
        try type(c.method).parameterCount(c, architecture: architecture)
    }

    /// `TuningMethod.frozenParameterCount` of `c`'s method.
    public static func frozenParameterCount(_ c: MethodConfig, architecture: ModelConfig) throws -> Int {
        try type(c.method).frozenParameterCount(c, architecture: architecture)
    }
}

extension ModelConfig {
    public var dModel: Int {
        switch self {
        case .t5(let c): return c.dModel
        case .gpt2(let c): return c.nEmbd
        }
    }
}

// MARK: shared initialisers

/// Rows of the embedding table: Google/Lester "sampled vocab" (first 5000 rows without
/// replacement) or ResPT's rule (any row, with replacement).
func vocabRows(_ table: Tensor, n: Int, key: RNGKey, respt: Bool) -> Tensor {
    let (v, d) = (table.shape[0], table.shape[1])
    var stream = PhiloxStream(key)
    var rows: [Int]
    if respt {
        rows = (0..<n).map { _ in stream.nextInt(below: v) }
    } else {
        let pop = min(5000, v)
        if n <= pop {
            rows = Array(stream.permutation(pop).prefix(n))
        } else {
            rows = (0..<n).map { _ in stream.nextInt(below: pop) }
        }
    }
    let out = Tensor(zeros: [n, d])
    for (i, r) in rows.enumerated() { (out.data + i * d).update(from: table.data + r * d, count: d) }
    return out
}

/// The n×d prompt table of a method whose prompt is a plain table (PT, Residual PT, DePT's P), by
/// its `init` (`default` = `defaultRule`):
/// * `sampled-vocab` (Google/Lester: rows of the first 5000 ids without replacement), `respt-vocab`
///   (ResPT code: any row, with replacement), `uniform` U[−0.5, 0.5], `normal` N(0, 1);
/// * `text:<string>` (PEFT's TEXT init, DePT's code default): the embedding rows of the text's
///   tokens, cycled or cut to n; `labels` (Lester et al.): the same for the class-label words. Both
///   need `initTokens` (the trainer fills it from the tokenizer).
func promptTable(_ c: MethodConfig, rows n: Int, backbone: Backbone, key: RNGKey, method: String, defaultRule: String) throws -> Tensor {
    let table = backbone.inputEmbeddings, d = backbone.dModel
    let rule = c.initialization == "default" ? defaultRule : c.initialization
    switch rule {
    case "sampled-vocab": return vocabRows(table, n: n, key: key.derive("prompt"), respt: false)
    case "respt-vocab": return vocabRows(table, n: n, key: key.derive("prompt"), respt: true)
    case "uniform": return Tensor.uniform([n, d], lo: -0.5, hi: 0.5, key: key.derive("prompt"))
    case "normal": return Tensor.normal([n, d], key: key.derive("prompt"))
    case let s where s.hasPrefix("text:") || s == "labels":
        guard let ids = c.initTokens, !ids.isEmpty else {
            throw MethodError("\(method): init '\(s)' needs the token ids of its text (init_tokens; `train` tokenizes it with the model's tokenizer)")
        }
        let v = table.shape[0]
        if let bad = ids.first(where: { $0 < 0 || Int($0) >= v }) { throw MethodError("\(method): init token id \(bad) outside the \(v)-row embedding table") }
        let out = Tensor(zeros: [n, d])
        for i in 0..<n { (out.data + i * d).update(from: table.data + Int(ids[i % ids.count]) * d, count: d) }
        return out
    default:
        throw MethodError("\(method): unknown init '\(c.initialization)' (\(MethodConfig.tableInitRules.joined(separator: ", ")))")
    }
}

/// Refuses an `init` a factorised prompt cannot take (text/labels rows have no rank-r factors).
func refuseTableInit(_ c: MethodConfig, method: String, allowed: [String]) throws {
    if c.initialization.hasPrefix("text:") || c.initialization == "labels" {
        throw MethodError("\(method): init '\(c.initialization)' sets a full prompt table, which a factorised prompt (rank \(c.r)) cannot hold exactly; use pt, respt or dept, or --init-from a run artifact")
    }
    guard allowed.contains(c.initialization) else {
        throw MethodError("\(method): unknown init '\(c.initialization)' (\(allowed.joined(separator: ", ")))")
    }
}

/// PyTorch's Linear / kaiming_uniform(a = √5) default: U(−1/√fan_in, 1/√fan_in).
func kaimingUniform(_ shape: [Int], fanIn: Int, key: RNGKey) -> Tensor {
    let b = 1 / Float(fanIn).squareRoot()
    return Tensor.uniform(shape, lo: -b, hi: b, key: key)
}

func trainableLeaf(_ t: Tensor, _ name: String) -> Tensor {
    t.requiresGrad = true
    t.name = name
    return t
}
