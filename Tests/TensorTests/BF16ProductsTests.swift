import CGemm
import Support
@testable import Tensor
import XCTest

/// The opt-in bf16 evaluation products (Sources/Tensor/BF16Products.swift, CGemm's gemm_bf16.c),
/// checked against a reference written here: both operands rounded to bf16 by the IEEE rule
/// (nearest, ties to even; denormals to zero, as the instructions do), products summed in Double.
/// Every bf16 kernel this CPU runs is checked (VDPBF16PS with AVX512-BF16; the AMX tile kernel with
/// AMX-BF16). Skipped on CPUs without AVX512-BF16.
final class BF16ProductsTests: XCTestCase {
    /// Round to bfloat16, nearest with ties to even, returned as the fp32 it stands for; denormal
    /// inputs count as 0 (VCVTNE2PS2BF16 and VDPBF16PS treat them so).
    static func bf16(_ x: Float) -> Float {
        if x.isNaN { return x }
        if x.isSubnormal { return x.sign == .minus ? -0.0 : 0 }
        let u = x.bitPattern
        let rounded = (u &+ 0x7FFF &+ ((u >> 16) & 1)) & 0xFFFF_0000
        return Float(bitPattern: rounded)
    }

    /// The rounding rule on hand-worked bit patterns.
    func testReferenceRoundingByHand() {
        XCTAssertEqual(Self.bf16(1).bitPattern, 0x3F80_0000)
        XCTAssertEqual(Self.bf16(Float(bitPattern: 0x3F80_8000)).bitPattern, 0x3F80_0000, "halfway, even stays")
        XCTAssertEqual(Self.bf16(Float(bitPattern: 0x3F81_8000)).bitPattern, 0x3F82_0000, "halfway, odd rounds up")
        XCTAssertEqual(Self.bf16(Float(bitPattern: 0x3F80_8001)).bitPattern, 0x3F81_0000, "above halfway")
        XCTAssertEqual(Self.bf16(Float(bitPattern: 0x3F80_7FFF)).bitPattern, 0x3F80_0000, "below halfway")
        XCTAssertEqual(Self.bf16(-1.0 / 3).bitPattern, 0xBEAB_0000)  // 0xBEAAAAAB: round up in magnitude
        XCTAssertEqual(Self.bf16(Float(bitPattern: 0x0000_1234)), 0, "denormal to zero")
    }

    /// C = alpha · bf16(A) · bf16(op(B)) + beta · C for ragged shapes (m not a multiple of the
    /// 12-row tile or the 16-row AMX tile, n of the 32-column panel, odd k, k across the kernels'
    /// k blocks: 1031 is three AMX blocks of 256 units), B stored both ways, alpha/beta, leading
    /// dimensions wider than the matrix, on every kernel: within fp32 summation error of the
    /// reference, and clearly not the fp32 product (so bf16 ran).
    func testProductsMatchTheRoundedReference() throws {
        try XCTSkipUnless(BF16Products.available, "no AVX512-BF16 on this CPU")
        for kernel in BF16Products.availableKernels { try checkAgainstReference(kernel) }
    }

    func checkAgainstReference(_ kernel: BF16Products.Kernel) throws {
        var s = PhiloxStream(RNGKey(seed: 91))
        func values(_ n: Int) -> [Float] { (0..<n).map { _ in Float(s.nextInt(below: 2_000_001)) / 1_000_000 - 1 } }
        for (m, n, k, transB, alpha, beta) in [(16, 32, 2, false, Float(1), Float(0)), (37, 45, 77, true, 1, 0), (29, 70, 1031, false, 0.5, 1),
                                               (130, 33, 800, true, 1, 0.25), (16, 1, 3, true, 2, 0), (17, 64, 33, false, 1, 0),
                                               (33, 31, 546, true, -1, 2)] {
            let lda = k + 3, ldb = (transB ? k : n) + 5, ldc = n + 2
            let a = values(m * lda), b = values((transB ? n : k) * ldb), c0 = values(m * ldc)
            var c = c0
            let before = BF16Products.products
            try BF16Products.with(kernel: kernel) {
                XCTAssertEqual(BF16Products.kernel, kernel)
                BLAS.sgemm(transA: false, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: &c, ldc: ldc)
            }
            XCTAssertEqual(BF16Products.products, before + 1, "\(m)×\(n)×\(k) ran in bf16")
            var worst = 0.0, fp32Gap = 0.0
            for i in 0..<m {
                for j in 0..<n {
                    var ref = 0.0, mag = 0.0, exact = 0.0
                    for p in 0..<k {
                        let bv = transB ? b[j * ldb + p] : b[p * ldb + j]
                        ref += Double(Self.bf16(a[i * lda + p])) * Double(Self.bf16(bv))
                        exact += Double(a[i * lda + p]) * Double(bv)
                        mag += abs(Double(a[i * lda + p]) * Double(bv))
                    }
                    let want = Double(alpha) * ref + Double(beta) * Double(c0[i * ldc + j])
                    let scale = abs(Double(alpha)) * mag + abs(Double(beta * c0[i * ldc + j])) + 1e-30
                    // A NaN (max(x, NaN) is x) counts as infinitely wrong.
                    let q = abs(Double(c[i * ldc + j]) - want) / scale
                    worst = q.isNaN ? .infinity : max(worst, q)
                    let fp32 = Double(alpha) * exact + Double(beta) * Double(c0[i * ldc + j])
                    fp32Gap = max(fp32Gap, abs(Double(c[i * ldc + j]) - fp32) / scale)
                }
                // Padding columns of C are untouched.
                for j in n..<ldc { XCTAssertEqual(c[i * ldc + j], c0[i * ldc + j]) }
            }
            XCTAssertLessThan(worst, 3e-6, "\(kernel): \(m)×\(n)×\(k) transB \(transB): relative to Σ|a·b|")
            if k >= 77 { XCTAssertGreaterThan(fp32Gap, 1e-4, "\(kernel): \(m)×\(n)×\(k): the bf16 rounding shows against fp32") }
        }
    }

    /// The bits do not depend on the thread count or on row spans (the split never changes an
    /// element's chain of operations), and products while a tape records, with A transposed or
    /// with fewer than 16 rows stay fp32 (the default path's bits).
    func testThreadsSpansAndWhereItDoesNotApply() throws {
        try XCTSkipUnless(BF16Products.available, "no AVX512-BF16 on this CPU")
        for kernel in BF16Products.availableKernels { try checkThreadsSpansAndExclusions(kernel) }
    }

    func checkThreadsSpansAndExclusions(_ kernel: BF16Products.Kernel) throws {
        let saved = Parallel.threads
        defer { Parallel.configure(threads: saved) }
        let (m, n, k) = (300, 200, 900)
        let a = Tensor.normal([m, k], key: RNGKey(seed: 5)), w = Tensor.normal([n, k], key: RNGKey(seed: 6))
        func product(threads: Int, spans: [Range<Int>]? = nil) throws -> [UInt32] {
            Parallel.configure(threads: threads)
            let c = Tensor(zeros: [m, n])
            try BF16Products.with(kernel: kernel) {
                if let spans {
                    BLAS.sgemmRowSpans(spans, transB: true, n: n, k: k, alpha: 1, a: a.data, lda: k, b: w.data, ldb: k, beta: 0, c: c.data, ldc: n)
                } else {
                    BLAS.sgemm(transA: false, transB: true, m: m, n: n, k: k, alpha: 1, a: a.data, lda: k, b: w.data, ldb: k, beta: 0, c: c.data, ldc: n)
                }
            }
            return c.array.map(\.bitPattern)
        }
        let one = try product(threads: 1)
        XCTAssertTrue(try product(threads: 2) == one, "\(kernel): 2 threads")
        XCTAssertTrue(try product(threads: 3) == one, "\(kernel): 3 threads")
        let spanned = try product(threads: 2, spans: [0..<100, 100..<117, 117..<300])
        XCTAssertTrue(spanned == one, "\(kernel): row spans")

        Parallel.configure(threads: 2)
        let fp32 = try linear(a, w).array.map(\.bitPattern)
        XCTAssertNotEqual(fp32, one, "bf16 differs from fp32")
        let before = BF16Products.products
        let recorded = try BF16Products.with(kernel: kernel) { try Tape().record { try linear(a, w) } }
        XCTAssertTrue(recorded.array.map(\.bitPattern) == fp32, "a recording tape keeps fp32")
        // Backward run inside `with` (outside `record`) keeps fp32 too: the input's gradient
        // g·W is a product with A not transposed and 300 rows.
        func inputGradient(_ inBF16: Bool) throws -> [UInt32] {
            let x = Tensor(shape: [m, k], values: a.array, requiresGrad: true)
            let tape = Tape()
            let loss = try tape.record { sum(try linear(x, w)) }
            if inBF16 { try BF16Products.with(kernel: kernel) { tape.backward(loss) } } else { tape.backward(loss) }
            return x.grad!.array.map(\.bitPattern)
        }
        let (g16, g32) = (try inputGradient(true), try inputGradient(false))
        XCTAssertTrue(g16 == g32, "backward keeps fp32 (first difference at \(g16.indices.first { g16[$0] != g32[$0] } ?? -1))")
        let rows15 = Tensor(shape: [15, k], values: Array(a.array[0..<(15 * k)]))
        let few = try BF16Products.with(kernel: kernel) { try linear(rows15, w) }
        XCTAssertTrue(try few.array.map(\.bitPattern) == linear(rows15, w).array.map(\.bitPattern), "fewer than 16 rows stay fp32")
        XCTAssertEqual(BF16Products.products, before)
        XCTAssertTrue(try linear(a, w).array.map(\.bitPattern) == fp32, "outside `with`, fp32")
    }

    /// `with(kernel:)` runs the kernel asked for, refuses one this CPU lacks (naming the ones it
    /// runs), nests (an inner `with` without a kernel keeps the outer one's) and restores the
    /// kernel on leaving; where both kernels run, their bits differ on a product.
    func testKernelChoice() throws {
        try XCTSkipUnless(BF16Products.available, "no AVX512-BF16 on this CPU")
        try BF16Products.with(kernel: .avx512BF16) {
            XCTAssertEqual(BF16Products.kernel, .avx512BF16)
            try BF16Products.with { XCTAssertEqual(BF16Products.kernel, .avx512BF16, "inner with keeps the outer kernel") }
            if BF16Products.amxAvailable {
                try BF16Products.with(kernel: .amxBF16) { XCTAssertEqual(BF16Products.kernel, .amxBF16) }
            }
            XCTAssertEqual(BF16Products.kernel, .avx512BF16, "restored after the inner scopes")
        }
        XCTAssertEqual(BF16Products.kernel, BF16Products.defaultKernel, "outside with: the default")
        guard BF16Products.amxAvailable else {
            XCTAssertThrowsError(try BF16Products.with(kernel: .amxBF16) {}) { error in
                XCTAssertTrue("\(error)".contains("amx_bf16"), "\(error)")
            }
            return
        }
        let (m, n, k) = (64, 64, 512)
        let a = Tensor.normal([m, k], key: RNGKey(seed: 7)), w = Tensor.normal([n, k], key: RNGKey(seed: 8))
        let viaDot = try BF16Products.with(kernel: .avx512BF16) { try linear(a, w) }.array.map(\.bitPattern)
        let viaTiles = try BF16Products.with(kernel: .amxBF16) { try linear(a, w) }.array.map(\.bitPattern)
        XCTAssertNotEqual(viaDot, viaTiles, "the two kernels sum the products in different orders")
    }

    /// Each kernel's bits depend on KC only: the C entry points with tiny MC and NC (many row and
    /// column blocks: the loops over ic and jc) give the bits of one block as large as the
    /// product, and those of `BLAS.sgemm` inside `with` (the default blocking), for the same KC.
    func testBitsDoNotDependOnRowOrColumnBlocks() throws {
        try XCTSkipUnless(BF16Products.available, "no AVX512-BF16 on this CPU")
        let (m, n, k) = (150, 230, 700)
        let a = Tensor.normal([m, k], key: RNGKey(seed: 11)), w = Tensor.normal([n, k], key: RNGKey(seed: 12))
        let packed = UnsafeMutablePointer<UInt32>.allocate(capacity: pr_bf16_packed_b_units(n, k) + 16)
        defer { packed.deallocate() }
        let aligned = UnsafeMutablePointer<UInt32>(bitPattern: (UInt(bitPattern: packed) + 63) & ~UInt(63))!
        pr_bf16_pack_b_cols(1, n, k, w.data, k, 0, n, aligned)
        for kernel in BF16Products.availableKernels {
            let product = kernel == .amxBF16 ? pr_sgemm_bf16_amx_packed : pr_sgemm_bf16_packed
            let kc = BF16Products.blocking(kernel).kc
            func run(mc: Int, nc: Int) -> [UInt32] {
                let c = Tensor(zeros: [m, n])
                product(m, n, k, 1, a.data, k, aligned, 0, c.data, n, mc, kc, nc)
                return c.array.map(\.bitPattern)
            }
            let whole = run(mc: 4096, nc: 4096)
            XCTAssertTrue(run(mc: 32, nc: 32) == whole, "\(kernel): MC 32, NC 32")
            XCTAssertTrue(run(mc: 96, nc: 64) == whole, "\(kernel): MC 96, NC 64")
            let viaBLAS = try BF16Products.with(kernel: kernel) { try linear(a, w) }.array.map(\.bitPattern)
            XCTAssertTrue(viaBLAS == whole, "\(kernel): BLAS.sgemm's default blocking")
        }
    }
}
