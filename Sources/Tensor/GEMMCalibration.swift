// One-time GEMM calibration per host (issue #21 item 1): `promptrepro calibrate` times every GEMM
// kernel this CPU can run, each own kernel with a few blockings around the cache-derived one,
// interleaved over rounds, and caches the fastest for this host's signature. Later processes on a
// host with the same signature start with that kernel and blocking (the CLI applies it unless
// PROMPTREPRO_GEMM names a kernel or PROMPTREPRO_CALIBRATION=off).
//
// Results: mc and nc never change a product's bits (only kc does, and kc stays the kernel's fixed
// value), so a calibrated blocking gives the same results as the derived one; a calibrated kernel
// gives that kernel's results, and every run records the kernel and blocking it ran with
// (`BLAS.kernelDescription`).
import Foundation

/// One candidate of a calibration: a kernel and, for the own kernels, a blocking.
public struct GEMMCandidate: Codable, Equatable, Sendable, CustomStringConvertible {
    public var kernel: GEMMKernel
    public var mc: Int?
    public var nc: Int?

    public init(kernel: GEMMKernel, blocking: GEMMBlocking?) {
        self.kernel = kernel; mc = blocking?.mc; nc = blocking?.nc
    }

    /// The blocking with the kernel's fixed kc (nil for OpenBLAS).
    public var blocking: GEMMBlocking? {
        guard let t = kernel.tile, let mc, let nc else { return nil }
        return GEMMBlocking(mc: mc, kc: t.kc, nc: nc)
    }

    /// "avx512 mc 4092 nc 672", "openblas".
    public var description: String {
        guard let mc, let nc else { return kernel.rawValue }
        return "\(kernel.rawValue) mc \(mc) nc \(nc)"
    }
}

/// The calibrated choice for one host signature.
public struct GEMMCalibration: Codable, Equatable, Sendable {
    /// `GEMMCalibration.signature(…)` of the host it was measured on.
    public var host: String
    /// Threads the products ran on while measuring.
    public var threads: Int
    /// The choice.
    public var choice: GEMMCandidate
    /// Every candidate's median over rounds of its geometric-mean GFLOP/s over the shapes.
    public var gflops: [String: Double]
    /// The default (auto kernel, cache-derived blocking) and the choice's median per-round speed
    /// ratio to it (1 when the default stays).
    public var defaultCandidate: String
    public var speedup: Double
    /// When it was measured (ISO 8601) and on which shapes ("m×n×k").
    public var measured: String
    public var shapes: [String]

    public init(host: String, threads: Int, choice: GEMMCandidate, gflops: [String: Double], defaultCandidate: String,
                speedup: Double, measured: String, shapes: [String]) {
        self.host = host; self.threads = threads; self.choice = choice; self.gflops = gflops
        self.defaultCandidate = defaultCandidate; self.speedup = speedup; self.measured = measured; self.shapes = shapes
    }

    /// A host signature: the CPU's identity and caches. Calibrations are looked up by it, so a file
    /// shared between hosts (a home directory on NFS) never applies one host's choice to another.
    /// Inputs: /proc/cpuinfo's vendor_id, cpu family, model, stepping and the SIMD flags; `caches`;
    /// the loop nest's version (`nest`).
    public static func signature(vendor: String, family: String, model: String, stepping: String, simd: String, caches: CacheInfo) -> String {
        "\(vendor) family \(family) model \(model) stepping \(stepping) [\(simd)] \(caches.description) nest \(nest)"
    }

    /// The GEMM loop nest mc and nc are measured for (gemm_common.h) and the rule that derives the
    /// default they are compared with (GEMMBlocking.swift); part of the signature, so a calibration
    /// made for an earlier nest or rule is not applied. 1: jc → pc → ic → jr → ir (until
    /// 2026-11-30); 2: ic → pc → jc → ir → jr, nc from L2 / 2; 3: the same nest, nc from L2 / 4.
    public static let nest = 3

    /// The candidate to use, from each candidate's GFLOP/s per round (`rates[i]` measured in the
    /// same round as the default's `rates[i]`): the one whose median over rounds of rate ÷ the
    /// default's rate in that round is highest, unless that median is below 1 + `margin` — then the
    /// default stays (a difference that small is noise on a shared host, and a kernel change would
    /// move the results' last bits for nothing). Returns the choice and its median ratio (1 for the
    /// default). Throws when the default was not measured or the rounds do not line up.
    public static func choose(_ rates: [(GEMMCandidate, [Double])], default def: GEMMCandidate, margin: Double = 0.05) throws -> (GEMMCandidate, Double) {
        guard let base = rates.first(where: { $0.0 == def })?.1, !base.isEmpty, base.allSatisfy({ $0 > 0 }) else {
            throw TensorError.invalidArgument(op: "GEMM calibration", detail: "the default candidate \(def) was not measured")
        }
        var best = (def, 1.0)
        for (c, r) in rates where c != def {
            guard r.count == base.count else {
                throw TensorError.invalidArgument(op: "GEMM calibration", detail: "\(c): \(r.count) rounds, the default \(base.count)")
            }
            let ratios = zip(r, base).map { $0 / $1 }.sorted()
            let n = ratios.count
            let median = n % 2 == 1 ? ratios[n / 2] : (ratios[n / 2 - 1] + ratios[n / 2]) / 2
            if median > best.1 { best = (c, median) }
        }
        return best.1 < 1 + margin ? (def, 1) : best
    }

    /// Sets `BLAS.kernel` and the kernel's blocking. Throws when this CPU cannot run the kernel or
    /// the blocking is not usable (mc, nc must be positive multiples of the tile).
    public func apply() throws {
        let k = choice.kernel
        guard BLAS.available(k) else {
            throw TensorError.invalidArgument(op: "GEMM calibration", detail: "kernel \(k.rawValue) is not available on this CPU")
        }
        if let t = k.tile {
            guard let b = choice.blocking, b.mc > 0, b.nc > 0, b.mc % t.mr == 0, b.nc % t.nr == 0 else {
                throw TensorError.invalidArgument(op: "GEMM calibration", detail: "\(choice): mc and nc must be positive multiples of the \(t.mr)×\(t.nr) tile")
            }
            BLAS.blockings[k] = b
        }
        BLAS.kernel = k
        BLAS.calibrated = self
    }
}

/// The calibration file: one entry per host signature.
public struct GEMMCalibrationFile: Codable, Equatable, Sendable {
    public var hosts: [String: GEMMCalibration]

    public init(hosts: [String: GEMMCalibration] = [:]) { self.hosts = hosts }

    /// Reads `path`; nil when the file does not exist. Throws naming the file when it is unreadable.
    public static func read(_ path: String) throws -> GEMMCalibrationFile? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        do {
            return try JSONDecoder().decode(GEMMCalibrationFile.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            // The remedy is the caller's to say (start-up: ignored with a warning; `calibrate`: replaced).
            throw TensorError.invalidArgument(op: "GEMM calibration", detail: "\(path): not a calibration file (\(error))")
        }
    }

    /// Writes atomically, creating the directory.
    public func write(_ path: String) throws {
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        try e.encode(self).write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}
