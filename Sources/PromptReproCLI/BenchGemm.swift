import ArgumentParser
import Foundation
import Support
import Tensor

/// `promptrepro bench-gemm`: GFLOP/s of every GEMM kernel this CPU runs (OpenBLAS, PromptRepro's
/// AVX-512 and AVX2 ones) through `BLAS.sgemm`, interleaved: per round, one timed sample of each
/// kernel at each shape, so a drift of the host's speed lands on every kernel. Each sample gives
/// GFLOP per wall second and per CPU second of this process (user + system; on a shared, busy
/// host the second counts only the time the kernel had a CPU: with 1 thread, one core's rate).
/// OpenBLAS reads OPENBLAS_CORETYPE at load, so compare its cores by running this once per setting.
struct BenchGemm: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-gemm", abstract: "Interleaved sgemm GFLOP/s of each GEMM kernel (JSON) at the bench and per-head attention shapes.")

    @Option(parsing: .unconditional, help: "Threads (default 1: one core's kernel speed).", transform: threadCount) var threads: Int = 1
    @Option(parsing: .unconditional, help: "Rounds (each kernel timed once per round per shape).") var rounds: Int = 5
    @Option(help: "Comma-separated MxNxK[:nt|:nn|:tn] (C = A·Bᵀ with nt, the default, as a Linear layer; A·B with nn; Aᵀ·B with tn, a Linear layer's weight gradient).")
    var shapes = "2048x2048x2048,2848x512x2048,356x356x64,356x64x356:nn,64x64x512,512x64x512:nn,512x512x64"
    @Option(help: "Kernels to time (default: all this CPU runs).") var kernels: String?
    @Flag(help: "Also time the opt-in bf16 products (A not transposed) on each bf16 kernel this CPU runs, as kernels 'avx512_bf16' (AVX512-BF16) and 'amx_bf16' (AMX-BF16).") var bf16 = false
    @Option(help: "Write the JSON here as well as to stdout.") var out: String?


    func run() throws {
        Parallel.configure(threads: threads)
        let list: [GemmShape] = try shapes.split(separator: ",").map { spec in
            let parts = spec.split(separator: ":"), dims = parts[0].split(separator: "x").compactMap { Int($0) }
            guard dims.count == 3, dims.allSatisfy({ $0 > 0 }), parts.count == 1 || ["nt", "nn", "tn"].contains(String(parts[1])) else {
                throw ValidationError("--shapes: '\(spec)' is not MxNxK[:nt|:nn|:tn], e.g. 512x64x512:nn")
            }
            return GemmShape(name: String(spec), m: dims[0], n: dims[1], k: dims[2], transB: parts.count == 1 || parts[1] == "nt",
                             transA: parts.count == 2 && parts[1] == "tn")
        }
        let kerns = try kernels.map { try $0.split(separator: ",").map { try BLAS.kernel(named: String($0)) } } ?? BLAS.availableKernels
        var samples: [String: [String: [(wall: Double, cpu: Double)]]] = [:]  // shape → kernel → GFLOP/s per round
        let data = list.map { $0.operands() }
        for round in 0...rounds {  // round 0 warms up (packing buffers, pages, OpenBLAS init)
            for (s, operands) in zip(list, data) {
                for kern in kerns {
                    let (wall, cpu) = BLAS.withKernel(kern) { s.sample(operands) }
                    let g = s.flops * Double(s.reps) / 1e9
                    if round > 0 { samples[s.name, default: [:]][kern.rawValue, default: []].append((g / wall, g / max(cpu, 1e-6))) }
                }
                for kern in bf16 && !s.transA ? BF16Products.availableKernels : [] {
                    let (wall, cpu) = try BF16Products.with(kernel: kern) { s.sample(operands) }
                    let g = s.flops * Double(s.reps) / 1e9
                    if round > 0 { samples[s.name, default: [:]][kern.rawValue, default: []].append((g / wall, g / max(cpu, 1e-6))) }
                }
            }
        }
        var results: [String: Any] = [:]
        for s in list {
            var row: [String: Any] = ["m": s.m, "n": s.n, "k": s.k, "transA": s.transA, "transB": s.transB]
            for (kern, g) in samples[s.name] ?? [:] {
                let wall = g.map(\.wall).sorted(), cpu = g.map(\.cpu).sorted()
                row[kern] = ["gflops_median": round1(wall[wall.count / 2]), "gflops_min": round1(wall[0]), "gflops_max": round1(wall[wall.count - 1]),
                             "gflops_per_cpu_s_median": round1(cpu[cpu.count / 2]), "gflops": g.map { round1($0.wall) },
                             "gflops_per_cpu_s": g.map { round1($0.cpu) }]
            }
            results[s.name] = row
        }
        var machine = machineInfo()
        machine["blockings"] = Dictionary(uniqueKeysWithValues: BLAS.blockings.map { ($0.key.rawValue, $0.value.description) })
        machine["caches"] = CacheInfo.host.description
        let report: [String: Any] = ["machine": machine, "threads": threads, "rounds": rounds, "sgemm": results]
        let json = try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys])
        if let out { try json.write(to: URL(fileURLWithPath: out)) }
        print(String(decoding: json, as: UTF8.self))
    }
}

/// A product shape timed by `bench-gemm` and `calibrate`: C[m×n] = A·Bᵀ (`transB`, as a Linear
/// layer with B stored [n, k]), A·B, or Aᵀ·B (`transA`, A stored [k, m]: a Linear layer's weight
/// gradient), through `BLAS.sgemm` with the selected kernel.
struct GemmShape {
    let name: String, m: Int, n: Int, k: Int, transB: Bool
    var transA = false

    /// FLOPs of one product (2·m·n·k).
    var flops: Double { 2.0 * Double(m) * Double(n) * Double(k) }
    /// Products per timed sample: at least 0.3 GFLOP, so small shapes are timed over many.
    var reps: Int { max(1, Int((3e8 / flops).rounded(.up))) }

    /// Fixed operands (uniform in [−1, 1], seeds 1 and 2) and the output.
    func operands() -> (a: Tensor, b: Tensor, c: Tensor) {
        (Tensor.uniform([m * k], lo: -1, hi: 1, key: RNGKey(seed: 1)), Tensor.uniform([n * k], lo: -1, hi: 1, key: RNGKey(seed: 2)),
         Tensor(zeros: [m, n]))
    }

    /// One timed sample: `reps` products; wall and process CPU seconds.
    func sample(_ o: (a: Tensor, b: Tensor, c: Tensor)) -> (wall: Double, cpu: Double) {
        let t0 = DispatchTime.now().uptimeNanoseconds, c0 = cpuSeconds()
        for _ in 0..<reps {
            BLAS.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 1, a: o.a.data, lda: transA ? m : k,
                       b: o.b.data, ldb: transB ? k : n, beta: 0, c: o.c.data, ldc: n)
        }
        return (Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9, cpuSeconds() - c0)
    }
}

/// CPU seconds (user + system) of this process so far.
func cpuSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
}
