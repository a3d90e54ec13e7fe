// One thread setting for OpenBLAS and the core's own loops: `--threads`, env PROMPTREPRO_THREADS,
// default = number of cores. Work is split into a fixed number of chunks that depends only on the
// problem size and the thread count, so results are bit-identical for a given thread count.
import CGemm
import Dispatch
import Foundation
import Support

public enum Parallel {
    nonisolated(unsafe) public private(set) static var threads: Int = {
        let n = Parallel.defaultThreads()
        BLAS.setThreads(n)
        return n
    }()

    /// The thread count when none is given: `preferredThreads` (the CLI sets it from
    /// PROMPTREPRO_THREADS), else env PROMPTREPRO_THREADS when it is a positive integer, else the
    /// core count. Reading the variable here too lets a library user or the test suite run as on a
    /// host with another core count (`make test-threads`); the CLI rejects a value that is not a
    /// positive integer before anything runs, and here such a value is ignored. The core count is
    /// the CPUs this process may use (`HostResources.cpus`: the affinity mask and a cgroup quota,
    /// not the machine's count, which ran two spinning threads on one allowed CPU).
    nonisolated(unsafe) public static var preferredThreads: Int?

    /// The most threads a process runs: the spinning pool's 255 workers and the calling thread
    /// (`MAX_WORKERS`, Sources/CGemm/parallel_pool.c). The CLI refuses more; a larger count given
    /// here is clamped to it (2⁶⁰ overflowed the chunk count, ran no work and read as a diverged run).
    public static let maxThreads = 256

    public static func defaultThreads() -> Int {
        defaultThreads(environment: ProcessInfo.processInfo.environment, cores: HostResources.cpus)
    }

    /// `defaultThreads()` for a given environment and core count (testable without the process's);
    /// `clamped: false` leaves out the `maxThreads` limit of one process (a sweep's total over its
    /// worker processes).
    static func defaultThreads(environment: [String: String], cores: Int, clamped: Bool = true) -> Int {
        let limit = clamped ? maxThreads : Int.max
        if let n = preferredThreads, n > 0 { return min(n, limit) }
        if let v = environment["PROMPTREPRO_THREADS"], let n = Int(v), n > 0 { return min(n, limit) }
        return min(max(1, cores), limit)
    }

    /// The threads of all processes together when none is given (a sweep's total, shared by its
    /// workers): `defaultThreads()` without the one-process limit, so a host with more than
    /// `maxThreads` CPUs is used whole.
    public static func defaultTotalThreads() -> Int {
        defaultThreads(environment: ProcessInfo.processInfo.environment, cores: HostResources.cpus, clamped: false)
    }

    /// Sets both OpenBLAS's and the core's thread count.
    public static func configure(threads: Int?) {
        let n = min(max(1, threads ?? defaultThreads()), maxThreads)
        Parallel.threads = n
        BLAS.setThreads(n)
    }

    /// True on threads running `units` work (nested GEMMs there stay serial).
    nonisolated(unsafe) static var unitsDepth = 0
    static var insideUnits: Bool { unitsDepth > 0 }

    /// Runs `body` over `0..<count` split into contiguous chunks, one per thread, when the
    /// work is large enough (`count * costPerItem` ≥ 32k); otherwise serially.
    @inline(__always)
    public static func forRange(_ count: Int, costPerItem: Int = 1, _ body: (Range<Int>) -> Void) {
        let t = threads
        if t <= 1 || count < 2 || count * costPerItem < 32_768 {
            body(0..<count)
            return
        }
        let chunks = min(t, count)
        run(chunks) { c in
            let lo = c * count / chunks, hi = (c + 1) * count / chunks
            if lo < hi { body(lo..<hi) }
        }
    }

    /// `forRange` over each of `ranges` in turn (rows of a flat index space, e.g. the marked rows
    /// of `GradientRows`), `body` getting absolute sub-ranges.
    public static func forRanges(_ ranges: [Range<Int>], costPerItem: Int = 1, _ body: (Range<Int>) -> Void) {
        for r in ranges {
            forRange(r.count, costPerItem: costPerItem) { part in
                body((r.lowerBound + part.lowerBound)..<(r.lowerBound + part.upperBound))
            }
        }
    }

    /// Runs independent work units (e.g. (batch, head) pairs) on the core's threads; GEMMs inside
    /// them run serially. The units go in up to 8 contiguous runs per thread, each claimed by
    /// whichever thread is free (units differ in cost, e.g. attention over rows of different real
    /// lengths, and a KVM guest's vCPUs in speed; runs rather than single units, because a decoding
    /// step's units take a microsecond or two and every claim is an atomic shared by the threads),
    /// so `body` must not depend on which thread runs a unit or on which units it ran before.
    public static func units(_ count: Int, _ body: (Int) -> Void) {
        // Nested (inside another call's units, on whichever thread runs them): in order on this
        // thread, as the pool would run them, without touching the counter that only the
        // outermost call, on the calling thread, sets and clears.
        if insideUnits {
            for i in 0..<count { body(i) }
            return
        }
        let t = threads
        unitsDepth += 1
        defer { unitsDepth -= 1 }
        if t <= 1 || count < 2 {
            for i in 0..<count { body(i) }
            return
        }
        let chunks = min(count, 8 * t, Int(PR_POOL_MAX_CHUNKS))
        run(chunks) { c in
            let lo = c * count / chunks, hi = (c + 1) * count / chunks
            for i in lo..<hi { body(i) }
        }
    }

    /// `units` for a throwing body: once a unit has thrown, the units not yet started are skipped;
    /// after all have returned, the error of the lowest-numbered unit that threw is rethrown.
    public static func unitsThrowing(_ count: Int, _ body: (Int) throws -> Void) throws {
        let lock = NSLock()
        var failure: (unit: Int, error: Error)?
        units(count) { i in
            lock.lock()
            let failed = failure != nil
            lock.unlock()
            if failed { return }
            do { try body(i) } catch {
                lock.lock()
                if failure == nil || i < failure!.unit { failure = (i, error) }
                lock.unlock()
            }
        }
        if let failure { throw failure.error }
    }

    /// Runs `body` over `0..<count` in contiguous chunks claimed one at a time by whichever thread
    /// is free, largest first (`guidedBounds`): a slower or preempted core takes fewer items, and the
    /// last chunks are small, so the threads finish close together. Only for work whose result does
    /// not depend on where a chunk boundary falls (a GEMM split by rows: every element of C is the
    /// same chain of FMAs however the rows are split); other loops use `forRange`, whose boundaries
    /// depend only on the size and the thread count. Serial when one thread or one chunk.
    public static func forRangeGuided(_ count: Int, quantum: Int, minQuanta: Int, _ body: (Range<Int>) -> Void) {
        let t = threads
        forChunks(t <= 1 ? [0, count] : guidedBounds(count, quantum: quantum, minQuanta: minQuanta, threads: t), body)
    }

    /// `body` over the chunks bounds[c] ..< bounds[c + 1] (`bounds` ascending from 0 to the count,
    /// as `guidedBounds` gives them), claimed in order by whichever thread is free.
    public static func forChunks(_ bounds: [Int], _ body: (Range<Int>) -> Void) {
        let count = bounds.last ?? 0
        if bounds.count <= 2 {
            body(0..<count)
            return
        }
        if bounds.count - 1 > Int(PR_POOL_MAX_CHUNKS) {  // more than the pool spreads: one chunk per thread
            forRange(count, costPerItem: 1 << 20, body)
            return
        }
        run(bounds.count - 1) { c in body(bounds[c]..<bounds[c + 1]) }
    }

    /// Guided self-scheduling's chunk boundaries (Polychronopoulos & Kuck, 1987): 0, …, `count`,
    /// each chunk a whole number of `quantum` items (the last may be short) and, in quanta,
    /// ⌈remaining / (2 · threads)⌉ but at least `minQuanta`. E.g. 60 quanta, 2 threads, at least 2:
    /// 15, 12, 9, 6, 5, 4, 3, 2, 2, 2. Depends only on its arguments.
    public static func guidedBounds(_ count: Int, quantum: Int, minQuanta: Int, threads: Int) -> [Int] {
        let q = max(1, quantum), t = max(1, threads), quanta = (max(0, count) + q - 1) / q
        var bounds = [0], done = 0
        while done < quanta {
            let left = quanta - done
            done += min(left, max(max(1, minQuanta), (left + 2 * t - 1) / (2 * t)))
            bounds.append(min(count, done * q))
        }
        if bounds.count == 1 { bounds.append(0) }
        return bounds
    }

    /// Which threads run the chunks of `forRange`, `units` and `forRangeGuided`: the spinning pool
    /// (`pr_pool_run`, Sources/CGemm/parallel_pool.c; default) or libdispatch's concurrentPerform
    /// (PROMPTREPRO_POOL=dispatch, for comparison). The chunks, hence the bits, are the same.
    nonisolated(unsafe) public static var usesSpinningPool = ProcessInfo.processInfo.environment["PROMPTREPRO_POOL"] != "dispatch"

    /// body(c) for c in 0 ..< chunks, on up to `threads` threads; returns when all are done.
    static func run(_ chunks: Int, _ body: (Int) -> Void) {
        guard usesSpinningPool else {
            DispatchQueue.concurrentPerform(iterations: chunks, execute: body)
            return
        }
        withoutActuallyEscaping(body) { body in
            var job = body
            withUnsafeMutablePointer(to: &job) { p in
                pr_pool_run(chunks, threads, { ctx, c in
                    ctx!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(c)
                }, p)
            }
        }
    }
}
