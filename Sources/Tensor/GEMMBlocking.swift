// Cache blocking of PromptRepro's own GEMM kernels (Sources/CGemm), derived from this host's caches
// with the analytic model of BLIS (Low, Igual, Smith, Quintana-Ortí, "Analytical modeling is enough
// for high-performance BLIS", TOMS 2016), for the loop nest of gemm_common.h (ic → pc → jc → ir →
// jr): an mr×nr register tile that broadcasts A and loads vectors of B, so the mr×kc micro-panel of
// A (the broadcast side) stays in L1 while the kernel sweeps the packed B block (kc×nc, in L2); the
// packed A block (mc×kc) stays in this core's share of L3 and is packed once per k block.
//
//   kc: fixed per kernel (384 AVX-512, 256 AVX2). Not derived from the host: each element of C is
//       summed over k in blocks of kc, so kc sets the rounding, and a fixed kc keeps results
//       bit-identical for a given kernel and thread count on every host.
//   nc: the largest multiple of nr with kc·nc·4 ≤ L2 / 4 (per thread sharing the L2), at least 4·nr.
//       A quarter, not BLIS's "about half": the block shares the L2 with the C rows and A
//       micro-panels streamed past it, and with two threads each line evicted from it comes back
//       over the L3 both cores share. Measured on Intel family 6 model 207 (L2 2 MiB), AVX-512,
//       2 threads, alternated with torch's linear: nc 672 (L2 / 2) ran 0.69–0.83× torch at the
//       bench shapes, nc 96–320 0.84–0.94× (flat over that range); one thread within 3 %.
//   mc: the largest multiple of mr with mc·kc·4 ≤ L3 / 2 (per thread sharing the L3), between 4·mr
//       and 4096 rows (a bigger A block only costs memory: B is then packed once per 4096 rows).
//
// mc and nc only choose which tiles run when; they never change a result's bits (tested).
import Foundation
import Support

/// Cache sizes of cpu0 as /sys/devices/system/cpu/cpu0/cache/index*/ reports them.
public struct CacheInfo: Equatable, Sendable {
    /// Bytes per cache; `…Sharing` is the number of logical CPUs sharing it (shared_cpu_list).
    public var l1d: Int, l2: Int, l3: Int
    public var l2Sharing: Int, l3Sharing: Int
    /// false when sysfs could not be read and the fallbacks below stand in.
    public var fromSysfs: Bool
    /// Levels sysfs did not report while others were read ("L3" on some QEMU CPU models): their
    /// fallback sizes stand in, and `description` says so.
    public var fallbackLevels: [String] = []

    /// Used where sysfs is missing (containers without /sys, non-Linux): modest sizes every x86-64
    /// server core since Haswell exceeds, so the blocking stays cache-resident at some speed cost.
    public static let fallback = CacheInfo(l1d: 32 << 10, l2: 256 << 10, l3: 2 << 20, l2Sharing: 1, l3Sharing: 1, fromSysfs: false)

    /// This host's caches, read once.
    public static let host: CacheInfo = read(root: "/sys/devices/system/cpu/cpu0/cache")

    /// Reads `root`/index*/{level,type,size,shared_cpu_list}; any cache not found keeps its fallback.
    public static func read(root: String) -> CacheInfo {
        var info = fallback
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: root) else { return info }
        var found = false, seen: Set<String> = []
        for e in entries where e.hasPrefix("index") {
            func field(_ name: String) -> String? {
                (try? String(contentsOfFile: "\(root)/\(e)/\(name)", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            guard let level = field("level").flatMap(Int.init), let type = field("type"),
                  let size = field("size").flatMap(parseSize), size > 0 else { continue }
            let sharing = field("shared_cpu_list").map(cpuCount) ?? 1
            switch (level, type) {
            case (1, "Data"): info.l1d = size; seen.insert("L1d")
            case (2, "Unified"), (2, "Data"): info.l2 = size; info.l2Sharing = sharing; seen.insert("L2")
            case (3, "Unified"): info.l3 = size; info.l3Sharing = sharing; seen.insert("L3")
            default: continue
            }
            found = true
        }
        info.fromSysfs = found
        if found { info.fallbackLevels = ["L1d", "L2", "L3"].filter { !seen.contains($0) } }
        return info
    }

    /// "48K", "2048K", "300M", "1G" or a plain byte count.
    static func parseSize(_ s: String) -> Int? {
        guard let last = s.last else { return nil }
        let scale = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30][String(last).uppercased()]
        return scale.map { m in Int(s.dropLast()).map { $0 * m } } ?? Int(s)
    }

    /// Number of CPUs in a list such as "0-1,4,6-7" (`HostResources.cpuListCount`; at least 1,
    /// also for text that is no such list).
    static func cpuCount(_ list: String) -> Int { max(HostResources.cpuListCount(list) ?? 1, 1) }

    /// "L1d 48 KiB, L2 2048 KiB, L3 300 MiB / 2 cpus" (+ " (fallback sizes: no sysfs)" without
    /// sysfs, " (L3 not in sysfs: fallback size)" for a level it did not report).
    public var description: String {
        func size(_ b: Int) -> String { b >= 64 << 20 ? "\(b >> 20) MiB" : "\(b >> 10) KiB" }
        let l2s = l2Sharing > 1 ? " / \(l2Sharing) cpus" : "", l3s = l3Sharing > 1 ? " / \(l3Sharing) cpus" : ""
        return "L1d \(size(l1d)), L2 \(size(l2))\(l2s), L3 \(size(l3))\(l3s)" + (!fromSysfs ? " (fallback sizes: no sysfs)"
            : fallbackLevels.isEmpty ? "" : " (\(fallbackLevels.joined(separator: ", ")) not in sysfs: fallback size)")
    }
}

/// Block sizes (in floats) of one own-kernel product: A in mc×kc blocks, B in kc×nc blocks.
public struct GEMMBlocking: Equatable, Sendable {
    public var mc: Int, kc: Int, nc: Int

    public init(mc: Int, kc: Int, nc: Int) { self.mc = mc; self.kc = kc; self.nc = nc }

    /// The rule in this file's header for an mr×nr tile and a fixed kc.
    public static func derive(mr: Int, nr: Int, kc: Int, caches c: CacheInfo) -> GEMMBlocking {
        let l2 = c.l2 / max(c.l2Sharing, 1), l3 = c.l3 / max(c.l3Sharing, 1)
        let nc = max(4 * nr, l2 / 4 / (kc * 4) / nr * nr)
        let mc = min(4096 / mr * mr, max(4 * mr, l3 / 2 / (kc * 4) / mr * mr))
        return GEMMBlocking(mc: mc, kc: kc, nc: nc)
    }

    /// "mc 4092 kc 384 nc 672".
    public var description: String { "mc \(mc) kc \(kc) nc \(nc)" }
}
