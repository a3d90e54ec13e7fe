// The training loop: seeded shuffling, epochs (or max steps), evaluation every E epochs on the
// validation split (T5: greedy decode → task metric; GPT-2: verbalizer scoring at the mask
// position), best-epoch (paper) and last-epoch scores, divergence detection, and trainable-only
// checkpoints (safetensors: method state + optimizer state + progress) for exact resume.
// `run()` = `prepare()` (TrainingSession.swift) + `train(_:)`; the per-architecture parts are in
// Objective.swift; what the loop reports goes to `sinks` as typed events (TrainingEvents.swift).
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
    /// The method's own per-epoch measurements (`EpochDiagnostics`; the rank probe's
    /// `probe_positive`, `probe_negative`, `probe_rank`), nil for other methods.
    public var extras: [String: Double]?
    public var seconds: Double
    /// Scores on the selection set when it is not the reported one (`select_on` train-dev or
    /// val-half); `selection` is then read from these. nil under the papers' protocol.
    public var selectMetrics: [String: Double]?

    public init(epoch: Int, step: Int, trainLoss: Double, metrics: [String: Double], selection: Double?, extras: [String: Double]? = nil,
                seconds: Double, selectMetrics: [String: Double]? = nil) {
        self.epoch = epoch; self.step = step; self.trainLoss = trainLoss; self.metrics = metrics; self.selection = selection
        self.extras = extras; self.seconds = seconds; self.selectMetrics = selectMetrics
    }
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
    /// What fixed the run's bits beyond its config (`Trainer.numerics`: GEMM kernel, blocking,
    /// OpenBLAS core, threads), set when it finishes; absent in records made before 2026-12-07.
    public var numerics: String?
    /// The training file's rows of a few-shot sample drawn at run time (no committed manifest:
    /// `manifest` says "(drawn: …)"), in the sampler's order; nil where a manifest file names them.
    public var sampleRows: [Int]?
    /// The training file's rows of the train-dev selection set (`select_on: train-dev`), in order.
    public var devRows: [Int]?

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
    /// Whether selection score `new` beats the best so far: strictly greater, or strictly smaller
    /// when the selection metric's registry entry is lower-is-better (ties keep the earlier epoch);
    /// a missing score never beats, and anything beats a missing best.
    public static func improves(_ new: Double?, over best: Double?, higherIsBetter: Bool) -> Bool {
        let sign = higherIsBetter ? 1.0 : -1.0
        return (new.map { sign * $0 } ?? -.infinity) > (best.map { sign * $0 } ?? -.infinity)
    }

    public let config: TrainConfig
    let dataDir: String
    let manifestDir: String
    let checkpointPath: String?
    public var allowUnpinned = false
    public var lockPath = "Baselines/data.lock"
    /// Receivers of the run's events (TrainingEvents.swift), in order; the first is the console
    /// sink writing `init`'s `progress` lines.
    public var sinks: [TrainingSink]
    /// Stop (status "interrupted") after this epoch's checkpoint is written: simulates a crash.
    public var interruptAfterEpoch: Int?
    /// Polled before and after every optimizer step: when it returns true the run stops at once with status
    /// "interrupted", writing nothing (the last epoch's checkpoint stays the resume point).
    public var shouldStop: (() -> Bool)?
    /// Asked before each epoch's checkpoint and the final artifact are written: false stops the
    /// run at once with status "interrupted", writing neither (a sweep worker whose claim on the
    /// run was taken over: the run, its checkpoint and its artifact are another worker's now).
    public var mayWrite: (() -> Bool)?
    /// Where to save the final trainable tensors (safetensors) of a finished run.
    public var artifactPath: String?
    /// Under `decode_max_tokens: auto`: evaluated rows whose decoding the cap stopped before </s>.
    var decodeUnfinishedRows = 0
    /// Set at the first evaluation under a numeric `decode_max_tokens`: the longest label target in
    /// tokens (with </s>) when the cap is below it, else 0 (`decodeLimit`).
    var decodeCapShortfall: Int?

    public init(config: TrainConfig, dataDir: String, manifestDir: String = "Baselines/manifests", checkpoint: String? = nil,
                progress: @escaping (String) -> Void = { _ in }) {
        self.config = config
        self.dataDir = dataDir
        self.manifestDir = manifestDir
        self.checkpointPath = checkpoint
        self.sinks = [ConsoleSink(progress)]
    }

    func emit(_ event: TrainingEvent) { for s in sinks { s.receive(event) } }

    // MARK: run

    /// Sets up (`prepare`, TrainingSession.swift) and trains.
    public func run() throws -> TrainResult {
        try train(try prepare())
    }

    /// The loop: seeded epochs of optimizer steps, evaluation and best-epoch selection, per-epoch
    /// checkpoints; the artifact and the efficiency extras of a finished run.
    public func train(_ session: TrainingSession) throws -> TrainResult {
        var s = session
        let c = config, def = s.def, method = s.method, opt = s.opt, root = s.root
        let (val, selectData, trainEx, evalEx, selectEx) = (s.val, s.selectData, s.trainEx, s.evalEx, s.selectEx)
        let (stepsPerEpoch, totalSteps, warmup) = (s.stepsPerEpoch, s.totalSteps, s.warmup)
        var result = s.result, step = s.step
        emit(.started(s.plan))
        func finish(_ status: RunStatus) -> TrainResult {
            result.status = status
            emit(.done(status))
            return result
        }

        if let adapterParams = s.adapterParams {  // evaluate an adapter trained elsewhere: no training (no epochs), one evaluation
            let preds = try evaluate(evalEx, data: val, session: s)
            let m = try Metrics.score(def, set: c.templates, examples: evalEx, predictions: preds)
            result.best = m; result.last = m; result.bestEpoch = 0
            result.predictions = preds; result.bestPredictions = preds
            result.trainableParams = adapterParams
            try result.recordInvalidFractions(def, examples: evalEx)
            emit(.evaluated(epoch: 0, metrics: m, selection: m[def.selectionMetric], isBest: true))
            result.numerics = Trainer.numerics
            return finish(.evaluated)
        }

        // max_steps 0: the initial state, evaluated once (epoch 0: a reference before any training;
        // `--artifact` writes the initial tensors), on the selection split too where the run selects
        // elsewhere (a search reads its `selection_score`). It stored a run with no scores as done,
        // which `results` showed as "—".
        var initialSelection: Double?
        if totalSteps == 0 {
            let preds = try s.meter.evaluation(&result) { try evaluate(evalEx, data: val, session: s) }
            let m = try Metrics.score(def, set: c.templates, examples: evalEx, predictions: preds)
            if let selectEx {
                let sp = try s.meter.evaluation(&result) { try evaluate(selectEx, data: selectData, session: s) }
                initialSelection = try Metrics.score(def, set: c.templates, examples: selectEx, predictions: sp)[def.selectionMetric]
            } else {
                initialSelection = m[def.selectionMetric]
            }
            result.best = m; result.last = m; result.bestEpoch = 0
            result.predictions = preds; result.bestPredictions = preds
            emit(.evaluated(epoch: 0, metrics: m, selection: initialSelection, isBest: true))
        }
        let all = method.trainable.map(\.tensor)
        let dropoutRoot = root.derive("dropout")
        var epoch = s.startEpoch
        while epoch <= c.epochs && step < totalSteps {
            let t0 = Date()
            var stream = PhiloxStream(root.derive("shuffle").derive(UInt64(epoch)))
            let order = stream.permutation(trainEx.count)
            var lossSum = 0.0, lossCount = 0
            for b in 0..<stepsPerEpoch where step < totalSteps {
                if shouldStop?() == true { return finish(.interrupted) }
                let stepStart = Date()
                s.meter.stepBegan()
                let idx = order[(b * c.batchSize)..<min(order.count, (b + 1) * c.batchSize)].map { trainEx[$0] }
                let batch = try s.objective.makeBatch(idx)
                // Backbone dropout off: rate 0 but still a training step (a method's own dropout).
                let drop = DropoutContext(key: dropoutRoot.derive(UInt64(step)), p: c.backboneDropout ? c.dropoutRate : 0)
                let tape = Tape()
                let loss = try tape.record { try s.objective.loss(batch, method: method, drop: drop) }
                let lv = loss.scalar
                if !lv.isFinite {
                    tape.reset()
                    result.divergedAtStep = step + 1
                    emit(.diverged(step: step + 1, reason: .loss(lv)))
                    return finish(.diverged)
                }
                let lrScale = c.schedule.factor(step: step, total: totalSteps, warmup: warmup)
                // Norms come from the optimizer's own update loops (no extra pass over the weights);
                // under clipping it saw scaled gradients, so the norms before clipping are divided back.
                let preClip = optimizerStep(tape, loss: loss, optimizer: opt, params: all, clipNorm: c.clipNorm, lrScale: lrScale)
                let (gradNorm, gradNorms) = gradientNorms(preClip: preClip, clipNorm: c.clipNorm, optimizer: opt, params: all)
                let paramNorms = all.map { opt.norms[ObjectIdentifier($0)]?.param ?? l2($0) }
                for t in all { t.zeroGrad() }
                if all.contains(where: { t in (0..<t.count).contains { !t.data[$0].isFinite } }) {
                    result.divergedAtStep = step + 1
                    emit(.diverged(step: step + 1, reason: .parameters))
                    return finish(.diverged)
                }
                step += 1
                s.meter.stepEnded(&result)
                lossSum += Double(lv)
                lossCount += 1
                let names = method.trainable.map(\.name)
                let record = StepRecord(
                    step: step, epoch: epoch, loss: Double(lv), lr: opt.groups.map { Double($0.lr * lrScale) },
                    gradNorm: gradNorm,
                    gradNorms: Dictionary(uniqueKeysWithValues: zip(names, gradNorms)),
                    paramNorms: Dictionary(uniqueKeysWithValues: zip(names, paramNorms)),
                    seconds: Date().timeIntervalSince(stepStart))
                result.steps = result.steps ?? []
                result.steps!.append(record)
                emit(.step(record))
                if shouldStop?() == true { return finish(.interrupted) }
            }
            var rec = EpochRecord(epoch: epoch, step: step, trainLoss: lossSum / Double(max(lossCount, 1)), metrics: [:], selection: nil,
                                  extras: nil, seconds: 0)
            if epoch % c.evalEvery == 0 || epoch == c.epochs || step >= totalSteps {
                let preds = try s.meter.evaluation(&result) {
                    try evaluate(evalEx, data: val, session: s)
                }
                rec.metrics = try Metrics.score(def, set: c.templates, examples: evalEx, predictions: preds)
                if let selectEx {
                    let sp = try s.meter.evaluation(&result) {
                        try evaluate(selectEx, data: selectData, session: s)
                    }
                    rec.selectMetrics = try Metrics.score(def, set: c.templates, examples: selectEx, predictions: sp)
                    rec.selection = rec.selectMetrics?[def.selectionMetric]
                } else {
                    rec.selection = rec.metrics[def.selectionMetric]
                }
                result.last = rec.metrics
                result.predictions = preds
                let bestSelection = result.history.first(where: { $0.epoch == result.bestEpoch })?.selection
                let higherIsBetter = try def.selectionEntry.higherIsBetter
                let isBest = result.bestEpoch == nil || Trainer.improves(rec.selection, over: bestSelection, higherIsBetter: higherIsBetter)
                if isBest {
                    result.best = rec.metrics
                    result.bestEpoch = epoch
                    result.bestPredictions = preds
                }
                emit(.evaluated(epoch: epoch, metrics: rec.metrics, selection: rec.selection, isBest: isBest))
            }
            if let diagnostics = method as? EpochDiagnostics { rec.extras = try diagnostics.epochMetrics() }
            rec.seconds = Date().timeIntervalSince(t0)
            result.history.append(rec)
            if let ck = checkpointPath {
                if mayWrite?() == false { return finish(.interrupted) }
                try saveCheckpoint(ck, method: method, opt: opt, result: result)
            }
            emit(.epoch(rec, done: epoch, total: s.plannedEpochs, seconds: result.history.reduce(0) { $0 + $1.seconds }))
            if epoch == interruptAfterEpoch { return finish(.interrupted) }
            epoch += 1
        }
        result.status = .done
        if c.decodeMaxTokens == .auto {
            // Evaluated rows (over every evaluation of this process) that reached the auto cap without
            // </s> while their text could still name a label; 0 means every score equals the uncapped
            // decode's (docs/performance.md).
            result.extras = (result.extras ?? [:]).merging(["decode_unfinished_rows": Double(decodeUnfinishedRows)]) { $1 }
        }
        if let need = decodeCapShortfall, need > 0 {
            // The numeric cap was below the longest label target: the scores may count cut outputs as labels.
            result.extras = (result.extras ?? [:]).merging(["decode_cap_below_label_tokens": Double(need)]) { $1 }
        }
        if c.selectOn != nil || c.evalMode != nil {
            var x = result.extras ?? [:]
            x["selection_examples"] = Double(selectEx?.count ?? evalEx.count)
            if let sel = result.history.first(where: { $0.epoch == result.bestEpoch })?.selection ?? initialSelection { x["selection_score"] = sel }
            result.extras = x
        }
        try result.recordInvalidFractions(def, examples: evalEx)
        result.numerics = Trainer.numerics
        if let path = artifactPath {
            if mayWrite?() == false { return finish(.interrupted) }
            try createParentDirectory(of: path)
            try SafeTensorsFile.write(method.state, to: path, metadata: ["config": c.json, Trainer.numericsKey: Trainer.numerics])
        }
        s.meter.finish(&result, state: method.state, artifactPath: artifactPath)
        return finish(.done)
    }

    /// Predictions for `ex` (examples of `data`, which rank classification reads ReCoRD's entities
    /// from), in chunks of `eval_batch_size`.
    func evaluate(_ ex: [Example], data: TaskData, session s: TrainingSession) throws -> [String] {
        let inj = try s.method.injection(drop: .eval)
        let cap = try (s.objective as? T5Objective).map { try decodeLimit(ex, data: data, tok: $0.tok, def: s.def) } ?? 0
        var preds: [String] = []
        var i = 0
        while i < ex.count {
            let chunk = Array(ex[i..<min(ex.count, i + config.evalBatchSize)])
            let b = try s.objective.makeBatch(chunk)
            let p = try s.objective.predict(chunk, b, data: data, injection: inj, maxNewTokens: cap)
            preds += p.predictions
            // Rows the `auto` cap stopped before </s>: only these can differ from the uncapped decode.
            if config.decodeMaxTokens == .auto { decodeUnfinishedRows += p.unfinished }
            i += config.evalBatchSize
        }
        return preds
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
    /// sets the method's `prompt` table (PT, Residual PT, DePT), whose shape must match. The
    /// adapter must be one for the run's kind of model (`isT5`: SEQ_2_SEQ_LM; else CAUSAL_LM), and
    /// of type PROMPT_TUNING: DePT's PROMPT_TUNING_LORA also holds an input update, which would be
    /// dropped (the method's A and B keep their own initialisation), so it is refused.
    public static func initialize(_ method: TuningMethod, from path: String, isT5: Bool) throws {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
            guard let prompt = method.state["prompt"] else {
                throw TrainError("\(path): a PEFT prompt sets a method's prompt table; \(type(of: method).name) has none (its tensors: \(method.state.keys.sorted().joined(separator: ", ")))")
            }
            // The type first: loading a LoRA adapter without the model's parameters fails on its
            // target modules, which would name the wrong problem.
            let cfgPath = (path as NSString).appendingPathComponent("adapter_config.json")
            if let data = FileManager.default.contents(atPath: cfgPath),
               let type = (try? JSONSerialization.jsonObject(with: data) as? [String: Any])?["peft_type"] as? String, type != "PROMPT_TUNING" {
                let dept = type == "PROMPT_TUNING_LORA"
                    ? ": DePT's adapter also holds an input update (lora_embedding_A/B) that a prompt transfer would drop; pass a safetensors file of the run's tensors (prompt, lora_embedding_A, lora_embedding_B; docs/formats.md) instead, or evaluate it with `eval --adapter`"
                    : ""
                throw TrainError("\(cfgPath): --init-from reads a PROMPT_TUNING adapter; this one is \(type)\(dept)")
            }
            let a = try PEFTAdapter.load(directory: path, parameters: [], dModel: prompt.shape[1], isT5: isT5)
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
        try createParentDirectory(of: path)
        try SafeTensorsFile.write(tensors, to: path, metadata: ["config": config.json, "result": r,
                                                              Trainer.checksumKey: Trainer.tensorChecksum(tensors),
                                                              Trainer.numericsKey: Trainer.numerics])
    }

    /// The checkpoint metadata key of `numerics`.
    static let numericsKey = "numerics"

    /// What fixes this process's bits beyond the config: the GEMM kernel and its blocking (and the
    /// OpenBLAS core) and the thread count. A checkpoint written under other numerics is not
    /// resumed: its first epochs and the rest would come from two setups, bit-identical to neither,
    /// while the record names only the last.
    public static var numerics: String { "\(BLAS.kernelDescription); threads \(Parallel.threads)" }

    /// The parts of a numerics (or `tool_version`) string that change bits: `mc` and `nc` and the
    /// "(calibrated)" mark are taken out (the blocking's mc and nc never change a product's bits,
    /// kc does and stays; GEMMBlocking.swift), so the same kernel on hosts of other cache sizes,
    /// or after a `calibrate` that kept the kernel, is the same numerics. Checkpoint resumes and
    /// `results`' "Mixed numerics" compare these (they compared the whole string: a run moved to a
    /// host with another L2 started over).
    /// "promptrepro avx512 12x32 mc 4092 kc 384 nc 160 + openblas 0.3.21 Cooperlake (calibrated); threads 2"
    /// → "promptrepro avx512 12x32 kc 384 + openblas 0.3.21 Cooperlake; threads 2".
    public static func bitsOfNumerics(_ s: String) -> String {
        var out = s.replacingOccurrences(of: " (calibrated)", with: "")
        for key in ["mc", "nc"] {
            out = out.replacingOccurrences(of: "\\b\(key) [0-9]+ ?", with: "", options: .regularExpression)
        }
        return out.replacingOccurrences(of: " +", with: " ", options: .regularExpression)
            .replacingOccurrences(of: " ;", with: ";").trimmingCharacters(in: .whitespaces)
    }

    /// `s` without OpenBLAS's release ("openblas 0.3.21 Zen" → "openblas Zen"): records written
    /// before 2026-12-07 name the core only.
    public static func withoutOpenBLASRelease(_ s: String) -> String {
        s.replacingOccurrences(of: "openblas [0-9][^ ;]* ", with: "openblas ", options: .regularExpression)
    }

    /// Whether two numerics (or `tool_version`) strings give the same bits: equal once `mc`, `nc`
    /// and the calibration mark are out (`bitsOfNumerics`), and, where one of them predates the
    /// OpenBLAS release in records, equal without it (an old record and a new one of the same
    /// setup read as two setups: a checkpoint started over, `results` said "Mixed numerics").
    public static func numericsAgree(_ a: String, _ b: String) -> Bool {
        let x = bitsOfNumerics(a), y = bitsOfNumerics(b)
        if x == y { return true }
        let (sx, sy) = (withoutOpenBLASRelease(x), withoutOpenBLASRelease(y))
        return (sx == x || sy == y) && sx == sy
    }

    /// `setups` (numerics strings of one cell's runs) reduced to the distinct ones that give
    /// other bits (`numericsAgree`), sorted; one element when they all agree.
    public static func distinctNumerics(_ setups: [String]) -> [String] {
        let bits = Set(setups.map(bitsOfNumerics))
        // A record without the release agrees with any release of its setup; known releases stay
        // apart from each other (0.3.21 and 0.3.26 beside an old record are still two setups).
        let known = bits.filter { withoutOpenBLASRelease($0) != $0 }
        let knownStripped = Set(known.map(withoutOpenBLASRelease))
        let old = bits.subtracting(known).filter { !knownStripped.contains($0) }
        return Array(known.union(old)).sorted()
    }

    /// The checkpoint metadata key of `tensorChecksum`.
    static let checksumKey = "tensor_checksum"

    /// A checksum of tensors, to find flipped or lost bytes in a checkpoint before resuming from it
    /// (the file's own structure catches truncation, not a changed value): names in sorted order,
    /// each name's UTF-8 bytes, shape and float bit patterns folded into four 64-bit FNV-1a lanes
    /// (word i into lane i mod 4, so the multiplies do not wait on each other), as 64 hex digits.
    /// Not cryptographic: it guards against damage, not against an adversary.
    static func tensorChecksum(_ tensors: [String: Tensor]) -> String {
        let prime: UInt64 = 0x100000001b3
        var h: (UInt64, UInt64, UInt64, UInt64) = (0xcbf29ce484222325, 0x84222325cbf29ce4, 0x9ce484222325cbf2, 0x2325cbf29ce48422)
        func mix(_ w: UInt64, into x: inout UInt64) { x = (x ^ w) &* prime }
        for name in tensors.keys.sorted() {
            let t = tensors[name]!
            for b in name.utf8 { mix(UInt64(b), into: &h.0) }
            for d in t.shape { mix(UInt64(bitPattern: Int64(d)), into: &h.1) }
            let n = t.count
            t.data.withMemoryRebound(to: UInt32.self, capacity: n) { w in
                var i = 0
                while i + 4 <= n {
                    mix(UInt64(w[i]), into: &h.0); mix(UInt64(w[i + 1]), into: &h.1)
                    mix(UInt64(w[i + 2]), into: &h.2); mix(UInt64(w[i + 3]), into: &h.3)
                    i += 4
                }
                while i < n { mix(UInt64(w[i]), into: &h.0); i += 1 }
            }
            mix(UInt64(n), into: &h.2)
        }
        return [h.0, h.1, h.2, h.3].map { String(format: "%016llx", $0) }.joined()
    }
}

/// The gradient norms of the step `optimizerStep` just took, as the step log records them: the
/// global L2 norm over `params` and each tensor's, both before clipping (what torch's
/// `clip_grad_norm_` returns and computes from). They come from the optimizer's own update loops
/// (`Optimizer.norms`, no extra pass over the weights); under clipping those loops saw the clipped
/// gradients, so they are divided back by the clip coefficient max/(‖g‖ + 1e-6).
/// - Parameters: `preClip` is `optimizerStep`'s return value (the global norm when it clipped).
public func gradientNorms(preClip: Float?, clipNorm: Float?, optimizer: Optimizer, params: [Tensor]) -> (global: Double, perTensor: [Double]) {
    let coef = preClip.flatMap { n in clipNorm.map { Double(min(1, $0 / (n + 1e-6))) } } ?? 1
    let perTensor = params.map { (optimizer.norms[ObjectIdentifier($0)]?.grad ?? 0) / coef }
    return (preClip.map(Double.init) ?? perTensor.reduce(0) { $0 + $1 * $1 }.squareRoot(), perTensor)
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
    static let configKeys: [String] = []
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

extension Trainer {
    /// New tokens greedy decoding may produce per row: `decode_max_tokens` (nil: `max_target_length`);
    /// `auto`: the longest candidate target of `ex` (the template's label targets, ReCoRD's
    /// entities) in tokens, </s> included, + 1, at most `max_target_length`. Tasks whose targets are
    /// free text (no candidate set) refuse `auto`.
    public func decodeLimit(_ ex: [Example], data: TaskData, tok: TextTokenizer, def: TaskDefinition) throws -> Int {
        switch config.decodeMaxTokens {
        case nil: return config.maxTargetLength
        case .tokens(let n)?:
            // A cap below the longest label target with its </s> can end a row inside a longer
            // output and read it as a label ("0 0 0…" cut to "0"): scores rise that the uncapped
            // decode does not give (METHODS.md §4.3). Said once per run, and recorded.
            if decodeCapShortfall == nil, (config.evalMode ?? .generate) == .generate {
                // A task without a candidate set (free-text targets) has no label length to check.
                let longest = (try? longestLabelTarget(ex, data: data, tok: tok, def: def)) ?? 0
                decodeCapShortfall = n < longest ? longest : 0
                if n < longest {
                    FileHandle.standardError.write(Data(("warning: decode_max_tokens \(n) is below the longest label target of \(config.task) under templates \(config.templates.rawValue) "
                        + "(\(longest) tokens with </s>): a decode cut there can read a longer output as a label and score it, which the uncapped decode would not "
                        + "(METHODS.md §4.3); use auto or at least \(longest)\n").utf8))
                }
            }
            return n
        case .auto?:
            let longest: Int
            do { longest = try longestLabelTarget(ex, data: data, tok: tok, def: def) } catch {
                throw TrainError("decode_max_tokens auto: \(error); give a number instead")
            }
            return min(longest + 1, config.maxTargetLength)
        }
    }

    /// The longest candidate target of `ex` (the template's label targets, ReCoRD's entities) in
    /// tokens, </s> included, at most `max_target_length`. Errors: a task whose targets are free
    /// text (no candidate set).
    func longestLabelTarget(_ ex: [Example], data: TaskData, tok: TextTokenizer, def: TaskDefinition) throws -> Int {
        var longest = 0
        for e in ex {
            for t in try RankCandidates.candidates(def, set: config.templates, data: data, example: e) {
                longest = max(longest, truncate(tok.encode(t), config.maxTargetLength, eos: tok.eosId).count)
            }
        }
        return longest
    }
}
