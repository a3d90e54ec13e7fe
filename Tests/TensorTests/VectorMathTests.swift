import CGemm
import Support
import Foundation
@testable import Tensor
import XCTest

/// The vectorised softmax kernels against their scalar oracles and libm.
final class VectorMathTests: XCTestCase {
    /// exp8 against the double-precision exp (libm's `exp`; rounded to float it is the correctly
    /// rounded value but for double rounding, far rarer than the misses counted here) on random
    /// inputs over the softmax's range and beyond, subnormal results and overflow included: within
    /// 1 ulp everywhere, correctly rounded for ≥ 90 % of inputs (94 % here; an exhaustive run over
    /// all floats in C gave at most 0.94 ulp), −∞ → +0, +∞ → +∞, NaN → NaN, e⁰ = 1, and every
    /// lane the same as exp1 of its input. A truncated polynomial (degree 5), a one-part ln 2 or a
    /// single scaling by 2^n (whose exponent field leaves the float range below about −88 and
    /// above 88.4) fails.
    func testExp8IsWithinOneUlp() {
        var xs: [Float] = [0, -0.0, 1e-30, -1e-30, 1, -1, 88, -88, 87.99, -87.99, -86.99, 87.0, -87.0, 88.5, 88.72, 89, -103,
                           -104, -150, -1e30, 1e30, .infinity, -.infinity, .nan, Float.leastNonzeroMagnitude,
                           -Float.greatestFiniteMagnitude, 0x1.62e430p-1, -0x1.62e430p-1, 0x1.62e430p-2, -0x1.62e430p-2]
        var s = PhiloxStream(RNGKey(seed: 21))
        for i in 0..<400_000 {
            let u = Float(s.nextInt(below: 1 << 24)) / Float(1 << 24)
            xs.append(i % 4 == 0 ? -110 * u : (i % 4 == 1 ? 20 * u - 10 : (i % 4 == 2 ? 95 * u - 5 : -u)))
        }
        while xs.count % 8 != 0 { xs.append(-0.5) }
        var worstUlp: Double = 0, finite = 0, rounded = 0
        for b in stride(from: 0, to: xs.count, by: 8) {
            let x = SIMD8<Float>(xs[b..<(b + 8)])
            let y = exp8(x)
            for l in 0..<8 {
                XCTAssertEqual(exp1(x[l]).bitPattern, y[l].bitPattern, "lane \(l) of exp8 differs from exp1(\(x[l]))")
                if x[l].isNaN { XCTAssertTrue(y[l].isNaN, "exp(NaN)"); continue }
                let exact = Foundation.exp(Double(x[l]))
                let want = Float(exact)
                if want.isInfinite || want == 0 {  // past the range: only a neighbour's rounding may differ
                    XCTAssertTrue(y[l] == want || abs(Double(y[l]) - exact) <= Double(Float.leastNonzeroMagnitude),
                                  "exp(\(x[l])) = \(y[l]), want \(want)")
                    continue
                }
                XCTAssertTrue(y[l].isFinite, "exp(\(x[l])) = \(y[l])")
                // The float spacing of the binade `exact` lies in (half want.ulp just below a power of two).
                let below = want.significandBitPattern == 0 && exact < Double(want)
                worstUlp = max(worstUlp, abs(Double(y[l]) - exact) / (Double(want.ulp) * (below ? 0.5 : 1)))
                finite += 1
                if y[l] == want { rounded += 1 }
            }
        }
        XCTAssertLessThanOrEqual(worstUlp, 1, "exp8 error in ulp")
        XCTAssertGreaterThan(finite, 300_000)
        XCTAssertGreaterThanOrEqual(Double(rounded) / Double(finite), 0.9, "share of correctly rounded results")
        XCTAssertEqual(exp8(SIMD8<Float>(repeating: 0)), SIMD8<Float>(repeating: 1), "e⁰ = 1 exactly")
        XCTAssertEqual(exp1(-.infinity).bitPattern, Float(0).bitPattern, "e^−∞ = +0")
        XCTAssertEqual(exp1(.infinity), .infinity)
        print("exp8: \(finite) finite results, worst \(worstUlp) ulp, \(Double(rounded) / Double(finite)) correctly rounded")
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

    /// The C softmax (Sources/CGemm/softmax_exp.c: the whole row on AVX2, the exponential pass on
    /// AVX-512) against the Swift form it replaces: every output bit equal, for rows of every length class (8-wide
    /// steps, a scalar tail), masked keys, scores far below the max (subnormal and zero results),
    /// a NaN score, and fully masked rows; and exp8 lane by lane against the C pass on inputs whose
    /// x·log2 e lies within a few ulps of a half-integer (where rounding the product before the
    /// shift's addition decides n), over the whole range. A product and sum contracted into one
    /// FMA, or a changed summation order, fails it.
    /// On AVX-512 hosts the sixteen-lane pass (`pr_softmax_exp_avx512`) is held to the same bits.
    func testSoftmaxExpInCIsBitIdenticalToSwiftLoop() throws {
        try XCTSkipUnless(BLAS.avx2Available, "no AVX2 and FMA on this CPU")
        defer { SoftmaxExp.forced = nil; SoftmaxExp.forced512 = nil }
        var xs: [Float] = []
        for m in -230...130 {
            var x = Float((Double(m) + 0.5) / M_LOG2E)
            for _ in 0..<8 { x = x.nextDown }
            for _ in 0..<16 { xs.append(x); x = x.nextUp }
        }
        let ref = stride(from: 0, to: xs.count, by: 8).flatMap { b in
            let v = exp8(SIMD8<Float>(xs[b..<(b + 8)]))
            return (0..<8).map { v[$0] }
        }
        var viaC = xs, lanes = [Float](repeating: 0, count: 8)
        pr_softmax_exp_avx2(&viaC, viaC.count, 0, &lanes)
        for i in xs.indices where ref[i].bitPattern != viaC[i].bitPattern {
            XCTFail("e^\(xs[i]): Swift \(ref[i]) C \(viaC[i])"); break
        }
        if BLAS.avx512Available {
            var via512 = xs, lanes512 = [Float](repeating: 0, count: 8)
            pr_softmax_exp_avx512(&via512, via512.count, 0, &lanes512)
            for i in xs.indices where ref[i].bitPattern != via512[i].bitPattern {
                XCTFail("e^\(xs[i]): Swift \(ref[i]) AVX-512 \(via512[i])"); break
            }
            XCTAssertEqual(lanes512.map(\.bitPattern), lanes.map(\.bitPattern), "lane sums, AVX-512 against AVX2")
        }
        // Swift, C on eight lanes, C on sixteen (where the CPU has AVX-512)
        let paths: [(Bool, Bool)] = [(false, false), (true, false)] + (BLAS.avx512Available ? [(true, true)] : [])
        var s = PhiloxStream(RNGKey(seed: 25))
        var rows = 0
        for n in [1, 7, 8, 15, 16, 17, 24, 31, 33, 64, 100, 356, 357, 1000] {
            for variant in 0..<8 {
                let key = RNGKey(seed: 26).derive("exp\(n)-\(variant)")
                // variant 0: exps of one size, so the lane sums' order shows; 1: scores down to −200 (subnormal and zero results)
                var row = key.uniformArray(n, lo: variant == 1 ? -200 : (variant == 0 ? -1 : -30), hi: variant == 0 ? 1 : 30)
                if variant == 2, n > 3 { row[n / 2] = .nan }
                if variant == 3 { for j in 0..<n where s.nextInt(below: 3) == 0 { row[j] = -90 - Float(j % 50) } }
                let bias = key.derive("bias").uniformArray(n, lo: -5, hi: 5)
                var mask = [Float](repeating: 1, count: n)
                for j in 0..<n where s.nextInt(below: 4) == 0 { mask[j] = 0 }
                if variant == 4 { mask = [Float](repeating: 0, count: n) }
                if variant == 7 { for j in 0..<n { row[j] = [Float(-0.0), 0, -1][j % 3] } }  // −0 scores, no bias: the tail adds +0
                var out: [[Float]] = []
                for (c, wide) in paths {
                    SoftmaxExp.forced = c
                    SoftmaxExp.forced512 = wide
                    var a = row
                    bias.withUnsafeBufferPointer { bp in
                        mask.withUnsafeBufferPointer { mp in
                            a.withUnsafeMutableBufferPointer {
                                // variant 5: keys past a limit inside the row (causal rows), 8-lane blocks cut by it;
                                // 6: limit 0 (no allowed key: uniform)
                                softmaxRowVector($0.baseAddress!, n, bias: variant == 0 || variant == 7 ? nil : bp.baseAddress,
                                                 limit: variant == 5 ? n * 2 / 3 : (variant == 6 ? 0 : n),
                                                 keyMask: variant == 0 || variant == 7 ? nil : mp.baseAddress)
                            }
                        }
                    }
                    out.append(a)
                }
                for (i, o) in out.enumerated().dropFirst() {
                    for j in 0..<n where out[0][j].bitPattern != o[j].bitPattern {
                        XCTFail("n \(n) variant \(variant) j \(j): Swift \(out[0][j]) C path \(i) \(o[j])"); break
                    }
                }
                rows += 1
            }
        }
        XCTAssertEqual(rows, 112)
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
        defer { DropoutAVX512.forced = nil; DropoutAVX2.forced = nil }
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
        for (avx, c) in [(false, false), (false, true), (true, false)] where (!avx || DropoutAVX512.available) && (!c || DropoutAVX2.available) {
            DropoutAVX512.forced = avx
            DropoutAVX2.forced = c
            let fresh = try grad(zeroedFirst: false), zeroed = try grad(zeroedFirst: true)
            XCTAssertEqual(fresh, zeroed, "AVX-512 form \(avx), AVX2 C form \(c)")
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
        defer { DropoutAVX512.forced = nil; DropoutAVX2.forced = nil }
        DropoutAVX2.forced = false  // the other side is the Swift form, not the AVX2 C form
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

    /// Dropout's whole chunks in the AVX2 C form (Sources/CGemm/dropout_mask.c) give the Swift
    /// form's bits: outputs (−0 from dropped negatives and +0 inputs included), mask bits (every
    /// byte, the 0xA5 fill overwritten), with and without bits, and the mask applied backward in
    /// its three modes (set, accumulated, plus zero), over chunk ranges that start past 0 and end
    /// in a ragged tail, at two dropout rates; and chunks whose Philox block index crosses 2^32
    /// (the high word of the counter) against the scalar rule.
    func testDropoutAVX2FormMatchesTheSwiftForm() throws {
        guard DropoutAVX2.available else { throw XCTSkip("this CPU has no AVX2 and FMA") }
        defer { DropoutAVX512.forced = nil; DropoutAVX2.forced = nil }
        DropoutAVX512.forced = false
        let n = 64 * 11 + 23, key = RNGKey(seed: 51, stream: 0xFEED_0000_BEEF)
        var v = RNGKey(seed: 52).uniformArray(n, lo: -1, hi: 1)
        v[5] = -0.0; v[6] = 0; v[70] = .infinity; v[71] = -.infinity
        for p: Float in [0.1, 0.6] {
            let scale = 1 / (1 - p)
            func run(_ c: Bool, _ range: Range<Int>, withBits: Bool) -> ([UInt32], [UInt8]) {
                DropoutAVX2.forced = c
                var out = [Float](repeating: 7, count: n), bits = [UInt8](repeating: 0xA5, count: (n + 63) / 64 * 8)
                v.withUnsafeBufferPointer { src in
                    bits.withUnsafeMutableBufferPointer { b in
                        dropoutChunks(range, count: n, p: p, scale: scale, key: key, src: src.baseAddress!, dst: &out,
                                      bits: withBits ? b.baseAddress! : nil)
                    }
                }
                return (out.map(\.bitPattern), bits)
            }
            let g = RNGKey(seed: 53).uniformArray(n, lo: -1, hi: 1), acc0 = RNGKey(seed: 54).uniformArray(n, lo: -1, hi: 1)
            func applied(_ c: Bool, _ range: Range<Int>, _ bits: [UInt8]) -> [[UInt32]] {
                DropoutAVX2.forced = c
                var set = [Float](repeating: 7, count: n), added = acc0, fresh = [Float](repeating: 7, count: n)
                g.withUnsafeBufferPointer { src in
                    maskApply(range, count: n, scale: scale, bits: bits, src: src.baseAddress!, dst: &set, accumulate: false)
                    maskApply(range, count: n, scale: scale, bits: bits, src: src.baseAddress!, dst: &added, accumulate: true)
                    maskApply(range, count: n, scale: scale, bits: bits, src: src.baseAddress!, dst: &fresh, accumulate: false, plusZero: true)
                }
                return [set, added, fresh].map { $0.map(\.bitPattern) }
            }
            for range in [0..<12, 1..<12, 3..<8, 2..<3, 11..<12] {
                for withBits in [true, false] {
                    let a = run(true, range, withBits: withBits), b = run(false, range, withBits: withBits)
                    XCTAssertEqual(a.0, b.0, "outputs p \(p) \(range) bits \(withBits)")
                    XCTAssertEqual(a.1, b.1, "bits p \(p) \(range) bits \(withBits)")
                }
                let bits = run(false, 0..<12, withBits: true).1
                let a = applied(true, range, bits), b = applied(false, range, bits)
                XCTAssertEqual(a[0], b[0], "mask applied p \(p) \(range)")
                XCTAssertEqual(a[1], b[1], "mask accumulated p \(p) \(range)")
                XCTAssertEqual(a[2], b[2], "mask applied plus zero p \(p) \(range)")
                XCTAssertTrue(a[2].contains(Float(0).bitPattern) && !a[2].contains(Float(-0.0).bitPattern), "plus zero: +0, never −0")
            }
            // The C form ran: dropped elements are exact zeros of the input's sign, kept ones x · scale.
            let (out, _) = run(true, 0..<12, withBits: true)
            let t = dropThreshold(p)
            for e in 0..<(11 * 64) {
                let want = v[e] * (dropoutUniform(key, e) >= t ? scale : 0)
                if want.isNaN {  // ∞ dropped: ∞ · 0
                    XCTAssertTrue(Float(bitPattern: out[e]).isNaN, "element \(e) against the scalar rule, p \(p)")
                } else {
                    XCTAssertEqual(out[e], want.bitPattern, "element \(e) against the scalar rule, p \(p)")
                }
            }
        }
        // Chunks 2^29 − 1 … 2^29 + 1: blocks 2^32 − 8 … 2^32 + 15, the counter's high word 0 then 1.
        DropoutAVX2.forced = true
        let c0 = (1 << 29) - 1, chunks = 3, p: Float = 0.3
        var src = [Float](repeating: 1, count: chunks * 64), out = [Float](repeating: 0, count: chunks * 64)
        src.withUnsafeMutableBufferPointer { s in
            out.withUnsafeMutableBufferPointer { o in
                let shift = c0 * 64  // element index of the first chunk; the pointers are offset back by it
                dropoutChunks(c0..<(c0 + chunks), count: shift + chunks * 64, p: p, scale: 1 / (1 - p), key: key,
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

    /// `reluDropout` (one op, blocked) against `dropout(relu(x))` (two ops, two passes each way):
    /// the same output, and the same gradient of x whether x's gradient is fresh (the fused node
    /// runs first in backward) or accumulated into (another use of x ran first), on both dropout
    /// forms, at sizes with a tail and with several blocks per thread. Planted: NaN, ±0 and large
    /// inputs, and upstream gradients so large that scaling by 1/(1 − p) overflows where the ReLU
    /// zeroed the element and the dropout kept it — the two-op chain gives NaN there (∞ · 0), and so
    /// must the fused op. Applying the two masks in the other order gives 0 there and fails.
    func testReluDropoutIsTheTwoOpsBitForBit() throws {
        defer { DropoutAVX512.forced = nil; DropoutAVX2.forced = nil }
        let p: Float = 0.1, key = RNGKey(seed: 61, stream: 7)
        for (avx, c) in [(false, false), (false, true), (true, false)] where (!avx || DropoutAVX512.available) && (!c || DropoutAVX2.available) {
            DropoutAVX512.forced = avx
            DropoutAVX2.forced = c
            for n in [1, 63, 64, 65, 64 * 64 * 2 + 37, 64 * 64 * 5 + 64] {
                var v = RNGKey(seed: UInt64(70 + n)).uniformArray(n, lo: -1, hi: 1)
                let w = RNGKey(seed: UInt64(80 + n)).uniformArray(n, lo: -1, hi: 1)
                var g = RNGKey(seed: UInt64(90 + n)).uniformArray(n, lo: -1, hi: 1)
                for i in stride(from: 0, to: n, by: 97) { v[i] = [Float.nan, -0.0, 0, 3e38, -3e38][(i / 97) % 5] }
                // Upstream gradients that overflow when scaled, at elements ReLU zeroes (v ≤ 0).
                for i in stride(from: 5, to: n, by: 11) { v[i] = -0.5; g[i] = 3.2e38 }
                let c = Tensor(shape: [n], values: w), up = Tensor(shape: [n], values: g)
                func run(fused: Bool, otherUseFirst: Bool) -> (out: [UInt32], grad: [UInt32]) {
                    let x = Tensor(shape: [n], values: v, requiresGrad: true)
                    let tape = Tape()
                    var y: Tensor?
                    let loss = tape.record { () -> Tensor in
                        let other = { sum(try! mul(x, c)) }
                        let first = otherUseFirst ? other() : nil
                        let r = fused ? reluDropout(x, p: p, key: key) : dropout(relu(x), p: p, key: key, overwrite: true)
                        y = r
                        let main = sum(try! mul(r, up))
                        return try! add(main, first ?? other())
                    }
                    tape.backward(loss)
                    return (y!.array.map(\.bitPattern), x.grad!.array.map(\.bitPattern))
                }
                for otherUseFirst in [false, true] {
                    let a = run(fused: false, otherUseFirst: otherUseFirst), b = run(fused: true, otherUseFirst: otherUseFirst)
                    let what = "n \(n), AVX-512 \(avx), other use first \(otherUseFirst)"
                    XCTAssertEqual(a.out, b.out, "outputs, \(what)")
                    XCTAssertEqual(a.grad, b.grad, "gradients, \(what), first difference at \(a.grad.indices.first { a.grad[$0] != b.grad[$0] } ?? -1)")
                    if n > 1000 {
                        // The overflow corner ran: some planted element's gradient is NaN in both.
                        XCTAssertTrue(stride(from: 5, to: n, by: 11).contains { Float(bitPattern: b.grad[$0]).isNaN }, what)
                    }
                }
            }
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
