import ArgumentParser
import Foundation
import Models
import Support
import Tensor

/// `promptrepro calibrate`: the one-time GEMM calibration of a host (GEMMCalibration.swift). Every
/// kernel this CPU runs is timed through `BLAS.sgemm` at the model's product shapes — each own
/// kernel with its cache-derived blocking and with nc halved or doubled and mc halved or
/// quartered — interleaved (per round one sample of every candidate, the order rotated each round,
/// so a drift of a shared host's speed lands on all of them). A candidate's rate is the median over
/// rounds of its geometric-mean GFLOP/s over the shapes; the choice (`GEMMCalibration.choose`) is
/// the candidate with the highest median per-round ratio to the default (auto kernel, derived
/// blocking), kept only when that median is at least 1 + --margin, and cached for this host.
struct Calibrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time the GEMM kernels and blockings on this host once and cache the fastest (applied at start-up).",
        discussion: """
            The cache is <PROMPTREPRO_CACHE or ~/.cache/promptrepro>/gemm-calibration.json, one entry per host \
            signature (CPU vendor, family, model, stepping, SIMD flags, caches), so a home directory shared \
            between host types is safe. Every later promptrepro process applies the entry of its host unless \
            PROMPTREPRO_GEMM names a kernel or PROMPTREPRO_CALIBRATION=off, whatever thread count it runs \
            (the entry records the count it was measured on; where OpenBLAS and the own kernel are close, \
            calibrate at the count the runs use: `--threads`). A blocking (mc, nc) never changes \
            results; a kernel changes their last bits, and runs record the kernel and blocking they used.
            """)

    @Option(parsing: .unconditional, help: "Threads the products run on (default: PROMPTREPRO_THREADS or the CPUs this process may use).", transform: threadCount) var threads: Int?
    @Option(parsing: .unconditional, help: "Rounds (each candidate timed once per round at every shape).") var rounds: Int = 7
    @Option(parsing: .unconditional, help: "Keep the default unless a candidate's median per-round speed ratio to it is at least 1 + this.") var margin: Double = 0.05
    @Option(help: "Calibration file (default: the cache named above).") var file: String?
    @Flag(help: "Measure and print only; write nothing.") var dryRun = false

    /// The model's product shapes (m, n, k; C = A·Bᵀ as a Linear layer, or A·B): t5-small's FFN
    /// in and out at 8 × 356 tokens, a square product, and the per-head attention products.
    static let shapes = [
        GemmShape(name: "2848x2048x512", m: 2848, n: 2048, k: 512, transB: true),
        GemmShape(name: "2848x512x2048", m: 2848, n: 512, k: 2048, transB: true),
        GemmShape(name: "2048x2048x2048", m: 2048, n: 2048, k: 2048, transB: true),
        GemmShape(name: "356x356x64", m: 356, n: 356, k: 64, transB: true),
        GemmShape(name: "356x64x356:nn", m: 356, n: 64, k: 356, transB: false),
    ]

    func run() throws {
        if let threads { Parallel.configure(threads: threads) }
        guard rounds > 0 else { throw ValidationError("--rounds must be positive") }
        let path = file ?? Self.defaultPath
        let host = Self.hostSignature()
        var candidates: [GEMMCandidate] = []
        for k in BLAS.availableKernels {
            guard let t = k.tile else { candidates.append(GEMMCandidate(kernel: k, blocking: nil)); continue }
            let d = GEMMBlocking.derive(mr: t.mr, nr: t.nr, kc: t.kc, caches: .host)  // not a calibrated one
            func mult(_ x: Int, _ q: Int) -> Int { max(4 * q, x / q * q) }
            // nc sizes the B block for L2 (halved and doubled), mc the A block for L3 (halved, quartered).
            let variants = [(d.mc, d.nc), (d.mc, mult(d.nc / 2, t.nr)), (d.mc, mult(d.nc * 2, t.nr)),
                            (mult(d.mc / 2, t.mr), d.nc), (mult(d.mc / 4, t.mr), d.nc)]
            for (mc, nc) in variants {
                let c = GEMMCandidate(kernel: k, blocking: GEMMBlocking(mc: mc, kc: d.kc, nc: nc))
                if !candidates.contains(c) { candidates.append(c) }
            }
        }
        let autoBlocking = BLAS.autoKernel.tile.map { GEMMBlocking.derive(mr: $0.mr, nr: $0.nr, kc: $0.kc, caches: .host) }
        let def = GEMMCandidate(kernel: BLAS.autoKernel, blocking: autoBlocking)
        let data = Self.shapes.map { $0.operands() }
        let savedKernel = BLAS.kernel, savedBlockings = BLAS.blockings
        defer { BLAS.kernel = savedKernel; BLAS.blockings = savedBlockings }
        var perRound: [String: [Double]] = [:]
        let start = Date()
        for round in 0...rounds {  // round 0 warms up (packing buffers, pages, OpenBLAS's start)
            let n = candidates.count
            for i in 0..<n {
                let c = candidates[(i + round) % n]
                BLAS.kernel = c.kernel
                if let b = c.blocking { BLAS.blockings[c.kernel] = b }
                var logSum = 0.0
                for (s, operands) in zip(Self.shapes, data) {
                    logSum += log(s.flops * Double(s.reps) / s.sample(operands).wall / 1e9)
                }
                BLAS.blockings = savedBlockings
                if round > 0 { perRound[c.description, default: []].append(exp(logSum / Double(Self.shapes.count))) }
            }
            if round > 0 {
                let elapsed = Date().timeIntervalSince(start)
                stderr(String(format: "round %d/%d (%.0f s, about %.0f s left)", round, rounds, elapsed, elapsed / Double(round + 1) * Double(rounds - round)))
            }
        }
        let medians = candidates.map { c -> (GEMMCandidate, Double) in
            let v = (perRound[c.description] ?? []).sorted()
            return (c, v.isEmpty ? 0 : v[v.count / 2])
        }
        let (choice, speedup) = try GEMMCalibration.choose(candidates.map { ($0, perRound[$0.description] ?? []) }, default: def, margin: margin)
        for (c, r) in medians.sorted(by: { $0.1 > $1.1 }) {
            let v = perRound[c.description] ?? []
            stderr(String(format: "%@ %-28@ %7.1f GFLOP/s (min %.1f, max %.1f)%@", c == choice ? "→" : " ", c.description as NSString, r,
                          v.min() ?? 0, v.max() ?? 0, c == def ? "  (default)" : ""))
        }
        let iso = ISO8601DateFormatter()
        let cal = GEMMCalibration(host: host, threads: Parallel.threads, choice: choice,
                                  gflops: Dictionary(uniqueKeysWithValues: medians.map { ($0.0.description, ($0.1 * 10).rounded() / 10) }),
                                  defaultCandidate: def.description, speedup: (speedup * 1000).rounded() / 1000,
                                  measured: iso.string(from: Date()), shapes: Self.shapes.map(\.name))
        stderr(choice == def ? "keeping the default \(def) (no candidate ran \(Int(margin * 100)) % faster, median of per-round ratios)"
                             : String(format: "choice: %@, %.1f%% faster than the default %@ (median of per-round ratios)", choice.description, (speedup - 1) * 100, def.description))
        if dryRun { return }
        // A file that does not read is replaced (its old bytes kept beside it).
        var f: GEMMCalibrationFile
        do { f = try GEMMCalibrationFile.read(path) ?? GEMMCalibrationFile() } catch {
            let aside = path + ".unreadable"
            try? FileManager.default.removeItem(atPath: aside)
            try FileManager.default.moveItem(atPath: path, toPath: aside)
            stderr("note: \(path) did not read (\(error)); moved to \(aside), writing a new one")
            f = GEMMCalibrationFile()
        }
        f.hosts[host] = cal
        try f.write(path)
        stderr("wrote \(path) for host: \(host)")
    }

    /// <PROMPTREPRO_CACHE or ~/.cache/promptrepro>/gemm-calibration.json.
    static var defaultPath: String {
        let root = Environment.values["PROMPTREPRO_CACHE"] ?? EmbeddedBackbones.defaultCacheRoot
        return (root as NSString).appendingPathComponent("gemm-calibration.json")
    }

    /// This host's `GEMMCalibration.signature`, from /proc/cpuinfo and the cache sizes.
    static func hostSignature() -> String {
        let id = CPUIdentity.read()
        return GEMMCalibration.signature(vendor: id.vendor, family: id.family, model: id.model, stepping: id.stepping, simd: id.simd,
                                         caches: CacheInfo.host)
    }

    /// Applies this host's cached calibration (start-up; `Environment.apply`). Nothing when there is
    /// no file or no entry for this host.
    /// A file that does not read, or an entry this host cannot apply (a kernel whose instructions a
    /// VM hides, a blocking off the tile), is ignored with a warning: the defaults run, as without
    /// a calibration (it ended every command, `calibrate` and `--help` included, with an error).
    static func applyCached(path: String = defaultPath) {
        do {
            guard let f = try GEMMCalibrationFile.read(path), let cal = f.hosts[hostSignature()] else { return }
            try cal.apply()
        } catch {
            // The error names the file; said once, with the one remedy.
            let text = "\(error)"
            stderr("warning: \(text.contains(path) ? "" : "\(path): ")\(text); ignored, the default kernel and blocking run (`promptrepro calibrate` replaces the file; PROMPTREPRO_CALIBRATION=off silences this)")
        }
    }
}
