// Sweeps: expand a spec, insert its runs as pending, and let worker processes claim them one at a
// time through the store. Rerunning resumes: done runs are skipped, runs whose worker died go back
// to pending and restart from their last checkpoint, failed runs are retried.
import Dispatch
import Foundation
import Methods
import Models
import Store
import Support
import Tasks
import Tensor
import Training

public struct WorkerOptions {
    public var storePath: String
    public var spec: String?
    public var profile: String?
    public var dataDir: String
    public var checkpointDir: String
    public var threads: Int?
    public var manifestDir = "Baselines/manifests"
    public var lockPath = "Baselines/data.lock"
    /// The commit the sweep was started from (recorded per run; the CLI passes PROMPTREPRO_GIT_COMMIT).
    public var gitCommit: String?
    public var allowUnpinned = false
    public var maxRuns: Int?
    /// Models (`model_spec`) whose runs this worker never claims (the sweep found them missing).
    public var skipModels: [String] = []
    /// Keep the final tensors of full fine-tuning runs too (a whole model per run); runs of the
    /// other methods always keep theirs (their trainable tensors are small).
    public var keepArtifacts = false
    /// Worker processes of the sweep that started this worker (recorded per run as the run metric
    /// `sweep_workers`; with `runs.threads` it is the sweep's split of the cores). nil: started by hand.
    public var sweepWorkers: Int?

    public init(storePath: String, spec: String?, profile: String?, dataDir: String, checkpointDir: String, threads: Int?) {
        self.storePath = storePath
        self.spec = spec
        self.profile = profile
        self.dataDir = dataDir
        self.checkpointDir = checkpointDir
        self.threads = threads
    }
}

public enum Worker {
    /// Claims and runs pending runs until none is left or `stop` returns true; returns how many it
    /// finished. `stop` is polled between runs and before and after every optimizer step: a run
    /// that is stopped goes back to 'pending' with nothing stored (its last epoch checkpoint
    /// The tag naming a store's checkpoints and artifacts: the first 12 hex digits of the sha256 of
    /// its absolute path (symbolic links resolved).
    public static func storeTag(_ storePath: String) -> String {
        String(sha256Hex(URL(fileURLWithPath: storePath).standardizedFileURL.resolvingSymlinksInPath().path).prefix(12))
    }

    /// The files two `model_files` values ("NAME:sha256,…") disagree on, each with its planned
    /// and present hash (12 digits; "none" where the file is absent).
    static func modelFilesDifference(planned: String, here: String) -> String {
        func files(_ v: String) -> [String: String] {
            Dictionary(v.split(separator: ",").compactMap { f -> (String, String)? in
                guard let colon = f.lastIndex(of: ":") else { return nil }
                return (String(f[..<colon]), String(f[f.index(after: colon)...]))
            }, uniquingKeysWith: { a, _ in a })
        }
        let a = files(planned), b = files(here)
        return Set(a.keys).union(b.keys).sorted().filter { a[$0] != b[$0] }.map {
            "\($0) (planned \(a[$0].map { String($0.prefix(12)) } ?? "none"), here \(b[$0].map { String($0.prefix(12)) } ?? "none"))"
        }.joined(separator: ", ")
    }

    /// The input parts of `r`'s identity (`manifest`, the `data` files, `weights`, `model_files`) as this worker
    /// reads them (`RunIdentity.compute` on `dataDir`, `manifestDir` and the run's checkpoint)
    /// that differ from those `r` was planned with, as one line; nil when they agree or `r` has no
    /// stored identity. A part the plan could not pin (a data file or checkpoint it did not find:
    /// "missing") is not compared; the run records what it read (`data_hashes`, `weights_sha256`).
    public static func inputMismatch(_ r: RunSpec, store: ResultsStore, dataDir: String, manifestDir: String) throws -> String? {
        guard r.identityJSON != nil else { return nil }
        return inputMismatch(plannedJSON: r.identityJSON, hereJSON: try store.withIdentities([r], dataDir: dataDir, manifestDir: manifestDir)[0].identityJSON)
    }

    /// `inputMismatch` on two identities: the planned one and the one computed on this worker's inputs.
    static func inputMismatch(plannedJSON: String?, hereJSON: String?) -> String? {
        let planned = PlannedRuns.inputParts(identityJSON: plannedJSON)
        let here = PlannedRuns.inputParts(identityJSON: hereJSON)
        func name(_ part: String) -> (order: Int, text: String, shown: (String) -> String) {
            switch part {
            case "manifest": return (0, "few-shot manifest", { String($0.prefix(12)) })
            case "weights": return (2, "checkpoint weights", { String($0.prefix(12)) })
            case "model_files": return (3, "checkpoint files", { $0 })
            default: return (1, "\(part.dropFirst("data.".count)) data", { String($0.suffix(12)) })
            }
        }
        let differ = planned.filter { !$0.value.hasPrefix("missing") && here[$0.key] != $0.value }
            .sorted { (name($0.key).order, $0.key) < (name($1.key).order, $1.key) }
            .map { part, v in
                let n = name(part)
                if part == "model_files" { return "checkpoint files " + modelFilesDifference(planned: v, here: here[part] ?? "") }
                return "\(n.text) (planned \(n.shown(v)), here \(here[part].map(n.shown) ?? "none"))"
            }
        return differ.isEmpty ? nil : differ.joined(separator: "; ")
    }

    /// The identity a run planned where its data files or checkpoint were not (a `shard` planned on
    /// a login node: those parts say "missing") takes once its worker has read them: `here`, the
    /// identity computed on the worker's inputs, when it agrees with `planned` on every part the
    /// plan could pin (config, task parts, rules and the input parts not "missing"); nil when
    /// nothing was missing or they disagree (the worker then refuses the run: `inputMismatch`).
    /// Stored before the run trains, a merged run is then the same run as a store's run of the
    /// same settings and data; with "missing" it replaced that run as one of other data.
    static func completedIdentity(planned: (hash: String?, json: String?), here: (hash: String?, json: String?)) -> (hash: String, json: String)? {
        guard let pj = planned.json, let hj = here.json, let hh = here.hash, hh != planned.hash,
              PlannedRuns.inputParts(identityJSON: pj).values.contains(where: { $0.hasPrefix("missing") }),
              var p = (try? JSONSerialization.jsonObject(with: Data(pj.utf8))) as? [String: Any],
              var h = (try? JSONSerialization.jsonObject(with: Data(hj.utf8))) as? [String: Any] else { return nil }
        let pinnedHere = PlannedRuns.inputParts(identityJSON: hj)
        // Every input part the plan pinned must be what the worker reads.
        guard PlannedRuns.inputParts(identityJSON: pj).allSatisfy({ $0.value.hasPrefix("missing") || pinnedHere[$0.key] == $0.value }) else { return nil }
        for part in ["manifest", "data", "weights", "model_files"] { p[part] = nil; h[part] = nil }
        guard PlannedRuns.canonical(p) == PlannedRuns.canonical(h) else { return nil }
        return (hh, hj)
    }

    /// Whether a sweep keeps a run's trained tensors as an artifact: every method's but full
    /// fine-tuning's, whose weights are kept only with `--keep-artifacts`.
    public static func keepsArtifact(_ config: TrainConfig, keepArtifacts: Bool) -> Bool {
        config.method.method != FullFineTuning.name || keepArtifacts
    }

    /// A run's artifact file: `artifactDirectory` / CELL-sSEED[-dSAMPLE]-IDENTITY12-store-TAG.safetensors.
    /// Named by the store too, as checkpoints are: two stores sweeping a spec of one name would
    /// otherwise overwrite each other's tensors under runs their rows still call done. And by the
    /// run's identity: a run of the cell with other settings (a spec edited since) writes its own
    /// file, so a finished run in history keeps its tensors.
    public static func artifactPath(checkpointDir: String, spec: String, profile: String, cell: String, seed: Int, sampleSeed: Int?,
                                    identity: String, storeTag: String) -> String {
        "\(artifactDirectory(checkpointDir: checkpointDir, spec: spec, profile: profile))/"
            + "\(cell.replacingOccurrences(of: "|", with: "_"))-s\(seed)\(sampleSeed.map { "-d\($0)" } ?? "")-\(identity.prefix(12))-store-\(storeTag).safetensors"
    }

    /// The artifact of a stored run `row` (spec, profile, cell, seed, sample seed, identity), as
    /// `artifactPath` names it for a sweep with these checkpoints and store.
    static func artifactPath(of row: [String: SQLiteDB.Value], checkpointDir: String, storeTag: String) -> String {
        artifactPath(checkpointDir: checkpointDir, spec: row["spec"]?.text ?? "", profile: row["profile"]?.text ?? "", cell: row["cell"]?.text ?? "",
                     seed: row["seed"]?.int ?? 0, sampleSeed: row["sample_seed"]?.int, identity: row["identity"]?.text ?? "", storeTag: storeTag)
    }

    /// A run's resume checkpoint: `store-<storeTag>-run-<id>.safetensors` in the checkpoint directory.
    public static func checkpointPath(checkpointDir: String, storeTag: String, run id: Int) -> String {
        "\(checkpointDir)/store-\(storeTag)-run-\(id).safetensors"
    }

    /// Deletes the resume checkpoints of this store (`checkpointPath`, and their stale temporaries)
    /// that nothing will resume from: those of runs sent to history (`superseded`: a spec edited or
    /// no longer planning them, or a pending row that gave way to an adopted twin) and of finished
    /// runs (`done`, `diverged`, `evaluated`: the worker deletes these on success, unless it was
    /// killed in between). A file is deleted only when its stored config is its row's (as a resume
    /// compares them, threads and evaluation batch aside): a store at the same path on another host
    /// (the tag is the path's) sharing this checkpoint directory numbers other runs alike, and ids
    /// this store does not hold are left for the same reason. Pending, running and failed runs keep
    /// theirs: a resume or a retry reads it. Other tags and other files are left alone. Returns the
    /// files removed and their bytes. Errors: the store's.
    @discardableResult
    public static func removeDeadCheckpoints(store: ResultsStore, checkpointDir: String, storeTag: String) throws -> (files: Int, bytes: Int64) {
        let prefix = "store-\(storeTag)-run-", suffix = ".safetensors"
        // A checkpoint, or a temporary a killed writer left beside it (`NAME.tmp-…`), by run id; the
        // id as `checkpointPath` spells it (no sign, no leading zero).
        let ids = Set(((try? FileManager.default.contentsOfDirectory(atPath: checkpointDir)) ?? []).compactMap { name -> Int? in
            guard name.hasPrefix(prefix), let end = name.range(of: suffix) else { return nil }
            guard end.upperBound == name.endIndex || name[end.upperBound...].hasPrefix(".tmp-")
                    || name[end.upperBound...] == ".other-numerics" else { return nil }
            let digits = String(name[name.index(name.startIndex, offsetBy: prefix.count)..<end.lowerBound])
            guard let id = Int(digits), id > 0, String(id) == digits else { return nil }
            return id
        }).sorted()
        guard !ids.isEmpty else { return (0, 0) }
        var rows: [Int: (status: String, config: String)] = [:]
        for row in try store.db.query("SELECT id, status, config_json FROM runs WHERE id IN (\(ids.map(String.init).joined(separator: ",")))") {
            if let id = row["id"]?.int { rows[id] = (row["status"]?.text ?? "", row["config_json"]?.text ?? "") }
        }
        var files = 0, bytes: Int64 = 0
        for id in ids {
            guard let row = rows[id], !["pending", "running", "failed"].contains(row.status) else { continue }
            let path = checkpointPath(checkpointDir: checkpointDir, storeTag: storeTag, run: id)
            // The checkpoint, and the one a resume set aside as written under other numerics
            // (`.other-numerics`, kept for a look until its run is over).
            var ours = false
            for file in [path, path + ".other-numerics"] where FileManager.default.fileExists(atPath: file) {
                // Ours only when the file's config is the row's; an unreadable file (a write cut
                // short) is left: a resume sets such a file aside itself.
                guard let planned = try? JSONDecoder().decode(TrainConfig.self, from: Data(row.config.utf8)),
                      let f = try? SafeTensorsFile(path: file),
                      Trainer.configDifference(saved: f.metadata["config"], current: planned) == nil else { continue }
                ours = ours || file == path
                let size = ((try? FileManager.default.attributesOfItem(atPath: file))?[.size] as? NSNumber)?.int64Value ?? 0
                if (try? FileManager.default.removeItem(atPath: file)) != nil { files += 1; bytes += size }
            }
            if ours || !FileManager.default.fileExists(atPath: path) { removeStaleTemporaries(for: path) }
        }
        return (files, bytes)
    }

    /// Where a sweep writes the artifacts of (spec, profile): `artifacts/<spec>-<profile>` beside the
    /// checkpoint directory, as an absolute path.
    public static func artifactDirectory(checkpointDir: String, spec: String, profile: String) -> String {
        // Resolved (absolute, no ".."; a linked checkpoint directory's parent is its target's, as
        // the kernel resolved "…/../artifacts"): the log once named runs/checkpoints/../artifacts/…
        URL(fileURLWithPath: checkpointDir).resolvingSymlinksInPath().standardized.deletingLastPathComponent()
            .appendingPathComponent("artifacts").appendingPathComponent("\(spec)-\(profile)").path
    }

    /// stays, and the next attempt resumes from it).
    @discardableResult
    public static func run(_ o: WorkerOptions, stop: @escaping () -> Bool = { false }, log: @escaping (String) -> Void = { _ in }) throws -> Int {
        let store = try ResultsStore(path: o.storePath)
        let name = "\(ProcessInfo.processInfo.hostName):\(getpid())"
        // Checkpoints are named by the store as well as the run id: stores sharing a checkpoint
        // directory (the default runs/checkpoints) number their runs alike, and a run must never
        // resume from, or delete, another store's checkpoint.
        let storeTag = Worker.storeTag(o.storePath)
        var finished = 0
        while !stop(), o.maxRuns.map({ finished < $0 }) ?? true,
              let claimed = try store.claim(worker: name, pid: getpid(), spec: o.spec, profile: o.profile, skipModels: o.skipModels) {
            var r = claimed.spec
            try FileManager.default.createDirectory(atPath: o.checkpointDir, withIntermediateDirectories: true)
            let ck = Worker.checkpointPath(checkpointDir: o.checkpointDir, storeTag: storeTag, run: claimed.id)
            log("run \(claimed.id) \(r.cell) seed \(r.seed)\(r.sampleSeed.map { " sample seed \($0)" } ?? "") (attempt \(claimed.attempts))")
            // Heartbeat from its own connection while the run trains. The connection is opened
            // before the timer exists: a timer released unstarted (the open failed: the store's
            // -wal file deleted under the sweep) trapped in libdispatch (SIGILL) instead of
            // reporting the store's error.
            let beatStore = try ResultsStore(path: o.storePath)
            let beat = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "heartbeat"))
            beat.schedule(deadline: .now() + 15, repeating: 15)
            // A claim taken over (this worker was taken for dead: suspended, stopped, cut off) is
            // found here too: the run stops at its next step instead of training on for nothing.
            let lost = Flag()
            beat.setEventHandler { if (try? beatStore.heartbeat(claimed.id, attempt: claimed.attempts)) == false { lost.set() } }
            beat.resume()
            defer { beat.cancel() }
            do {
                var cfg = r.config
                cfg.threads = o.threads ?? cfg.threads
                let dir = try ModelFiles.locate(cfg.model)
                // The run's result is stored under the identity it was planned with: a worker that
                // reads other inputs (another --data-dir, an edited manifest or checkpoint) would
                // store a run of other data under it.
                let here = r.identityJSON == nil ? nil : try store.withIdentities([r], dataDir: o.dataDir, manifestDir: o.manifestDir)[0]
                if let here, let why = Worker.inputMismatch(plannedJSON: r.identityJSON, hereJSON: here.identityJSON) {
                    throw TrainError("run \(claimed.id) (\(r.cell) seed \(r.seed)) was planned with other inputs than this worker reads: \(why); "
                        + "run the worker with the data directory and checkpoints the sweep or shard used, or plan the runs again (`sweep`, `shard`) on these")
                }
                // Parts the plan could not pin ("missing") take what this worker reads, before it trains.
                if let here, let filled = Worker.completedIdentity(planned: (r.identity, r.identityJSON), here: (here.identity, here.identityJSON)) {
                    guard try store.completeIdentity(claimed.id, identity: filled.hash, json: filled.json, attempt: claimed.attempts) else {
                        throw ClaimTakenOver(description: "\(o.storePath): run \(claimed.id) was claimed again before this worker started it; not run here")
                    }
                    (r.identity, r.identityJSON) = (filled.hash, filled.json)
                    log("  identity completed with the data and checkpoint this worker reads (planned without them)")
                }
                try store.recordStart(claimed.id, weightsSha: try store.weightsHash(directory: dir),
                                      gitCommit: o.gitCommit, toolVersion: ToolInfo.versionString,
                                      threads: cfg.threads ?? Parallel.defaultThreadsValue, checkpoint: ck, attempt: claimed.attempts)
                let trainer = Trainer(config: cfg, dataDir: o.dataDir, manifestDir: o.manifestDir, checkpoint: ck) { log("  \($0)") }
                if Worker.keepsArtifact(cfg, keepArtifacts: o.keepArtifacts) {
                    trainer.artifactPath = Worker.artifactPath(checkpointDir: o.checkpointDir, spec: r.spec, profile: r.profile, cell: r.cell,
                                                               seed: r.seed, sampleSeed: r.sampleSeed, identity: r.identity ?? "", storeTag: storeTag)
                }
                trainer.lockPath = o.lockPath
                trainer.allowUnpinned = o.allowUnpinned
                trainer.shouldStop = { stop() || lost.isSet }
                // Checked in the store before each checkpoint and the artifact are written: a worker
                // that woke after its claim was taken over wrote over the new claim's checkpoint and
                // the stored run's artifact.
                trainer.mayWrite = { !lost.isSet && ((try? store.holdsClaim(claimed.id, attempt: claimed.attempts)) ?? true) }
                trainer.sinks.append(StoreProgressSink(store: store, run: claimed.id, attempt: claimed.attempts))
                var result = try trainer.run()
                if let n = o.sweepWorkers { result.extras = (result.extras ?? [:]).merging(["sweep_workers": Double(n)]) { $1 } }
                if let n = r.paperParameterCount(directory: dir) { result.extras = (result.extras ?? [:]).merging(["paper_params": Double(n)]) { $1 } }
                if result.status == .interrupted {
                    if lost.isSet || !((try? store.holdsClaim(claimed.id, attempt: claimed.attempts)) ?? true) {
                        // Not this worker's any more: nothing of it written here; go on to the next run.
                        log("run \(claimed.id) stopped: claimed again by another worker since this one claimed it (taken for dead); nothing of it stored here")
                        finished += 1
                        continue
                    }
                    try store.release(claimed.id, attempt: claimed.attempts)
                    log("run \(claimed.id) interrupted: back to pending")
                    break
                }
                try store.complete(claimed.id, result: result, attempt: claimed.attempts)
                try? FileManager.default.removeItem(atPath: ck)
                removeStaleTemporaries(for: ck)  // a checkpoint write cut short by an earlier kill
                log("run \(claimed.id) \(result.status)")
            } catch let lost as ClaimTakenOver {
                // The run is another worker's now: its checkpoint and result are that worker's.
                log("run \(claimed.id) not stored: \(lost)")
            } catch {
                removeStaleTemporaries(for: ck)  // the checkpoint itself stays for a retry to resume from
                try store.fail(claimed.id, error: "\(error)", attempt: claimed.attempts)
                log("run \(claimed.id) failed: \(error)")
            }
            finished += 1
        }
        return finished
    }
}

/// Stores a run's progress after each epoch's checkpoint (epochs done, epochs the run takes,
/// seconds so far), so `status` counts partial runs.
struct StoreProgressSink: TrainingSink {
    let store: ResultsStore
    let run: Int
    var attempt: Int? = nil
    func receive(_ event: TrainingEvent) {
        if case .epoch(_, let done, let total, let seconds) = event { try? store.recordEpoch(run, done: done, total: total, seconds: seconds, attempt: attempt) }
    }
}

/// SIGINT and SIGTERM counted instead of ending the process; the loops that care poll `count`.
public final class InterruptSignals: @unchecked Sendable {
    private let lock = NSLock()
    private var received: [Int32] = []
    private var sources: [DispatchSourceSignal] = []

    public init(_ signals: [Int32] = [SIGINT, SIGTERM]) {
        for sig in signals {
            signal(sig, SIG_IGN)  // delivered to the dispatch source only
            let src = DispatchSource.makeSignalSource(signal: sig, queue: DispatchQueue(label: "signal-\(sig)"))
            src.setEventHandler { [weak self] in  // the source lives as long as the process
                guard let self else { return }
                let n = max(1, Int(src.data))  // deliveries coalesced since the last event
                self.lock.withLock { self.received += Array(repeating: sig, count: n) }
            }
            src.resume()
            sources.append(src)
        }
    }

    /// Signals received so far.
    public var count: Int { lock.withLock { received.count } }
    /// The first signal received (its number: exit status 128 + it).
    public var first: Int32? { lock.withLock { received.first } }
}

/// A sweep stopped by SIGINT or SIGTERM; its message is the one line the sweep ends with.
public struct SweepInterrupted: Error, CustomStringConvertible {
    public let signal: Int32
    public let released: Int
    public var description: String { "interrupted: \(released) runs back to pending; rerun the same command to resume" }
}

extension Parallel {
    public static var defaultThreadsValue: Int { defaultThreads() }
}

public struct SweepOptions {
    public var storePath: String
    public var workers: Int
    public var threads: Int?   // total, shared by the workers
    public var dataDir: String
    public var checkpointDir: String
    public var extraWorkerArgs: [String] = []
    public var manifestDir = "Baselines/manifests"
    public var keepArtifacts = false
    /// The PromptRepro checkout whose commit the runs record (nil: the working directory's).
    public var projectRoot: String?
    /// Baselines/data.lock: a sweep checks its tasks' data files against it before it plans
    /// anything (nil: not checked here; the runs check it).
    public var lockPath: String?
    /// `--allow-unpinned`: data files that differ from the lock are accepted.
    public var allowUnpinned = false
    /// Environment the worker processes start with (the CLI passes its own).
    public var environment: [String: String] = [:]
    public init(storePath: String, workers: Int, threads: Int?, dataDir: String, checkpointDir: String) {
        self.storePath = storePath
        self.workers = workers
        self.threads = threads
        self.dataDir = dataDir
        self.checkpointDir = checkpointDir
    }
}

extension SweepOptions {
    /// Whether a sweep adopts the finished run `source` (`ResultsStore.finishedTwin`) for `r`: yes,
    /// unless `r` keeps an artifact (`Worker.keepsArtifact`) and the source has none at its
    /// `Worker.artifactPath` in this store's artifacts (full fine-tuning swept without
    /// --keep-artifacts, another checkpoint directory, a shard's run merged from another machine).
    /// A diverged source needs none: a diverged run keeps no artifact.
    public func adoptable(_ r: RunSpec, source: [String: SQLiteDB.Value]) -> Bool {
        ResultsStore.finishedStatus(source) == "diverged" || !Worker.keepsArtifact(r.config, keepArtifacts: keepArtifacts)
            || FileManager.default.fileExists(atPath: Worker.artifactPath(of: source, checkpointDir: checkpointDir, storeTag: Worker.storeTag(storePath)))
    }

    /// Threads of each worker: the total (`threads`, default the core count) split evenly, at least one.
    public var workerThreads: Int { max(1, (threads ?? Parallel.defaultTotalThreads()) / max(1, workers)) }

    /// The numerics setup this sweep's workers record for their runs (`ResultsStore.numericsSetup`'s
    /// form): this binary's kernel description and the per-worker thread count.
    public var workerNumerics: String { "\(ToolInfo.versionString); threads \(workerThreads)" }

    /// The lines a sweep (and its dry run) prints for cells whose finished runs ran under other
    /// numerics than its workers will (`ResultsStore.otherNumerics`); empty when none.
    public static func numericsWarning(_ conflicts: [String: [String]], here: String) -> [String] {
        guard !conflicts.isEmpty else { return [] }
        let cells = conflicts.keys.sorted()
        var lines = ["warning: \(cells.count) cell\(cells.count == 1 ? "" : "s") to be run hold\(cells.count == 1 ? "s" : "") finished runs under other numerics than this sweep's workers (\(here)); the new runs will mix setups in \(cells.count == 1 ? "its" : "their") statistics, which reads then name (for bit-identical seeds, run with the same PROMPTREPRO_GEMM kernel, OpenBLAS and --threads / --workers split):"]
        for cell in cells.prefix(4) { lines.append("  \(cell): \(conflicts[cell]!.joined(separator: " | "))") }
        if cells.count > 4 { lines.append("  … and \(cells.count - 4) more") }
        return lines
    }

    /// The default split of `threads` (the sweep's total; default the core count) into worker
    /// processes: one single-threaded worker per thread, at most one per 4 GiB of the memory this
    /// process may use (`HostResources.memoryBytes`: a cgroup limit counts; a t5-base
    /// PT run peaks near 2 GB). Measured on 2 busy cores (docs/performance.md, "Sweep split"): 2 × 1
    /// ran the smoke table4 sweep in 17.5–20.5 s where 1 × 2 took 24.4–25.0 s, and two t5-small DPT
    /// runs in 32–36 s where one after the other with 2 threads each took 44–45 s.
    public static func defaultWorkers(threads: Int, memoryBytes: UInt64 = HostResources.memoryBytes) -> Int {
        max(1, min(threads, Int(memoryBytes / (4 << 30))))
    }
}

/// How a sweep ended (the store's counts leave out the runs of skipped models).
public struct SweepOutcome {
    public var counts: [String: Int]
    /// Finished runs in the store that the spec no longer plans: kept (a spec that lists them again
    /// reuses them), not counted in `counts`.
    public var outsidePlan = 0
    /// Model specs that were not found, with their number of runs (skipped, not started).
    public var skipped: [(model: String, runs: Int)]
    /// Planned runs a live worker held under other settings when the sweep planned them
    /// (`insertPendingReporting`'s `held`): not trained by this sweep.
    public var heldElsewhere = 0
}

public enum SweepRunner {
    /// The current git commit (with "-dirty" when the tree has changes), or nil outside a checkout.
    public static func gitCommit(in root: String? = nil) -> String? {
        func run(_ args: [String]) -> String? {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            // The checkout's own commit, from wherever the command runs (the working directory's
            // was recorded, none outside a checkout).
            p.arguments = ["git"] + (root.map { ["-C", $0] } ?? []) + args
            let pipe = Pipe()
            p.standardOutput = pipe
            p.standardError = FileHandle.nullDevice
            do { try p.run() } catch { return nil }
            p.waitUntilExit()
            guard p.terminationStatus == 0 else { return nil }
            return String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        guard let head = run(["rev-parse", "HEAD"]) else { return nil }
        let dirty = !(run(["status", "--porcelain", "--untracked-files=no"]) ?? "").isEmpty
        return head + (dirty ? "-dirty" : "")
    }

    /// Models of `runs` that `ModelFiles.locate` cannot find, with its error (which names where it looked).
    public static func missingModels(_ runs: [RunSpec]) throws -> [String: ModelNotFound] {
        var missing: [String: ModelNotFound] = [:]
        for m in Set(runs.map(\.modelSpec)).sorted() {
            do { _ = try ModelFiles.locate(m) } catch let e as ModelNotFound { missing[m] = e }
        }
        return missing
    }

    /// Checks the training and validation files of `runs`' tasks under `dataDir` against
    /// `lockPath` (unless `allowUnpinned`, or without a lock), before a sweep or `shard` plans
    /// anything: every run would fail on a file that differs from its pin, after the finished runs
    /// of the pinned data had been superseded (they come back from history once the pinned file is
    /// back, but the sweep is lost). A pinned file that is missing is refused too where another
    /// file of the split is present (the runs would read it, a subset, instead), and with
    /// `requirePresent` (`sweep`, whose runs read the data here) also where no file of the split is;
    /// `shard` plans for workers that read the data elsewhere, so a split absent here is left to them.
    /// Without the pins too (`--allow-unpinned`, no lock, a split the lock does not list), with
    /// `requirePresent` a split with no file at all is refused: every run of its task would fail,
    /// after the finished runs had been superseded (a review's sweep with --allow-unpinned and no
    /// validation file did so).
    public static func checkPins(_ runs: [RunSpec], dataDir: String, lockPath: String?, allowUnpinned: Bool, store: ResultsStore,
                                 requirePresent: Bool = true) throws {
        let tasks = Set(runs.map(\.task)).sorted()
        if !allowUnpinned, let lockPath, FileManager.default.fileExists(atPath: lockPath) {
            try checkLocked(tasks, dataDir: dataDir, lockPath: lockPath, store: store, requirePresent: requirePresent)
        }
        guard requirePresent else { return }
        for task in tasks {
            let def = try TaskRegistry.definition(task)
            for split in [Split.train, .validation] where DataLoader.file(def, split: split, dataDir: dataDir) == nil {
                let candidates = split == .train ? def.files.train : def.files.validation
                throw StoreError("\(dataDir): no \(task) \(split.rawValue) file (looked for \(candidates.joined(separator: ", "))): every \(task) run would fail; "
                    + "fetch the data (`make fetch-data`) or pass the directory that holds it (--data-dir); nothing planned, no stored run superseded")
            }
        }
    }

    /// `checkPins` against the lock at `lockPath`.
    private static func checkLocked(_ tasks: [String], dataDir: String, lockPath: String, store: ResultsStore, requirePresent: Bool) throws {
        let lock = try DataFiles.Lock.load(path: lockPath)
        var seen: Set<String> = []
        for task in tasks {
            let def = try TaskRegistry.definition(task)
            for split in [Split.train, .validation] {
                let candidates = split == .train ? def.files.train : def.files.validation
                let rel = DataLoader.file(def, split: split, dataDir: dataDir)
                // Files the loader would try before the one it reads (all of them when none exists).
                let skipped = candidates.prefix { $0 != rel }
                if rel != nil || requirePresent, let pinned = skipped.first(where: { lock.entries[$0] != nil }) {
                    // --allow-unpinned reads another file of the split; with none there it fails too.
                    throw StoreError("\((dataDir as NSString).appendingPathComponent(pinned)): \(task) \(split.rawValue) file pinned in \(lockPath) is missing"
                        + (rel.map { " (the runs would read \($0) instead)" } ?? "")
                        + "; restore it (`make fetch-data`)" + (rel != nil ? " or pass --allow-unpinned" : "") + "; nothing planned, no stored run superseded (data directory \(dataDir))")
                }
                guard let rel, seen.insert(rel).inserted else { continue }
                do {
                    try lock.check(relativePath: rel, sha256: try store.fileHash((dataDir as NSString).appendingPathComponent(rel)),
                                   allowUnpinned: false, lockPath: lockPath)
                } catch {
                    throw StoreError("\(error); nothing planned, no stored run superseded (data directory \(dataDir))")
                }
            }
        }
    }

    /// Refuses a plan whose runs cannot fit (`TrainingSession.checkSequenceFits`: prompt rows +
    /// max_source_length beyond a GPT-2 checkpoint's n_positions, or a training batch's attention
    /// scores beyond this machine's memory) before anything is planned: each worker failed such
    /// runs one by one. Models not found here are left to the skip lines.
    /// `hereMemory` false (`shard`, whose workers run on other machines): n_positions only.
    public static func checkFits(_ runs: [RunSpec], missing: [String: ModelNotFound], hereMemory: Bool = true) throws {
        var arch: [String: (ModelConfig, String)] = [:]
        var problems: [String] = []
        for r in runs where missing[r.modelSpec] == nil {
            if arch[r.modelSpec] == nil, let dir = try? ModelFiles.locate(r.modelSpec) {
                let path = (dir as NSString).appendingPathComponent("config.json")
                if let a = try? ModelConfig.load(path: path) { arch[r.modelSpec] = (a, path) }
            }
            guard let (a, path) = arch[r.modelSpec] else { continue }
            do {
                try TrainingSession.checkSequenceFits(r.config, architecture: a, configPath: path,
                                                      memoryBytes: hereMemory ? HostResources.memoryBytes : nil)
            } catch {
                let line = "\(r.cell): \(error)"
                if !problems.contains(line) { problems.append(line) }
            }
        }
        if !problems.isEmpty {
            throw StoreError("\(problems.count) cell\(problems.count == 1 ? "" : "s") cannot fit, nothing planned:\n" + problems.prefix(8).map { "  " + $0 }.joined(separator: "\n")
                + (problems.count > 8 ? "\n  … (\(problems.count - 8) more)" : ""))
        }
    }

    /// The runs of `runs` (with identities) that `store` has not finished under that identity
    /// (done, diverged or evaluated): those a sweep will train.
    public static func unfinished(_ runs: [RunSpec], in store: ResultsStore) throws -> [RunSpec] {
        try runs.filter { r in
            guard let row = try store.currentRun(spec: r.spec, profile: r.profile, cell: r.cell, seed: r.seed, sampleSeed: r.replicate.sampleSeed)
            else { return true }
            guard ["done", "diverged", "evaluated"].contains(row["status"]?.text ?? "") else { return true }
            if row["identity"]?.text == r.identity { return false }
            // Planned where its data or checkpoint is not (`shard` on a login node): parts that say
            // "missing" take what the run's worker stored, as the worker itself completes them.
            let stored = (hash: row["identity"]?.text, json: row["identity_json"]?.text)
            return Worker.completedIdentity(planned: (r.identity, r.identityJSON), here: stored)?.hash != stored.hash
        }
    }

    /// One line for a model column a sweep skips.
    public static func skipLine(_ e: ModelNotFound, model: String, runs: Int) -> String {
        let name = model == e.spec ? model : "\(model) (\(e.spec))"
        return "skipping model \(name): \(runs) runs not started; not found in: \(e.looked.joined(separator: "; ")) — copy the checkpoint there (or set HF_HUB_CACHE / PROMPTREPRO_MODEL_DIR) and rerun"
    }

    /// Inserts the spec's runs (those of missing models are skipped with one line each), resets
    /// its interrupted ones, runs `workers` worker processes and shows progress until nothing is
    /// pending or running. SIGINT/SIGTERM stops the workers (their runs go back to pending) and
    /// throws `SweepInterrupted`; a second one kills them at once.
    /// A spec with a hyper-parameter search runs in phases: the search points first, then (once
    /// each search has finished) the chosen points on every seed; a phase that adds no run ends it.
    public static func run(spec: ExperimentSpec, profile: String, options o: SweepOptions, executable: String,
                           log: @escaping (String) -> Void) throws -> SweepOutcome {
        var (outcome, planned) = try runPhase(spec: spec, profile: profile, options: o, executable: executable, log: log)
        while spec.hasSearch {
            let store = try ResultsStore(path: o.storePath)
            let next = try spec.expand(profile: profile, choose: store.searchChoice(spec: spec, profile: profile)).count
            guard next > planned else { break }
            let sums = try store.searchSummaries(spec, profile: profile)
            // Each search's k where the spec has several (the lines of k 8 and k 16 read alike).
            let severalK = Set(sums.map(\.k)).count > 1
            for sum in sums where sum.chosen != nil {
                let k = severalK ? " k=\(sum.k.map(String.init) ?? "full")" : ""
                log("search \(sum.variant) \(sum.task)/\(sum.model)\(k): chose \(sum.chosen!) (\(sum.runs) runs, \(String(format: "%.3f", sum.cpuHours)) CPU-hours)")
            }
            (outcome, planned) = try runPhase(spec: spec, profile: profile, options: o, executable: executable, log: log)
        }
        return outcome
    }

    static func runPhase(spec: ExperimentSpec, profile: String, options o: SweepOptions, executable: String,
                         log: @escaping (String) -> Void) throws -> (SweepOutcome, Int) {
        // A store not there yet is created only once the plan is accepted: a sweep refused by the
        // data pins left an empty store file at --db. Till then an in-memory one caches file hashes.
        let fresh = !FileManager.default.fileExists(atPath: o.storePath)
        let planStore = try ResultsStore(path: fresh ? ":memory:" : o.storePath)
        let expanded = try spec.expand(profile: profile, choose: planStore.searchChoice(spec: spec, profile: profile))
        let missing = try missingModels(expanded)
        var skipped: [(model: String, runs: Int)] = []
        for (m, e) in missing.sorted(by: { $0.key < $1.key }) {
            let n = expanded.filter { $0.modelSpec == m }.count
            skipped.append((m, n))
            log(skipLine(e, model: expanded.first { $0.modelSpec == m }?.model ?? m, runs: n))
        }
        let skip = missing.keys.sorted()
        try checkPins(expanded, dataDir: o.dataDir, lockPath: o.lockPath, allowUnpinned: o.allowUnpinned, store: planStore)
        if fresh { try checkFits(expanded, missing: missing) }
        let store = fresh ? try ResultsStore(path: o.storePath) : planStore
        let runs = try store.withIdentities(expanded.filter { missing[$0.modelSpec] == nil }, dataDir: o.dataDir, manifestDir: o.manifestDir)
        // A resumed sweep checks only what it will run: runs finished here under their planned
        // identity are not trained again (a smaller machine refused the whole sweep for them).
        if !fresh { try checkFits(try unfinished(runs, in: store), missing: missing) }
        // Runs of dead workers go back to pending first, so that one of other settings (an edit
        // interrupted by a kill) goes to history and a finished run of the planned settings can come
        // back, instead of the interrupted run of the edit being finished under this plan.
        let reset = try store.resetInterrupted(spec: spec.name, profile: profile)
        // A finished run of the same identity under another spec, profile or variant is adopted
        // (`insertPendingReporting`), with its artifact linked under this run's name; a source
        // whose artifact the run would keep but that has none here (full fine-tuning swept without
        // --keep-artifacts, another checkpoint directory) is not adopted: the run trains. A
        // diverged source has no artifact to link.
        let tag = Worker.storeTag(o.storePath)
        let (added, superseded, restored, adoptedRuns, refused, held) = try store.insertPendingReporting(runs) { o.adoptable($0, source: $1) }
        if !held.isEmpty {
            log("note: \(held.count) run\(held.count == 1 ? " is" : "s are") held by a live worker under other settings (another sweep of this spec, started before an edit?): "
                + held.prefix(3).map { "\($0.cell) seed \($0.seed)" }.joined(separator: "; ") + (held.count > 3 ? "; …" : "")
                + "; this sweep does not train \(held.count == 1 ? "it" : "them"): run it again after that worker finishes")
        }
        if let r0 = refused.first {
            log("note: \(refused.count) run\(refused.count == 1 ? "" : "s") of identical settings finished elsewhere in this store but \(refused.count == 1 ? "is" : "are") trained here: "
                + "the artifacts of those runs are not under \((Worker.artifactDirectory(checkpointDir: o.checkpointDir, spec: r0.spec, profile: r0.profile) as NSString).deletingLastPathComponent) under this store's name, "
                + "e.g. " + refused.prefix(3).map { "\($0.cell) seed \($0.seed)" }.joined(separator: "; "))
        }
        let adopted = adoptedRuns.count
        for (r, source) in adoptedRuns where Worker.keepsArtifact(r.config, keepArtifacts: o.keepArtifacts) {
            guard ResultsStore.finishedStatus(source) != "diverged" else { continue }
            let from = Worker.artifactPath(of: source, checkpointDir: o.checkpointDir, storeTag: tag)
            let to = Worker.artifactPath(checkpointDir: o.checkpointDir, spec: r.spec, profile: r.profile, cell: r.cell, seed: r.seed,
                                         sampleSeed: r.sampleSeed, identity: r.identity ?? "", storeTag: tag)
            guard !FileManager.default.fileExists(atPath: to) else { continue }
            do {
                try FileManager.default.createDirectory(atPath: (to as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                do { try FileManager.default.linkItem(atPath: from, toPath: to) } catch { try FileManager.default.copyItem(atPath: from, toPath: to) }
            } catch {
                log("warning: \(r.cell) seed \(r.seed): adopted, but its artifact could not be linked from \(from) to \(to): \(error.localizedDescription)")
            }
        }
        // Pending or failed rows of cells, k or seeds this phase does not plan go to history, so that
        // no worker trains them; finished ones stay, outside the counts (the runs of skipped models
        // count as planned; so do a searched variant's chosen runs once its search has chosen, and
        // until then its rows, kept, are outside this phase's counts).
        let plan = PlannedRuns(runs: expanded)
        let unplanned = try store.supersedeUnplanned(spec: spec.name, profile: profile, planned: plan)
        let outside = Set(try store.staleRuns(spec: spec.name, profile: profile, planned: plan).map(\.id))
        let retried = try store.retryFailed(spec: spec.name, profile: profile, skipModels: skip)
        // Checkpoints nothing will resume from (runs sent to history above or earlier, finished
        // runs whose worker was killed before deleting theirs) would otherwise stay on disk for good.
        let dead = try Worker.removeDeadCheckpoints(store: store, checkpointDir: o.checkpointDir, storeTag: tag)
        if dead.files > 0 {
            log("removed \(dead.files) checkpoint\(dead.files == 1 ? "" : "s") of runs nothing resumes (runs sent to history or finished; "
                + String(format: "%.1f MB", Double(dead.bytes) / 1e6) + ")")
        }
        log("sweep \(spec.name) [\(profile)]: \(runs.count) runs (\(added) new"
            + (restored > 0 ? ", \(restored) finished run\(restored == 1 ? "" : "s") of these settings taken back from history instead of rerun" : "")
            + (adopted > 0 ? ", \(adopted) finished run\(adopted == 1 ? "" : "s") of identical settings, data, weights and task adopted from other specs, profiles or variant names instead of rerun (`adopted_from` names each)" : "")
            + (superseded > 0 ? "; \(superseded) earlier run\(superseded == 1 ? "" : "s") whose spec, data, weights or task changed kept as superseded" : "")
            + ", \(reset) interrupted → pending, \(retried) failed → retry)"
            + (unplanned > 0 ? "; \(unplanned) pending or failed run\(unplanned == 1 ? "" : "s") the spec no longer plans kept as superseded" : ""))
        let commit = gitCommit(in: o.projectRoot)
        let console = SweepConsole(tty: isatty(STDERR_FILENO) == 1, log: log)
        let signals = InterruptSignals()
        var procs: [Process] = []
        let readers = DispatchGroup()
        let totalThreads = o.threads ?? Parallel.defaultTotalThreads(), workers = max(1, o.workers)
        let perWorker = o.workerThreads
        // The total is split evenly; say where the split is not the total asked for.
        let uneven = workers * perWorker == totalThreads ? ""
            : workers > totalThreads ? "; --threads \(totalThreads) < \(workers) workers: each worker still runs one thread, \(workers) in all"
            : "; \(totalThreads - workers * perWorker) of the \(totalThreads) threads unused (an even split)"
        log("sweep \(spec.name) [\(profile)]: split \(workers) worker\(workers == 1 ? "" : "s") × \(perWorker) thread\(perWorker == 1 ? "" : "s")\(uneven) (thread count fixes GEMM summation order: part of what makes a run bit-identical)")
        let toRun = Set(try unfinished(runs, in: store).map(\.cell))
        for line in SweepOptions.numericsWarning(try store.otherNumerics(spec: spec.name, profile: profile, planned: plan, cells: toRun, here: o.workerNumerics),
                                                 here: o.workerNumerics) { log(line) }
        for _ in 0..<max(1, o.workers) {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: executable)
            p.arguments = ["worker", "--db", o.storePath, "--spec", spec.name, "--profile", profile, "--data-dir", o.dataDir,
                           "--checkpoints", o.checkpointDir, "--threads", "\(perWorker)", "--sweep-workers", "\(max(1, o.workers))", "--sweep-pid", "\(getpid())", "--quiet"]
                + skip.flatMap { ["--skip-model", $0] } + (o.keepArtifacts ? ["--keep-artifacts"] : []) + o.extraWorkerArgs
            var env = o.environment
            if let commit { env["PROMPTREPRO_GIT_COMMIT"] = commit }
            p.environment = env
            // Worker stderr goes through the console: repeated messages are printed once.
            let pipe = Pipe()
            p.standardError = pipe
            try p.run()
            try? pipe.fileHandleForWriting.close()
            procs.append(p)
            let reader = pipe.fileHandleForReading
            DispatchQueue.global().async(group: readers) {
                var pending = Data()
                while true {
                    let chunk = reader.availableData
                    if chunk.isEmpty { break }
                    pending.append(chunk)
                    while let nl = pending.firstIndex(of: 0x0A) {
                        console.workerLine(String(decoding: pending[pending.startIndex..<nl], as: UTF8.self))
                        pending = Data(pending[pending.index(after: nl)...])
                    }
                }
                if !pending.isEmpty { console.workerLine(String(decoding: pending, as: UTF8.self)) }
            }
        }
        let total = runs.count
        let t0 = Date()
        let startedAt = ResultsStore.now()  // runs claimed from here on belong to this sweep
        var lastLine = ""
        var stopping = false, killing = false
        var claimed = Set<Int>()      // runs seen running during this sweep
        var reported = Set<Int32>()   // workers whose exit was looked at
        var orphans = Set<Int>()      // runs left 'running' by a worker that died (reset at the end)
        var timings: [TimingKey: Double] = [:]
        var lastTimings = Date.distantPast
        while true {
            let received = signals.count
            if received >= 1 && !stopping {
                stopping = true
                for p in procs where p.isRunning { kill(p.processIdentifier, SIGTERM) }
                console.line("interrupt: stopping the workers; their runs go back to pending (interrupt again to kill them at once)")
            }
            if received >= 2 && !killing {
                killing = true
                for p in procs where p.isRunning { kill(p.processIdentifier, SIGKILL) }
            }
            let running = try store.db.query("SELECT id, worker_pid, cell, seed FROM runs WHERE spec=? AND profile=? AND status='running'",
                                              [.text(spec.name), .text(profile)])
            for r in running { if let id = r["id"]?.int { claimed.insert(id) } }
            for p in procs where !p.isRunning && !reported.contains(p.processIdentifier) {
                reported.insert(p.processIdentifier)
                let bySignal = p.terminationReason == .uncaughtSignal
                guard !stopping, bySignal || p.terminationStatus != 0 else { continue }
                let row = running.first { $0["worker_pid"]?.int == Int(p.processIdentifier) }
                if let id = row?["id"]?.int { orphans.insert(id) }
                let run = row.map { " during run \($0["id"]?.int ?? 0) (\($0["cell"]?.text ?? "") seed \($0["seed"]?.int ?? 0))" } ?? ""
                console.line("worker \(p.processIdentifier) died (\(bySignal ? "signal \(p.terminationStatus)" : "exit status \(p.terminationStatus)"))\(run); rerun the same command to resume its run from its last checkpoint")
            }
            let alive = procs.contains { $0.isRunning }
            let c = try store.counts(spec: spec.name, profile: profile, skipModels: skip, excluding: outside)
            let finished = (c["done"] ?? 0) + (c["diverged"] ?? 0) + (c["failed"] ?? 0)
            let nRunning = (c["running"] ?? 0) - orphans.count
            // Nothing to show until a worker has claimed a run (or all have exited).
            if !stopping && (nRunning > 0 || finished > 0 || !alive) {
                if Date().timeIntervalSince(lastTimings) > 5 || !alive {
                    timings = try store.epochTimings()
                    lastTimings = Date()
                }
                let eta = SweepETA.estimate(try store.remainingRuns(spec: spec.name, profile: profile, skipModels: skip, excluding: orphans),
                                            timings: timings, workers: procs.filter { $0.isRunning }.count)
                let status = "\(finished)/\(total) runs (running \(nRunning), failed \(c["failed"] ?? 0), diverged \(c["diverged"] ?? 0)"
                    + (orphans.isEmpty ? ")" : ", \(orphans.count) left by dead workers)")
                if console.tty {
                    let width = 30, filled = total == 0 ? width : min(width, width * finished / total)
                    let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
                    console.bar("[\(bar)] \(status) ETA \(eta.text)")
                } else if status != lastLine {
                    console.line("progress: \(status), elapsed \(formatDuration(Date().timeIntervalSince(t0))), ETA \(eta.text)")
                    lastLine = status
                }
            }
            if !alive { break }
            Thread.sleep(forTimeInterval: stopping ? 0.1 : 0.5)
        }
        readers.wait()
        console.endBar()
        for r in console.repeats() { console.line(r) }
        // Runs whose worker died (or was killed by a second interrupt) go back to pending now.
        let orphaned = try store.resetInterrupted(spec: spec.name, profile: profile)
        if let sig = signals.first {
            // Every run this sweep's workers claimed and gave back, including ones claimed and
            // released between two looks of the progress loop.
            let back = try store.db.query("SELECT COUNT(*) AS n FROM runs WHERE spec=? AND profile=? AND status='pending' AND started_at >= ?",
                                          [.text(spec.name), .text(profile), .text(startedAt)]).first?["n"]?.int ?? 0
            throw SweepInterrupted(signal: sig, released: back)
        }
        if orphaned > 0 {
            console.line("\(orphaned) run\(orphaned == 1 ? " was" : "s were") left by workers that died and \(orphaned == 1 ? "is" : "are") back to pending; rerun the same command to resume \(orphaned == 1 ? "it" : "them")")
        }
        return (SweepOutcome(counts: try store.counts(spec: spec.name, profile: profile, skipModels: skip, excluding: outside), outsidePlan: outside.count,
                             skipped: skipped, heldElsewhere: held.count), expanded.count)
    }
}


/// A flag set from one thread (the heartbeat timer) and read from another (the training loop).
final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.lock(); value = true; lock.unlock() }
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
}
