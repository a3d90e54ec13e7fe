import ArgumentParser
import Foundation
import Harness
import Store
import Support
import Tasks
import Tensor

let defaultDB = "runs/promptrepro.sqlite"

func executablePath() -> String {
    (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
}

func stderr(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }

struct Sweep: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run every run of an experiment spec (Baselines/specs/SPEC.yaml) with worker processes; resumable.",
        discussion: """
        Expands SPEC for the profile, inserts the runs into the SQLite store as pending, resets runs whose worker died
        (they restart from their last checkpoint), retries failed runs, and starts --workers worker processes that
        claim runs atomically. Done runs are never rerun. Progress bar with ETA on a terminal, plain lines otherwise.
        A model column whose checkpoint is not found is skipped with one line naming where it was looked for.
        Interrupt (^C or SIGTERM): workers stop, their runs go back to pending (exit status 130 / 143); a second
        interrupt kills them at once. --dry-run prints the plan (runs to do, missing models, time and disk) and
        changes nothing.
        """)
    @Argument(help: "Spec name (Baselines/specs/<name>.yaml) or path.") var spec: String
    @Option(help: "Profile: smoke (embedded backbone), cpu (HF-cache checkpoints, few-shot), paper.") var profile: String = "smoke"
    @Option(parsing: .unconditional, help: "Worker processes (default: one single-threaded worker per thread of --threads, at most one per 4 GiB of memory, and at least enough to keep each within 256 threads).", transform: positiveCount) var workers: Int?
    @Option(name: .customLong("db"), help: "SQLite store (default: \(defaultDB) in the checkout, from any working directory).") var dbGiven: String?
    var db: String { dbGiven ?? ProjectRoot.resolve(defaultDB) }
    @Option(help: "Data directory (default: PROMPTREPRO_DATA or data/).") var dataDir: String?
    @Option(name: .customLong("checkpoints"), help: "Where running runs keep their checkpoints (default: runs/checkpoints in the checkout).") var checkpointsGiven: String?
    var checkpoints: String { checkpointsGiven ?? ProjectRoot.resolve("runs/checkpoints") }
    @Option(parsing: .unconditional, help: "Total threads, shared by the workers, at most 256 per worker (default: PROMPTREPRO_THREADS or the CPUs this process may use).", transform: positiveCount) var threads: Int?
    @Flag(help: "Accept data files that differ from Baselines/data.lock.") var allowUnpinned = false
    @Flag(help: "Also keep full fine-tuning runs' final weights (a whole model per run); other methods' are always kept.") var keepArtifacts = false
    @Flag(help: "Print what would run (per cell: done, pending, failed, rerun), missing models, time and disk; change nothing.") var dryRun = false

    func run() throws {
        let s = try ExperimentSpec.load(spec, specsDir: ProjectRoot.resolve("Baselines/specs"))
        // Without --threads, the CPUs this process may use, up to what --workers can take (256 each).
        let total = threads ?? workers.map { min(Parallel.defaultTotalThreads(), $0 * Parallel.maxThreads) } ?? Parallel.defaultTotalThreads()
        // Each worker is one process: at most `Parallel.maxThreads` threads (the total is shared).
        if let w = workers, total / w > Parallel.maxThreads {
            throw ValidationError("--threads \(total) over --workers \(w) gives \(total / w) threads per worker: at most \(Parallel.maxThreads) (the thread pool's size); use more workers")
        }
        // The default split keeps each worker within one process's limit too.
        let split = workers ?? max(SweepOptions.defaultWorkers(threads: total), (total + Parallel.maxThreads - 1) / Parallel.maxThreads)
        var o = SweepOptions(storePath: db, workers: split, threads: total, dataDir: try DataFiles.directory(dataDir, environmentDir: Environment.dataDir, defaultDir: ProjectRoot.resolve("data")), checkpointDir: checkpoints)
        if allowUnpinned { o.extraWorkerArgs.append("--allow-unpinned") }
        o.manifestDir = ProjectRoot.resolve("Baselines/manifests")
        o.projectRoot = ProjectRoot.path
        o.lockPath = ProjectRoot.resolve("Baselines/data.lock")
        o.allowUnpinned = allowUnpinned
        o.keepArtifacts = keepArtifacts
        o.environment = Environment.values
        // Before anything is planned: a path the workers cannot write checkpoints into left the
        // store planned, each worker dying at its first run ("rerun to resume" could not help).
        try checkCheckpointDirectory(checkpoints, create: !dryRun)
        if dryRun {
            print(try SweepPlan.make(spec: s, profile: profile, options: o).render(), terminator: "")
            return
        }
        let outcome: SweepOutcome
        do {
            outcome = try SweepRunner.run(spec: s, profile: profile, options: o, executable: executablePath(), log: stderr)
        } catch let e as SweepInterrupted {
            stderr("\(e)")
            throw ExitCode(128 + e.signal)
        }
        let counts = outcome.counts
        let skipped = outcome.skipped.reduce(0) { $0 + $1.runs }
        stderr("sweep \(s.name) [\(profile)] finished: " + (try ResultsStore(path: db).statusSummary(counts, spec: s.name, profile: profile))
               + (outcome.outsidePlan > 0 ? "; \(outcome.outsidePlan) finished run\(outcome.outsidePlan == 1 ? "" : "s") the spec no longer plans kept, not counted (a spec that lists them again reuses them)" : "")
               + (skipped > 0 ? "; \(skipped) runs skipped (model missing: \(outcome.skipped.map(\.model).joined(separator: ", ")))" : ""))
        // Runs still running after this sweep's workers stopped belong to live workers it did not
        // start (a sweep killed with SIGKILL leaves its workers running): name them.
        if (counts["running"] ?? 0) > 0 {
            let held = try ResultsStore(path: db).db.query("SELECT id, host, worker_pid FROM runs WHERE status='running' AND spec=? AND profile=?",
                                                          [.text(s.name), .text(profile)])
            let who = held.prefix(4).map { "run \($0["id"]?.int ?? 0) (pid \($0["worker_pid"]?.int ?? 0) on \($0["host"]?.text ?? "?"))" }.joined(separator: ", ")
            stderr("note: \(held.count) run\(held.count == 1 ? " is" : "s are") still held by live workers this sweep did not start (an earlier sweep's, or `worker` processes): \(who)\(held.count > 4 ? ", …" : ""); they finish on their own (or stop them), then run the sweep again to count them")
        }
        stderr("artifacts: \(Worker.artifactDirectory(checkpointDir: checkpoints, spec: s.name, profile: profile))/<cell>-s<seed>-<identity>-store-\(Worker.storeTag(db)).safetensors"
               + (keepArtifacts ? "" : " (full fine-tuning keeps none without --keep-artifacts)"))
        // Planned runs a live worker held under other settings were not trained (their cell's
        // row is that worker's run): the sweep is not done (it exited 0 with them missing).
        if outcome.heldElsewhere > 0 {
            stderr("note: \(outcome.heldElsewhere) planned run\(outcome.heldElsewhere == 1 ? " was" : "s were") held by a live worker under other settings and not trained; run the sweep again (it trains \(outcome.heldElsewhere == 1 ? "it" : "them") once that worker has finished)")
        }
        if (counts["failed"] ?? 0) > 0 || (counts["pending"] ?? 0) > 0 || (counts["running"] ?? 0) > 0 || skipped > 0 || outcome.heldElsewhere > 0 { throw ExitCode(1) }
    }
}

struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Claim and run pending runs from the store until none is left (sweeps start these; run more anywhere the DB is local).")
    @Option(name: .customLong("db"), help: "SQLite store (default: \(defaultDB) in the checkout, from any working directory).") var dbGiven: String?
    var db: String { dbGiven ?? ProjectRoot.resolve(defaultDB) }
    @Option(help: "Only runs of this spec.") var spec: String?
    @Option(help: "Only runs of this profile.") var profile: String?
    @Option(help: "Data directory.") var dataDir: String?
    @Option(name: .customLong("checkpoints"), help: "Checkpoint directory (default: runs/checkpoints in the checkout).") var checkpointsGiven: String?
    var checkpoints: String { checkpointsGiven ?? ProjectRoot.resolve("runs/checkpoints") }
    @Option(parsing: .unconditional, help: "Threads for this worker, recorded with each run (default: PROMPTREPRO_THREADS or the CPUs this process may use; with the GEMM kernel they fix a run's bits).", transform: threadCount) var threads: Int?
    @Option(parsing: .unconditional, help: "Stop after this many runs.") var maxRuns: Int?
    @Flag(help: "Accept data files that differ from Baselines/data.lock.") var allowUnpinned = false
    @Flag(help: "Only errors on stderr.") var quiet = false
    @Option(help: "Never claim runs of this model (repeatable; sweeps pass the models they found missing).") var skipModel: [String] = []
    @Flag(help: "Also keep full fine-tuning runs' final weights.") var keepArtifacts = false
    @Option(parsing: .unconditional, help: "Worker processes of the sweep that started this one (recorded per run as sweep_workers).") var sweepWorkers: Int?
    @Option(parsing: .unconditional, help: "PID of the sweep that started this worker (sweeps pass it): once that process is gone, the worker puts its run back to pending and exits.") var sweepPid: Int32?

    func run() throws {
        // SIGINT/SIGTERM: finish the current step, put the run back to pending, exit 128 + signal.
        let signals = InterruptSignals()
        var o = WorkerOptions(storePath: db, spec: spec, profile: profile, dataDir: try DataFiles.directory(dataDir, environmentDir: Environment.dataDir, defaultDir: ProjectRoot.resolve("data")), checkpointDir: checkpoints, threads: threads)
        o.allowUnpinned = allowUnpinned
        o.maxRuns = maxRuns
        o.manifestDir = ProjectRoot.resolve("Baselines/manifests")
        o.lockPath = ProjectRoot.resolve("Baselines/data.lock")
        // A sweep passes its commit; a worker started by hand or a SLURM job reads the checkout's.
        o.gitCommit = Environment.values["PROMPTREPRO_GIT_COMMIT"] ?? SweepRunner.gitCommit(in: ProjectRoot.path)
        o.skipModels = skipModel
        o.keepArtifacts = keepArtifacts
        o.sweepWorkers = sweepWorkers
        // A worker claims runs a sweep or `shard` planned: a store that is not there (a mistyped
        // shard path in a SLURM script) is an error, not a new empty store and a silent success.
        guard FileManager.default.fileExists(atPath: db) else {
            throw CommandFailure("--db \(db): no such store (a worker runs the pending runs of a store that `sweep` or `shard` planned; it does not create one)")
        }
        try ResultsStore.requireStoreFile(db, allowNew: false, action: "no run claimed")
        try checkCheckpointDirectory(checkpoints, create: true)   // before a run is claimed (it stayed 'running')
        // A worker started by hand or by a SLURM job (a sweep resets its own first): runs a killed
        // worker left 'running' (its pid gone on this host, or its heartbeat stale elsewhere) go
        // back to pending, or resubmitting the job never finished them.
        if sweepWorkers == nil {
            let store = try ResultsStore(path: db)
            let reset = try store.resetInterrupted(spec: spec, profile: profile)
            if reset > 0 { stderr("worker: \(reset) run\(reset == 1 ? "" : "s") left running by a worker that no longer exists back to pending") }
            // Failed runs are retried, as a sweep retries them: a worker rerun with the right data
            // directory after its runs failed (its own advice) found "no pending run" and left them failed.
            let retried = try store.retryFailed(spec: spec, profile: profile, skipModels: skipModel)
            if retried > 0 { stderr("worker: \(retried) failed run\(retried == 1 ? "" : "s") back to pending, to retry") }
            // A --spec the store holds no run of (a typo in a SLURM script) found nothing to do and
            // exited 0; a spec whose runs are all finished still does. (A sweep's own workers are
            // not asked: a sweep whose every model is missing planned no run of its spec.)
            if let spec {
                let names = try store.db.query("SELECT DISTINCT spec FROM runs ORDER BY spec").compactMap { $0["spec"]?.text }
                guard names.contains(spec) else {
                    throw CommandFailure("--spec \(spec): \(db) holds no run of that spec\(didYouMean(spec, names)); specs there: \(names.isEmpty ? "none" : names.joined(separator: ", "))")
                }
            }
        }
        let q = quiet
        final class Count: @unchecked Sendable { var failed = 0 }
        let count = Count()
        // A sweep killed outright (SIGKILL, the OOM killer, a lost terminal) cannot stop its
        // workers, which went on training its runs unseen; each step looks whether its sweep, the
        // worker's parent, is still there (an orphan is re-parented elsewhere).
        let sweep = sweepPid
        let sweepGone = { sweep.map { getppid() != $0 } ?? false }
        let ran = try Worker.run(o, stop: { signals.count > 0 || sweepGone() }) { line in
            if line.hasPrefix("run "), line.contains(" failed: ") { count.failed += 1 }
            // Nothing once the sweep is gone: its end of the stderr pipe is closed (SIGPIPE).
            if (!q || line.contains("failed")) && !sweepGone() { stderr(line) }
        }
        if let sig = signals.first { throw ExitCode(128 + sig) }
        // Nothing printed: the sweep's end of the stderr pipe is closed (a write would raise SIGPIPE).
        if sweepGone() { throw ExitCode(1) }
        if ran == 0 && !q {
            stderr("worker: no pending run in \(db)" + (spec.map { " of spec \($0)" } ?? "") + (profile.map { " [\($0)]" } ?? "") + "; nothing to do")
        }
        // A job whose runs failed does not report success (a SLURM array showed every task
        // succeeded); under a sweep, which reports failed runs itself, the status stays 0.
        if count.failed > 0 && sweepWorkers == nil {
            stderr("worker: \(count.failed) of the \(ran) runs it claimed failed (their errors are stored: `promptrepro results`, or sqlite3 runs.error)")
            throw ExitCode(1)
        }
    }
}

struct Results: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Per-cell mean and standard deviation over seeds (best-epoch and last-epoch) as md, csv or json.",
        discussion: "std: sample standard deviation (n−1); pop_std: population (n). Both are stored since DPT Table 3 does not say which it used. A cell whose seeds ran under different numerics (GEMM kernel, OpenBLAS build, thread count) is named \"Mixed numerics\" (in the Markdown, else on stderr).")
    @Argument(help: "Spec name (or a spec file's path).") var spec: String
    @OptionGroup var selection: StoreSelection
    var db: String { selection.db }
    var profile: String { selection.profile }
    @Option(help: "md, csv or json.") var format: String = "md"
    @Option(help: "Write here instead of stdout.") var out: String?
    @Flag(help: "Also per-run efficiency (peak RSS, s/step, FLOPs/step, train and eval seconds, artifact bytes; mean over seeds). json always has it.")
    var efficiency = false
    @Option(help: "Validation data, for ReCoRD's invalid-output fraction of runs stored before it was recorded (default: PROMPTREPRO_DATA or data/).") var dataDir: String?

    func run() throws {
        guard FileManager.default.fileExists(atPath: db) else { throw CommandFailure("\(db): no results store (run `promptrepro sweep \(spec)` first)") }
        let store = try ResultsStore.forReading(path: db)
        // The spec file (when there is one) names the searches whose choices and cost are listed.
        let specFile = try? ExperimentSpec.load(spec, specsDir: ProjectRoot.resolve("Baselines/specs"))
        let name = specFile?.name ?? spec
        let data = dataDir != nil ? try DataFiles.directory(dataDir, environmentDir: Environment.dataDir)
            : try? DataFiles.directory(nil, environmentDir: Environment.dataDir, defaultDir: ProjectRoot.resolve("data"))
        let current = try currentPlan(spec: spec, profile: profile, store: store, dataDir: data)
        let cells = try plannedCells(store, spec: spec, profile: profile, dataDir: data, current: current, sayMixedNumerics: format != "md")
        guard !cells.isEmpty else { throw CommandFailure(try noRunsMessage(store, spec: name, profile: profile, db: db)) }
        var text: String
        switch format {
        case "md":
            text = ResultsExport.markdown(cells, spec: name, profile: profile) + (efficiency ? ResultsExport.efficiencyMarkdown(cells) : "")
            // Stale runs left out are said in the output too (their cells' rows vanished from it).
            if let line = try leftOutLine(store, current: current, profile: profile, given: spec) { text += "\n> \(line)\n" }
            // Seeds of one cell run under other kernels or thread counts (merged shards): said.
            if let note = mixedNumericsNote(mixedNumerics(of: cells)) { text += "\n> \(note)\n" }
            if let note = mixedEvalSetsNote(cells) { text += "\n> \(note)\n" }
            if let s = specFile, s.hasSearch {
                text += ResultsExport.searchMarkdown(try store.searchSummaries(s, profile: profile))
                // Grid points sit beside the variants in the table: said what they are, so no one
                // picks the best point by its scores on the reported split.
                let shown = Set(cells.map(\.variant)).intersection(s.variants.filter { $0.searchFor != nil }.map(\.name))
                if !shown.isEmpty {
                    text += "\n> Rows of `NAME@KEY=value` variants are search runs (grid points, trained on the search seeds and chosen between on the dev split): their scores on the reported split are shown for completeness; choosing a point by them is the selection the search avoids, and `compare` refuses them.\n"
                }
            }
        case "csv":
            text = ResultsExport.csv(cells, extras: efficiency, profile: profile, gridPoints: gridPoints(specFile, cells: cells))
            text = csvAddingLeftOut(text, try leftOutCells(store, current: current, profile: profile), shown: Set(cells.map(\.cell)), profile: profile)
        case "json":
            text = try ResultsExport.json(cells, spec: name, profile: profile, gridPoints: gridPoints(specFile, cells: cells))
            if let s = specFile, s.hasSearch { text = try ResultsExport.addingSearches(text, try store.searchSummaries(s, profile: profile)) }
            text = try jsonAddingLeftOut(text, try leftOutCells(store, current: current, profile: profile), shown: Set(cells.map(\.cell)))
        default: throw ValidationError("unknown format '\(format)' (md, csv, json)")
        }
        if let out { try text.write(toFile: out, atomically: true, encoding: .utf8) } else { print(text, terminator: "") }
    }
}

struct Shard: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Split a spec's runs into N shard stores (one per SLURM array task); see `make slurm-sweep`.")
    @Argument var spec: String
    @Option var profile: String = "smoke"
    @Option(parsing: .unconditional, help: "Number of shards (array tasks).") var shards: Int = 2
    @Option(help: "Directory for shard-<i>.sqlite.") var dir: String
    @Option(help: "Merged store holding finished hyper-parameter searches: the chosen points' runs are sharded too.") var searchDB: String?
    @Option(help: "Data directory (default: PROMPTREPRO_DATA or data/); hashed into each run's identity.") var dataDir: String?
    @Flag(help: "Accept data files that differ from Baselines/data.lock (pass it to the workers too).") var allowUnpinned = false

    func run() throws {
        guard shards > 0 else { throw ValidationError("--shards must be positive") }
        let s = try ExperimentSpec.load(spec, specsDir: ProjectRoot.resolve("Baselines/specs"))
        // Identities hash the data the workers will read; without a data directory here they say "missing".
        let data = dataDir != nil ? try DataFiles.directory(dataDir, environmentDir: Environment.dataDir) : ((try? DataFiles.directory(nil, environmentDir: Environment.dataDir, defaultDir: ProjectRoot.resolve("data"))) ?? ProjectRoot.resolve("data"))
        // A searched variant's final runs are known once its search is finished and merged into `--db`.
        let merged = try searchDB.map { try ResultsStore(readOnlyPath: $0) }
        let choose = merged.map { $0.searchChoice(spec: s, profile: profile) }
        let expanded = try s.expand(profile: profile, choose: choose)
        // As `sweep`: data that differs from its pin stops the plan here, not in every worker
        // after a merge has superseded the store's finished runs of the pinned data.
        try SweepRunner.checkPins(expanded, dataDir: data, lockPath: ProjectRoot.resolve("Baselines/data.lock"), allowUnpinned: allowUnpinned,
                                  store: try ResultsStore(path: ":memory:"), requirePresent: false)
        // n_positions only: the workers' machines, not this one, decide what fits in memory.
        try SweepRunner.checkFits(expanded, missing: try SweepRunner.missingModels(expanded), hereMemory: false)
        // Made once the plan is accepted: a refused one leaves nothing under --dir.
        let scratch = try ResultsStore(path: "\(dir)/identities.sqlite")  // file-hash cache for the identities
        let planned = try scratch.withIdentities(expanded, dataDir: data, manifestDir: ProjectRoot.resolve("Baselines/manifests"))
        // With --search-db, runs that store already finished (the search points and everything
        // else of the first phase) are not sharded again: every run was, and retrained.
        let runs = try merged.map { try SweepRunner.unfinished(planned, in: $0) } ?? planned
        let paths = try ResultsStore.writeShards(runs, shards: shards, dir: dir)
        stderr("\(runs.count) run\(runs.count == 1 ? "" : "s") of \(s.name) [\(profile)] in \(paths.count) shard\(paths.count == 1 ? "" : "s") under \(dir)"
               + (planned.count > runs.count ? " (\(planned.count - runs.count) finished in \(searchDB ?? "") left out: merge the new shards into it)" : ""))
        // Runs planned without their data files carry "missing" in their identity until their
        // worker reads the files: it stores the identity with their hashes before training.
        let unpinned = Set(runs.filter { ($0.identityJSON ?? "").contains("\"missing\"") }.map(\.task)).sorted()
        if !unpinned.isEmpty {
            stderr("note: no data files of \(unpinned.joined(separator: ", ")) under \(data): those runs' identities say 'missing' until their workers read the data (each worker stores the hashes of the files it reads before training, and checks them against Baselines/data.lock)")
        }
        if s.hasSearch {
            let waiting = try s.expand(profile: profile, choose: { points, _, _, _ in points.first }).count - planned.count
            if waiting > 0 {
                stderr("\(waiting) runs of searched variants wait for their search: after `merge`, run `shard` again with --search-db <merged store>")
            }
        }
    }
}

struct Merge: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Merge finished runs of shard stores into one store (runs already finished there are kept).",
        discussion: "A shard run whose run is already finished here under other numerics (GEMM kernel, OpenBLAS build, thread count) is not taken, and named with both setups.")
    @Option(name: .customLong("into"), help: "Destination store (default: \(defaultDB) in the checkout).") var intoGiven: String?
    var into: String { intoGiven ?? ProjectRoot.resolve(defaultDB) }
    @Argument(help: "Shard stores.") var sources: [String]

    func run() throws {
        // Every source checked before the destination is opened (or created): a failed merge
        // leaves no new store behind, and an existing destination that is not a store is refused.
        for s in sources {
            guard FileManager.default.fileExists(atPath: s) else { throw CommandFailure("\(s): no such store") }
            try ResultsStore.requireStoreFile(s, allowNew: false)
        }
        if FileManager.default.fileExists(atPath: into) { try ResultsStore.requireStoreFile(into) }
        let dest = try ResultsStore(path: into)
        var total = 0
        for s in sources {
            let report = try dest.mergeReporting(from: s)
            total += report.merged
            stderr("merged \(report.merged) runs from \(s)")
            if !report.unfinished.isEmpty {
                stderr("  not finished in the shard (not merged): " + report.unfinished.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
                       + " — run its worker (`promptrepro worker --db \(s) …`), then merge again")
            }
            if !report.leftRunning.isEmpty {
                stderr("  left to the worker running here (merge again once it is done): " + report.leftRunning.prefix(6).joined(separator: "; ")
                       + (report.leftRunning.count > 6 ? "; … (\(report.leftRunning.count))" : ""))
            }
            // Runs of other settings replacing finished ones here (a shard of an edited or another
            // spec file of the same name) are named: sweeping the spec here again takes them back.
            for line in report.replaced { stderr("  replaced: \(line)") }
            for line in report.history { stderr("  history: \(line)") }
            for line in report.keptOtherNumerics.prefix(6) { stderr("  kept: \(line)") }
            if !report.keptOtherNumerics.isEmpty {
                stderr("note: \(report.keptOtherNumerics.count) runs of the shard were the same runs as finished ones here under other numerics (kernel, kc, OpenBLAS or threads) and were not merged"
                       + (report.keptOtherNumerics.count > 6 ? " (6 named above)" : "")
                       + "; the results are bit-identical only within one setup")
            }
            if !report.replaced.isEmpty {
                stderr("note: \(report.replaced.count) runs here were replaced by the shard's runs of other settings; if the shard was made from another spec file, `sweep` the spec here again: its finished runs come back from history")
            }
        }
        let c = try dest.counts()
        stderr("merge: \(total) runs into \(into); now " + (try dest.statusSummary(c)))
    }
}

/// `--checkpoints PATH` where runs keep their checkpoints (and, beside it, their artifacts): refused
/// when it is a file or cannot be created (`create`: it is made now, as the workers would).
func checkCheckpointDirectory(_ path: String, create: Bool) throws {
    var isDir: ObjCBool = false
    if FileManager.default.fileExists(atPath: path, isDirectory: &isDir) {
        guard isDir.boolValue else { throw ValidationError("--checkpoints \(path): a file, not a directory (runs keep their checkpoints there)") }
        return
    }
    guard create else { return }
    do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
        throw ValidationError("--checkpoints \(path): cannot create the directory (\(error.localizedDescription))")
    }
}
