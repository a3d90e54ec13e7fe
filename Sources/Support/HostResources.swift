// The CPUs and memory this process may use, which in a container, a SLURM step or under `taskset`
// are fewer than the machine's: Foundation's `activeProcessorCount` reads neither the affinity
// mask nor cgroup v2's `cpu.max`, and `physicalMemory` no memory limit, so the default thread count
// ran two spinning threads on one allowed CPU and the worker split sized itself by the host.
import Foundation

/// CPUs and memory available to this process: the smallest of the machine's, the affinity mask's
/// (`Cpus_allowed_list` in /proc/self/status, sched_setaffinity(2)) and the cgroup's quota
/// (cgroup v2 `cpu.max` / `memory.max` of the process's cgroup and its ancestors; cgroup v1
/// `cpu.cfs_quota_us` ÷ `cpu.cfs_period_us` and `memory.limit_in_bytes`), as the kernel
/// documents them (Documentation/admin-guide/cgroup-v2.rst, cgroup-v1/cpu*.rst).
public enum HostResources {
    /// Whole CPUs this process can use: min(machine, affinity mask, ⌈quota ÷ period⌉), at least 1.
    /// Read once (the default thread count and the sweep's planning ask for it repeatedly).
    public static let cpus: Int = cpus(machine: ProcessInfo.processInfo.activeProcessorCount, root: "/")

    /// Bytes of memory this process can use: min(physical memory, the cgroup's limit). Read once
    /// (the sweep's fit check asks for it per planned run).
    public static let memoryBytes: UInt64 = memoryBytes(physical: ProcessInfo.processInfo.physicalMemory, root: "/")

    /// `cpus` with the machine's count given and the files read under `root` (tests).
    public static func cpus(machine: Int, root: String) -> Int {
        var n = max(1, machine)
        if let status = read(root, "proc/self/status"),
           let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") }),
           let allowed = cpuListCount(String(line.dropFirst("Cpus_allowed_list:".count))) {
            n = min(n, allowed)
        }
        if let quota = cpuQuota(root: root) { n = min(n, max(1, Int(quota.rounded(.up)))) }
        return max(1, n)
    }

    /// `memoryBytes` with the physical size given and the files read under `root` (tests).
    public static func memoryBytes(physical: UInt64, root: String) -> UInt64 {
        var m = physical
        for dir in cgroupV2Dirs(root: root) {
            if let text = read(root, dir + "/memory.max"), let limit = UInt64(text.trimmingCharacters(in: .whitespacesAndNewlines)), limit > 0 {
                m = min(m, limit)
            }
        }
        // cgroup v1 prints a huge number (about 2⁶³ rounded to pages) for "no limit".
        for dir in cgroupV1Dirs(controller: "memory", root: root) {
            if let text = read(root, dir + "/memory.limit_in_bytes"), let limit = UInt64(text.trimmingCharacters(in: .whitespacesAndNewlines)), limit > 0 {
                m = min(m, limit)
            }
        }
        return m
    }

    /// CPUs' worth of time the cgroups allow per period (the smallest over the process's cgroup
    /// and its ancestors), nil where none sets a quota.
    static func cpuQuota(root: String) -> Double? {
        var best: Double?
        for dir in cgroupV2Dirs(root: root) {
            // "max 100000" (no limit) or "200000 100000" (two CPUs' worth).
            guard let text = read(root, dir + "/cpu.max") else { continue }
            let f = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
            if f.count >= 2, let q = Double(f[0]), let p = Double(f[1]), q > 0, p > 0 { best = min(best ?? .infinity, q / p) }
        }
        for dir in cgroupV1Dirs(controller: "cpu", root: root) {
            // cfs_quota_us -1: no limit.
            guard let q = read(root, dir + "/cpu.cfs_quota_us").flatMap({ Double($0.trimmingCharacters(in: .whitespacesAndNewlines)) }),
                  let p = read(root, dir + "/cpu.cfs_period_us").flatMap({ Double($0.trimmingCharacters(in: .whitespacesAndNewlines)) }),
                  q > 0, p > 0 else { continue }
            best = min(best ?? .infinity, q / p)
        }
        return best
    }

    /// The process's cgroup v2 directory and its ancestors, relative to `root`, leaf first: from
    /// /proc/self/cgroup's "0::/path" line; in a container whose cgroup namespace makes that "/",
    /// the mount's top level (/sys/fs/cgroup) is the container's own cgroup.
    static func cgroupV2Dirs(root: String) -> [String] {
        guard let text = read(root, "proc/self/cgroup"),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("0::") }) else { return [] }
        return ancestors(of: String(line.dropFirst(3)), mount: "sys/fs/cgroup")
    }

    /// The process's cgroup v1 directories of `controller` and their ancestors (hierarchy lines
    /// "N:cpu,cpuacct:/path"; the controller mounted at /sys/fs/cgroup/<controller>).
    static func cgroupV1Dirs(controller: String, root: String) -> [String] {
        guard let text = read(root, "proc/self/cgroup") else { return [] }
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3, parts[1].split(separator: ",").contains(Substring(controller)) else { continue }
            return ancestors(of: String(parts[2]), mount: "sys/fs/cgroup/\(controller)")
        }
        return []
    }

    /// "mount/a/b", "mount/a", "mount" for path "/a/b".
    static func ancestors(of path: String, mount: String) -> [String] {
        var parts = path.split(separator: "/").map(String.init)
        var dirs: [String] = []
        while true {
            dirs.append(([mount] + parts).joined(separator: "/"))
            if parts.isEmpty { break }
            parts.removeLast()
        }
        return dirs
    }

    /// How many CPUs a list such as "0-3,8,10-11" names (7); nil for text that is not such a list.
    public static func cpuListCount(_ list: String) -> Int? {
        let t = list.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !t.isEmpty else { return nil }
        var n = 0
        for item in t.split(separator: ",") {
            let ends = item.split(separator: "-", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
            switch ends.count {
            case 1: guard ends[0] != nil else { return nil }; n += 1
            case 2:
                guard let a = ends[0], let b = ends[1], b >= a else { return nil }
                n += b - a + 1
            default: return nil
            }
        }
        return n
    }

    static func read(_ root: String, _ rel: String) -> String? {
        try? String(contentsOfFile: (root as NSString).appendingPathComponent(rel), encoding: .utf8)
    }
}
