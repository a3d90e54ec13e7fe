// Self-attention of greedy decoding: one new query per batch row attends over the keys and values
// of every row decoded so far. `KVCache` holds them in buffers allocated once for the whole decode
// (appending a step writes one row, instead of concatenating the cache at every step; the
// buffers double when full), with the
// keys stored transposed per batch row ([H·dk, capacity]), so that QKᵀ reads op(B) = Kᵀ as a plain
// row-major matrix and the GEMM packs it with vector copies instead of transposing it at every step.
// `cachedAttention` runs exactly the products and softmax `attention(q:k:v:heads:bias:)` runs for
// Tq = 1 on the concatenated cache — the same values of op(A) and op(B) in the same order, the same
// row softmax — so with PromptRepro's GEMM kernels the result is bit-identical (checked in
// Tests/TensorTests/DecodeAttentionTests.swift). Inference only: nothing is recorded for backward.
import Foundation

/// Keys and values of the decoded rows, per layer, for `cachedAttention`.
/// Shapes: per layer, keys [B, H·dk, capacity] (batch row b's block: column j = key of step j) and
/// values [B, capacity, H·dv]; `count` rows are filled (the same for every layer after a step).
/// The capacity starts at min(16, `maxRows`) and doubles when full, up to `maxRows` (a decode that
/// stops at the first EOS never holds buffers for the 128-step cap).
public final class KVCache {
    public let batch: Int, maxRows: Int, keyWidth: Int, valueWidth: Int
    public private(set) var capacity: Int
    var keysT: [Tensor]      // per layer [B, H·dk, capacity]
    var values: [Tensor]     // per layer [B, capacity, H·dv]
    /// Rows appended so far, per layer.
    public private(set) var count: [Int]

    /// Empty cache for `layers` layers of `batch` rows and at most `maxRows` steps.
    /// `keyWidth` = H·dk, `valueWidth` = H·dv (T5: both the attention's inner dimension).
    public init(layers: Int, batch: Int, maxRows: Int, keyWidth: Int, valueWidth: Int) {
        self.batch = batch
        self.maxRows = max(1, maxRows)
        self.keyWidth = keyWidth
        self.valueWidth = valueWidth
        capacity = min(16, self.maxRows)
        keysT = (0..<layers).map { _ in Tensor(zeros: [batch, keyWidth, min(16, max(1, maxRows))]) }
        values = (0..<layers).map { _ in Tensor(zeros: [batch, min(16, max(1, maxRows)), valueWidth]) }
        count = Array(repeating: 0, count: layers)
    }

    /// Appends one step's keys k [B, 1, H·dk] and values v [B, 1, H·dv] to `layer`.
    /// Errors: shape mismatch, or the cache already holds `maxRows` rows.
    public func append(layer: Int, k: Tensor, v: Tensor) throws {
        guard k.shape == [batch, 1, keyWidth], v.shape == [batch, 1, valueWidth] else {
            throw TensorError.shapeMismatch(op: "KVCache.append", detail: "k \(shapeString(k.shape)), v \(shapeString(v.shape)) must be [\(batch), 1, \(keyWidth)] and [\(batch), 1, \(valueWidth)]")
        }
        let j = count[layer]
        guard j < maxRows else {
            throw TensorError.invalidArgument(op: "KVCache.append", detail: "the cache holds its \(maxRows) rows already")
        }
        if j == capacity { grow() }
        let cap = capacity
        if keysT[layer].shape[2] < cap { regrow(layer) }
        let kt = keysT[layer].data, vv = values[layer].data
        for b in 0..<batch {
            let src = k.data + b * keyWidth, dst = kt + b * keyWidth * cap + j
            for c in 0..<keyWidth { dst[c * cap] = src[c] }
            (vv + (b * cap + j) * valueWidth).update(from: v.data + b * valueWidth, count: valueWidth)
        }
        count[layer] = j + 1
    }

    /// Doubles the capacity (at most `maxRows`); each layer's buffers follow when it next appends.
    private func grow() { capacity = min(2 * capacity, maxRows) }

    /// Copies `layer`'s filled rows into buffers of the current capacity.
    private func regrow(_ layer: Int) {
        let old = keysT[layer].shape[2], n = count[layer], cap = capacity
        let kt = Tensor(zeros: [batch, keyWidth, cap]), vv = Tensor(zeros: [batch, cap, valueWidth])
        for b in 0..<batch {
            for c in 0..<keyWidth {
                (kt.data + (b * keyWidth + c) * cap).update(from: keysT[layer].data + (b * keyWidth + c) * old, count: n)
            }
            (vv.data + b * cap * valueWidth).update(from: values[layer].data + b * old * valueWidth, count: n * valueWidth)
        }
        keysT[layer] = kt
        values[layer] = vv
    }
}

/// Attention of q [B, 1, H·dk] over the `cache.count[layer]` rows of `layer` → [B, 1, H·dv]:
/// per batch row and head, softmax(scale · q Kᵀ + bias) V, with `bias` [H, 1, t] added before the
/// softmax (T5's relative position bias; t = the cached rows). No key mask, no dropout, no causal
/// limit (every cached row precedes the query). Inference only (nothing recorded).
/// Errors: shape mismatch between q, the cache and the bias.
public func cachedAttention(q: Tensor, cache: KVCache, layer: Int, heads: Int, bias: Tensor?, scale: Float = 1) throws -> Tensor {
    let op = "cachedAttention"
    let (b, hdk, hdv, cap) = (cache.batch, cache.keyWidth, cache.valueWidth, cache.keysT[layer].shape[2])
    let tk = cache.count[layer]
    guard q.shape == [b, 1, hdk], heads > 0, hdk % heads == 0, hdv % heads == 0, tk > 0 else {
        throw TensorError.shapeMismatch(op: op, detail: "q \(shapeString(q.shape)) must be [\(b), 1, \(hdk)] with \(heads) heads over \(tk) cached rows")
    }
    if let bias, bias.shape != [heads, 1, tk] {
        throw TensorError.shapeMismatch(op: op, detail: "bias \(shapeString(bias.shape)) must be [\(heads), 1, \(tk)]")
    }
    precondition(!Tape.needsGrad(q), "cachedAttention is inference only")
    let dk = hdk / heads, dv = hdv / heads
    let out = Tensor(uninitialized: [b, 1, hdv])
    let pq = q.data, pkt = cache.keysT[layer].data, pv = cache.values[layer].data, po = out.data
    let pbias = bias?.data
    let clock = AttentionClock.now()
    Parallel.units(b * heads) { u in
        let bi = u / heads, h = u % heads
        let p = UnsafeMutablePointer<Float>.allocate(capacity: tk)
        defer { p.deallocate() }
        // op(B) = Kᵀ of head h: rows h·dk..<(h+1)·dk of the batch row's [H·dk, capacity] block.
        BLAS.sgemm(transA: false, transB: false, m: 1, n: tk, k: dk, alpha: scale,
                   a: pq + bi * hdk + h * dk, lda: hdk, b: pkt + (bi * hdk + h * dk) * cap, ldb: cap,
                   beta: 0, c: p, ldc: tk)
        softmaxRowVector(p, tk, bias: pbias.map { UnsafePointer($0 + h * tk) }, limit: tk, keyMask: nil)
        BLAS.sgemm(transA: false, transB: false, m: 1, n: dv, k: tk, alpha: 1,
                   a: p, lda: tk, b: pv + bi * cap * hdv + h * dv, ldb: hdv,
                   beta: 0, c: po + bi * hdv + h * dv, ldc: hdv)
    }
    AttentionClock.add(since: clock)
    return out
}
