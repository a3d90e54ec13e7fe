// Whether a process that left something behind (a claimed run, a temporary file) still exists.
// `kill(pid, 0)` alone is not enough: a killed worker whose parent died too is reparented to PID 1,
// and an init that does not reap leaves it a zombie, which `kill(pid, 0)` still reports as present.
import Foundation

public enum ProcessLiveness {
    /// True when process `pid` exists and is not a zombie (state `Z` or `X` in /proc/PID/stat,
    /// proc(5)). When `commandContains` is given, the process's /proc/PID/cmdline must also contain
    /// it, which guards against a PID reused by an unrelated program. `pid` ≤ 0 is never alive.
    /// Where /proc is unreadable (not Linux), only `kill(pid, 0)` decides.
    public static func isAlive(_ pid: Int32, commandContains: String? = nil) -> Bool {
        guard pid > 0 else { return false }
        if kill(pid, 0) != 0 && errno == ESRCH { return false }
        if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
           let close = stat.lastIndex(of: ")"),
           let state = stat[close...].dropFirst(2).first {
            if state == "Z" || state == "X" { return false }
        }
        if let needle = commandContains, let cmd = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") {
            return String(decoding: cmd, as: UTF8.self).contains(needle)
        }
        return true
    }
}
