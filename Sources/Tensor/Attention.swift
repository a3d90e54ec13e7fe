// Fused multi-head attention on [B, T, H·dk] activations, no head transposes:
//   S = scale · Q_bh K_bhᵀ + bias[h] ; masked keys (and future keys when causal) → −∞
//   P = softmax(S) ; Pd = dropout(P) ; O_bh = Pd V_bh
// Heads are addressed in place through GEMM leading dimensions (lda = H·dk).
// Backward per (b, h), with the dropout mask kept from forward as bits:
//   dV = Pdᵀ dO ; dPd = dO Vᵀ ; dP = dPd ⊙ m/(1−p) ; dS = P ⊙ (dP − rowsum(dP ⊙ P))
//   dQ = scale · dS K ; dK = scale · dSᵀ Q ; dbias[h] = Σ_b dS
import Dispatch
import Foundation
import Support

/// Time spent inside the fused attention ops (forward and backward), for the benchmark's
/// attention share. Thread-safe: ops running side by side on several threads (inside
/// `Parallel.units`) each add their own time.
public enum AttentionClock {
    nonisolated(unsafe) private static var total: Double = 0
    private static let lock = NSLock()
    /// Thread-seconds spent in attention ops since the last reset: each op's wall time times the
    /// threads it had — all of `Parallel.threads`, or one when it ran inside `Parallel.units` (the
    /// encoder's length buckets side by side, one per thread). Divide by wall seconds × threads
    /// for the share of the cores' time.
    public static var seconds: Double {
        get { lock.lock(); defer { lock.unlock() }; return total }
        set { lock.lock(); total = newValue; lock.unlock() }
    }
    @inline(__always) static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
    static func add(since t0: UInt64) {
        let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9 * Double(Parallel.insideUnits ? 1 : Parallel.threads)
        lock.lock(); total += dt; lock.unlock()
    }
}

public struct AttentionOptions {
    /// Multiplies QKᵀ (T5: 1; GPT-2: 1/√dk).
    public var scale: Float
    /// Masks keys after the query's absolute position `queryOffset + i`.
    public var causal: Bool
    public var queryOffset: Int
    /// Dropout on the attention probabilities (training only; needs `key`).
    public var dropout: Float
    public var key: RNGKey?
    /// Backward recomputes the probabilities P from Q, K, bias and mask (one more QKᵀ GEMM and
    /// softmax per unit, bit-identical to forward's) instead of keeping B·H·Tq·Tk floats from forward.
    public var recomputeProbabilities: Bool
    /// Self-attention (Tq = Tk, not causal, with a key mask) over each batch row's real positions
    /// only: queries up to the row's last real key (`realKeyLengths`), keys up to that rounded up to
    /// a multiple of 8 (or Tk). The outputs at the other query positions are 0 and their gradients
    /// are not propagated. The real positions keep their bits with the own kernels (see
    /// `attentionExtents`); only for callers whose loss never reads a padded position and whose
    /// padded positions never reach a real one (the T5 encoder inside a training loss,
    /// `T5Model.withEncoderOverRealPositions`). Ignored with OpenBLAS and when `PaddedRows` is off.
    public var realPositionsOnly: Bool

    public init(scale: Float = 1, causal: Bool = false, queryOffset: Int = 0, dropout: Float = 0, key: RNGKey? = nil,
                recomputeProbabilities: Bool = false, realPositionsOnly: Bool = false) {
        self.scale = scale
        self.causal = causal
        self.queryOffset = queryOffset
        self.dropout = dropout
        self.key = key
        self.recomputeProbabilities = recomputeProbabilities
        self.realPositionsOnly = realPositionsOnly
    }
}

/// q [B, Tq, H·dk], k [B, Tk, H·dk], v [B, Tk, H·dv] → [B, Tq, H·dv].
/// `bias` [H, Tq, Tk] is added to the scores of every batch row (T5 relative position bias).
/// `keyMask` [B, Tk] holds 1 for real keys and 0 for padding.
public func attention(q: Tensor, k: Tensor, v: Tensor, heads: Int, bias: Tensor? = nil, keyMask: Tensor? = nil,
                      options o: AttentionOptions = AttentionOptions()) throws -> Tensor {
    let op = "attention"
    guard q.rank == 3, k.rank == 3, v.rank == 3, heads > 0 else {
        throw TensorError.shapeMismatch(op: op, detail: "q \(shapeString(q.shape)), k \(shapeString(k.shape)), v \(shapeString(v.shape)) must be [B, T, H·d]")
    }
    let (b, tq, hdk) = (q.shape[0], q.shape[1], q.shape[2])
    let tk = k.shape[1], hdv = v.shape[2]
    guard k.shape[0] == b, v.shape[0] == b, k.shape[2] == hdk, v.shape[1] == tk,
          hdk % heads == 0, hdv % heads == 0 else {
        throw TensorError.shapeMismatch(op: op, detail: "q \(shapeString(q.shape)), k \(shapeString(k.shape)), v \(shapeString(v.shape)) with \(heads) heads")
    }
    if let bias, bias.shape != [heads, tq, tk] {
        throw TensorError.shapeMismatch(op: op, detail: "bias \(shapeString(bias.shape)) must be [\(heads), \(tq), \(tk)]")
    }
    if let keyMask, keyMask.shape != [b, tk] {
        throw TensorError.shapeMismatch(op: op, detail: "keyMask \(shapeString(keyMask.shape)) must be [\(b), \(tk)]")
    }
    let dk = hdk / heads, dv = hdv / heads
    let useDrop = o.dropout > 0 && o.key != nil
    let dropScale = useDrop ? 1 / (1 - o.dropout) : 1
    let record = Tape.needsGrad(q, k, v, bias)
    let out = Tensor(uninitialized: [b, tq, hdv])
    // P is kept for backward only when recording (and not recomputed there); otherwise one scratch per unit.
    let probs: Tensor? = record && !o.recomputeProbabilities ? Tensor(uninitialized: [b, heads, tq, tk]) : nil
    // The dropout mask of each unit, kept as bits for backward (1/32 of P).
    let unitBytes = (tq * tk + 63) / 64 * 8
    let maskBits: MaskBits? = record && useDrop ? MaskBits(count: b * heads * unitBytes * 8) : nil
    let pq = q.data, pk = k.data, pv = v.data, po = out.data
    let mask = keyMask?.data, pbias = bias?.data

    func unitKey(_ u: Int) -> RNGKey? { useDrop ? o.key!.derive(UInt64(u)) : nil }
    // Each batch row's computed block of its [tq, tk] units: (nq queries, nk keys). P, its dropout
    // mask and dP keep the [tq, tk] layout (ld tk), so every element keeps its index and its mask bit.
    let extent = attentionExtents(batch: b, tq: tq, tk: tk, width: max(dk, dv), mask: mask, options: o)
    // The 64-element dropout chunks that cover the first nq rows of a unit.
    func chunks(_ nq: Int) -> Range<Int> { 0..<((nq * tk + 63) / 64) }
    /// Zeros a unit buffer [tq, tk] where those chunks reach outside its computed block: the
    /// keys ≥ nk of rows < nq, and the start of row nq up to the last chunk's end.
    func clearOutsideBlock(_ x: UnsafeMutablePointer<Float>, _ nq: Int, _ nk: Int) {
        if nk < tk { for i in 0..<nq { (x + i * tk + nk).initialize(repeating: 0, count: tk - nk) } }
        let covered = min(tq * tk, chunks(nq).upperBound * 64)
        if covered > nq * tk { (x + nq * tk).initialize(repeating: 0, count: covered - nq * tk) }
    }
    let clock = AttentionClock.now()

    /// P of unit u (scores, bias, masks, softmax) into p [tq, tk]: rows < nq, keys < nk; the rest
    /// of those rows, and the row elements the last dropout chunk covers, 0.
    func probabilities(_ u: Int, into p: UnsafeMutablePointer<Float>) {
        let bi = u / heads, h = u % heads
        let (nq, nk) = extent[bi]
        BLAS.sgemm(transA: false, transB: true, m: nq, n: nk, k: dk, alpha: o.scale,
                   a: pq + bi * tq * hdk + h * dk, lda: hdk, b: pk + bi * tk * hdk + h * dk, ldb: hdk,
                   beta: 0, c: p, ldc: tk)
        let mrow = mask.map { $0 + bi * tk }
        for i in 0..<nq {
            let limit = o.causal ? min(nk, o.queryOffset + i + 1) : nk
            softmaxRowVector(p + i * tk, nk, bias: pbias.map { UnsafePointer($0 + (h * tq + i) * tk) }, limit: limit,
                             keyMask: mrow.map { UnsafePointer($0) })
        }
        clearOutsideBlock(p, nq, nk)
    }

    Parallel.units(b * heads) { u in
        let bi = u / heads, h = u % heads
        let (nq, nk) = extent[bi]
        let scratch = probs == nil ? UnsafeMutablePointer<Float>.allocate(capacity: tq * tk) : nil
        defer { scratch?.deallocate() }
        let p = probs.map { $0.data + u * tq * tk } ?? scratch!
        probabilities(u, into: p)
        var pv2 = UnsafePointer(p)
        var dropped: UnsafeMutablePointer<Float>? = nil
        if useDrop {
            dropped = .allocate(capacity: tq * tk)
            dropoutChunks(chunks(nq), count: tq * tk, p: o.dropout, scale: dropScale, key: unitKey(u)!,
                          src: p, dst: dropped!, bits: maskBits.map { $0.bytes + u * unitBytes })
            pv2 = UnsafePointer(dropped!)
        }
        let oUnit = po + bi * tq * hdv + h * dv
        BLAS.sgemm(transA: false, transB: false, m: nq, n: dv, k: nk, alpha: 1,
                   a: pv2, lda: tk, b: pv + bi * tk * hdv + h * dv, ldb: hdv,
                   beta: 0, c: oUnit, ldc: hdv)
        for i in nq..<tq { (oUnit + i * hdv).initialize(repeating: 0, count: dv) }
        dropped?.deallocate()
    }
    AttentionClock.add(since: clock)

    if record {
        // dQ of a query row reads only that row's dO: with nothing else needing a gradient the
        // output's rows are needed where q's are (GradientRows.swift).
        if !k.requiresGrad && !v.requiresGrad && bias?.requiresGrad != true { out.inheritGradientRows(q) }
        // Each unit's dQ over the marked queries, dK and dV over the marked keys only.
        let qRows = q.gradientRows, kRows = k.gradientRows, vRows = v.gradientRows
        let ob = out.box  // keeps q, k, v and P (or bias and mask to recompute P): the gradient needs them
        let keptMask = keyMask
        Tape.push(out, inputs: [q, k, v, bias]) {
            withExtendedLifetime(keptMask) {
                let clock = AttentionClock.now()
                defer { AttentionClock.add(since: clock) }
                let pq = q.data, pk = k.data, pv = v.data
                let g = ob.grad!.data
                let gq = q.requiresGrad ? q.gradBuffer() : nil
                let gk = k.requiresGrad ? k.gradBuffer() : nil
                let gv = v.requiresGrad ? v.gradBuffer() : nil
                let needBias = bias?.requiresGrad == true
                // With a bias gradient, each head's units run on one thread, batch rows in order, so that
                // dbias[h] = Σ_b dS accumulates straight from each unit's dS (same order for any thread count).
                let gb = needBias ? bias!.gradBuffer() : nil
                func unit(_ u: Int) {
                    let bi = u / heads, h = u % heads
                    let (nq, nk) = extent[bi]
                    var own: UnsafeMutablePointer<Float>? = nil
                    defer { own?.deallocate() }
                    let p: UnsafeMutablePointer<Float>
                    if let probs {
                        p = probs.data + u * tq * tk
                    } else {
                        own = .allocate(capacity: tq * tk)
                        p = own!
                        probabilities(u, into: p)
                    }
                    let qb = pq + bi * tq * hdk + h * dk, kb = pk + bi * tk * hdk + h * dk
                    let vb = pv + bi * tk * hdv + h * dv, gob = g + bi * tq * hdv + h * dv
                    // Over the unit's computed block only: outside it P (masked keys) or dO (the
                    // padded queries, whose outputs nothing real reads) is 0, so the full products
                    // would add only zeros to these sums, at the end of each chain.
                    let dP = UnsafeMutablePointer<Float>.allocate(capacity: tq * tk)
                    defer { dP.deallocate() }
                    if let gv {
                        var pd = UnsafePointer(p)
                        var tmp: UnsafeMutablePointer<Float>? = nil
                        if let maskBits {
                            tmp = .allocate(capacity: tq * tk)
                            maskApply(chunks(nq), count: tq * tk, scale: dropScale, bits: maskBits.bytes + u * unitBytes,
                                      src: p, dst: tmp!, accumulate: false)
                            pd = UnsafePointer(tmp!)
                        }
                        let rv = vRows?.span(within: nk) ?? 0..<nk
                        BLAS.sgemm(transA: true, transB: false, m: rv.count, n: dv, k: nq, alpha: 1, a: pd + rv.lowerBound, lda: tk,
                                   b: gob, ldb: hdv, beta: 1, c: gv + (bi * tk + rv.lowerBound) * hdv + h * dv, ldc: hdv)
                        tmp?.deallocate()
                    }
                    if gq == nil && gk == nil && gb == nil { return }
                    BLAS.sgemm(transA: false, transB: true, m: nq, n: nk, k: dv, alpha: 1, a: gob, lda: hdv,
                               b: vb, ldb: hdv, beta: 0, c: dP, ldc: tk)
                    clearOutsideBlock(dP, nq, nk)
                    if let maskBits {
                        maskApply(chunks(nq), count: tq * tk, scale: dropScale, bits: maskBits.bytes + u * unitBytes,
                                  src: dP, dst: dP, accumulate: false)
                    }
                    let dS = dP  // written over dP
                    for i in 0..<nq {
                        softmaxBackwardRowVector(p: p + i * tk, dp: dP + i * tk, out: dS + i * tk, nk)
                    }
                    if let gb {
                        if nq == tq && nk == tk {
                            BLAS.axpy(tq * tk, 1, dS, gb + h * tq * tk)
                        } else {
                            for i in 0..<nq { BLAS.axpy(nk, 1, dS + i * tk, gb + (h * tq + i) * tk) }
                        }
                    }
                    if let gq {
                        let rq = qRows?.span(within: nq) ?? 0..<nq
                        BLAS.sgemm(transA: false, transB: false, m: rq.count, n: dk, k: nk, alpha: o.scale, a: dS + rq.lowerBound * tk, lda: tk,
                                   b: kb, ldb: hdk, beta: 1, c: gq + (bi * tq + rq.lowerBound) * hdk + h * dk, ldc: hdk)
                    }
                    if let gk {
                        let rk = kRows?.span(within: nk) ?? 0..<nk
                        BLAS.sgemm(transA: true, transB: false, m: rk.count, n: dk, k: nq, alpha: o.scale, a: dS + rk.lowerBound, lda: tk,
                                   b: qb, ldb: hdk, beta: 1, c: gk + (bi * tk + rk.lowerBound) * hdk + h * dk, ldc: hdk)
                    }
                }
                if gb != nil {
                    Parallel.units(heads) { h in for bi in 0..<b { unit(bi * heads + h) } }
                } else {
                    Parallel.units(b * heads, unit)
                }
            }
        }
    }
    return out
}

/// Per batch row, the block of each [tq, tk] unit that `attention` computes: (tq, tk) unless
/// `options.realPositionsOnly` applies (self-attention, not causal, a mask, `PaddedRows.isEnabled`,
/// and the own kernels for every product of the unit, restricted or not: tk · `width` < 2²⁰,
/// `BLAS.usesOwnKernel`); then (n, `softmaxSafeLength(real: n, padded: tk)`) with n one past the
/// row's last real key (`realKeyLengths`: tk for a row without one, whose softmax is the uniform
/// fallback over every key, so it is computed whole). Why the real positions keep their bits: the
/// own kernels give a row or column of a product the same bits whatever the number of others, and
/// `softmaxSafeLength` keeps the softmax's. Backward adds only zeros outside the block.
func attentionExtents(batch b: Int, tq: Int, tk: Int, width: Int, mask: UnsafePointer<Float>?,
                       options o: AttentionOptions) -> [(q: Int, k: Int)] {
    guard o.realPositionsOnly, tq == tk, !o.causal, let mask, PaddedRows.isEnabled, BLAS.kernel != .openblas,
          tk * width < 1 << 20 else {
        return Array(repeating: (tq, tk), count: b)
    }
    return realKeyLengths(mask, batch: b, keys: tk).map { n in (n, softmaxSafeLength(real: n, padded: tk)) }
}

/// Oracle for `attention` (forward only): straightforward loops, no BLAS, no fusion.
public func attentionNaive(q: Tensor, k: Tensor, v: Tensor, heads: Int, bias: Tensor?, keyMask: Tensor?,
                           options o: AttentionOptions) -> Tensor {
    let (b, tq, hdk) = (q.shape[0], q.shape[1], q.shape[2])
    let tk = k.shape[1], hdv = v.shape[2], dk = hdk / heads, dv = hdv / heads
    let out = Tensor(zeros: [b, tq, hdv])
    let useDrop = o.dropout > 0 && o.key != nil
    for bi in 0..<b {
        for h in 0..<heads {
            let u = bi * heads + h
            var probs = [Float](repeating: 0, count: tq * tk)
            for i in 0..<tq {
                var s = [Double](repeating: 0, count: tk)
                var keep = [Bool](repeating: true, count: tk)
                for j in 0..<tk {
                    var acc = 0.0
                    for c in 0..<dk { acc += Double(q.data[(bi * tq + i) * hdk + h * dk + c]) * Double(k.data[(bi * tk + j) * hdk + h * dk + c]) }
                    s[j] = acc * Double(o.scale) + Double(bias?.data[(h * tq + i) * tk + j] ?? 0)
                    if let keyMask, keyMask.data[bi * tk + j] == 0 { keep[j] = false }
                    if o.causal && j > o.queryOffset + i { keep[j] = false }
                }
                let mx = zip(s, keep).filter { $0.1 }.map { $0.0 }.max()
                for j in 0..<tk {
                    if let mx { probs[i * tk + j] = keep[j] ? Float(exp(s[j] - mx)) : 0 } else { probs[i * tk + j] = 1 }
                }
                let z = probs[(i * tk)..<((i + 1) * tk)].reduce(0, +)
                for j in 0..<tk { probs[i * tk + j] /= z }
            }
            if useDrop {
                let key = o.key!.derive(UInt64(u))
                let threshold = UInt32((Double(o.dropout) * 65536).rounded())
                for e in 0..<(tq * tk) {
                    probs[e] = dropoutUniform(key, e) >= threshold ? probs[e] / (1 - o.dropout) : 0
                }
            }
            for i in 0..<tq {
                for c in 0..<dv {
                    var acc = 0.0
                    for j in 0..<tk { acc += Double(probs[i * tk + j]) * Double(v.data[(bi * tk + j) * hdv + h * dv + c]) }
                    out.data[(bi * tq + i) * hdv + h * dv + c] = Float(acc)
                }
            }
        }
    }
    return out
}
