import ArgumentParser
import Foundation
import Tensor

/// `promptrepro bench`: JSON on stdout. Core section: sgemm GFLOP/s of raw OpenBLAS vs the
/// tensor core's matmul path (op dispatch, allocation and recording checks included) at 2048³ and
/// at the t5-small projection shapes (2848 = 8 × 356 rows). Each figure is the median of ≥ 5
/// timed runs after one warm-up.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print benchmark JSON (core: sgemm GFLOP/s, raw vs core path).")

    @Option(help: "Threads for OpenBLAS and the core (default: PROMPTREPRO_THREADS or the core count).")
    var threads: Int?
    @Option(help: "Timed repetitions per measurement (median reported).")
    var repeats: Int = 5
    @Option(help: "Write the JSON here as well as to stdout.")
    var out: String?

    func run() throws {
        Parallel.configure(threads: threads)
        let shapes: [(String, Int, Int, Int)] = [
            ("2048x2048x2048", 2048, 2048, 2048),
            ("2848x512x2048", 2848, 512, 2048),   // t5-small FFN wi: (B·T, d) · (d, d_ff)
            ("2848x2048x512", 2848, 2048, 512),   // t5-small FFN wo: (B·T, d_ff) · (d_ff, d)
        ]
        var gemm: [String: Any] = [:]
        for (name, m, k, n) in shapes {
            let a = Tensor.uniform([m, k], lo: -1, hi: 1, key: RNGKey(seed: 1))
            let w = Tensor.uniform([n, k], lo: -1, hi: 1, key: RNGKey(seed: 2))  // [out, in] like torch Linear
            let c = Tensor(zeros: [m, n])
            let flops = 2.0 * Double(m) * Double(n) * Double(k)
            let raw = median(repeats) {
                BLAS.sgemm(transA: false, transB: true, m: m, n: n, k: k, alpha: 1, a: a.data, lda: k,
                           b: w.data, ldb: k, beta: 0, c: c.data, ldc: n)
            }
            let core = median(repeats) { _ = try! linear(a, w) }
            gemm[name] = [
                "m": m, "k": k, "n": n,
                "openblas_gflops": round1(flops / raw / 1e9),
                "core_gflops": round1(flops / core / 1e9),
                "core_over_openblas": (raw / core * 1000).rounded() / 1000,
            ]
        }
        let report: [String: Any] = [
            "machine": machineInfo(),
            "core": ["sgemm": gemm],
        ]
        let data = try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys])
        let text = String(decoding: data, as: UTF8.self)
        print(text)
        if let out { try (text + "\n").write(toFile: out, atomically: true, encoding: .utf8) }
    }
}

func round1(_ x: Double) -> Double { (x * 10).rounded() / 10 }

/// Median wall time in seconds of `repeats` runs after one warm-up run.
func median(_ repeats: Int, _ body: () -> Void) -> Double {
    body()
    var times: [Double] = []
    for _ in 0..<max(repeats, 1) {
        let t0 = DispatchTime.now().uptimeNanoseconds
        body()
        times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
    }
    times.sort()
    return times[times.count / 2]
}

func machineInfo() -> [String: Any] {
    var cpu = "unknown"
    if let s = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
       let line = s.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
       let v = line.split(separator: ":", maxSplits: 1).last {
        cpu = v.trimmingCharacters(in: .whitespaces)
    }
    return [
        "cpu": cpu,
        "cores": ProcessInfo.processInfo.activeProcessorCount,
        "threads": Parallel.threads,
        "memory_gb": round1(Double(ProcessInfo.processInfo.physicalMemory) / 1_073_741_824),
        "openblas_config": BLAS.config,
        "openblas_core": BLAS.coreName,
        "os": ProcessInfo.processInfo.operatingSystemVersionString,
    ]
}
