// Vectorised row kernels for the attention softmax, each with the scalar form it replaces as its
// oracle (tests compare them).
//
// exp8 is e^x on eight float lanes, in fp32 throughout (the textbook scheme of vector libms):
//   n = rint(x·log2 e)       (x·log2 e rounded to float, then to the nearest integer, ties to even)
//   r = x − n·ln2, by two fused steps with ln2 split in two floats (hi: ln2 rounded to float,
//       lo: the rest), so |r| ≤ ln2/2 + ε
//   e^r = 1 + r·(1 + r·(1/2 + r·(1/6 + r·(1/24 + r·(1/120 + r·(1/720 + r/5040))))))
//       (Taylor to degree 7, Horner with fused steps: the truncation r⁸/8! < 5.2·10⁻⁹ is at most
//       0.09 ulp of e^r ≥ 0.707)
//   e^x = e^r · 2^n, 2^n built in the exponent bits (in two factors, so that subnormal results
//       and overflow come out of the same lanes).
// Checked against the double-precision exp over all 2^32 floats (scripts/check_exp_accuracy.c, on
// the C form, which gives exp8's bits): within 0.94 ulp everywhere (subnormal results included),
// NaN → NaN, −∞ (a masked score) → +0, overflow → +∞; for x uniform in [−20, 0], 93.7 % of
// results are correctly rounded and the rest 1 ulp off. That is the
// accuracy class of PyTorch's vectorised softmax (Sleef's expf_u10, within 1 ulp). Until
// 2026-12-02 the softmax ran glibc's expf algorithm (in double, with a 32-entry table; 99.9 %
// correctly rounded), at 1.6 ns per element on Zen 3 (four doubles per AVX2 register, a table load
// per lane) against 0.4 ns now.
import CGemm
import Foundation

enum ExpF {
    static let log2e: Float = 0x1.715476p+0
    /// ln 2 = ln2Hi + ln2Lo: ln2Hi is ln 2 rounded to float, ln2Lo the remainder rounded to float.
    static let ln2Hi: Float = 0x1.62e430p-1
    static let ln2Lo: Float = -0x1.05c610p-29
    /// Taylor coefficients 1/k!, k = 2 … 7.
    static let c2: Float = 1.0 / 2, c3: Float = 1.0 / 6, c4: Float = 1.0 / 24
    static let c5: Float = 1.0 / 120, c6: Float = 1.0 / 720, c7: Float = 1.0 / 5040
}

/// e^x on eight lanes (see the file header), without a branch: −∞ → +0, +∞ → +∞, NaN → NaN.
@inline(__always)
func exp8(_ x: SIMD8<Float>) -> SIMD8<Float> {
    typealias V = SIMD8<Float>
    // Inputs past the results' range are clamped (e^−150 and e^89 still round to 0 and +∞); a NaN
    // lane computes garbage and is replaced by its input at the end.
    var xc = x
    xc.replace(with: -150, where: x .< V(repeating: -150))
    xc.replace(with: 89, where: x .> V(repeating: 89))
    // rint(x·log2 e) by adding 1.5·2^23 (the sum's rounding drops the fraction, to even); the sum's
    // low mantissa bits are then n as an integer. (SIMD's float → int conversion and `rounded` ran
    // lane by lane through the standard library's generic code: a fifth of an evaluation's samples.)
    let shift = V(repeating: 0x1.8p23)
    let kd = xc * V(repeating: ExpF.log2e) + shift
    let n = kd - shift
    var r = xc.addingProduct(-n, V(repeating: ExpF.ln2Hi))
    r = r.addingProduct(-n, V(repeating: ExpF.ln2Lo))
    var p = V(repeating: ExpF.c6).addingProduct(V(repeating: ExpF.c7), r)
    p = V(repeating: ExpF.c5).addingProduct(p, r)
    p = V(repeating: ExpF.c4).addingProduct(p, r)
    p = V(repeating: ExpF.c3).addingProduct(p, r)
    p = V(repeating: ExpF.c2).addingProduct(p, r)
    p = V(repeating: 1).addingProduct(p, r)
    var y = V(repeating: 1).addingProduct(p, r)
    // × 2^n as 2^k1 · 2^k2 (k1 = ⌊n/2⌋): both factors are normal floats for every n the clamp
    // allows, the first product is exact, and the second rounds once, also into the subnormal
    // range or to +∞; for −126 ≤ n ≤ 127 both are exact, as one multiplication by 2^n would be.
    let k = unsafeBitCast(kd, to: SIMD8<Int32>.self) &- unsafeBitCast(shift, to: SIMD8<Int32>.self)
    let k1 = k &>> 1, k2 = k &- k1
    y *= unsafeBitCast((k1 &+ 127) &<< 23, to: V.self)
    y *= unsafeBitCast((k2 &+ 127) &<< 23, to: V.self)
    y.replace(with: x, where: x .!= x)
    return y
}

/// exp8's value for one input (its lane 0): the softmax's tail elements, so that every element of a
/// row gets the same function whatever its position.
@inline(__always)
func exp1(_ x: Float) -> Float { exp8(SIMD8<Float>(repeating: x))[0] }

/// Which form runs the softmax (Sources/CGemm/softmax_exp.c): where the CPU has AVX2 and FMA, the
/// whole row in one C call (`pr_softmax_row_avx2`), or with the AVX-512 kernel the Swift passes
/// around C's sixteen-lane ones; else the Swift loops. All give the same bits (tested); `forced`
/// false makes tests and `bench-one --alternate softmax-c` run the Swift loops (true never selects
/// C on a CPU without AVX2).
public enum SoftmaxExp {
    nonisolated(unsafe) public static var forced: Bool?
    static var usesC: Bool { (forced ?? true) && BLAS.avx2Available }
    /// Sixteen lanes per step (`pr_softmax_exp_avx512`, the same bits) where the AVX-512 GEMM kernel
    /// runs; `forced512` (tests) overrides the choice.
    nonisolated(unsafe) static var forced512: Bool?
    static var usesAVX512: Bool { forced512.map { $0 && BLAS.avx512Available } ?? (BLAS.kernel == .avx512) }
}

@inline(__always) func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

@inline(__always) func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
}

/// In-place softmax of the score row `row[0..<n]` after adding `bias` (when given), over keys
/// j < limit with keyMask[j] ≠ 0 (others → 0); a row with no allowed key becomes uniform (what an
/// additive float32-min mask yields). Eight lanes at a time; the sum of the exponentials is
/// accumulated per lane, then lanes are added in a fixed order.
@inline(__always)
func softmaxRowVector(_ row: UnsafeMutablePointer<Float>, _ n: Int, bias: UnsafePointer<Float>?, limit: Int,
                      keyMask: UnsafePointer<Float>?) {
    let ninf = SIMD8<Float>(repeating: -.infinity), zero = SIMD8<Float>(repeating: 0)
    let lane = SIMD8<Int32>(0, 1, 2, 3, 4, 5, 6, 7)
    if SoftmaxExp.usesC && !SoftmaxExp.usesAVX512 {  // the whole row in one C call (softmax_exp.c), the same bits
        pr_softmax_row_avx2(row, n, bias, keyMask, limit)
        return
    }
    let lim = Int32(clamping: limit)
    var mx8 = ninf
    var j = 0
    let wide = SoftmaxExp.usesC && SoftmaxExp.usesAVX512
    if wide {  // the same pass on sixteen lanes in C (softmax_exp.c)
        j = n / 8 * 8
        mx8 = SIMD8(repeating: pr_softmax_prepare_avx512(row, j, bias, keyMask, limit))
    }
    while j + 8 <= n {
        var v = load8(row + j)
        if let bias { v += load8(bias + j) }
        if let keyMask { v.replace(with: ninf, where: load8(keyMask + j) .== zero) }
        if j + 8 > limit { v.replace(with: ninf, where: lane &+ Int32(j) .>= SIMD8(repeating: lim)) }
        store8(v, row + j)
        mx8.replace(with: v, where: v .> mx8)
        j += 8
    }
    var mx = mx8.max()
    while j < n {
        var v = row[j] + (bias?[j] ?? 0)
        if j >= limit || keyMask?[j] == 0 { v = -.infinity }
        row[j] = v
        mx = max(mx, v)
        j += 1
    }
    if mx == -.infinity {
        for j in 0..<n { row[j] = 1 / Float(n) }
        return
    }
    let m8 = SIMD8<Float>(repeating: mx)
    var s8 = zero
    j = 0
    if SoftmaxExp.usesC {
        j = n / 8 * 8
        withUnsafeMutablePointer(to: &s8) { p in
            p.withMemoryRebound(to: Float.self, capacity: 8) {
                SoftmaxExp.usesAVX512 ? pr_softmax_exp_avx512(row, j, mx, $0) : pr_softmax_exp_avx2(row, j, mx, $0)
            }
        }
    }
    while j + 8 <= n {
        let e = exp8(load8(row + j) - m8)
        store8(e, row + j)
        s8 += e
        j += 8
    }
    var s = s8.sum()
    while j < n {
        let e = row[j] == -.infinity ? 0 : exp1(row[j] - mx)
        row[j] = e
        s += e
        j += 1
    }
    let inv = SIMD8<Float>(repeating: 1 / s)
    j = 0
    if wide {
        j = n / 8 * 8
        pr_softmax_scale_avx512(row, j, inv[0])
    }
    while j + 8 <= n { store8(load8(row + j) * inv, row + j); j += 8 }
    while j < n { row[j] *= inv[0]; j += 1 }
}

/// Oracle for `softmaxRowVector`: one element at a time with libm's expf and a running sum.
func softmaxRowScalar(_ row: UnsafeMutablePointer<Float>, _ n: Int, bias: UnsafePointer<Float>?, limit: Int,
                      keyMask: UnsafePointer<Float>?) {
    for j in 0..<n {
        if let bias { row[j] += bias[j] }
        if j >= limit || keyMask?[j] == 0 { row[j] = -.infinity }
    }
    var mx = -Float.infinity
    for j in 0..<n { mx = max(mx, row[j]) }
    if mx == -.infinity {
        for j in 0..<n { row[j] = 1 / Float(n) }
        return
    }
    var s: Float = 0
    for j in 0..<n {
        let e = row[j] == -.infinity ? 0 : expf(row[j] - mx)
        row[j] = e
        s += e
    }
    let inv = 1 / s
    for j in 0..<n { row[j] *= inv }
}

/// Softmax backward for one row: out[j] = p[j] · (dp[j] − Σ_k dp[k] p[k]); `out` may alias `p` or
/// `dp`. The dot product is accumulated per lane, then lanes are added in a fixed order.
@inline(__always)
func softmaxBackwardRowVector(p: UnsafePointer<Float>, dp: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, _ n: Int) {
    var d8 = SIMD8<Float>(repeating: 0)
    var j = 0
    while j + 8 <= n { d8 += load8(dp + j) * load8(p + j); j += 8 }
    var dot = d8.sum()
    while j < n { dot += dp[j] * p[j]; j += 1 }
    let d = SIMD8<Float>(repeating: dot)
    j = 0
    while j + 8 <= n { store8(load8(p + j) * (load8(dp + j) - d), out + j); j += 8 }
    while j < n { out[j] = p[j] * (dp[j] - dot); j += 1 }
}

/// Oracle for `softmaxBackwardRowVector`.
func softmaxBackwardRowScalar(p: UnsafePointer<Float>, dp: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, _ n: Int) {
    var dot: Float = 0
    for j in 0..<n { dot += dp[j] * p[j] }
    for j in 0..<n { out[j] = p[j] * (dp[j] - dot) }
}
