// Broadcasting binary ops, scalar scale, activations (ReLU, gelu_new, ELU), dropout, sum/mean.
import Foundation
import CGemm
import Support

/// NumPy-style broadcast of two shapes, iterated as rows over the last output axis.
struct Broadcast {
    let outShape: [Int]
    let aStrides: [Int], bStrides: [Int]  // per output axis, 0 where broadcast
    let inner: Int                          // length of the last output axis
    let rows: Int

    init(_ op: String, _ a: [Int], _ b: [Int]) throws {
        let r = max(a.count, b.count)
        let pa = Array(repeating: 1, count: r - a.count) + a
        let pb = Array(repeating: 1, count: r - b.count) + b
        var out = [Int](repeating: 1, count: r)
        for i in 0..<r {
            if pa[i] == pb[i] || pb[i] == 1 { out[i] = pa[i] } else if pa[i] == 1 { out[i] = pb[i] } else {
                throw TensorError.shapeMismatch(op: op, detail: "\(shapeString(a)) and \(shapeString(b)) do not broadcast")
            }
        }
        func strides(_ s: [Int]) -> [Int] {
            var st = [Int](repeating: 0, count: r)
            var acc = 1
            for i in stride(from: r - 1, through: 0, by: -1) {
                st[i] = s[i] == 1 ? 0 : acc
                acc *= s[i]
            }
            return st
        }
        outShape = out
        aStrides = strides(pa)
        bStrides = strides(pb)
        inner = r == 0 ? 1 : out[r - 1]
        rows = inner == 0 ? 0 : out.reduce(1, *) / inner
    }

    /// Element offsets into a and b of the first element of output row `row`.
    @inline(__always)
    func offsets(row: Int) -> (Int, Int) {
        var rem = row, oa = 0, ob = 0
        var i = outShape.count - 2
        while i >= 0 {
            let d = outShape[i]
            let idx = rem % d
            rem /= d
            oa += idx * aStrides[i]
            ob += idx * bStrides[i]
            i -= 1
        }
        return (oa, ob)
    }

    var aInner: Int { outShape.isEmpty ? 0 : aStrides[outShape.count - 1] }
    var bInner: Int { outShape.isEmpty ? 0 : bStrides[outShape.count - 1] }
}

enum BinaryKind { case add, sub, mul }

func binary(_ kind: BinaryKind, _ a: Tensor, _ b: Tensor, _ name: String) throws -> Tensor {
    let bc = try Broadcast(name, a.shape, b.shape)
    let out = Tensor(uninitialized: bc.outShape)
    let inner = bc.inner, sa = bc.aInner, sb = bc.bInner
    let pa = a.data, pb = b.data, po = out.data
    if a.shape == b.shape {
        Parallel.forRange(out.count) { r in
            switch kind {
            case .add: for i in r { po[i] = pa[i] + pb[i] }
            case .sub: for i in r { po[i] = pa[i] - pb[i] }
            case .mul: for i in r { po[i] = pa[i] * pb[i] }
            }
        }
    } else {
        Parallel.forRange(bc.rows, costPerItem: inner) { rows in
            for row in rows {
                let (oa, ob) = bc.offsets(row: row)
                let o = po + row * inner
                for j in 0..<inner {
                    let x = pa[oa + j * sa], y = pb[ob + j * sb]
                    switch kind {
                    case .add: o[j] = x + y
                    case .sub: o[j] = x - y
                    case .mul: o[j] = x * y
                    }
                }
            }
        }
    }
    if Tape.needsGrad(a, b) {
        // A sum with a constant (GPT-2's position embeddings) is row-wise in the other input
        // (GradientRows.swift).
        if kind != .mul {
            if !b.requiresGrad, a.shape == out.shape { out.inheritGradientRows(a) }
            if !a.requiresGrad, b.shape == out.shape { out.inheritGradientRows(b) }
        }
        let ob = out.box, ab = a.box, bb = b.box
        // add/sub need no input values; mul keeps both inputs alive for its gradient.
        let keepA: Tensor? = kind == .mul ? a : nil, keepB: Tensor? = kind == .mul ? b : nil
        let sameShape = a.shape == b.shape
        Tape.push(out, inputs: [a, b]) {
            let g = ob.grad!.data
            let va = keepA?.data, vb = keepB?.data
            if sameShape {
                let n = bc.rows * inner
                if ab.requiresGrad {
                    let ga = ab.buffer()
                    Parallel.forRange(n) { r in
                        switch kind {
                        case .add, .sub: for i in r { ga[i] += g[i] }
                        case .mul: for i in r { ga[i] += g[i] * vb![i] }
                        }
                    }
                }
                if bb.requiresGrad {
                    let gb = bb.buffer()
                    Parallel.forRange(n) { r in
                        switch kind {
                        case .add: for i in r { gb[i] += g[i] }
                        case .sub: for i in r { gb[i] -= g[i] }
                        case .mul: for i in r { gb[i] += g[i] * va![i] }
                        }
                    }
                }
                return
            }
            // Reductions over broadcast axes run serially in row order: deterministic.
            if ab.requiresGrad {
                let ga = ab.buffer()
                for row in 0..<bc.rows {
                    let (oa, ob2) = bc.offsets(row: row)
                    let gr = g + row * inner
                    for j in 0..<inner {
                        switch kind {
                        case .add, .sub: ga[oa + j * sa] += gr[j]
                        case .mul: ga[oa + j * sa] += gr[j] * vb![ob2 + j * sb]
                        }
                    }
                }
            }
            if bb.requiresGrad {
                let gb = bb.buffer()
                for row in 0..<bc.rows {
                    let (oa, ob2) = bc.offsets(row: row)
                    let gr = g + row * inner
                    for j in 0..<inner {
                        switch kind {
                        case .add: gb[ob2 + j * sb] += gr[j]
                        case .sub: gb[ob2 + j * sb] -= gr[j]
                        case .mul: gb[ob2 + j * sb] += gr[j] * va![oa + j * sa]
                        }
                    }
                }
            }
        }
    }
    return out
}

/// a + b with NumPy broadcasting.
public func add(_ a: Tensor, _ b: Tensor) throws -> Tensor { try binary(.add, a, b, "add") }
/// a − b with NumPy broadcasting.
public func sub(_ a: Tensor, _ b: Tensor) throws -> Tensor { try binary(.sub, a, b, "sub") }
/// a ⊙ b with NumPy broadcasting.
public func mul(_ a: Tensor, _ b: Tensor) throws -> Tensor { try binary(.mul, a, b, "mul") }

/// c · x.
public func scale(_ x: Tensor, _ c: Float) -> Tensor {
    let out = Tensor(uninitialized: x.shape)
    let px = x.data, po = out.data
    Parallel.forRange(x.count) { r in for i in r { po[i] = c * px[i] } }
    if Tape.needsGrad(x) {
        let ob = out.box, xb = x.box, n = x.count
        Tape.push(out, inputs: [x]) {
            let g = ob.grad!.data, gx = xb.buffer()
            Parallel.forRange(n) { r in for i in r { gx[i] += c * g[i] } }
        }
    }
    return out
}

/// Elementwise unary op with derivative computed from the input. With `overwrite` (x is a
/// temporary nobody reads afterwards) and no gradient to record, the result is written over x.
func unary(_ x: Tensor, overwrite: Bool = false, _ f: @escaping (Float) -> Float, _ df: @escaping (Float) -> Float) -> Tensor {
    let record = Tape.needsGrad(x)
    let out = overwrite && !record ? Tensor(shape: x.shape, borrowing: x.data, owner: x) : Tensor(uninitialized: x.shape)
    let px = x.data, po = out.data
    Parallel.forRange(x.count, costPerItem: 4) { r in for i in r { po[i] = f(px[i]) } }
    if record {
        let ob = out.box  // keeps x: the derivative needs its values
        Tape.push(out, inputs: [x]) {
            let g = ob.grad!.data, gx = x.gradBuffer(), px = x.data
            Parallel.forRange(x.count, costPerItem: 4) { r in for i in r { gx[i] += g[i] * df(px[i]) } }
        }
    }
    return out
}

/// max(x, 0). With `overwrite` (x is a temporary nobody reads afterwards) the result is written
/// over x, also when recording. When recording, ReLU′ is kept as bits (output > 0), 1/32 of the
/// activation, so neither input nor output stays alive for backward.
public func relu(_ x: Tensor, overwrite: Bool = false) -> Tensor {
    let out = overwrite ? Tensor(shape: x.shape, borrowing: x.data, owner: x) : Tensor(uninitialized: x.shape)
    let px = UnsafePointer(x.data), po = out.data, n = x.count
    let record = Tape.needsGrad(x)
    let bits = record ? MaskBits(count: n) : nil
    Parallel.forRange((n + 63) / 64, costPerItem: 64) { chunks in reluChunks(chunks, count: n, src: px, dst: po, bits: bits?.bytes) }
    if record, let bits {
        let ob = out.box, xb = x.box
        Tape.push(out, inputs: [x]) { bits.accumulate(count: n, scale: 1, ob.grad!.data, into: xb) }
    }
    return out
}

/// dst = max(src, 0) (as Swift's `max`: NaN stays NaN, −0 becomes +0) over 64-element chunks;
/// bit e of `bits` is set iff dst[e] > 0. src may equal dst.
@inline(__always)
func reluChunks(_ range: Range<Int>, count: Int, src: UnsafePointer<Float>, dst: UnsafeMutablePointer<Float>,
                bits: UnsafeMutablePointer<UInt8>?) {
    let zero = SIMD8<Float>(repeating: 0)
    for chunk in range {
        let base = chunk * 64
        if base + 64 <= count {
            for g in 0..<8 {
                let o = base + g * 8
                let x = load8(src + o)
                let y = x.replacing(with: zero, where: x .<= zero)
                store8(y, dst + o)
                if let bits { bits[o >> 3] = packBits(y .> zero) }
            }
        } else {
            if let bits { for i in (base >> 3)..<(base >> 3 + 8) { bits[i] = 0 } }
            for i in base..<count {
                let y = max(src[i], 0)
                dst[i] = y
                if let bits, y > 0 { bits[i >> 3] |= UInt8(1) << UInt8(i & 7) }
            }
        }
    }
}

/// gelu_new: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), the tanh approximation.
public func geluNew(_ x: Tensor, overwrite: Bool = false) -> Tensor {
    let c: Float = 0.797_884_56  // √(2/π)
    return unary(x, overwrite: overwrite, { v in
        0.5 * v * (1 + tanhf(c * (v + 0.044715 * v * v * v)))
    }, { v in
        let u = c * (v + 0.044715 * v * v * v)
        let t = tanhf(u)
        let du = c * (1 + 3 * 0.044715 * v * v)
        return 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * du
    })
}

/// Exact GELU: x·Φ(x) = 0.5·x·(1 + erf(x/√2)) (torch `gelu`, transformers ACT2FN["gelu"]).
public func gelu(_ x: Tensor, overwrite: Bool = false) -> Tensor {
    let invSqrt2: Float = 0.707_106_78, invSqrt2Pi: Float = 0.398_942_28
    return unary(x, overwrite: overwrite, { v in 0.5 * v * (1 + erff(v * invSqrt2)) },
                 { v in 0.5 * (1 + erff(v * invSqrt2)) + v * invSqrt2Pi * expf(-0.5 * v * v) })
}

/// SiLU (swish): x·σ(x) (torch `silu`, transformers ACT2FN["silu"]); derivative
/// σ(x)·(1 + x·(1 − σ(x))).
public func silu(_ x: Tensor, overwrite: Bool = false) -> Tensor {
    unary(x, overwrite: overwrite, { v in v / (1 + expf(-v)) }, { v in
        let s = 1 / (1 + expf(-v))
        return s * (1 + v * (1 - s))
    })
}

/// ELU with alpha: x if x > 0 else alpha·(eˣ − 1).
public func elu(_ x: Tensor, alpha: Float = 1) -> Tensor {
    unary(x, { $0 > 0 ? $0 : alpha * (expf($0) - 1) }, { $0 > 0 ? 1 : alpha * expf($0) })
}

public func tanh(_ x: Tensor) -> Tensor {
    unary(x, { tanhf($0) }, { let t = tanhf($0); return 1 - t * t })
}

/// Inverted dropout: keeps an element iff its uniform draw u ≥ p, scaling kept ones by 1/(1−p).
/// The mask is a pure function of (key, element index); when recording, forward keeps it as bits
/// (1/32 of the activation) so backward applies it without drawing the random numbers again.
/// `overwrite`: the result is written over x's storage (the same values), for an x that nothing
/// reads afterwards, in forward or backward (a linear layer's or an activation's output whose only
/// reader is this dropout): while a tape records, x and the result then hold one buffer between
/// them instead of two.
public func dropout(_ x: Tensor, p: Float, key: RNGKey?, overwrite: Bool = false) -> Tensor {
    guard p > 0, let key else { return x }
    precondition(p < 1, "dropout probability must be < 1, got \(p)")
    let out = overwrite ? Tensor(shape: x.shape, borrowing: x.data, owner: x) : Tensor(uninitialized: x.shape)
    let px = x.data, po = out.data, s = 1 / (1 - p), n = x.count
    let record = Tape.needsGrad(x)
    let bits = record ? MaskBits(count: n) : nil
    dropoutApply(count: n, p: p, scale: s, key: key, src: px, dst: po, bits: bits?.bytes)
    if record, let bits {
        out.inheritGradientRows(x)  // row-wise (GradientRows.swift)
        let ob = out.box, xb = x.box
        Tape.push(out, inputs: [x]) { bits.accumulate(count: n, scale: s, ob.grad!.data, into: xb) }
    }
    return out
}

/// dropout(relu(x)) as one op, for a ReLU whose output nothing but the dropout reads (T5's FFN:
/// ReLU on the d_ff activations, then dropout): the values, the two masks and x's gradient have
/// the bits of `dropout(relu(x, overwrite: true), p:, key:, overwrite: true)`, since each
/// 64-element chunk goes through the same two passes (`reluChunks`, `dropoutChunks`; the mask is a
/// function of the chunk index alone) and backward through the same two mask applications (the
/// dropout's onto the +0 of a fresh buffer, as into the ReLU output's unwritten gradient, then
/// ReLU′'s into x's) — only blocked: both passes run on a block of `Fused.blockChunks` chunks while
/// it is in L1, so the [count] tensor between them is neither written to memory and read back in
/// forward nor allocated as a gradient in backward. Shapes: any; the result has x's shape (x's
/// storage with `overwrite`). p = 0 or no key: `relu` alone, as `dropout` returns its input.
public func reluDropout(_ x: Tensor, p: Float, key: RNGKey?, overwrite: Bool = false) -> Tensor {
    guard p > 0, let key else { return relu(x, overwrite: overwrite) }
    precondition(p < 1, "dropout probability must be < 1, got \(p)")
    let out = overwrite ? Tensor(shape: x.shape, borrowing: x.data, owner: x) : Tensor(uninitialized: x.shape)
    let px = UnsafePointer(x.data), po = out.data, s = 1 / (1 - p), n = x.count, chunks = (n + 63) / 64
    let record = Tape.needsGrad(x)
    let reluBits = record ? MaskBits(count: n) : nil, dropBits = record ? MaskBits(count: n) : nil
    Parallel.forRange(chunks, costPerItem: 320) { range in
        for block in Fused.blocks(range) {
            reluChunks(block, count: n, src: px, dst: po, bits: reluBits?.bytes)
            dropoutChunks(block, count: n, p: p, scale: s, key: key, src: po, dst: po, bits: dropBits?.bytes)
        }
    }
    if record, let reluBits, let dropBits {
        let ob = out.box, xb = x.box
        Tape.push(out, inputs: [x]) {
            let g = UnsafePointer(ob.grad!.data)
            let (dst, fresh) = xb.bufferForProduct()
            Parallel.forRange(chunks, costPerItem: 256) { range in
                // The ReLU output's gradient, one block at a time: `between - 64·lo` is indexed by
                // element as the whole tensor would be (maskApply indexes by chunk · 64).
                let between = UnsafeMutablePointer<Float>.allocate(capacity: Fused.blockChunks * 64)
                defer { between.deallocate() }
                for block in Fused.blocks(range) {
                    let at = between - block.lowerBound * 64
                    maskApply(block, count: n, scale: s, bits: dropBits.bytes, src: g, dst: at, accumulate: false, plusZero: true)
                    maskApply(block, count: n, scale: 1, bits: reluBits.bytes, src: at, dst: dst, accumulate: !fresh, plusZero: fresh)
                }
            }
        }
    }
    return out
}

/// The blocking of fused elementwise passes (`reluDropout`).
enum Fused {
    /// 64 chunks of 64 floats: 16 KB, which stays in L1 between a block's two passes.
    static let blockChunks = 64
    /// `range` (of chunk indices) in consecutive blocks of at most `blockChunks`.
    static func blocks(_ range: Range<Int>) -> [Range<Int>] {
        stride(from: range.lowerBound, to: range.upperBound, by: blockChunks).map { $0..<min($0 + blockChunks, range.upperBound) }
    }
}

/// A mask kept from forward to backward as bits (dropout's kept elements, ReLU′): element e is set
/// iff bit e % 8 of byte e / 8 is. Whole 64-element chunks are allocated.
final class MaskBits {
    let bytes: UnsafeMutablePointer<UInt8>
    init(count: Int) { bytes = .allocate(capacity: (count + 63) / 64 * 8) }
    deinit { bytes.deallocate() }

    /// box's gradient[i] += src[i]·mask[i]·scale for i < count, split over threads in whole
    /// chunks. A gradient not allocated yet is written without being zeroed and read back first:
    /// as src[i]·mask[i]·scale + 0, the bits of adding into zeros (+0 + y is y, except −0 → +0).
    func accumulate(count: Int, scale: Float, _ src: UnsafePointer<Float>, into box: GradBox) {
        let (dst, fresh) = box.bufferForProduct()
        Parallel.forRange((count + 63) / 64, costPerItem: 128) { chunks in
            maskApply(chunks, count: count, scale: scale, bits: bytes, src: src, dst: dst, accumulate: !fresh, plusZero: fresh)
        }
    }
}

/// dst[i] = src[i]·mask[i]·scale, split over threads in whole 64-element chunks; the mask bits are
/// written to `bits` when given.
/// Mask rule (shared with attention dropout and its oracle): in chunk c = e / 64, with r = e % 64,
/// element e uses Philox block 8c + (r % 8) of the key's stream, word (r / 8) % 4, low 16 bits when
/// r < 32 and high 16 bits otherwise; it is kept iff that 16-bit value ≥ round(p·65536).
@inline(__always)
func dropoutApply(count: Int, p: Float, scale: Float, key: RNGKey, src: UnsafePointer<Float>,
                  dst: UnsafeMutablePointer<Float>, bits: UnsafeMutablePointer<UInt8>?) {
    let chunks = (count + 63) / 64
    Parallel.forRange(chunks, costPerItem: 256) { range in
        dropoutChunks(range, count: count, p: p, scale: scale, key: key, src: src, dst: dst, bits: bits)
    }
}

/// Whether dropout's whole chunks run the AVX-512 form (Sources/CGemm/dropout_mask.c; the same
/// bits as the Swift form): with the AVX-512 GEMM kernel, so `PROMPTREPRO_GEMM=avx2` runs an
/// AVX2 host's code; `forced` lets tests (and `bench-one --alternate dropout-c`) compare the forms.
public enum DropoutAVX512 {
    static var available: Bool { BLAS.avx512Available }
    nonisolated(unsafe) public static var forced: Bool?
    static var uses: Bool { forced.map { $0 && available } ?? (BLAS.kernel == .avx512) }
}

/// Whether dropout's whole chunks and the mask's application in backward (`maskApply`) run the AVX2
/// C form (Sources/CGemm/dropout_mask.c; the same bits as the Swift form) where the AVX-512 form
/// does not: on every CPU with AVX2 and FMA; `forced` false keeps the Swift form (tests compare
/// the forms).
public enum DropoutAVX2 {
    static var available: Bool { BLAS.avx2Available }
    nonisolated(unsafe) public static var forced: Bool?
    static var uses: Bool { forced.map { $0 && available } ?? available }
}

/// The dropout threshold on 16-bit uniforms.
@inline(__always)
func dropThreshold(_ p: Float) -> UInt32 { UInt32(min((Double(p) * 65536).rounded(), 65536)) }

/// The 16-bit uniform deciding element `e` of a dropout mask (scalar form of the rule above).
@inline(__always)
func dropoutUniform(_ key: RNGKey, _ e: Int) -> UInt32 {
    let r = e & 63
    let w = key.block(UInt64(e >> 6) * 8 + UInt64(r & 7))
    let word: UInt32
    switch (r >> 3) & 3 { case 0: word = w.0; case 1: word = w.1; case 2: word = w.2; default: word = w.3 }
    return r < 32 ? word & 0xFFFF : word >> 16
}

/// Bit l of lane l: turns an 8-lane mask into a byte and back.
@inline(__always) var laneBits: SIMD8<UInt32> { SIMD8<UInt32>(1, 2, 4, 8, 16, 32, 64, 128) }

/// The byte whose bit l is lane l of `m`.
@inline(__always)
func packBits(_ m: SIMDMask<SIMD8<Int32>>) -> UInt8 {
    let b = SIMD8<UInt32>(repeating: 0).replacing(with: laneBits, where: m)
    let b4 = b.lowHalf | b.highHalf, b2 = b4.lowHalf | b4.highHalf
    return UInt8(truncatingIfNeeded: b2[0] | b2[1])
}

/// Applies the dropout mask to 64-element chunks `range` (8 Philox blocks per chunk, SIMD),
/// recording it in `bits` when given.
@inline(__always)
func dropoutChunks(_ range: Range<Int>, count: Int, p: Float, scale: Float, key: RNGKey, src: UnsafePointer<Float>,
                   dst: UnsafeMutablePointer<Float>, bits: UnsafeMutablePointer<UInt8>?) {
    var range = range
    let whole = min(range.upperBound, count / 64)
    if DropoutAVX512.uses, range.lowerBound < whole {
        // The whole chunks on AVX-512 (Sources/CGemm/dropout_mask.c): the same bits, twice the lanes.
        pr_dropout_chunks_avx512(range.lowerBound, whole, dropThreshold(p), scale, key.seed, key.stream, src, dst, bits)
        range = whole..<range.upperBound
    } else if DropoutAVX2.uses, range.lowerBound < whole {
        // The whole chunks in C on AVX2 (dropout_mask.c): the same bits as the loop below in about
        // half its time (Zen 3, a PT train step's profile; docs/performance.md, Eighth session).
        pr_dropout_chunks_avx2(range.lowerBound, whole, dropThreshold(p), scale, key.seed, key.stream, src, dst, bits)
        range = whole..<range.upperBound
    }
    let t = SIMD8<UInt32>(repeating: dropThreshold(p))
    let on = SIMD8<Float>(repeating: scale), off = SIMD8<Float>(repeating: 0), low = SIMD8<UInt32>(repeating: 0xFFFF)
    for chunk in range {
        let (w0, w1, w2, w3) = philox8(key, base: UInt64(chunk) * 8)
        @inline(__always) func words(_ w: Int) -> SIMD8<UInt32> {
            switch w { case 0: return w0; case 1: return w1; case 2: return w2; default: return w3 }
        }
        let base = chunk * 64
        if base + 64 <= count {
            for half in 0..<2 {
                for w in 0..<4 {
                    let u = half == 0 ? words(w) & low : words(w) &>> 16
                    let keep = u .>= t
                    let o = base + half * 32 + w * 8
                    store8(load8(src + o) * off.replacing(with: on, where: keep), dst + o)
                    if let bits { bits[o >> 3] = packBits(keep) }
                }
            }
        } else {
            if let bits { for i in (base >> 3)..<(base >> 3 + 8) { bits[i] = 0 } }
            for i in base..<count {
                let r = i & 63
                let word = words((r >> 3) & 3)[r & 7]
                let u = r < 32 ? word & 0xFFFF : word >> 16
                dst[i] = u >= t[0] ? src[i] * scale : 0
                if let bits, u >= t[0] { bits[i >> 3] |= UInt8(1) << UInt8(i & 7) }
            }
        }
    }
}

/// dst[i] (+)= src[i]·mask[i]·scale for the 64-element chunks `range`, with the mask read from bits.
/// `plusZero` (with accumulate false): dst[i] = src[i]·mask[i]·scale + 0, the bits of adding into
/// a zeroed dst (a fresh gradient buffer).
@inline(__always)
func maskApply(_ range: Range<Int>, count: Int, scale: Float, bits: UnsafePointer<UInt8>, src: UnsafePointer<Float>,
               dst: UnsafeMutablePointer<Float>, accumulate: Bool, plusZero: Bool = false) {
    var range = range
    let whole = min(range.upperBound, count / 64)
    if DropoutAVX512.uses, range.lowerBound < whole {
        pr_mask_apply_avx512(range.lowerBound, whole, scale, bits, src, dst, accumulate ? 1 : plusZero ? 2 : 0)
        range = whole..<range.upperBound
    } else if DropoutAVX2.uses, range.lowerBound < whole {
        pr_mask_apply_avx2(range.lowerBound, whole, scale, bits, src, dst, accumulate ? 1 : plusZero ? 2 : 0)
        range = whole..<range.upperBound
    }
    let on = SIMD8<Float>(repeating: scale), off = SIMD8<Float>(repeating: 0), zero = SIMD8<UInt32>(repeating: 0)
    // One loop per mode (the mode tested once, not per vector: a per-vector three-way choice
    // compiled to branches and mask moves at 3× the time).
    @inline(__always) func chunkLoop(_ o0: Int, _ combine: (SIMD8<Float>, Int) -> SIMD8<Float>) {
        for g in 0..<8 {
            let o = o0 + g * 8
            let keep = (SIMD8<UInt32>(repeating: UInt32(bits[o >> 3])) & laneBits) .!= zero
            store8(combine(load8(src + o) * off.replacing(with: on, where: keep), o), dst + o)
        }
    }
    for chunk in range {
        let base = chunk * 64
        if base + 64 <= count {
            if accumulate {
                chunkLoop(base) { y, o in load8(dst + o) + y }
            } else if plusZero {
                chunkLoop(base) { y, _ in off + y }
            } else {
                chunkLoop(base) { y, _ in y }
            }
        } else {
            for i in base..<count {
                let v = bits[i >> 3] & (UInt8(1) << UInt8(i & 7)) != 0 ? src[i] * scale : 0
                if accumulate { dst[i] += v } else { dst[i] = plusZero ? 0 + v : v }
            }
        }
    }
}

/// Σ x as a scalar tensor (accumulated in Double, fixed order).
public func sum(_ x: Tensor) -> Tensor {
    var acc = 0.0
    for i in 0..<x.count { acc += Double(x.data[i]) }
    let out = Tensor(shape: [], values: [Float(acc)])
    if Tape.needsGrad(x) {
        let ob = out.box, xb = x.box, n = x.count
        Tape.push(out, inputs: [x]) {
            let g = ob.grad!.data[0], gx = xb.buffer()
            for i in 0..<n { gx[i] += g }
        }
    }
    return out
}

/// Mean of all elements as a scalar tensor.
public func mean(_ x: Tensor) -> Tensor { scale(sum(x), 1 / Float(max(x.count, 1))) }
