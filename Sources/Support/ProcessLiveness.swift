// Whether a process that left something behind (a claimed run, a temporary file) still exists.
// `kill(pid, 0)` alone is not enough: a killed worker whose parent died too is reparented to PID 1,
// and an init that does not reap leaves it a zombie, which `kill(pid, 0)` still reports as present.
// Linux only beyond `kill`: elsewhere (no /proc) a zombie counts as alive and no start time is known.
import Foundation

public enum ProcessLiveness {
    /// True when process `pid` exists and is not a zombie (state `Z` or `X` in /proc/PID/stat,
    /// proc(5)). When `commandContains` is given, the process's /proc/PID/cmdline must also contain
    /// it, which guards against a PID reused by an unrelated program. `pid` ≤ 0 is never alive.
    /// Where /proc is unreadable (not Linux), only `kill(pid, 0)` decides.
    public static func isAlive(_ pid: Int32, commandContains: String? = nil) -> Bool {
        guard pid > 0 else { return false }
        if kill(pid, 0) != 0 && errno == ESRCH { return false }
        if let fields = statFields(pid), let state = fields.first, state == "Z" || state == "X" { return false }
        if let needle = commandContains, let cmd = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") {
            return String(decoding: cmd, as: UTF8.self).contains(needle)
        }
        return true
    }

    /// When process `pid` started: /proc/PID/stat's `starttime` (field 22, clock ticks after boot)
    /// after /proc/stat's `btime` (boot, whole seconds since the epoch), so within about a second.
    /// nil where either is unreadable (the process is gone, or not Linux).
    public static func startTime(_ pid: Int32) -> Date? {
        guard pid > 0, let fields = statFields(pid), fields.count > 19, let ticks = Double(fields[19]) else { return nil }
        guard let stat = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
              let line = stat.split(separator: "\n").first(where: { $0.hasPrefix("btime ") }),
              let boot = Double(line.dropFirst(6).trimmingCharacters(in: .whitespaces)) else { return nil }
        let hz = Double(sysconf(Int32(_SC_CLK_TCK)))
        guard hz > 0 else { return nil }
        return Date(timeIntervalSince1970: boot + ticks / hz)
    }

    /// True when process `pid` is alive (`isAlive`) and started before `date` (with a margin of
    /// `slack` seconds for `startTime`'s whole-second boot time): whoever wrote a file last
    /// modified at `date` under that PID may still run. A live process that started after the
    /// file was written holds a reused PID, so the writer is gone.
    public static func isAlive(_ pid: Int32, startedBefore date: Date, slack: TimeInterval = 2) -> Bool {
        guard isAlive(pid) else { return false }
        if let start = startTime(pid), start.timeIntervalSince(date) > slack { return false }
        return true
    }

    /// The fields of /proc/PID/stat after the command name (from the state on: field 3 first),
    /// split at spaces. The name sits in parentheses and may hold spaces, parentheses and bytes
    /// that are not UTF-8, so the fields start after the last `)` byte.
    static func statFields(_ pid: Int32) -> [Substring]? {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/stat"),
              let close = data.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let rest = String(decoding: data[data.index(after: close)...], as: UTF8.self)
        return rest.split(separator: " ", omittingEmptySubsequences: true)
    }
}
