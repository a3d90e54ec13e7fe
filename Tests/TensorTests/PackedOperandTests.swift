import Support
@testable import Tensor
import XCTest

/// Frozen operands packed once (Sources/Tensor/PackedOperands.swift): a product whose B lies in a
/// registered tensor reads a packed copy from its second use on, and must give exactly the bits of
/// packing on the fly (the default path, itself checked against the naive oracle in GEMMTests).
final class PackedOperandTests: XCTestCase {
    /// Every own kernel, its derived blocking and a small one whose nc is not a multiple of the tile
    /// (blocks of the packed B must still start on its panels), shapes crossing kc and nc, ragged
    /// tiles, all transposes, alpha/beta, B at an offset inside the registered tensor, one and two
    /// threads (the threaded split packs each part separately): every output bit equal.
    func testPackedFrozenBIsBitIdenticalToPackingOnTheFly() throws {
        let kernels = BLAS.availableKernels.filter { $0 != .openblas }
        try XCTSkipIf(kernels.isEmpty, "no own GEMM kernel runs on this CPU")
        let savedBlockings = BLAS.blockings, savedThreads = Parallel.threads
        defer { BLAS.blockings = savedBlockings; Parallel.configure(threads: savedThreads) }
        var packedUses = 0
        for kernel in kernels {
            let t = kernel.tile!
            for blocking in [BLAS.blockings[kernel]!, GEMMBlocking(mc: 4 * t.mr, kc: 40, nc: 4 * t.nr + 5)] {
                BLAS.blockings[kernel] = blocking
                for threads in [1, 2] {
                    Parallel.configure(threads: threads)
                    for (m, n, k) in [(1, 1, 1), (8, 200, 512), (56, 700, 96), (13, 33, 17), (37, 3100, 53), (130, 129, 450), (300, 70, 90)] {
                        for ta in [false, true] {
                            for tb in [false, true] {
                                for (alpha, beta): (Float, Float) in [(1, 0), (0.7, 0.5)] {
                                    let (same, used) = BLAS.withKernel(kernel) {
                                        packedMatchesOnTheFly(m: m, n: n, k: k, ta: ta, tb: tb, alpha: alpha, beta: beta)
                                    }
                                    packedUses += used
                                    XCTAssertTrue(same, "\(kernel) \(blocking.description) threads \(threads) m\(m) n\(n) k\(k) tA\(ta) tB\(tb) alpha\(alpha) beta\(beta)")
                                }
                            }
                        }
                    }
                }
            }
        }
        XCTAssertGreaterThan(packedUses, 0, "no product read a packed operand: the packed path was not exercised")
    }

    /// C from the plain product, then from the same product run three times inside a scope that
    /// registers B's tensor (the first use packs nothing, later ones read the packed copy).
    /// Returns whether all three scoped results equal the plain one bit for bit, and how many
    /// products read a packed B.
    func packedMatchesOnTheFly(m: Int, n: Int, k: Int, ta: Bool, tb: Bool, alpha: Float, beta: Float) -> (Bool, Int) {
        let lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 5, ldc = n + 2, offset = 7
        let a = RNGKey(seed: 21).uniformArray((ta ? k : m) * lda, lo: -1, hi: 1)
        let bTensor = Tensor(shape: [offset + (tb ? n : k) * ldb], values: RNGKey(seed: 22).uniformArray(offset + (tb ? n : k) * ldb, lo: -1, hi: 1))
        let c0 = beta == 0 ? [Float](repeating: .nan, count: m * ldc) : RNGKey(seed: 23).uniformArray(m * ldc, lo: -1, hi: 1)
        func product(_ c: inout [Float]) {
            a.withUnsafeBufferPointer { pa in
                c.withUnsafeMutableBufferPointer { pc in
                    BLAS.sgemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: alpha, a: pa.baseAddress!, lda: lda,
                               b: bTensor.data + offset, ldb: ldb, beta: beta, c: pc.baseAddress!, ldc: ldc)
                }
            }
        }
        var plain = c0
        product(&plain)
        let before = FrozenOperands.productsFromPacked
        var same = true
        FrozenOperands.scope([bTensor]) { _ in
            for _ in 0..<3 {
                var c = c0
                product(&c)
                same = same && zip(c, plain).allSatisfy { $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN) }
            }
        }
        return (same, FrozenOperands.productsFromPacked - before)
    }

    /// Only registered memory is packed; a released tensor's packed copies are freed; an inner scope
    /// adds to the running one and removes what it added; the switch turns packing off.
    func testScopeRegistrationReleaseAndSwitch() throws {
        let kernels = BLAS.availableKernels.filter { $0 != .openblas }
        try XCTSkipIf(kernels.isEmpty, "no own GEMM kernel runs on this CPU")
        let (m, n, k) = (40, 96, 64)
        let a = Tensor(shape: [m, k], values: RNGKey(seed: 31).uniformArray(m * k, lo: -1, hi: 1))
        let w = Tensor(shape: [n, k], values: RNGKey(seed: 32).uniformArray(n * k, lo: -1, hi: 1))
        let other = Tensor(shape: [n, k], values: RNGKey(seed: 33).uniformArray(n * k, lo: -1, hi: 1))
        let c = Tensor(zeros: [m, n])
        func product(_ b: Tensor) {
            BLAS.sgemm(transA: false, transB: true, m: m, n: n, k: k, alpha: 1, a: a.data, lda: k, b: b.data, ldb: k, beta: 0, c: c.data, ldc: n)
        }
        try BLAS.withKernel(kernels[0]) {
            FrozenOperands.scope([w]) { frozen in
                for _ in 0..<2 { product(other) }
                XCTAssertEqual(frozen.packedCount, 0, "an unregistered operand was packed")
                product(w)
                XCTAssertEqual(frozen.packedCount, 0, "packed on the first use")
                product(w)
                XCTAssertGreaterThanOrEqual(frozen.packedCount, n * k, "not packed on the second use")
                FrozenOperands.scope([other]) { inner in
                    XCTAssertTrue(inner === frozen, "an inner scope must join the running one")
                    for _ in 0..<2 { product(other) }
                    XCTAssertGreaterThanOrEqual(frozen.packedCount, 2 * n * k)
                }
                XCTAssertLessThan(frozen.packedCount, 2 * n * k, "the inner scope's tensor was not released")
                frozen.release(w)
                XCTAssertEqual(frozen.packedCount, 0, "release left packed copies")
            }
            let saved = FrozenOperands.isEnabled
            FrozenOperands.isEnabled = false
            defer { FrozenOperands.isEnabled = saved }
            let before = FrozenOperands.productsFromPacked
            FrozenOperands.scope([w]) { _ in for _ in 0..<3 { product(w) } }
            XCTAssertEqual(FrozenOperands.productsFromPacked, before, "packing ran while switched off")
        }
    }
}
