// Sweeps: expand a spec, insert its runs as pending, and let worker processes claim them one at a
// time through the store. Rerunning resumes: done runs are skipped, runs whose worker died go back
// to pending and restart from their last checkpoint, failed runs are retried.
import Dispatch
import Foundation
import Models
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
    public var allowUnpinned = false
    public var maxRuns: Int?

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
    /// Claims and runs pending runs until none is left; returns how many it finished.
    @discardableResult
    public static func run(_ o: WorkerOptions, log: @escaping (String) -> Void = { _ in }) throws -> Int {
        let store = try ResultsStore(path: o.storePath)
        let name = "\(ProcessInfo.processInfo.hostName):\(getpid())"
        var finished = 0
        while o.maxRuns.map({ finished < $0 }) ?? true, let claimed = try store.claim(worker: name, pid: getpid(), spec: o.spec, profile: o.profile) {
            let r = claimed.spec
            try FileManager.default.createDirectory(atPath: o.checkpointDir, withIntermediateDirectories: true)
            let ck = "\(o.checkpointDir)/run-\(claimed.id).safetensors"
            log("run \(claimed.id) \(r.cell) seed \(r.seed) (attempt \(claimed.attempts))")
            // Heartbeat from its own connection while the run trains.
            let beat = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "heartbeat"))
            let beatStore = try ResultsStore(path: o.storePath)
            beat.schedule(deadline: .now() + 15, repeating: 15)
            beat.setEventHandler { try? beatStore.heartbeat(claimed.id) }
            beat.resume()
            defer { beat.cancel() }
            do {
                var cfg = r.config
                cfg.threads = o.threads ?? cfg.threads
                let dir = try ModelFiles.locate(cfg.model)
                try store.recordStart(claimed.id, weightsSha: try store.weightsHash(directory: dir),
                                      gitCommit: ProcessInfo.processInfo.environment["PROMPTREPRO_GIT_COMMIT"],
                                      threads: cfg.threads ?? Parallel.defaultThreadsValue, checkpoint: ck)
                let trainer = Trainer(config: cfg, dataDir: o.dataDir, manifestDir: o.manifestDir, checkpoint: ck) { log("  \($0)") }
                let safeCell = r.cell.replacingOccurrences(of: "|", with: "_")
                trainer.artifactPath = "\(o.checkpointDir)/../artifacts/\(r.spec)-\(r.profile)/\(safeCell)-s\(r.seed).safetensors"
                trainer.lockPath = o.lockPath
                trainer.allowUnpinned = o.allowUnpinned
                let result = try trainer.run()
                try store.complete(claimed.id, result: result)
                try? FileManager.default.removeItem(atPath: ck)
                log("run \(claimed.id) \(result.status)")
            } catch {
                try store.fail(claimed.id, error: "\(error)")
                log("run \(claimed.id) failed: \(error)")
            }
            finished += 1
        }
        return finished
    }
}

extension Parallel {
    public static var defaultThreadsValue: Int { defaultThreads() }
}

public struct SweepOptions {
    public var storePath: String
    public var workers: Int
    public var threads: Int?
    public var dataDir: String
    public var checkpointDir: String
    public var extraWorkerArgs: [String] = []
    public var manifestDir = "Baselines/manifests"
    public init(storePath: String, workers: Int, threads: Int?, dataDir: String, checkpointDir: String) {
        self.storePath = storePath
        self.workers = workers
        self.threads = threads
        self.dataDir = dataDir
        self.checkpointDir = checkpointDir
    }
}

public enum SweepRunner {
    /// The current git commit (with "-dirty" when the tree has changes), or nil outside a checkout.
    public static func gitCommit() -> String? {
        func run(_ args: [String]) -> String? {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["git"] + args
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

    /// Inserts the spec's runs, resets interrupted ones, runs `workers` worker processes and shows
    /// progress until nothing is pending or running. Returns the final status counts.
    public static func run(spec: ExperimentSpec, profile: String, options o: SweepOptions, executable: String,
                           log: @escaping (String) -> Void) throws -> [String: Int] {
        let store = try ResultsStore(path: o.storePath)
        let runs = try store.withIdentities(try spec.expand(profile: profile), dataDir: o.dataDir, manifestDir: o.manifestDir)
        let (added, superseded) = try store.insertPendingReporting(runs)
        let reset = try store.resetInterrupted()
        let retried = try store.retryFailed(spec: spec.name, profile: profile)
        log("sweep \(spec.name) [\(profile)]: \(runs.count) runs (\(added) new\(superseded > 0 ? " of which \(superseded) replace runs whose spec, data, weights or task changed (kept as superseded)" : ""), \(reset) interrupted → pending, \(retried) failed → retry)")
        let commit = gitCommit()
        var procs: [Process] = []
        let perWorker = max(1, (o.threads ?? Parallel.defaultThreadsValue) / max(1, o.workers))
        for _ in 0..<max(1, o.workers) {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: executable)
            p.arguments = ["worker", "--db", o.storePath, "--spec", spec.name, "--profile", profile, "--data-dir", o.dataDir,
                           "--checkpoints", o.checkpointDir, "--threads", "\(perWorker)", "--quiet"] + o.extraWorkerArgs
            var env = ProcessInfo.processInfo.environment
            if let commit { env["PROMPTREPRO_GIT_COMMIT"] = commit }
            p.environment = env
            try p.run()
            procs.append(p)
        }
        let total = runs.count
        let tty = isatty(STDERR_FILENO) == 1
        let t0 = Date()
        var lastDone = -1
        while true {
            let c = try store.counts(spec: spec.name, profile: profile)
            let done = (c["done"] ?? 0) + (c["diverged"] ?? 0) + (c["failed"] ?? 0)
            let alive = procs.contains { $0.isRunning }
            if done != lastDone || !alive {
                let elapsed = Date().timeIntervalSince(t0)
                let fresh = max(1, done - (total - (c["pending"] ?? 0) - (c["running"] ?? 0) - done))
                let eta = done > 0 ? elapsed / Double(fresh) * Double(total - done) : .nan
                let status = "\(done)/\(total) runs (failed \(c["failed"] ?? 0), diverged \(c["diverged"] ?? 0), running \(c["running"] ?? 0))"
                if tty {
                    let width = 30, filled = total == 0 ? width : width * done / total
                    let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
                    FileHandle.standardError.write(Data("\r[\(bar)] \(status) ETA \(eta.isFinite ? formatDuration(eta) : "--")   ".utf8))
                } else if done != lastDone {
                    log("progress: \(status), elapsed \(formatDuration(elapsed))\(eta.isFinite ? ", ETA \(formatDuration(eta))" : "")")
                }
                lastDone = done
            }
            if !alive { break }
            Thread.sleep(forTimeInterval: 0.5)
        }
        if tty { FileHandle.standardError.write(Data("\n".utf8)) }
        for p in procs where p.terminationStatus != 0 { log("warning: a worker exited with status \(p.terminationStatus)") }
        return try store.counts(spec: spec.name, profile: profile)
    }
}

func formatDuration(_ s: Double) -> String {
    let t = Int(s.rounded())
    return t >= 3600 ? "\(t / 3600)h\(t % 3600 / 60)m" : (t >= 60 ? "\(t / 60)m\(t % 60)s" : "\(t)s")
}
