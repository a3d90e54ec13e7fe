// The only file that imports the CBLAS module (house style §3).
// Row-major single-precision GEMM through OpenBLAS with transpose flags (no materialised
// transposes), plus the naive oracle it is tested against.
import CBLAS

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
        let t = Parallel.threads
        if t <= 1 || Parallel.insideUnits || m * n * k < 1 << 21 {
            sgemmSerial(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
            return
        }
        if m >= 64 * t {
            Parallel.forRange(m, costPerItem: 1 << 20) { rows in
                let a0 = transA ? a + rows.lowerBound : a + rows.lowerBound * lda
                sgemmSerial(transA: transA, transB: transB, m: rows.count, n: n, k: k, alpha: alpha, a: a0, lda: lda, b: b, ldb: ldb,
                            beta: beta, c: c + rows.lowerBound * ldc, ldc: ldc)
            }
        } else {
            Parallel.forRange(n, costPerItem: 1 << 20) { cols in
                let b0 = transB ? b + cols.lowerBound * ldb : b + cols.lowerBound
                sgemmSerial(transA: transA, transB: transB, m: m, n: cols.count, k: k, alpha: alpha, a: a, lda: lda, b: b0, ldb: ldb,
                            beta: beta, c: c + cols.lowerBound, ldc: ldc)
            }
        }
    }

    @inline(__always)
    static func sgemmSerial(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        if m == 0 || n == 0 { return }
        if k == 0 {
            for i in 0..<m {
                let row = c + i * ldc
                if beta == 0 { for j in 0..<n { row[j] = 0 } } else { for j in 0..<n { row[j] *= beta } }
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
