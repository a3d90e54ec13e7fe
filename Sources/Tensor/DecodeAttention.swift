// Attention of greedy decoding: one new query per batch row. `KVCache` holds the self-attention's
// keys and values of the rows decoded so far in buffers allocated once for the decode (a step
// writes one row instead of concatenating the cache; the buffers double when full), keys stored
// transposed per batch row ([H·dk, capacity]); the cross-attention's projected keys are laid out
// once per decode, transposed in panels of 64 keys (`panelledKeys`). Then QKᵀ (op(B) = Kᵀ,
// row-major) and P·V are one-row products with B not transposed, which the own GEMM kernels run
// in place (`pr_sgemm_row`).
// `singleQueryAttention` runs exactly the products and row softmax `attention(q:k:v:heads:bias:
// keyMask:)` runs for Tq = 1 — the same values of op(A) and op(B) in the same order — so with
// PromptRepro's kernels the result is bit-identical (Tests/TensorTests/DecodeAttentionTests.swift).
// Inference only: nothing is recorded for backward.
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
        let initial = min(16, self.maxRows)
        capacity = initial
        keysT = (0..<layers).map { _ in Tensor(zeros: [batch, keyWidth, initial]) }
        values = (0..<layers).map { _ in Tensor(zeros: [batch, initial, valueWidth]) }
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
        let kt = keysT[layer].data, vv = values[layer].data, kw = keyWidth, vw = valueWidth
        // Over the threads: each key element lands on a cache line of its own (the keys are stored
        // transposed), so a step's append is mostly waiting for memory (t5-small, 56 rows: 3 % of
        // a decode's time on one thread).
        Parallel.forRange(batch, costPerItem: 16 * kw + vw) { rows in
            for b in rows {
                let src = k.data + b * kw, dst = kt + b * kw * cap + j
                for c in 0..<kw { dst[c * cap] = src[c] }
                (vv + (b * cap + j) * vw).update(from: v.data + b * vw, count: vw)
            }
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
    try singleQueryAttention(q: q, keysT: cache.keysT[layer], values: cache.values[layer], length: cache.count[layer], heads: heads,
                             bias: bias, keyMask: nil, scale: scale)
}

/// Keys [B, T, H·dk] → [B, H·dk, T] (each batch row's block transposed), the 3-D layout
/// `singleQueryAttention` reads (the `KVCache`'s keys; a decode's cross-attention keys use
/// `panelledKeys` instead).
public func transposedKeys(_ k: Tensor) throws -> Tensor {
    guard k.rank == 3 else { throw TensorError.shapeMismatch(op: "transposedKeys", detail: "keys \(shapeString(k.shape)) must be [B, T, H·dk]") }
    return try transposedKeys(rows: k, lengths: Array(repeating: k.shape[1], count: k.shape[0]), keys: k.shape[1])
}

/// Batch row b's first `lengths[b]` positions of x [B, L, d], one row after another → [1, Σ lengths, d]:
/// the compact rows whose projections `panelledKeys(rows:heads:lengths:keys:)` and
/// `headMajorValues(rows:heads:lengths:keys:)` lay out for decoding.
/// Errors: x not 3-D, or a length outside 0...L.
public func gatherRows(_ x: Tensor, lengths: [Int]) throws -> Tensor {
    guard x.rank == 3, lengths.count == x.shape[0], lengths.allSatisfy({ (0...x.shape[1]).contains($0) }) else {
        throw TensorError.shapeMismatch(op: "gatherRows", detail: "x \(shapeString(x.shape)) must be [B, L, d] with \(lengths.count) lengths in 0...L")
    }
    let (l, d) = (x.shape[1], x.shape[2])
    let out = Tensor(uninitialized: [1, lengths.reduce(0, +), d])
    var at = 0
    for (b, n) in lengths.enumerated() { (out.data + at * d).update(from: x.data + b * l * d, count: n * d); at += n }
    return out
}

/// Batch row b's first `lengths[b]` keys, stored one row after another in `rows` (any shape whose
/// last axis is the width H·dk and whose rows number Σ lengths: a projection of only the real
/// positions) → [B, H·dk, `keys`]: row b's block transposed, its columns past `lengths[b]` zero.
/// The same tensor as scattering the rows into a zeroed [B, keys, H·dk] and calling
/// `transposedKeys(_:)`, without that intermediate (a t5-small decode over 56 × 356 positions
/// skipped 40 MB of zeroing and a serial 23 MB copy per projection when the decode used this
/// layout for its cross-attention keys; it now uses `panelledKeys(rows:heads:lengths:keys:)`).
/// Errors: a length outside 0...keys, or `rows` not holding Σ lengths rows.
public func transposedKeys(rows k: Tensor, lengths: [Int], keys t: Int) throws -> Tensor {
    let w = k.shape.last ?? 0
    let total = lengths.reduce(0, +)
    guard k.rank >= 2, lengths.allSatisfy({ (0...t).contains($0) }), k.count == total * w else {
        throw TensorError.shapeMismatch(op: "transposedKeys", detail: "rows \(shapeString(k.shape)) must hold \(total) rows (lengths \(lengths.min() ?? 0)...\(lengths.max() ?? 0) of \(t) keys)")
    }
    let b = lengths.count
    let starts = lengths.reduce(into: [0]) { $0.append($0.last! + $1) }
    let out = Tensor(uninitialized: [b, w, t])
    // 16 × 16 tiles: each tile's source rows and destination rows stay in L1 (a row-by-row copy
    // wrote every destination row once per key, touching w cache lines per key).
    let tile = 16
    Parallel.forRange(b, costPerItem: t * w) { rows in
        for bi in rows {
            let n = lengths[bi], src = k.data + starts[bi] * w, dst = out.data + bi * w * t
            for j0 in stride(from: 0, to: n, by: tile) {
                let j1 = min(j0 + tile, n)
                for c0 in stride(from: 0, to: w, by: tile) {
                    let c1 = min(c0 + tile, w)
                    for j in j0..<j1 { for c in c0..<c1 { dst[c * t + j] = src[j * w + c] } }
                }
            }
            if n < t { for c in 0..<w { (dst + c * t + n).initialize(repeating: 0, count: t - n) } }
        }
    }
    return out
}

/// The checks `panelledKeys(rows:…)` and `headMajorValues(rows:…)` share on compact rows (last axis
/// the width H·d, Σ `lengths` rows, each length in 0...`keys`, the width a multiple of `heads`) →
/// (the width, each batch row's first row in `rows`: the running sums of `lengths`, B + 1 of them).
/// Errors (named `op`): any of those checks failing.
func compactRowsPerHead(_ rows: Tensor, op: String, heads: Int, lengths: [Int], keys t: Int) throws -> (width: Int, starts: [Int]) {
    let w = rows.shape.last ?? 0
    let total = lengths.reduce(0, +)
    guard rows.rank >= 2, heads > 0, w % heads == 0, lengths.allSatisfy({ (0...t).contains($0) }), rows.count == total * w else {
        throw TensorError.shapeMismatch(op: op, detail: "rows \(shapeString(rows.shape)) with \(heads) heads must hold \(total) rows of a width divisible by the heads (lengths \(lengths.min() ?? 0)...\(lengths.max() ?? 0) of \(t) keys)")
    }
    return (w, lengths.reduce(into: [0]) { $0.append($0.last! + $1) })
}

/// Keys per key panel: the width of a panel of `panelledKeys` (64 keys, the one-row products'
/// column strip, so a strip's scores read one contiguous 64 × dk block).
public let keyPanelWidth = 64

/// Keys [B, T, H·dk] → `panelledKeys(rows:heads:lengths:keys:)`'s layout with every row's T keys.
/// Errors: `k` not 3-D, or its last axis not a multiple of `heads`.
public func panelledKeys(_ k: Tensor, heads: Int) throws -> Tensor {
    guard k.rank == 3 else { throw TensorError.shapeMismatch(op: "panelledKeys", detail: "keys \(shapeString(k.shape)) must be [B, T, H·dk]") }
    return try panelledKeys(rows: k, heads: heads, lengths: Array(repeating: k.shape[1], count: k.shape[0]), keys: k.shape[1])
}

/// Batch row b's first `lengths[b]` keys, stored one row after another in `rows` (last axis H·dk,
/// Σ lengths rows) → [B, H, P, dk, W] with W = `keyPanelWidth` and P = ⌈`keys` / W⌉: head h's
/// keys of row b transposed (as `transposedKeys` lays them out) and cut into panels of W keys,
/// each panel's dk × W block contiguous: element [b, h, j / W, c, j mod W] = key j's value c of
/// head h; keys past `lengths[b]` (and past `keys`, up to P·W) are zero. `singleQueryAttention`
/// scores a panel with one contiguous read where the transposed layout reads dk rows of W keys,
/// `keys` floats apart: on AMD Zen 3 (family 25 model 1, 2 threads) a t5-small decoding step's
/// cross-attention over 56 rows of 120–355 keys took 18 ms instead of 22 (a C loop of the same
/// products). The same products on the same values, hence the same bits.
/// Errors: the width not a multiple of `heads`, a length outside 0...keys, or `rows` not holding
/// Σ lengths rows.
public func panelledKeys(rows k: Tensor, heads: Int, lengths: [Int], keys t: Int) throws -> Tensor {
    let (w, starts) = try compactRowsPerHead(k, op: "panelledKeys", heads: heads, lengths: lengths, keys: t)
    let b = lengths.count, dk = w / heads, W = keyPanelWidth, panels = max(1, (t + W - 1) / W)
    let out = Tensor(uninitialized: [b, heads, panels, dk, W])
    let unit = panels * dk * W, src = k.data, dst = out.data
    Parallel.forRange(b * heads, costPerItem: unit) { units in
        for u in units {
            let bi = u / heads, h = u % heads, n = lengths[bi]
            let from = src + starts[bi] * w + h * dk, to = dst + u * unit
            for s in 0..<panels {
                let panel = to + s * dk * W, j0 = s * W, j1 = min(n, j0 + W)
                if j1 < j0 + W { panel.initialize(repeating: 0, count: dk * W) }
                // 16 × 16 tiles: a tile's source rows and destination rows stay in L1.
                for c0 in stride(from: 0, to: dk, by: 16) {
                    let c1 = min(c0 + 16, dk)
                    for ja in stride(from: j0, to: j1, by: 16) {
                        for j in ja..<min(ja + 16, j1) { for c in c0..<c1 { panel[c * W + j - j0] = from[j * w + c] } }
                    }
                }
            }
        }
    }
    return out
}

/// Values [B, T, H·dv] regrouped head by head, [B, H, T, dv] (element [b, h, j, c] = v[b, j, h·dv + c]):
/// each head's values then lie in one contiguous block, so P·V streams them instead of reading
/// dv of every H·dv floats. On AMD Zen 3 (family 25 model 1, 2 threads) a decoding step's P·V over
/// t5-small's cross-attention values (32 rows, 356 keys, 6 layers) read at 13 GB/s strided and
/// 28 GB/s head-major (a C loop of the same products). A decode regroups the cross-attention's
/// projected values once.
/// Errors: `v` not 3-D, or its last axis not a multiple of `heads`.
public func headMajorValues(_ v: Tensor, heads: Int) throws -> Tensor {
    guard v.rank == 3, heads > 0, v.shape[2] % heads == 0 else {
        throw TensorError.shapeMismatch(op: "headMajorValues", detail: "values \(shapeString(v.shape)) must be [B, T, H·dv] with \(heads) heads")
    }
    return try headMajorValues(rows: v, heads: heads, lengths: Array(repeating: v.shape[1], count: v.shape[0]), keys: v.shape[1])
}

/// Batch row b's first `lengths[b]` values, stored one row after another in `rows` (last axis
/// H·dv, Σ lengths rows) → [B, H, `keys`, dv] as `headMajorValues(_:heads:)` lays them out, rows
/// past `lengths[b]` zero: the tensor that scattering into a zeroed [B, keys, H·dv] first would give.
/// Errors: the width not a multiple of `heads`, a length outside 0...keys, or `rows` not holding
/// Σ lengths rows.
public func headMajorValues(rows v: Tensor, heads: Int, lengths: [Int], keys t: Int) throws -> Tensor {
    let (w, starts) = try compactRowsPerHead(v, op: "headMajorValues", heads: heads, lengths: lengths, keys: t)
    let b = lengths.count, dv = w / heads
    let out = Tensor(uninitialized: [b, heads, t, dv])
    let src = v.data, dst = out.data
    Parallel.forRange(b * heads, costPerItem: t * dv) { units in
        for u in units {
            let bi = u / heads, h = u % heads, n = lengths[bi]
            for j in 0..<n { (dst + (u * t + j) * dv).update(from: src + (starts[bi] + j) * w + h * dv, count: dv) }
            if n < t { (dst + (u * t + n) * dv).initialize(repeating: 0, count: (t - n) * dv) }
        }
    }
    return out
}

/// Each batch row's real length in a key mask [B, L] (1 = real key): one past its last real key,
/// or L for a row without one (whose softmax is the uniform fallback over all keys). The keys an
/// attention over the mask must read; what a pass may skip after them.
public func realKeyLengths(_ mask: Tensor) -> [Int] {
    realKeyLengths(UnsafePointer(mask.data), batch: mask.shape[0], keys: mask.count / max(mask.shape[0], 1))
}

/// The keys a softmax row of real length `n` (keys past it masked) can run over, in a row padded
/// to `padded`, and give the padded row's bits: `n` rounded up to a multiple of 8, or `padded` when
/// that is not shorter. Every real key then lies in `softmaxRowVector`'s 8-wide loop at both
/// lengths (never in its scalar tail), and the keys left out only added exact zeros to its sum and
/// to P·V, whose k-blocks start at key 0 either way.
public func softmaxSafeLength(real n: Int, padded: Int) -> Int {
    let up = (n + 7) / 8 * 8
    return up < padded ? up : padded
}

/// `realKeyLengths` over a row-major [batch, keys] mask; nil (no mask): every row has all keys.
func realKeyLengths(_ mask: UnsafePointer<Float>?, batch: Int, keys: Int) -> [Int] {
    (0..<batch).map { bi in
        guard let mask else { return keys }
        var last = keys - 1
        while last >= 0, mask[bi * keys + last] == 0 { last -= 1 }
        return last >= 0 ? last + 1 : keys
    }
}

/// One query per batch row: q [B, 1, H·dk] over the first `length` keys and values, keys stored
/// transposed `keysT` [B, H·dk, capacity] (column j = key j) or, 5-D, in key panels
/// [B, H, P, dk, `keyPanelWidth`] as `panelledKeys` makes them, values [B, capacity, H·dv] or, 4-D,
/// head by head [B, H, capacity, dv] as `headMajorValues` makes them (the same bits with the own
/// kernels, which read B in place whatever its row stride, in the same 64-column strips) →
/// [B, 1, H·dv]; per batch row and head softmax(scale · q Kᵀ + bias) V, `bias` [H, 1, length],
/// `keyMask` [B, length] (1 = real key). The same products and row softmax as
/// `attention(q:k:v:heads:bias:keyMask:)` at Tq = 1 (hence its bits with the own kernels); QKᵀ and
/// P·V are one-row products that read their B in place. Inference only.
/// Errors: shape mismatch between q, the keys, values, bias and mask.
public func singleQueryAttention(q: Tensor, keysT: Tensor, values: Tensor, length tk: Int, heads: Int, bias: Tensor?, keyMask: Tensor?,
                                 scale: Float = 1) throws -> Tensor {
    let op = "singleQueryAttention"
    let W = keyPanelWidth
    let panelled = keysT.rank == 5
    guard keysT.rank == 3 || (panelled && keysT.shape[1] == heads && keysT.shape[4] == W), values.rank == 3 || values.rank == 4 else {
        throw TensorError.shapeMismatch(op: op, detail: "keysT \(shapeString(keysT.shape)) must be [B, H·dk, capacity] or [B, \(heads), P, dk, \(W)], values \(shapeString(values.shape)) [B, capacity, H·dv] or [B, H, capacity, dv]")
    }
    let valuesHeadMajor = values.rank == 4
    let b = keysT.shape[0]
    let hdk = panelled ? heads * keysT.shape[3] : keysT.shape[1]
    let cap = panelled ? keysT.shape[2] * W : keysT.shape[2]       // keys the layout holds
    let hdv = valuesHeadMajor ? values.shape[1] * values.shape[3] : values.shape[2]
    let valueRows = valuesHeadMajor ? values.shape[2] : values.shape[1]
    guard q.shape == [b, 1, hdk], values.shape[0] == b, panelled ? valueRows <= cap : valueRows == cap,
          !valuesHeadMajor || values.shape[1] == heads,
          heads > 0, hdk % heads == 0, hdv % heads == 0, tk > 0, tk <= valueRows else {
        throw TensorError.shapeMismatch(op: op, detail: "q \(shapeString(q.shape)), keysT \(shapeString(keysT.shape)), values \(shapeString(values.shape)) with \(heads) heads over \(tk) keys")
    }
    if let bias, bias.shape != [heads, 1, tk] {
        throw TensorError.shapeMismatch(op: op, detail: "bias \(shapeString(bias.shape)) must be [\(heads), 1, \(tk)]")
    }
    if let keyMask, keyMask.shape != [b, tk] {
        throw TensorError.shapeMismatch(op: op, detail: "keyMask \(shapeString(keyMask.shape)) must be [\(b), \(tk)]")
    }
    precondition(!Tape.needsGrad(q), "singleQueryAttention is inference only")
    let dk = hdk / heads, dv = hdv / heads
    let out = Tensor(uninitialized: [b, 1, hdv])
    let pq = q.data, pkt = keysT.data, pv = values.data, po = out.data
    let pbias = bias?.data, mask = keyMask?.data
    // Keys after a batch row's last unmasked one (its padding) are neither scored nor read: their
    // scores become −∞ in the softmax whatever they were, so their probabilities are exactly 0 and
    // P·V over the first `live` keys adds the same terms in the same order (the products' kc blocks
    // start at key 0 either way; the skipped blocks only added zeros). Same bits, less traffic.
    let live = realKeyLengths(mask.map { UnsafePointer($0) }, batch: b, keys: tk)
    let clock = AttentionClock.now()
    Parallel.units(b * heads) { u in
        let bi = u / heads, h = u % heads, n = live[bi]
        let p = UnsafeMutablePointer<Float>.allocate(capacity: tk)
        defer { p.deallocate() }
        if panelled {
            // op(B) = Kᵀ of head h panel by panel (unit u's P panels of dk × W): the own kernels'
            // 64-column strips of the whole product, one product each.
            let unit = pkt + u * cap * dk
            for j0 in stride(from: 0, to: n, by: W) {
                BLAS.sgemm(transA: false, transB: false, m: 1, n: min(W, n - j0), k: dk, alpha: scale,
                           a: pq + bi * hdk + h * dk, lda: hdk, b: unit + j0 * dk, ldb: W, beta: 0, c: p + j0, ldc: tk)
            }
        } else {
            // op(B) = Kᵀ of head h: rows h·dk..<(h+1)·dk of the batch row's [H·dk, capacity] block.
            BLAS.sgemm(transA: false, transB: false, m: 1, n: n, k: dk, alpha: scale,
                       a: pq + bi * hdk + h * dk, lda: hdk, b: pkt + (bi * hdk + h * dk) * cap, ldb: cap,
                       beta: 0, c: p, ldc: tk)
        }
        if n < tk { (p + n).initialize(repeating: 0, count: tk - n) }
        softmaxRowVector(p, tk, bias: pbias.map { UnsafePointer($0 + h * tk) }, limit: tk,
                         keyMask: mask.map { UnsafePointer($0 + bi * tk) })
        BLAS.sgemm(transA: false, transB: false, m: 1, n: dv, k: n, alpha: 1,
                   a: p, lda: tk, b: valuesHeadMajor ? pv + u * valueRows * dv : pv + bi * valueRows * hdv + h * dv, ldb: valuesHeadMajor ? dv : hdv,
                   beta: 0, c: po + bi * hdv + h * dv, ldc: hdv)
    }
    AttentionClock.add(since: clock)
    return out
}
