// Every hyper-parameter of a run, with the papers' presets by name (METHODS §2). Any field can be
// overridden after a preset is applied; the full config is stored with each run.
import Foundation
import Methods
import Models
import Tasks
import Tensor

public struct TrainConfig: Codable, Equatable, Sendable {
    public var protocolName: String
    public var method: MethodConfig
    public var task: String
    public var templates: TemplateSet
    public var model: String
    public var k: Int?                 // few-shot size (nil: the full training split)
    public var seed: Int
    public var epochs: Int
    public var maxSteps: Int?
    public var batchSize: Int
    public var evalBatchSize: Int
    public var optimizer: OptimizerKind
    public var lr: Float
    public var lrSecondary: Float?     // DePT A/B group
    public var weightDecay: Float
    public var eps: Double
    /// Adam β1, β2 (nil: 0.9, 0.999, every paper's setting).
    public var beta1: Double?
    public var beta2: Double?
    public var schedule: Schedule
    public var warmupRatio: Float
    public var warmupSteps: Int?
    public var clipNorm: Float?
    public var backboneDropout: Bool   // model.train() in DPT/DePT/ResPT; off in PEZ/LoPT
    public var dropoutRate: Float
    public var maxSourceLength: Int
    public var maxTargetLength: Int
    public var decodeMaxTokens: DecodeLimit?   // nil: maxTargetLength
    /// When greedy decoding ends a row (nil: `.noLabel`, which gives the scores of the papers'
    /// `.eos` decoding; it is not encoded, so run identities are unchanged).
    public var decodeStop: DecodeStop?
    public var evalEvery: Int          // epochs
    public var evalLimit: Int?         // cap on validation examples (smoke profile)
    public var threads: Int?
    /// Initial values of the method's trainable tensors: "<path>#sha256:<hex>" of a safetensors file
    /// (`train --init-from`); nil: the method's own initialisation.
    public var initFrom: String?
    /// A PEFT adapter evaluated instead of a trained method (`eval --adapter`):
    /// "<path>#sha256:<hex of adapter_model.safetensors>#adapter_config:<hex of adapter_config.json>"
    /// (before 2026-12-06 without the config's part).
    public var adapter: String?
    /// The file or directory `initFrom` names, without its "#sha256:…" part (nil: none).
    public var initFromPath: String? { initFrom.map(TrainConfig.pathPart) }
    /// The directory `adapter` names, without its "#sha256:…#adapter_config:…" part (nil: none).
    public var adapterPath: String? { adapter.map(TrainConfig.pathPart) }
    /// `s` up to its last "#sha256:": the path of an `initFrom` or `adapter` value. A path may hold
    /// "#" itself (`runs#2/adapter`), which splitting at the first "#" cut short.
    public static func pathPart(_ s: String) -> String {
        s.range(of: "#sha256:", options: .backwards).map { String(s[..<$0.lowerBound]) } ?? s
    }
    /// Protocol variants (issue #20, docs/protocol.md); nil is the papers' setting and is not
    /// encoded, so configs (and run identities) of the papers' protocol are unchanged.
    /// Seed of the few-shot sample (nil: `seed`, as the papers do).
    public var sampleSeed: Int?
    /// Few-shot sampler (nil: uniform).
    public var sampler: SamplerKind?
    /// Where the best epoch is selected (nil: the reported validation split).
    public var selectOn: SelectionSplit?
    /// Size of the train-dev set for `selectOn == .trainDev` (nil: k, or 1000 rows without k, as DePT).
    public var kDev: Int?
    /// How T5 predictions are read (nil: greedy generation).
    public var evalMode: EvalMode?
    /// The metric that picks the best epoch (nil: the task's `selection_metric`); one of the task's
    /// metrics. DePT's code selects CB on macro-F1 (METHODS §6.10), which its preset sets.
    public var selectionMetric: String?

    /// What of this config the task cannot run, nil when it can (checked when a spec expands and
    /// when a run starts): a `selection_metric` that is not one of the task's metrics, or a
    /// template whose target names the label on a training pool filtered to one label (WSC's
    /// label-1 rows with DePT's "0"/"1" set: one constant target), unless nothing trains.
    public func taskProblem() throws -> String? {
        let def = try TaskRegistry.definition(task)
        if let m = selectionMetric, !def.metricNames.contains(m) {
            return "selection_metric '\(m)': not a metric of \(task) (\(def.metricNames.joined(separator: ", ")))"
        }
        if def.trainFilter == "label_true", adapter == nil, maxSteps != 0, let t = try? def.template(templates), t.target.contains("{label") {
            return "\(task) with template set '\(templates.rawValue)': its target names the label (\(t.target)), but \(task)'s training rows are filtered to label 1 (DPT's filter, for the referent-generating sets), so every training target would be the same. DePT's \(task) trains on all examples (METHODS §4.1), which PromptRepro's sample pool does not give yet; use the dpt, respt or lopt set (--templates)"
        }
        return nil
    }

    /// `selectionMetric`, nil where it names the task's own selection metric (written out, the
    /// default must not give the run another identity or a protocol label).
    public func normalizedSelectionMetric() throws -> String? {
        guard let m = selectionMetric else { return nil }
        return m == (try TaskRegistry.definition(task)).selectionMetric ? nil : m
    }

    /// The few-shot sample's seed.
    public var effectiveSampleSeed: Int { sampleSeed ?? seed }

    /// The manifest this run's sample is read from (`Manifest.fileName`), nil for the full training split.
    public var manifestFileName: String? {
        k.map { Manifest.fileName(task: task, k: $0, seed: effectiveSampleSeed, sampler: sampler ?? .uniform) }
    }

    enum CodingKeys: String, CodingKey {
        case protocolName = "protocol", method, task, templates, model, k, seed, epochs, maxSteps = "max_steps"
        case batchSize = "batch_size", evalBatchSize = "eval_batch_size", optimizer, lr, lrSecondary = "lr_secondary"
        case weightDecay = "weight_decay", eps, beta1 = "beta1", beta2 = "beta2", schedule, warmupRatio = "warmup_ratio", warmupSteps = "warmup_steps"
        case clipNorm = "clip_norm", backboneDropout = "backbone_dropout", dropoutRate = "dropout_rate"
        case maxSourceLength = "max_source_length", maxTargetLength = "max_target_length"
        case decodeMaxTokens = "decode_max_tokens", decodeStop = "decode_stop", evalEvery = "eval_every", evalLimit = "eval_limit", threads
        case initFrom = "init_from", adapter
        case sampleSeed = "sample_seed", sampler, selectOn = "select_on", kDev = "k_dev", evalMode = "eval_mode"
        case selectionMetric = "selection_metric"
    }

    /// Every key a spec may override (the JSON names).
    public static let keys = ["protocol", "templates", "model", "k", "seed", "epochs", "max_steps", "batch_size", "eval_batch_size",
                              "optimizer", "lr", "lr_secondary", "weight_decay", "eps", "beta1", "beta2", "schedule", "warmup_ratio", "warmup_steps",
                              "clip_norm", "backbone_dropout", "dropout_rate", "max_source_length", "max_target_length",
                              "decode_max_tokens", "decode_stop", "eval_every", "eval_limit", "threads",
                              "sample_seed", "sampler", "select_on", "k_dev", "eval_mode", "selection_metric"]

    public static let protocols = ["dpt-paper", "lopt-paper", "respt-code", "dept-code", "ft-respt-code", "lora-paper"]

    /// ResPT's `task_to_target_len` (METHODS §2.3), by PromptRepro's task names.
    public static let resptTargetLength = ["boolq": 2, "cb": 5, "copa": 2, "multirc": 5, "record": 10, "wic": 2, "wsc": 3,
                                           "rte": 5, "sst2": 2, "agnews": 2]

    /// Rows a method puts before the input: its `n` where it reads one (prompt methods), else its
    /// `m` (DePT's prompt length), else 0 (FT, LoRA).
    public static func promptRows(_ m: MethodConfig) -> Int {
        guard let keys = try? MethodRegistry.type(m.method).configKeys else { return 0 }
        return keys.contains("n") ? m.n : keys.contains("m") ? m.m : 0
    }

    /// A preset (METHODS §2) for `method` on `task`.
    public static func preset(_ name: String, method: MethodConfig, task: String, model: String, k: Int?, seed: Int) throws -> TrainConfig {
        var c = TrainConfig(protocolName: name, method: method, task: task, templates: .dpt, model: model, k: k, seed: seed,
                            epochs: 100, maxSteps: nil, batchSize: 16, evalBatchSize: 128, optimizer: .adamwTorch, lr: 0.3,
                            lrSecondary: nil, weightDecay: 1e-5, eps: 1e-8, schedule: .linear, warmupRatio: 0.1, warmupSteps: nil,
                            clipNorm: 1.0, backboneDropout: true, dropoutRate: 0.1, maxSourceLength: 256, maxTargetLength: 128,
                            decodeMaxTokens: nil, evalEvery: 1, evalLimit: nil, threads: nil)
        switch name {
        case "dpt-paper":
            break  // AdamW (torch) lr 0.3, wd 1e-5, warmup 10 % + linear decay, clip 1.0, 100 epochs, batch 16 (README)
        case "lopt-paper":
            // PEZ's fill-in-the-blank templates with word answers ("{sentence}. It was" →
            // negative/positive) are GPT-2's (LoPT Table 1, METHODS §2.6). On T5 (LoPT Table 2)
            // SST-2 and AG News take the T5 format every other method of the table uses
            // ("sentence: …" → "0"/"1", METHODS §4.1); the lopt set of the SuperGLUE tasks is that
            // format already.
            c.templates = ["sst2", "agnews"].contains(task) && !ModelFiles.isGPT2(model) ? .dpt : .lopt
            c.optimizer = .adafactor
            c.schedule = .constant
            c.warmupRatio = 0
            c.weightDecay = 0
            c.backboneDropout = false
            c.batchSize = ["sst2", "agnews"].contains(task) ? 16 : 8
            c.maxSourceLength = task == "sst2" ? 128 : 256
            c.epochs = 30
        case "respt-code":
            c.templates = .respt
            c.optimizer = .adamwHF
            c.schedule = .constant
            c.warmupRatio = 0
            c.clipNorm = nil
            c.batchSize = 8
            c.epochs = 20
            // ResPT's code cuts [prompt; text] to seq_len 512 (`[:, :self.seq_len]`), so the text
            // keeps 512 − n tokens (here with its </s> last; its slice drops that </s> from a text
            // that long), and it tokenizes targets to, and decodes up to, a per-task length
            // (`task_to_target_len`; `generate(max_length=…)` counts the decoder's start token).
            c.maxSourceLength = 512 - promptRows(method)
            if let len = resptTargetLength[task] {
                c.maxTargetLength = len
                c.decodeMaxTokens = .tokens(max(1, len - 1))
            }
        case "dept-code":
            c.templates = .dept
            c.optimizer = .adamwHF
            c.eps = 1e-6
            c.weightDecay = 0
            // (A/B's own lr: deptLRSecondary, set below for DePT under every preset.)
            // DePT's code warms up for 500 steps of its max_steps; the harness trains DePT for the
            // epochs of the other methods (METHODS §2.4 "Harness"), so the warm-up keeps that share:
            // 500 of the max_steps of DePT's own runs of these tasks (../shared/models/dept-reference
            // output.log: 30,000 for RTE, SST-2, BoolQ, CB and MultiRC, 20,000 for WiC and WSC;
            // 30,000 assumed for the others, which it has no runs of). Floored, as the harness
            // floors every warm-up ratio (DPT's `int(0.1 * total)`): a run of fewer than 60 steps
            // (WiC, WSC: 40) has none. (A fixed 500 left a few-shot run's learning rate at 4–20 %
            // of its peak: CB k = 32 at batch 32 has 20–100 steps.)
            c.warmupRatio = 500.0 / (["wic", "wsc"].contains(task) ? 20_000 : 30_000)
            c.batchSize = 32
            // DePT's code generates up to Seq2SeqTrainer's generation_max_length, 20 by default
            // (train.py's DynamicTrainingArguments; its README's runs pass none), and
            // `generate(max_length)` counts the decoder's start token: 19 new tokens at most. It
            // tokenizes targets to the task's longest label (`get_max_target_length`), 20 where the
            // task has no label list (ReCoRD): on label tasks every label is shorter than 20.
            c.maxTargetLength = 20
            c.decodeMaxTokens = .tokens(19)
            // DePT's code keeps the checkpoint of the best macro-F1 on CB (METHODS §6.10), the
            // first of its CB metrics; the reported columns stay the task's (accuracy, macro-F1).
            if task == "cb" { c.selectionMetric = "macro_f1" }
        case "ft-respt-code":
            // METHODS §2.1 "Harness recommendation": ResPT's optimizer (transformers AdamW lr 3e-4,
            // eps 1e-8, wd 1e-5, no schedule, no clipping) with the prompt methods' batch, epochs,
            // input length and evaluation protocol (batch 16, 100 epochs, 256 tokens), not ResPT's
            // batch 4, 50 epochs and 512 tokens.
            c.optimizer = .adamwHF
            c.lr = 3e-4
            c.schedule = .constant
            c.warmupRatio = 0
            c.clipNorm = nil
        case "lora-paper":
            // LoRA (Hu et al. 2021), GLUE with RoBERTa-base (its Table 9 and the repository's
            // examples/NLU scripts): AdamW lr 5e-4, weight decay 0.1, linear decay after a 6 % warm-up,
            // r 8 and alpha 8 (the method's defaults); batch, epochs and data as dpt-paper. Neither paper
            // trains LoRA itself (LoPT Table 2 cites it); dpt-paper's lr 0.3 is a prompt's learning rate.
            c.lr = 5e-4
            c.weightDecay = 0.1
            c.warmupRatio = 0.06
        default:
            throw TaskError(file: "--protocol \(name)", detail: "unknown protocol; known: \(protocols.joined(separator: ", "))")
        }
        // DePT's A and B train at their own rate under every preset (METHODS §2.4 "Harness": one
        // A/B rate from DePT's README grid, 5e-3, kept fixed). Presets other than dept-code left it
        // unset and A/B trained at the prompt's lr (0.3, 60× higher), DePT on GPT-2 included.
        if c.lrSecondary == nil, (try? MethodRegistry.type(method.method))?.hasSecondaryGroup == true { c.lrSecondary = deptLRSecondary }
        return c
    }

    /// DePT's A/B learning rate when no preset, spec or flag sets one (METHODS §2.4: from its README
    /// grid {5e-3, 3e-1, 5e-4}).
    public static let deptLRSecondary: Float = 5e-3

    /// The config `train` starts from when no `--protocol` is given. T5: the method's own preset
    /// (`defaultProtocol(for:)`). GPT-2, LoPT Table 1's backbone: prompt methods run lopt-paper;
    /// full fine-tuning and LoRA, which neither paper trains on GPT-2, keep their own preset's
    /// optimizer settings (Adafactor at lr 0.3 is a prompt learning rate: a GPT-2 FT run under it
    /// diverged within 4 steps) and take lopt-paper's verbaliser templates, batch size, input length,
    /// epochs and backbone dropout.
    public static func defaultPreset(method: MethodConfig, task: String, model: String, k: Int?, seed: Int, gpt2: Bool) throws -> TrainConfig {
        let own = defaultProtocol(for: method.method)
        guard gpt2 else { return try preset(own, method: method, task: task, model: model, k: k, seed: seed) }
        let lopt = try preset("lopt-paper", method: method, task: task, model: model, k: k, seed: seed)
        guard ["ft-respt-code", "lora-paper"].contains(own) else { return lopt }
        var c = try preset(own, method: method, task: task, model: model, k: k, seed: seed)
        c.templates = lopt.templates
        c.batchSize = lopt.batchSize
        c.maxSourceLength = lopt.maxSourceLength
        c.epochs = lopt.epochs
        c.backboneDropout = lopt.backboneDropout
        return c
    }

    /// The protocol a method uses by default in the papers' comparisons.
    public static func defaultProtocol(for method: String) -> String {
        (try? MethodRegistry.type(method).defaultProtocol) ?? "dpt-paper"
    }

    /// The protocol variants this config uses, in words for tables ("selection: train-dev (k_dev
    /// 8); eval: rank"); nil under the papers' protocol.
    public var variantLabel: String? {
        var parts: [String] = []
        switch selectOn ?? .validation {
        case .validation: break
        // Without k_dev or k (the full training split) the trainer holds out min(1000, N/2) of the
        // N training rows, which the config does not know (the run metric selection_examples has it).
        case .trainDev: parts.append("selection: train-dev (k_dev \(kDev.map(String.init) ?? k.map(String.init) ?? "min(1000, N/2) of the N training rows"))")
        case .valHalf: parts.append("selection: val-half (reported: the other half)")
        }
        if let e = evalMode, e != .generate { parts.append("eval: \(e.rawValue)") }
        if let m = selectionMetric { parts.append("\(task): best epoch by \(m)") }
        if let s = sampler, s != .uniform { parts.append("sampler: \(s.rawValue)") }
        if sampleSeed != nil { parts.append("sample seeds crossed with seeds") }
        return parts.isEmpty ? nil : parts.joined(separator: "; ")
    }

    /// The settings outside their range, one line each ("batch_size must be ≥ 1, got 0"); empty
    /// when every value is usable. Spec expansion and `train` refuse a config with any, so that no
    /// run starts (and no worker crashes, or stores an empty result as done) on such a value.
    public var problems: [String] {
        var out: [String] = []
        func atLeast(_ name: String, _ v: Int?, _ min: Int) { if let v, v < min { out.append("\(name) must be ≥ \(min), got \(v)") } }
        atLeast("epochs", epochs, 1)
        atLeast("max_steps", maxSteps, 0)  // 0: evaluate the initial state only
        atLeast("batch_size", batchSize, 1)
        atLeast("eval_batch_size", evalBatchSize, 1)
        atLeast("eval_every", evalEvery, 1)
        atLeast("eval_limit", evalLimit, 1)
        atLeast("max_source_length", maxSourceLength, 1)
        atLeast("max_target_length", maxTargetLength, 1)
        atLeast("warmup_steps", warmupSteps, 0)
        atLeast("k", k, 1)
        // Seeds key counter-based streams as unsigned integers (a negative one trapped).
        atLeast("seed", seed, 0)
        atLeast("sample_seed", sampleSeed, 0)
        atLeast("k_dev", kDev, 1)
        atLeast("threads", threads, 1)
        // The process runs at most `Parallel.maxThreads`: a larger count was recorded while 256 ran.
        if let t = threads, t > Parallel.maxThreads { out.append("threads must be ≤ \(Parallel.maxThreads) (the thread pool's size), got \(t)") }
        if case .tokens(let n)? = decodeMaxTokens, n < 1 { out.append("decode_max_tokens must be ≥ 1 or auto, got \(n)") }
        if !(lr >= 0) || !lr.isFinite { out.append("lr must be a finite number ≥ 0, got \(lr)") }
        if let l = lrSecondary, !(l >= 0) || !l.isFinite { out.append("lr_secondary must be a finite number ≥ 0, got \(l)") }
        if !(weightDecay >= 0) { out.append("weight_decay must be ≥ 0, got \(weightDecay)") }
        if !(eps > 0) { out.append("eps must be > 0, got \(eps)") }
        for (name, b) in [("beta1", beta1), ("beta2", beta2)] { if let b, !(0..<1).contains(b) { out.append("\(name) must be in [0, 1), got \(b)") } }
        if !(0...1).contains(warmupRatio) { out.append("warmup_ratio must be in [0, 1], got \(warmupRatio)") }
        if !(0..<1).contains(dropoutRate) { out.append("dropout_rate must be in [0, 1), got \(dropoutRate)") }
        if let c = clipNorm, !(c > 0) { out.append("clip_norm must be > 0 (or null: no clipping), got \(c)") }
        // The method's sizes (prompt length n, rank r, ResPT bottleneck m, DePT positions s) and dropout.
        atLeast("n", method.n, 1)
        atLeast("r", method.r, 1)
        atLeast("m", method.m, 1)
        atLeast("s", method.s, 1)
        // DePT adds its low-rank update to each of the first s input positions: inputs may not be longer.
        if method.method == "dept", method.s >= 1, method.s < maxSourceLength {
            out.append("s must be ≥ max_source_length (\(maxSourceLength)), got \(method.s): DePT's update covers every input position")
        }
        if !(0..<1).contains(method.dropout) { out.append("dropout must be in [0, 1), got \(method.dropout)") }
        if !method.alpha.isFinite { out.append("alpha must be finite, got \(method.alpha)") }
        return out
    }

    public var json: String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return String(decoding: (try? e.encode(self)) ?? Data(), as: UTF8.self)
    }
}

/// Greedy decoding cap (`decode_max_tokens`, new tokens per row): a number, or `auto` (opt-in): the
/// longest label target of the evaluated examples in tokens (</s> included) + 1, never more than
/// `max_target_length`. `auto` changes a prediction only for a row that has not ended (</s>) within
/// the cap and whose later tokens add visible text (docs/performance.md, "End to end").
public enum DecodeLimit: Codable, Equatable, Sendable, ExpressibleByIntegerLiteral, CustomStringConvertible {
    case tokens(Int)
    case auto

    public init(integerLiteral value: Int) { self = .tokens(value) }

    /// "auto" or a positive integer; nil otherwise.
    public init?(text: String) {
        if text == "auto" { self = .auto } else if let n = Int(text), n > 0 { self = .tokens(n) } else { return nil }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let n = try? c.decode(Int.self) { self = .tokens(n); return }
        if let s = try? c.decode(String.self), s == "auto" { self = .auto; return }
        throw DecodingError.dataCorruptedError(in: c, debugDescription: "decode_max_tokens must be a positive integer or \"auto\"")
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .tokens(let n): try c.encode(n)
        case .auto: try c.encode("auto")
        }
    }

    public var description: String {
        switch self { case .tokens(let n): return "\(n)"; case .auto: return "auto" }
    }
}
