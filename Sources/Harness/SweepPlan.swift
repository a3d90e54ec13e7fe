// `sweep --dry-run`: what a sweep would do, from the spec and a read-only look at the store: each
// run's state (the same identity comparison as `insertPending`), missing models, time from measured
// epochs, and disk for checkpoints and artifacts. Nothing is written anywhere.
import Foundation
import Methods
import Models
import Store
import Tasks
import Support
import Training

public struct SweepPlan {
    public enum State: String, CaseIterable {
        case new, pending
        case interrupted = "interrupted (worker gone)"
        case failed = "failed (retry)"
        case changed = "rerun (identity changed)"
        /// A finished run of the planned identity in history (an edit reverted): the sweep takes it back.
        case restored = "taken back from history"
        /// A finished run of the planned identity under another spec, profile or cell name (a new
        /// method's spec listing stored baselines with the same settings): the sweep copies it here.
        case adopted = "adopted (finished under another spec, profile or variant)"
        case running = "running (live worker)"
        /// A live worker runs the cell and seed under other settings (another sweep of the spec,
        /// started before an edit): this sweep does not train it; a sweep after that worker does.
        case held = "held by a live worker under other settings (not trained by this sweep)"
        case done, diverged
        case skipped = "skipped (model missing)"

        /// A sweep would train this run.
        public var toDo: Bool { [.new, .pending, .interrupted, .failed, .changed].contains(self) }
    }

    public struct Entry {
        public var run: RunSpec
        public var state: State
        public var epochsDone: Int
    }

    public var spec: String
    public var profile: String
    public var workers: Int
    public var entries: [Entry]
    public var missing: [String: ModelNotFound]
    public var found: [String: String]               // model spec → directory
    public var timings: [TimingKey: Double]
    public var estimate: SweepEstimate
    public var runSeconds: Double                    // one worker, measured runs only
    public var checkpointPeak: Int                   // bytes, the `workers` largest checkpoints at once
    public var artifactBytes: Int
    public var ftWithoutArtifact: Int                // full fine-tuning runs whose weights are not kept
    public var unknownSize: Int                      // runs whose parameter count is unknown
    /// Cells of searched variants whose search has not chosen a point yet: their runs (the chosen
    /// point on every seed) are planned once it has, and are not among `entries`.
    public var undecided: [String] = []
    /// Cells with runs to do whose finished runs ran under other numerics than the sweep's workers
    /// would (`ResultsStore.otherNumerics`), and the workers' setup.
    public var otherNumerics: [String: [String]] = [:]
    public var workerNumerics = ""
    /// Data files the runs to do would read that are a subset of the official split (the full
    /// file missing here): "agnews train: train_head581.csv (the full file train.csv is missing)",
    /// for the full-data runs' training split (k = null) and every run's validation split.
    public var subsetFiles: [String] = []

    /// Trainable parameters of a run from its method's formula and the model's config.json (or the
    /// known architecture of its hub id); nil when neither is available.
    static func trainableParams(_ r: RunSpec, directory: String?) -> Int? {
        let arch = directory.flatMap { try? ModelConfig.load(path: ($0 as NSString).appendingPathComponent("config.json")) }
            ?? Architectures.known[r.modelSpec] ?? Architectures.known[r.model]
        return arch.flatMap { try? MethodRegistry.parameterCount(r.config.method, architecture: $0) }
    }

    public static func make(spec: ExperimentSpec, profile: String, options o: SweepOptions) throws -> SweepPlan {
        let exists = FileManager.default.fileExists(atPath: o.storePath)
        // Without a store, an in-memory one serves as the identities' file-hash cache.
        let store = exists ? try ResultsStore(readOnlyPath: o.storePath) : try ResultsStore(path: ":memory:")
        let searchable = store.schemaVersion >= 4 ? store.searchChoice(spec: spec, profile: profile) : { _, _, _, _ in nil }
        let expanded = try spec.expand(profile: profile, choose: searchable)
        let missing = try SweepRunner.missingModels(expanded)
        var found: [String: String] = [:]
        for m in Set(expanded.map(\.modelSpec)) where missing[m] == nil { found[m] = try ModelFiles.locate(m) }
        try SweepRunner.checkPins(expanded, dataDir: o.dataDir, lockPath: o.lockPath, allowUnpinned: o.allowUnpinned, store: store)
        let runs = try store.withIdentities(expanded.filter { missing[$0.modelSpec] == nil }, dataDir: o.dataDir, manifestDir: o.manifestDir)
        // As the sweep checks them: the runs it would train (a store of an older schema: all).
        try SweepRunner.checkFits(exists && store.schemaVersion >= 4 ? (try? SweepRunner.unfinished(runs, in: store)) ?? runs : expanded, missing: missing)
        var rows: [String: [String: SQLiteDB.Value]] = [:]
        if exists {
            let identity = store.schemaVersion >= 2 ? "identity" : "config_hash AS identity"
            let progress = store.schemaVersion >= 3 ? ", epochs_done" : ""
            let live = store.schemaVersion >= 2 ? " AND status != 'superseded'" : ""
            let sample = store.schemaVersion >= 4 ? "IFNULL(sample_seed, seed)" : "seed"
            for r in try store.db.query("SELECT cell, seed, \(sample) AS sample_seed, status, host, worker_pid, \(identity), \(store.identityColumn)\(progress) FROM runs WHERE spec=? AND profile=?\(live)",
                                        [.text(spec.name), .text(profile)]) {
                rows["\(r["cell"]?.text ?? "")#\(Replicate(seed: r["seed"]?.int ?? 0, sampleSeed: r["sample_seed"]?.int))"] = r
            }
        }
        // Finished runs in history that `insertPending` takes back instead of a rerun (schema v7).
        var restorable = Set<String>()
        if exists && store.schemaVersion >= 7 {
            for r in try store.db.query("""
                SELECT cell, seed, IFNULL(sample_seed, seed) AS sample_seed, identity FROM runs
                WHERE spec=? AND profile=? AND status='superseded' AND superseded_status IN \(ResultsStore.restorableSQL)
                """, [.text(spec.name), .text(profile)]) {
                restorable.insert("\(r["cell"]?.text ?? "")#\(Replicate(seed: r["seed"]?.int ?? 0, sampleSeed: r["sample_seed"]?.int))#\(r["identity"]?.text ?? "")")
            }
        }
        let host = ProcessInfo.processInfo.hostName
        var entries: [Entry] = []
        var twins: [(run: RunSpec, source: [String: SQLiteDB.Value])] = []  // the adopted runs' sources
        for r in runs {
            let takenBack = restorable.contains("\(r.cell)#\(r.replicate)#\(r.identity ?? "")")
            // What `insertPending` does with a run it has no current row of this identity for: take
            // it back from this spec's history, adopt another spec's finished twin, or plan it.
            func unmatched(_ otherwise: State) throws -> State {
                if takenBack { return .restored }
                guard exists, let t = try store.finishedTwins(of: r).first(where: { o.adoptable(r, source: $0) }) else { return otherwise }
                twins.append((r, t))
                return .adopted
            }
            guard let row = rows["\(r.cell)#\(r.replicate)"] else { entries.append(Entry(run: r, state: try unmatched(.new), epochsDone: 0)); continue }
            let status = row["status"]?.text ?? ""
            let done = row["epochs_done"]?.int ?? 0
            let identityDiffers = row["identity"]?.text != r.identity && ResultsStore.legacyIdentityMatch(stored: row, newJSON: r.identityJSON) == nil
            if identityDiffers && status != "running" {
                // A pending row never started (planned under other settings, an edit reverted
                // before its sweep trained it) is replaced, not rerun: nothing of it is lost.
                let neverStarted = status == "pending" && (row["epochs_done"]?.int ?? 0) == 0
                entries.append(Entry(run: r, state: try unmatched(neverStarted ? .pending : .changed), epochsDone: 0))
                continue
            }
            let state: State
            switch status {
            case "done": state = .done
            case "diverged": state = .diverged
            case "failed": state = .failed
            case "running":
                let sameHost = (row["host"]?.text ?? host) == host
                let dead = sameHost && !ResultsStore.workerAlive(Int32(row["worker_pid"]?.int ?? 0))
                // Under other settings: a dead worker's row goes to history and the run is trained
                // anew; a live one's keeps the cell (it read as this plan's run, "running").
                state = dead ? (identityDiffers ? .changed : .interrupted) : (identityDiffers ? .held : .running)
            default: state = .pending
            }
            // A pending, failed or interrupted row of the planned identity gives way to a finished
            // twin, as `insertPending` rules.
            if [.pending, .failed, .interrupted].contains(state), try unmatched(state) == .adopted {
                entries.append(Entry(run: r, state: .adopted, epochsDone: 0))
                continue
            }
            entries.append(Entry(run: r, state: state, epochsDone: done))
        }
        for r in expanded where missing[r.modelSpec] != nil { entries.append(Entry(run: r, state: .skipped, epochsDone: 0)) }

        let todo = entries.filter { $0.state.toDo }
        let timings = try store.epochTimings()
        let remaining = todo.map { RemainingRun(key: TimingKey(method: $0.run.method, task: $0.run.task, model: $0.run.modelSpec),
                                                epochsTotal: $0.run.config.epochs, epochsDone: $0.epochsDone) }
        let runSeconds = remaining.reduce(0.0) { acc, r in
            acc + (SweepETA.secondsPerEpoch(r.key, timings: timings).map { Double(max(0, r.epochsTotal - r.epochsDone)) * $0 } ?? 0)
        }
        // Checkpoint: trainable tensors + Adam's two moments, float32; deleted when the run ends.
        var checkpoints: [Int] = [], artifacts = 0, ft = 0, unknown = 0
        for e in todo {
            guard let p = trainableParams(e.run, directory: found[e.run.modelSpec]) else { unknown += 1; continue }
            // The tensors and the optimizer's state: AdamW's two moments, Adafactor's second
            // moment (factored for matrices: at most one more copy).
            checkpoints.append(p * 4 * (e.run.config.optimizer == .adafactor ? 2 : 3))
            if e.run.config.method.method != FullFineTuning.name || o.keepArtifacts { artifacts += p * 4 } else { ft += 1 }
        }
        let peak = checkpoints.sorted(by: >).prefix(max(1, o.workers)).reduce(0, +)
        var conflicts = exists ? try store.otherNumerics(spec: spec.name, profile: profile, planned: PlannedRuns(runs: expanded),
                                                         cells: Set(todo.map(\.run.cell)), here: o.workerNumerics) : [:]
        // The runs it would adopt join their cells with the numerics they ran under, as the sweep
        // finds them once they are copied.
        let todoCells = Set(todo.map(\.run.cell))
        // Only finished-done twins count, as `otherNumerics` counts done runs (a diverged one is
        // listed, not averaged), whether the twin is current or in history.
        for (r, t) in twins where todoCells.contains(r.cell) && t["tool_version"]?.text != nil && ResultsStore.finishedStatus(t) == "done" {
            let setup = ResultsStore.numericsSetup(t)
            guard !Trainer.numericsAgree(setup, o.workerNumerics) else { continue }
            conflicts[r.cell] = Trainer.distinctNumerics((conflicts[r.cell] ?? []) + [setup])
        }
        var plan = SweepPlan(spec: spec.name, profile: profile, workers: max(1, o.workers), entries: entries, missing: missing, found: found,
                         timings: timings, estimate: SweepETA.estimate(remaining, timings: timings, workers: o.workers),
                         runSeconds: runSeconds, checkpointPeak: peak, artifactBytes: artifacts, ftWithoutArtifact: ft, unknownSize: unknown,
                         undecided: try spec.undecidedSearchCells(profile: profile, choose: searchable).sorted())
        plan.otherNumerics = conflicts
        plan.workerNumerics = o.workerNumerics
        // Subsets said before the runs start (a paper profile planned full-data AG News runs on a
        // 581-row file, said only when each run started).
        var subsets: [String] = []
        var looked = Set<String>()  // task and whether a full-data run reads its training split: each looked up once
        for r in entries where r.state.toDo && looked.insert("\(r.run.task)#\(r.run.k == nil)").inserted {
            guard let def = try? TaskRegistry.definition(r.run.task) else { continue }
            for (split, candidates) in [(Split.train, def.files.train), (.validation, def.files.validation)] where split == .validation || r.run.k == nil {
                guard let used = DataLoader.file(def, split: split, dataDir: o.dataDir), used != candidates[0] else { continue }
                let line = "\(def.task) \(split.rawValue): \(used) (the full file \(candidates[0]) is missing)"
                if !subsets.contains(line) { subsets.append(line) }
            }
        }
        plan.subsetFiles = subsets
        return plan
    }

    public func render() -> String {
        let todo = entries.filter { $0.state.toDo }
        func tally(_ es: [Entry]) -> String {
            State.allCases.compactMap { s in
                let n = es.filter { $0.state == s }.count
                return n > 0 ? "\(n) \(s.rawValue)" : nil
            }.joined(separator: ", ")
        }
        var out = "sweep \(spec) [\(profile)] dry run (nothing started or stored): \(entries.count) runs, \(todo.count) to run\n"
        out += "  \(tally(entries))\n"
        var cells: [String] = []
        for e in entries where !cells.contains(e.run.cell) { cells.append(e.run.cell) }
        let width = max(4, cells.map(\.count).max() ?? 0)
        out += "\n  " + "cell".padding(toLength: width, withPad: " ", startingAt: 0) + "  seeds\n"
        for cell in cells {
            let es = entries.filter { $0.run.cell == cell }
            var parts: [String] = []
            for s in State.allCases {
                let seeds = es.filter { $0.state == s }.map { $0.run.sampleSeed == nil ? "\($0.run.seed)" : "\($0.run.replicate)" }
                if !seeds.isEmpty { parts.append("\(s.rawValue) \(seeds.joined(separator: ","))") }
            }
            out += "  " + cell.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + parts.joined(separator: "; ") + "\n"
        }
        if !subsetFiles.isEmpty {
            out += "\n  data that is a subset of the official split (the runs read it; tables mark it \"Subset data\"):\n"
            for line in subsetFiles { out += "  " + line + "\n" }
        }
        let numerics = SweepOptions.numericsWarning(otherNumerics, here: workerNumerics)
        if !numerics.isEmpty { out += "\n" + numerics.map { "  " + $0 }.joined(separator: "\n") + "\n" }
        if !undecided.isEmpty {
            // Their stored runs, if any, ran at a point of an earlier search and do not count.
            out += "\n  then, once its search has chosen, the chosen point on every seed (not counted above; time not included):\n"
            for cell in undecided { out += "  " + cell + "\n" }
        }
        out += "\nmodels:\n"
        for m in Set(entries.map(\.run.modelSpec)).sorted() {
            if let d = found[m] {
                out += "  \(m): \(d)\n"
            } else if let e = missing[m] {
                out += "  \(m): MISSING, \(entries.filter { $0.run.modelSpec == m }.count) runs would be skipped; looked in: \(e.looked.joined(separator: "; "))\n"
            }
        }
        let crew = "\(workers) worker\(workers == 1 ? "" : "s")"
        out += "\ntime: " + (todo.isEmpty ? "nothing to run"
            : estimate.unmeasured == estimate.remaining ? "unknown with \(crew): no run of these models has been timed in this store yet"
            : "≈ \(estimate.text) with \(crew) (\(formatDuration(runSeconds)) of measured run time)") + "\n"
        var keys: [TimingKey] = []
        for e in todo {
            let k = TimingKey(method: e.run.method, task: e.run.task, model: e.run.modelSpec)
            if !keys.contains(k) { keys.append(k) }
        }
        for k in keys {
            let own = timings[k], est = SweepETA.secondsPerEpoch(k, timings: timings)
            let text = own.map { String(format: "%.2fs per epoch (measured)", $0) }
                ?? est.map { String(format: "%.2fs per epoch (mean of this model's other runs)", $0) } ?? "unknown (never run)"
            out += "  \(k): \(text)\n"
        }
        out += "\ndisk: checkpoints ≈ \(formatBytes(checkpointPeak)) at peak (\(workers) at a time; trainable × 4 B × 3 with AdamW's moments, × 2 at most with Adafactor's; each deleted when its run finishes)\n"
        out += "  artifacts ≈ \(formatBytes(artifactBytes)) for \(todo.count - ftWithoutArtifact - unknownSize) runs"
        if ftWithoutArtifact > 0 { out += "; \(ftWithoutArtifact) full fine-tuning runs keep no artifact (--keep-artifacts keeps them)" }
        if unknownSize > 0 { out += "; \(unknownSize) runs of unknown size" }
        return out + "\n"
    }
}

func formatBytes(_ b: Int) -> String {
    let v = Double(b)
    if v >= 1e9 { return String(format: "%.1f GB", v / 1e9) }
    if v >= 1e6 { return String(format: "%.1f MB", v / 1e6) }
    if v >= 1e3 { return String(format: "%.1f KB", v / 1e3) }
    return "\(b) B"
}
