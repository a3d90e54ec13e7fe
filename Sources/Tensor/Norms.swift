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

/// Σ_j term(r, j) for j in 0..<d, in j order, for each row r of `range`, handed to `each(r, sum)`:
/// four rows' chains at a time, so each row's sum has the bits of the one-row loop
/// `for j in 0..<d { s += term(r, j) }` while four additions are in flight instead of one (a
/// single fp32 chain waits on the adder's latency at every element). `each` runs for a group's
/// rows right after the group's chains, while those rows are still in L1. `range` of at most four
/// rows is one group (callers with several passes over the same rows step through `rowGroups`).
@inline(__always)
func rowSums(_ range: Range<Int>, _ d: Int, _ term: (Int, Int) -> Float, each: (Int, Float) -> Void) {
    var r = range.lowerBound
    while r + 4 <= range.upperBound {
        var s0: Float = 0, s1: Float = 0, s2: Float = 0, s3: Float = 0
        for j in 0..<d {
            s0 += term(r, j); s1 += term(r + 1, j); s2 += term(r + 2, j); s3 += term(r + 3, j)
        }
        each(r, s0); each(r + 1, s1); each(r + 2, s2); each(r + 3, s3)
        r += 4
    }
    while r < range.upperBound {
        var s: Float = 0
        for j in 0..<d { s += term(r, j) }
        each(r, s)
        r += 1
    }
}

/// `range` in consecutive groups of at most four rows, `rowSums`' group.
@inline(__always)
func rowGroups(_ range: Range<Int>) -> LazyMapSequence<StrideTo<Int>, Range<Int>> {
    stride(from: range.lowerBound, to: range.upperBound, by: 4).lazy.map { $0..<min($0 + 4, range.upperBound) }
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
        // Σ x² of each row, four rows' chains at a time; each row's output right after its group's.
        rowSums(range, d, { r, j in px[r * d + j] * px[r * d + j] }) { r, ss in
            let s = 1 / (ss / Float(d) + eps).squareRoot()
            rstd[r] = s
            rmsNormRow(px + r * d, s, pw, po + r * d, d)
        }
    }
    if Tape.needsGrad(x, w) {
        // Backward keeps x, w and rstd anyway, so y can be computed again from them.
        let recipe = normOutputRecipe(x, d: d, sources: [w]) { r, y in rmsNormRow(x.data + r * d, rstdT.data[r], w.data, y, d) }
        out.lentRematerialization = recipe
        if !w.requiresGrad { out.inheritGradientRows(x) }  // row-wise (GradientRows.swift)
        // x's gradient at the rows its consumers need (each row's own loop: the same bits).
        let spans = x.gradientRows?.rowRanges() ?? [0..<rows]
        let ob = out.box  // keeps x, w and rstd: the gradient needs them
        Tape.push(out, inputs: [x, w]) {
            _ = rstdT
            _ = recipe  // held by this node, lent to the output
            let px = x.data, pw = w.data
            let g = ob.grad!.data
            if x.requiresGrad {
                let gx = x.gradBuffer()
                Parallel.forRanges(spans, costPerItem: d) { range in
                    rowSums(range, d, { r, j in g[r * d + j] * pw[j] * px[r * d + j] }) { r, dot in
                        let xr = px + r * d, gr = g + r * d, gxr = gx + r * d, s = rstd[r]
                        let c = s * s * s * dot / Float(d)
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
        // Per group of four rows (`rowSums`): each row's Σ x, then Σ (x − mean)², then its output.
        for group in rowGroups(range) {
            rowSums(group, d, { r, j in px[r * d + j] }) { r, s in stats[2 * r] = s / Float(d) }
            rowSums(group, d, { r, j in let c = px[r * d + j] - stats[2 * r]; return c * c }) { r, v in
                let rs = 1 / (v / Float(d) + eps).squareRoot()
                stats[2 * r + 1] = rs
                layerNormRow(px + r * d, stats[2 * r], rs, pw, pb, po + r * d, d)
            }
        }
    }
    if Tape.needsGrad(x, w, b) {
        // Backward keeps x, w and the statistics anyway, so y can be computed again from them.
        let recipe = normOutputRecipe(x, d: d, sources: [w, b]) { r, y in
            layerNormRow(x.data + r * d, statsT.data[2 * r], statsT.data[2 * r + 1], w.data, b.data, y, d)
        }
        out.lentRematerialization = recipe
        if !w.requiresGrad && !b.requiresGrad { out.inheritGradientRows(x) }  // row-wise (GradientRows.swift)
        // x's gradient at the rows its consumers need (each row's own loop: the same bits).
        let spans = x.gradientRows?.rowRanges() ?? [0..<rows]
        let ob = out.box  // keeps x, w and the statistics
        Tape.push(out, inputs: [x, w, b]) {
            _ = statsT
            _ = recipe  // held by this node, lent to the output
            let px = x.data, pw = w.data
            let g = ob.grad!.data
            if x.requiresGrad {
                let gx = x.gradBuffer()
                Parallel.forRanges(spans, costPerItem: d) { range in
                    // Per group of four rows (`rowSums`): each row's Σ g·w, then Σ g·w·x̂ and its gradient.
                    for group in rowGroups(range) {
                        var sgs = SIMD4<Float>()
                        rowSums(group, d, { r, j in g[r * d + j] * pw[j] }) { r, s in sgs[r - group.lowerBound] = s / Float(d) }
                        rowSums(group, d, { r, j in g[r * d + j] * pw[j] * (px[r * d + j] - stats[2 * r]) * stats[2 * r + 1] }) { r, t in
                            let xr = px + r * d, gr = g + r * d, gxr = gx + r * d
                            let mu = stats[2 * r], rs = stats[2 * r + 1]
                            let sg = sgs[r - group.lowerBound], sgx = t / Float(d)
                            for j in 0..<d {
                                let xh = (xr[j] - mu) * rs
                                gxr[j] += rs * (gr[j] * pw[j] - sg - xh * sgx)
                            }
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
