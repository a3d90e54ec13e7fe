// How fast this host's main memory can be read, for the end-to-end bench's memory bound (issue
// #21): a greedy decoding step reads every decoder weight, the LM head and the cross- and
// self-attention keys and values once for a few FLOPs per byte, so on hosts whose read rate is low
// its time is set by bytes, not by the GEMM rate (docs/performance.md, "Fifth session").
import CGemm
import Foundation

/// Memory read-rate probe: `threads` threads together read a buffer far larger than any L3 once,
/// each a contiguous equal part (`pr_stream_sum`) run by the core's thread pool (`Parallel.units`),
/// timed by the wall clock.
public enum MemoryReadProbe {
    /// The rate of each timed pass, in GB/s (10⁹ bytes per second), after one untimed pass. The
    /// buffer, `megabytes` MiB (default 512: ≫ the 32–105 MiB L3s of the hosts measured), is
    /// written when allocated (so its pages are mapped) and freed before the call returns.
    /// `threads` parts run on `Parallel`'s threads (the run's `--threads`).
    /// Errors: none; `threads`, `megabytes` and `passes` below 1 count as 1.
    public static func gigabytesPerSecond(threads: Int, megabytes: Int = 512, passes: Int = 5) -> [Double] {
        let t = max(1, threads), n = max(1, megabytes) << 18   // floats: MiB · 2²⁰ / 4
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: n)
        defer { buffer.deallocate() }
        buffer.initialize(repeating: 1, count: n)
        let sums = UnsafeMutablePointer<Double>.allocate(capacity: t)
        defer { sums.deallocate() }
        func pass() -> Double {
            let start = DispatchTime.now().uptimeNanoseconds
            Parallel.units(t) { i in
                let lo = i * n / t, hi = (i + 1) * n / t
                sums[i] = pr_stream_sum(buffer + lo, hi - lo)
            }
            return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }
        _ = pass()
        return (0..<max(1, passes)).map { _ in Double(n * 4) / pass() / 1e9 }
    }

    /// Sum of `values` by the probe's read loop (`pr_stream_sum`); for tests.
    public static func sum(_ values: [Float]) -> Double {
        values.withUnsafeBufferPointer { $0.isEmpty ? 0 : pr_stream_sum($0.baseAddress!, $0.count) }
    }
}
