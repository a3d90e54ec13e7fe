// Mean and standard deviation over seeds per cell. Both estimators are kept: the sample standard
// deviation (n − 1 denominator, what numpy.std(ddof=1) / pandas give) and the population one
// (n denominator, numpy.std default) — DPT Table 3 does not say which it used.
import Foundation
import Support
import Tasks
import Training

public struct Stat: Codable, Equatable, Sendable {
    public var n: Int
    public var mean: Double
    public var sampleStd: Double?      // nil when n < 2
    public var populationStd: Double
    public var min: Double
    public var max: Double
    public var values: [Double]

    public init(_ v: [Double]) {
        n = v.count
        let m = v.isEmpty ? Double.nan : v.reduce(0, +) / Double(v.count)
        mean = m
        let ss = v.reduce(0) { $0 + ($1 - m) * ($1 - m) }
        sampleStd = v.count > 1 ? (ss / Double(v.count - 1)).squareRoot() : nil
        populationStd = v.isEmpty ? .nan : (ss / Double(v.count)).squareRoot()
        min = v.min() ?? .nan
        max = v.max() ?? .nan
        values = v
    }
}

/// One run of a cell: its training seed and its few-shot sample's seed (equal under the papers'
/// protocol). Ordered by (sample seed, seed); printed "s2" or, when the seeds differ, "s2/d1".
public struct Replicate: Hashable, Comparable, Codable, Sendable, CustomStringConvertible, ExpressibleByIntegerLiteral {
    public var seed: Int
    public var sampleSeed: Int
    public init(seed: Int, sampleSeed: Int? = nil) { self.seed = seed; self.sampleSeed = sampleSeed ?? seed }
    /// A run of the papers' protocol (sample seed = seed).
    public init(integerLiteral seed: Int) { self.init(seed: seed) }
    public static func < (a: Replicate, b: Replicate) -> Bool { (a.sampleSeed, a.seed) < (b.sampleSeed, b.seed) }
    public var description: String { sampleSeed == seed ? "s\(seed)" : "s\(seed)/d\(sampleSeed)" }
}

public struct CellResult: Codable, Sendable {
    public var cell: String
    public var variant: String
    public var method: String
    public var task: String
    public var model: String
    public var k: Int?
    public var seeds: [Int]
    /// The sample seed of each run, in `seeds`' order; nil when every run's sample seed is its
    /// training seed (the papers' protocol), so exports of such cells are unchanged.
    public var sampleSeeds: [Int]?
    public var statuses: [String: Int]
    public var trainableParams: Int?
    public var best: [String: Stat]
    public var last: [String: Stat]
    public var divergedSeeds: [Int]
    /// Rank-probe runs: per epoch, means over seeds of (positive, negative) Σ entries and rank(P).
    public var probe: [ProbePoint]?
    /// The protocol variants the cell's runs use (`TrainConfig.variantLabel`); nil: the papers' protocol.
    public var protocolLabel: String?
    /// Per-run measurements over the finished seeds, by `run_metrics` name (efficiency: peak_rss_bytes,
    /// seconds_per_step, flops_per_step, …; docs/formats.md). Nil when no run has any (records
    /// and exports made before them).
    public var extras: [String: Stat]? = nil
    /// The template set the runs' targets use and how many validation examples (a prefix of the
    /// split: `eval_limit`) they scored; nil in exports made before these were kept, or when the
    /// cell's runs differ.
    public var templates: String?
    public var evalExamples: Int?
    /// When the cell's runs scored different validation sets (another `eval_limit`, template set or
    /// half: an adapter evaluated without the spec's limit beside runs with it), each set, as
    /// "templates dpt, 64 examples" (", val-half report half" where it applies); nil otherwise.
    /// Such a cell's mean averages scores of different examples: `results` names it and `compare`
    /// does not pair its runs (it once did, and passed the gate, because `evalExamples` is nil then).
    public var mixedEvalSets: [String]? = nil
    /// True when the runs reported on the val-half protocol's report half (a fixed permutation's
    /// second half, `FewShotSampler.validationHalves`) instead of the split's first rows; nil otherwise.
    public var evalHalf: Bool?
    /// "best" / "last" → over the cell's runs, the fraction (0–1) of validation outputs that name
    /// no label (`Metrics.invalidFraction`); nil where no run has one.
    public var invalidFraction: [String: Stat]?
    /// The data files (relative to the data directory, as `data_hashes` names them) the cell's
    /// finished runs read, sorted; nil in exports made before they were kept. Tables name those
    /// that are subsets of an official split (`TaskDefinition.Files`).
    public var dataFiles: [String]?
    /// Per counted run (`PlannedRuns.key`: cell, seed, sample seed), the hash of the config it ran
    /// (`PlannedRuns.configHash`); nil in exports made before it was kept. A read of an export
    /// leaves out a cell whose runs the spec no longer plans with these configs (`ExportedCells`).
    public var runConfigs: [String: String]?
    /// Per run of the cell, finished or not (`PlannedRuns.key` → status as `statuses` counts it:
    /// "incomplete" for a finished run without all its scores); nil in exports made before it was
    /// kept. `keeping` recounts `statuses` and `divergedSeeds` from it.
    public var runStatuses: [String: String]?
    /// Per counted run (`PlannedRuns.key`), the numerics setup it ran under
    /// (`ResultsStore.numericsSetup`: "TOOL_VERSION; threads N"), for runs that recorded one; nil
    /// in exports made before it was kept. `mixedNumerics` reads it, so a table built from an
    /// export still says when a cell's seeds mix setups.
    public var runNumerics: [String: String]?
    /// Per counted run (`PlannedRuns.key`) that a sweep adopted instead of training it in this
    /// cell, where it ran (`runs.adopted_from`: "SPEC [PROFILE] CELL seed N"); nil when none was
    /// adopted (and in exports made before it was kept), so that a read of the export can say so.
    public var runAdoptedFrom: [String: String]?
    /// Per counted run (`PlannedRuns.key`), the input parts of the identity it ran with
    /// (`PlannedRuns.inputParts(identityJSON:)`: few-shot manifest, data files, weights, model
    /// files, as sha256s); nil in exports made before it was kept. A read of the export leaves out
    /// a cell whose runs read a data file or manifest that has changed here since
    /// (`ExportedCells.current`), as a store read leaves such runs out.
    public var runInputs: [String: [String: String]]?
    /// Per counted run (`PlannedRuns.key`), the task-file and rule parts of the identity it ran
    /// with (`PlannedRuns.storedTaskParts(identityJSON:)`: part name → canonical JSON); nil in
    /// exports made before it was kept. A read of the export leaves out a cell whose runs ran
    /// under a task file (labels, templates, metrics) or a rule of the code other than the
    /// current ones, as a store read does.
    public var runTaskParts: [String: [String: String]]?
    /// Per counted evaluated run (`PlannedRuns.key`), the adapter it scored (`TrainConfig.adapter`:
    /// "PATH#sha256:…#adapter_config:…"); nil without evaluated runs. A read of the export leaves
    /// out a cell whose adapter files have other contents at that path now.
    public var runAdapters: [String: String]?

    /// The distinct setups (`Trainer.distinctNumerics`: only what changes bits) of the counted
    /// runs, when there is more than one; nil otherwise.
    public var mixedNumerics: [String]? {
        guard let runs = runNumerics else { return nil }
        let setups = Trainer.distinctNumerics(Array(runs.values))
        return setups.count > 1 ? setups : nil
    }

    public init(cell: String, variant: String, method: String, task: String, model: String, k: Int?, seeds: [Int], statuses: [String: Int],
                trainableParams: Int?, best: [String: Stat], last: [String: Stat], divergedSeeds: [Int], probe: [ProbePoint]?) {
        self.cell = cell; self.variant = variant; self.method = method; self.task = task; self.model = model; self.k = k
        self.seeds = seeds; self.statuses = statuses; self.trainableParams = trainableParams; self.best = best; self.last = last
        self.divergedSeeds = divergedSeeds; self.probe = probe
    }

    /// The finished runs, in the order of every `Stat.values` of the cell.
    public var replicates: [Replicate] {
        zip(seeds, sampleSeeds ?? seeds).map { Replicate(seed: $0, sampleSeed: $1) }
    }

    /// Whether any run's sample seed differs from its training seed (a crossed design).
    public var crossesSampleSeeds: Bool { sampleSeeds != nil }
}

extension CellResult {
    /// "✗ failed 2/3" (", diverged 1/3", ", incomplete 1/3": finished without all its scores, see
    /// `cellResults`): how many of the cell's runs ended without a score, or nil
    /// when none did. Tables show it instead of (or beside) the mean, so a failed cell never reads as
    /// "not run".
    public var failureMarker: String? {
        let total = statuses.values.reduce(0, +)
        let parts = [("failed", statuses["failed"] ?? 0), ("diverged", statuses["diverged"] ?? 0), ("incomplete", statuses["incomplete"] ?? 0)]
            .filter { $0.1 > 0 }.map { "\($0.0) \($0.1)/\(total)" }
        return parts.isEmpty ? nil : "✗ " + parts.joined(separator: ", ")
    }
}

extension CellResult {
    /// The paper-formula trainable count its runs stored (run metric `paper_params`: the method's
    /// formula on the model column's architecture); nil in records and exports made before it was
    /// stored, or when the runs disagree.
    public var paperParams: Int? {
        guard let s = extras?["paper_params"], s.n > 0, s.min == s.max else { return nil }
        return Int(exactly: s.min)
    }
}

public struct ProbePoint: Codable, Equatable, Sendable {
    public var epoch: Int
    public var positive: Double
    public var negative: Double
    public var rank: Double
    public init(epoch: Int, positive: Double, negative: Double, rank: Double) {
        self.epoch = epoch; self.positive = positive; self.negative = negative; self.rank = rank
    }
}

/// The runs a spec plans now (`ExperimentSpec.plannedRuns`): per run, keyed by cell, seed and
/// sample seed, the sha256 of its planned config JSON without `threads` (as the run identity leaves
/// it out: it moves only the last bits). A stored row counts for the spec only when its key is
/// planned and its config (`runs.config_json`, hashed the same way) is the planned one: a row
/// of a cell, k or seed the spec no longer lists, or of a spec edited since its sweep, would
/// otherwise stand in tables, exports and the gate as if it were the spec's result.
public struct PlannedRuns: Sendable {
    /// Plan key → config hash; set at `init` (`trains(cell:)` and `runsCoordinates(of:)` are
    /// derived from it there).
    public private(set) var configHashes: [String: String]
    /// Plan key → the identity parts that come from the task file (`RunIdentity.taskParts`: part
    /// name → canonical JSON); empty: not compared. A row whose stored identity has another value
    /// for a part (the task file edited since the row ran, not re-swept) does not count.
    public var taskParts: [String: [String: String]] = [:]
    /// Plan key → the identity's input parts as a read computes them now (`inputParts(identityJSON:)`),
    /// only those this machine can compute (a data file or checkpoint not found here is left out,
    /// not compared); empty: not compared. A row whose stored identity has another value (a data
    /// file, manifest or checkpoint changed since the row ran, not re-swept) does not count.
    public var inputParts: [String: [String: String]] = [:]
    /// Task → its validation file's part of `inputParts` ("FILE:sha256") as a read finds it now,
    /// for the evaluated runs no plan key covers (an adapter scored on an edited validation file
    /// kept its old score); empty: not compared.
    public var validationData: [String: String] = [:]
    /// Model column → the checkpoint's parts of `inputParts` (`weights`, `model_files`) as a store
    /// read finds them now, for the evaluated runs no plan key covers (an adapter scored on a base
    /// checkpoint or tokenizer replaced since kept its old score); empty: not compared (a read of
    /// an export hashes no checkpoint).
    public var modelData: [String: (modelSpec: String, parts: [String: String])] = [:]
    /// For evaluated runs, which no plan key covers: whether a row's stored task parts
    /// (`storedTaskParts`) disagree with those the task file and the rules that move an evaluation
    /// give now for its task, template set (raw value), selection split (raw value) and eval_limit
    /// (where known: `limitKnown`) (`RunIdentity.evaluatedTaskChanged`, set by the plan's builder,
    /// which reads the task registry). nil: not compared (an adapter scored under a template edited
    /// since kept its old score).
    public var evaluatedTaskCheck: (@Sendable (_ task: String, _ templates: String, _ selectOn: String?, _ evalLimit: Int?, _ limitKnown: Bool,
                                               _ stored: [String: String]) -> Bool)?

    /// `evaluatedTaskCheck` on an evaluated row's decoded config and identity JSON; false without
    /// either (or without stored task parts: not compared).
    func evaluatedTaskChanged(config c: TrainConfig?, identityJSON: String?) -> Bool {
        let stored = Self.storedTaskParts(identityJSON: identityJSON)
        guard let check = evaluatedTaskCheck, !stored.isEmpty, let c else { return false }
        return check(c.task, c.templates.rawValue, c.selectOn?.rawValue, c.evalLimit, true, stored)
    }

    /// `evaluatedTaskCheck` on an exported evaluated run's task parts (`CellResult.runTaskParts`)
    /// and its cell's task and template set; an export keeps no config, so the selection split
    /// is the one the stored parts show (MultiRC's `val_half` part is entered under val-half only),
    /// and the eval_limit rule is not compared (its limit is not kept).
    /// A cell whose runs scored under several template sets or limits (no one `templates`) is
    /// checked against every set: changed only when none gives the stored parts.
    public func evaluatedTaskChanged(task: String, templates: String?, stored: [String: String]) -> Bool {
        guard let check = evaluatedTaskCheck, !stored.isEmpty else { return false }
        let selectOn = (stored["task"] ?? "").contains("\"val_half\"") ? SelectionSplit.valHalf.rawValue : nil
        guard let templates else { return TemplateSet.allCases.allSatisfy { check(task, $0.rawValue, selectOn, nil, false, stored) } }
        return check(task, templates, selectOn, nil, false, stored)
    }

    /// Whether an evaluated run of `cell` (identity `identityJSON`, its `inputParts`) scored a
    /// validation file other than `validationData` has for its task now.
    public func validationChanged(cell: String, stored: [String: String]) -> Bool {
        let parts = cell.split(separator: "|", omittingEmptySubsequences: false)
        guard parts.count > 1, let now = validationData[String(parts[1])], let then = stored["data.validation"] else { return false }
        return !then.hasPrefix("missing") && then != now
    }

    /// Whether an evaluated run of `cell` (its stored `inputParts`) ran on a base checkpoint whose
    /// weights differ from those `modelData` has for its column now, or, where its --model is the
    /// checkpoint the column loads, whose config/tokenizer files do. A run of another checkpoint
    /// (another name or path) with the column's weights counts; one of other weights does not
    /// (`eval` stored such runs with a warning before 2026-12-08, and `compare` paired them with
    /// the column's runs).
    public func evaluatedModelChanged(cell: String, config c: TrainConfig?, stored: [String: String]) -> Bool {
        let parts = cell.split(separator: "|", omittingEmptySubsequences: false)
        guard parts.count > 2, let now = modelData[String(parts[2])] else { return false }
        let compared = c?.model == now.modelSpec ? now.parts : now.parts.filter { $0.key == "weights" }
        return compared.contains { name, value in stored[name].map { !$0.hasPrefix("missing") && $0 != value } ?? false }
    }
    /// Cells of searched variants whose search has not chosen a point under the spec as it is now:
    /// the spec plans them, but not yet which runs. Their stored rows are kept and do not count
    /// (`StaleRun.Reason.searchUndecided`): they ran at a point an earlier search chose, under a
    /// grid or selection the spec may no longer have (they counted, and the gate passed on them,
    /// after the grid lost that point).
    public var undecidedCells: Set<String>

    public init(_ runs: [(key: String, configHash: String)], undecidedCells: Set<String> = []) {
        configHashes = Dictionary(runs.map { ($0.key, $0.configHash) }, uniquingKeysWith: { a, _ in a })
        self.undecidedCells = undecidedCells
        trainedCells = Set(runs.compactMap { Self.run(ofKey: $0.key)?.cell })
        trainedCoordinates = Set(trainedCells.map(Self.coordinates))
    }

    /// Cells whose runs the plan lists (any seed); `trains(cell:)` adds the undecided searched ones.
    private var trainedCells: Set<String> = []
    /// The task, model column and k of `trainedCells` ("task|model|kK": a cell name without its
    /// variant, `RunSpec.cellName`).
    private var trainedCoordinates: Set<String> = []

    /// Whether the spec trains `cell` (its runs are listed, or its search has yet to choose them).
    public func trains(cell: String) -> Bool { trainedCells.contains(cell) || undecidedCells.contains(cell) }

    /// Whether the spec runs any variant at `cell`'s task, model column and k; true for a plan
    /// built without runs.
    public func runsCoordinates(of cell: String) -> Bool {
        let c = Self.coordinates(cell)
        return (trainedCoordinates.isEmpty && undecidedCells.isEmpty) || trainedCoordinates.contains(c) || undecidedCells.contains { Self.coordinates($0) == c }
    }

    /// "task|model|kK" of a cell "variant|task|model|kK".
    static func coordinates(_ cell: String) -> String { cell.split(separator: "|", omittingEmptySubsequences: false).dropFirst().joined(separator: "|") }

    /// The plan of `runs` (a spec's expansion).
    public init(runs: [RunSpec], undecidedCells: Set<String> = []) {
        self.init(runs.map { (Self.key(cell: $0.cell, seed: $0.seed, sampleSeed: $0.replicate.sampleSeed), Self.configHash($0.config)) },
                  undecidedCells: undecidedCells)
        for r in runs where cellIndex[r.cell] == nil { cellIndex[r.cell] = cellIndex.count }
    }

    /// Cell → its place in the spec's expansion (first run of the cell); empty when built from keys.
    /// Reads list cells in this order, so two stores of the same runs (merged in other orders)
    /// print the same rows in the same order (they followed the store's row ids).
    public var cellIndex: [String: Int] = [:]

    /// sha256 of `c`'s JSON without `threads`.
    public static func configHash(_ c: TrainConfig) -> String {
        var c = c
        c.threads = nil
        return sha256Hex(c.json)
    }

    public static func key(cell: String, seed: Int, sampleSeed: Int) -> String { "\(cell)#\(seed)#\(sampleSeed)" }

    /// The run of a `key`: its cell and replicate (seed, sample seed); nil for a string `key` did not make.
    public static func run(ofKey key: String) -> (cell: String, replicate: Replicate)? {
        let p = key.split(separator: "#", omittingEmptySubsequences: false)
        guard p.count >= 3, let seed = Int(p[p.count - 2]), let sample = Int(p[p.count - 1]) else { return nil }
        return (p.dropLast(2).joined(separator: "#"), Replicate(seed: seed, sampleSeed: sample))
    }

    /// A JSON value as one canonical string (sorted keys), for comparing identity parts.
    public static func canonical(_ v: Any) -> String {
        String(decoding: (try? JSONSerialization.data(withJSONObject: [v], options: [.sortedKeys])) ?? Data(), as: UTF8.self)
    }

    /// Parts of `taskParts` that a row must have where the plan has them (`RunIdentity.ruleParts`:
    /// a rule of the code that changed those runs' numbers; a row without it ran before the rule).
    public static let ruleParts: Set<String> = ["rules"]

    /// Whether a row's stored identity (`identity_json`) disagrees with the plan's task parts on a
    /// part it has (rows stored before a part existed are compared on the others); `rules`: on
    /// the rule parts only (`ruleParts`), where a row lacking one the plan has disagrees.
    func taskChanged(key: String, identityJSON: String?, rules: Bool = false) -> Bool {
        guard identityJSON != nil else { return false }
        return taskChanged(key: key, stored: Self.storedTaskParts(identityJSON: identityJSON), rules: rules)
    }

    /// `taskChanged(key:identityJSON:rules:)` on a run's parts as stored (`storedTaskParts`,
    /// `CellResult.runTaskParts`).
    public func taskChanged(key: String, stored: [String: String], rules: Bool = false) -> Bool {
        guard let planned = taskParts[key] else { return false }
        return planned.contains { name, value in
            guard Self.ruleParts.contains(name) == rules else { return false }
            return stored[name].map { Self.recanonical($0) != Self.recanonical(value) } ?? rules
        }
    }

    /// `canonical` of the value a canonical string holds, as this machine writes it (an export
    /// written elsewhere may escape or format a value otherwise).
    public static func recanonical(_ s: String) -> String {
        guard let v = (try? JSONSerialization.jsonObject(with: Data(s.utf8))) as? [Any], let first = v.first else { return s }
        return canonical(first)
    }

    /// The parts of a run identity's JSON other than its config and inputs (the task file's and
    /// the rules'), each as `canonical` JSON; empty for no JSON.
    public static func storedTaskParts(identityJSON: String?) -> [String: String] {
        guard let json = identityJSON, let id = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any] else { return [:] }
        var out: [String: String] = [:]
        for (name, value) in id where !["config", "data", "manifest", "weights", "model_files"].contains(name) { out[name] = canonical(value) }
        return out
    }

    /// The input parts of a run identity's JSON (`RunIdentity.compute`), by name: `manifest`,
    /// `data.SPLIT` (each entry of its `data` object), `weights` and `model_files`, their values as stored
    /// ("missing…" where the identity was computed without the file). Empty for no JSON.
    public static func inputParts(identityJSON: String?) -> [String: String] {
        guard let json = identityJSON, let id = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any] else { return [:] }
        var out: [String: String] = [:]
        if let m = id["manifest"] as? String { out["manifest"] = m }
        for (split, v) in (id["data"] as? [String: String]) ?? [:] { out["data.\(split)"] = v }
        if let w = id["weights"] as? String { out["weights"] = w }
        if let m = id["model_files"] as? String { out["model_files"] = m }
        return out
    }

    /// Whether a row's stored identity disagrees with `inputParts` on a part it has. A part the row
    /// was planned without ("missing": a shard planned where the data or checkpoint was not, its
    /// worker then reading them) is not compared, as the worker does not compare it
    /// (`Worker.inputMismatch`).
    func inputsChanged(key: String, identityJSON: String?) -> Bool {
        inputsChanged(key: key, stored: Self.inputParts(identityJSON: identityJSON))
    }

    /// `inputsChanged(key:identityJSON:)` on a run's input parts as stored (`CellResult.runInputs`).
    public func inputsChanged(key: String, stored: [String: String]) -> Bool {
        guard let planned = inputParts[key] else { return false }
        return planned.contains { name, value in stored[name].map { !$0.hasPrefix("missing") && $0 != value } ?? false }
    }

    /// Why a stored row does not count for the plan, nil when it does. Evaluated runs (`eval
    /// --adapter`: adapters trained elsewhere, stored beside a spec's cells under variants of their
    /// own) are outside any plan and count, unless stored in a cell the spec trains (its own runs
    /// would be replaced by an adapter of any method: the gate passed on the baseline's adapters
    /// stored as the new method's), scored on a validation file or under a task definition that
    /// has changed since (`validationChanged`, `evaluatedTaskCheck`), or evaluated from an adapter
    /// file that has changed since (`adapterChanged(adapter:)`).
    public func staleReason(cell: String, seed: Int, sampleSeed: Int, configJSON: String?, status: String, identityJSON: String? = nil) -> StaleRun.Reason? {
        if status == "evaluated" {
            if trains(cell: cell) { return .evaluatedInPlannedCell }
            // A task, model column or k the spec does not run (any more), as trained runs of it.
            if !runsCoordinates(of: cell) { return .unplanned }
            // The config decoded once for the three checks that read it.
            let c = configJSON.flatMap { try? JSONDecoder().decode(TrainConfig.self, from: Data($0.utf8)) }
            let inputs = Self.inputParts(identityJSON: identityJSON)
            if validationChanged(cell: cell, stored: inputs) || evaluatedModelChanged(cell: cell, config: c, stored: inputs) { return .evaluatedInputsChanged }
            if evaluatedTaskChanged(config: c, identityJSON: identityJSON) { return .evaluatedTaskChanged }
            return (c?.adapter.map(Self.adapterChanged(adapter:)) ?? false) ? .adapterChanged : nil
        }
        if undecidedCells.contains(cell) { return .searchUndecided }
        let key = Self.key(cell: cell, seed: seed, sampleSeed: sampleSeed)
        guard let planned = configHashes[key] else { return .unplanned }
        guard let json = configJSON, let c = try? JSONDecoder().decode(TrainConfig.self, from: Data(json.utf8)) else { return .configChanged }
        guard planned == Self.configHash(c) else { return .configChanged }
        if taskChanged(key: key, identityJSON: identityJSON) { return .taskChanged }
        if taskChanged(key: key, identityJSON: identityJSON, rules: true) { return .ruleChanged }
        return inputsChanged(key: key, identityJSON: identityJSON) ? .inputsChanged : nil
    }

    /// Whether an evaluated run's adapter (`TrainConfig.adapter`, "PATH#sha256:HEX#adapter_config:HEX";
    /// an export's `CellResult.runAdapters`) is at its stored path with other contents now:
    /// adapter_model.safetensors or adapter_config.json there has another sha256 (the stored score
    /// is of an adapter no longer there; the config's lora_alpha or use_rslora move every number,
    /// as `eval` records). An adapter not found at its path (moved, or a store read on another
    /// machine) is not compared. Hashes are cached per path, size and modification time (`FileHashes`).
    public static func adapterChanged(adapter a: String) -> Bool {
        let parts = a.components(separatedBy: "#sha256:")
        guard parts.count >= 2, let suffix = parts.last else { return false }
        let dir = URL(fileURLWithPath: parts.dropLast().joined(separator: "#sha256:"))
        let fields = suffix.components(separatedBy: "#adapter_config:")
        guard let weights = FileHashes.shared.sha256(dir.appendingPathComponent("adapter_model.safetensors").path) else { return false }
        if weights != fields[0] { return true }
        guard fields.count == 2, let config = FileHashes.shared.sha256(dir.appendingPathComponent("adapter_config.json").path) else { return false }
        return config != fields[1]
    }

    /// `staleReason` of a `runs` row read with its cell, seed, sample_seed, status, config_json
    /// and identity_json (without identity_json the task file is not compared).
    public func staleReason(row r: [String: SQLiteDB.Value]) -> StaleRun.Reason? {
        let seed = r["seed"]!.int!
        return staleReason(cell: r["cell"]!.text!, seed: seed, sampleSeed: r["sample_seed"]?.int ?? seed, configJSON: r["config_json"]?.text,
                           status: r["status"]!.text!, identityJSON: r["identity_json"]?.text)
    }
}

/// A stored run that `cellResults(planned:)` leaves out, and why.
public struct StaleRun: Sendable {
    public enum Reason: String, Sendable, CaseIterable {
        case unplanned = "no longer planned by the spec"
        case configChanged = "planned with another config since (spec edited, not re-swept)"
        case taskChanged = "run with another task definition (task file edited since, not re-swept)"
        case ruleChanged = "run before a fix of the code that changes its numbers (RunIdentity.ruleParts; not re-swept since)"
        case inputsChanged = "run on other inputs (a data file, few-shot manifest, checkpoint or its config or tokenizer changed since, not re-swept)"
        case searchUndecided = "run at a point of a search that has not chosen under the spec as it is now (its grid, selection or search runs changed since)"
        case evaluatedInPlannedCell = "runs of adapters evaluated into a cell the spec trains (`eval --db` under a planned variant's name; the spec's sweep trains that cell)"
        case adapterChanged = "runs of adapters evaluated from files that have changed since (adapter_model.safetensors or adapter_config.json at the stored path has another sha256)"
        case evaluatedInputsChanged = "runs of adapters scored on a validation file or base checkpoint (weights, config, tokenizer) that has changed since, or on other weights than the column's"
        case evaluatedTaskChanged = "runs of adapters scored under a task definition, template or evaluation rule that has changed since (task file edited, or a fix of the code that moves an evaluation: MultiRC's whole-question eval_limit, WSC's DePT marks)"
        case duplicateAdapter = "runs evaluated with the same adapter weights as another seed of their cell (one training run counts once)"
        case corruptScores = "runs with a stored score or measurement that is not a finite number (a damaged or hand-edited store)"

        /// Whether a sweep of the spec reruns such runs (an edited spec or input, a search): the
        /// others are adapters evaluated into the store and damaged rows, which no sweep mends.
        public var sweepReruns: Bool {
            ![.evaluatedInPlannedCell, .adapterChanged, .evaluatedInputsChanged, .evaluatedTaskChanged, .duplicateAdapter, .corruptScores].contains(self)
        }

        /// What brings such runs back, for the notes that name them.
        public func remedy(sweep: String) -> String {
            switch self {
            case .unplanned: return "kept; they count again if the spec lists them again"
            case .evaluatedInPlannedCell: return "store evaluated adapters under a variant of their own (`eval --variant NAME`); \(sweep) trains the cell"
            case .adapterChanged, .evaluatedInputsChanged, .evaluatedTaskChanged: return "evaluate the adapter again (`eval --db` with the same --spec, --variant, --column, --profile and --seed replaces its run)"
            case .duplicateAdapter: return "evaluate each seed's own adapter"
            case .corruptScores: return "repair the store, or rerun those runs"
            default: return "\(sweep) reruns them (or takes back finished runs of the planned settings from history)"
            }
        }
    }
    public var id: Int
    public var cell: String
    public var seed: Int
    public var status: String
    public var reason: Reason
}

extension ResultsStore {
    /// `identity_json` in a SELECT (NULL in a store older than schema 2, read without migrating).
    public var identityColumn: String { schemaVersion >= 2 ? "identity_json" : "NULL AS identity_json" }

    /// A stored run's numerics as one string, "TOOL_VERSION; threads N" (`Trainer.numerics`'
    /// form, which `Trainer.numericsAgree` / `distinctNumerics` compare), from its `tool_version`
    /// and `threads` columns.
    public static func numericsSetup(_ row: [String: SQLiteDB.Value]) -> String {
        "\(row["tool_version"]?.text ?? "unknown"); threads \(row["threads"]?.int.map(String.init) ?? "?")"
    }

    /// Cells of a spec/profile whose counted runs (done and evaluated: the ones averaged; diverged
    /// runs are listed, not averaged, and records without a setup cannot be compared) ran under more than one numerics setup
    /// (`tool_version`, which names the GEMM kernel, its kc and OpenBLAS's release and core, and
    /// `threads`; mc / nc and a release missing from older records do not count: `Trainer.distinctNumerics`):
    /// their seeds' statistics mix setups that change bits (shards merged from workers on other
    /// hosts or thread counts). Cell → the setups, one line each; empty when none.
    /// `statuses`: the runs counted (["done"] for reads of the per-step log, which evaluated runs lack).
    public func mixedNumerics(spec: String, profile: String, planned: PlannedRuns?, statuses: [String] = ["done", "evaluated"]) throws -> [String: [String]] {
        // Only what changes bits: the same kernel under another mc / nc is the same numerics.
        try countedSetups(spec: spec, profile: profile, planned: planned, statuses: statuses).mapValues { Trainer.distinctNumerics(Array($0)) }.filter { $0.value.count > 1 }
    }

    /// Cells among `cells` whose counted runs (as `mixedNumerics` counts them) ran under a setup
    /// that gives other bits than `here` (`numericsSetup`'s form: "TOOL_VERSION; threads N"):
    /// cell → those setups. A sweep about to add runs to such a cell says so before it starts
    /// (it added them without a word; only later reads named the mix).
    public func otherNumerics(spec: String, profile: String, planned: PlannedRuns?, cells: Set<String>, here: String) throws -> [String: [String]] {
        guard !cells.isEmpty else { return [:] }
        return try countedSetups(spec: spec, profile: profile, planned: planned)
            .filter { cells.contains($0.key) }
            .mapValues { Trainer.distinctNumerics($0.filter { !Trainer.numericsAgree($0, here) }) }
            .filter { !$0.value.isEmpty }
    }

    /// Cell → the numerics setups (`numericsSetup`) of its counted runs: done and evaluated ones
    /// that count for `planned`, with a recorded setup.
    private func countedSetups(spec: String, profile: String, planned: PlannedRuns?, statuses: [String] = ["done", "evaluated"]) throws -> [String: Set<String>] {
        guard schemaVersion >= 2 else { return [:] }
        let sample = schemaVersion >= 4 ? "IFNULL(sample_seed, seed)" : "seed"
        var setups: [String: Set<String>] = [:]
        for r in try db.query("SELECT cell, seed, \(sample) AS sample_seed, status, config_json, \(identityColumn), tool_version, threads FROM runs WHERE spec=? AND profile=? AND tool_version IS NOT NULL",
                              [.text(spec), .text(profile)]) where statuses.contains(r["status"]?.text ?? "") && planned?.staleReason(row: r) == nil {
            setups[r["cell"]?.text ?? "", default: []].insert(Self.numericsSetup(r))
        }
        return setups
    }

    /// Current rows of a spec/profile that do not count for `planned` (`PlannedRuns.staleReason`),
    /// or for any plan (`unusableRuns`).
    public func staleRuns(spec: String, profile: String, planned: PlannedRuns) throws -> [StaleRun] {
        let sample = schemaVersion >= 4 ? "IFNULL(sample_seed, seed)" : "seed"
        let unusable = try unusableRuns(spec: spec, profile: profile)
        return try db.query("SELECT id, cell, seed, \(sample) AS sample_seed, status, config_json, \(identityColumn) FROM runs WHERE spec=? AND profile=? AND status != 'superseded' ORDER BY id",
                            [.text(spec), .text(profile)]).compactMap { r in
            guard let why = planned.staleReason(row: r) ?? unusable[r["id"]!.int!] else { return nil }
            return StaleRun(id: r["id"]!.int!, cell: r["cell"]!.text!, seed: r["seed"]!.int!, status: r["status"]!.text!, reason: why)
        }
    }

    /// Current rows of a spec/profile that count under no plan, and why:
    /// - a stored score that is not a finite number (`scores.value` text, such as "NaN", which
    ///   SQLite keeps as text in a REAL column and reads could not take as a number, or ±Inf), or
    ///   text in `run_metrics` / `epoch_metrics`: a damaged or hand-edited store, or one merged
    ///   from such shards (the store itself never writes them);
    /// - an evaluated run whose adapter weights (`adapter_sha256`) a lower seed of its cell was
    ///   evaluated with already: one adapter stored under several seeds (a PEFT adapter without
    ///   PromptRepro's run config, whose seed `eval` cannot check) passed as independent seeds.
    public func unusableRuns(spec: String, profile: String) throws -> [Int: StaleRun.Reason] {
        var out: [Int: StaleRun.Reason] = [:]
        // Scores: text or ±Inf. The per-run and per-epoch measurements (selection score, invalid
        // share, rank probe) are read as numbers too: text there is damage as well.
        for (table, bad) in [("scores", "typeof(s.value) NOT IN ('real', 'integer') OR s.value IN (9e999, -9e999)"),
                             ("run_metrics", "typeof(s.value) NOT IN ('real', 'integer') OR s.value IN (9e999, -9e999)"),
                             ("epoch_metrics", "typeof(s.value) NOT IN ('real', 'integer') OR s.value IN (9e999, -9e999)")] where table != "run_metrics" || schemaVersion >= 4 {
            for r in try db.query("""
                SELECT DISTINCT s.run_id AS id FROM \(table) s JOIN runs r ON r.id = s.run_id
                WHERE r.spec=? AND r.profile=? AND r.status != 'superseded' AND (\(bad))
                """, [.text(spec), .text(profile)]) {
                if let id = r["id"]?.int { out[id] = .corruptScores }
            }
        }
        var first: [String: Int] = [:]
        // The lowest seed's copy counts; at one seed, the newest (a re-evaluation under the run's sample seed).
        for r in try db.query("SELECT id, cell, adapter_sha256 FROM runs WHERE spec=? AND profile=? AND status='evaluated' AND adapter_sha256 IS NOT NULL ORDER BY seed, id DESC",
                              [.text(spec), .text(profile)]) {
            guard let id = r["id"]?.int, let cell = r["cell"]?.text, let sha = r["adapter_sha256"]?.text else { continue }
            if first[cell + "#" + sha] == nil { first[cell + "#" + sha] = id } else if out[id] == nil { out[id] = .duplicateAdapter }
        }
        return out
    }

    /// Whether the store has any current (not superseded) row of `spec` in `profile`.
    public func hasCurrentRuns(spec: String, profile: String) throws -> Bool {
        !(try db.query("SELECT 1 FROM runs WHERE spec=? AND profile=? AND status != 'superseded' LIMIT 1", [.text(spec), .text(profile)]).isEmpty)
    }

    /// "spec [profile]" of every spec and profile with current rows, sorted (for messages).
    public func specProfiles() throws -> [String] {
        try db.query("SELECT DISTINCT spec, profile FROM runs WHERE status != 'superseded' ORDER BY spec, profile")
            .map { "\($0["spec"]!.text!) [\($0["profile"]!.text!)]" }
    }

    /// Marks as 'superseded' the pending and failed rows of a spec/profile whose run the spec no
    /// longer plans (a cell, k or seed taken out of it), so that no worker trains them. Finished rows
    /// stay current: reads leave them out while the spec does not plan them (`cellResults(planned:)`),
    /// and a spec that lists them again reuses them instead of training the same runs anew.
    /// Returns how many rows were superseded.
    @discardableResult
    public func supersedeUnplanned(spec: String, profile: String, planned: PlannedRuns) throws -> Int {
        try db.transaction {
            let ids = try staleRuns(spec: spec, profile: profile, planned: planned).filter { ["pending", "failed"].contains($0.status) && $0.reason == .unplanned }
            var n = 0
            for r in ids { try db.query("UPDATE runs SET superseded_status=status, status='superseded' WHERE id=?", [.int(r.id)]); n += db.changes }
            return n
        }
    }

    /// Evaluated runs of `spec`/`profile` whose adapter files at their stored path have other
    /// contents now (`PlannedRuns.adapterChanged`), and those whose adapter is not at that path
    /// (`missing`: not compared; moved, deleted, or a store read on another machine).
    public func changedAdapterRuns(spec: String, profile: String) throws -> [(id: Int, cell: String, seed: Int, missing: Bool)] {
        try db.query("SELECT id, cell, seed, config_json FROM runs WHERE spec=? AND profile=? AND status='evaluated'", [.text(spec), .text(profile)]).compactMap { r in
            guard let json = r["config_json"]?.text, let cfg = try? JSONDecoder().decode(TrainConfig.self, from: Data(json.utf8)),
                  let adapter = cfg.adapter, let dir = cfg.adapterPath else { return nil }
            let missing = !dir.isEmpty && !FileManager.default.fileExists(atPath: (dir as NSString).appendingPathComponent("adapter_model.safetensors"))
            guard missing || PlannedRuns.adapterChanged(adapter: adapter) else { return nil }
            return (r["id"]!.int!, r["cell"]!.text!, r["seed"]!.int!, missing)
        }
    }

    /// Per-cell statistics of finished runs (done; diverged runs are listed, not averaged).
    /// Invalid-output fractions come from `run_metrics`, or for runs stored before they were
    /// recorded, from the stored predictions (ReCoRD's need the passages: `dataDir`, else none).
    /// With `planned`, only the rows that count for the spec's current plan are read
    /// (`PlannedRuns.staleReason`; `staleRuns` lists the others).
    /// Without `planned` (a spec name with no spec file: every stored run counts), evaluated runs
    /// whose adapter files have changed at their stored path (`changedAdapterRuns`) are left out
    /// still: their scores are of an adapter no longer there.
    public func cellResults(spec: String, profile: String, dataDir: String? = nil, planned: PlannedRuns? = nil) throws -> [CellResult] {
        let sample = schemaVersion >= 4 ? "IFNULL(sample_seed, seed)" : "seed"
        let numerics = (schemaVersion >= 2 ? ", tool_version, threads" : "") + (schemaVersion >= 8 ? ", adopted_from" : "")
        var unusable = try unusableRuns(spec: spec, profile: profile)
        if planned == nil { for r in try changedAdapterRuns(spec: spec, profile: profile) where !r.missing { unusable[r.id] = .adapterChanged } }
        let runs = try db.query("SELECT id, cell, variant, method, task, model, k, seed, \(sample) AS sample_seed, status, trainable_params, config_json, data_hashes, \(identityColumn)\(numerics) FROM runs WHERE spec=? AND profile=? AND status != 'superseded' ORDER BY id",
                                [.text(spec), .text(profile)]).filter { planned?.staleReason(row: $0) == nil && unusable[$0["id"]!.int!] == nil }
        var order: [String] = []
        var byCell: [String: CellResult] = [:]
        var values: [String: [String: [String: [(Replicate, Double)]]]] = [:]  // cell → kind → metric → (run, value)
        let hasRunMetrics = schemaVersion >= 4
        var evalSets: [String: Set<String>] = [:]  // cell → "templates/count" of its runs
        var finishedStatus: [String: [String: [Replicate]]] = [:]  // cell → done / evaluated → its runs
        var probeSeeds: [String: [Int: Int]] = [:]  // cell → epoch → seeds whose probe logged it
        var examplesCache: [String: [Example]?] = [:]
        func examples(_ def: TaskDefinition, _ set: TemplateSet) -> [Example]? {
            let key = "\(def.task)/\(set.rawValue)"
            if let e = examplesCache[key] { return e }
            let e = dataDir.flatMap { d in (try? DataLoader.load(def, split: .validation, dataDir: d)).flatMap { try? Templates.examples($0, set: set, training: false) } }
            examplesCache[key] = e
            return e
        }
        for r in runs {
            let cell = r["cell"]!.text!
            if byCell[cell] == nil {
                order.append(cell)
                byCell[cell] = CellResult(cell: cell, variant: r["variant"]!.text!, method: r["method"]!.text!, task: r["task"]!.text!,
                                          model: r["model"]!.text!, k: r["k"]?.int, seeds: [], statuses: [:], trainableParams: nil,
                                          best: [:], last: [:], divergedSeeds: [], probe: nil)
                if let json = r["config_json"]?.text, let cfg = try? JSONDecoder().decode(TrainConfig.self, from: Data(json.utf8)) {
                    byCell[cell]!.protocolLabel = cfg.variantLabel
                }
            }
            let status = r["status"]!.text!
            byCell[cell]!.statuses[status, default: 0] += 1
            if status == "diverged" { byCell[cell]!.divergedSeeds.append(r["seed"]!.int!) }
            let runKey = PlannedRuns.key(cell: cell, seed: r["seed"]!.int!, sampleSeed: r["sample_seed"]?.int ?? r["seed"]!.int!)
            byCell[cell]!.runStatuses = (byCell[cell]!.runStatuses ?? [:]).merging([runKey: status]) { _, b in b }
            guard status == "done" || status == "evaluated" else { continue }
            let rep = Replicate(seed: r["seed"]!.int!, sampleSeed: r["sample_seed"]?.int)
            finishedStatus[cell, default: [:]][status, default: []].append(rep)
            byCell[cell]!.seeds.append(rep.seed)
            byCell[cell]!.sampleSeeds = (byCell[cell]!.sampleSeeds ?? []) + [rep.sampleSeed]
            byCell[cell]!.trainableParams = r["trainable_params"]?.int
            if let json = r["data_hashes"]?.text, let files = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] {
                byCell[cell]!.dataFiles = Array(Set(byCell[cell]!.dataFiles ?? []).union(files.keys)).sorted()
            }
            // Per-epoch measurements of the method (epoch_metrics): the rank probe's counts feed DPT Figure 3.
            var perEpoch: [Int: [String: Double]] = [:]
            for e in try db.query("SELECT epoch, name, value FROM epoch_metrics WHERE run_id=? AND name IN ('probe_positive','probe_negative','probe_rank')",
                                  [.int(r["id"]!.int!)]) {
                perEpoch[e["epoch"]!.int!, default: [:]][e["name"]!.text!] = e["value"]!.double!
            }
            if !perEpoch.isEmpty {
                var pts = byCell[cell]!.probe ?? []
                for (ep, m) in perEpoch.sorted(by: { $0.key < $1.key }) {
                    guard let p = m["probe_positive"], let q = m["probe_negative"], let k = m["probe_rank"] else { continue }
                    // Running mean over the seeds that logged this epoch (the cell's seed count
                    // divided a point some seeds lack: 30 for the mean 25 of two seeds of three).
                    probeSeeds[cell, default: [:]][ep, default: 0] += 1
                    let n = Double(probeSeeds[cell]![ep]!)
                    if let i = pts.firstIndex(where: { $0.epoch == ep }) {
                        pts[i].positive += (p - pts[i].positive) / n; pts[i].negative += (q - pts[i].negative) / n; pts[i].rank += (k - pts[i].rank) / n
                    } else { pts.append(ProbePoint(epoch: ep, positive: p, negative: q, rank: k)) }
                }
                byCell[cell]!.probe = pts
            }
            for s in try db.query("SELECT kind, metric, value FROM scores WHERE run_id=?", [.int(r["id"]!.int!)]) {
                values[cell, default: [:]][s["kind"]!.text!, default: [:]][s["metric"]!.text!, default: []].append((rep, s["value"]!.double!))
            }
            // Per-run measurements (run_metrics), what the run scored, and how many outputs name no label.
            let id = r["id"]!.int!
            var stored: [String: Double] = [:]
            for s in hasRunMetrics ? try db.query("SELECT name, value FROM run_metrics WHERE run_id=?", [.int(id)]) : [] {
                values[cell, default: [:]]["extras", default: [:]][s["name"]!.text!, default: []].append((rep, s["value"]!.double!))
                stored[s["name"]!.text!] = s["value"]!.double!
            }
            if let from = r["adopted_from"]?.text {
                byCell[cell]!.runAdoptedFrom = (byCell[cell]!.runAdoptedFrom ?? [:]).merging(
                    [PlannedRuns.key(cell: cell, seed: rep.seed, sampleSeed: rep.sampleSeed): from]) { _, b in b }
            }
            if r["tool_version"]?.text != nil {
                byCell[cell]!.runNumerics = (byCell[cell]!.runNumerics ?? [:]).merging(
                    [PlannedRuns.key(cell: cell, seed: rep.seed, sampleSeed: rep.sampleSeed): Self.numericsSetup(r)]) { _, b in b }
            }
            let inputs = PlannedRuns.inputParts(identityJSON: r["identity_json"]?.text)
            if !inputs.isEmpty {
                byCell[cell]!.runInputs = (byCell[cell]!.runInputs ?? [:]).merging(
                    [PlannedRuns.key(cell: cell, seed: rep.seed, sampleSeed: rep.sampleSeed): inputs]) { _, b in b }
            }
            let taskParts = PlannedRuns.storedTaskParts(identityJSON: r["identity_json"]?.text)
            if !taskParts.isEmpty {
                byCell[cell]!.runTaskParts = (byCell[cell]!.runTaskParts ?? [:]).merging(
                    [PlannedRuns.key(cell: cell, seed: rep.seed, sampleSeed: rep.sampleSeed): taskParts]) { _, b in b }
            }
            let config = try? JSONDecoder().decode(TrainConfig.self, from: Data((r["config_json"]?.text ?? "").utf8))
            if status == "evaluated", let adapter = config?.adapter {
                byCell[cell]!.runAdapters = (byCell[cell]!.runAdapters ?? [:]).merging(
                    [PlannedRuns.key(cell: cell, seed: rep.seed, sampleSeed: rep.sampleSeed): adapter]) { _, b in b }
            }
            if let config {
                byCell[cell]!.runConfigs = (byCell[cell]!.runConfigs ?? [:]).merging(
                    [PlannedRuns.key(cell: cell, seed: rep.seed, sampleSeed: rep.sampleSeed): PlannedRuns.configHash(config)]) { _, b in b }
            }
            let best = try predictions(run: id, kind: "best")
            if let config { evalSets[cell, default: []].insert("\(config.templates.rawValue)/\(best.count)/\(config.selectOn == .valHalf)") }
            for (kind, name) in [("best", "invalid_fraction"), ("last", "invalid_fraction_last")] {
                var f = stored[name]
                if f == nil, let config, let def = try? TaskRegistry.definition(config.task) {
                    let preds = kind == "best" ? best : try predictions(run: id, kind: kind)
                    let ex = Metrics.invalidRuleReadsExamples(def) ? examples(def, config.templates).map { Array($0.prefix(preds.count)) } : nil
                    f = try? Metrics.invalidFraction(def, set: config.templates, examples: ex, predictions: preds)
                }
                if let f { values[cell, default: [:]]["invalid", default: [:]][kind, default: []].append((rep, f)) }
            }
        }
        if let index = planned?.cellIndex, !index.isEmpty {
            // The spec's order; cells it does not plan (an evaluated adapter's variant) after them.
            let position = Dictionary(uniqueKeysWithValues: order.enumerated().map { ($0.element, $0.offset) })
            // Unplanned cells by name (store order differs between merged stores).
            order.sort { a, b in
                let (x, y) = (index[a] ?? Int.max, index[b] ?? Int.max)
                if x != y { return x < y }
                return x == Int.max ? a < b : position[a]! < position[b]!
            }
        }
        return order.map { cell in
            var c = byCell[cell]!
            // Every `Stat.values` must follow `replicates` one for one (compare pairs them by
            // position). A finished run without its task's selection metric (best or last) that its
            // cell's other runs have is no result: it counts as 'incomplete' (tables mark it,
            // compare and the gate find it missing). Another metric that some finished runs lack (a
            // metric list that changed between versions) leaves the cell, not the runs.
            let selection = (try? TaskRegistry.definition(c.task))?.selectionMetric
            let scored = ["best", "last"].flatMap { kind in
                (values[cell]?[kind] ?? [:]).filter { selection == nil || $0.key == selection }.values.map { Set($0.map(\.0)) }
            }
            let incomplete = Set(c.replicates.filter { rep in scored.contains { !$0.contains(rep) } })
            let counted = Set(c.replicates).subtracting(incomplete)
            for kind in ["best", "last"] {
                if let metrics = values[cell]?[kind] {
                    let shared = metrics.filter { Set($0.value.map(\.0)).isSuperset(of: counted) }
                    values[cell]![kind] = shared
                }
            }
            if !incomplete.isEmpty {
                for rep in incomplete { c.runStatuses?[PlannedRuns.key(cell: cell, seed: rep.seed, sampleSeed: rep.sampleSeed)] = "incomplete" }
                let kept = c.replicates.filter { !incomplete.contains($0) }
                c.seeds = kept.map(\.seed)
                c.sampleSeeds = kept.map(\.sampleSeed)
                for (status, reps) in finishedStatus[cell] ?? [:] {
                    let n = reps.filter(incomplete.contains).count
                    c.statuses[status, default: 0] -= n
                    if c.statuses[status] == 0 { c.statuses[status] = nil }
                }
                c.statuses["incomplete", default: 0] += incomplete.count
                for (kind, metrics) in values[cell] ?? [:] {
                    values[cell]![kind] = metrics.mapValues { $0.filter { !incomplete.contains($0.0) } }.filter { !$0.value.isEmpty }
                }
            }
            let reps = c.replicates.sorted()
            let countedKeys = Set(reps.map { PlannedRuns.key(cell: c.cell, seed: $0.seed, sampleSeed: $0.sampleSeed) })
            c.runConfigs = c.runConfigs?.filter { countedKeys.contains($0.key) }
            c.runNumerics = c.runNumerics?.filter { countedKeys.contains($0.key) }
            c.runInputs = c.runInputs?.filter { countedKeys.contains($0.key) }
            c.runTaskParts = c.runTaskParts?.filter { countedKeys.contains($0.key) }
            c.runAdapters = c.runAdapters?.filter { countedKeys.contains($0.key) }
            c.runAdoptedFrom = c.runAdoptedFrom?.filter { countedKeys.contains($0.key) }
            if c.runAdoptedFrom?.isEmpty == true { c.runAdoptedFrom = nil }
            c.seeds = reps.map(\.seed)
            c.sampleSeeds = reps.contains { $0.seed != $0.sampleSeed } ? reps.map(\.sampleSeed) : nil
            c.best = (values[cell]?["best"] ?? [:]).mapValues { Stat($0.sorted { $0.0 < $1.0 }.map(\.1)) }
            c.last = (values[cell]?["last"] ?? [:]).mapValues { Stat($0.sorted { $0.0 < $1.0 }.map(\.1)) }
            c.extras = values[cell]?["extras"].map { $0.mapValues { Stat($0.sorted { $0.0 < $1.0 }.map(\.1)) } }
            let invalid = (values[cell]?["invalid"] ?? [:]).mapValues { Stat($0.sorted { $0.0 < $1.0 }.map(\.1)) }
            c.invalidFraction = invalid.isEmpty ? nil : invalid
            // Runs without stored predictions (0 examples known) say nothing of their set: the
            // cell's set is the one set its other runs agree on (a legacy run without `best`
            // predictions left the cell's example count unknown, and `compare` paired 16 examples
            // with 277).
            let all = evalSets[cell] ?? []
            let known = all.filter { $0.split(separator: "/")[1] != "0" }
            if let set = known.count == 1 ? known.first : (all.count == 1 ? all.first : nil) {
                let parts = set.split(separator: "/")
                c.templates = String(parts[0])
                c.evalExamples = Int(parts[1]).flatMap { $0 > 0 ? $0 : nil }
                c.evalHalf = parts[2] == "true" ? true : nil
            }
            if known.count > 1 {
                c.mixedEvalSets = known.sorted().map { set in
                    let parts = set.split(separator: "/")
                    return "templates \(parts[0]), \(parts[1]) examples" + (parts[2] == "true" ? ", val-half report half" : "")
                }
            }
            return c
        }
    }
}

/// One-way random-effects decomposition of a cell's scores when sample seeds are crossed with
/// training seeds: y_ij = μ + a_i + e_ij, a_i ~ (0, σ²_between) the few-shot sample i, e_ij ~ (0,
/// σ²_within) the training seed j within it. Estimator: the ANOVA (method-of-moments) estimator,
/// σ²_within = MSW, σ²_between = max(0, (MSB − MSW) / n0), n0 = (N − Σ n_i² / N) / (a − 1)
/// (Searle, Casella & McCulloch 1992, §3.5; unbalanced groups allowed); negative estimates are
/// truncated at 0. Variances in squared score points.
public struct VarianceComponents: Codable, Equatable, Sendable {
    public var samples: Int          // a: distinct sample seeds
    public var runs: Int             // N
    public var between: Double       // σ²_between (few-shot sample)
    public var within: Double        // σ²_within (training seed: init, order, dropout)
    /// σ²_between / (σ²_between + σ²_within); nil when both are 0.
    public var sampleShare: Double? { between + within > 0 ? between / (between + within) : nil }

    /// nil unless there are ≥ 2 sample seeds and some sample seed has ≥ 2 runs.
    public init?(_ values: [(sample: Int, value: Double)]) {
        var groups: [Int: [Double]] = [:]
        for (g, v) in values { groups[g, default: []].append(v) }
        let a = groups.count, N = values.count
        guard a >= 2, N > a else { return nil }
        let grand = values.reduce(0) { $0 + $1.value } / Double(N)
        var ssb = 0.0, ssw = 0.0, sumSq = 0.0
        for (_, vs) in groups.sorted(by: { $0.key < $1.key }) {
            let m = vs.reduce(0, +) / Double(vs.count)
            ssb += Double(vs.count) * (m - grand) * (m - grand)
            ssw += vs.reduce(0) { $0 + ($1 - m) * ($1 - m) }
            sumSq += Double(vs.count * vs.count)
        }
        let msb = ssb / Double(a - 1), msw = ssw / Double(N - a)
        let n0 = (Double(N) - sumSq / Double(N)) / Double(a - 1)
        samples = a; runs = N
        within = msw
        between = max(0, (msb - msw) / n0)
    }
}

extension CellResult {
    /// Variance components of the best-epoch `metric` over (sample seed, seed) runs; nil without crossing.
    public func varianceComponents(_ metric: String) -> VarianceComponents? {
        guard let stat = best[metric], let samples = sampleSeeds, samples.count == stat.values.count else { return nil }
        return VarianceComponents(zip(samples, stat.values).map { (sample: $0, value: $1) })
    }
}

/// Cells read from an export (`Baselines/results/<spec>-<profile>.cells.json`) against the spec's
/// current plan: an export keeps no store rows, so an edited spec (a method option, the template
/// set, eval_limit) was read with the numbers of its old runs under the new settings (review,
/// 2026-12-06). As a store read (`PlannedRuns.staleReason`): a cell with a run the plan has with
/// another config (`CellResult.runConfigs`) is left out (`stale`); runs the plan no longer has (a
/// seed taken out) leave the cell's statistics (`CellResult.keeping`), and a cell with none left is
/// left out (`unplanned`). A cell with a run whose data file or few-shot manifest has changed here
/// since (`CellResult.runInputs` against the plan's `inputParts`, where the read could compute
/// them) is left out (`inputsChanged`). Cells with evaluated runs (adapters evaluated into the
/// spec, outside any plan) follow the store's rule: left out in a cell the spec trains
/// (`adaptersInTrainedCells`), at a task, model and k it does not run (`unplanned`), or scored on
/// a validation file, from adapter files or under a task definition that has changed since
/// (`adaptersChanged`), else kept whole; so are cells of
/// exports made before the hashes were kept. A searched variant's cells are read against the
/// choice its exported grid points give (`ExperimentSpec.exportChoice`); one whose search that
/// choice leaves undecided is left out (`undecided`).
public enum ExportedCells {
    public static func current(_ cells: [CellResult], plan: PlannedRuns)
        -> (kept: [CellResult], stale: [String], unplanned: [String], seedsLeftOut: Int, undecided: [String], inputsChanged: [String],
            adaptersInTrainedCells: [String], adaptersChanged: [String]) {
        var kept: [CellResult] = [], stale: [String] = [], unplanned: [String] = [], left = 0, undecided: [String] = [], inputs: [String] = []
        var adapters: [String] = [], changedAdapters: [String] = []
        for c in cells {
            if (c.statuses["evaluated"] ?? 0) > 0 {
                if plan.trains(cell: c.cell) { adapters.append(c.cell) }
                else if !plan.runsCoordinates(of: c.cell) { unplanned.append(c.cell) }
                else if (c.runInputs ?? [:]).values.contains(where: { plan.validationChanged(cell: c.cell, stored: $0) })
                            || (c.runTaskParts ?? [:]).values.contains(where: { plan.evaluatedTaskChanged(task: c.task, templates: c.templates, stored: $0) })
                            || (c.runAdapters ?? [:]).values.contains(where: { PlannedRuns.adapterChanged(adapter: $0) }) { changedAdapters.append(c.cell) }
                else { kept.append(c) }
                continue
            }
            // A searched cell whose search the export cannot decide under the spec as it is now
            // (its points edited, run under other settings, or missing) is left out: kept whole,
            // it showed its old numbers under the new settings.
            if plan.undecidedCells.contains(c.cell) && c.runConfigs != nil { undecided.append(c.cell); continue }
            guard let runs = c.runConfigs else { kept.append(c); continue }
            if runs.contains(where: { key, hash in plan.configHashes[key].map { $0 != hash } ?? false }) { stale.append(c.cell); continue }
            // The task file and the rules of the code, as a store read compares them (a review:
            // an edited template left an export's old numbers current).
            if (c.runTaskParts ?? [:]).contains(where: { key, parts in plan.taskChanged(key: key, stored: parts) || plan.taskChanged(key: key, stored: parts, rules: true) }) {
                stale.append(c.cell); continue
            }
            // Data files and manifests as the read finds them now (a review: an export read after
            // a data file changed showed the old numbers beside reference rows of the new data).
            if (c.runInputs ?? [:]).contains(where: { key, parts in plan.inputsChanged(key: key, stored: parts) }) { inputs.append(c.cell); continue }
            // Every run of the cell (failed and diverged ones too, where the export has them).
            let all = Set(runs.keys).union(c.runStatuses?.keys ?? [:].keys)
            let planned = all.filter { plan.configHashes[$0] != nil }
            if planned.count == all.count { kept.append(c); continue }
            guard !planned.isEmpty else { unplanned.append(c.cell); continue }
            left += all.count - planned.count
            kept.append(c.keeping { planned.contains(PlannedRuns.key(cell: c.cell, seed: $0.seed, sampleSeed: $0.sampleSeed)) })
        }
        return (kept, stale, unplanned, left, undecided, inputs, adapters, changedAdapters)
    }
}

extension CellResult {
    /// The cell over the runs `keep` accepts: seeds, scores (each `Stat` recomputed from its per-run
    /// values, which are in `replicates` order), per-run measurements whose values align with the
    /// runs (others, recorded by only some runs, are dropped), and from `runStatuses` the status
    /// counts and diverged seeds. The rank probe's per-epoch means over every seed cannot be
    /// recomputed: a cell that loses a finished run loses its probe.
    public func keeping(_ keep: (Replicate) -> Bool) -> CellResult {
        let reps = replicates
        let mask = reps.map(keep)
        func filter(_ st: Stat) -> Stat? { st.values.count == reps.count ? Stat(zip(st.values, mask).filter(\.1).map(\.0)) : nil }
        var c = self
        let kept = zip(reps, mask).filter(\.1).map(\.0)
        c.seeds = kept.map(\.seed)
        c.sampleSeeds = sampleSeeds == nil ? nil : kept.map(\.sampleSeed)
        c.best = best.compactMapValues(filter)
        c.last = last.compactMapValues(filter)
        c.extras = extras?.compactMapValues(filter)
        c.invalidFraction = invalidFraction?.compactMapValues(filter)
        if kept.count < reps.count { c.probe = nil }
        let keys = Set(kept.map { PlannedRuns.key(cell: cell, seed: $0.seed, sampleSeed: $0.sampleSeed) })
        c.runConfigs = runConfigs?.filter { keys.contains($0.key) }
        c.runNumerics = runNumerics?.filter { keys.contains($0.key) }
        c.runInputs = runInputs?.filter { keys.contains($0.key) }
        c.runTaskParts = runTaskParts?.filter { keys.contains($0.key) }
        c.runAdapters = runAdapters?.filter { keys.contains($0.key) }
        c.runAdoptedFrom = runAdoptedFrom?.filter { keys.contains($0.key) }
        if c.runAdoptedFrom?.isEmpty == true { c.runAdoptedFrom = nil }
        if let statuses = runStatuses {
            // Non-finished runs are kept when `keep` takes their replicate.
            let keptRuns = statuses.filter { key, _ in PlannedRuns.run(ofKey: key).map { keep($0.replicate) } ?? false }
            c.runStatuses = keptRuns
            c.statuses = Dictionary(keptRuns.values.map { ($0, 1) }, uniquingKeysWith: +)
            let diverged = Set(keptRuns.filter { $0.value == "diverged" }.keys.compactMap { PlannedRuns.run(ofKey: $0)?.replicate.seed })
            c.divergedSeeds = divergedSeeds.filter(diverged.contains)
        }
        return c
    }
}

/// sha256 of files a read hashes without a store's cache (`PlannedRuns.adapterChanged`'s adapter
/// files, an export read's data files and manifests), cached for the process per path, size and
/// modification time (a read checks every evaluated run's adapter, and `report` plans every spec,
/// several times).
public final class FileHashes: @unchecked Sendable {
    public static let shared = FileHashes()
    private let lock = NSLock()
    private var cache: [String: (size: Int, modified: Date, sha: String)] = [:]

    /// The file's sha256 (hex), nil when it cannot be read.
    public func sha256(_ given: String) -> String? {
        // The file a link leads to (a link's own size and times do not move when its target is rewritten).
        let path = (given as NSString).resolvingSymlinksInPath
        guard let a = try? FileManager.default.attributesOfItem(atPath: path), let size = (a[.size] as? NSNumber)?.intValue,
              let modified = a[.modificationDate] as? Date else { return nil }
        if let c = lock.withLock({ cache[path] }), c.size == size, c.modified == modified { return c.sha }
        guard let sha = try? SHA256.hex(file: path) else { return nil }
        lock.withLock { cache[path] = (size, modified, sha) }
        return sha
    }
}
