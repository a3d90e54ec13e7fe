// The only file that imports the CBLAS module (house style §3) and PromptRepro's own AVX-512 and
// AVX2 GEMMs (Sources/CGemm). Row-major single-precision GEMM with transpose flags (no materialised
// transposes), plus the naive oracle every kernel is tested against.
import CBLAS
import CGemm
import Foundation

/// The kernel that runs `BLAS.sgemm`.
public enum GEMMKernel: String, CaseIterable, Codable, Sendable {
    /// OpenBLAS's cblas_sgemm, whichever core kernel OpenBLAS picked (or OPENBLAS_CORETYPE pinned).
    case openblas
    /// PromptRepro's AVX-512 kernel (Sources/CGemm/gemm.c, 12×32 tile); OpenBLAS keeps the products
    /// with fewer than 32 rows and a large B, where packing B would cost more than the product.
    case avx512
    /// PromptRepro's AVX2 + FMA kernel (Sources/CGemm/gemm_avx2.c, 6×16 tile) for CPUs without
    /// AVX-512; the same split with OpenBLAS as avx512, at 16 rows instead of 32 (`fewRows`).
    case avx2

    /// Register tile (rows, columns) and the fixed kc of an own kernel (GEMMBlocking.swift).
    public var tile: (mr: Int, nr: Int, kc: Int)? {
        switch self {
        case .openblas: return nil
        case .avx512: return (Int(PR_AVX512_MR), Int(PR_AVX512_NR), 384)
        case .avx2: return (Int(PR_AVX2_MR), Int(PR_AVX2_NR), 256)
        }
    }

    /// Floats op(B) (k×n) takes packed for this own kernel (`pr_sgemm_*_packed_size`: n rounded up
    /// to the tile's columns, times k); 0 for OpenBLAS, which packs internally.
    func packedFloats(n: Int, k: Int) -> Int {
        switch self {
        case .openblas: return 0
        case .avx512: return pr_sgemm_avx512_packed_size(n, k)
        case .avx2: return pr_sgemm_avx2_packed_size(n, k)
        }
    }
}

public enum BLAS {
    /// C[m×n] = alpha · op(A) · op(B) + beta · C, all row-major.
    /// op(A) is m×k (A stored k×m when `transA`), op(B) is k×n (B stored n×k when `transB`).
    /// OpenBLAS runs single-threaded; large products are split into row blocks (or column blocks
    /// when m is small) over the core's threads, so no spinning OpenBLAS pool competes with the
    /// core's own parallel loops for the same cores.
    public static func sgemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        if BF16Products.applies(transA: transA, m: m, k: k) {  // the opt-in bf16 evaluation mode
            BF16Products.run(spans: [0..<m], transB: transB, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                             beta: beta, c: c, ldc: ldc)
            return
        }
        pr_flops_add(Int64(2 * m * n * k))
        let t = Parallel.threads
        // The kernel is chosen from the whole product, so a split over threads never changes it.
        let own = usesOwnKernel(m: m, n: n, k: k, frozenB: { FrozenOperands.current?.holds(b, transB: transB, k: k, n: n, ldb: ldb) == true })
        if t <= 1 || Parallel.insideUnits || m * n * k < 1 << 21 {
            sgemmSerial(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc,
                        own: own)
            return
        }
        if m >= 64 * t {
            if own, let frozen = FrozenOperands.current,
               let bp = frozen.packedB(b, transB: transB, k: k, n: n, ldb: ldb, kernel: kernel, kc: blockings[kernel]!.kc) {
                // B's packed copy for the scope (made here, on this thread, at its second use): every
                // thread reads it (PackedOperands.swift; the same bits as packing on the fly).
                FrozenOperands.countPackedProduct()
                frozenRowSplitProducts += 1
                sgemmRowsPacked(transA: transA, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, packed: bp, beta: beta, c: c, ldc: ldc)
                return
            }
            if own, sgemmSharedB(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                                 b: b, ldb: ldb, beta: beta, c: c, ldc: ldc) {
                return
            }
            Parallel.forRange(m, costPerItem: 1 << 20) { rows in
                let a0 = transA ? a + rows.lowerBound : a + rows.lowerBound * lda
                sgemmSerial(transA: transA, transB: transB, m: rows.count, n: n, k: k, alpha: alpha, a: a0, lda: lda, b: b, ldb: ldb,
                            beta: beta, c: c + rows.lowerBound * ldc, ldc: ldc, own: own)
            }
        } else {
            func columns(_ cols: Range<Int>) {
                let b0 = transB ? b + cols.lowerBound * ldb : b + cols.lowerBound
                sgemmSerial(transA: transA, transB: transB, m: m, n: cols.count, k: k, alpha: alpha, a: a, lda: lda, b: b0, ldb: ldb,
                            beta: beta, c: c + cols.lowerBound, ldc: ldc, own: own)
            }
            if own, kernel.tile != nil {
                // Few rows (a decoding step's products, M = the batch): column chunks of whole
                // register tiles (`fewRowColumnBounds`), largest first, claimed by whichever thread
                // is free, so a vCPU that runs slower for a while takes fewer columns instead of the
                // other waiting for its half. With the own kernels a column's elements are the same
                // chains of FMAs wherever a chunk starts, and the bounds depend only on n, the tile
                // and the thread count (so a frozen weight's packed chunks are the same at every step).
                Parallel.forChunks(fewRowColumnBounds(n: n, kernel: kernel, threads: t), columns)
            } else {
                Parallel.forRange(n, costPerItem: 1 << 20, columns)
            }
        }
    }

    /// Row-split products that read a frozen B's packed copy (tests check the path ran).
    nonisolated(unsafe) static var frozenRowSplitProducts = 0

    /// Products that ran through `sgemmSharedB` in this process (tests check the path ran).
    nonisolated(unsafe) static var sharedPackedProducts = 0

    /// The row-split product with op(B) packed once for all threads: the threads pack disjoint
    /// column panels of it into one shared buffer, then each runs its rows against it
    /// (`pr_sgemm_*_packed`: the same kernel calls on the same values as packing on the fly, so
    /// the same bits). Without it every thread packs all of B, and again for every mc rows past the
    /// first. Returns false (nothing done) when the kernel is OpenBLAS or another thread holds the
    /// buffer; the caller then runs the per-thread path.
    static func sgemmSharedB(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) -> Bool {
        withSharedPackedB(transB: transB, n: n, k: k, b: b, ldb: ldb) { packed in
            sharedPackedProducts += 1
            sgemmRowsPacked(transA: transA, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, packed: packed, beta: beta, c: c, ldc: ldc)
        }
    }

    /// Rows `spans` of C = alpha · A · op(B) + beta · C (A not transposed, row-major; each span a
    /// range of rows of A and C), as `sgemm` over all the rows would give them: with the own kernels
    /// op(B) is packed once for all spans and shared by the threads (`sgemmSharedB`: the kernel
    /// calls, hence the bits, of the whole product), not again per span; otherwise one `sgemm` per
    /// span. The caller keeps the whole product on the own kernel (each span at least 32 rows, or
    /// B registered frozen), as `PaddedRows` does. FLOPs counted as the spans' products.
    static func sgemmRowSpans(_ spans: [Range<Int>], transB: Bool, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
                              b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        if BF16Products.applies(transA: false, m: spans.filter { !$0.isEmpty }.map(\.count).min() ?? 0, k: k) {
            BF16Products.run(spans: spans, transB: transB, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                             beta: beta, c: c, ldc: ldc)
            return
        }
        let shared = withSharedPackedB(transB: transB, n: n, k: k, b: b, ldb: ldb) { packed in
            for r in spans where !r.isEmpty {
                pr_flops_add(Int64(2 * r.count * n * k))
                sgemmRowsPacked(transA: false, m: r.count, n: n, k: k, alpha: alpha, a: a + r.lowerBound * lda, lda: lda,
                                packed: packed, beta: beta, c: c + r.lowerBound * ldc, ldc: ldc)
            }
        }
        if shared { return }
        for r in spans where !r.isEmpty {
            sgemm(transA: false, transB: transB, m: r.count, n: n, k: k, alpha: alpha, a: a + r.lowerBound * lda, lda: lda,
                  b: b, ldb: ldb, beta: beta, c: c + r.lowerBound * ldc, ldc: ldc)
        }
    }

    /// Packs op(B) (k×n) for the selected own kernel into the shared buffer, the threads taking
    /// disjoint column panels, and runs `body` on it. Returns false (nothing done) when the kernel
    /// is OpenBLAS, op(B) exceeds `SharedPackBuffer.maxFloats` or another thread holds the buffer.
    private static func withSharedPackedB(transB: Bool, n: Int, k: Int, b: UnsafePointer<Float>, ldb: Int,
                                          _ body: (UnsafePointer<Float>) -> Void) -> Bool {
        let kern = kernel
        guard k > 0, n > 0, kern != .openblas, let t = kern.tile, let bl = blockings[kern] else { return false }
        let floats = kern.packedFloats(n: n, k: k)
        guard floats <= SharedPackBuffer.maxFloats, let buffer = SharedPackBuffer.acquire(floats: floats) else { return false }
        defer { SharedPackBuffer.release() }
        let panels = (n + t.nr - 1) / t.nr
        Parallel.forRange(panels, costPerItem: k * t.nr) { r in
            if kern == .avx512 {
                pr_sgemm_avx512_pack_b_cols(transB ? 1 : 0, n, k, b, ldb, bl.kc, r.lowerBound * t.nr, r.upperBound * t.nr, buffer)
            } else {
                pr_sgemm_avx2_pack_b_cols(transB ? 1 : 0, n, k, b, ldb, bl.kc, r.lowerBound * t.nr, r.upperBound * t.nr, buffer)
            }
        }
        body(UnsafePointer(buffer))
        return true
    }

    /// The rows of op(A) split over the threads, each run against op(B) already packed for the
    /// selected own kernel (`pr_sgemm_*_packed`).
    static func sgemmRowsPacked(transA: Bool, m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
                                packed: UnsafePointer<Float>, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        let kern = kernel
        guard let bl = blockings[kern] else { preconditionFailure("own GEMM kernel requested while kernel is \(kern)") }
        // B is packed already, so a chunk of rows costs no packing of B, only one more pass over
        // it (from L3 when it exceeds L2): the rows go in guided chunks of whole register tiles,
        // largest first, claimed by whichever thread is free, so a slower core (a busy KVM vCPU)
        // takes fewer rows and the threads end within a small chunk of each other. A chunk has at
        // least 16 rows, so that each pass over B feeds ≥ 32 FLOPs per element read from L3, or 64
        // rows when the packed B exceeds half the L3 (a vocabulary-sized head: its passes come from
        // memory). Where the boundaries fall never changes the bits (each element of C is the same
        // chain of FMAs).
        let mr = kern.tile!.mr
        let minRows = kern.packedFloats(n: n, k: k) * 4 <= CacheInfo.host.l3 / 2 ? 16 : 64
        Parallel.forRangeGuided(m, quantum: mr, minQuanta: (minRows + mr - 1) / mr) { rows in
            let a0 = transA ? a + rows.lowerBound : a + rows.lowerBound * lda
            let c0 = c + rows.lowerBound * ldc
            if kern == .avx512 {
                pr_sgemm_avx512_packed(transA ? 1 : 0, rows.count, n, k, alpha, a0, lda, packed, beta, c0, ldc, bl.mc, bl.kc, bl.nc)
            } else {
                pr_sgemm_avx2_packed(transA ? 1 : 0, rows.count, n, k, alpha, a0, lda, packed, beta, c0, ldc, bl.mc, bl.kc, bl.nc)
            }
        }
    }

    /// FLOPs of every product `sgemm` ran in this process so far, from any thread: 2·m·n·k each
    /// (a multiply and an add per term; alpha, beta and element-wise ops are not counted). The
    /// difference around a region is that region's matrix-product work (`Training/Efficiency.swift`).
    public static var flops: Int { Int(pr_flops_read()) }

    /// AVX-512 F/VL/DQ/BW present and enabled by the OS.
    public static let avx512Available = pr_gemm_avx512_available() != 0
    /// AVX2 and FMA present and enabled by the OS.
    public static let avx2Available = pr_gemm_avx2_available() != 0

    /// Whether this CPU can run `k`.
    public static func available(_ k: GEMMKernel) -> Bool {
        switch k {
        case .openblas: return true
        case .avx512: return avx512Available
        case .avx2: return avx2Available
        }
    }

    /// The kernels this CPU can run, OpenBLAS first (tests run each).
    public static var availableKernels: [GEMMKernel] { GEMMKernel.allCases.filter(available) }

    /// The kernel `auto` picks: avx512, else avx2, else openblas.
    public static let autoKernel: GEMMKernel = avx512Available ? .avx512 : avx2Available ? .avx2 : .openblas

    /// The kernel in use: `autoKernel` unless the caller picks one (`kernel(named:)`; the CLI reads
    /// PROMPTREPRO_GEMM). Results are bit-identical for a given kernel and thread count (the own
    /// kernels' kc is fixed, see GEMMBlocking.swift); kernels differ in the last bits, so compare
    /// runs made with the same one.
    nonisolated(unsafe) public static var kernel: GEMMKernel = autoKernel

    /// The kernel a setting names: auto, openblas, avx512 or avx2. Throws with what to do when the
    /// name is unknown or the CPU lacks the instructions.
    public static func kernel(named value: String) throws -> GEMMKernel {
        if value == "auto" || value.isEmpty { return autoKernel }
        guard let k = GEMMKernel(rawValue: value) else {
            throw TensorError.invalidArgument(op: "GEMM kernel", detail: "'\(value)' is not a kernel; use auto, openblas, avx512 or avx2")
        }
        guard available(k) else {
            let needs = k == .avx512 ? "AVX-512 F/VL/DQ/BW" : "AVX2 and FMA"
            throw TensorError.invalidArgument(op: "GEMM kernel", detail: "\(value) requested but this CPU (or OS) lacks \(needs); use auto or openblas")
        }
        return k
    }

    /// Runs `body` with `kernel` set to `k` (tests, benchmarks), restoring the previous kernel.
    public static func withKernel<T>(_ k: GEMMKernel, _ body: () throws -> T) rethrows -> T {
        precondition(available(k), "GEMM kernel \(k) requested on a CPU without its instructions")
        let saved = kernel
        kernel = k
        defer { kernel = saved }
        return try body()
    }

    /// Blocking of each own kernel, derived once from this host's caches (GEMMBlocking.swift).
    /// Settable for tests and benchmarks; mc and nc never change results, kc does.
    nonisolated(unsafe) public static var blockings: [GEMMKernel: GEMMBlocking] = {
        var out: [GEMMKernel: GEMMBlocking] = [:]
        for k in GEMMKernel.allCases { if let t = k.tile { out[k] = .derive(mr: t.mr, nr: t.nr, kc: t.kc, caches: .host) } }
        return out
    }()

    /// The blocking the selected kernel runs with (nil for openblas).
    public static var blocking: GEMMBlocking? { blockings[kernel] }

    /// For run records and benchmarks: "mc 4092 kc 384 nc 672 (L1d 48 KiB, …)", or "openblas".
    public static var blockingDescription: String {
        blocking.map { "\($0.description) (\(CacheInfo.host.description))" } ?? "openblas"
    }

    /// The host calibration applied at start-up (`GEMMCalibration.apply`), nil when none was.
    nonisolated(unsafe) public static var calibrated: GEMMCalibration?

    /// For run records and benchmarks: the kernel, its blocking and OpenBLAS's version and core
    /// ("promptrepro avx512 12x32 mc 4092 kc 384 nc 160 + openblas 0.3.21 Cooperlake"), and
    /// "(calibrated)" when a host calibration chose them. OpenBLAS's version is in it because
    /// the products OpenBLAS takes (few rows, or every product under the `openblas` kernel)
    /// change bits with its release as with its core.
    public static var kernelDescription: String {
        let mark = calibrated != nil ? " (calibrated)" : ""
        let openblas = "openblas \(openBLASVersion.map { "\($0) " } ?? "")\(coreName)"
        guard let b = blocking, let t = kernel.tile else { return "\(openblas)\(mark)" }
        return "promptrepro \(kernel.rawValue) \(t.mr)x\(t.nr) \(b.description) + \(openblas)\(mark)"
    }

    /// OpenBLAS's release from its build string ("OpenBLAS 0.3.21 NO_LAPACKE …" → "0.3.21"), nil
    /// where the string does not start that way.
    public static var openBLASVersion: String? { openBLASVersion(config: config) }

    /// The release in an OpenBLAS build string (`openblas_get_config()`): the word after
    /// "OpenBLAS" when it starts with a digit, else nil.
    public static func openBLASVersion(config: String) -> String? {
        let words = config.split(separator: " ")
        guard words.count > 1, words[0] == "OpenBLAS", words[1].first?.isNumber == true else { return nil }
        return String(words[1])
    }

    /// Whether `sgemm` of this size runs the selected own kernel: always, except products with
    /// fewer than `fewRows` rows and a large B that is not a frozen operand, where OpenBLAS has an
    /// AVX2 or AVX-512 kernel. A frozen B (`frozenB`: it lies in a `FrozenOperands` scope's tensors,
    /// as the LM head's weight does while decoding) is packed once and read packed, so the own
    /// kernel runs (OpenBLAS 0.3.21 on a CPU it does not know runs its SSE kernel at a fifth of our
    /// rate). Where OpenBLAS runs a generic kernel (`openBLASHasFastKernel` false: Debian's 0.3.21
    /// on a CPU it does not know falls back to its SSE `Prescott` kernel, ≈ 30 GFLOP/s on a core
    /// where ours runs ≈ 150), the own kernel takes these products too, packing B on the fly included.
    @inline(__always)
    static func usesOwnKernel(m: Int, n: Int, k: Int, frozenB: () -> Bool = { false }) -> Bool {
        kernel != .openblas && (m >= fewRows(kernel) || n * k < 1 << 20 || !openBLASHasFastKernel || frozenB())
    }

    /// Rows from which a product with a large B (n·k ≥ 2²⁰) runs the own kernel `kern` even where
    /// OpenBLAS has a fast core: 16 for the AVX2 kernel, 32 otherwise. Both sides pack B at such
    /// shapes (OpenBLAS 0.3.21's Haswell and Zen cores have no small-matrix path). Measured on AMD
    /// Zen 1 only (family 23 model 1, OpenBLAS `Zen`, 2 threads, `bench-gemm`, 2026-12-04): at 16
    /// and 24 rows × {32128 × 512, 2048 × 512, 512 × 2048, 512 × 32128 (nn)} (the LM head and
    /// decoder products of a training step) ours ran 34–54 GFLOP/s against OpenBLAS's 20–37; at
    /// 1–8 rows neither side won at every shape (ours 0.77–1.38×), so those stay with OpenBLAS.
    /// Other AVX2 hosts (Zen 2/3, Intel Haswell and later) take the rule without a measurement of
    /// their own: their OpenBLAS cores are the same Haswell/Zen code. AVX-512 hosts keep 32: their
    /// OpenBLAS cores (SkylakeX, Cooperlake) were not measured against ours at few rows.
    /// Never above 32, so every "at least 32 rows run the own kernel" rule elsewhere still holds.
    @inline(__always)
    public static func fewRows(_ kern: GEMMKernel) -> Int { kern == .avx2 ? 16 : 32 }

    /// The smallest chunk, in columns, that `fewRowColumnBounds` hands out (only the last one, the
    /// remainder, may be narrower): 64 for the AVX2 kernel, 256 otherwise. With 256, a decoding
    /// step's 512-column products on t5-small (q, k, v, o, the FFN's wo) went in two chunks, one
    /// per thread, so a vCPU running slower for a while held the other waiting at the end of each
    /// product; from 64 columns the guided chunks (128, 96, 80, 64, 64, 64, 16 for n = 512) let
    /// the faster thread take more. Measured on AMD Zen 1 only (family 23 model 1, 2 threads,
    /// 2026-12-04): in one process, greedy decodes of 56 rows × 64 tokens alternating between the
    /// two settings, the 512-column products' wall time was 0.91× (median of 12 pairs, 10 of them
    /// faster), the 2048-column ones' 0.98× and the LM head's 0.97×; a C harness of the same packed
    /// chunks gave 1.04–1.10× the GFLOP/s at n = 512 and none at n = 2048. AVX-512 hosts keep 256:
    /// not measured there. Chunk bounds never change bits (see `sgemm`).
    @inline(__always)
    public static func fewRowColumnChunk(_ kern: GEMMKernel) -> Int { kern == .avx2 ? 64 : 256 }

    /// The column chunks `sgemm` splits a product of fewer than 64 rows per thread into
    /// (`threads` > 1, own kernel `kern`): `Parallel.guidedBounds` over n columns in quanta of the
    /// register tile's width, at least `fewRowColumnChunk(kern)` columns a chunk. Bounds ascending
    /// from 0 to n.
    public static func fewRowColumnBounds(n: Int, kernel kern: GEMMKernel, threads: Int) -> [Int] {
        let nr = kern.tile?.nr ?? 1
        return Parallel.guidedBounds(n, quantum: nr, minQuanta: max(1, fewRowColumnChunk(kern) / nr), threads: threads)
    }

    /// Whether OpenBLAS's core kernel (`coreName`) uses AVX2 + FMA or AVX-512: the cores of
    /// OpenBLAS's DYNAMIC_ARCH x86-64 list that have such SGEMM kernels. Any other core (Prescott,
    /// Core2, Nehalem, Sandybridge, Opteron, Bulldozer, …) runs SSE or AVX without FMA.
    static func isFastOpenBLASCore(_ name: String) -> Bool {
        ["haswell", "skylakex", "cooperlake", "sapphirerapids", "zen"].contains(name.lowercased())
    }

    /// `isFastOpenBLASCore(coreName)`, read once.
    static let openBLASHasFastKernel = isFastOpenBLASCore(coreName)

    /// One thread's product: `own` true runs the selected own kernel (`kernel` must be avx512 or
    /// avx2), false OpenBLAS, nil decides from this call's size as `sgemm` does.
    @inline(__always)
    public static func sgemmSerial(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, own: Bool? = nil
    ) {
        if m == 0 || n == 0 { return }
        if k == 0 {
            for i in 0..<m {
                let row = c + i * ldc
                if beta == 0 { for j in 0..<n { row[j] = 0 } } else { for j in 0..<n { row[j] *= beta } }
            }
            return
        }
        if own ?? usesOwnKernel(m: m, n: n, k: k) {
            let kern = kernel
            guard let bl = blockings[kern] else { preconditionFailure("own GEMM kernel requested while kernel is \(kern)") }
            if m == 1 && !transB {
                // One row of A: B's rows read in place, the kernels' operations exactly (gemm_row.c).
                pr_sgemm_row(transA ? 1 : 0, n, k, alpha, a, lda, b, ldb, beta, c, bl.kc)
                return
            }
            if let frozen = FrozenOperands.current,
               let bp = frozen.packedB(b, transB: transB, k: k, n: n, ldb: ldb, kernel: kern, kc: bl.kc) {
                // B packed once for the scope (PackedOperands.swift): the same kernel calls, the same bits.
                FrozenOperands.countPackedProduct()
                if kern == .avx512 {
                    pr_sgemm_avx512_packed(transA ? 1 : 0, m, n, k, alpha, a, lda, bp, beta, c, ldc, bl.mc, bl.kc, bl.nc)
                } else {
                    pr_sgemm_avx2_packed(transA ? 1 : 0, m, n, k, alpha, a, lda, bp, beta, c, ldc, bl.mc, bl.kc, bl.nc)
                }
                return
            }
            if kern == .avx512 {
                precondition(avx512Available, "AVX-512 GEMM kernel called on a CPU without AVX-512")
                pr_sgemm_avx512(transA ? 1 : 0, transB ? 1 : 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, bl.mc, bl.kc, bl.nc)
            } else {
                precondition(avx2Available, "AVX2 GEMM kernel called on a CPU without AVX2 and FMA")
                pr_sgemm_avx2(transA ? 1 : 0, transB ? 1 : 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, bl.mc, bl.kc, bl.nc)
            }
            return
        }
        cblas_sgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Oracle for `sgemm`: the textbook triple loop, accumulated in Double.
    public static func sgemmNaive(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        for i in 0..<m {
            for j in 0..<n {
                var acc = 0.0
                for p in 0..<k {
                    let av = transA ? a[p * lda + i] : a[i * lda + p]
                    let bv = transB ? b[j * ldb + p] : b[p * ldb + j]
                    acc += Double(av) * Double(bv)
                }
                let prev = beta == 0 ? 0 : Double(beta) * Double(c[i * ldc + j])
                c[i * ldc + j] = Float(Double(alpha) * acc + prev)
            }
        }
    }

    /// y += alpha · x (length n, unit strides).
    @inline(__always)
    public static func axpy(_ n: Int, _ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        cblas_saxpy(Int32(n), alpha, x, 1, y, 1)
    }

    /// Raw OpenBLAS with its own thread pool of `threads` (the benchmark's reference), restoring 1 after.
    public static func sgemmOpenBLASThreaded(threads: Int, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                                             c: UnsafeMutablePointer<Float>) {
        openblas_set_num_threads(Int32(threads))
        defer { openblas_set_num_threads(1) }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k), 1, a, Int32(k), b, Int32(k), 0, c, Int32(n))
    }

    /// OpenBLAS's own pool stays at one thread; `sgemm` parallelises on the core's threads.
    static func setThreads(_ n: Int) { openblas_set_num_threads(1) }
    public static var threads: Int { Int(openblas_get_num_threads()) }
    /// OpenBLAS build string and the kernel chosen for this CPU, for run records and benchmarks.
    public static var config: String { String(cString: openblas_get_config()) }
    public static var coreName: String { String(cString: openblas_get_corename()) }
}

/// The instruction set the Swift code was compiled for (Package.swift picks it from the build host).
public enum BuildISA {
    #if TARGET_HASWELL
    public static let name = "x86-64 haswell (AVX2, FMA)"
    #else
    public static let name = "baseline"
    #endif
}

/// The buffer `BLAS.sgemmSharedB` packs into: one per process, grown on demand and kept (a fresh
/// allocation per product would page-fault its whole size every time). One product holds it at a
/// time; a concurrent one finds it taken and packs per thread instead.
enum SharedPackBuffer {
    nonisolated(unsafe) private static var data: UnsafeMutablePointer<Float>?
    nonisolated(unsafe) private static var capacity = 0
    /// Largest B shared this way: 8 Mi floats (32 MB; every T5 weight up to t5-large's 4096 × 1024
    /// fits). A larger B (GPT-2's 50257 × 768 tied LM head over every position) packs per thread
    /// rather than keep a copy of that size for the process's lifetime.
    static let maxFloats = 8 << 20
    private static let lock = NSLock()

    /// The buffer with room for `floats` floats (64-byte aligned), or nil when it is in use or
    /// cannot be allocated. Pair with `release()`.
    static func acquire(floats: Int) -> UnsafeMutablePointer<Float>? {
        guard lock.try() else { return nil }
        if capacity < floats {
            free(data)
            data = nil
            capacity = 0
            guard let raw = aligned_alloc(64, (floats * 4 + 63) / 64 * 64) else { lock.unlock(); return nil }
            data = raw.bindMemory(to: Float.self, capacity: floats)
            capacity = floats
        }
        return data
    }

    static func release() { lock.unlock() }
}
