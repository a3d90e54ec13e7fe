import Support
import Foundation
@testable import Tensor
import XCTest

/// The vectorised softmax kernels against their scalar oracles and libm.
final class VectorMathTests: XCTestCase {
    /// glibc's __exp2f_data.tab (sysdeps/ieee754/flt-32/e_exp2f_data.c): bits(2^(i/32)) − i·2^47.
    let glibcTable: [UInt64] = [
        0x3ff0000000000000, 0x3fefd9b0d3158574, 0x3fefb5586cf9890f, 0x3fef9301d0125b51,
        0x3fef72b83c7d517b, 0x3fef54873168b9aa, 0x3fef387a6e756238, 0x3fef1e9df51fdee1,
        0x3fef06fe0a31b715, 0x3feef1a7373aa9cb, 0x3feedea64c123422, 0x3feece086061892d,
        0x3feebfdad5362a27, 0x3feeb42b569d4f82, 0x3feeab07dd485429, 0x3feea47eb03a5585,
        0x3feea09e667f3bcd, 0x3fee9f75e8ec5f74, 0x3feea11473eb0187, 0x3feea589994cce13,
        0x3feeace5422aa0db, 0x3feeb737b0cdc5e5, 0x3feec49182a3f090, 0x3feed503b23e255d,
        0x3feee89f995ad3ad, 0x3feeff76f2fb5e47, 0x3fef199bdd85529c, 0x3fef3720dcef9069,
        0x3fef5818dcfba487, 0x3fef7c97337b9b5f, 0x3fefa4afa2a490da, 0x3fefd0765b6e4540,
    ]

    func testExpTableIsGlibcs() {
        for i in 0..<32 { XCTAssertEqual(ExpF.table[i], glibcTable[i], "T[\(i)]") }
    }

    /// exp8 against libm's expf on random and special inputs: within 1 ulp of the double-precision
    /// exp everywhere, and bit-identical to expf where libm is glibc with FMA (x86-64 Linux, Haswell build).
    func testExp8MatchesExpf() {
        var xs: [Float] = [0, -0.0, 1e-30, -1e-30, 1, -1, 88, -88, 87.99, -87.99, 88.72, 89, -103, -104, -150,
                           .infinity, -.infinity, .nan, Float.leastNonzeroMagnitude, -Float.greatestFiniteMagnitude]
        var s = PhiloxStream(RNGKey(seed: 21))
        for i in 0..<400_000 {
            let u = Float(s.nextInt(below: 1 << 24)) / Float(1 << 24)
            xs.append(i % 4 == 0 ? -110 * u : (i % 4 == 1 ? 20 * u - 10 : (i % 4 == 2 ? 95 * u - 5 : -u)))
        }
        while xs.count % 8 != 0 { xs.append(-0.5) }
        var mismatches = 0, worstUlp: Float = 0
        for b in stride(from: 0, to: xs.count, by: 8) {
            let x = SIMD8<Float>(xs[b..<(b + 8)])
            let y = exp8(x, ExpF.table)
            for l in 0..<8 {
                let want = expf(x[l])
                if want.isNaN { XCTAssertTrue(y[l].isNaN, "exp(\(x[l]))"); continue }
                if y[l].bitPattern != want.bitPattern { mismatches += 1 }
                let exact = Foundation.exp(Double(x[l]))
                if exact.isFinite && exact > Double(Float.leastNormalMagnitude) && exact < Double(Float.greatestFiniteMagnitude) {
                    worstUlp = max(worstUlp, Float(abs(Double(y[l]) - exact) / Double(Float(exact).ulp)))
                } else {
                    XCTAssertEqual(y[l], want, "exp(\(x[l])) outside the normal range")
                }
            }
        }
        XCTAssertLessThanOrEqual(worstUlp, 1, "exp8 error in ulp")
        #if os(Linux) && arch(x86_64)
        // A Haswell build implies a host with FMA, where glibc dispatches to its FMA expf.
        if BuildISA.name.hasPrefix("x86-64 haswell") { XCTAssertEqual(mismatches, 0, "exp8 lanes differing from glibc expf") }
        #endif
        print("exp8: \(xs.count) inputs, worst \(worstUlp) ulp, \(mismatches) differ from expf")
    }

    func testSoftmaxRowMatchesScalar() {
        var s = PhiloxStream(RNGKey(seed: 22))
        for n in [1, 5, 8, 9, 16, 23, 64, 100, 357] {
            for variant in 0..<6 {
                let key = RNGKey(seed: 23).derive("row\(n)-\(variant)")
                let row = key.uniformArray(n, lo: -30, hi: 30)
                let bias = key.derive("bias").uniformArray(n, lo: -5, hi: 5)
                var mask = [Float](repeating: 1, count: n)
                for j in 0..<n where s.nextInt(below: 4) == 0 { mask[j] = 0 }
                if variant == 5 { mask = [Float](repeating: 0, count: n) }  // fully masked → uniform
                let limit = variant == 2 ? s.nextInt(below: n) + 1 : (variant == 3 ? 0 : n)
                var a = row, b = row
                bias.withUnsafeBufferPointer { bp in
                    mask.withUnsafeBufferPointer { mp in
                        let bptr = variant == 0 ? nil : bp.baseAddress, mptr = variant < 4 ? nil : mp.baseAddress
                        a.withUnsafeMutableBufferPointer { softmaxRowVector($0.baseAddress!, n, bias: bptr, limit: limit, keyMask: mptr) }
                        b.withUnsafeMutableBufferPointer { softmaxRowScalar($0.baseAddress!, n, bias: bptr, limit: limit, keyMask: mptr) }
                    }
                }
                for j in 0..<n {
                    XCTAssertEqual(a[j], b[j], accuracy: 2e-7 + 2e-6 * abs(b[j]), "n \(n) variant \(variant) j \(j)")
                    if b[j] == 0 { XCTAssertEqual(a[j], 0, "masked key must get exactly 0") }
                }
                XCTAssertEqual(a.reduce(0, +), 1, accuracy: 1e-5)
            }
        }
    }

    /// The AVX-512 exponential pass (Sources/CGemm/softmax_exp.c) against the Swift eight-lane loop
    /// it replaces on such CPUs: every output bit equal, for rows of every length class (16-wide
    /// steps, an 8-wide step, a scalar tail), masked keys, scores far below the max (subnormal
    /// and zero results through libm), a NaN score, and fully masked rows.
    func testAVX512SoftmaxExpIsBitIdenticalToSwiftLoop() throws {
        try XCTSkipUnless(BLAS.avx512Available, "no AVX-512 on this CPU")
        defer { SoftmaxExp.forced = nil }
        var s = PhiloxStream(RNGKey(seed: 25))
        var rows = 0
        for n in [1, 7, 8, 15, 16, 17, 24, 31, 33, 64, 100, 356, 357, 1000] {
            for variant in 0..<5 {
                let key = RNGKey(seed: 26).derive("exp\(n)-\(variant)")
                var row = key.uniformArray(n, lo: variant == 1 ? -200 : (variant == 0 ? -1 : -30), hi: variant == 0 ? 1 : 30)  // variant 0: exps of one size, so the lane sums' order shows
                if variant == 2, n > 3 { row[n / 2] = .nan }
                if variant == 3 { for j in 0..<n where s.nextInt(below: 3) == 0 { row[j] = -90 - Float(j % 50) } }
                let bias = key.derive("bias").uniformArray(n, lo: -5, hi: 5)
                var mask = [Float](repeating: 1, count: n)
                for j in 0..<n where s.nextInt(below: 4) == 0 { mask[j] = 0 }
                if variant == 4 { mask = [Float](repeating: 0, count: n) }
                var out: [[Float]] = []
                for avx in [false, true] {
                    SoftmaxExp.forced = avx
                    var a = row
                    bias.withUnsafeBufferPointer { bp in
                        mask.withUnsafeBufferPointer { mp in
                            a.withUnsafeMutableBufferPointer {
                                softmaxRowVector($0.baseAddress!, n, bias: variant == 0 ? nil : bp.baseAddress, limit: n,
                                                 keyMask: variant == 0 ? nil : mp.baseAddress)
                            }
                        }
                    }
                    out.append(a)
                }
                for j in 0..<n where out[0][j].bitPattern != out[1][j].bitPattern {
                    XCTFail("n \(n) variant \(variant) j \(j): Swift \(out[0][j]) AVX-512 \(out[1][j])"); break
                }
                rows += 1
            }
        }
        XCTAssertEqual(rows, 70)
    }

    func testSoftmaxBackwardRowMatchesScalar() {
        for n in [1, 7, 8, 15, 40, 356] {
            let key = RNGKey(seed: 24).derive("bw\(n)")
            let u = key.uniformArray(n, lo: 0, hi: 1), total = u.reduce(0, +)
            let p = u.map { $0 / total }, dp = key.derive("dp").uniformArray(n, lo: -2, hi: 2)  // p: a distribution
            var a = [Float](repeating: 0, count: n), b = a
            a.withUnsafeMutableBufferPointer { softmaxBackwardRowVector(p: p, dp: dp, out: $0.baseAddress!, n) }
            b.withUnsafeMutableBufferPointer { softmaxBackwardRowScalar(p: p, dp: dp, out: $0.baseAddress!, n) }
            for j in 0..<n { XCTAssertEqual(a[j], b[j], accuracy: 1e-6, "n \(n) j \(j)") }
        }
    }

    /// philox8 lane l equals the scalar Philox block at counter base + l (the Random123 known
    /// answers pin the scalar form), including bases whose high word is set.
    func testPhilox8MatchesScalarBlocks() {
        var s = PhiloxStream(RNGKey(seed: 25))
        for trial in 0..<200 {
            let key = RNGKey(seed: UInt64(s.nextInt(below: 1 << 30)) << 20 | UInt64(trial), stream: UInt64(s.nextInt(below: 1 << 30)) << 33 | 7)
            let base = (UInt64(s.nextInt(below: 1 << 30)) << (trial % 2 == 0 ? 3 : 30)) & ~7
            let (w0, w1, w2, w3) = philox8(key, base: base)
            for l in 0..<8 {
                let ctr = base + UInt64(l)
                let b = key.block(ctr)
                XCTAssertEqual([w0[l], w1[l], w2[l], w3[l]], [b.0, b.1, b.2, b.3], "key \(key) counter \(ctr)")
            }
        }
    }

    /// The SIMD dropout mask equals the scalar rule element by element, including a ragged tail.
    func testDropoutMaskMatchesScalarRule() {
        let n = 64 * 37 + 29, p: Float = 0.1, key = RNGKey(seed: 26, stream: 4)
        let x = Tensor(shape: [n], values: [Float](repeating: 1, count: n))
        let y = dropout(x, p: p, key: key)
        let t = dropThreshold(p)
        for e in 0..<n { XCTAssertEqual(y[e] != 0, dropoutUniform(key, e) >= t, "element \(e)") }
        // Recording keeps the mask as bits; backward must apply the same mask: d Σ y / dx = mask / (1 − p).
        let xg = Tensor(shape: [n], values: [Float](repeating: 1, count: n), requiresGrad: true)
        let tape = Tape()
        let loss = tape.record { sum(dropout(xg, p: p, key: key)) }
        tape.backward(loss)
        for e in 0..<n { XCTAssertEqual(xg.grad![e], dropoutUniform(key, e) >= t ? 1 / (1 - p) : 0, "gradient element \(e)") }
    }

    /// ReLU's and dropout's backward into a gradient not allocated yet write it without zeroing it
    /// first (`MaskBits.accumulate` through `bufferForProduct`): the bits equal accumulating into a
    /// zeroed gradient, −0 products (a negative upstream gradient at a masked element) stored as +0,
    /// whole chunks and a ragged tail, with each available form of the mask pass.
    func testMaskBackwardIntoFreshGradientMatchesZeroedOne() throws {
        defer { DropoutAVX512.forced = nil }
        let n = 64 * 9 + 21, key = RNGKey(seed: 61, stream: 2)
        let xv = RNGKey(seed: 62).uniformArray(n, lo: -1, hi: 1), cv = RNGKey(seed: 63).uniformArray(n, lo: -1, hi: 1)
        let c = Tensor(shape: [n], values: cv)
        func grad(zeroedFirst: Bool) throws -> [UInt32] {
            let x = Tensor(shape: [n], values: xv, requiresGrad: true)
            if zeroedFirst { _ = x.box.buffer() }   // a zeroed gradient: backward accumulates into it
            let tape = Tape()
            let loss = try tape.record { try sum(mul(dropout(relu(x), p: 0.3, key: key), c)) }
            tape.backward(loss)
            return x.grad!.array.map(\.bitPattern)
        }
        for avx in [false, true] where !avx || DropoutAVX512.available {
            DropoutAVX512.forced = avx
            let fresh = try grad(zeroedFirst: false), zeroed = try grad(zeroedFirst: true)
            XCTAssertEqual(fresh, zeroed, "AVX-512 form \(avx)")
            XCTAssertFalse(fresh.contains(Float(-0.0).bitPattern), "a −0 was stored")
            XCTAssertTrue(fresh.contains(Float(0).bitPattern), "no masked element in the test")
        }
        // Without the + 0 the masked elements with a negative upstream gradient would be −0.
        XCTAssertTrue(zip(xv, cv).contains { $0 < 0 && $1 < 0 }, "no negative upstream gradient at a masked element")
    }

    /// Dropout's whole chunks on AVX-512 (Sources/CGemm/dropout_mask.c) give the Swift form's bits:
    /// outputs (−0 from dropped negatives included), mask bits, and the mask applied backward with
    /// and without accumulation; chunk ranges that start on odd chunks and end in a ragged tail.
    /// Chunks whose Philox block index crosses 2^32 inside one 16-block draw are checked against
    /// the scalar rule.
    func testDropoutAVX512FormMatchesTheSwiftForm() throws {
        guard DropoutAVX512.available else { throw XCTSkip("this CPU has no AVX-512") }
        defer { DropoutAVX512.forced = nil }
        let n = 64 * 11 + 23, p: Float = 0.3, scale: Float = 1 / 0.7, key = RNGKey(seed: 41, stream: 0xDEAD_BEEF_0123)
        var v = RNGKey(seed: 42).uniformArray(n, lo: -1, hi: 1)
        v[5] = -0.0; v[6] = 0
        let g = RNGKey(seed: 43).uniformArray(n, lo: -1, hi: 1), acc0 = RNGKey(seed: 44).uniformArray(n, lo: -1, hi: 1)
        func run(_ avx: Bool, _ range: Range<Int>) -> ([UInt32], [UInt8], [UInt32], [UInt32], [UInt32]) {
            DropoutAVX512.forced = avx
            var out = [Float](repeating: 7, count: n), bits = [UInt8](repeating: 0xA5, count: (n + 63) / 64 * 8)
            var set = [Float](repeating: 7, count: n), added = acc0, fresh = [Float](repeating: 7, count: n)
            v.withUnsafeBufferPointer { src in
                dropoutChunks(range, count: n, p: p, scale: scale, key: key, src: src.baseAddress!, dst: &out, bits: &bits)
            }
            g.withUnsafeBufferPointer { src in
                maskApply(range, count: n, scale: scale, bits: bits, src: src.baseAddress!, dst: &set, accumulate: false)
                maskApply(range, count: n, scale: scale, bits: bits, src: src.baseAddress!, dst: &added, accumulate: true)
                maskApply(range, count: n, scale: scale, bits: bits, src: src.baseAddress!, dst: &fresh, accumulate: false, plusZero: true)
            }
            return (out.map(\.bitPattern), bits, set.map(\.bitPattern), added.map(\.bitPattern), fresh.map(\.bitPattern))
        }
        for range in [0..<12, 1..<12, 3..<8, 2..<3, 11..<12] {
            let a = run(true, range), b = run(false, range)
            XCTAssertEqual(a.4, b.4, "mask applied plus zero \(range)")
            XCTAssertEqual(a.0, b.0, "outputs \(range)"); XCTAssertEqual(a.1, b.1, "bits \(range)")
            XCTAssertEqual(a.2, b.2, "mask applied \(range)"); XCTAssertEqual(a.3, b.3, "mask accumulated \(range)")
        }
        // Chunks 2^29 − 1 … 2^29 + 1: blocks 2^32 − 8 … 2^32 + 15 (the low word wraps mid-draw).
        DropoutAVX512.forced = true
        let c0 = (1 << 29) - 1, chunks = 3
        var src = [Float](repeating: 1, count: chunks * 64), out = [Float](repeating: 0, count: chunks * 64)
        src.withUnsafeMutableBufferPointer { s in
            out.withUnsafeMutableBufferPointer { o in
                let shift = c0 * 64  // element index of the first chunk; the pointers are offset back by it
                dropoutChunks(c0..<(c0 + chunks), count: shift + chunks * 64, p: p, scale: scale, key: key,
                              src: UnsafePointer(s.baseAddress! - shift), dst: o.baseAddress! - shift, bits: nil)
            }
        }
        let t = dropThreshold(p)
        for i in 0..<(chunks * 64) { XCTAssertEqual(out[i] != 0, dropoutUniform(key, c0 * 64 + i) >= t, "element \(c0 * 64 + i)") }
    }

    /// ReLU over whole 64-element chunks and a tail: values as Swift's max(x, 0) (−0 → +0, NaN kept),
    /// and backward passes the gradient exactly where the output is > 0 (from the bits kept).
    func testReluChunksAndBits() {
        let n = 64 * 5 + 13
        var v = RNGKey(seed: 29).uniformArray(n, lo: -1, hi: 1)
        v[3] = 0; v[4] = -0.0; v[70] = .nan; v[n - 2] = 0
        let w = RNGKey(seed: 30).uniformArray(n, lo: -1, hi: 1)
        let x = Tensor(shape: [n], values: v, requiresGrad: true)
        let tape = Tape()
        var y: Tensor?
        let loss = tape.record { () -> Tensor in
            let r = relu(x)
            y = r
            return sum(try! mul(r, Tensor(shape: [n], values: w)))
        }
        tape.backward(loss)
        for i in 0..<n {
            let want = max(v[i], 0)
            if want.isNaN { XCTAssertTrue(y![i].isNaN) } else { XCTAssertEqual(y![i].bitPattern, want.bitPattern, "relu[\(i)]") }
            XCTAssertEqual(x.grad![i], v[i] > 0 ? w[i] : 0, "grad[\(i)]")
        }
    }

    /// Attention dropout over several whole 64-element mask chunks plus a tail, forward and backward.
    func testAttentionDropoutGradientsOverWholeChunks() throws {
        let (b, h, dk, tq, tk) = (2, 2, 3, 9, 21)
        let q = Tensor.uniform([b, tq, h * dk], lo: -1, hi: 1, key: RNGKey(seed: 27).derive("q"), requiresGrad: true)
        let k = Tensor.uniform([b, tk, h * dk], lo: -1, hi: 1, key: RNGKey(seed: 27).derive("k"), requiresGrad: true)
        let v = Tensor.uniform([b, tk, h * dk], lo: -1, hi: 1, key: RNGKey(seed: 27).derive("v"), requiresGrad: true)
        let opts = AttentionOptions(dropout: 0.3, key: RNGKey(seed: 28))
        try gradCheck("attention dropout 9x21", [q, k, v]) { try attention(q: q, k: k, v: v, heads: h, options: opts) }
    }
}
