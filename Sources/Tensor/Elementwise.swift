// Broadcasting binary ops, scalar scale, activations (ReLU, gelu_new, ELU), dropout, sum/mean.
import Foundation

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
        Tape.push(out) {
            let g = out.grad!.data
            // Reductions over broadcast axes run serially in row order: deterministic.
            if a.requiresGrad {
                let ga = a.gradBuffer()
                for row in 0..<bc.rows {
                    let (oa, ob) = bc.offsets(row: row)
                    let gr = g + row * inner
                    for j in 0..<inner {
                        switch kind {
                        case .add, .sub: ga[oa + j * sa] += gr[j]
                        case .mul: ga[oa + j * sa] += gr[j] * pb[ob + j * sb]
                        }
                    }
                }
            }
            if b.requiresGrad {
                let gb = b.gradBuffer()
                for row in 0..<bc.rows {
                    let (oa, ob) = bc.offsets(row: row)
                    let gr = g + row * inner
                    for j in 0..<inner {
                        switch kind {
                        case .add: gb[ob + j * sb] += gr[j]
                        case .sub: gb[ob + j * sb] -= gr[j]
                        case .mul: gb[ob + j * sb] += gr[j] * pa[oa + j * sa]
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
        Tape.push(out) {
            let g = out.grad!.data, gx = x.gradBuffer()
            Parallel.forRange(x.count) { r in for i in r { gx[i] += c * g[i] } }
        }
    }
    return out
}

/// Elementwise unary op with derivative computed from the input.
func unary(_ x: Tensor, _ f: @escaping (Float) -> Float, _ df: @escaping (Float) -> Float) -> Tensor {
    let out = Tensor(uninitialized: x.shape)
    let px = x.data, po = out.data
    Parallel.forRange(x.count, costPerItem: 4) { r in for i in r { po[i] = f(px[i]) } }
    if Tape.needsGrad(x) {
        Tape.push(out) {
            let g = out.grad!.data, gx = x.gradBuffer()
            Parallel.forRange(x.count, costPerItem: 4) { r in for i in r { gx[i] += g[i] * df(px[i]) } }
        }
    }
    return out
}

public func relu(_ x: Tensor) -> Tensor {
    unary(x, { $0 > 0 ? $0 : 0 }, { $0 > 0 ? 1 : 0 })
}

/// gelu_new: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), the tanh approximation.
public func geluNew(_ x: Tensor) -> Tensor {
    let c: Float = 0.797_884_56  // √(2/π)
    return unary(x, { v in
        0.5 * v * (1 + tanhf(c * (v + 0.044715 * v * v * v)))
    }, { v in
        let u = c * (v + 0.044715 * v * v * v)
        let t = tanhf(u)
        let du = c * (1 + 3 * 0.044715 * v * v)
        return 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * du
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
/// The mask is a pure function of (key, element index), so backward regenerates it.
public func dropout(_ x: Tensor, p: Float, key: RNGKey?) -> Tensor {
    guard p > 0, let key else { return x }
    precondition(p < 1, "dropout probability must be < 1, got \(p)")
    let out = Tensor(uninitialized: x.shape)
    let px = x.data, po = out.data, s = 1 / (1 - p)
    dropoutApply(count: x.count, p: p, scale: s, key: key, src: px, dst: po, accumulate: false)
    if Tape.needsGrad(x) {
        Tape.push(out) {
            dropoutApply(count: x.count, p: p, scale: s, key: key, src: out.grad!.data, dst: x.gradBuffer(), accumulate: true)
        }
    }
    return out
}

/// dst[i] (+)= src[i]·mask[i]·scale, 4 elements per Philox block, split over threads.
@inline(__always)
func dropoutApply(count: Int, p: Float, scale: Float, key: RNGKey, src: UnsafePointer<Float>,
                  dst: UnsafeMutablePointer<Float>, accumulate: Bool) {
    let threshold = UInt32(min(Double(p) * 16_777_216.0, 16_777_216.0))  // compare 24-bit draws
    let blocks = (count + 3) / 4
    Parallel.forRange(blocks, costPerItem: 16) { range in
        for blk in range {
            let base = blk * 4
            let w = key.block(UInt64(blk))
            let ws = (w.0, w.1, w.2, w.3)
            for lane in 0..<min(4, count - base) {
                let word: UInt32
                switch lane { case 0: word = ws.0; case 1: word = ws.1; case 2: word = ws.2; default: word = ws.3 }
                let keep = (word >> 8) >= threshold
                let v = keep ? src[base + lane] * scale : 0
                if accumulate { dst[base + lane] += v } else { dst[base + lane] = v }
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
        Tape.push(out) {
            let g = out.grad!.data[0], gx = x.gradBuffer()
            for i in 0..<x.count { gx[i] += g }
        }
    }
    return out
}

/// Mean of all elements as a scalar tensor.
public func mean(_ x: Tensor) -> Tensor { scale(sum(x), 1 / Float(max(x.count, 1))) }
