import ArgumentParser
import Foundation
import Methods
import Models
import Support
import Tasks
import Training

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train and evaluate one method on one task; prints the result JSON.",
        discussion: """
        Presets (--protocol) set the training hyper-parameters of METHODS.md: dpt-paper (default for pt/respt/dpt/probe on T5),
        lopt-paper (lopt1/lopt2, and every prompt method on GPT-2), dept-code (dept), respt-code, ft-respt-code (ft), lora-paper (lora:
        Hu et al. 2021's AdamW lr 5e-4, weight decay 0.1, 6 % warm-up). On GPT-2, ft and lora keep their own optimizer settings with
        lopt-paper's templates, batch size, input length and epochs. Any flag overrides the preset. Method sizes (--n, --r, ...) are the
        method's defaults, not the preset's: LoPT Table 1 on GPT-2 uses --n 10 --r 2 (Baselines/specs/lopt-table1.yaml).
        The few-shot sample comes from Baselines/manifests/<task>-k<k>-s<seed>.json, so every method sees the same rows.
        MODEL is a directory, a hub id in the local HF cache, or embedded:t5-tiny / embedded:gpt2-tiny (smoke only).
        """)
    @Option(help: "Method: \(MethodRegistry.names.joined(separator: ", ")).") var method: String
    @Option(help: "Task: \(TaskRegistry.names.joined(separator: ", ")).") var task: String
    @Option(help: "Model directory, hub id, or embedded:NAME.") var model: String = "embedded:t5-tiny"
    @Option(parsing: .unconditional, help: "Few-shot sample size (omit for the full training split).") var k: Int?
    @Option(parsing: .unconditional, help: "Seed (few-shot sample, init, shuffling, dropout).") var seed: Int = 1
    @Option(name: .customLong("protocol"), help: "Preset: \(TrainConfig.protocols.joined(separator: ", ")).") var protocolName: String?
    @Option(help: "Templates: dpt, dept, respt, lopt.") var templates: String?
    @Option(parsing: .unconditional) var epochs: Int?
    @Option(parsing: .unconditional, help: "Stop after this many optimizer steps (0: evaluate the initial state only).") var maxSteps: Int?
    @Option(parsing: .unconditional) var batchSize: Int?
    @Option(parsing: .unconditional) var evalBatchSize: Int?
    @Option(parsing: .unconditional) var lr: Float?
    @Option(parsing: .unconditional, help: "Learning rate of DePT's A/B group.") var lrSecondary: Float?
    @Option(parsing: .unconditional) var weightDecay: Float?
    @Option(help: "adamw-torch, adamw-hf, adafactor.") var optimizer: String?
    @Option(help: "constant, constant-warmup, linear.") var schedule: String?
    @Option(parsing: .unconditional) var warmupSteps: Int?
    @Option(parsing: .unconditional, help: "Global gradient-norm clip (0 disables).") var clip: Float?
    @Option(help: "Backbone dropout on (true) or off (false).") var dropout: Bool?
    @Option(parsing: .unconditional) var maxSourceLength: Int?
    @Option(parsing: .unconditional) var maxTargetLength: Int?
    @Option(parsing: .unconditional, help: "Greedy decoding cap in new tokens, or auto (opt-in): the longest label target in tokens + 1 (default: max target length; under dept-code 19, as DePT's code decodes: raise it with max target length).") var decodeMaxTokens: DecodeLimit?
    @Option(parsing: .unconditional, help: "Evaluate every E epochs.") var evalEvery: Int?
    @Option(parsing: .unconditional, help: "Evaluate on the first N validation examples only (smoke), ending at the last whole MultiRC question; with --select-on val-half, on the first N of each half (the reported one and the selection one).") var evalLimit: Int?
    @Option(parsing: .unconditional, help: "Prompt length n.") var n: Int?
    @Option(parsing: .unconditional, help: "Rank r.") var r: Int?
    @Option(parsing: .unconditional, help: "ResPT bottleneck / DePT prompt length m.") var m: Int?
    @Option(parsing: .unconditional, help: "DePT max input length s (rows of the position-indexed update A, s×r).") var deptS: Int?
    @Option(parsing: .unconditional, help: "DePT scaling numerator α (ΔE = α/√r · A·B; code default 8).") var deptAlpha: Float?
    @Option(help: "LoRA target modules, comma-separated, PEFT suffix rule (default q,v; on GPT-2 q/k/v map to its fused c_attn, and c_proj matches both the attention's and the MLP's output projection).")
    var loraTargets: String?
    @Option(parsing: .unconditional, help: "LoRA α (update scaled by α/r).") var loraAlpha: Float?
    @Option(parsing: .unconditional, help: "LoRA dropout on the adapter input.") var loraDropout: Float?
    @Option(parsing: .unconditional, help: "Adam/AdamW epsilon (dpt-paper 1e-8, dept-code 1e-6).") var adamEps: Double?
    @Option(parsing: .unconditional, help: "Adam/AdamW β1 (default 0.9).") var adamBeta1: Double?
    @Option(parsing: .unconditional, help: "Adam/AdamW β2 (default 0.999).") var adamBeta2: Double?
    @Option(parsing: .unconditional, help: "Warm-up as a fraction of all steps (used when --warmup-steps is not given).") var warmupRatio: Float?
    @Option(parsing: .unconditional, help: "Backbone dropout probability when dropout is on.") var dropoutRate: Float?
    @Option(help: "Prompt init: pt/respt/dept: sampled-vocab, respt-vocab, uniform, normal, text:<string> (token embeddings of the text, cycled to n; DePT code default), labels (the label words; Lester et al.); dpt: uniform, normal; lopt1/lopt2/probe: uniform. Text and labels are refused for factorised prompts.") var initialization: String?
    @Option(parsing: .unconditional, help: "Seed of the few-shot sample when it differs from --seed (default: --seed, one seed for both).") var sampleSeed: Int?
    @Option(help: "Few-shot sampler: uniform (default; the DPT paper samples without balancing the label distribution) or balanced (k/C per class; remainder to the first classes met along the seed's permutation).")
    var sampler: String?
    @Option(help: "Best-epoch selection: validation (default, as DPT's released code: select and report on it), train-dev (k_dev training rows outside the sample), val-half (DePT: select on one half of validation, report the other).")
    var selectOn: String?
    @Option(parsing: .unconditional, help: "Size of the train-dev set (default: k).") var kDev: Int?
    @Option(help: "T5 predictions: generate (default, as DPT's released code: greedy decoding), rank (argmax summed log-likelihood over the label targets; ReCoRD: passage entities), rank-mean (per-token mean).")
    var evalMode: String?
    @Option(help: "Metric that picks the best epoch: one of the task's metrics (default: the task's selection metric; DePT's preset: macro_f1 on CB, as DePT's code).")
    var selectionMetric: String?
    @Option(help: "When greedy decoding ends a row: no-label (default; at </s> or once the text can no longer be read back as a label: the same scores as eos, invalid outputs kept up to the deciding token) or eos (at </s> or the cap only, as the papers' code).")
    var decodeStop: String?
    @Option(help: "Data directory (default: PROMPTREPRO_DATA or data/).") var dataDir: String?
    @Option(help: "Checkpoint file (safetensors) to resume from and update every epoch.") var checkpoint: String?
    @Option(help: "Initial values of the method's tensors from a safetensors file (names as in run artifacts; see docs/formats.md), or a PEFT PROMPT_TUNING adapter directory (its prompt sets the method's prompt table: prompt transfer).")
    var initFrom: String?
    @Option(help: "Write the result JSON here as well as to stdout.") var out: String?
    @Option(help: "Save the method's final tensors here (safetensors; see docs/formats.md).") var artifact: String?
    @Option(help: "Also write the trained method as a PEFT adapter directory (see export-adapter).") var saveAdapter: String?
    @Flag(help: "Accept data files that differ from Baselines/data.lock.") var allowUnpinned = false
    @OptionGroup var global: GlobalOptions

    func run() throws {
        if saveAdapter != nil, let why = AdapterExport.refusal(method) { throw ValidationError("--save-adapter: \(why)") }
        var mc = try MethodConfig.defaults(method)
        if let n { mc.n = n }
        if let r { mc.r = r }
        if let m { mc.m = m }
        if let initialization { mc.initialization = initialization }
        func only(_ flag: String, _ methods: [String]) throws {
            guard methods.contains(method) else { throw ValidationError("--\(flag) applies to \(methods.joined(separator: "/")), not to --method \(method)") }
        }
        if let deptS { try only("dept-s", ["dept"]); mc.s = deptS }
        if let deptAlpha { try only("dept-alpha", ["dept"]); mc.alpha = deptAlpha }
        if let loraTargets {
            try only("lora-targets", ["lora"])
            mc.targets = loraTargets.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        if let loraAlpha { try only("lora-alpha", ["lora"]); mc.alpha = loraAlpha }
        if let loraDropout {
            try only("lora-dropout", ["lora"])
            guard (0..<1).contains(loraDropout) else { throw ValidationError("--lora-dropout must be in [0, 1), got \(loraDropout)") }
            mc.dropout = loraDropout
        }
        mc = mc.resolvingDefaultInit()
        if let problem = mc.settingsProblem() { throw ValidationError(problem) }
        // GPT-2 is LoPT Table 1's backbone: its default protocol is LoPT's (verbaliser templates, Adafactor).
        let isGPT2 = ModelFiles.isGPT2(model)
        // GPT-2 fuses q, k and v in one c_attn projection: LoRA on any of them trains all three
        // (as PEFT's target "c_attn" does), which a T5 count of the same names does not.
        let fused = Set(mc.targets).intersection(["q", "k", "v"]).count
        if isGPT2, mc.method == "lora", fused == 1 || fused == 2 {
            stderr("note: GPT-2 fuses q, k and v in one projection (c_attn): LoRA targets \(mc.targets.joined(separator: ",")) train all three of them, as PEFT's c_attn target does")
        }
        var c = try protocolName.map { try TrainConfig.preset($0, method: mc, task: task, model: model, k: k, seed: seed) }
            ?? TrainConfig.defaultPreset(method: mc, task: task, model: model, k: k, seed: seed, gpt2: isGPT2)
        if let templates {
            guard let t = TemplateSet(rawValue: templates) else { throw ValidationError("unknown templates '\(templates)' (\(TemplateSet.allCases.map(\.rawValue).joined(separator: ", ")))\(didYouMean(templates, TemplateSet.allCases.map(\.rawValue)))") }
            c.templates = t
        }
        if let epochs { c.epochs = epochs }
        c.maxSteps = maxSteps ?? c.maxSteps
        if let batchSize { c.batchSize = batchSize }
        if let evalBatchSize { c.evalBatchSize = evalBatchSize }
        if let lr { c.lr = lr }
        if !(try MethodRegistry.type(method)).hasSecondaryGroup {
            if lrSecondary != nil { throw ValidationError("--lr-secondary applies to methods with a secondary group (dept: its A and B), not to --method \(method)") }
            c.lrSecondary = nil  // a preset's (dept-code), not read
        }
        if let lrSecondary { c.lrSecondary = lrSecondary }
        if let weightDecay { c.weightDecay = weightDecay }
        if let optimizer {
            guard let o = OptimizerKind(rawValue: optimizer) else { throw ValidationError("unknown optimizer '\(optimizer)' (\(OptimizerKind.allCases.map(\.rawValue).joined(separator: ", ")))\(didYouMean(optimizer, OptimizerKind.allCases.map(\.rawValue)))") }
            c.optimizer = o
        }
        if let schedule {
            guard let s = Schedule(rawValue: schedule) else { throw ValidationError("unknown schedule '\(schedule)' (\(Schedule.allCases.map(\.rawValue).joined(separator: ", ")))\(didYouMean(schedule, Schedule.allCases.map(\.rawValue)))") }
            c.schedule = s
        }
        if let warmupSteps { c.warmupSteps = warmupSteps }
        if let warmupRatio { c.warmupRatio = warmupRatio }
        if let adamEps { c.eps = adamEps }
        if let adamBeta1 { guard (0..<1).contains(adamBeta1) else { throw ValidationError("--adam-beta1 must be in [0, 1)") }; c.beta1 = adamBeta1 }
        if let adamBeta2 { guard (0..<1).contains(adamBeta2) else { throw ValidationError("--adam-beta2 must be in [0, 1)") }; c.beta2 = adamBeta2 }
        if let dropoutRate {
            guard (0..<1).contains(dropoutRate) else { throw ValidationError("--dropout-rate must be in [0, 1), got \(dropoutRate)") }
            c.dropoutRate = dropoutRate
        }
        if let clip { c.clipNorm = clip > 0 ? clip : nil }
        if let dropout { c.backboneDropout = dropout }
        if let maxSourceLength { c.maxSourceLength = maxSourceLength }
        if let maxTargetLength { c.maxTargetLength = maxTargetLength }
        if let decodeMaxTokens { c.decodeMaxTokens = decodeMaxTokens }
        if let evalEvery { c.evalEvery = evalEvery }
        if let evalLimit { c.evalLimit = evalLimit }
        c.threads = global.threads
        c.sampleSeed = sampleSeed
        c.sampler = try sampler.map { try choice("sampler", $0, SamplerKind.self) }
        c.selectOn = try selectOn.map { try choice("select-on", $0, SelectionSplit.self) }
        c.evalMode = try evalMode.map { try choice("eval-mode", $0, EvalMode.self) }
        // GPT-2 ranks the verbaliser's words: an eval mode (also `generate`) or a target length
        // changed only the run's identity, recorded as if it applied.
        if let e = gpt2ScoringFlagsProblem(evalMode: evalMode, maxTargetLength: maxTargetLength, gpt2: isGPT2) { throw e }
        c.decodeStop = try decodeStop.map { try choice("decode-stop", $0, DecodeStop.self) }
        if let selectionMetric {
            c.selectionMetric = selectionMetric
            if let problem = try c.taskProblem() { throw ValidationError(problem) }
            c.selectionMetric = try c.normalizedSelectionMetric()
        }
        if let kDev {
            guard c.selectOn == .trainDev else { throw ValidationError("--k-dev applies to --select-on train-dev") }
            guard kDev > 0 else { throw ValidationError("--k-dev must be positive") }
            c.kDev = kDev
        }
        if let e = flagProblem(c) ?? decodeFlagsProblem(decodeMaxTokens: decodeMaxTokens, decodeStop: decodeStop, mode: c.evalMode, gpt2: isGPT2) { throw e }
        // The files the run writes, checked before it trains (a bad --artifact once failed after training).
        for (flag, path) in [("artifact", artifact), ("checkpoint", checkpoint), ("out", out),
                             ("save-adapter", saveAdapter.map { ($0 as NSString).appendingPathComponent("adapter_config.json") })] {
            if let path, let why = unwritableReason(path) { throw CommandFailure("--\(flag) \(path): \(why); nothing trained") }
        }
        if let initFrom {
            let path = URL(fileURLWithPath: initFrom).standardizedFileURL.path
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw CommandFailure("--init-from \(initFrom): no such file") }
            let hashed = isDir.boolValue ? (path as NSString).appendingPathComponent("adapter_model.safetensors") : path
            c.initFrom = "\(path)#sha256:\(try SHA256.hex(file: hashed))"
        }
        let trainer = Trainer(config: c, dataDir: try DataFiles.directory(dataDir, environmentDir: Environment.dataDir, defaultDir: ProjectRoot.resolve("data")),
                              manifestDir: ProjectRoot.resolve("Baselines/manifests"), checkpoint: checkpoint) { line in
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
        trainer.lockPath = ProjectRoot.resolve("Baselines/data.lock")
        trainer.allowUnpinned = allowUnpinned
        let tmpArtifact = saveAdapter != nil && artifact == nil ? NSTemporaryDirectory() + "promptrepro-artifact-\(getpid()).safetensors" : nil
        trainer.artifactPath = artifact ?? tmpArtifact
        defer { if let tmpArtifact { try? FileManager.default.removeItem(atPath: tmpArtifact) } }
        if model.hasPrefix("embedded:") {
            FileHandle.standardError.write(Data("note: \(model) is the embedded smoke backbone (random weights): results are a smoke test, not a reproduction\n".utf8))
        }
        var result = try trainer.run()
        if let best = result.extras?["invalid_fraction"] {  // also in the JSON's extras
            let last = result.extras?["invalid_fraction_last"].map { String(format: ", last evaluation %.1f%%", 100 * $0) } ?? ""
            FileHandle.standardError.write(Data(String(format: "invalid outputs (name no label): best epoch %.1f%%%@\n", 100 * best, last).utf8))
        }
        result.predictions = nil
        if let out {
            try createParentDirectory(of: out)
            try result.json.write(toFile: out, atomically: true, encoding: .utf8)
        }
        if let saveAdapter, let a = trainer.artifactPath, result.status == .done {
            FileHandle.standardError.write(Data("wrote \(saveAdapter): \(try AdapterExport.export(artifact: a, to: saveAdapter))\n".utf8))
        }
        print(result.json)
        if result.status == .diverged { throw ExitCode(3) }
    }
}

/// The case of `E` named `value` (its raw value), or an error listing the choices of `--flag`.
func choice<E: RawRepresentable & CaseIterable>(_ flag: String, _ value: String, _ type: E.Type) throws -> E where E.RawValue == String {
    if let e = E(rawValue: value) { return e }
    let known = E.allCases.map(\.rawValue)
    throw ValidationError("--\(flag) '\(value)' is not one of \(known.joined(separator: ", "))\(didYouMean(value, known))")
}

extension DecodeLimit: ExpressibleByArgument {
    public init?(argument: String) { self.init(text: argument) }
}

/// `--decode-max-tokens` or `--decode-stop` given while nothing is decoded: the run scores by rank
/// (`mode` the effective eval mode) or is a GPT-2 run (`gpt2`), which ranks the verbaliser's
/// words. The flags changed nothing but the run's identity and were accepted in silence. Nil when
/// they apply or were not given.
func decodeFlagsProblem(decodeMaxTokens: DecodeLimit?, decodeStop: String?, mode: EvalMode?, gpt2: Bool) -> ValidationError? {
    let given = [decodeMaxTokens.map { "--decode-max-tokens \($0)" }, decodeStop.map { "--decode-stop \($0)" }].compactMap { $0 }
    guard !given.isEmpty else { return nil }
    let drop = "drop \(given.count == 1 ? "it" : "them")"
    if gpt2 { return ValidationError("\(given.joined(separator: " and ")): GPT-2 runs rank the verbaliser's words and decode nothing; \(drop)") }
    guard let mode, mode != .generate else { return nil }
    return ValidationError("\(given.joined(separator: " and ")): the eval mode is \(mode.rawValue), which scores the label targets without decoding; \(drop), or decode with --eval-mode generate")
}

/// `--eval-mode` (also `generate`) or `--max-target-length` given for a GPT-2 run (`train`,
/// `eval`), which ranks the verbaliser's words after the input: the flags changed only the run's
/// identity, or were replaced in silence. Nil when they apply or were not given.
func gpt2ScoringFlagsProblem(evalMode: String?, maxTargetLength: Int?, gpt2: Bool) -> ValidationError? {
    guard gpt2, let given = [evalMode.map { "--eval-mode \($0)" }, maxTargetLength.map { "--max-target-length \($0)" }].compactMap({ $0 }).first else { return nil }
    return ValidationError("\(given): GPT-2 runs score the verbaliser's label words after the input (no eval mode, no target sequence); drop it")
}

/// The first of `c.problems` in flag names ("--batch-size must be ≥ 1, got 0"), nil when none.
func flagProblem(_ c: TrainConfig) -> ValidationError? {
    guard let problem = c.problems.first else { return nil }
    let key = String(problem.prefix { $0 != " " })
    let flag = ["s": "dept-s", "dropout": "lora-dropout", "alpha": "lora-alpha", "eps": "adam-eps", "beta1": "adam-beta1", "beta2": "adam-beta2",
                "clip_norm": "clip", "dropout_rate": "dropout-rate"][key] ?? key.replacingOccurrences(of: "_", with: "-")
    return ValidationError("--\(flag)" + problem.dropFirst(key.count))
}
