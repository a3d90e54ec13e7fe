import ArgumentParser
import Foundation
import Methods
import Tasks
import Training

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train and evaluate one method on one task; prints the result JSON.",
        discussion: """
        Presets (--protocol) set every hyper-parameter of METHODS.md: dpt-paper (default for pt/respt/dpt/lora/probe),
        lopt-paper (lopt1/lopt2), dept-code (dept), respt-code, ft-respt-code (ft). Any flag overrides the preset.
        The few-shot sample comes from Baselines/manifests/<task>-k<k>-s<seed>.json, so every method sees the same rows.
        MODEL is a directory, a hub id in the local HF cache, or embedded:t5-tiny / embedded:gpt2-tiny (smoke only).
        """)
    @Option(help: "Method: \(MethodRegistry.names.joined(separator: ", ")).") var method: String
    @Option(help: "Task: \(TaskRegistry.names.joined(separator: ", ")).") var task: String
    @Option(help: "Model directory, hub id, or embedded:NAME.") var model: String = "embedded:t5-tiny"
    @Option(help: "Few-shot sample size (omit for the full training split).") var k: Int?
    @Option(help: "Seed (few-shot sample, init, shuffling, dropout).") var seed: Int = 1
    @Option(name: .customLong("protocol"), help: "Preset: \(TrainConfig.protocols.joined(separator: ", ")).") var protocolName: String?
    @Option(help: "Templates: dpt, dept, respt, lopt.") var templates: String?
    @Option var epochs: Int?
    @Option(help: "Stop after this many optimizer steps.") var maxSteps: Int?
    @Option var batchSize: Int?
    @Option var evalBatchSize: Int?
    @Option var lr: Float?
    @Option(help: "Learning rate of DePT's A/B group.") var lrSecondary: Float?
    @Option var weightDecay: Float?
    @Option(help: "adamw-torch, adamw-hf, adafactor.") var optimizer: String?
    @Option(help: "constant, constant-warmup, linear.") var schedule: String?
    @Option var warmupSteps: Int?
    @Option(help: "Global gradient-norm clip (0 disables).") var clip: Float?
    @Option(help: "Backbone dropout on (true) or off (false).") var dropout: Bool?
    @Option var maxSourceLength: Int?
    @Option var maxTargetLength: Int?
    @Option(help: "Greedy decoding cap (default: max target length).") var decodeMaxTokens: Int?
    @Option(help: "Evaluate every E epochs.") var evalEvery: Int?
    @Option(help: "Evaluate on the first N validation examples only (smoke).") var evalLimit: Int?
    @Option(help: "Prompt length n.") var n: Int?
    @Option(help: "Rank r.") var r: Int?
    @Option(help: "ResPT bottleneck / DePT prompt length m.") var m: Int?
    @Option(help: "Method init (pt: sampled-vocab, respt-vocab, uniform, normal; dpt: uniform, normal).") var initialization: String?
    @Option(help: "Data directory (default: PROMPTREPRO_DATA or data/).") var dataDir: String?
    @Option(help: "Checkpoint file (safetensors) to resume from and update every epoch.") var checkpoint: String?
    @Option(help: "Write the result JSON here as well as to stdout.") var out: String?
    @Flag(help: "Accept data files that differ from Baselines/data.lock.") var allowUnpinned = false
    @OptionGroup var global: GlobalOptions

    func run() throws {
        var mc = try MethodConfig.defaults(method)
        if let n { mc.n = n }
        if let r { mc.r = r }
        if let m { mc.m = m }
        if let initialization { mc.initialization = initialization }
        var c = try TrainConfig.preset(protocolName ?? TrainConfig.defaultProtocol(for: method), method: mc, task: task, model: model,
                                       k: k, seed: seed)
        if let templates {
            guard let t = TemplateSet(rawValue: templates) else { throw ValidationError("unknown templates '\(templates)'") }
            c.templates = t
        }
        if let epochs { c.epochs = epochs }
        c.maxSteps = maxSteps ?? c.maxSteps
        if let batchSize { c.batchSize = batchSize }
        if let evalBatchSize { c.evalBatchSize = evalBatchSize }
        if let lr { c.lr = lr }
        if let lrSecondary { c.lrSecondary = lrSecondary }
        if let weightDecay { c.weightDecay = weightDecay }
        if let optimizer {
            guard let o = OptimizerKind(rawValue: optimizer) else { throw ValidationError("unknown optimizer '\(optimizer)'") }
            c.optimizer = o
        }
        if let schedule {
            guard let s = Schedule(rawValue: schedule) else { throw ValidationError("unknown schedule '\(schedule)'") }
            c.schedule = s
        }
        if let warmupSteps { c.warmupSteps = warmupSteps }
        if let clip { c.clipNorm = clip > 0 ? clip : nil }
        if let dropout { c.backboneDropout = dropout }
        if let maxSourceLength { c.maxSourceLength = maxSourceLength }
        if let maxTargetLength { c.maxTargetLength = maxTargetLength }
        if let decodeMaxTokens { c.decodeMaxTokens = decodeMaxTokens }
        if let evalEvery { c.evalEvery = evalEvery }
        if let evalLimit { c.evalLimit = evalLimit }
        c.threads = global.threads
        let trainer = Trainer(config: c, dataDir: try DataFiles.directory(dataDir), checkpoint: checkpoint) { line in
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
        trainer.allowUnpinned = allowUnpinned
        if model.hasPrefix("embedded:") {
            FileHandle.standardError.write(Data("note: \(model) is the embedded smoke backbone (random weights): results are a smoke test, not a reproduction\n".utf8))
        }
        var result = try trainer.run()
        result.predictions = nil
        if let out { try result.json.write(toFile: out, atomically: true, encoding: .utf8) }
        print(result.json)
        if result.status == "diverged" { throw ExitCode(3) }
    }
}
