import CGemm
import Support
@testable import Tensor
import XCTest

/// One-row products (m = 1, B not transposed) run `pr_sgemm_row`, which reads B in place; it must
/// give exactly the bits of the own kernel it replaces (packed B, register tile) for that kernel's
/// kc: edge widths around the 64-column chunk and its 8-lane vectors, k crossing kc (384 AVX-512,
/// 256 AVX2), A as a row or a strided column, alpha/beta, beta = 0 over NaN, nothing written past
/// the width.
final class RowProductTests: XCTestCase {
    func testRowProductIsBitIdenticalToTheOwnKernels() throws {
        let kernels = BLAS.availableKernels.filter { $0 != .openblas }
        try XCTSkipIf(kernels.isEmpty, "no own GEMM kernel runs on this CPU")
        var checked = 0
        for kernel in kernels {
            let bl = BLAS.blockings[kernel]!
            // Every ragged chunk width class: 1…8 vectors of 8 columns, the last full or masked.
            for n in [1, 7, 8, 9, 15, 16, 17, 24, 31, 33, 40, 47, 49, 56, 57, 63, 64, 65, 127, 128, 129, 200, 700] {
                for k in [1, 17, 64, 255, 256, 257, 383, 384, 385, 900] {
                    for transA in [false, true] {
                        for (alpha, beta): (Float, Float) in [(1, 0), (0.7, 0.5), (-1.3, 1)] {
                            let lda = transA ? 3 : 1, ldb = n + 5
                            let a = RNGKey(seed: UInt64(n * 1000 + k)).uniformArray(k * lda, lo: -1, hi: 1)
                            let b = RNGKey(seed: UInt64(n * 1000 + k + 7)).uniformArray(k * ldb, lo: -1, hi: 1)
                            // Eight guard values past c's n: a product that wrote beyond its width (a
                            // masked lane let through) would change them.
                            let c0 = (beta == 0 ? [Float](repeating: .nan, count: n) : RNGKey(seed: 99).uniformArray(n, lo: -1, hi: 1))
                                + [Float](repeating: 12345, count: 8)
                            var viaKernel = c0, viaRow = c0
                            viaKernel.withUnsafeMutableBufferPointer { pc in
                                if kernel == .avx512 {
                                    pr_sgemm_avx512(transA ? 1 : 0, 0, 1, n, k, alpha, a, transA ? lda : k, b, ldb, beta, pc.baseAddress!, n,
                                                    bl.mc, bl.kc, bl.nc)
                                } else {
                                    pr_sgemm_avx2(transA ? 1 : 0, 0, 1, n, k, alpha, a, transA ? lda : k, b, ldb, beta, pc.baseAddress!, n,
                                                  bl.mc, bl.kc, bl.nc)
                                }
                            }
                            viaRow.withUnsafeMutableBufferPointer { pc in
                                BLAS.withKernel(kernel) {
                                    BLAS.sgemmSerial(transA: transA, transB: false, m: 1, n: n, k: k, alpha: alpha, a: a, lda: transA ? lda : k,
                                                     b: b, ldb: ldb, beta: beta, c: pc.baseAddress!, ldc: n, own: true)
                                }
                            }
                            XCTAssertEqual(viaRow.map(\.bitPattern), viaKernel.map(\.bitPattern),
                                           "\(kernel) n\(n) k\(k) transA \(transA) alpha \(alpha) beta \(beta)")
                            checked += 1
                        }
                    }
                }
            }
        }
        XCTAssertGreaterThan(checked, 0)
    }
}
