import Support
@testable import Tensor
import XCTest

/// `cachedAttention` over a `KVCache` (keys stored transposed, buffers doubling) against
/// `attention(q:k:v:)` over the concatenated keys and values, step by step: bit-identical with the
/// own GEMM kernels (the same products on the same values), within rounding with OpenBLAS.
final class DecodeAttentionTests: XCTestCase {
    func testCachedAttentionMatchesAttentionOverTheConcatenatedCache() throws {
        let (b, heads, dk, steps) = (3, 4, 16, 40)   // 40 steps: the buffers grow 16 → 32 → 40
        let width = heads * dk
        for kernel in BLAS.availableKernels {
            try BLAS.withKernel(kernel) {
                for layer in [0, 1] {
                    let cache = KVCache(layers: 2, batch: b, maxRows: steps, keyWidth: width, valueWidth: width)
                    var ks: [Tensor] = [], vs: [Tensor] = []
                    for step in 0..<steps {
                        let seed = UInt64(1000 * layer + step)
                        let q = Tensor.normal([b, 1, width], key: RNGKey(seed: seed))
                        let k = Tensor.normal([b, 1, width], key: RNGKey(seed: seed + 100_000))
                        let v = Tensor.normal([b, 1, width], key: RNGKey(seed: seed + 200_000))
                        let bias = Tensor.normal([heads, 1, step + 1], key: RNGKey(seed: seed + 300_000))
                        try cache.append(layer: layer, k: k, v: v)
                        ks.append(k); vs.append(v)
                        let got = try cachedAttention(q: q, cache: cache, layer: layer, heads: heads, bias: bias, scale: 0.5)
                        let want = try attention(q: q, k: try concat(ks, axis: 1), v: try concat(vs, axis: 1), heads: heads, bias: bias,
                                                 options: AttentionOptions(scale: 0.5))
                        XCTAssertEqual(cache.count[layer], step + 1)
                        if kernel == .openblas {
                            for i in 0..<want.count { XCTAssertEqual(got.data[i], want.data[i], accuracy: 1e-5 * max(1, abs(want.data[i]))) }
                        } else {
                            XCTAssertEqual(got.array.map(\.bitPattern), want.array.map(\.bitPattern), "\(kernel) layer \(layer) step \(step)")
                        }
                    }
                    XCTAssertEqual(cache.count[1 - layer], 0, "appending to one layer must not fill another")
                    XCTAssertThrowsError(try cache.append(layer: layer, k: Tensor(zeros: [b, 1, width]), v: Tensor(zeros: [b, 1, width])),
                                         "a full cache must refuse another row")
                }
            }
        }
    }

    /// The projected cross-attention of a decoding step: fixed keys (transposed once) and values,
    /// a key mask with padded rows, no bias — against `attention(q:k:v:keyMask:)`, bit for bit with
    /// the own kernels. Padded keys are skipped (never scored or read); at 420 keys the padding of rows 1–3 starts
    /// before, at and after the AVX-512 kernel's kc = 384 and after the AVX2 one's 256; row 4 has
    /// a hole (a masked key inside) and row 5 is fully masked (uniform fallback over all keys).
    func testSingleQueryAttentionWithKeyMaskMatchesAttention() throws {
        for (b, tk, pads) in [(3, 37, [1: 20]), (6, 420, [1: 300, 2: 384, 3: 390, 5: 0])] {
            try singleQueryAgainstAttention(b: b, tk: tk, pads: pads, hole: b > 4 ? 4 : nil)
        }
    }

    /// `transposedKeys` copies in 16 × 16 tiles: every element lands at [b, c, j] = k[b, j, c], with
    /// ragged tiles on both axes (19 keys, width 37) and more batch rows than threads.
    func testTransposedKeysIsTheTransposeOfEveryBatchRow() throws {
        let (b, t, w) = (5, 19, 37)
        let k = Tensor.normal([b, t, w], key: RNGKey(seed: 9))
        let out = try transposedKeys(k)
        XCTAssertEqual(out.shape, [b, w, t])
        for bi in 0..<b { for j in 0..<t { for c in 0..<w {
            XCTAssertEqual(out.data[(bi * w + c) * t + j].bitPattern, k.data[(bi * t + j) * w + c].bitPattern, "b \(bi) key \(j) column \(c)")
        } } }
    }

    /// `panelledKeys`: element [b, h, j / 64, c, j mod 64] is k[b, j, h·dk + c] for each row's
    /// first keys, and 0 past them up to the last panel's end — lengths 130 (three panels, the last
    /// ragged), 0, 64 (one whole panel) and 65 (one key into the second) of 130, on 1, 2 and 3
    /// threads; a width that is not a multiple of the heads, a length past the keys and a wrong
    /// total are refused.
    func testPanelledKeysLayOutEveryHeadInPanelsOf64Keys() throws {
        let saved = Parallel.threads
        defer { Parallel.configure(threads: saved) }
        let (t, heads, dk) = (130, 3, 20)
        let w = heads * dk, lengths = [130, 0, 64, 65], W = keyPanelWidth
        XCTAssertEqual(W, 64)
        let b = lengths.count, total = lengths.reduce(0, +)
        let rows = Tensor.normal([1, total, w], key: RNGKey(seed: 12))
        let starts = lengths.reduce(into: [0]) { $0.append($0.last! + $1) }
        for threads in [1, 2, 3] {
            Parallel.configure(threads: threads)
            let out = try panelledKeys(rows: rows, heads: heads, lengths: lengths, keys: t)
            XCTAssertEqual(out.shape, [b, heads, 3, dk, W])
            var mismatches = 0
            for bi in 0..<b { for h in 0..<heads { for j in 0..<(3 * W) { for c in 0..<dk {
                let got = out.data[(((bi * heads + h) * 3 + j / W) * dk + c) * W + j % W]
                let want: Float = j < lengths[bi] ? rows.data[(starts[bi] + j) * w + h * dk + c] : 0
                if got.bitPattern != want.bitPattern { mismatches += 1 }
            } } } }
            XCTAssertEqual(mismatches, 0, "\(threads) threads")
        }
        XCTAssertThrowsError(try panelledKeys(rows: rows, heads: 7, lengths: lengths, keys: t), "width not divisible by the heads")
        XCTAssertThrowsError(try panelledKeys(rows: rows, heads: heads, lengths: [total], keys: t), "a length past the keys")
        XCTAssertThrowsError(try panelledKeys(rows: rows, heads: heads, lengths: [130, 1, 64, 65], keys: t), "rows must hold Σ lengths")
    }

    /// `headMajorValues`: element [b, h, j, c] is v[b, j, h·dv + c], on 1, 2 and 3 threads (15
    /// (batch, head) units of 300 × 24 floats: large enough to be split), ragged sizes; a width that
    /// is not a multiple of the heads is refused.
    func testHeadMajorValuesRegroupsEveryHead() throws {
        let saved = Parallel.threads
        defer { Parallel.configure(threads: saved) }
        let (b, t, heads, dv) = (3, 300, 5, 24)
        let v = Tensor.normal([b, t, heads * dv], key: RNGKey(seed: 4))
        for threads in [1, 2, 3] {
            Parallel.configure(threads: threads)
            let out = try headMajorValues(v, heads: heads)
            XCTAssertEqual(out.shape, [b, heads, t, dv])
            var mismatches = 0
            for bi in 0..<b { for h in 0..<heads { for j in 0..<t { for c in 0..<dv {
                if out.data[((bi * heads + h) * t + j) * dv + c].bitPattern != v.data[(bi * t + j) * heads * dv + h * dv + c].bitPattern { mismatches += 1 }
            } } } }
            XCTAssertEqual(mismatches, 0, "\(threads) threads")
        }
        XCTAssertThrowsError(try headMajorValues(v, heads: 7))
    }

    /// The decode's projections of only the real positions, laid out straight from their compact
    /// rows (`transposedKeys(rows:…)`, `headMajorValues(rows:…)`), are the tensors the old route
    /// gave — scatter the rows into a zeroed [B, L, width], then transpose or regroup — bit for bit,
    /// zero padding included: lengths L, 0, ragged and 1, on 1, 2 and 3 threads (sizes large enough
    /// to be split). `gatherRows` takes each row's first positions in order; wrong totals and
    /// lengths past L are refused.
    func testCompactRowLayoutsMatchScatteringIntoZeros() throws {
        let saved = Parallel.threads
        defer { Parallel.configure(threads: saved) }
        let (l, heads, dv) = (300, 5, 24)
        let w = heads * dv, lengths = [300, 0, 173, 1, 299, 16]
        let b = lengths.count, total = lengths.reduce(0, +)
        let rows = Tensor.normal([1, total, w], key: RNGKey(seed: 31))
        let scattered = Tensor(zeros: [b, l, w])
        var at = 0
        for (bi, n) in lengths.enumerated() {
            for j in 0..<n { for c in 0..<w { scattered.data[(bi * l + j) * w + c] = rows.data[(at + j) * w + c] } }
            at += n
        }
        let wantK = try transposedKeys(scattered), wantV = try headMajorValues(scattered, heads: heads)
        for threads in [1, 2, 3] {
            Parallel.configure(threads: threads)
            let gotK = try transposedKeys(rows: rows, lengths: lengths, keys: l)
            let gotV = try headMajorValues(rows: rows, heads: heads, lengths: lengths, keys: l)
            XCTAssertEqual(gotK.shape, wantK.shape)
            XCTAssertEqual(gotV.shape, wantV.shape)
            XCTAssertEqual(gotK.array.map(\.bitPattern), wantK.array.map(\.bitPattern), "keys, \(threads) threads")
            XCTAssertEqual(gotV.array.map(\.bitPattern), wantV.array.map(\.bitPattern), "values, \(threads) threads")
            let gathered = try gatherRows(scattered, lengths: lengths)
            XCTAssertEqual(gathered.shape, [1, total, w])
            XCTAssertEqual(gathered.array.map(\.bitPattern), rows.array.map(\.bitPattern), "gatherRows, \(threads) threads")
        }
        XCTAssertThrowsError(try transposedKeys(rows: rows, lengths: lengths.map { $0 == 0 ? 1 : $0 }, keys: l), "rows must hold Σ lengths")
        XCTAssertThrowsError(try headMajorValues(rows: rows, heads: heads, lengths: [total], keys: l), "a length past the keys")
        XCTAssertThrowsError(try headMajorValues(rows: rows, heads: 7, lengths: lengths, keys: l), "width not divisible by the heads")
        XCTAssertThrowsError(try gatherRows(scattered, lengths: [301] + lengths.dropFirst()), "a length past L")
    }

    /// `KVCache.append` spreads a step's rows over the threads: with 40 rows (enough to be split)
    /// the cache holds the same keys and values, and `cachedAttention` gives the same bits, on 1, 2
    /// and 3 threads, through a capacity doubling.
    func testCacheAppendOverThreadsStoresWhatOneThreadStores() throws {
        let saved = Parallel.threads
        defer { Parallel.configure(threads: saved) }
        let (b, heads, dk, steps) = (40, 4, 16, 20)
        let width = heads * dk
        var reference: (keys: [UInt32], values: [UInt32], out: [UInt32])?
        for threads in [1, 2, 3] {
            Parallel.configure(threads: threads)
            let cache = KVCache(layers: 1, batch: b, maxRows: steps, keyWidth: width, valueWidth: width)
            var last = Tensor(zeros: [1])
            for step in 0..<steps {
                let seed = UInt64(step)
                try cache.append(layer: 0, k: Tensor.normal([b, 1, width], key: RNGKey(seed: seed + 500)),
                                 v: Tensor.normal([b, 1, width], key: RNGKey(seed: seed + 600)))
                last = try cachedAttention(q: Tensor.normal([b, 1, width], key: RNGKey(seed: seed + 700)), cache: cache, layer: 0,
                                           heads: heads, bias: nil)
            }
            let got = (cache.keysT[0].array.map(\.bitPattern), cache.values[0].array.map(\.bitPattern), last.array.map(\.bitPattern))
            if let reference {
                XCTAssertEqual(got.0, reference.keys, "keys, \(threads) threads")
                XCTAssertEqual(got.1, reference.values, "values, \(threads) threads")
                XCTAssertEqual(got.2, reference.out, "attention, \(threads) threads")
            } else {
                reference = (got.0, got.1, got.2)
            }
        }
    }

    func singleQueryAgainstAttention(b: Int, tk: Int, pads: [Int: Int], hole: Int?) throws {
        let (heads, dk) = (4, 16)
        let width = heads * dk
        let q = Tensor.normal([b, 1, width], key: RNGKey(seed: 1))
        let k = Tensor.normal([b, tk, width], key: RNGKey(seed: 2))
        let v = Tensor.normal([b, tk, width], key: RNGKey(seed: 3))
        var maskValues = [Float](repeating: 1, count: b * tk)
        for (row, from) in pads { for j in from..<tk { maskValues[row * tk + j] = 0 } }
        if let hole { maskValues[hole * tk + 7] = 0 }
        let mask = Tensor(shape: [b, tk], values: maskValues)
        for kernel in BLAS.availableKernels {
            try BLAS.withKernel(kernel) {
                let got = try singleQueryAttention(q: q, keysT: try transposedKeys(k), values: v, length: tk, heads: heads, bias: nil,
                                                   keyMask: mask, scale: 0.25)
                let want = try attention(q: q, k: k, v: v, heads: heads, keyMask: mask, options: AttentionOptions(scale: 0.25))
                // The values regrouped head by head give the same bits (the same products; only
                // where P·V finds each head's rows changes).
                let headMajor = try singleQueryAttention(q: q, keysT: try transposedKeys(k), values: try headMajorValues(v, heads: heads),
                                                         length: tk, heads: heads, bias: nil, keyMask: mask, scale: 0.25)
                // Keys in panels of 64 (the decode's cross-attention layout): the same products
                // column by column, so the same bits.
                let panelled = try singleQueryAttention(q: q, keysT: try panelledKeys(k, heads: heads), values: try headMajorValues(v, heads: heads),
                                                        length: tk, heads: heads, bias: nil, keyMask: mask, scale: 0.25)
                if kernel == .openblas {
                    for i in 0..<got.count { XCTAssertEqual(headMajor.data[i], got.data[i], accuracy: 1e-5 * max(1, abs(got.data[i]))) }
                    for i in 0..<got.count { XCTAssertEqual(panelled.data[i], got.data[i], accuracy: 1e-5 * max(1, abs(got.data[i]))) }
                } else {
                    XCTAssertEqual(headMajor.array.map(\.bitPattern), got.array.map(\.bitPattern), "\(kernel), head-major values")
                    XCTAssertEqual(panelled.array.map(\.bitPattern), got.array.map(\.bitPattern), "\(kernel), panelled keys")
                }
                if kernel == .openblas {
                    for i in 0..<want.count { XCTAssertEqual(got.data[i], want.data[i], accuracy: 1e-5 * max(1, abs(want.data[i]))) }
                } else {
                    XCTAssertEqual(got.array.map(\.bitPattern), want.array.map(\.bitPattern), "\(kernel)")
                }
            }
        }
        XCTAssertThrowsError(try singleQueryAttention(q: q, keysT: try transposedKeys(k), values: v, length: tk, heads: heads, bias: nil,
                                                      keyMask: Tensor(zeros: [b, tk - 1])), "a mask of the wrong length must be refused")
        XCTAssertThrowsError(try singleQueryAttention(q: q, keysT: try panelledKeys(k, heads: heads * 2), values: v, length: tk, heads: heads,
                                                      bias: nil, keyMask: mask), "panels of another head count must be refused")
    }

    /// The `.auto` switch step by time, worked by hand. t5-small, 200 keys: an absorbed step costs
    /// 6 × (2·512·512 + 2·8·200·512) = 12,976,128, a projected one 10 × 2·200·512 = 2,048,000, the
    /// projection 2·200·512·512 = 104,857,600; s ≥ 104,857,600 / 10,928,128 = 9.6 → step 10 (not
    /// reached within 9 steps). t5-tiny-like (46 keys, d 64, 4 heads): 376,832 / (190,464 − 58,880)
    /// = 2.9 → step 3.
    func testDecodingSwitchStepByHand() {
        XCTAssertEqual(crossAttentionDecodingSwitchStep(maxSteps: 128, keys: 200, model: 512, inner: 512, heads: 8), 10)
        XCTAssertNil(crossAttentionDecodingSwitchStep(maxSteps: 9, keys: 200, model: 512, inner: 512, heads: 8))
        XCTAssertEqual(crossAttentionDecodingSwitchStep(maxSteps: 20, keys: 46, model: 64, inner: 64, heads: 4), 3)
    }
}
