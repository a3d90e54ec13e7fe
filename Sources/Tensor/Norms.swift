// RMSNorm (T5LayerNorm: no mean subtraction, no bias) and LayerNorm (GPT-2, ResPT: mean, bias).
// Statistics in fp32 per row over the last axis; per-row rstd kept for backward.
import Foundation

/// The recipe that computes a norm's output (x's shape, rows of d) again: `row(r, y)` writes row r
/// into y with forward's row function. nil inside a checkpointed block, whose tape lives only while
/// it runs. `sources`: the norm's parameters (see `Rematerialization.sources`).
private func normOutputRecipe(_ x: Tensor, d: Int, sources: [Tensor],
                              _ row: @escaping (Int, UnsafeMutablePointer<Float>) -> Void) -> Rematerialization? {
    if Tape.isCheckpointing { return nil }
    let rows = x.count / max(d, 1)
    return Rematerialization(sources: sources) {
        let y = Tensor(uninitialized: x.shape)
        let py = y.data
        Parallel.forRange(rows, costPerItem: d) { range in for r in range { row(r, py + r * d) } }
        return y
    }
}

/// One row of the RMS norm's output, y = w ⊙ (x · rstd): forward and its rematerialization
/// share this expression, so the values computed again are forward's bit for bit.
@inline(__always)
private func rmsNormRow(_ x: UnsafeMutablePointer<Float>, _ s: Float, _ w: UnsafeMutablePointer<Float>,
                        _ y: UnsafeMutablePointer<Float>, _ d: Int) {
    for j in 0..<d { y[j] = w[j] * (x[j] * s) }
}

/// Σ_j term(r, j) for j in 0..<d, in j order, for rows `range`, into sums[r − range.lowerBound]:
/// four rows' chains at a time, so each row's sum has the bits of the one-row loop
/// `for j in 0..<d { s += term(r, j) }` while four additions are in flight instead of one (a
/// single fp32 chain waits on the adder's latency at every element).
@inline(__always)
func rowSums(_ range: Range<Int>, _ d: Int, into sums: UnsafeMutablePointer<Float>, _ term: (Int, Int) -> Float) {
    var r = range.lowerBound
    while r + 4 <= range.upperBound {
        var s0: Float = 0, s1: Float = 0, s2: Float = 0, s3: Float = 0
        for j in 0..<d {
            s0 += term(r, j); s1 += term(r + 1, j); s2 += term(r + 2, j); s3 += term(r + 3, j)
        }
        let o = r - range.lowerBound
        sums[o] = s0; sums[o + 1] = s1; sums[o + 2] = s2; sums[o + 3] = s3
        r += 4
    }
    while r < range.upperBound {
        var s: Float = 0
        for j in 0..<d { s += term(r, j) }
        sums[r - range.lowerBound] = s
        r += 1
    }
}

/// y = w ⊙ x · r, r = 1/√(mean(x²) + eps), over the last axis. While a tape records, y carries
/// a `Rematerialization` from x, w and r, so a linear layer whose weight trains need not keep y.
public func rmsNorm(_ x: Tensor, weight w: Tensor, eps: Float) throws -> Tensor {
    guard let d = x.shape.last, w.shape == [d] else {
        throw TensorError.shapeMismatch(op: "rmsNorm", detail: "weight \(shapeString(w.shape)) must be [last axis of \(shapeString(x.shape))]")
    }
    let rows = x.count / max(d, 1)
    let out = Tensor(uninitialized: x.shape)
    let rstdT = Tensor(uninitialized: [rows])  // freed with the node
    let rstd = rstdT.data
    let px = x.data, pw = w.data, po = out.data
    Parallel.forRange(rows, costPerItem: d) { range in
        // Σ x² of each row (into rstd, then replaced by r), four rows' chains at a time.
        rowSums(range, d, into: rstd + range.lowerBound) { r, j in px[r * d + j] * px[r * d + j] }
        for r in range {
            let s = 1 / (rstd[r] / Float(d) + eps).squareRoot()
            rstd[r] = s
            rmsNormRow(px + r * d, s, pw, po + r * d, d)
        }
    }
    if Tape.needsGrad(x, w) {
        // Backward keeps x, w and rstd anyway, so y can be computed again from them.
        let recipe = normOutputRecipe(x, d: d, sources: [w]) { r, y in rmsNormRow(x.data + r * d, rstdT.data[r], w.data, y, d) }
        out.lentRematerialization = recipe
        let ob = out.box  // keeps x, w and rstd: the gradient needs them
        Tape.push(out, inputs: [x, w]) {
            _ = rstdT
            _ = recipe  // held by this node, lent to the output
            let px = x.data, pw = w.data
            let g = ob.grad!.data
            if x.requiresGrad {
                let gx = x.gradBuffer()
                Parallel.forRange(rows, costPerItem: d) { range in
                    let dots = UnsafeMutablePointer<Float>.allocate(capacity: range.count)
                    defer { dots.deallocate() }
                    rowSums(range, d, into: dots) { r, j in g[r * d + j] * pw[j] * px[r * d + j] }
                    for r in range {
                        let xr = px + r * d, gr = g + r * d, gxr = gx + r * d, s = rstd[r]
                        let c = s * s * s * dots[r - range.lowerBound] / Float(d)
                        for j in 0..<d { gxr[j] += s * gr[j] * pw[j] - c * xr[j] }
                    }
                }
            }
            if w.requiresGrad {
                let t = UnsafeMutablePointer<Float>.allocate(capacity: rows * d)
                defer { t.deallocate() }
                Parallel.forRange(rows, costPerItem: d) { range in
                    for r in range { for j in 0..<d { t[r * d + j] = g[r * d + j] * px[r * d + j] * rstd[r] } }
                }
                columnSumAccumulate(rows: rows, cols: d, src: t, dst: w.gradBuffer())
            }
        }
    }
    return out
}

/// One row of the layer norm's output, shared by forward and its rematerialization (see `rmsNormRow`).
@inline(__always)
private func layerNormRow(_ x: UnsafeMutablePointer<Float>, _ mu: Float, _ rs: Float, _ w: UnsafeMutablePointer<Float>,
                          _ b: UnsafeMutablePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ d: Int) {
    for j in 0..<d { y[j] = (x[j] - mu) * rs * w[j] + b[j] }
}

/// y = (x − mean)/√(var + eps) ⊙ w + b over the last axis (biased variance); carries a
/// `Rematerialization` while a tape records, as `rmsNorm`'s output does.
public func layerNorm(_ x: Tensor, weight w: Tensor, bias b: Tensor, eps: Float) throws -> Tensor {
    guard let d = x.shape.last, w.shape == [d], b.shape == [d] else {
        throw TensorError.shapeMismatch(op: "layerNorm", detail: "weight \(shapeString(w.shape)) and bias \(shapeString(b.shape)) must be [last axis of \(shapeString(x.shape))]")
    }
    let rows = x.count / max(d, 1)
    let out = Tensor(uninitialized: x.shape)
    let statsT = Tensor(uninitialized: [rows, 2])  // (mean, rstd) per row, freed with the node
    let stats = statsT.data
    let px = x.data, pw = w.data, pb = b.data, po = out.data
    Parallel.forRange(rows, costPerItem: d) { range in
        // Each row's Σ x, then Σ (x − mean)², four rows' chains at a time (`rowSums`).
        let sums = UnsafeMutablePointer<Float>.allocate(capacity: range.count)
        defer { sums.deallocate() }
        rowSums(range, d, into: sums) { r, j in px[r * d + j] }
        for r in range { stats[2 * r] = sums[r - range.lowerBound] / Float(d) }
        rowSums(range, d, into: sums) { r, j in let c = px[r * d + j] - stats[2 * r]; return c * c }
        for r in range {
            let mu = stats[2 * r], rs = 1 / (sums[r - range.lowerBound] / Float(d) + eps).squareRoot()
            stats[2 * r + 1] = rs
            layerNormRow(px + r * d, mu, rs, pw, pb, po + r * d, d)
        }
    }
    if Tape.needsGrad(x, w, b) {
        // Backward keeps x, w and the statistics anyway, so y can be computed again from them.
        let recipe = normOutputRecipe(x, d: d, sources: [w, b]) { r, y in
            layerNormRow(x.data + r * d, statsT.data[2 * r], statsT.data[2 * r + 1], w.data, b.data, y, d)
        }
        out.lentRematerialization = recipe
        let ob = out.box  // keeps x, w and the statistics
        Tape.push(out, inputs: [x, w, b]) {
            _ = statsT
            _ = recipe  // held by this node, lent to the output
            let px = x.data, pw = w.data
            let g = ob.grad!.data
            if x.requiresGrad {
                let gx = x.gradBuffer()
                Parallel.forRange(rows, costPerItem: d) { range in
                    // Each row's Σ g·w and Σ g·w·x̂, four rows' chains at a time (`rowSums`).
                    let sums = UnsafeMutablePointer<Float>.allocate(capacity: 2 * range.count)
                    defer { sums.deallocate() }
                    rowSums(range, d, into: sums) { r, j in g[r * d + j] * pw[j] }
                    rowSums(range, d, into: sums + range.count) { r, j in
                        g[r * d + j] * pw[j] * (px[r * d + j] - stats[2 * r]) * stats[2 * r + 1]
                    }
                    for r in range {
                        let xr = px + r * d, gr = g + r * d, gxr = gx + r * d
                        let mu = stats[2 * r], rs = stats[2 * r + 1]
                        let sg = sums[r - range.lowerBound] / Float(d), sgx = sums[range.count + r - range.lowerBound] / Float(d)
                        for j in 0..<d {
                            let xh = (xr[j] - mu) * rs
                            gxr[j] += rs * (gr[j] * pw[j] - sg - xh * sgx)
                        }
                    }
                }
            }
            if w.requiresGrad {
                let t = UnsafeMutablePointer<Float>.allocate(capacity: rows * d)
                defer { t.deallocate() }
                Parallel.forRange(rows, costPerItem: d) { range in
                    for r in range {
                        let mu = stats[2 * r], rs = stats[2 * r + 1]
                        for j in 0..<d { t[r * d + j] = g[r * d + j] * (px[r * d + j] - mu) * rs }
                    }
                }
                columnSumAccumulate(rows: rows, cols: d, src: t, dst: w.gradBuffer())
            }
            if b.requiresGrad { columnSumAccumulate(rows: rows, cols: d, src: g, dst: b.gradBuffer()) }
        }
    }
    return out
}
