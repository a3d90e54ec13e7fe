// Softmax over the last axis with an optional keep-mask (1 = keep, 0 = masked out).
import Foundation

/// Row softmax in fp32; masked entries get probability 0. A row with every entry masked gets
/// the uniform distribution over the whole row (what an additive float32-min mask yields).
public func softmax(_ x: Tensor, mask: Tensor? = nil) throws -> Tensor {
    guard let n = x.shape.last else { throw TensorError.invalidArgument(op: "softmax", detail: "scalar input") }
    var bc: Broadcast?
    if let mask {
        let b = try Broadcast("softmax mask", x.shape, mask.shape)
        guard b.outShape == x.shape else {
            throw TensorError.shapeMismatch(op: "softmax", detail: "mask \(shapeString(mask.shape)) must broadcast to \(shapeString(x.shape))")
        }
        bc = b
    }
    let rows = x.count / max(n, 1)
    let out = Tensor(uninitialized: x.shape)
    let px = x.data, po = out.data
    Parallel.forRange(rows, costPerItem: n * 4) { range in
        for r in range {
            let xr = px + r * n, yr = po + r * n
            var mOff = 0, mStride = 0
            if let bc { mOff = bc.offsets(row: r).1; mStride = bc.bInner }
            let keep: (Int) -> Bool = { j in mask == nil || mask!.data[mOff + j * mStride] != 0 }
            softmaxRow(xr, yr, n, keep)
        }
    }
    if Tape.needsGrad(x) {
        let xb = x.box
        let y = out.detachedView()  // the output's values (not its gradient slot)
        let ob = out.box
        Tape.push(out, inputs: [x]) {
            let g = ob.grad!.data, gx = xb.buffer(), po = y.data
            Parallel.forRange(rows, costPerItem: n * 2) { range in
                for r in range {
                    let yr = po + r * n, gr = g + r * n, gxr = gx + r * n
                    var dot: Float = 0
                    for j in 0..<n { dot += gr[j] * yr[j] }
                    for j in 0..<n { gxr[j] += yr[j] * (gr[j] - dot) }
                }
            }
        }
    }
    return out
}

@inline(__always)
func softmaxRow(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int, _ keep: (Int) -> Bool) {
    var mx = -Float.infinity
    for j in 0..<n where keep(j) { mx = max(mx, x[j]) }
    if mx == -Float.infinity {  // fully masked row
        for j in 0..<n { y[j] = 1 / Float(n) }
        return
    }
    var s: Float = 0
    for j in 0..<n {
        if keep(j) { let e = expf(x[j] - mx); y[j] = e; s += e } else { y[j] = 0 }
    }
    let inv = 1 / s
    for j in 0..<n { y[j] *= inv }
}
