// Steal time: the share of a virtual machine's CPU time that the hypervisor gave to other guests.
// A benchmark round that ran while the host was contended is slow for a reason outside the code;
// `bench` and `bench-e2e` record it per round so a reader can tell such rounds from real changes.
import Foundation

/// The machine-wide CPU time counters of Linux's /proc/stat aggregate `cpu` line (proc(5)), in
/// clock ticks (USER_HZ, normally 1/100 s), summed over all CPUs.
public struct MachineCPUTicks: Equatable, Sendable {
    /// Ticks the hypervisor ran other guests while this one's vCPUs wanted to run (the 8th field).
    public var steal: UInt64
    /// user + nice + system + idle + iowait + irq + softirq + steal. `guest` and `guest_nice`
    /// (fields 9 and 10) are left out: Linux already counts them in user and nice.
    public var total: UInt64

    public init(steal: UInt64, total: UInt64) {
        self.steal = steal
        self.total = total
    }

    /// The counters of /proc/stat's first line, `cpu  user nice system idle iowait irq softirq steal …`.
    /// Kernels older than 2.6.11 print no steal field: steal is then 0. Nil when the text has no
    /// aggregate `cpu` line or fewer than four numbers on it.
    public static func parse(_ procStat: String) -> MachineCPUTicks? {
        guard let line = procStat.split(separator: "\n").first(where: { $0.hasPrefix("cpu ") }) else { return nil }
        let fields = line.split(separator: " ").dropFirst().map { UInt64($0) }
        guard fields.count >= 4, !fields.contains(where: { $0 == nil }) else { return nil }
        let v = fields.map { $0! }
        let counted = v.prefix(8)   // user … steal
        return MachineCPUTicks(steal: v.count >= 8 ? v[7] : 0, total: counted.reduce(0, +))
    }

    /// The counters now; nil where /proc/stat cannot be read (not Linux) or parsed.
    public static func read(path: String = "/proc/stat") -> MachineCPUTicks? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        return parse(text)
    }

    /// Δsteal / Δtotal since `earlier`: the fraction of the machine's CPU time in between that was
    /// stolen (0 on bare metal, 0.25 when the hypervisor ran other guests a quarter of the time).
    /// Nil when no tick passed or a counter went backwards.
    public func stealShare(since earlier: MachineCPUTicks) -> Double? {
        guard total > earlier.total, steal >= earlier.steal else { return nil }
        return Double(steal - earlier.steal) / Double(total - earlier.total)
    }
}

/// Runs `body` and returns its result with the machine's steal share while it ran (nil where
/// /proc/stat is unavailable or the run was shorter than a tick).
public func measuringSteal<T>(_ body: () throws -> T) rethrows -> (T, Double?) {
    let before = MachineCPUTicks.read()
    let result = try body()
    guard let before, let after = MachineCPUTicks.read() else { return (result, nil) }
    return (result, after.stealShare(since: before))
}

/// The `steal` block of a benchmark report from the steal shares of its timed child processes:
/// `median`, `max` (both to 3 decimals), `children`, `children_at_least_5_percent`, a `definition`,
/// and a `note` when any child ran with ≥ 5 % of the machine's CPU time stolen — its times, and the
/// ratios they enter, then measure the host's contention as well as the code. Without shares (no
/// /proc/stat) only a `definition` saying so.
public func stealSummary(_ shares: [Double]) -> [String: Any] {
    guard !shares.isEmpty else { return ["definition": "steal share unavailable (no /proc/stat)"] }
    let sorted = shares.sorted(), n = sorted.count
    let median = n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2
    let round3 = { (x: Double) in (x * 1000).rounded() / 1000 }
    let high = shares.filter { $0 >= 0.05 }.count
    var s: [String: Any] = ["median": round3(median), "max": round3(sorted[n - 1]), "children": n, "children_at_least_5_percent": high,
                            "definition": "per timed child process, the machine's steal ticks ÷ all its CPU ticks while it ran (/proc/stat); 0 on bare metal"]
    if high > 0 {
        s["note"] = "steal: the hypervisor took ≥ 5 % of this machine's CPU time during \(high) of \(n) timed runs (up to \(Int((100 * sorted[n - 1]).rounded())) %): those times measure the host's contention as well as the code"
    }
    return s
}
