// Cross-attention whose keys and values are projections of one memory E (T5's encoder states),
// computed without materialising K and V ("absorbed" projections). With Wk_h, Wv_h the rows of
// head h in Wk, Wv (torch [out, in] = [H·dk, d]):
//   K_h = E Wk_hᵀ                       V_h = E Wv_hᵀ
//   S_h = s·Q_h K_hᵀ = (s·Q_h Wk_h) Eᵀ = Q̃_h Eᵀ      (Q̃_h: Tq × d)
//   P_h = softmax(S_h), Pd_h = dropout(P_h)
//   O_h = Pd_h V_h = (Pd_h E) Wv_hᵀ = C_h Wv_hᵀ        (C_h: Tq × d)
// Per batch row the heads are stacked: Q̃, C [H·Tq, d], S/P [H·Tq, Tk]; two GEMMs with E serve
// every head. Cost per batch row 2·Tq·d·(H·dk + H·dv) + 2·H·Tq·Tk·d·2 against the projected
// form's 2·Tk·d·(H·dk + H·dv) + 2·Tq·Tk·(H·dk + H·dv): far cheaper when the queries are few
// (a few label tokens, greedy steps) and the memory is long, and no per-layer K/V is kept.
// The result equals `attention(q: linear(E, Wk), k:, v: linear(E, Wv))` up to fp32 rounding
// (the products are associated differently); dropout uses the same key per (b, h) unit and the
// same element order, so the masks are identical.
// Backward per batch row (g = dO):
//   dC_h = g_h Wv_h ; dPd = dC Eᵀ ; dP = dPd ⊙ m/(1−p) ; dS = P ⊙ (dP − rowsum(dP ⊙ P))
//   dQ̃ = dS E ; dQ_h = s·dQ̃_h Wk_hᵀ ; dE = Pdᵀ dC + dSᵀ Q̃
//   dWk_h = s·Σ_b Q_bhᵀ dQ̃_bh ; dWv_h = Σ_b g_bhᵀ C_bh   (per head, summed over b in order)
import Foundation

/// The greedy-decoding step (1-based) at which `.auto` stops attending to the encoder states
/// (absorbed form) and projects K/V once, nil if not within `maxSteps`: the first step s where s
/// absorbed steps would have taken at least as long as projecting plus s projected steps. Time,
/// not FLOPs: a decoding step's products have few rows (heads × one query per batch row against
/// the encoder states; one query per head against K/V) and run far below the rate of the
/// projection's large GEMM — on Intel family 6 model 207 (`perf`, t5-small, 56 rows × 200 keys)
/// ≈ 6× (absorbed) and ≈ 10× (projected, one-row products) slower per FLOP, the weights used here.
/// By FLOPs alone the switch came at step ≈ 55 there, by time at ≈ 10 (docs/performance.md).
public func crossAttentionDecodingSwitchStep(maxSteps: Int, keys: Int, model d: Int, inner: Int, heads: Int) -> Int? {
    let absorbedStep = 6 * Double(2 * inner * d + 2 * heads * keys * d)
    let projectedStep = 10 * Double(2 * keys * inner)
    let projection = Double(2 * keys * d * inner)
    return (1...max(1, maxSteps)).first { Double($0) * absorbedStep >= projection + Double($0) * projectedStep }
}

/// True when the absorbed form costs fewer FLOPs than projecting K and V: `queries` is the number
/// of query rows per batch row that will use the projections (decoder length, or generation steps).
public func crossAttentionAbsorbedIsCheaper(queries: Int, keys: Int, model d: Int, inner: Int, heads: Int) -> Bool {
    let absorbed = 2 * queries * inner * d + 2 * heads * queries * keys * d
    let projected = 2 * keys * d * inner + 2 * queries * keys * inner
    return absorbed < projected
}

/// q [B, Tq, H·dk], memory [B, Tk, d], wk [H·dk, d], wv [H·dv, d] → [B, Tq, H·dv].
/// `keyMask` [B, Tk] holds 1 for real keys and 0 for padding. Causal masking is not supported.
public func crossAttentionAbsorbed(q: Tensor, memory e: Tensor, wk: Tensor, wv: Tensor, heads: Int, keyMask: Tensor? = nil,
                                   options o: AttentionOptions = AttentionOptions()) throws -> Tensor {
    let op = "crossAttentionAbsorbed"
    guard q.rank == 3, e.rank == 3, wk.rank == 2, wv.rank == 2, heads > 0 else {
        throw TensorError.shapeMismatch(op: op, detail: "q \(shapeString(q.shape)), memory \(shapeString(e.shape)) must be [B, T, ·], wk \(shapeString(wk.shape)), wv \(shapeString(wv.shape)) 2-D")
    }
    let (b, tq, inner) = (q.shape[0], q.shape[1], q.shape[2])
    let (tk, d) = (e.shape[1], e.shape[2])
    let vInner = wv.shape[0]
    guard e.shape[0] == b, wk.shape == [inner, d], wv.shape[1] == d, inner % heads == 0, vInner % heads == 0 else {
        throw TensorError.shapeMismatch(op: op, detail: "q \(shapeString(q.shape)), memory \(shapeString(e.shape)), wk \(shapeString(wk.shape)), wv \(shapeString(wv.shape)) with \(heads) heads")
    }
    if let keyMask, keyMask.shape != [b, tk] {
        throw TensorError.shapeMismatch(op: op, detail: "keyMask \(shapeString(keyMask.shape)) must be [\(b), \(tk)]")
    }
    guard !o.causal else { throw TensorError.shapeMismatch(op: op, detail: "causal masking is not supported (cross-attention)") }
    let dk = inner / heads, dv = vInner / heads, rows = heads * tq
    let useDrop = o.dropout > 0 && o.key != nil
    let dropScale = useDrop ? 1 / (1 - o.dropout) : 1
    let record = Tape.needsGrad(q, e, wk, wv)
    let out = Tensor(uninitialized: [b, tq, vInner])
    // Kept for backward: P always; Q̃ for dE; C for dWv.
    let probs: Tensor? = record ? Tensor(uninitialized: [b, rows, tk]) : nil
    let qtKept: Tensor? = record && e.requiresGrad ? Tensor(uninitialized: [b, rows, d]) : nil
    let cKept: Tensor? = record && wv.requiresGrad ? Tensor(uninitialized: [b, rows, d]) : nil
    let unitBytes = (tq * tk + 63) / 64 * 8
    let maskBits: MaskBits? = record && useDrop ? MaskBits(count: b * heads * unitBytes * 8) : nil
    let pq = q.data, pe = e.data, pwk = wk.data, pwv = wv.data, po = out.data
    let mask = keyMask?.data
    let unitChunks = (tq * tk + 63) / 64
    let live = realKeyLengths(mask.map { UnsafePointer($0) }, batch: b, keys: tk)
    let clock = AttentionClock.now()

    /// Batch row `bi`'s scores, softmax, dropout and C = Pd·E from its Q̃ `qt` [H·Tq, d] into `c` [H·Tq, d].
    func attendMemory(_ bi: Int, qt: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>) {
        let p = probs.map { $0.data + bi * rows * tk } ?? .allocate(capacity: rows * tk)
        let pd: UnsafeMutablePointer<Float> = useDrop ? .allocate(capacity: rows * tk) : p
        defer {
            if probs == nil { p.deallocate() }
            if useDrop { pd.deallocate() }
        }
        // Keys after the row's last real one are neither scored nor read (as in `singleQueryAttention`):
        // the softmax masks their scores whatever they were, so their probabilities are exactly 0,
        // and C = Pd·E over the first n keys adds the same terms in the same order. Same bits, as
        // long as both products keep their kernel (`BLAS.usesOwnKernel` looks at n·k when m is below
        // `BLAS.fewRows`, 32 or 16; testing 32 is the conservative form for both).
        let eb = pe + bi * tk * d, n = rows >= 32 || tk * d < 1 << 20 ? live[bi] : tk
        BLAS.sgemm(transA: false, transB: true, m: rows, n: n, k: d, alpha: 1, a: qt, lda: d, b: eb, ldb: d, beta: 0, c: p, ldc: tk)
        if n < tk { for r in 0..<rows { (p + r * tk + n).initialize(repeating: 0, count: tk - n) } }
        let mrow = mask.map { UnsafePointer($0 + bi * tk) }
        for r in 0..<rows { softmaxRowVector(p + r * tk, tk, bias: nil, limit: tk, keyMask: mrow) }
        if useDrop {
            for h in 0..<heads {
                let u = bi * heads + h
                dropoutChunks(0..<unitChunks, count: tq * tk, p: o.dropout, scale: dropScale, key: o.key!.derive(UInt64(u)),
                              src: p + h * tq * tk, dst: pd + h * tq * tk, bits: maskBits.map { $0.bytes + u * unitBytes })
            }
        }
        BLAS.sgemm(transA: false, transB: false, m: rows, n: d, k: n, alpha: 1, a: pd, lda: tk, b: eb, ldb: d, beta: 0, c: c, ldc: d)
    }

    if tq == 1 {
        // One query per batch row (a greedy decoding step, a one-token decoder input): Q̃ and the
        // output projection are one product per head over all B rows (M = B; A and C strided by
        // H·d) instead of B one-row products, which ran the register tile at a twelfth of its rows.
        // With the own kernels each element is the same chain of operations either way
        // (gemm_common.h), so the bits are the same; the layout of Q̃ and C ([B, H, d]) is the one
        // backward reads.
        let qtAll = qtKept?.data ?? .allocate(capacity: b * rows * d)
        let cAll = cKept?.data ?? .allocate(capacity: b * rows * d)
        defer {
            if qtKept == nil { qtAll.deallocate() }
            if cKept == nil { cAll.deallocate() }
        }
        Parallel.units(heads) { h in
            BLAS.sgemm(transA: false, transB: false, m: b, n: d, k: dk, alpha: o.scale, a: pq + h * dk, lda: inner,
                       b: pwk + h * dk * d, ldb: d, beta: 0, c: qtAll + h * d, ldc: rows * d)
        }
        eachBatchRow(b) { bi in attendMemory(bi, qt: qtAll + bi * rows * d, c: cAll + bi * rows * d) }
        Parallel.units(heads) { h in
            BLAS.sgemm(transA: false, transB: true, m: b, n: dv, k: d, alpha: 1, a: cAll + h * d, lda: rows * d,
                       b: pwv + h * dv * d, ldb: d, beta: 0, c: po + h * dv, ldc: vInner)
        }
    } else {
        eachBatchRow(b) { bi in
            let qt = qtKept.map { $0.data + bi * rows * d } ?? .allocate(capacity: rows * d)
            let c = cKept.map { $0.data + bi * rows * d } ?? .allocate(capacity: rows * d)
            defer {
                if qtKept == nil { qt.deallocate() }
                if cKept == nil { c.deallocate() }
            }
            for h in 0..<heads {
                BLAS.sgemm(transA: false, transB: false, m: tq, n: d, k: dk, alpha: o.scale, a: pq + bi * tq * inner + h * dk, lda: inner,
                           b: pwk + h * dk * d, ldb: d, beta: 0, c: qt + h * tq * d, ldc: d)
            }
            attendMemory(bi, qt: qt, c: c)
            for h in 0..<heads {
                BLAS.sgemm(transA: false, transB: true, m: tq, n: dv, k: d, alpha: 1, a: c + h * tq * d, lda: d,
                           b: pwv + h * dv * d, ldb: d, beta: 0, c: po + bi * tq * vInner + h * dv, ldc: vInner)
            }
        }
    }
    AttentionClock.add(since: clock)

    if record, let probs {
        let ob = out.box
        Tape.push(out, inputs: [q, e, wk, wv]) {
            let clock = AttentionClock.now()
            defer { AttentionClock.add(since: clock) }
            let g = ob.grad!.data
            let gq = q.requiresGrad ? q.gradBuffer() : nil
            let ge = e.requiresGrad ? e.gradBuffer() : nil
            /// dst = src ⊙ m/(1−p) for every head of batch row `bi` ([H·Tq, Tk]), masks as forward drew them.
            func applyDropoutMask(_ bits: MaskBits, batchRow bi: Int, src: UnsafePointer<Float>, dst: UnsafeMutablePointer<Float>) {
                for h in 0..<heads {
                    maskApply(0..<unitChunks, count: tq * tk, scale: dropScale, bits: bits.bytes + (bi * heads + h) * unitBytes,
                              src: src + h * tq * tk, dst: dst + h * tq * tk, accumulate: false)
                }
            }
            // dQ̃ of every batch row is kept for dWk (summed over b per head afterwards).
            let dqtAll: UnsafeMutablePointer<Float>? = wk.requiresGrad ? .allocate(capacity: b * rows * d) : nil
            defer { dqtAll?.deallocate() }
            eachBatchRow(b) { bi in
                let p = probs.data + bi * rows * tk, eb = e.data + bi * tk * d
                let dc = UnsafeMutablePointer<Float>.allocate(capacity: rows * d)
                let dP = UnsafeMutablePointer<Float>.allocate(capacity: rows * tk)
                let dqt = dqtAll.map { $0 + bi * rows * d } ?? .allocate(capacity: rows * d)
                defer {
                    dc.deallocate()
                    dP.deallocate()
                    if dqtAll == nil { dqt.deallocate() }
                }
                for h in 0..<heads {
                    BLAS.sgemm(transA: false, transB: false, m: tq, n: d, k: dv, alpha: 1, a: g + bi * tq * vInner + h * dv, lda: vInner,
                               b: wv.data + h * dv * d, ldb: d, beta: 0, c: dc + h * tq * d, ldc: d)
                }
                if let ge {  // dE += Pdᵀ dC
                    var pd = UnsafePointer(p)
                    var tmp: UnsafeMutablePointer<Float>? = nil
                    if let maskBits {
                        tmp = .allocate(capacity: rows * tk)
                        applyDropoutMask(maskBits, batchRow: bi, src: p, dst: tmp!)
                        pd = UnsafePointer(tmp!)
                    }
                    BLAS.sgemm(transA: true, transB: false, m: tk, n: d, k: rows, alpha: 1, a: pd, lda: tk, b: dc, ldb: d,
                               beta: 1, c: ge + bi * tk * d, ldc: d)
                    tmp?.deallocate()
                }
                if gq == nil && ge == nil && dqtAll == nil { return }
                BLAS.sgemm(transA: false, transB: true, m: rows, n: tk, k: d, alpha: 1, a: dc, lda: d, b: eb, ldb: d, beta: 0, c: dP, ldc: tk)
                if let maskBits { applyDropoutMask(maskBits, batchRow: bi, src: dP, dst: dP) }
                for r in 0..<rows { softmaxBackwardRowVector(p: p + r * tk, dp: dP + r * tk, out: dP + r * tk, tk) }  // dS over dP
                if let ge, let qtKept {  // dE += dSᵀ Q̃
                    BLAS.sgemm(transA: true, transB: false, m: tk, n: d, k: rows, alpha: 1, a: dP, lda: tk,
                               b: qtKept.data + bi * rows * d, ldb: d, beta: 1, c: ge + bi * tk * d, ldc: d)
                }
                if gq == nil && dqtAll == nil { return }
                BLAS.sgemm(transA: false, transB: false, m: rows, n: d, k: tk, alpha: 1, a: dP, lda: tk, b: eb, ldb: d, beta: 0, c: dqt, ldc: d)
                if let gq {
                    for h in 0..<heads {
                        BLAS.sgemm(transA: false, transB: true, m: tq, n: dk, k: d, alpha: o.scale, a: dqt + h * tq * d, lda: d,
                                   b: wk.data + h * dk * d, ldb: d, beta: 1, c: gq + bi * tq * inner + h * dk, ldc: inner)
                    }
                }
            }
            // Weight gradients per head (rows h·dk..<(h+1)·dk of dW), each summed over b in order:
            // the head's rows of every batch row are gathered so that one GEMM (k = B·Tq) does the sum.
            let gwk = wk.requiresGrad ? wk.gradBuffer() : nil, gwv = wv.requiresGrad ? wv.gradBuffer() : nil
            if gwk == nil && gwv == nil { return }
            Parallel.units(heads) { h in
                let n = b * tq
                let left = UnsafeMutablePointer<Float>.allocate(capacity: n * max(dk, dv))
                let right = UnsafeMutablePointer<Float>.allocate(capacity: n * d)
                defer { left.deallocate(); right.deallocate() }
                func gather(_ src: UnsafePointer<Float>, width: Int, ld: Int, offset: Int) {
                    for bi in 0..<b { for t in 0..<tq { (left + (bi * tq + t) * width).update(from: src + (bi * tq + t) * ld + offset, count: width) } }
                }
                func gatherRows(_ src: UnsafePointer<Float>) {
                    for bi in 0..<b { (right + bi * tq * d).update(from: src + (bi * rows + h * tq) * d, count: tq * d) }
                }
                if let gwk, let dqtAll {
                    gather(q.data, width: dk, ld: inner, offset: h * dk)
                    gatherRows(dqtAll)
                    BLAS.sgemm(transA: true, transB: false, m: dk, n: d, k: n, alpha: o.scale, a: left, lda: dk, b: right, ldb: d,
                               beta: 1, c: gwk + h * dk * d, ldc: d)
                }
                if let gwv, let cKept {
                    gather(g, width: dv, ld: vInner, offset: h * dv)
                    gatherRows(cKept.data)
                    BLAS.sgemm(transA: true, transB: false, m: dv, n: d, k: n, alpha: 1, a: left, lda: dv, b: right, ldb: d,
                               beta: 1, c: gwv + h * dv * d, ldc: d)
                }
            }
        }
    }
    return out
}

/// Runs `body` for every batch row: rows spread over the threads (GEMMs inside serial) when
/// there are at least as many rows as threads, otherwise one row at a time with threaded GEMMs.
private func eachBatchRow(_ b: Int, _ body: (Int) -> Void) {
    if b >= Parallel.threads && b > 1 {
        Parallel.units(b, body)
    } else {
        for bi in 0..<b { body(bi) }
    }
}
