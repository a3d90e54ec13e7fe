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
        let kernels = try ownKernelsOrSkip()
        let savedBlockings = BLAS.blockings, savedThreads = Parallel.threads
        defer { BLAS.blockings = savedBlockings; Parallel.configure(threads: savedThreads) }
        var packedUses = 0
        let rowSplitBefore = BLAS.frozenRowSplitProducts
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
        XCTAssertGreaterThan(BLAS.frozenRowSplitProducts - rowSplitBefore, 0, "no row-split product read a frozen B's packed copy")
    }

    /// The threaded row split packs op(B) once into a buffer all threads share
    /// (`BLAS.sgemmSharedB`): every output bit equals one thread's product packing on the fly, for
    /// each own kernel, its derived blocking and a small one (nc not a multiple of the tile, kc 40
    /// so k crosses blocks), ragged panels (n below and past the tile), all transposes, alpha/beta.
    func testSharedPackedBIsBitIdenticalToOneThreadsProduct() throws {
        let kernels = try ownKernelsOrSkip()
        let savedBlockings = BLAS.blockings, savedThreads = Parallel.threads
        defer { BLAS.blockings = savedBlockings; Parallel.configure(threads: savedThreads) }
        let before = BLAS.sharedPackedProducts
        var runs = 0
        // 2 and 3 threads: the rows go in balanced chunks claimed by whichever thread is free.
        for threads in [2, 3] {
            Parallel.configure(threads: threads)
            for kernel in kernels {
                let t = kernel.tile!
                for blocking in [BLAS.blockings[kernel]!, GEMMBlocking(mc: 4 * t.mr, kc: 40, nc: 4 * t.nr + 5)] {
                    BLAS.blockings[kernel] = blocking
                    for (m, n, k) in [(130, 129, 450), (700, 300, 130), (257, 1000, 33), (1000, 17, 200), (700, 2 * t.nr, 130)] {
                        for ta in [false, true] {
                            for tb in [false, true] {
                                for (alpha, beta): (Float, Float) in [(1, 0), (0.7, 0.5)] {
                                    let lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 5, ldc = n + 2
                                    let a = RNGKey(seed: 41).uniformArray((ta ? k : m) * lda, lo: -1, hi: 1)
                                    let b = RNGKey(seed: 42).uniformArray((tb ? n : k) * ldb, lo: -1, hi: 1)
                                    let c0 = RNGKey(seed: 43).uniformArray(m * ldc, lo: -1, hi: 1)
                                    var shared = c0, single = c0
                                    BLAS.withKernel(kernel) {
                                        shared.withUnsafeMutableBufferPointer { pc in
                                            BLAS.sgemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                                                       beta: beta, c: pc.baseAddress!, ldc: ldc)
                                        }
                                        single.withUnsafeMutableBufferPointer { pc in
                                            BLAS.sgemmSerial(transA: ta, transB: tb, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                                                             beta: beta, c: pc.baseAddress!, ldc: ldc, own: true)
                                        }
                                    }
                                    if m >= 64 * threads { runs += 1 }  // fewer rows: the column split (no shared packing)
                                    let same = zip(shared, single).allSatisfy { $0.bitPattern == $1.bitPattern }
                                    XCTAssertTrue(same, "\(kernel) \(blocking.description) \(threads) threads m\(m) n\(n) k\(k) tA\(ta) tB\(tb) alpha\(alpha) beta\(beta)")
                                }
                            }
                        }
                    }
                }
            }
        }
        XCTAssertEqual(BLAS.sharedPackedProducts - before, runs, "not every product took the shared-packing path")
    }

    /// The OpenBLAS cores with AVX2/FMA or AVX-512 SGEMM kernels, by the names openblas_get_corename
    /// reports (OpenBLAS's DYNAMIC_ARCH list), against generic ones.
    func testOpenBLASCoreClassification() {
        for fast in ["Haswell", "SkylakeX", "COOPERLAKE", "SapphireRapids", "Zen"] { XCTAssertTrue(BLAS.isFastOpenBLASCore(fast), fast) }
        for slow in ["Prescott", "Core2", "Nehalem", "Sandybridge", "Katmai", "Opteron", "Bulldozer", "Atom", ""] {
            XCTAssertFalse(BLAS.isFastOpenBLASCore(slow), slow)
        }
    }

    /// A zeroed output of `count` floats after `body` wrote into it.
    private func output(count: Int, _ body: (UnsafeMutablePointer<Float>) -> Void) -> [Float] {
        var c = [Float](repeating: 0, count: count)
        c.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
        return c
    }

    /// The own GEMM kernels this CPU runs; skips the test where there is none.
    private func ownKernelsOrSkip() throws -> [GEMMKernel] {
        let kernels = BLAS.availableKernels.filter { $0 != .openblas }
        try XCTSkipIf(kernels.isEmpty, "no own GEMM kernel runs on this CPU")
        return kernels
    }

    /// Elements whose bits differ.
    private func differing(_ x: [Float], _ y: [Float]) -> Int { zip(x, y).filter { $0.bitPattern != $1.bitPattern }.count }

    /// A product with few rows and a large B (the LM head at a decoding step) runs OpenBLAS outside a
    /// scope where OpenBLAS has a fast kernel (our kernel where it runs a generic one, as here), and
    /// the own kernel, reading B packed from its second use, when B is a frozen operand: the bits
    /// are those of the own kernel's product, on one thread and split over two or three (guided
    /// column chunks of whole register tiles: 2100 columns go in several chunks).
    func testFewRowsWithAFrozenLargeBRunTheOwnKernel() throws {
        let kernels = try ownKernelsOrSkip()
        let savedThreads = Parallel.threads
        defer { Parallel.configure(threads: savedThreads) }
        // n·k ≥ 2^20: OpenBLAS's shape outside a scope. k is not a multiple of either own kernel's
        // kc (384, 256): at k = 512 OpenBLAS's Cooperlake core (AMD family 25 model 17) and our
        // AVX2 kernel split k into the same two blocks and agree bit for bit, so the test could not
        // tell them apart; at k = 1000 both kernels differ from it (9,500 of 10,500 elements there).
        let (m, n, k) = (5, 2100, 1000)
        let a = RNGKey(seed: 51).uniformArray(m * k, lo: -1, hi: 1)
        let w = Tensor(shape: [n, k], values: RNGKey(seed: 52).uniformArray(n * k, lo: -1, hi: 1))
        for kernel in kernels {
            for threads in [1, 2, 3] {
                Parallel.configure(threads: threads)
                func run(_ body: (UnsafeMutablePointer<Float>) -> Void) -> [Float] { output(count: m * n, body) }
                let (ownBits, blasBits, outside, inside, fromPacked) = BLAS.withKernel(kernel) { () -> ([Float], [Float], [Float], [[Float]], Int) in
                    let own = run { BLAS.sgemmSerial(transA: false, transB: true, m: m, n: n, k: k, alpha: 1, a: a, lda: k, b: w.data, ldb: k, beta: 0, c: $0, ldc: n, own: true) }
                    let blas = run { BLAS.sgemmSerial(transA: false, transB: true, m: m, n: n, k: k, alpha: 1, a: a, lda: k, b: w.data, ldb: k, beta: 0, c: $0, ldc: n, own: false) }
                    let outside = run { BLAS.sgemm(transA: false, transB: true, m: m, n: n, k: k, alpha: 1, a: a, lda: k, b: w.data, ldb: k, beta: 0, c: $0, ldc: n) }
                    let before = FrozenOperands.productsFromPacked
                    let inside = FrozenOperands.scope([w]) { _ in
                        (0..<3).map { _ in run { BLAS.sgemm(transA: false, transB: true, m: m, n: n, k: k, alpha: 1, a: a, lda: k, b: w.data, ldb: k, beta: 0, c: $0, ldc: n) } }
                    }
                    return (own, blas, outside, inside, FrozenOperands.productsFromPacked - before)
                }
                XCTAssertGreaterThan(differing(ownBits, blasBits), 0, "\(kernel) and OpenBLAS \(BLAS.coreName) agree bit for bit here: the test cannot tell them apart")
                // (Split over two threads, OpenBLAS runs each half of the columns: its bits may depend on n.)
                if !BLAS.openBLASHasFastKernel {
                    XCTAssertEqual(differing(outside, ownBits), 0, "\(kernel): OpenBLAS runs \(BLAS.coreName), so our kernel should run")
                } else if threads == 1 {
                    XCTAssertEqual(differing(outside, blasBits), 0, "\(kernel): outside a scope the product should run OpenBLAS")
                }
                for (i, c) in inside.enumerated() {
                    XCTAssertEqual(differing(c, ownBits), 0, "\(kernel) threads \(threads) use \(i): not the own kernel's bits")
                }
                XCTAssertGreaterThan(fromPacked, 0, "\(kernel) threads \(threads): B was never read packed")
            }
        }
    }

    /// The column chunks `sgemm` splits a few-row product into over two threads
    /// (`BLAS.fewRowColumnBounds`), worked by hand (⌈remaining / 4⌉ panels, at least the chunk's
    /// panels): a decoding step's n = 512 product goes in seven chunks with the AVX2 kernel
    /// (16-column panels, at least 4), so the faster thread can take more, and in two halves with
    /// AVX-512 (32-column panels, at least 8). Then the bits: a 56 × 512 × 512 product split so over
    /// two threads, B frozen and read packed, equals one thread's product.
    func testFewRowColumnChunks() throws {
        func sizes(_ b: [Int]) -> [Int] { zip(b.dropFirst(), b).map { $0 - $1 } }
        XCTAssertEqual(sizes(BLAS.fewRowColumnBounds(n: 512, kernel: .avx2, threads: 2)), [128, 96, 80, 64, 64, 64, 16])
        XCTAssertEqual(sizes(BLAS.fewRowColumnBounds(n: 512, kernel: .avx512, threads: 2)), [256, 256])
        XCTAssertEqual(sizes(BLAS.fewRowColumnBounds(n: 100, kernel: .avx2, threads: 2)), [64, 36])
        let kernels = try ownKernelsOrSkip()
        let savedThreads = Parallel.threads
        defer { Parallel.configure(threads: savedThreads) }
        let (m, n, k) = (56, 512, 512)
        let a = RNGKey(seed: 61).uniformArray(m * k, lo: -1, hi: 1)
        let w = Tensor(shape: [n, k], values: RNGKey(seed: 62).uniformArray(n * k, lo: -1, hi: 1))
        for kernel in kernels {
            var results: [[Float]] = []
            let packedBefore = FrozenOperands.productsFromPacked
            for threads in [1, 2] {
                Parallel.configure(threads: threads)
                results.append(BLAS.withKernel(kernel) {
                    FrozenOperands.scope([w], packs: true) { _ in
                        (0..<3).map { _ in
                            output(count: m * n) { c in
                                BLAS.sgemm(transA: false, transB: true, m: m, n: n, k: k, alpha: 1, a: a, lda: k, b: w.data, ldb: k, beta: 0, c: c, ldc: n)
                            }
                        }.last!
                    }
                })
            }
            XCTAssertEqual(differing(results[0], results[1]), 0, "\(kernel): two threads' column chunks changed bits")
            XCTAssertGreaterThan(FrozenOperands.productsFromPacked, packedBefore, "\(kernel): B was never read packed")
        }
    }

    /// The few-row rule outside a frozen scope (`BLAS.fewRows`): with the AVX2 kernel a product
    /// with a large B runs our kernel from 16 rows, with AVX-512 from 32; fewer rows run OpenBLAS
    /// where its core is fast. Checked on the bits: at 1 thread `sgemm` outside a scope must give
    /// our kernel's bits at the threshold and OpenBLAS's one row below it.
    func testFewRowsThresholdDependsOnTheKernel() throws {
        XCTAssertEqual(BLAS.fewRows(.avx2), 16)
        XCTAssertEqual(BLAS.fewRows(.avx512), 32)
        let kernels = try ownKernelsOrSkip()
        let savedThreads = Parallel.threads
        defer { Parallel.configure(threads: savedThreads) }
        Parallel.configure(threads: 1)
        let (n, k) = (2100, 1000)  // n·k ≥ 2^20; k = 1000 so that OpenBLAS's bits differ from ours (above)
        let w = Tensor(shape: [n, k], values: RNGKey(seed: 62).uniformArray(n * k, lo: -1, hi: 1))
        for kernel in kernels {
            let threshold = kernel == .avx2 ? 16 : 32
            XCTAssertEqual(BLAS.fewRows(kernel), threshold)
            for m in [threshold - 1, threshold] {
                let a = RNGKey(seed: 61).uniformArray(m * k, lo: -1, hi: 1)
                func run(_ body: (UnsafeMutablePointer<Float>) -> Void) -> [Float] { output(count: m * n, body) }
                let (ownBits, blasBits, plain, rule) = BLAS.withKernel(kernel) { () -> ([Float], [Float], [Float], Bool) in
                    (run { BLAS.sgemmSerial(transA: false, transB: true, m: m, n: n, k: k, alpha: 1, a: a, lda: k, b: w.data, ldb: k, beta: 0, c: $0, ldc: n, own: true) },
                     run { BLAS.sgemmSerial(transA: false, transB: true, m: m, n: n, k: k, alpha: 1, a: a, lda: k, b: w.data, ldb: k, beta: 0, c: $0, ldc: n, own: false) },
                     run { BLAS.sgemm(transA: false, transB: true, m: m, n: n, k: k, alpha: 1, a: a, lda: k, b: w.data, ldb: k, beta: 0, c: $0, ldc: n) },
                     BLAS.usesOwnKernel(m: m, n: n, k: k))
                }
                XCTAssertGreaterThan(differing(ownBits, blasBits), 0, "\(kernel) and OpenBLAS \(BLAS.coreName) agree bit for bit at \(m) rows: the test cannot tell them apart")
                let own = m >= threshold || !BLAS.openBLASHasFastKernel
                XCTAssertEqual(rule, own, "\(kernel), \(m) rows")
                XCTAssertEqual(differing(plain, own ? ownBits : blasBits), 0, "\(kernel), \(m) rows: expected \(own ? "our kernel's" : "OpenBLAS's") bits")
            }
        }
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
        let kernels = try ownKernelsOrSkip()
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
            defer { FrozenOperands.isEnabled = saved }
            // Switched off, or a scope that does not pack: the tensors stay registered (the kernel
            // choice of few-row products depends on it) and no product reads a packed copy.
            for (enabled, packs) in [(false, true), (true, false)] {
                FrozenOperands.isEnabled = enabled
                let before = FrozenOperands.productsFromPacked
                FrozenOperands.scope([w], packs: packs) { frozen in
                    XCTAssertFalse(frozen.packs)
                    XCTAssertTrue(frozen.holds(w.data, transB: false, k: k, n: n, ldb: n), "a non-packing scope must still register its tensors")
                    for _ in 0..<3 { product(w) }
                    XCTAssertEqual(frozen.packedCount, 0)
                }
                XCTAssertEqual(FrozenOperands.productsFromPacked, before, "packing ran with isEnabled \(enabled), packs \(packs)")
            }
        }
    }
}
