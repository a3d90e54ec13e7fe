// Vectorised row kernels for the attention softmax, each with the scalar form it replaces as its
// oracle (tests compare them).
//
// exp8 is glibc's expf (the Arm optimized-routines algorithm, FMA build) done eight lanes at a
// time, step for step:
//   z = x·32/ln2 ; kd = fma(32/ln2, x, 1.5·2^52) (round to int through the shift) ; k = bits(kd)
//   r = fma(32/ln2, x, −(kd − shift))            r ∈ [−1/2, 1/2]
//   s = 2^(k/32) = bits(T[k mod 32] + k << 47)
//   y = s · (fma(fma(C0, r, C1), r², fma(r, C2, 1)))  in double, rounded once to float.
// Lanes outside |x| < 88 (glibc's special-case branch: overflow, subnormal, NaN) go through libm's
// expf itself, and −∞ gives 0, so every lane is bit-identical to `expf` on glibc with FMA.
import CGemm
import Foundation

enum ExpF {
    static let invLn2N: Double = 0x1.71547652b82fep+0 * 32
    static let shift: Double = 0x1.8p+52
    static let c0: Double = 0x1.c6af84b912394p-5 / 32_768
    static let c1: Double = 0x1.ebfce50fac4f3p-3 / 1_024
    static let c2: Double = 0x1.62e42ff0c52d6p-1 / 32
    /// T[i] = bits(2^(i/32)) − i·2^47 (glibc's __exp2f_data.tab, regenerated; a test checks the values).
    nonisolated(unsafe) static let table: UnsafeMutablePointer<UInt64> = {
        let t = UnsafeMutablePointer<UInt64>.allocate(capacity: 32)
        for i in 0..<32 { t[i] = exp2(Double(i) / 32).bitPattern &- (UInt64(i) << 47) }
        return t
    }()
}

@inline(__always)
func exp4d(_ x: SIMD4<Float>, _ tab: UnsafeMutablePointer<UInt64>) -> SIMD4<Float> {
    let xd = SIMD4<Double>(x)
    let inv = SIMD4<Double>(repeating: ExpF.invLn2N), sh = SIMD4<Double>(repeating: ExpF.shift)
    let kdShifted = sh.addingProduct(inv, xd)
    let ki = unsafeBitCast(kdShifted, to: SIMD4<UInt64>.self)
    let kd = kdShifted - sh
    let r = (-kd).addingProduct(inv, xd)
    let idx = ki & 31
    let t = SIMD4<UInt64>(tab[Int(idx[0])], tab[Int(idx[1])], tab[Int(idx[2])], tab[Int(idx[3])]) &+ (ki &<< 47)
    let s = unsafeBitCast(t, to: SIMD4<Double>.self)
    let z = SIMD4<Double>(repeating: ExpF.c1).addingProduct(SIMD4<Double>(repeating: ExpF.c0), r)
    let r2 = r * r
    var y = SIMD4<Double>(repeating: 1).addingProduct(r, SIMD4<Double>(repeating: ExpF.c2))
    y = y.addingProduct(z, r2)
    return SIMD4<Float>(y * s)
}

/// expf on eight lanes (see the file header); −∞ → 0 (masked scores) without leaving the SIMD path.
@inline(__always)
func exp8(_ x: SIMD8<Float>, _ tab: UnsafeMutablePointer<UInt64>) -> SIMD8<Float> {
    var y = SIMD8<Float>(lowHalf: exp4d(x.lowHalf, tab), highHalf: exp4d(x.highHalf, tab))
    let masked = x .== SIMD8<Float>(repeating: -.infinity)
    y.replace(with: 0, where: masked)
    let fast = (x .< SIMD8<Float>(repeating: 88)) .& (x .> SIMD8<Float>(repeating: -88)) .| masked
    if !all(fast) {
        for l in 0..<8 where !fast[l] { y[l] = expf(x[l]) }
    }
    return y
}

/// Which form runs the softmax's exponential pass: the AVX-512 C loop when the selected GEMM kernel
/// is avx512 (so `PROMPTREPRO_GEMM=avx2` times an AVX2-only host's code), else the Swift loop
/// (built for AVX2). Both give the same bits (tested); `forced` overrides the choice in tests.
enum SoftmaxExp {
    nonisolated(unsafe) static var forced: Bool?
    static var usesAVX512: Bool { forced ?? (BLAS.kernel == .avx512) }
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
    let lim = Int32(clamping: limit)
    var mx8 = ninf
    var j = 0
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
    let tab = ExpF.table
    let m8 = SIMD8<Float>(repeating: mx)
    var s8 = zero
    j = 0
    if SoftmaxExp.usesAVX512 {
        // The same loop on AVX-512 (Sources/CGemm/softmax_exp.c): the same bits, twice the lanes.
        j = n / 8 * 8
        withUnsafeMutablePointer(to: &s8) { p in
            p.withMemoryRebound(to: Float.self, capacity: 8) { pr_softmax_exp_avx512(row, j, mx, tab, $0) }
        }
    }
    while j + 8 <= n {
        let e = exp8(load8(row + j) - m8, tab)
        store8(e, row + j)
        s8 += e
        j += 8
    }
    var s = s8.sum()
    while j < n {
        let e = row[j] == -.infinity ? 0 : expf(row[j] - mx)
        row[j] = e
        s += e
        j += 1
    }
    let inv = SIMD8<Float>(repeating: 1 / s)
    j = 0
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
