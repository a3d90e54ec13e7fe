// Sweep progress: seconds per epoch measured per (method, task, model), an ETA that counts the
// epochs running runs have already trained, and a console that prints repeated worker messages once.
import Foundation
import Store
import Support
import Training

/// What an epoch's duration depends on most: the method, the task and the model that is loaded
/// (`model_spec`: embedded:t5-tiny and t5-small are different work under one model column).
public struct TimingKey: Hashable, Sendable, CustomStringConvertible {
    public var method: String
    public var task: String
    public var model: String
    public init(method: String, task: String, model: String) {
        self.method = method
        self.task = task
        self.model = model
    }
    public var description: String { "\(method)/\(task)/\(model)" }
}

/// A run that is not finished: its timing key and how many of its epochs are trained.
public struct RemainingRun: Equatable, Sendable {
    public var key: TimingKey
    public var epochsTotal: Int
    public var epochsDone: Int
    public init(key: TimingKey, epochsTotal: Int, epochsDone: Int = 0) {
        self.key = key
        self.epochsTotal = epochsTotal
        self.epochsDone = epochsDone
    }
}

public struct SweepEstimate: Equatable, Sendable {
    /// Wall seconds left for the runs whose time is known.
    public var seconds: Double
    /// Remaining runs whose model never ran (no time known for them).
    public var unmeasured: Int
    public var remaining: Int

    /// "12m30s", "> 12m30s (3 runs never timed)", or "unknown".
    public var text: String {
        if remaining == 0 { return "0s" }
        if unmeasured == remaining { return "unknown" }
        return unmeasured > 0 ? "> \(formatDuration(seconds)) (\(unmeasured) runs never timed)" : formatDuration(seconds)
    }
}

public enum SweepETA {
    /// Seconds per epoch of `key`: its own measurement, else the mean over measured keys of the
    /// same model (another method or task on that model); nil when the model never ran.
    public static func secondsPerEpoch(_ key: TimingKey, timings: [TimingKey: Double]) -> Double? {
        if let t = timings[key] { return t }
        let same = timings.filter { $0.key.model == key.model }.sorted { $0.key.description < $1.key.description }.map(\.value)
        return same.isEmpty ? nil : same.reduce(0, +) / Double(same.count)
    }

    /// Remaining wall time: the epochs left (total − done) times their seconds per epoch, summed and
    /// spread over `workers`, but never less than the longest single run left (a run is not split).
    public static func estimate(_ remaining: [RemainingRun], timings: [TimingKey: Double], workers: Int) -> SweepEstimate {
        var total = 0.0, longest = 0.0, unmeasured = 0
        for r in remaining {
            guard let s = secondsPerEpoch(r.key, timings: timings) else { unmeasured += 1; continue }
            let left = Double(max(0, r.epochsTotal - r.epochsDone)) * s
            total += left
            longest = max(longest, left)
        }
        let parallel = Double(max(1, min(workers, remaining.count)))
        return SweepEstimate(seconds: max(total / parallel, longest), unmeasured: unmeasured, remaining: remaining.count)
    }
}

extension ResultsStore {
    /// Mean seconds per epoch per (method, task, model_spec), from every stored epoch of finished
    /// runs (any spec or profile, superseded ones included: they timed the same work) and the
    /// epochs that running runs have reported.
    public func epochTimings() throws -> [TimingKey: Double] {
        var acc: [TimingKey: (seconds: Double, epochs: Int)] = [:]
        func add(_ rows: [[String: SQLiteDB.Value]]) {
            for r in rows {
                guard let m = r["method"]?.text, let t = r["task"]?.text, let ms = r["model_spec"]?.text,
                      let s = r["s"]?.double, let n = r["n"]?.int, n > 0 else { continue }
                let k = TimingKey(method: m, task: t, model: ms)
                acc[k] = ((acc[k]?.seconds ?? 0) + s, (acc[k]?.epochs ?? 0) + n)
            }
        }
        add(try db.query("""
            SELECT method, task, model_spec, SUM(epochs.seconds) AS s, COUNT(*) AS n FROM epochs JOIN runs ON runs.id = run_id
            WHERE epochs.seconds > 0 GROUP BY method, task, model_spec
            """))
        if schemaVersion >= 3 {
            add(try db.query("""
                SELECT method, task, model_spec, SUM(epoch_seconds) AS s, SUM(epochs_done) AS n FROM runs
                WHERE status='running' AND epochs_done > 0 GROUP BY method, task, model_spec
                """))
        }
        return acc.mapValues { $0.seconds / Double($0.epochs) }
    }

    /// Pending and running runs of `spec`/`profile` (models in `skipModels` and run ids in
    /// `excluding` left out) with their epochs: total from the worker's report or the config, done
    /// from the worker's report.
    public func remainingRuns(spec: String, profile: String, skipModels: [String] = [], excluding: Set<Int> = []) throws -> [RemainingRun] {
        let progress = schemaVersion >= 3 ? ", epochs_done, epochs_total" : ""
        var out: [RemainingRun] = []
        for r in try db.query("SELECT id, method, task, model_spec, config_json\(progress) FROM runs WHERE spec=? AND profile=? AND status IN ('pending','running')",
                              [.text(spec), .text(profile)]) {
            let ms = r["model_spec"]?.text ?? ""
            if skipModels.contains(ms) || excluding.contains(r["id"]?.int ?? -1) { continue }
            let total = r["epochs_total"]?.int
                ?? (try? JSONDecoder().decode(TrainConfig.self, from: Data((r["config_json"]?.text ?? "").utf8)))?.epochs ?? 0
            out.append(RemainingRun(key: TimingKey(method: r["method"]?.text ?? "", task: r["task"]?.text ?? "", model: ms),
                                    epochsTotal: total, epochsDone: r["epochs_done"]?.int ?? 0))
        }
        return out
    }
}

/// Serialises a sweep's stderr: its own lines, worker lines (each distinct message printed once,
/// repeats counted for the summary) and, on a terminal, a progress bar redrawn in place.
final class SweepConsole: @unchecked Sendable {
    private let lock = NSLock()
    let tty: Bool
    private var barShown = false
    private var seen: [String: Int] = [:]
    private var order: [String] = []
    private let log: (String) -> Void

    init(tty: Bool, log: @escaping (String) -> Void) {
        self.tty = tty
        self.log = log
    }

    private func clearBar() {
        if barShown { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)); barShown = false }
    }

    func line(_ s: String) {
        lock.withLock { clearBar(); log(s) }
    }

    func bar(_ s: String) {
        lock.withLock {
            FileHandle.standardError.write(Data("\r\u{1B}[K\(s)".utf8))
            barShown = true
        }
    }

    /// Repeats are recognised by the message without its run number ("run 12 failed: X" and
    /// "run 13 failed: X" are one message).
    static func messageKey(_ s: String) -> String {
        let t = s.trimmingCharacters(in: .whitespaces)
        guard t.hasPrefix("run ") else { return t }
        let rest = t.dropFirst(4)
        let digits = rest.prefix { $0.isNumber }
        return digits.isEmpty ? t : "run #" + rest.dropFirst(digits.count)
    }

    func workerLine(_ s: String) {
        let key = SweepConsole.messageKey(s)
        lock.withLock {
            seen[key, default: 0] += 1
            guard seen[key] == 1 else { return }
            order.append(key)
            clearBar()
            log(s)
        }
    }

    /// One line per message that workers printed more than once.
    func repeats() -> [String] {
        lock.withLock { order.compactMap { k in seen[k]! > 1 ? "(\(seen[k]!) times in all) \(k)" : nil } }
    }

    func endBar() {
        lock.withLock { if barShown { FileHandle.standardError.write(Data("\n".utf8)); barShown = false } }
    }
}
