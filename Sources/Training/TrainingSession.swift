// A run's setup: the backbone and its objective, the method, the pinned data with the few-shot
// manifest, the reported and selection evaluation sets (protocol variants), optimizer groups, the
// schedule's numbers, and the state of a resumed checkpoint. `Trainer.train` consumes it.
import Foundation
import Methods
import Models
import Support
import Tasks
import Tensor

/// Everything the training loop needs, built by `Trainer.prepare()`.
public struct TrainingSession {
    public let config: TrainConfig
    public let def: TaskDefinition
    public let objective: ArchitectureObjective
    public let method: TuningMethod
    public let root: RNGKey
    /// Set for a PEFT adapter trained elsewhere (`eval --adapter`): its parameter count; the run
    /// evaluates once and trains nothing.
    public let adapterParams: Int?
    /// The validation split, and the split the selection set comes from (validation or train).
    public let val: TaskData, selectData: TaskData
    public let trainEx: [Example]
    /// `evalEx` is reported; `selectEx` (nil: `evalEx`, the papers' rule) picks the best epoch.
    public let evalEx: [Example], selectEx: [Example]?
    public let opt: Optimizer
    public let stepsPerEpoch: Int, totalSteps: Int, warmup: Int
    /// The result so far: empty, or the one stored in the resumed checkpoint.
    public var result: TrainResult
    public var step: Int, startEpoch: Int
    public let resumedFrom: String?
    var meter: EfficiencyMeter

    /// Epochs the run takes: the config's, or fewer when `max_steps` ends it early.
    public var plannedEpochs: Int { min(config.epochs, (totalSteps + stepsPerEpoch - 1) / stepsPerEpoch) }

    public var plan: TrainingPlan {
        TrainingPlan(epochs: config.epochs, plannedEpochs: plannedEpochs, stepsPerEpoch: stepsPerEpoch, totalSteps: totalSteps,
                     startEpoch: startEpoch, startStep: step, resumedFrom: resumedFrom, selectionMetric: def.selectionMetric,
                     trainExamples: trainEx.count, evalExamples: evalEx.count)
    }
}

extension Trainer {
    /// Loads and checks everything of a run; trains nothing. Starts the efficiency meter (the
    /// process's peak RSS is measured from here).
    public func prepare() throws -> TrainingSession {
        Parallel.configure(threads: config.threads)
        let meter = EfficiencyMeter()  // Efficiency.swift: peak RSS, step FLOPs, eval seconds → result.extras
        let c = config
        var def = try TaskRegistry.definition(c.task)
        if let problem = try c.taskProblem() { throw TrainError(problem) }
        if let m = c.selectionMetric { def.selectionMetric = m }
        let dir = try ModelFiles.locate(c.model)
        let backbone: Backbone
        switch try ModelConfig.load(path: (dir as NSString).appendingPathComponent("config.json")) {
        case .t5: backbone = try T5Model.load(directory: dir)
        case .gpt2: backbone = try GPT2Model.load(directory: dir)
        }
        let isT5 = backbone is T5Model
        let tok = try Tokenizers.load(directory: dir)
        // A tokenizer of another model (a 32k spiece.model beside a 1302-row embedding) failed
        // mid-run on the first id past the table, naming neither file.
        let tableRows = backbone.inputEmbeddings.shape[0]
        if tok.vocabSize > tableRows {
            throw TrainError("\(Tokenizers.sourceFile(directory: dir) ?? dir): the tokenizer has \(tok.vocabSize) tokens, while the model's embedding table "
                + "(\((dir as NSString).appendingPathComponent("config.json")): vocab_size) has \(tableRows) rows: ids ≥ \(tableRows) have no embedding. "
                + "Is the tokenizer another model's?")
        }
        try TrainingSession.checkSequenceFits(c, architecture: backbone.architecture, configPath: (dir as NSString).appendingPathComponent("config.json"))
        let root = RNGKey(seed: UInt64(c.seed))
        let method: TuningMethod
        var adapterParams: Int?
        if let path = c.adapterPath {
            let a = try PEFTAdapter.load(directory: path,
                                         parameters: backbone.parameters.map { ($0.name, $0.tensor.shape) }, dModel: backbone.dModel,
                                         isT5: isT5)
            backbone.adapters = a.linearAdapters
            method = AdapterMethod(prompt: a.encoderPrompt, inputDelta: a.inputDelta)
            let deptParams = a.inputDelta != nil ? (a.config.maxLength ?? 0) * (a.config.r ?? 0) + (a.config.r ?? 0) * backbone.dModel : 0
            adapterParams = (a.encoderPrompt?.count ?? 0) + (a.decoderPrompt?.count ?? 0) + a.lora.reduce(0) { $0 + $1.a.count + $1.b.count } + deptParams
        } else {
            var mc = c.method
            // `init: default` is the method's own default (DePT's: its code's text init); specs and
            // `train` resolve it already, a config built elsewhere may not.
            mc = mc.resolvingDefaultInit()
            // Text / label-word initialisation: the token ids of the text with this model's tokenizer
            // (T5 appends </s>, as PEFT's TEXT init does), or of the template set's label words.
            if mc.initialization.hasPrefix("text:") || mc.initialization == "labels" {
                let text: String
                if mc.initialization == "labels" {
                    guard let words = try def.template(c.templates).verbalizer(labels: def.labels) else {
                        throw TrainError("init 'labels': task \(c.task) with templates \(c.templates.rawValue) has no label words (its targets are generated text)")
                    }
                    text = words.joined(separator: " ")
                } else {
                    text = String(mc.initialization.dropFirst("text:".count))
                }
                let ids = tok.encode(text)
                guard !ids.isEmpty else { throw TrainError("init '\(mc.initialization)': the text has no tokens") }
                mc.initTokens = ids
            }
            method = try MethodRegistry.make(mc, backbone: backbone, key: root)
        }
        if let path = c.initFromPath { try Trainer.initialize(method, from: path, isT5: isT5) }

        // Data: pinned files, identical few-shot manifest for every method.
        let train = try DataLoader.load(def, split: .train, dataDir: dataDir)
        let val = try DataLoader.load(def, split: .validation, dataDir: dataDir)
        // A run on the full training split (k null: the paper profile) that found only a subset file
        // would train on it and be reported as the full split (AG News: 581 rows for ~120,000).
        if c.k == nil, train.isSubset, c.adapter == nil, c.maxSteps != 0 {
            throw TrainError("\(c.task): the full training split \(def.files.train[0]) is not in \(dataDir) (only the subset \(train.relativePath), \(train.rows.count) rows); a run on the full split (k null) would train on the subset. Add the official file (`make fetch-data`), or run few-shot (k)")
        }
        var files: [String: String] = [:]
        let lock = FileManager.default.fileExists(atPath: lockPath) ? try DataFiles.Lock.load(path: lockPath) : nil
        for d in [train, val] {
            if let lock { try lock.check(relativePath: d.relativePath, sha256: d.sha256, allowUnpinned: allowUnpinned, lockPath: lockPath) }
            else if !allowUnpinned { throw TrainError("\(lockPath) not found: run from the repository root, or pass --allow-unpinned") }
            files[d.relativePath] = d.sha256
        }
        var rows: [Int]? = nil, drawnRows: [Int]? = nil
        var manifestPath: String?
        let sampler = c.sampler ?? .uniform
        if let k = c.k, let name = c.manifestFileName {
            let path = "\(manifestDir)/\(name)"
            let m: Manifest
            if FileManager.default.fileExists(atPath: path) {
                m = try Manifest.load(path: path)
                try m.verify(against: train, path: path, k: k, seed: c.effectiveSampleSeed, sampler: sampler)
                manifestPath = path
            } else {
                m = try FewShotSampler.sample(train, k: k, seed: c.effectiveSampleSeed, sampler: sampler)
                // The rows too (stored as the run's manifest): a drawn sample was named by its
                // seed alone, and auditing it needed the sampler's code.
                manifestPath = "(drawn: \(m.fileName) not in \(manifestDir); rows \(m.indices.map(String.init).joined(separator: ",")))"
                drawnRows = m.indices
                // Said, not silent: the run's identity records "drawn", and another checkout with
                // the manifest committed reads that file instead.
                FileHandle.standardError.write(Data("note: \(manifestDir)/\(m.fileName) not found: the few-shot sample is drawn now (the same rows `promptrepro sample` would write; commit the manifest to pin them)\n".utf8))
            }
            rows = m.indices
            // A balanced sample that could not be balanced (k below the classes, a class short of
            // rows) is said: it ran as if balanced without a word.
            if sampler == .balanced, let problem = FewShotSampler.balanceProblem(train, rows: m.indices, k: k) {
                FileHandle.standardError.write(Data("warning: \(c.task): \(problem)\n".utf8))
            }
        }
        // Evaluation sets: `evalEx` is reported; `selectEx` (nil: `evalEx`, the papers' rule) picks the best epoch.
        var evalEx: [Example], selectEx: [Example]? = nil
        var selectData = val
        var devRows: [Int]? = nil
        switch c.selectOn ?? .validation {
        case .validation:
            evalEx = try Templates.examples(val, set: c.templates, training: false)
        case .trainDev:
            // k_dev rows of the training split outside the sample; without k (full data) the dev
            // rows are held out of training, as DePT does for its large datasets (1000 rows).
            evalEx = try Templates.examples(val, set: c.templates, training: false)
            let kDev = c.kDev ?? c.k ?? min(1000, train.rows.count / 2)
            devRows = try FewShotSampler.devRows(train, kDev: kDev, seed: c.effectiveSampleSeed, sampler: sampler, excluding: rows ?? [])
            if rows == nil { let dev = Set(devRows!); rows = train.rows.indices.filter { !dev.contains($0) } }
            selectEx = try Templates.examples(train, set: c.templates, training: false, rows: devRows)
            selectData = train
        case .valHalf:
            let halves = FewShotSampler.validationHalves(val)
            // A split of one row (or one MultiRC question) leaves a half empty: its score was 0 and
            // the run counted as done (a review's one-row validation file).
            guard !halves.select.isEmpty, !halves.report.isEmpty else {
                throw TrainError("--select-on val-half: \(val.path) has \(val.rows.count) validation row\(val.rows.count == 1 ? "" : "s")"
                    + (c.task == "multirc" ? " (questions are split whole)" : "") + ", too few to split into a selection half and a reported half")
            }
            evalEx = try Templates.examples(val, set: c.templates, training: false, rows: halves.report)
            selectEx = try Templates.examples(val, set: c.templates, training: false, rows: halves.select)
        }
        if let lim = c.evalLimit {
            // Whole groups (MultiRC questions): a prefix of rows left the last question partial,
            // and exact match scored it on some of its answers (RunIdentity's "eval_limit" rule).
            evalEx = Example.prefixOfWholeGroups(evalEx, limit: lim)
            if let s = selectEx, c.selectOn == .valHalf { selectEx = Example.prefixOfWholeGroups(s, limit: lim) }
        }
        guard !evalEx.isEmpty, selectEx?.isEmpty != true else {
            throw TrainError("\(c.task): no examples to evaluate (validation \(val.path)\(c.evalLimit.map { ", eval_limit \($0)" } ?? ""))")
        }
        let trainEx = try Templates.examples(train, set: c.templates, training: true, rows: rows)
        guard !trainEx.isEmpty else { throw TrainError("\(c.task): no training examples after filtering") }
        if c.evalMode.map({ $0 != .generate }) == true {
            guard isT5 else { throw TrainError("--eval-mode \(c.evalMode!.rawValue): GPT-2 runs already score the label words (rank classification over the verbaliser); use the default") }
            if let e = evalEx.first { _ = try RankCandidates.candidates(def, set: c.templates, data: val, example: e) }
        }
        // The per-architecture objective (GPT-2: checks the template set's label words).
        let objective = try architectureObjective(backbone, tokenizer: tok, config: c, task: def)

        // Optimizer groups. The optimizer keys its state (and a checkpoint's) by tensor name: a
        // method's unnamed tensor takes its trainable name (it was keyed by object identity, so a
        // resumed run restarted its moments from zero), and two tensors of one name are refused.
        var named: Set<String> = []
        for t in method.trainable {
            if t.tensor.name.isEmpty { t.tensor.name = t.name }
            guard named.insert(t.tensor.name).inserted else {
                throw TrainError("method \(c.method.method): two trainable tensors are named '\(t.tensor.name)'; the optimizer and checkpoints key them by name")
            }
        }
        let main = method.trainable.filter { $0.group == .main }.map(\.tensor)
        let secondary = method.trainable.filter { $0.group == .secondary }.map(\.tensor)
        var groups = [ParamGroup(tensors: main, lr: c.lr, weightDecay: c.weightDecay)]
        if !secondary.isEmpty { groups.append(ParamGroup(tensors: secondary, lr: c.lrSecondary ?? c.lr, weightDecay: c.weightDecay)) }
        let opt = Optimizer(kind: c.optimizer, groups: groups, beta1: c.beta1 ?? 0.9, beta2: c.beta2 ?? 0.999, eps: c.eps)
        opt.recordsNorms = true
        let stepsPerEpoch = (trainEx.count + c.batchSize - 1) / c.batchSize
        let totalSteps = c.maxSteps ?? c.epochs * stepsPerEpoch
        let warmup = c.warmupSteps ?? Int(Float(totalSteps) * c.warmupRatio)

        var result = TrainResult(config: c, status: .running, divergedAtStep: nil, bestEpoch: nil, best: [:], last: [:], history: [],
                                 trainableParams: method.trainableCount, trainExamples: trainEx.count, evalExamples: evalEx.count,
                                 dataFiles: files, manifest: manifestPath, smoke: c.model.hasPrefix("embedded:"), predictions: nil)
        result.sampleRows = drawnRows
        result.devRows = devRows
        var step = 0, startEpoch = 1
        var resumedFrom: String?
        if let ck = checkpointPath, FileManager.default.fileExists(atPath: ck) {
            // A checkpoint is only a way to resume: one that cannot be read whole (a truncated file,
            // a training record that does not decode) is set aside and the run starts over, which
            // gives the same numbers. Resuming its tensors without its record restarted the epochs
            // at 1 from a later step and stored the run as done with other results.
            var readable: (file: SafeTensorsFile, record: TrainResult, tensors: [String: Tensor])?
            var why = ""
            do {
                let f = try SafeTensorsFile(path: ck)
                if let diff = Trainer.configDifference(saved: f.metadata["config"], current: c) {
                    throw TrainError("\(ck): checkpoint belongs to another configuration (\(diff)); remove it to start over")
                }
                if let h = f.metadata["result"] {
                    do {
                        let r = try JSONDecoder().decode(TrainResult.self, from: Data(h.utf8))
                        var saved: [String: Tensor] = [:]
                        for n in f.names { saved[n] = try f.tensor(n).detached() }
                        // A checkpoint written with a checksum must match it (older ones have none):
                        // flipped bytes in the tensor data resumed silently before.
                        if let sum = f.metadata[Trainer.checksumKey], sum != Trainer.tensorChecksum(saved) {
                            why = "its tensors do not match the checksum written with them (damaged on disk?)"
                        } else if let written = f.metadata[Trainer.numericsKey],
                                  !Trainer.numericsAgree(written, Trainer.numerics) {
                            // Another kernel, kc, OpenBLAS or thread count: the resumed run would be a
                            // hybrid of two setups (older checkpoints have no record and resume);
                            // another mc / nc (other caches, a calibration) changes no bit.
                            why = "it was written under other numerics (\(written); now \(Trainer.numerics)), and a resumed run would mix the two"
                        } else {
                            readable = (f, r, saved)
                        }
                    } catch { why = "its training record or tensors do not read (\(error))" }
                } else { why = "it holds no training record" }
            } catch let e as TrainError { throw e } catch { why = "\(error)" }
            if let (_, r, saved) = readable {
                try method.load(state: saved)
                opt.load(state: saved)
                result = r
                // A record written before the rows were kept has none: the same sample (the
                // checkpoint's config is the run's), so they are filled in as this start drew them.
                if result.sampleRows == nil, result.devRows == nil, drawnRows != nil || devRows != nil {
                    result.sampleRows = drawnRows
                    result.devRows = devRows
                    result.manifest = manifestPath
                }
                step = opt.step
                startEpoch = (result.history.last?.epoch ?? 0) + 1
                resumedFrom = ck
            } else {
                // Named by why it was set aside (a checkpoint of other numerics reads fine); one
                // file per reason, the latest (checkpoints are large: nothing else deletes them).
                let aside = ck + (why.hasPrefix("it was written under other numerics") ? ".other-numerics" : ".unreadable")
                try? FileManager.default.removeItem(atPath: aside)
                try? FileManager.default.moveItem(atPath: ck, toPath: aside)
                FileHandle.standardError.write(Data("note: \(ck): not resumed, \(why); moved to \(aside), the run starts over\n".utf8))
            }
        }
        return TrainingSession(config: c, def: def, objective: objective, method: method, root: root, adapterParams: adapterParams,
                               val: val, selectData: selectData, trainEx: trainEx, evalEx: evalEx, selectEx: selectEx, opt: opt,
                               stepsPerEpoch: stepsPerEpoch, totalSteps: totalSteps, warmup: warmup, result: result, step: step,
                               startEpoch: startEpoch, resumedFrom: resumedFrom, meter: meter)
    }
}

extension TrainingSession {
    /// Refuses, before anything trains, a prompt that cannot fit: on GPT-2 the prompt rows plus
    /// `max_source_length` beyond the checkpoint's `n_positions` (a 450-token prompt failed on the
    /// first 123-token validation text, after training); on either backbone a sequence whose
    /// attention scores for one layer and training batch (batch_size × heads × S² fp32 values, a
    /// lower bound on a step's peak) exceed this machine's memory (`--n 100000` on T5 ended in
    /// "failed to allocate 40205062176 bytes" and SIGABRT). S = prompt rows (n, or DePT's m) +
    /// max_source_length.
    /// `memoryBytes` nil: the n_positions check only (a plan for other machines: `shard`).
    public static func checkSequenceFits(_ c: TrainConfig, architecture: ModelConfig, configPath: String,
                                  memoryBytes: UInt64? = HostResources.memoryBytes) throws {
        let rows = TrainConfig.promptRows(c.method)
        let key = (try? MethodRegistry.type(c.method.method).configKeys.contains("n")) == true ? "n" : "m"
        let S = rows + c.maxSourceLength
        let what = rows > 0 ? "\(key) \(rows) (prompt rows) + max_source_length \(c.maxSourceLength)" : "max_source_length \(c.maxSourceLength)"
        let heads: Int
        switch architecture {
        case .gpt2(let g):
            if S > g.nPositions {
                throw TrainError("\(configPath): n_positions is \(g.nPositions), while \(what) = \(S) positions; lower "
                    + (rows > 0 ? "\(key) or max_source_length (together ≤ \(g.nPositions))" : "max_source_length to ≤ \(g.nPositions)"))
            }
            heads = g.nHead
        case .t5(let t):
            heads = t.numHeads
        }
        // A lower bound on a training step's peak: one layer's scores for one training batch (the
        // backward pass keeps more). Evaluation is not priced: without gradients attention runs
        // on one score row block per thread and the encoder in chunks.
        guard let memoryBytes else { return }
        let bytes = Double(c.batchSize) * Double(heads) * Double(S) * Double(S) * 4
        if bytes > Double(memoryBytes) {
            throw TrainError(String(format: "%@ = %d positions: one layer's attention scores for a training batch of %d (batch × %d heads × %d² × 4 bytes) alone take %.1f GiB, "
                + "more than the %.1f GiB of memory this process may use (the machine's, or its cgroup's limit); lower %@, max_source_length or batch_size", what, S, c.batchSize, heads, S, bytes / 1_073_741_824,
                Double(memoryBytes) / 1_073_741_824, rows > 0 ? key : "max_source_length"))
        }
    }
}
