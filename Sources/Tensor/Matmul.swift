// Matrix products through CBLAS with transpose flags (never a materialised transpose).
//
// matmul(A, B, transA, transB): C = op(A)·op(B) over the last two axes.
//   A [..., r, c] with op(A) = A or Aᵀ; B either 2-D (shared by every batch: with !transA the
//   batch is folded into one large GEMM) or with the same leading axes as A.
// Gradients (g = dC), each one GEMM with flags, accumulated (beta = 1):
//   C = A B     : dA = g Bᵀ      dB = Aᵀ g
//   C = A Bᵀ    : dA = g B       dB = gᵀ A
//   C = Aᵀ B    : dA = B gᵀ      dB = A g
//   C = Aᵀ Bᵀ   : dA = Bᵀ gᵀ     dB = gᵀ Aᵀ

public func matmul(_ a: Tensor, _ b: Tensor, transA: Bool = false, transB: Bool = false) throws -> Tensor {
    let op = "matmul"
    guard a.rank >= 2, b.rank >= 2 else {
        throw TensorError.shapeMismatch(op: op, detail: "needs rank ≥ 2 operands, got \(shapeString(a.shape)) and \(shapeString(b.shape))")
    }
    let (ar, ac) = (a.shape[a.rank - 2], a.shape[a.rank - 1])
    let (br, bc) = (b.shape[b.rank - 2], b.shape[b.rank - 1])
    let (m, k) = transA ? (ac, ar) : (ar, ac)
    let (k2, n) = transB ? (bc, br) : (br, bc)
    guard k == k2 else {
        throw TensorError.shapeMismatch(op: op, detail: "\(shapeString(a.shape))\(transA ? "ᵀ" : "") · \(shapeString(b.shape))\(transB ? "ᵀ" : ""): inner dimensions \(k) and \(k2) differ")
    }
    let batchA = Array(a.shape.dropLast(2))
    let batchB = Array(b.shape.dropLast(2))
    let shared = b.rank == 2
    guard shared || batchA == batchB else {
        throw TensorError.shapeMismatch(op: op, detail: "batch axes of \(shapeString(a.shape)) and \(shapeString(b.shape)) differ")
    }
    let batch = batchA.reduce(1, *)
    let out = Tensor(uninitialized: batchA + [m, n])
    let lda = ac, ldb = bc
    let aStride = ar * ac, bStride = shared ? 0 : br * bc, cStride = m * n
    if shared && !transA {
        BLAS.sgemm(transA: false, transB: transB, m: batch * m, n: n, k: k, alpha: 1,
                   a: a.data, lda: lda, b: b.data, ldb: ldb, beta: 0, c: out.data, ldc: n)
    } else {
        for i in 0..<batch {
            BLAS.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 1,
                       a: a.data + i * aStride, lda: lda, b: b.data + i * bStride, ldb: ldb,
                       beta: 0, c: out.data + i * cStride, ldc: n)
        }
    }
    if Tape.needsGrad(a, b) {
        let ob = out.box, ab = a.box, bb = b.box
        // dA needs B's values and dB needs A's: keep an operand only if the other needs a gradient.
        let keepA: Tensor? = b.requiresGrad ? a : nil, keepB: Tensor? = a.requiresGrad ? b : nil
        Tape.push(out, inputs: [a, b]) {
            let g = ob.grad!.data
            if ab.requiresGrad, let b = keepB {
                let ga = ab.buffer()
                if shared && !transA {
                    // dA (batch·m × k) = g (batch·m × n) · op(B)ᵀ
                    BLAS.sgemm(transA: false, transB: !transB, m: batch * m, n: k, k: n, alpha: 1,
                               a: g, lda: n, b: b.data, ldb: ldb, beta: 1, c: ga, ldc: lda)
                } else {
                    for i in 0..<batch {
                        let gi = g + i * cStride, bi = b.data + i * bStride, gai = ga + i * aStride
                        if !transA {
                            BLAS.sgemm(transA: false, transB: !transB, m: m, n: k, k: n, alpha: 1,
                                       a: gi, lda: n, b: bi, ldb: ldb, beta: 1, c: gai, ldc: lda)
                        } else {
                            // dA (k × m) = op(B) gᵀ
                            BLAS.sgemm(transA: transB, transB: true, m: k, n: m, k: n, alpha: 1,
                                       a: bi, lda: ldb, b: gi, ldb: n, beta: 1, c: gai, ldc: lda)
                        }
                    }
                }
            }
            if bb.requiresGrad, let a = keepA {
                let gb = bb.buffer()
                if shared && !transA {
                    if !transB {  // dB (k × n) = Aᵀ g
                        BLAS.sgemm(transA: true, transB: false, m: k, n: n, k: batch * m, alpha: 1,
                                   a: a.data, lda: lda, b: g, ldb: n, beta: 1, c: gb, ldc: ldb)
                    } else {      // dB (n × k) = gᵀ A
                        BLAS.sgemm(transA: true, transB: false, m: n, n: k, k: batch * m, alpha: 1,
                                   a: g, lda: n, b: a.data, ldb: lda, beta: 1, c: gb, ldc: ldb)
                    }
                } else {
                    for i in 0..<batch {
                        let gi = g + i * cStride, ai = a.data + i * aStride, gbi = gb + i * bStride
                        if !transB {  // dB (k × n) = op(A)ᵀ g
                            BLAS.sgemm(transA: !transA, transB: false, m: k, n: n, k: m, alpha: 1,
                                       a: ai, lda: lda, b: gi, ldb: n, beta: 1, c: gbi, ldc: ldb)
                        } else {      // dB (n × k) = gᵀ op(A)
                            BLAS.sgemm(transA: true, transB: transA, m: n, n: k, k: m, alpha: 1,
                                       a: gi, lda: n, b: ai, ldb: lda, beta: 1, c: gbi, ldc: ldb)
                        }
                    }
                }
            }
        }
    }
    return out
}

/// Weight layout of a dense layer: torch `nn.Linear` stores [out, in]; GPT-2 `Conv1D` stores [in, out].
public enum WeightLayout: Sendable { case outIn, inOut }

/// The positions of a padded batch that carry data, for `linear`: while `PaddedRows.with` runs,
/// a `linear` over an input [batch, length, in] computes, for each batch row b, only its first
/// `rows[b]` positions (its real length, at least 32, at most `length`) in forward and in the input
/// gradient; the other positions' outputs and input gradients are 0. The own GEMM kernels give each
/// row of a product the same bits whatever the other rows (and a product of at least 32 rows runs
/// them, `BLAS.usesOwnKernel`), so the computed positions get the bits of the whole product. For
/// the rest to be harmless the caller promises that nothing real reads a padding position: T5's
/// encoder, where every attention masks the padding keys, so the loss's gradient at a padding
/// position is exactly 0 (its weight gradients, summed over all positions, get the same zeros from
/// there). Not applied with OpenBLAS as the kernel, below 32 positions, or without padding.
public enum PaddedRows {
    struct Spans {
        let batch: Int, length: Int
        /// Flat row ranges of [batch · length] computed, and the ones left out (set to 0).
        let ranges: [Range<Int>], gaps: [Range<Int>]
        init(batch: Int, length: Int, rows: [Int]) {
            (self.batch, self.length) = (batch, length)
            ranges = rows.indices.map { ($0 * length)..<($0 * length + rows[$0]) }
            gaps = rows.indices.map { ($0 * length + rows[$0])..<(($0 + 1) * length) }.filter { !$0.isEmpty }
        }
    }
    nonisolated(unsafe) static var current: Spans?
    /// false: `with` computes every position (tests compare both; the real positions' bits agree).
    nonisolated(unsafe) public static var isEnabled = true

    /// Runs `body` with `live` [batch] (each batch row's real length) in force for `linear`
    /// (nested calls: the innermost wins). Errors: rethrows `body`'s.
    public static func with<T>(batch: Int, length: Int, live: [Int], _ body: () throws -> T) rethrows -> T {
        guard isEnabled, BLAS.kernel != .openblas, length >= 32, live.count == batch, live.contains(where: { $0 < length }) else { return try body() }
        return try with(Scope(spans: Spans(batch: batch, length: length, rows: live.map { min(length, max($0, 32)) })), body)
    }

    /// The spans in force now, to be put in force again later (`with(_:_:)`).
    public struct Scope { let spans: Spans? }
    public static var scope: Scope { Scope(spans: current) }

    /// Runs `body` with `scope` (taken from `scope` earlier) in force instead of the spans in force
    /// now: a checkpointed block run again in backward computes over the positions its forward did.
    /// Errors: rethrows `body`'s.
    public static func with<T>(_ scope: Scope, _ body: () throws -> T) rethrows -> T {
        let saved = current
        current = scope.spans
        defer { current = saved }
        return try body()
    }

    /// The spans in force for an input of shape `shape` (rank 3, [batch, length, ·]), if any.
    static func spans(for shape: [Int]) -> Spans? {
        guard let s = current, shape.count == 3, shape[0] == s.batch, shape[1] == s.length else { return nil }
        return s
    }
}

/// y = x·Wᵀ + b (outIn) or x·W + b (inOut) over the last axis of x; one GEMM for the whole batch
/// (inside `PaddedRows.with`: over each batch row's real positions only, W packed once for all).
/// `computesValues: false` records the same node but leaves the output 0 instead of computing it:
/// for an output whose values nothing reads, only its gradient flowing back (the last op of a
/// checkpointed body run again in backward, see `Tape.checkpoint`; its backward reads x, W and the
/// output's gradient, never the output).
public func linear(_ x: Tensor, _ w: Tensor, bias: Tensor? = nil, layout: WeightLayout = .outIn,
                   computesValues: Bool = true) throws -> Tensor {
    guard w.rank == 2 else {
        throw TensorError.shapeMismatch(op: "linear", detail: "weight must be 2-D, got \(shapeString(w.shape))")
    }
    let (inF, outF) = layout == .outIn ? (w.shape[1], w.shape[0]) : (w.shape[0], w.shape[1])
    guard x.rank >= 1, x.shape[x.rank - 1] == inF else {
        throw TensorError.shapeMismatch(op: "linear", detail: "input \(shapeString(x.shape)) last axis must be \(inF) for weight \(shapeString(w.shape)) (\(layout == .outIn ? "[out, in]" : "[in, out]"))")
    }
    if let bias, bias.shape != [outF] {
        throw TensorError.shapeMismatch(op: "linear", detail: "bias \(shapeString(bias.shape)) must be [\(outF)]")
    }
    let rows = x.count / max(inF, 1)
    let outShape = Array(x.shape.dropLast()) + [outF]
    let out = computesValues ? Tensor(uninitialized: outShape) : Tensor(zeros: outShape)  // not computed: left 0
    let spans = PaddedRows.spans(for: x.shape)
    if computesValues {
        if let bias {
            for r in 0..<rows { (out.data + r * outF).update(from: bias.data, count: outF) }
        }
        if let spans {
            BLAS.sgemmRowSpans(spans.ranges, transB: layout == .outIn, n: outF, k: inF, alpha: 1, a: x.data, lda: inF,
                               b: w.data, ldb: layout == .outIn ? inF : outF, beta: bias == nil ? 0 : 1, c: out.data, ldc: outF)
            for r in spans.gaps { (out.data + r.lowerBound * outF).update(repeating: 0, count: r.count * outF) }
        } else {
            BLAS.sgemm(transA: false, transB: layout == .outIn, m: rows, n: outF, k: inF, alpha: 1,
                       a: x.data, lda: inF, b: w.data, ldb: layout == .outIn ? inF : outF,
                       beta: bias == nil ? 0 : 1, c: out.data, ldc: outF)
        }
    }
    if Tape.needsGrad(x, w, bias) {
        let ob = out.box, xb = x.box, bb = bias?.box, wLeaf = w.isLeaf
        // A frozen W needs no dW, so the input's values are not kept (only W, which lives anyway).
        // Nor are they when x can be computed again or is kept compact (`x.rematerialization`: a
        // norm's output, a sparse FFN hidden state): dW expands it then. The recipe's parameters
        // count as this node's inputs, so a fused optimizer step updates a norm's weight only after
        // the dW that recomputes the norm's output, deferred or not.
        let remat = w.requiresGrad ? x.rematerialization : nil
        let keepX: Tensor? = w.requiresGrad && remat == nil ? x : nil
        let use = remat?.register()
        // Row-wise while W (and b) stay frozen: the output's gradient is needed where x's is, and
        // x's is computed there only (GradientRows.swift; within the padded rows' real positions).
        if !w.requiresGrad && bias?.requiresGrad != true { out.inheritGradientRows(x) }
        // The rows of dX computed, and those a fresh buffer gets as zeros: the marked rows, else
        // the padded rows' real positions; nil for every row.
        let dxRows: (ranges: [Range<Int>], gaps: [Range<Int>])? = x.gradientRows?.rowRanges(live: spans?.ranges)
            .map { ($0, GradientRows.gaps($0, rows: rows)) } ?? spans.map { ($0.ranges, $0.gaps) }
        Tape.push(out, inputs: [x, w, bias] + (remat?.sources ?? [])) {
            let g = ob.grad!.data
            if xb.requiresGrad {  // dX (rows × in) = g · W  (outIn)  or g · Wᵀ (inOut)
                // The first gradient into x is written, not added to zeros (same bits; see bufferForProduct).
                let (dx, fresh) = xb.bufferForProduct()
                if let dxRows {
                    BLAS.sgemmRowSpans(dxRows.ranges, transB: layout == .inOut, n: inF, k: outF, alpha: 1, a: g, lda: outF,
                                       b: w.data, ldb: layout == .outIn ? inF : outF, beta: fresh ? 0 : 1, c: dx, ldc: inF)
                    if fresh { for r in dxRows.gaps { (dx + r.lowerBound * inF).update(repeating: 0, count: r.count * inF) } }
                } else {
                    BLAS.sgemm(transA: false, transB: layout == .inOut, m: rows, n: inF, k: outF, alpha: 1,
                               a: g, lda: outF, b: w.data, ldb: layout == .outIn ? inF : outF,
                               beta: fresh ? 0 : 1, c: dx, ldc: inF)
                }
            }
            if w.requiresGrad, keepX != nil || use != nil {
                let gt = ob.grad!  // kept by deferred work
                Tape.deferWeightGradient(weightIsLeaf: wLeaf, keptFloats: rows * (inF + outF), weightFloats: inF * outF) {
                    let g = gt.data
                    let x = keepX ?? use!.take()
                    // W's first gradient is written, not added to zeros (same bits; see bufferForProduct):
                    // no zeroing pass over the weight's size and no read of it in the product.
                    let (dw, fresh) = w.box.bufferForProduct()
                    if layout == .outIn {  // dW (out × in) = gᵀ x
                        BLAS.sgemm(transA: true, transB: false, m: outF, n: inF, k: rows, alpha: 1,
                                   a: g, lda: outF, b: x.data, ldb: inF, beta: fresh ? 0 : 1, c: dw, ldc: inF)
                    } else {               // dW (in × out) = xᵀ g
                        BLAS.sgemm(transA: true, transB: false, m: inF, n: outF, k: rows, alpha: 1,
                                   a: x.data, lda: inF, b: g, ldb: outF, beta: fresh ? 0 : 1, c: dw, ldc: outF)
                    }
                }
            }
            if let bb, bb.requiresGrad {
                columnSumAccumulate(rows: rows, cols: outF, src: g, dst: bb.buffer())
            }
        }
    }
    return out
}

/// dst[j] += Σ_r src[r·cols + j], summed in fixed blocks of 64 rows (deterministic for any thread count).
func columnSumAccumulate(rows: Int, cols: Int, src: UnsafePointer<Float>, dst: UnsafeMutablePointer<Float>) {
    let block = 64
    let nBlocks = (rows + block - 1) / block
    if nBlocks == 0 { return }
    let partial = UnsafeMutablePointer<Float>.allocate(capacity: nBlocks * cols)
    defer { partial.deallocate() }
    partial.initialize(repeating: 0, count: nBlocks * cols)
    Parallel.forRange(nBlocks, costPerItem: block * cols) { blocks in
        for bI in blocks {
            let p = partial + bI * cols
            for r in (bI * block)..<min(rows, (bI + 1) * block) {
                let s = src + r * cols
                for j in 0..<cols { p[j] += s[j] }
            }
        }
    }
    for bI in 0..<nBlocks {
        let p = partial + bI * cols
        for j in 0..<cols { dst[j] += p[j] }
    }
}
