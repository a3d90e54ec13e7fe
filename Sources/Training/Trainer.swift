// The training loop: seeded shuffling, epochs (or max steps), evaluation every E epochs on the
// validation split (T5: greedy decode → task metric; GPT-2: verbalizer scoring at the mask
// position), best-epoch (paper) and last-epoch scores, divergence detection, and trainable-only
// checkpoints (safetensors: method state + optimizer state + progress) for exact resume.
import Foundation
import Methods
import Models
import Support
import Tasks
import Tensor

public struct EpochRecord: Codable, Equatable, Sendable {
    public var epoch: Int
    public var step: Int
    public var trainLoss: Double
    public var metrics: [String: Double]
    public var selection: Double?     // nil on epochs without evaluation
    public var probePositive: Int?
    public var probeNegative: Int?
    public var probeRank: Int?
    public var seconds: Double
    /// Scores on the selection set when it is not the reported one (`select_on` train-dev or
    /// val-half); `selection` is then read from these. nil under the papers' protocol.
    public var selectMetrics: [String: Double]?
}

/// How a `Trainer.run` ended (stored as its raw string).
public enum RunStatus: String, Codable, Sendable {
    case running, done, diverged, interrupted, evaluated
}

/// One optimizer step: the loss of its batch, each group's learning rate after the schedule, the
/// global gradient L2 norm before clipping, each trainable tensor's gradient and value L2 norms
/// after the update, and wall seconds (batch building, forward, backward, update).
public struct StepRecord: Codable, Equatable, Sendable {
    public var step: Int
    public var epoch: Int
    public var loss: Double
    public var lr: [Double]               // per parameter group, in group order (main, secondary)
    public var gradNorm: Double           // global, before clipping
    public var gradNorms: [String: Double] // per trainable tensor (0 when it got no gradient)
    public var paramNorms: [String: Double]
    public var seconds: Double

    enum CodingKeys: String, CodingKey {
        case step, epoch, loss, lr, seconds
        case gradNorm = "grad_norm", gradNorms = "grad_norms", paramNorms = "param_norms"
    }

    public init(step: Int, epoch: Int, loss: Double, lr: [Double], gradNorm: Double, gradNorms: [String: Double],
                paramNorms: [String: Double], seconds: Double) {
        self.step = step; self.epoch = epoch; self.loss = loss; self.lr = lr; self.gradNorm = gradNorm
        self.gradNorms = gradNorms; self.paramNorms = paramNorms; self.seconds = seconds
    }
}

/// L2 norm of a tensor's values, accumulated in Double.
func l2(_ t: Tensor) -> Double {
    var s = 0.0
    for i in 0..<t.count { s += Double(t.data[i]) * Double(t.data[i]) }
    return s.squareRoot()
}

public struct TrainResult: Codable, Sendable {
    public var config: TrainConfig
    public var status: RunStatus
    public var divergedAtStep: Int?
    public var bestEpoch: Int?
    public var best: [String: Double]
    public var last: [String: Double]
    public var history: [EpochRecord]
    public var steps: [StepRecord]?           // per optimizer step (absent in records made before the step log)
    public var trainableParams: Int
    public var trainExamples: Int
    public var evalExamples: Int
    public var dataFiles: [String: String]     // relative path → sha256
    public var manifest: String?
    public var smoke: Bool
    public var predictions: [String]?          // last evaluation's predictions (validation order)
    public var bestPredictions: [String]?      // the best epoch's predictions (what `best` scores)
    /// Per-run measurements that are not scores, by name (stored in `run_metrics`): efficiency
    /// (`peak_rss_bytes`, `seconds_per_step`, …), `invalid_fraction`, selection details. Absent in
    /// records made before protocol variants.
    public var extras: [String: Double]?

    public init(config: TrainConfig, status: RunStatus, divergedAtStep: Int?, bestEpoch: Int?, best: [String: Double], last: [String: Double],
                history: [EpochRecord], trainableParams: Int, trainExamples: Int, evalExamples: Int, dataFiles: [String: String],
                manifest: String?, smoke: Bool, predictions: [String]?) {
        self.config = config; self.status = status; self.divergedAtStep = divergedAtStep; self.bestEpoch = bestEpoch
        self.best = best; self.last = last; self.history = history; self.trainableParams = trainableParams
        self.trainExamples = trainExamples; self.evalExamples = evalExamples; self.dataFiles = dataFiles
        self.manifest = manifest; self.smoke = smoke; self.predictions = predictions
    }

    public var json: String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .prettyPrinted]
        return String(decoding: (try? e.encode(self)) ?? Data(), as: UTF8.self)
    }
}

public struct TrainError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

public final class Trainer {
    public let config: TrainConfig
    let dataDir: String
    let manifestDir: String
    let checkpointPath: String?
    let progress: (String) -> Void
    public var allowUnpinned = false
    public var lockPath = "Baselines/data.lock"
    /// Called after every optimizer step with (step, loss); used by tests and progress bars.
    public var onStep: ((Int, Float) -> Void)?
    /// Stop (status "interrupted") after this epoch's checkpoint is written: simulates a crash.
    public var interruptAfterEpoch: Int?
    /// Polled before and after every optimizer step: when it returns true the run stops at once with status
    /// "interrupted", writing nothing (the last epoch's checkpoint stays the resume point).
    public var shouldStop: (() -> Bool)?
    /// Called after each epoch's checkpoint is written with (epochs done, epochs in the run,
    /// seconds of the epochs done); workers store it so progress counts partial runs.
    public var onEpoch: ((Int, Int, Double) -> Void)?
    /// Where to save the final trainable tensors (safetensors) of a finished run.
    public var artifactPath: String?
    /// Under `decode_max_tokens: auto`: evaluated rows whose decoding the cap stopped before </s>.
    var decodeUnfinishedRows = 0

    public init(config: TrainConfig, dataDir: String, manifestDir: String = "Baselines/manifests", checkpoint: String? = nil,
                progress: @escaping (String) -> Void = { _ in }) {
        self.config = config
        self.dataDir = dataDir
        self.manifestDir = manifestDir
        self.checkpointPath = checkpoint
        self.progress = progress
    }

    enum Backend {
        case t5(T5Model)
        case gpt2(GPT2Model)
        var isT5: Bool { if case .t5 = self { return true } else { return false } }
    }

    typealias Batch = TrainingBatch

    // MARK: run

    public func run() throws -> TrainResult {
        Parallel.configure(threads: config.threads)
        var meter = EfficiencyMeter()  // Efficiency.swift: peak RSS, step FLOPs, eval seconds → result.extras
        let c = config
        let def = try TaskRegistry.definition(c.task)
        let dir = try ModelFiles.locate(c.model)
        let backend: Backend
        switch try ModelConfig.load(path: (dir as NSString).appendingPathComponent("config.json")) {
        case .t5: backend = .t5(try T5Model.load(directory: dir))
        case .gpt2: backend = .gpt2(try GPT2Model.load(directory: dir))
        }
        let tok = try Tokenizers.load(directory: dir)
        let backbone: Backbone
        switch backend { case .t5(let m): backbone = m; case .gpt2(let m): backbone = m }
        let root = RNGKey(seed: UInt64(c.seed))
        let method: TuningMethod
        var adapterParams: Int?
        if let spec = c.adapter {
            let a = try PEFTAdapter.load(directory: String(spec.split(separator: "#").first ?? ""),
                                         parameters: backbone.parameters.map { ($0.name, $0.tensor.shape) }, dModel: backbone.dModel,
                                         isT5: backend.isT5)
            backbone.adapters = a.linearAdapters
            method = AdapterMethod(prompt: a.encoderPrompt, inputDelta: a.inputDelta)
            let deptParams = a.inputDelta != nil ? (a.config.maxLength ?? 0) * (a.config.r ?? 0) + (a.config.r ?? 0) * backbone.dModel : 0
            adapterParams = (a.encoderPrompt?.count ?? 0) + (a.decoderPrompt?.count ?? 0) + a.lora.reduce(0) { $0 + $1.a.count + $1.b.count } + deptParams
        } else {
            var mc = c.method
            // Text / label-word initialisation: the token ids of the text with this model's tokenizer
            // (T5 appends </s>, as PEFT's TEXT init does), or of the template set's label words.
            if mc.initialization.hasPrefix("text:") || mc.initialization == "labels" {
                let text: String
                if mc.initialization == "labels" {
                    let def = try TaskRegistry.definition(c.task)
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
        if let spec = c.initFrom { try Trainer.initialize(method, from: String(spec.split(separator: "#").first ?? "")) }

        // Data: pinned files, identical few-shot manifest for every method.
        let train = try DataLoader.load(def, split: .train, dataDir: dataDir)
        let val = try DataLoader.load(def, split: .validation, dataDir: dataDir)
        var files: [String: String] = [:]
        let lock = FileManager.default.fileExists(atPath: lockPath) ? try DataFiles.Lock.load(path: lockPath) : nil
        for d in [train, val] {
            if let lock { try lock.check(relativePath: d.relativePath, sha256: d.sha256, allowUnpinned: allowUnpinned, lockPath: lockPath) }
            else if !allowUnpinned { throw TrainError("\(lockPath) not found: run from the repository root, or pass --allow-unpinned") }
            files[d.relativePath] = d.sha256
        }
        var rows: [Int]? = nil
        var manifestPath: String?
        let sampler = c.sampler ?? .uniform
        if let k = c.k {
            let path = "\(manifestDir)/\(Manifest.fileName(task: c.task, k: k, seed: c.effectiveSampleSeed, sampler: sampler))"
            let m: Manifest
            if FileManager.default.fileExists(atPath: path) {
                m = try Manifest.load(path: path)
                try m.verify(against: train, path: path)
                manifestPath = path
            } else {
                m = try FewShotSampler.sample(train, k: k, seed: c.effectiveSampleSeed, sampler: sampler)
                manifestPath = "(drawn: \(m.fileName) not in \(manifestDir))"
            }
            rows = m.indices
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
            let halves = FewShotSampler.validationHalves(rows: val.rows.count)
            evalEx = try Templates.examples(val, set: c.templates, training: false, rows: halves.report)
            selectEx = try Templates.examples(val, set: c.templates, training: false, rows: halves.select)
        }
        if let lim = c.evalLimit {
            if lim < evalEx.count { evalEx = Array(evalEx.prefix(lim)) }
            if let s = selectEx, c.selectOn == .valHalf, lim < s.count { selectEx = Array(s.prefix(lim)) }
        }
        let trainEx = try Templates.examples(train, set: c.templates, training: true, rows: rows)
        guard !trainEx.isEmpty else { throw TrainError("\(c.task): no training examples after filtering") }
        if c.evalMode.map({ $0 != .generate }) == true {
            guard backend.isT5 else { throw TrainError("--eval-mode \(c.evalMode!.rawValue): GPT-2 runs already score the label words (rank classification over the verbaliser); use the default") }
            if let e = evalEx.first { _ = try RankCandidates.candidates(def, set: c.templates, data: val, example: e) }
        }

        // GPT-2 classification needs verbalizer words.
        var classTokens: [Int32] = []
        if case .gpt2 = backend {
            guard let words = try def.template(c.templates).words else {
                throw TrainError("\(c.task): GPT-2 runs score label words; template set '\(c.templates.rawValue)' has no `words` (use --templates lopt)")
            }
            classTokens = words.map { w in
                let ids = tok is ByteTokenizer ? tok.encode(w) : tok.encode(" " + w)
                return ids.first ?? 0
            }
            guard Set(classTokens).count == classTokens.count else { throw TrainError("label words \(words) share their first token") }
        }

        // Optimizer groups.
        let main = method.trainable.filter { $0.group == .main }.map(\.tensor)
        let secondary = method.trainable.filter { $0.group == .secondary }.map(\.tensor)
        var groups = [ParamGroup(tensors: main, lr: c.lr, weightDecay: c.weightDecay)]
        if !secondary.isEmpty { groups.append(ParamGroup(tensors: secondary, lr: c.lrSecondary ?? c.lr, weightDecay: c.weightDecay)) }
        let opt = Optimizer(kind: c.optimizer, groups: groups, beta1: c.beta1 ?? 0.9, beta2: c.beta2 ?? 0.999, eps: c.eps)
        opt.recordsNorms = true
        let all = method.trainable.map(\.tensor)
        let stepsPerEpoch = (trainEx.count + c.batchSize - 1) / c.batchSize
        let totalSteps = c.maxSteps ?? c.epochs * stepsPerEpoch
        let warmup = c.warmupSteps ?? Int(Float(totalSteps) * c.warmupRatio)

        var result = TrainResult(config: c, status: .running, divergedAtStep: nil, bestEpoch: nil, best: [:], last: [:], history: [],
                                 trainableParams: method.trainableCount, trainExamples: trainEx.count, evalExamples: evalEx.count,
                                 dataFiles: files, manifest: manifestPath, smoke: c.model.hasPrefix("embedded:"), predictions: nil)
        var step = 0, startEpoch = 1
        if let ck = checkpointPath, FileManager.default.fileExists(atPath: ck) {
            let f = try SafeTensorsFile(path: ck)
            if let diff = Trainer.configDifference(saved: f.metadata["config"], current: c) {
                throw TrainError("\(ck): checkpoint belongs to another configuration (\(diff)); remove it to start over")
            }
            var saved: [String: Tensor] = [:]
            for n in f.names { saved[n] = try f.tensor(n).detached() }
            try method.load(state: saved)
            opt.load(state: saved)
            if let h = f.metadata["result"], let r = try? JSONDecoder().decode(TrainResult.self, from: Data(h.utf8)) { result = r }
            step = opt.step
            startEpoch = (result.history.last?.epoch ?? 0) + 1
            progress("resumed from \(ck) at epoch \(startEpoch), step \(step)")
        }

        if let adapterParams {  // evaluate an adapter trained elsewhere: no training (no epochs), one evaluation
            let preds = try evaluate(evalEx, data: val, tok: tok, backend: backend, method: method, classTokens: classTokens, def: def)
            let m = try Metrics.score(def, set: c.templates, examples: evalEx, predictions: preds)
            result.best = m; result.last = m; result.bestEpoch = 0
            result.predictions = preds; result.bestPredictions = preds
            result.trainableParams = adapterParams
            result.status = .evaluated
            return result
        }

        let dropoutRoot = root.derive("dropout")
        var epoch = startEpoch
        while epoch <= c.epochs && step < totalSteps {
            let t0 = Date()
            var stream = PhiloxStream(root.derive("shuffle").derive(UInt64(epoch)))
            let order = stream.permutation(trainEx.count)
            var lossSum = 0.0, lossCount = 0
            for b in 0..<stepsPerEpoch where step < totalSteps {
                if shouldStop?() == true { result.status = .interrupted; return result }
                let stepStart = Date()
                meter.stepBegan()
                let idx = order[(b * c.batchSize)..<min(order.count, (b + 1) * c.batchSize)].map { trainEx[$0] }
                let batch = try makeBatch(idx, tok: tok, backend: backend, classTokens: classTokens, def: def, prompt: c.method.n)
                let drop = DropoutContext(key: c.backboneDropout ? dropoutRoot.derive(UInt64(step)) : nil, p: c.dropoutRate)
                let tape = Tape()
                let loss = try tape.record { try self.loss(batch, backend: backend, method: method, classTokens: classTokens, drop: drop) }
                let lv = loss.scalar
                if !lv.isFinite {
                    tape.reset()
                    result.status = .diverged
                    result.divergedAtStep = step + 1
                    progress("diverged: loss \(lv) at step \(step + 1)")
                    return result
                }
                let lrScale = c.schedule.factor(step: step, total: totalSteps, warmup: warmup)
                // Norms come from the optimizer's own update loops (no extra pass over the weights);
                // under clipping it saw scaled gradients, so the norms before clipping are divided back.
                let preClip = optimizerStep(tape, loss: loss, optimizer: opt, params: all, clipNorm: c.clipNorm, lrScale: lrScale)
                let coef = preClip.map { c.clipNorm! / ($0 + 1e-6) }.map { Double(min(1, $0)) } ?? 1
                let gradNorms = all.map { (opt.norms[ObjectIdentifier($0)]?.grad ?? 0) / coef }
                let paramNorms = all.map { opt.norms[ObjectIdentifier($0)]?.param ?? l2($0) }
                for t in all { t.zeroGrad() }
                if all.contains(where: { t in (0..<t.count).contains { !t.data[$0].isFinite } }) {
                    result.status = .diverged
                    result.divergedAtStep = step + 1
                    progress("diverged: non-finite parameters after step \(step + 1)")
                    return result
                }
                step += 1
                meter.stepEnded(&result)
                lossSum += Double(lv)
                lossCount += 1
                let names = method.trainable.map(\.name)
                result.steps = result.steps ?? []
                result.steps!.append(StepRecord(
                    step: step, epoch: epoch, loss: Double(lv), lr: opt.groups.map { Double($0.lr * lrScale) },
                    gradNorm: preClip.map(Double.init) ?? gradNorms.reduce(0) { $0 + $1 * $1 }.squareRoot(),
                    gradNorms: Dictionary(uniqueKeysWithValues: zip(names, gradNorms)),
                    paramNorms: Dictionary(uniqueKeysWithValues: zip(names, paramNorms)),
                    seconds: Date().timeIntervalSince(stepStart)))
                onStep?(step, lv)
                if shouldStop?() == true { result.status = .interrupted; return result }
            }
            var rec = EpochRecord(epoch: epoch, step: step, trainLoss: lossSum / Double(max(lossCount, 1)), metrics: [:], selection: nil,
                                  probePositive: nil, probeNegative: nil, probeRank: nil, seconds: 0)
            if epoch % c.evalEvery == 0 || epoch == c.epochs || step >= totalSteps {
                let preds = try meter.evaluation(&result) {
                    try evaluate(evalEx, data: val, tok: tok, backend: backend, method: method, classTokens: classTokens, def: def)
                }
                rec.metrics = try Metrics.score(def, set: c.templates, examples: evalEx, predictions: preds)
                if let selectEx {
                    let sp = try meter.evaluation(&result) {
                        try evaluate(selectEx, data: selectData, tok: tok, backend: backend, method: method, classTokens: classTokens, def: def)
                    }
                    rec.selectMetrics = try Metrics.score(def, set: c.templates, examples: selectEx, predictions: sp)
                    rec.selection = rec.selectMetrics?[def.selectionMetric]
                } else {
                    rec.selection = rec.metrics[def.selectionMetric]
                }
                result.last = rec.metrics
                result.predictions = preds
                let bestSelection = result.history.first(where: { $0.epoch == result.bestEpoch })?.selection
                if result.bestEpoch == nil || (rec.selection ?? -.infinity) > (bestSelection ?? -.infinity) {
                    result.best = rec.metrics
                    result.bestEpoch = epoch
                    result.bestPredictions = preds
                }
            }
            if let probe = method as? RankProbe {
                let d = try probe.diagnostics()
                rec.probePositive = d.positive
                rec.probeNegative = d.negative
                rec.probeRank = d.rank
            }
            rec.seconds = Date().timeIntervalSince(t0)
            result.history.append(rec)
            progress(String(format: "epoch %d/%d step %d loss %.4f %@ %.1fs", epoch, c.epochs, step, rec.trainLoss,
                            rec.selection.map { "\(def.selectionMetric) \(String(format: "%.2f", $0))" } ?? "", rec.seconds))
            if let ck = checkpointPath { try saveCheckpoint(ck, method: method, opt: opt, result: result) }
            onEpoch?(epoch, min(c.epochs, (totalSteps + stepsPerEpoch - 1) / stepsPerEpoch), result.history.reduce(0) { $0 + $1.seconds })
            if epoch == interruptAfterEpoch {
                result.status = .interrupted
                return result
            }
            epoch += 1
        }
        result.status = .done
        if c.decodeMaxTokens == .auto {
            // Evaluated rows (over every evaluation of this process) that reached the auto cap without
            // </s>; 0 means every prediction equals the uncapped decode's (docs/performance.md).
            result.extras = (result.extras ?? [:]).merging(["decode_unfinished_rows": Double(decodeUnfinishedRows)]) { $1 }
        }
        if c.selectOn != nil || c.evalMode != nil {
            var x = result.extras ?? [:]
            x["selection_examples"] = Double(selectEx?.count ?? evalEx.count)
            if let sel = result.history.first(where: { $0.epoch == result.bestEpoch })?.selection { x["selection_score"] = sel }
            result.extras = x
        }
        if let path = artifactPath {
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try SafeTensorsFile.write(method.state, to: path, metadata: ["config": c.json])
        }
        meter.finish(&result, state: method.state, artifactPath: artifactPath)
        return result
    }

    /// Fields that change no number of a run (thread count, evaluation batch size): a checkpoint
    /// written under other values resumes.
    static let resumeIgnores: Set<String> = ["threads", "eval_batch_size"]

    /// The first config field (JSON name, nested as "method.r") whose value differs between a
    /// checkpoint's stored config and `current`, ignoring `resumeIgnores`; nil when they agree.
    public static func configDifference(saved: String?, current: TrainConfig) -> String? {
        guard let saved, let a = try? JSONSerialization.jsonObject(with: Data(saved.utf8)) as? [String: Any],
              let b = try? JSONSerialization.jsonObject(with: Data(current.json.utf8)) as? [String: Any] else {
            return "the checkpoint stores no readable config"
        }
        func diff(_ x: [String: Any], _ y: [String: Any], _ prefix: String) -> String? {
            for k in Set(x.keys).union(y.keys).sorted() where !resumeIgnores.contains(k) {
                let (u, v) = (x[k], y[k])
                if let du = u as? [String: Any], let dv = v as? [String: Any] {
                    if let d = diff(du, dv, prefix + k + ".") { return d }
                    continue
                }
                let su = u.map { "\($0)" } ?? "absent", sv = v.map { "\($0)" } ?? "absent"
                if su != sv { return "field '\(prefix)\(k)': checkpoint \(su), now \(sv)" }
            }
            return nil
        }
        return diff(a, b, "")
    }

    /// Sets trainable tensors of `method` from a safetensors file whose names are those of the run
    /// artifacts (`method.state`: e.g. "prompt", "prefix_first", "lora_embedding_A"). Every tensor
    /// in the file must be one of the method's, with its shape; the method's other tensors keep
    /// their own initialisation. Errors name the file and the tensor.
    /// A PEFT PROMPT_TUNING adapter directory is accepted too (prompt transfer): its encoder prompt
    /// sets the method's `prompt` table (PT, Residual PT, DePT), whose shape must match.
    public static func initialize(_ method: TuningMethod, from path: String) throws {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
            guard let prompt = method.state["prompt"] else {
                throw TrainError("\(path): a PEFT prompt sets a method's prompt table; \(type(of: method).name) has none (its tensors: \(method.state.keys.sorted().joined(separator: ", ")))")
            }
            let a = try PEFTAdapter.load(directory: path, parameters: [], dModel: prompt.shape[1], isT5: true)
            guard let p = a.encoderPrompt else { throw TrainError("\(path): not a PROMPT_TUNING adapter (peft_type \(a.config.peftType))") }
            guard p.shape == prompt.shape else {
                throw TrainError("\(path): the adapter's prompt is \(p.shape), method \(type(of: method).name) has \(prompt.shape) (set n / m to match)")
            }
            prompt.copy(from: p)
            return
        }
        let f = try SafeTensorsFile(path: path)
        let state = method.state
        let names = f.names.sorted()
        guard !names.isEmpty else { throw TrainError("\(path): --init-from holds no tensors") }
        for n in names {
            guard let t = state[n] else {
                throw TrainError("\(path): tensor '\(n)' is not a tensor of method \(type(of: method).name) (its tensors: \(state.keys.sorted().joined(separator: ", ")))")
            }
            let v = try f.tensor(n)
            guard v.shape == t.shape else {
                throw TrainError("\(path): tensor '\(n)' has shape \(v.shape), method \(type(of: method).name) needs \(t.shape)")
            }
            t.copy(from: v)
        }
    }

    func saveCheckpoint(_ path: String, method: TuningMethod, opt: Optimizer, result: TrainResult) throws {
        var tensors = method.state
        for (k, v) in opt.state { tensors[k] = v }
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        let r = String(decoding: try e.encode(result), as: UTF8.self)
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try SafeTensorsFile.write(tensors, to: path, metadata: ["config": config.json, "result": r])
    }

    // MARK: batches

    func truncate(_ ids: [Int32], _ max: Int, eos: Int32?) -> [Int32] {
        guard ids.count > max else { return ids }
        if let eos, ids.last == eos { return Array(ids.prefix(max - 1)) + [eos] }
        return Array(ids.prefix(max))
    }

    func makeBatch(_ ex: [Example], tok: TextTokenizer, backend: Backend, classTokens: [Int32], def: TaskDefinition, prompt: Int) throws -> Batch {
        let src = ex.map { truncate(tok.encode($0.source), config.maxSourceLength, eos: tok.eosId) }
        let L = src.map(\.count).max() ?? 1
        var ids: [Int32] = [], mask: [Float] = []
        let pad = tok.padId
        for s in src {
            ids += s + [Int32](repeating: pad, count: L - s.count)
            mask += [Float](repeating: 1, count: s.count) + [Float](repeating: 0, count: L - s.count)
        }
        var b = Batch(ids: ids, mask: mask, labels: [], size: ex.count)
        switch backend {
        case .t5:
            let tg = ex.map { truncate(tok.encode($0.target), config.maxTargetLength, eos: tok.eosId) }
            let T = tg.map(\.count).max() ?? 1
            for t in tg { b.labels += t + [Int32](repeating: ignoreIndex, count: T - t.count) }
        case .gpt2:
            let words = try def.template(config.templates).words ?? []
            b.classTargets = try ex.map { e in
                guard let i = words.firstIndex(of: e.target) else { throw TrainError("target '\(e.target)' is not a label word of \(words)") }
                return Int32(i)
            }
            b.lastPositions = src.map { $0.count - 1 }
            b.labels = ids
        }
        return b
    }

    // MARK: loss and evaluation

    func loss(_ b: Batch, backend: Backend, method: TuningMethod, classTokens: [Int32], drop: DropoutContext) throws -> Tensor {
        switch backend {
        case .t5(let m): return try Objective.loss(b, model: m, method: method, classTokens: classTokens, drop: drop)
        case .gpt2(let m): return try Objective.loss(b, model: m, method: method, classTokens: classTokens, drop: drop)
        }
    }

    func classLogits(_ b: Batch, _ m: GPT2Model, _ inj: Injection, _ classTokens: [Int32], _ drop: DropoutContext) throws -> Tensor {
        try Objective.classLogits(b, m, inj, classTokens, drop)
    }

    /// Predictions for `ex` (examples of `data`, which rank classification reads ReCoRD's entities from).
    func evaluate(_ ex: [Example], data: TaskData, tok: TextTokenizer, backend: Backend, method: TuningMethod, classTokens: [Int32],
                  def: TaskDefinition) throws -> [String] {
        let inj = try method.injection(drop: .eval)
        let decodeCap = try decodeLimit(ex, data: data, tok: tok, def: def)
        var preds: [String] = []
        var i = 0
        while i < ex.count {
            let chunk = Array(ex[i..<min(ex.count, i + config.evalBatchSize)])
            let b = try makeBatch(chunk, tok: tok, backend: backend, classTokens: classTokens, def: def, prompt: 0)
            switch backend {
            case .t5(let m):
                let (embeds, mask) = try m.promptedInputs(inputIds: b.ids, attentionMask: b.mask, batch: b.size, prompt: inj.prompt,
                                                          inputDelta: inj.inputDelta)
                if let mode = config.evalMode, mode != .generate {
                    let enc = try m.encode(embeds: consume embeds, mask: mask, drop: .eval)
                    let cands = try chunk.map { try RankCandidates.candidates(def, set: config.templates, data: data, example: $0) }
                    let ll = try RankScorer.logLikelihoods(m, encoder: enc, encoderMask: mask, candidates: cands.map { $0.map {
                        truncate(tok.encode($0), config.maxTargetLength, eos: tok.eosId) } }, mean: mode == .rankMean)
                    for (r, scores) in ll.enumerated() {
                        var best = 0
                        for j in scores.indices where scores[j] > scores[best] { best = j }
                        preds.append(cands[r][best])
                    }
                    i += config.evalBatchSize
                    continue
                }
                let gen = try m.generate(embeds: consume embeds, mask: mask, maxNewTokens: decodeCap)
                if config.decodeMaxTokens == .auto {  // rows the cap stopped before </s>: only these can differ from the uncapped decode
                    let eos = Int32(m.config.eosTokenId ?? 1)
                    decodeUnfinishedRows += gen.filter { !$0.dropFirst().contains(eos) }.count
                }
                preds += gen.map { pyStrip(tok.decode($0, skipSpecialTokens: true)) }  // DPT: batch_decode(...) then .strip()
            case .gpt2(let m):
                let words = try def.template(config.templates).words ?? []
                let logits = try classLogits(b, m, inj, classTokens, .eval)
                let C = classTokens.count
                for r in 0..<b.size {
                    var best = 0
                    for j in 1..<C where logits.data[r * C + j] > logits.data[r * C + best] { best = j }
                    preds.append(words[best])
                }
            }
            i += config.evalBatchSize
        }
        return preds
    }
}

extension Trainer {
    /// New tokens greedy decoding may produce per row: `decode_max_tokens` (nil: `max_target_length`);
    /// `auto`: the longest candidate target of `ex` (the template's label targets, ReCoRD's
    /// entities) in tokens, </s> included, + 1, at most `max_target_length`. Tasks whose targets are
    /// free text (no candidate set) refuse `auto`.
    public func decodeLimit(_ ex: [Example], data: TaskData, tok: TextTokenizer, def: TaskDefinition) throws -> Int {
        switch config.decodeMaxTokens {
        case nil: return config.maxTargetLength
        case .tokens(let n)?: return n
        case .auto?:
            var longest = 0
            do {
                for e in ex {
                    for t in try RankCandidates.candidates(def, set: config.templates, data: data, example: e) {
                        longest = max(longest, truncate(tok.encode(t), config.maxTargetLength, eos: tok.eosId).count)
                    }
                }
            } catch {
                throw TrainError("decode_max_tokens auto: \(error); give a number instead")
            }
            return min(longest + 1, config.maxTargetLength)
        }
    }
}

/// One training batch in token ids, right-padded: `ids`/`mask` (B × L); T5: `labels` (B × T,
/// −100 padded); GPT-2: `classTargets` (B) and `lastPositions` (B, index of each row's last text
/// token), `labels` unused.
public struct TrainingBatch {
    public var ids: [Int32], mask: [Float], labels: [Int32], size: Int
    public var classTargets: [Int32] = []
    public var lastPositions: [Int] = []
    public init(ids: [Int32], mask: [Float], labels: [Int32], size: Int, classTargets: [Int32] = [], lastPositions: [Int] = []) {
        self.ids = ids; self.mask = mask; self.labels = labels; self.size = size
        self.classTargets = classTargets; self.lastPositions = lastPositions
    }
}

/// The trainer's objective, per architecture: T5 (text-to-text) the mean token cross-entropy of
/// the target given the prompted input; GPT-2 (LoPT Table 1) the verbaliser's class
/// cross-entropy (OpenPrompt ManualVerbalizer: next-token logits at the last text position,
/// gathered at the label words' first tokens, softmax over the classes).
public enum Objective {
    public static func loss(_ b: TrainingBatch, model: Backbone, method: TuningMethod, classTokens: [Int32], drop: DropoutContext) throws -> Tensor {
        let inj = try method.injection(drop: drop)
        if let m = model as? T5Model {
            return try m.forward(inputIds: b.ids, attentionMask: b.mask, labels: b.labels, batch: b.size,
                                 prompt: inj.prompt, inputDelta: inj.inputDelta, drop: drop).loss
        }
        guard let m = model as? GPT2Model else { throw TrainError("no objective for \(type(of: model))") }
        return try crossEntropy(try classLogits(b, m, inj, classTokens, drop), targets: b.classTargets)
    }

    /// Verbaliser scores (B, C) of GPT-2: hidden state at position n + lastPositions[b] (after
    /// ln_f) times the output head's rows of the class tokens.
    public static func classLogits(_ b: TrainingBatch, _ m: GPT2Model, _ inj: Injection, _ classTokens: [Int32], _ drop: DropoutContext) throws -> Tensor {
        let h = try m.hidden(inputIds: b.ids, attentionMask: b.mask, batch: b.size, prompt: inj.prompt, inputDelta: inj.inputDelta,
                             drop: drop)                                                                      // (B, S, d)
        let S = h.shape[1], n = inj.prompt?.shape[0] ?? 0
        let rows = try embedding(try reshape(h, [b.size * S, m.config.nEmbd]),
                                 ids: b.lastPositions.enumerated().map { Int32($0.offset * S + n + $0.element) })  // (B, d)
        let words = try embedding(m.head, ids: classTokens)                                                         // (C, d)
        return try matmul(rows, words, transB: true)                                                                // (B, C)
    }
}

/// One optimizer step after the forward recorded on `tape`: backward, global-norm clipping when
/// `clipNorm` is set (torch `clip_grad_norm_`), then the update with every group's lr × `lrScale`.
/// Without clipping the update is fused into backward (the same values; each tensor steps once its
/// gradient is complete). `observe` sees every parameter with its complete, unclipped gradient.
/// Returns the global gradient norm before clipping when it clipped (nil without clipping).
@discardableResult
public func optimizerStep(_ tape: Tape, loss: Tensor, optimizer: Optimizer, params: [Tensor], clipNorm: Float?, lrScale: Float,
                          observe: ((Tensor) -> Void)? = nil) -> Float? {
    if let clip = clipNorm {
        tape.backward(loss)
        if let observe { for t in params { observe(t) } }
        let norm = clipGradNorm(params, maxNorm: clip)
        optimizer.update(lrScale: lrScale)
        return norm
    } else {
        backwardWithStep(tape, loss: loss, optimizer: optimizer, params: params, lrScale: lrScale, observe: observe)
        return nil
    }
}

/// A PEFT adapter's prompt as a (frozen) method, for evaluation-only runs.
final class AdapterMethod: TuningMethod {
    static let name = "peft-adapter"
    let config: MethodConfig
    let prompt: Tensor?, inputDelta: Tensor?
    var trainable: [TrainableTensor] { [] }
    init(prompt: Tensor?, inputDelta: Tensor? = nil) {
        self.prompt = prompt
        self.inputDelta = inputDelta
        var c = MethodConfig(method: AdapterMethod.name, n: prompt?.shape[0] ?? 0, r: 0, m: 0, s: 0, alpha: 0, dropout: 0, targets: [],
                             initialization: "peft")
        c.method = AdapterMethod.name
        config = c
    }
    required init(config: MethodConfig, backbone: Backbone, key: RNGKey) throws { throw TrainError("a PEFT adapter is loaded with `eval --adapter`") }
    func injection(drop: DropoutContext) throws -> Injection { Injection(prompt: prompt, inputDelta: inputDelta) }
    static func parameterCount(_ c: MethodConfig, architecture: ModelConfig) throws -> Int { 0 }
}
