import Dispatch
import Foundation
import Support
@testable import Tensor
import XCTest

final class GEMMTests: XCTestCase {
    /// `BLAS.sgemm` (threaded entry point) vs the naive triple loop with each kernel this CPU can run:
    /// all transpose cases, odd sizes, padded leading dimensions, alpha/beta.
    func testSgemmAgainstNaive() {
        for kernel in BLAS.availableKernels {
            BLAS.withKernel(kernel) { sgemmAgainstNaive() }
        }
    }

    func sgemmAgainstNaive() {
        for (m, n, k) in [(1, 1, 1), (3, 5, 7), (17, 13, 11), (33, 1, 65), (64, 31, 3), (300, 70, 90)] {
            for ta in [false, true] {
                for tb in [false, true] {
                    let lda = (ta ? m : k) + 2, ldb = (tb ? k : n) + 1, ldc = n + 3
                    let a = RNGKey(seed: 1).uniformArray((ta ? k : m) * lda, lo: -1, hi: 1)
                    let b = RNGKey(seed: 2).uniformArray((tb ? n : k) * ldb, lo: -1, hi: 1)
                    var c1 = RNGKey(seed: 3).uniformArray(m * ldc, lo: -1, hi: 1)
                    var c2 = c1
                    a.withUnsafeBufferPointer { pa in
                        b.withUnsafeBufferPointer { pb in
                            c1.withUnsafeMutableBufferPointer { pc in
                                BLAS.sgemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 0.7, a: pa.baseAddress!, lda: lda,
                                           b: pb.baseAddress!, ldb: ldb, beta: 0.5, c: pc.baseAddress!, ldc: ldc)
                            }
                            c2.withUnsafeMutableBufferPointer { pc in
                                BLAS.sgemmNaive(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 0.7, a: pa.baseAddress!, lda: lda,
                                                b: pb.baseAddress!, ldb: ldb, beta: 0.5, c: pc.baseAddress!, ldc: ldc)
                            }
                        }
                    }
                    for i in 0..<c1.count { XCTAssertEqual(c1[i], c2[i], accuracy: 1e-4, "\(BLAS.kernel) m\(m) n\(n) k\(k) tA\(ta) tB\(tb)") }
                }
            }
        }
    }

    /// PromptRepro's AVX-512 kernel (Sources/CGemm/gemm.c) against the naive oracle, forced on
    /// whatever size: ragged edges of the 12×32 tile, shapes crossing the blocks, transposes, padded
    /// leading dimensions, alpha/beta, beta = 0 over a NaN-filled C. Skipped on CPUs without AVX-512.
    func testAVX512KernelAgainstNaive() throws {
        try XCTSkipUnless(BLAS.avx512Available, "this CPU has no AVX-512: the kernel is never selected here")
        try ownKernelAgainstNaive(.avx512)
    }

    /// The AVX2 + FMA kernel (Sources/CGemm/gemm_avx2.c, 6×16 tile) likewise, with edge sizes 1, 7,
    /// 17, 33, 65, 129 in every dimension. Skipped on CPUs without AVX2 and FMA.
    func testAVX2KernelAgainstNaive() throws {
        try XCTSkipUnless(BLAS.avx2Available, "this CPU has no AVX2/FMA: the kernel is never selected here")
        try ownKernelAgainstNaive(.avx2)
    }

    /// `kernel` on its derived blocking and on a small one (mc 4·mr, kc 40, nc 4·nr) that makes
    /// modest shapes cross every block boundary, each product checked against the oracle.
    func ownKernelAgainstNaive(_ kernel: GEMMKernel) throws {
        var shapes = [(1, 1, 1), (13, 33, 17), (12, 32, 16), (6, 16, 256), (37, 45, 53), (100, 17, 333), (500, 40, 400),
                      (33, 3100, 20), (64, 64, 64)]
        let edges = [1, 7, 17, 33, 65, 129]
        for (i, m) in edges.enumerated() { shapes += [(m, edges[(i + 1) % 6], edges[(i + 3) % 6]), (m, m, edges[(i + 2) % 6])] }
        let derived = BLAS.blockings[kernel]!
        let r = kernel == .avx512 ? (12, 32) : (6, 16)
        let small = GEMMBlocking(mc: 4 * r.0, kc: 40, nc: 4 * r.1)
        let saved = BLAS.blockings
        defer { BLAS.blockings = saved }
        for blocking in [derived, small] {
            BLAS.blockings[kernel] = blocking
            for (m, n, k) in shapes {
                for ta in [false, true] {
                    for tb in [false, true] {
                        for (alpha, beta): (Float, Float) in [(0.7, 0.5), (0.7, 0), (-1.3, 1)] {
                            let worst = BLAS.withKernel(kernel) {
                                ownVersusNaive(m: m, n: n, k: k, ta: ta, tb: tb, alpha: alpha, beta: beta)
                            }
                            XCTAssertLessThan(worst, 2e-5, "\(kernel) \(blocking.description) m\(m) n\(n) k\(k) tA\(ta) tB\(tb) alpha\(alpha) beta\(beta)")
                        }
                    }
                }
            }
        }
    }

    /// The selected own kernel vs the oracle on one product with padded leading dimensions; returns
    /// the largest relative error (1 if a NaN appears, or a column past n is written).
    func ownVersusNaive(m: Int, n: Int, k: Int, ta: Bool, tb: Bool, alpha: Float, beta: Float) -> Float {
        let lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 5, ldc = n + 2
        let a = RNGKey(seed: 11).uniformArray((ta ? k : m) * lda, lo: -1, hi: 1)
        let b = RNGKey(seed: 12).uniformArray((tb ? n : k) * ldb, lo: -1, hi: 1)
        var c1 = beta == 0 ? [Float](repeating: .nan, count: m * ldc) : RNGKey(seed: 13).uniformArray(m * ldc, lo: -1, hi: 1)
        var c2 = c1
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                c1.withUnsafeMutableBufferPointer { pc in
                    BLAS.sgemmSerial(transA: ta, transB: tb, m: m, n: n, k: k, alpha: alpha, a: pa.baseAddress!, lda: lda,
                                     b: pb.baseAddress!, ldb: ldb, beta: beta, c: pc.baseAddress!, ldc: ldc, own: true)
                }
                c2.withUnsafeMutableBufferPointer { pc in
                    BLAS.sgemmNaive(transA: ta, transB: tb, m: m, n: n, k: k, alpha: alpha, a: pa.baseAddress!, lda: lda,
                                    b: pb.baseAddress!, ldb: ldb, beta: beta, c: pc.baseAddress!, ldc: ldc)
                }
            }
        }
        var worst: Float = 0
        for i in 0..<m {
            for j in 0..<ldc {
                let x = c1[i * ldc + j], y = c2[i * ldc + j]
                if j >= n {  // padding columns past n are never written
                    if !(x.isNaN == y.isNaN && (x.isNaN || x == y)) { return 1 }
                    continue
                }
                let e = abs(x - y) / max(1, abs(y))
                if !(e <= worst) { worst = e.isNaN ? 1 : e }
            }
        }
        return worst
    }

    /// Each own kernel through the public (threaded) entry point agrees with OpenBLAS to rounding on
    /// a model-sized product; its bits do not depend on how rows are split among threads, nor on
    /// mc and nc (only kc sets the summation order), and are the same when run twice.
    func testOwnKernelsAgreeAndSplitOrBlockingDoesNotMatter() throws {
        let own = BLAS.availableKernels.filter { $0 != .openblas }
        try XCTSkipIf(own.isEmpty, "this CPU has neither AVX-512 nor AVX2: only OpenBLAS runs here")
        let (m, n, k) = (700, 300, 520)
        let a = Tensor.uniform([m, k], lo: -1, hi: 1, key: RNGKey(seed: 21))
        let w = Tensor.uniform([n, k], lo: -1, hi: 1, key: RNGKey(seed: 22))
        let viaOpenBLAS = try BLAS.withKernel(.openblas) { try linear(a, w) }
        for kernel in own {
            let whole = try BLAS.withKernel(kernel) { try linear(a, w) }
            let again = try BLAS.withKernel(kernel) { try linear(a, w) }
            var worst: Float = 0
            for i in 0..<m * n { let d = abs(viaOpenBLAS.data[i] - whole.data[i]); worst = d.isNaN ? .infinity : max(worst, d) }
            XCTAssertLessThan(worst, 1e-4, "\(kernel)")
            for i in 0..<m * n where again.data[i] != whole.data[i] { XCTFail("\(kernel): element \(i) differs between two runs"); break }
            // Row by row (each row block its own call), and with other mc/nc, gives the same bits.
            let derived = BLAS.blockings[kernel]!
            let saved = BLAS.blockings
            defer { BLAS.blockings = saved }
            for blocking in [derived, GEMMBlocking(mc: 24, kc: derived.kc, nc: 64)] {
                BLAS.blockings[kernel] = blocking
                var rowWise = [Float](repeating: 0, count: m * n)
                rowWise.withUnsafeMutableBufferPointer { pc in
                    BLAS.withKernel(kernel) {
                        for i in stride(from: 0, to: m, by: 100) {
                            BLAS.sgemmSerial(transA: false, transB: true, m: 100, n: n, k: k, alpha: 1, a: a.data + i * k, lda: k,
                                             b: w.data, ldb: k, beta: 0, c: pc.baseAddress! + i * n, ldc: n, own: true)
                        }
                    }
                }
                for i in 0..<m * n where rowWise[i] != whole.data[i] {
                    XCTFail("\(kernel) \(blocking.description): element \(i) differs between row split and whole"); break
                }
            }
        }
    }

    /// A transposed A (a weight gradient's dYᵀ) is packed row by row of A; the panels, and so the
    /// bits, must be those of the same product on Aᵀ written out: ragged panels, kc and mc blocks
    /// crossed (derived and small blocking), narrow products that read A in place, both kernels.
    /// Likewise B packed from its rows against B packed from Bᵀ's columns.
    func testTransposedAGivesTheBitsOfAᵀWrittenOut() throws {
        let own = BLAS.availableKernels.filter { $0 != .openblas }
        try XCTSkipIf(own.isEmpty, "no own GEMM kernel runs on this CPU")
        let saved = BLAS.blockings
        defer { BLAS.blockings = saved }
        for kernel in own {
            let r = kernel == .avx512 ? (12, 32) : (6, 16)
            for blocking in [saved[kernel]!, GEMMBlocking(mc: 4 * r.0, kc: 40, nc: 4 * r.1)] {
                BLAS.blockings[kernel] = blocking
                for (m, n, k) in [(1, 5, 3), (12, 64, 100), (13, 33, 17), (100, 200, 130), (250, 97, 401), (40, 300, 50)] {
                    /// C = 0.7 · op(A) · op(B), m × n, on `kernel`, each element's bits.
                    func product(transA: Bool, _ a: [Float], lda: Int, transB: Bool, _ b: [Float], ldb: Int) -> [UInt32] {
                        var c = [Float](repeating: .nan, count: m * n)
                        BLAS.withKernel(kernel) {
                            BLAS.sgemmSerial(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.7, a: a, lda: lda, b: b, ldb: ldb,
                                             beta: 0, c: &c, ldc: n, own: true)
                        }
                        return c.map(\.bitPattern)
                    }
                    let lda = m + 3  // A stored k × lda: op(A) = Aᵀ is m × k
                    let a = RNGKey(seed: UInt64(31 + m)).uniformArray(k * lda, lo: -1, hi: 1)
                    var at = [Float](repeating: 0, count: m * k)
                    for p in 0..<k { for i in 0..<m { at[i * k + p] = a[p * lda + i] } }
                    let b = RNGKey(seed: UInt64(32 + n)).uniformArray(k * n, lo: -1, hi: 1)
                    XCTAssertEqual(product(transA: true, a, lda: lda, transB: false, b, ldb: n),
                                   product(transA: false, at, lda: k, transB: false, b, ldb: n),
                                   "\(kernel) \(blocking.description) m\(m) n\(n) k\(k)")
                    // B the other way round: packed from its rows (op(B) = B, ldb past n) and from Bᵀ's
                    // columns (the 16×16 / 8×8 transposes) must give the same panels.
                    let ldb = n + 5
                    let b2 = RNGKey(seed: UInt64(33 + k)).uniformArray(k * ldb, lo: -1, hi: 1)
                    var b2t = [Float](repeating: 0, count: n * k)
                    for p in 0..<k { for j in 0..<n { b2t[j * k + p] = b2[p * ldb + j] } }
                    XCTAssertEqual(product(transA: false, at, lda: k, transB: false, b2, ldb: ldb),
                                   product(transA: false, at, lda: k, transB: true, b2t, ldb: k),
                                   "B: \(kernel) \(blocking.description) m\(m) n\(n) k\(k)")
                }
            }
        }
    }

    /// The blocking rule on known cache sizes, sysfs parsing, and the fallback without sysfs.
    func testBlockingFromCaches() {
        // This project's Intel host: L1d 48K, L2 2048K, L3 300M shared by 2 cpus.
        let intel = CacheInfo(l1d: 48 << 10, l2: 2 << 20, l3: 300 << 20, l2Sharing: 1, l3Sharing: 2, fromSysfs: true)
        XCTAssertEqual(GEMMBlocking.derive(mr: 12, nr: 32, kc: 384, caches: intel), GEMMBlocking(mc: 4092, kc: 384, nc: 320))
        XCTAssertEqual(GEMMBlocking.derive(mr: 6, nr: 16, kc: 256, caches: intel), GEMMBlocking(mc: 4092, kc: 256, nc: 512))
        // AMD Zen 2 core: L2 512K per core, L3 16M shared by 8 cpus (4 cores × 2 threads).
        let zen2 = CacheInfo(l1d: 32 << 10, l2: 512 << 10, l3: 16 << 20, l2Sharing: 2, l3Sharing: 8, fromSysfs: true)
        XCTAssertEqual(GEMMBlocking.derive(mr: 6, nr: 16, kc: 256, caches: zen2), GEMMBlocking(mc: 1020, kc: 256, nc: 64))
        // A Zen 4 SMT core: L2 1 MiB shared by 2 cpus, L3 32 MiB by 16. nc: 512 KiB / 4 / 1536 B = 85
        // → 64 (multiple of 32) → raised to 4·32; mc: 2 MiB / 2 / 1536 B = 682 → 672 (multiple of 12).
        let zen4 = CacheInfo(l1d: 32 << 10, l2: 1 << 20, l3: 32 << 20, l2Sharing: 2, l3Sharing: 16, fromSysfs: true)
        XCTAssertEqual(GEMMBlocking.derive(mr: 12, nr: 32, kc: 384, caches: zen4), GEMMBlocking(mc: 672, kc: 384, nc: 128))
        XCTAssertEqual(CacheInfo.parseSize("48K"), 48 << 10)
        XCTAssertEqual(CacheInfo.parseSize("300M"), 300 << 20)
        XCTAssertEqual(CacheInfo.parseSize("1024"), 1024)
        XCTAssertEqual(CacheInfo.cpuCount("0-1,4,6-7"), 5)
        XCTAssertEqual(CacheInfo.read(root: "/nonexistent"), CacheInfo.fallback)
        let g = GEMMBlocking.derive(mr: 6, nr: 16, kc: 256, caches: .fallback)
        XCTAssertEqual(g, GEMMBlocking(mc: 1020, kc: 256, nc: 64))
        // A sysfs that reports L1d and L2 but no L3 (some QEMU CPU models): the L3 fallback stands
        // in and the description says so (it read as if measured).
        let root = NSTemporaryDirectory() + "caches-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: root) }
        for (i, level, type, size, shared) in [(0, "1", "Data", "48K", "0"), (1, "1", "Instruction", "32K", "0"), (2, "2", "Unified", "1024K", "0-1")] {
            let dir = "\(root)/index\(i)"
            try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            for (name, value) in [("level", level), ("type", type), ("size", size), ("shared_cpu_list", shared)] {
                try? "\(value)\n".write(toFile: "\(dir)/\(name)", atomically: true, encoding: .utf8)
            }
        }
        let partial = CacheInfo.read(root: root)
        XCTAssertEqual(partial.l1d, 48 << 10)
        XCTAssertEqual(partial.l2, 1 << 20)
        XCTAssertEqual(partial.l2Sharing, 2)
        XCTAssertEqual(partial.l3, CacheInfo.fallback.l3)
        XCTAssertEqual(partial.fallbackLevels, ["L3"])
        XCTAssertTrue(partial.description.hasSuffix("(L3 not in sysfs: fallback size)"), partial.description)
    }

    func testMatmulOpAgainstNaive() throws {
        for ta in [false, true] {
            for tb in [false, true] {
                let (b, m, n, k) = (3, 5, 7, 9)
                let a = rand(ta ? [b, k, m] : [b, m, k], "ga", grad: false)
                let w = rand(tb ? [n, k] : [k, n], "gw", grad: false)
                let bb = rand(tb ? [b, n, k] : [b, k, n], "gb", grad: false)
                let c = try matmul(a, w, transA: ta, transB: tb)
                let cb = try matmul(a, bb, transA: ta, transB: tb)
                XCTAssertEqual(c.shape, [b, m, n])
                for bi in 0..<b {
                    for i in 0..<m {
                        for j in 0..<n {
                            var acc: Float = 0, accB: Float = 0
                            for p in 0..<k {
                                let av = ta ? a[bi * k * m + p * m + i] : a[bi * m * k + i * k + p]
                                acc += av * (tb ? w[j * k + p] : w[p * n + j])
                                accB += av * (tb ? bb[bi * n * k + j * k + p] : bb[bi * k * n + p * n + j])
                            }
                            XCTAssertEqual(c[(bi * m + i) * n + j], acc, accuracy: 1e-4)
                            XCTAssertEqual(cb[(bi * m + i) * n + j], accB, accuracy: 1e-4)
                        }
                    }
                }
            }
        }
    }

    func testMatmulShapeErrorsNameShapes() {
        XCTAssertThrowsError(try matmul(rand([2, 3, 4], "x", grad: false), rand([5, 6], "y", grad: false))) { e in
            let s = "\(e)"
            XCTAssertTrue(s.contains("[2, 3, 4]") && s.contains("[5, 6]"), s)
        }
        XCTAssertThrowsError(try matmul(rand([2, 3, 4], "x", grad: false), rand([3, 4, 2], "y", grad: false))) { e in
            XCTAssertTrue("\(e)".contains("batch"), "\(e)")
        }
    }
}

final class AutodiffTests: XCTestCase {
    /// A frozen weight gets no gradient buffer; only the trainable prompt path does; the tape is
    /// drained (activations released) after backward.
    func testFrozenWeightsGetNoGradient() throws {
        let w = rand([4, 6], "fw", grad: false)
        let prompt = rand([1, 2, 6], "fp")
        let x = rand([1, 3, 6], "fx", grad: false)
        let tape = Tape()
        weak var weakHidden: Tensor?
        let loss = try tape.record { () throws -> Tensor in
            let h = try concat([prompt, x], axis: 1)
            weakHidden = h
            return mean(try linear(h, w))
        }
        XCTAssertGreaterThan(tape.nodeCount, 0)
        tape.backward(loss)
        XCTAssertNil(w.grad)
        XCTAssertNil(x.grad)
        XCTAssertNotNil(prompt.grad)
        XCTAssertTrue(tape.isEmpty)
        XCTAssertNil(weakHidden, "activation kept alive after backward")
    }

    /// Tape.checkpoint: the body's intermediates are not kept (a weak reference to one is gone
    /// after forward), the weights it reads without listing them get their gradients, and every
    /// gradient equals the recorded body's bit for bit, dropout included (its key is fixed).
    func testCheckpointKeepsNothingAndGivesTheSameGradients() throws {
        let w1 = rand([8, 6], "ck1"), w2 = rand([6, 8], "ck2"), p = rand([2, 3, 6], "ckp")
        let key = RNGKey(seed: 5)
        func run(_ checkpointed: Bool) throws -> ([Float], [Float], [Float]) {
            for t in [w1, w2, p] { t.zeroGrad() }
            weak var weakHidden: Tensor?
            let tape = Tape()
            let loss = try tape.record { () throws -> Tensor in
                let x = try scale(p, 1.5)  // a non-leaf input
                let body: ([Tensor]) throws -> Tensor = { xs in
                    let h = relu(try linear(xs[0], w1))
                    weakHidden = h
                    return try linear(dropout(h, p: 0.25, key: key), w2)
                }
                let y = checkpointed ? try Tape.checkpoint(inputs: [x], body) : try body([x])
                if checkpointed { XCTAssertNil(weakHidden, "checkpointed intermediate kept after forward") }
                return mean(try mul(try add(y, x), y))
            }
            tape.backward(loss)
            return (w1.grad!.array, w2.grad!.array, p.grad!.array)
        }
        let plain = try run(false), ckpt = try run(true)
        XCTAssertEqual(plain.0, ckpt.0, "w1 gradient")
        XCTAssertEqual(plain.1, ckpt.1, "w2 gradient")
        XCTAssertEqual(plain.2, ckpt.2, "input gradient")
    }

    /// A norm's output read by linear layers whose weights train is not kept by the tape: dW
    /// computes it again from the norm's input and statistics, once for all the layers that read
    /// it, and every gradient keeps its bits. Fails if `linear` keeps y (the weak reference stays
    /// set) or if the recomputed values differ from forward's. Rows 64 run dW at once; rows 2
    /// (fewer kept floats than weight floats) defer it to the end of backward. Backward runs with
    /// a fused-step hook that overwrites each norm parameter with NaN once its gradient is final,
    /// as an optimizer step would update it: a recomputation after that (deferred dW reading the
    /// updated weight) would change the linear layers' gradients.
    func testNormOutputIsRecomputedForWeightGradients() throws {
        for rows in [64, 2] {
            for useLayerNorm in [false, true] {
                let d = 8, label = "remat\(rows)\(useLayerNorm)"
                let p = rand([rows, d], label + "x"), nw = rand([d], label + "nw"), nb = rand([d], label + "nb")
                let nwValues = nw.array, nbValues = nb.array
                let ws = (0..<3).map { rand([6, d], label + "w\($0)") }
                func run(_ rematerialize: Bool) throws -> (grads: [[UInt32]], kept: Bool, recomputations: Int) {
                    for t in [p, nw, nb] + ws { t.zeroGrad() }
                    nw.copy(from: Tensor(shape: [d], values: nwValues))
                    nb.copy(from: Tensor(shape: [d], values: nbValues))
                    weak var weakY: Tensor?
                    var remat: Rematerialization?
                    let tape = Tape()
                    let loss = try tape.record { () throws -> Tensor in
                        let x = try scale(p, 1.5)
                        let y = useLayerNorm ? try layerNorm(x, weight: nw, bias: nb, eps: 1e-5) : try rmsNorm(x, weight: nw, eps: 1e-6)
                        remat = y.rematerialization
                        weakY = y
                        if !rematerialize { y.rematerialization = nil }  // the reference: linear keeps y
                        let outs = try ws.map { try linear(y, $0) }
                        return mean(try mul(try add(outs[0], outs[1]), outs[2]))
                    }
                    let kept = weakY != nil
                    tape.backward(loss) { box in
                        if box === nw.box { nw.fill(.nan) }
                        if box === nb.box { nb.fill(.nan) }
                    }
                    var grads = ws.map { $0.grad!.array }
                    grads += [p.grad!.array, nw.grad!.array]
                    if useLayerNorm { grads.append(nb.grad!.array) }
                    return (grads.map { $0.map(\.bitPattern) }, kept, remat?.recomputations ?? -1)
                }
                let plain = try run(false), remat = try run(true)
                XCTAssertTrue(plain.kept, "\(label): the reference keeps y")
                XCTAssertFalse(remat.kept, "\(label): y kept by the tape after forward")
                XCTAssertEqual(remat.recomputations, 1, "\(label): y computed again once for three linear layers")
                XCTAssertFalse(plain.grads.joined().contains(Float.nan.bitPattern), "\(label): the reference read no NaN")
                XCTAssertTrue(plain.grads == remat.grads, "\(label): gradients differ")
            }
        }
    }

    /// A sparse linear-layer input kept compact expands to its values bit for bit (zeros, −0, NaN,
    /// a ragged last chunk and bitmap word), gives the weight gradient of the dense input bit for
    /// bit under a random upstream gradient, releases the dense buffer after forward, and is
    /// refused above the density limit, below the size limit and outside a tape.
    func testSparseInputKeptCompactGivesTheSameWeightGradient() throws {
        // 77,100 elements: 4 chunks of 16,384 and a fifth of 11,564 (181 words, 44 in the last)
        let rows = 257, inF = 300, n = rows * inF
        var values = rand([rows, inF], "compact").array
        for i in 0..<n where i % 3 != 0 { values[i] = 0 }  // one third nonzero
        values[3] = -0.0
        values[n - 1] = .nan
        values[n - 2] = 0
        let w = rand([7, inF], "compactW")
        let upstream = rand([rows, 7], "compactG", grad: false)
        func run(_ compact: Bool) throws -> (grad: [UInt32], kept: Bool, done: Bool, expanded: [UInt32]) {
            w.zeroGrad()
            weak var weakX: Tensor?
            var done = false, expanded: [UInt32] = []
            let tape = Tape()
            let loss = try tape.record { () throws -> Tensor in
                let x = try scale(Tensor(shape: [rows, inF], values: values), 1)  // an activation, not a leaf
                weakX = x
                if compact {
                    done = x.keepCompactForBackward()
                    expanded = x.rematerialization?.register().take().array.map(\.bitPattern) ?? []
                }
                return sum(try mul(try linear(x, w), upstream))
            }
            let kept = weakX != nil
            tape.backward(loss)
            return (w.grad!.array.map(\.bitPattern), kept, done, expanded)
        }
        let dense = try run(false), compact = try run(true)
        XCTAssertTrue(dense.kept, "the reference keeps x")
        XCTAssertTrue(compact.done, "one third nonzero is under the 0.75 limit")
        XCTAssertTrue(compact.expanded == values.map(\.bitPattern), "expanded values differ first at element \(values.indices.first { compact.expanded.count <= $0 || compact.expanded[$0] != values[$0].bitPattern } ?? -1)")
        XCTAssertFalse(compact.kept, "x kept whole after forward")
        XCTAssertTrue(dense.grad == compact.grad, "weight gradient differs first at element \(dense.grad.indices.first { dense.grad[$0] != compact.grad[$0] } ?? -1)")
        XCTAssertTrue(w.grad!.array.contains { $0.isNaN }, "the NaN reached dW, so the test reads the kept values")
        let tape = Tape()
        tape.record {
            let full = Tensor(shape: [rows, inF], values: [Float](repeating: 1, count: n))
            XCTAssertFalse(full.keepCompactForBackward(), "a dense tensor is not compacted")
            let small = Tensor(shape: [4, 4], values: [Float](repeating: 0, count: 16))
            XCTAssertFalse(small.keepCompactForBackward(), "under the size limit")
        }
        XCTAssertFalse(Tensor(shape: [rows, inF], values: values).keepCompactForBackward(), "outside a tape")
    }

    func testNoRecordingOutsideTape() throws {
        let w = rand([3, 3], "nr")
        let y = try linear(w, w)
        XCTAssertFalse(y.requiresGrad)
    }

    func testLeafGradientsAccumulate() throws {
        let x = rand([3], "acc")
        for _ in 0..<2 {
            let tape = Tape()
            let l = tape.record { sum(scale(x, 2)) }
            tape.backward(l)
        }
        XCTAssertEqual(x.grad!.array, [4, 4, 4])
    }
}

final class RNGTests: XCTestCase {
    /// Known-answer vectors for Philox-4x32-10 from Random123's kat_vectors.
    func testPhiloxKnownAnswers() {
        func eq(_ a: (UInt32, UInt32, UInt32, UInt32), _ b: [UInt32]) -> Bool { [a.0, a.1, a.2, a.3] == b }
        XCTAssertTrue(eq(Philox.block((0, 0, 0, 0), key: (0, 0)), [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]))
        XCTAssertTrue(eq(Philox.block((.max, .max, .max, .max), key: (.max, .max)), [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]))
        XCTAssertTrue(eq(Philox.block((0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344), key: (0xa409_3822, 0x299f_31d0)),
                         [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1]))
        // 7-round vectors check the round structure independently.
        XCTAssertTrue(eq(Philox.block((0, 0, 0, 0), key: (0, 0), rounds: 7), [0x5f6f_b709, 0x0d89_3f64, 0x4f12_1f81, 0x4f73_0a48]))
    }

    func testStreamsAreIndependentAndAddressable() {
        let k = RNGKey(seed: 42)
        let a = k.derive(1).uniformArray(4096), b = k.derive(2).uniformArray(4096)
        XCTAssertNotEqual(a, b)
        // Sample correlation between streams is near 0; means near 1/2.
        let ma = a.reduce(0, +) / 4096, mb = b.reduce(0, +) / 4096
        var cov: Float = 0, va: Float = 0, vb: Float = 0
        for i in 0..<4096 { cov += (a[i] - ma) * (b[i] - mb); va += (a[i] - ma) * (a[i] - ma); vb += (b[i] - mb) * (b[i] - mb) }
        XCTAssertLessThan(abs(cov / (va * vb).squareRoot()), 0.06)
        XCTAssertEqual(ma, 0.5, accuracy: 0.02)
        // Element i does not depend on how many were drawn before it.
        var part = [Float](repeating: 0, count: 7)
        part.withUnsafeMutableBufferPointer { k.derive(1).fillUniform($0.baseAddress!, count: 7, offset: 1001) }
        XCTAssertEqual(part, Array(a[1001..<1008]))
        XCTAssertNotEqual(k.derive(1).derive(2), k.derive(2).derive(1))
    }

    /// `Tensor.normal` fills its values on several threads at even offsets; each element must be
    /// the serial stream's (Box–Muller pair j from block j: element 2j its cosine half, 2j + 1 its
    /// sine half), for odd and even counts, with 1, 2 and 3 threads, and for a mean and scale.
    func testParallelNormalFillIsTheSerialStream() {
        let saved = Parallel.threads
        defer { Parallel.configure(threads: saved) }
        let key = RNGKey(seed: 77)
        // Element 5 by hand: the sine half of pair 2, from block 2.
        let b = key.block(2)
        let r = (-2 * log((Double(b.0) + 1) / 4_294_967_297.0)).squareRoot()
        let e5 = 0.5 + 2 * Float(r * sin(2 * Double.pi * (Double(b.1) / 4_294_967_296.0)))
        for threads in [1, 2, 3] {
            Parallel.configure(threads: threads)
            for count in [1, 2, 7, 40_001, 262_145] {
                let serial = key.normalArray(count, mean: 0.5, std: 2)
                let t = Tensor.normal([count], mean: 0.5, std: 2, key: key)
                let got = Array(UnsafeBufferPointer(start: t.data, count: count))
                XCTAssertEqual(got.map(\.bitPattern), serial.map(\.bitPattern), "count \(count), \(threads) threads")
                if count > 5 { XCTAssertEqual(got[5].bitPattern, e5.bitPattern) }
            }
        }
        // A piece starting at an even offset is that stretch of the stream.
        var piece = [Float](repeating: 0, count: 9)
        piece.withUnsafeMutableBufferPointer { key.fillNormal($0.baseAddress!, count: 9, offset: 1000) }
        XCTAssertEqual(piece, Array(key.normalArray(1009)[1000...]))
    }

    func testPermutationDeterministicAndValid() {
        var s1 = PhiloxStream(RNGKey(seed: 1, stream: 9)), s2 = PhiloxStream(RNGKey(seed: 1, stream: 9))
        let p1 = s1.permutation(250), p2 = s2.permutation(250)
        XCTAssertEqual(p1, p2)
        XCTAssertEqual(p1.sorted(), Array(0..<250))
        var s3 = PhiloxStream(RNGKey(seed: 2, stream: 9))
        XCTAssertNotEqual(s3.permutation(250), p1)
    }

    /// Dropout masks, normal init and a full forward/backward are bit-identical across thread counts.
    func testDeterminismAcrossThreadCounts() throws {
        func run(_ threads: Int) throws -> ([Float], [Float], [Float]) {
            Parallel.configure(threads: threads)
            defer { Parallel.configure(threads: nil) }
            let x = Tensor.normal([64, 512], key: RNGKey(seed: 3), requiresGrad: true)
            let w = Tensor.normal([512], key: RNGKey(seed: 4), requiresGrad: true)
            let tape = Tape()
            let y = try tape.record { () throws -> Tensor in
                let h = dropout(try rmsNorm(x, weight: w, eps: 1e-6), p: 0.1, key: RNGKey(seed: 5))
                return h
            }
            let l = tape.record { sum(geluNew(y)) }
            tape.backward(l)
            return (y.array, x.grad!.array, w.grad!.array)
        }
        let a = try run(1), b = try run(2), c = try run(2)
        XCTAssertEqual(a.0, b.0)
        XCTAssertEqual(a.1, b.1)
        XCTAssertEqual(a.2, b.2)
        XCTAssertEqual(b.2, c.2)
    }
}

final class ParallelTests: XCTestCase {
    /// Guided chunk sizes, worked by hand: ⌈remaining / (2 · threads)⌉ quanta, at least `minQuanta`,
    /// every chunk whole quanta but the last, covering exactly 0 ..< count.
    func testGuidedBounds() {
        func sizes(_ b: [Int]) -> [Int] { zip(b.dropFirst(), b).map { $0 - $1 } }
        // 60 quanta of 6 rows (356 rows: 59 whole tiles and 2 rows), 2 threads, at least 3 quanta:
        // 15 (60/4), 12 (⌈45/4⌉), 9 (⌈33/4⌉), 6 (24/4), 5 (⌈18/4⌉), 4 (⌈13/4⌉), 3 (9/4 → 3), 3, 3 (the last 2 rows short).
        let b = Parallel.guidedBounds(356, quantum: 6, minQuanta: 3, threads: 2)
        XCTAssertEqual(sizes(b), [90, 72, 54, 36, 30, 24, 18, 18, 14])
        XCTAssertEqual(b.first, 0)
        XCTAssertEqual(b.last, 356)
        XCTAssertEqual(sizes(Parallel.guidedBounds(60, quantum: 1, minQuanta: 2, threads: 2)), [15, 12, 9, 6, 5, 4, 3, 2, 2, 2])
        XCTAssertEqual(sizes(Parallel.guidedBounds(10, quantum: 1, minQuanta: 1, threads: 4)), [2, 1, 1, 1, 1, 1, 1, 1, 1])
        XCTAssertEqual(Parallel.guidedBounds(5, quantum: 8, minQuanta: 1, threads: 2), [0, 5])
        XCTAssertEqual(Parallel.guidedBounds(0, quantum: 8, minQuanta: 1, threads: 2), [0, 0])
        XCTAssertEqual(sizes(Parallel.guidedBounds(40, quantum: 1, minQuanta: 16, threads: 2)), [16, 16, 8])
    }

    /// The default thread count: `preferredThreads` (the CLI's), else PROMPTREPRO_THREADS when a
    /// positive integer, else the core count (at least 1).
    func testDefaultThreadsFollowTheEnvironment() {
        let saved = Parallel.preferredThreads
        defer { Parallel.preferredThreads = saved }
        Parallel.preferredThreads = nil
        XCTAssertEqual(Parallel.defaultThreads(environment: [:], cores: 2), 2)
        XCTAssertEqual(Parallel.defaultThreads(environment: ["PROMPTREPRO_THREADS": "3"], cores: 2), 3)
        XCTAssertEqual(Parallel.defaultThreads(environment: ["PROMPTREPRO_THREADS": "1"], cores: 8), 1)
        for bad in ["0", "-2", "two", ""] {
            XCTAssertEqual(Parallel.defaultThreads(environment: ["PROMPTREPRO_THREADS": bad], cores: 4), 4, "PROMPTREPRO_THREADS=\(bad)")
        }
        XCTAssertEqual(Parallel.defaultThreads(environment: [:], cores: 0), 1)
        Parallel.preferredThreads = 5
        XCTAssertEqual(Parallel.defaultThreads(environment: ["PROMPTREPRO_THREADS": "3"], cores: 2), 5)
    }

    /// The spinning pool behind `Parallel.forRange` / `units` runs every chunk exactly once, with
    /// the chunk boundaries of the thread count (1 to 4 threads, counts 1 to 40, 300 calls in a row
    /// so workers are caught spinning, parked and late), serially when called from inside a chunk,
    /// and from two threads at once; and an op gives the bits of libdispatch's concurrentPerform.
    func testParallelPoolRunsEveryChunkOnce() throws {
        let saved = Parallel.threads
        defer { Parallel.configure(threads: saved); Parallel.usesSpinningPool = true }
        final class Hits: @unchecked Sendable {
            let lock = NSLock()
            var counts: [Int]
            var ranges: [Range<Int>] = []
            init(_ n: Int) { counts = Array(repeating: 0, count: n) }
            func hit(_ i: Int) { lock.lock(); counts[i] += 1; lock.unlock() }
            func range(_ r: Range<Int>) { lock.lock(); ranges.append(r); lock.unlock() }
        }
        for threads in 1...4 {
            Parallel.configure(threads: threads)
            for call in 0..<300 {
                let count = 1 + call % 40
                let hits = Hits(count), spans = Hits(0)
                Parallel.units(count) { i in hits.hit(i) }
                XCTAssertEqual(hits.counts, Array(repeating: 1, count: count), "units(\(count)), \(threads) threads")
                Parallel.forRange(count, costPerItem: 1 << 15) { r in spans.range(r) }
                let chunks = threads <= 1 || count < 2 ? 1 : min(threads, count)
                let expected = chunks == 1 ? [0..<count]
                    : (0..<chunks).map { ($0 * count / chunks)..<(($0 + 1) * count / chunks) }.filter { !$0.isEmpty }
                XCTAssertEqual(spans.ranges.sorted { $0.lowerBound < $1.lowerBound }, expected, "forRange(\(count)), \(threads) threads")
                // forRangeGuided: the chunks of guidedBounds, each run once.
                let quantum = 1 + call % 7, minQuanta = 1 + call % 3, guided = Hits(0)
                Parallel.forRangeGuided(count, quantum: quantum, minQuanta: minQuanta) { r in guided.range(r) }
                let bounds = Parallel.guidedBounds(count, quantum: quantum, minQuanta: minQuanta, threads: threads)
                let chunksExpected = threads <= 1 || bounds.count <= 2 ? [0..<count] : (0..<(bounds.count - 1)).map { bounds[$0]..<bounds[$0 + 1] }
                XCTAssertEqual(guided.ranges.sorted { $0.lowerBound < $1.lowerBound }, chunksExpected, "forRangeGuided(\(count), \(quantum), \(minQuanta)), \(threads) threads")
                if call % 50 == 0 { usleep(300) }   // let the workers park now and then
            }
            // Nested: a chunk's own parallel call runs its chunks on the calling thread.
            let nested = Hits(12 * 7)
            Parallel.units(12) { i in Parallel.forRange(7, costPerItem: 1 << 15) { r in for j in r { nested.hit(i * 7 + j) } } }
            XCTAssertEqual(nested.counts, Array(repeating: 1, count: 84), "nested, \(threads) threads")
        }
        // Two threads calling at once: one runs on the pool, the other serially; both complete.
        Parallel.configure(threads: 2)
        let a = Hits(1000), b = Hits(1000)
        DispatchQueue.concurrentPerform(iterations: 2) { side in
            for _ in 0..<50 { Parallel.units(1000) { i in (side == 0 ? a : b).hit(i) } }
        }
        XCTAssertEqual(a.counts, Array(repeating: 50, count: 1000))
        XCTAssertEqual(b.counts, Array(repeating: 50, count: 1000))
        // The same bits as concurrentPerform for an op split over threads (attention units, GEMM rows).
        func op() throws -> [Float] {
            let q = Tensor.normal([3, 37, 64], key: RNGKey(seed: 21)), k = Tensor.normal([3, 37, 64], key: RNGKey(seed: 22))
            let w = Tensor.normal([96, 64], key: RNGKey(seed: 23))
            let y = try attention(q: q, k: k, v: k, heads: 4, options: AttentionOptions(dropout: 0.1, key: RNGKey(seed: 24)))
            let rows = Tensor.normal([700, 64], key: RNGKey(seed: 25))  // a row-split product (balanced chunks)
            return (try linear(y, w)).array + (try linear(rows, w)).array
        }
        let pooled = try op()
        Parallel.usesSpinningPool = false
        XCTAssertEqual(try op().map(\.bitPattern), pooled.map(\.bitPattern))
        // and the bits of one thread (units claimed one by one, GEMM rows in balanced chunks).
        Parallel.usesSpinningPool = true
        Parallel.configure(threads: 1)
        XCTAssertEqual(try op().map(\.bitPattern), pooled.map(\.bitPattern))
    }
}
