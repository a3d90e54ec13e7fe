import Support
import Tensor
import XCTest

final class OpGradientTests: XCTestCase {
    func testBroadcastBinaryOps() throws {
        let b = dim("bb", 2, 4), t = dim("bt", 3, 6), d = dim("bd", 2, 7)
        let pairs: [([Int], [Int])] = [
            ([b, t, d], [b, t, d]), ([b, t, d], [d]), ([b, t, d], [t, 1]), ([b, 1, d], [1, t, d]),
            ([d], [b, t, d]), ([b, t, d], []),
        ]
        for (i, (sa, sb)) in pairs.enumerated() {
            let a = rand(sa, "a\(i)"), c = rand(sb, "b\(i)")
            try gradCheck("add \(sa)+\(sb)", [a, c]) { try add(a, c) }
            try gradCheck("sub \(sa)-\(sb)", [a, c]) { try sub(a, c) }
            try gradCheck("mul \(sa)*\(sb)", [a, c]) { try mul(a, c) }
        }
    }

    func testBroadcastShapeErrorNamesShapes() {
        XCTAssertThrowsError(try add(rand([2, 3], "x"), rand([4], "y"))) { e in
            XCTAssertTrue("\(e)".contains("[2, 3]") && "\(e)".contains("[4]"), "\(e)")
        }
    }

    func testScaleSumMean() throws {
        let x = rand([dim("s", 2, 5), 3], "x")
        try gradCheck("scale", [x]) { scale(x, -1.7) }
        try gradCheck("sum", [x]) { sum(x) }
        try gradCheck("mean", [x]) { mean(x) }
    }

    func testActivations() throws {
        // Inputs kept away from ReLU/ELU kinks at 0 so central differences are valid.
        let n = dim("act", 10, 40)
        let raw = rand([n], "act").array.map { $0 >= 0 ? $0 * 2 + 0.05 : $0 * 2 - 0.05 }
        let x = Tensor(shape: [n], values: raw, requiresGrad: true)
        try gradCheck("relu", [x]) { relu(x) }
        try gradCheck("geluNew", [x]) { geluNew(x) }
        try gradCheck("gelu (erf)", [x]) { gelu(x) }
        try gradCheck("silu", [x]) { silu(x) }
        try gradCheck("silu overwrite", [x]) { silu(scale(x, 1.5), overwrite: true) }
        // SiLU by hand: 1·σ(1) = 1 / (1 + e⁻¹) = 0.7310586, −2·σ(−2) = −0.2384058.
        let hand = silu(Tensor(shape: [3], values: [1, -2, 0])).array
        XCTAssertEqual(hand[0], 0.7310586, accuracy: 1e-6)
        XCTAssertEqual(hand[1], -0.2384058, accuracy: 1e-6)
        XCTAssertEqual(hand[2], 0)
        try gradCheck("elu", [x]) { elu(x, alpha: 1) }
        try gradCheck("elu alpha 0.5", [x]) { elu(x, alpha: 0.5) }
        try gradCheck("tanh", [x]) { tanh(x) }
        // Overwriting a temporary input gives the same values and gradients; a recorded gelu keeps
        // its own output (its derivative needs the input).
        try gradCheck("relu overwrite", [x]) { relu(scale(x, 1.5), overwrite: true) }
        try gradCheck("gelu overwrite", [x]) { gelu(scale(x, 1.5), overwrite: true) }
        let t = scale(x.detached(), 1.5), plain = relu(t).array, g = gelu(scale(x.detached(), 1.5)).array
        XCTAssertEqual(relu(t, overwrite: true).array, plain)
        XCTAssertEqual(t.array, plain, "relu(overwrite:) writes over its input")
        XCTAssertEqual(gelu(scale(x.detached(), 1.5), overwrite: true).array, g)
    }

    func testGeluNewMatchesFormula() {
        let x = Tensor(shape: [5], values: [-3, -1, 0, 0.5, 2.7])
        let y = geluNew(x)
        for i in 0..<5 {
            let v = Double(x[i])
            let ref = 0.5 * v * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * (v + 0.044715 * v * v * v)))
            XCTAssertEqual(Double(y[i]), ref, accuracy: 1e-6)
        }
    }

    func testExactGeluMatchesFormula() {
        let x = Tensor(shape: [4], values: [-2, -0.5, 0.3, 1.7])
        let y = gelu(x)
        for i in 0..<4 {
            let v = Double(x[i])
            XCTAssertEqual(Double(y[i]), 0.5 * v * (1 + erf(v / 2.0.squareRoot())), accuracy: 1e-6)
        }
    }

    func testDropout() throws {
        let x = rand([dim("dr", 20, 60)], "dr")
        let key = RNGKey(seed: 5, stream: 3)
        try gradCheck("dropout", [x]) { dropout(x, p: 0.3, key: key) }
        let y = dropout(x, p: 0.3, key: key)
        for i in 0..<x.count {
            XCTAssertTrue(y[i] == 0 || abs(y[i] - x[i] / 0.7) < 1e-6)
        }
        // Off without a key (eval mode).
        XCTAssertTrue(dropout(x, p: 0.3, key: nil) === x)
        // Overwriting a temporary input: the same values (bit for bit) written over the input's
        // storage, the same gradients; a ReLU before it (the FFN's hidden layer) keeps its own bits.
        try gradCheck("dropout overwrite", [x]) { dropout(scale(x, 1.5), p: 0.3, key: key, overwrite: true) }
        try gradCheck("relu then dropout overwrite", [x]) { dropout(relu(scale(x, 1.5), overwrite: true), p: 0.3, key: key, overwrite: true) }
        let t = scale(x.detached(), 1.5), plain = dropout(t, p: 0.3, key: key).array.map(\.bitPattern)
        let over = dropout(t, p: 0.3, key: key, overwrite: true)
        XCTAssertEqual(over.array.map(\.bitPattern), plain)
        XCTAssertEqual(t.array.map(\.bitPattern), plain, "dropout(overwrite:) writes over its input")
        let tape = Tape(), a = Tensor(shape: x.shape, values: x.array, requiresGrad: true), b = Tensor(shape: x.shape, values: x.array, requiresGrad: true)
        let loss = try tape.record {
            try add(sum(mul(dropout(relu(scale(a, 1.5)), p: 0.3, key: key), x)),
                    sum(mul(dropout(relu(scale(b, 1.5), overwrite: true), p: 0.3, key: key, overwrite: true), x)))
        }
        tape.backward(loss)
        XCTAssertEqual(a.grad!.array.map(\.bitPattern), b.grad!.array.map(\.bitPattern))
    }

    func testDropoutRate() {
        let x = Tensor(shape: [100_000], values: [Float](repeating: 1, count: 100_000))
        let y = dropout(x, p: 0.1, key: RNGKey(seed: 1))
        let kept = y.array.filter { $0 != 0 }.count
        XCTAssertEqual(Double(kept) / 100_000, 0.9, accuracy: 0.005)
    }

    func testMatmulGradientsAllTransposes() throws {
        let m = dim("mm", 2, 5), k = dim("mk", 2, 6), n = dim("mn", 2, 5), b = dim("mb", 2, 3)
        for ta in [false, true] {
            for tb in [false, true] {
                let a = rand(ta ? [b, k, m] : [b, m, k], "A\(ta)\(tb)")
                let bb = rand(tb ? [b, n, k] : [b, k, n], "B\(ta)\(tb)")
                try gradCheck("batched matmul tA=\(ta) tB=\(tb)", [a, bb]) { try matmul(a, bb, transA: ta, transB: tb) }
                let shared = rand(tb ? [n, k] : [k, n], "S\(ta)\(tb)")
                try gradCheck("shared-B matmul tA=\(ta) tB=\(tb)", [a, shared]) { try matmul(a, shared, transA: ta, transB: tb) }
            }
        }
    }

    func testLinearBothLayouts() throws {
        let x = rand([dim("lb", 1, 3), dim("lt", 2, 5), 6], "lx")
        let wOI = rand([4, 6], "woi"), wIO = rand([6, 4], "wio"), bias = rand([4], "lbias")
        try gradCheck("linear outIn + bias", [x, wOI, bias]) { try linear(x, wOI, bias: bias, layout: .outIn) }
        try gradCheck("linear inOut + bias", [x, wIO, bias]) { try linear(x, wIO, bias: bias, layout: .inOut) }
        try gradCheck("linear outIn", [x, wOI]) { try linear(x, wOI) }
        XCTAssertThrowsError(try linear(x, rand([4, 5], "bad"))) { e in
            XCTAssertTrue("\(e)".contains("[4, 5]"), "\(e)")
        }
    }

    /// linear's backward writes the first gradient of its input with beta = 0 instead of adding it
    /// to a zeroed buffer: the same bits with every kernel, upstream gradients with zero and −0
    /// rows included (ragged shapes: 13 rows, 37 inputs, 19 outputs, both layouts).
    func testLinearInputGradientOverwriteEqualsAccumulateIntoZeros() throws {
        let (rows, inF, outF) = (13, 37, 19)
        var up = RNGKey(seed: 5, stream: 77).uniformArray(rows * outF, lo: -1, hi: 1)
        for j in 0..<outF { up[2 * outF + j] = 0; up[5 * outF + j] = -0.0 }
        let upstream = Tensor(shape: [rows, outF], values: up)
        for kernel in BLAS.availableKernels {
            for layout in [WeightLayout.outIn, .inOut] {
                let w = rand(layout == .outIn ? [outF, inF] : [inF, outF], "ovw-w")
                func dX(preset: Bool) throws -> [UInt32] {
                    let x = rand([rows, inF], "ovw-x")
                    x.requiresGrad = true
                    if preset { x.grad = Tensor(zeros: [rows, inF]) }
                    try BLAS.withKernel(kernel) {
                        let tape = Tape()
                        let loss = try tape.record { () throws -> Tensor in sum(try mul(try linear(x, w, layout: layout), upstream)) }
                        tape.backward(loss)
                    }
                    return x.grad!.array.map(\.bitPattern)
                }
                let fresh = try dX(preset: false), accumulated = try dX(preset: true)
                XCTAssertEqual(fresh, accumulated, "\(kernel) \(layout)")
                XCTAssertEqual(fresh.count, rows * inF)
            }
        }
    }

    /// `linear(…, computesValues: false)` (a checkpointed sublayer's last op in backward's second
    /// run) leaves its output 0 and records the node the computed output gets: dX, dW and db are
    /// bit-identical to the computing call's, both layouts, with a bias; no GEMM is counted for it.
    func testLinearWithoutValuesKeepsItsGradients() throws {
        let (rows, inF, outF) = (11, 9, 7)
        let upstream = Tensor(shape: [rows, outF], values: RNGKey(seed: 6, stream: 3).uniformArray(rows * outF, lo: -1, hi: 1))
        for layout in [WeightLayout.outIn, .inOut] {
            func run(_ values: Bool) throws -> (out: [Float], grads: [[UInt32]], flops: Int) {
                let x = rand([rows, inF], "lwv-x"), w = rand(layout == .outIn ? [outF, inF] : [inF, outF], "lwv-w")
                let bias = rand([outF], "lwv-b")
                for t in [x, w, bias] { t.requiresGrad = true }
                let tape = Tape()
                let f0 = BLAS.flops
                var out: [Float] = []
                let loss = try tape.record { () throws -> Tensor in
                    let y = try linear(x, w, bias: bias, layout: layout, computesValues: values)
                    out = y.array
                    // y's gradient is `upstream`, whatever y's values (as in a checkpoint's second run).
                    return sum(try mul(y, upstream))
                }
                let forwardFlops = BLAS.flops - f0
                tape.backward(loss)
                return (out, [x, w, bias].map { $0.grad!.array.map(\.bitPattern) }, forwardFlops)
            }
            let full = try run(true), skipped = try run(false)
            XCTAssertEqual(skipped.out, [Float](repeating: 0, count: rows * outF), "\(layout)")
            XCTAssertNotEqual(full.out, skipped.out)
            XCTAssertEqual(full.grads, skipped.grads, "\(layout)")
            XCTAssertEqual(full.flops, 2 * rows * inF * outF, "\(layout)")
            XCTAssertEqual(skipped.flops, 0, "\(layout)")
        }
    }

    func testEmbeddingScatterAdd() throws {
        let table = rand([dim("ev", 5, 9), 4], "emb")
        let ids: [Int32] = [1, 3, 1, 0, 4, 1]  // repeated ids accumulate
        try gradCheck("embedding", [table]) { try embedding(table, ids: ids, shape: [2, 3]) }
        XCTAssertThrowsError(try embedding(table, ids: [99]))
    }

    /// The gradient of a gathered-from or multiplied-by tensor that is itself an op output (not a
    /// stored weight) reaches the leaf upstream. Small weight gradients may be deferred to the end
    /// of backward only for leaves: a deferred write into an activation came after its node had run,
    /// so GPT-2's verbaliser (a row gather from the hidden states) once gave prompts no gradient. The
    /// check runs with deferral on (the default), and a late write traps (GradBox.closed).
    func testWeightSlotGradientsReachNonLeafInputs() throws {
        XCTAssertTrue(Tape.defersSmallWeightGradients)
        let hidden = rand([dim("nlr", 6, 12), 5], "nl-hidden")
        try gradCheck("embedding of a non-leaf table", [hidden]) {
            try embedding(scale(tanh(hidden), 2), ids: [0, 3, 5, 3])               // gather rows of an activation
        }
        let x = rand([2, 5], "nl-x"), w = rand([7, 5], "nl-w")
        try gradCheck("linear with a non-leaf weight", [x, w]) {
            try linear(x, scale(w, 1.5))                                                // 2 rows « 7×5 weight: deferrable size
        }
        try gradCheck("linear inOut with a non-leaf weight", [x, w]) {
            try linear(x, try reshape(scale(w, 0.5), [5, 7]), layout: .inOut)
        }
    }

    func testConcatNarrowReshape() throws {
        let b = dim("cb", 1, 3), d = dim("cd", 2, 5)
        let p = rand([b, 3, d], "cp"), x = rand([b, dim("ct", 2, 6), d], "cx")
        try gradCheck("concat seq", [p, x]) { try concat([p, x], axis: 1) }
        try gradCheck("concat last", [p, p]) { try concat([p, p], axis: -1) }
        try gradCheck("narrow", [x]) { try narrow(x, axis: 1, start: 1, length: x.shape[1] - 1) }
        try gradCheck("narrow last", [x]) { try narrow(x, axis: 2, start: 0, length: 1) }
        try gradCheck("reshape", [x]) { try reshape(x, [x.count]) }
        try gradCheck("repeatBatch", [p]) { repeatBatch(p, 3) }
        XCTAssertThrowsError(try concat([p, rand([b, 3, d + 1], "bad")], axis: 1))
        XCTAssertThrowsError(try narrow(x, axis: 1, start: 1, length: 99))
    }

    func testNorms() throws {
        let x = rand([dim("nb", 1, 3), dim("nt", 2, 5), dim("nd", 3, 9)], "nx", lo: -2, hi: 2)
        let d = x.shape[2]
        let w = rand([d], "nw", lo: 0.5, hi: 1.5), b = rand([d], "nbias")
        try gradCheck("rmsNorm", [x, w]) { try rmsNorm(x, weight: w, eps: 1e-6) }
        try gradCheck("layerNorm", [x, w, b]) { try layerNorm(x, weight: w, bias: b, eps: 1e-5) }
        XCTAssertThrowsError(try rmsNorm(x, weight: rand([d + 1], "bad"), eps: 1e-6))
    }

    /// y = op(x) and x's gradient of Σ y ⊙ upstream, recorded on one tape.
    private func outputAndGradient(_ x: Tensor, upstream: [Float], _ op: (Tensor) throws -> Tensor) throws -> (y: Tensor, dx: Tensor) {
        let tape = Tape()
        var out: Tensor?
        let loss = try tape.record { () -> Tensor in
            let y = try op(x)
            out = y
            return sum(try mul(y, Tensor(shape: x.shape, values: upstream)))
        }
        tape.backward(loss)
        return (out!, x.grad!)
    }

    /// rmsNorm's output and x's gradient, bit for bit, against the textbook per-row loops (each
    /// row's Σ x² and Σ g·w·x summed in j order, one row at a time): the op sums four rows'
    /// chains at a time, which must not change any row's bits, for row counts around the group of
    /// four and on 1 and 2 threads (other splits of the rows).
    func testRmsNormRowSumsKeepEachRowsBits() throws {
        defer { Parallel.configure(threads: nil) }
        for threads in [1, 2] {
            Parallel.configure(threads: threads)
            for (rows, d) in [(1, 7), (3, 1), (4, 5), (5, 512), (11, 33), (67, 64)] {
                let key = RNGKey(seed: UInt64(1000 + rows * 7 + d))
                let xv = key.derive("x").uniformArray(rows * d, lo: -3, hi: 3), wv = key.derive("w").uniformArray(d, lo: 0.5, hi: 1.5)
                let gv = key.derive("g").uniformArray(rows * d, lo: -1, hi: 1)
                let x = Tensor(shape: [rows, d], values: xv, requiresGrad: true), w = Tensor(shape: [d], values: wv)
                let (y, dx) = try outputAndGradient(x, upstream: gv) { try rmsNorm($0, weight: w, eps: 1e-6) }
                for r in 0..<rows {
                    var ss: Float = 0
                    for j in 0..<d { ss += xv[r * d + j] * xv[r * d + j] }
                    let s = 1 / (ss / Float(d) + 1e-6).squareRoot()
                    var dot: Float = 0
                    for j in 0..<d { dot += gv[r * d + j] * wv[j] * xv[r * d + j] }
                    let c = s * s * s * dot / Float(d)
                    for j in 0..<d {
                        let e = r * d + j
                        XCTAssertEqual(y[e].bitPattern, (wv[j] * (xv[e] * s)).bitPattern, "y[\(r), \(j)] rows \(rows) d \(d) threads \(threads)")
                        XCTAssertEqual(dx[e].bitPattern, (0 + (s * gv[e] * wv[j] - c * xv[e])).bitPattern,
                                       "dx[\(r), \(j)] rows \(rows) d \(d) threads \(threads)")
                    }
                }
            }
        }
    }

    /// layerNorm's output and x's gradient, bit for bit, against the textbook per-row loops (Σ x,
    /// then Σ (x − mean)², and backward's Σ g·w and Σ g·w·x̂, each in j order, one row at a time),
    /// as `testRmsNormRowSumsKeepEachRowsBits` for RMSNorm.
    func testLayerNormRowSumsKeepEachRowsBits() throws {
        defer { Parallel.configure(threads: nil) }
        for threads in [1, 2] {
            Parallel.configure(threads: threads)
            for (rows, d) in [(1, 7), (3, 1), (4, 5), (5, 768), (11, 33), (67, 64)] {
                let key = RNGKey(seed: UInt64(2000 + rows * 7 + d))
                let xv = key.derive("x").uniformArray(rows * d, lo: -3, hi: 3), wv = key.derive("w").uniformArray(d, lo: 0.5, hi: 1.5)
                let bv = key.derive("b").uniformArray(d, lo: -1, hi: 1), gv = key.derive("g").uniformArray(rows * d, lo: -1, hi: 1)
                let x = Tensor(shape: [rows, d], values: xv, requiresGrad: true)
                let w = Tensor(shape: [d], values: wv), b = Tensor(shape: [d], values: bv)
                let (y, dx) = try outputAndGradient(x, upstream: gv) { try layerNorm($0, weight: w, bias: b, eps: 1e-5) }
                for r in 0..<rows {
                    var s: Float = 0
                    for j in 0..<d { s += xv[r * d + j] }
                    let mu = s / Float(d)
                    var v: Float = 0
                    for j in 0..<d { let c = xv[r * d + j] - mu; v += c * c }
                    let rs = 1 / (v / Float(d) + 1e-5).squareRoot()
                    var sg: Float = 0, sgx: Float = 0
                    for j in 0..<d {
                        let gw = gv[r * d + j] * wv[j]
                        sg += gw
                        sgx += gw * (xv[r * d + j] - mu) * rs
                    }
                    sg /= Float(d)
                    sgx /= Float(d)
                    for j in 0..<d {
                        let e = r * d + j, xh = (xv[e] - mu) * rs
                        XCTAssertEqual(y[e].bitPattern, ((xv[e] - mu) * rs * wv[j] + bv[j]).bitPattern, "y[\(r), \(j)] rows \(rows) d \(d) threads \(threads)")
                        XCTAssertEqual(dx[e].bitPattern, (0 + rs * (gv[e] * wv[j] - sg - xh * sgx)).bitPattern,
                                       "dx[\(r), \(j)] rows \(rows) d \(d) threads \(threads)")
                    }
                }
            }
        }
    }

    func testMaskedSoftmax() throws {
        let b = dim("smb", 2, 3), t = dim("smt", 3, 7)
        let x = rand([b, 2, t], "smx", lo: -3, hi: 3)
        var m = [Float](repeating: 1, count: b * t)
        m[1] = 0; m[t + t - 1] = 0
        let mask = Tensor(shape: [b, 1, t], values: m)
        try gradCheck("softmax", [x]) { try softmax(x) }
        try gradCheck("masked softmax", [x]) { try softmax(x, mask: mask) }
        let y = try softmax(x, mask: mask)
        XCTAssertEqual(y[1], 0)
        XCTAssertEqual((0..<t).map { y[$0] }.reduce(0, +), 1, accuracy: 1e-6)
    }

    func testCrossEntropyIgnoreIndex() throws {
        let v = dim("cev", 3, 11)
        let logits = rand([2, 3, v], "cel", lo: -3, hi: 3)
        let targets: [Int32] = [0, -100, Int32(v - 1), 2, -100, 1]
        try gradCheck("crossEntropy", [logits]) { try crossEntropy(logits, targets: targets) }
        // Mean over counted tokens: compare with a direct computation.
        let loss = try crossEntropy(logits, targets: targets)
        var total = 0.0
        for (r, t) in targets.enumerated() where t != -100 {
            let row = (0..<v).map { Double(logits[r * v + $0]) }
            let mx = row.max()!
            total += log(row.map { exp($0 - mx) }.reduce(0, +)) + mx - row[Int(t)]
        }
        XCTAssertEqual(Double(loss.scalar), total / 4, accuracy: 1e-5)
        XCTAssertThrowsError(try crossEntropy(logits, targets: [0, 1]))
    }

    func testFusedAttentionGradients() throws {
        let b = dim("ab", 1, 3), h = dim("ah", 1, 3), dk = dim("adk", 2, 4), tq = dim("atq", 2, 5), tk = dim("atk", 3, 6) + 8
        let q = rand([b, tq, h * dk], "aq"), k = rand([b, tk, h * dk], "ak"), v = rand([b, tk, h * dk], "av")
        let bias = rand([h, tq, tk], "abias")
        var m = [Float](repeating: 1, count: b * tk)
        m[tk - 1] = 0  // pad the last key of row 0
        let mask = Tensor(shape: [b, tk], values: m)
        try gradCheck("attention plain", [q, k, v]) { try attention(q: q, k: k, v: v, heads: h) }
        try gradCheck("attention bias+mask", [q, k, v, bias]) {
            try attention(q: q, k: k, v: v, heads: h, bias: bias, keyMask: mask)
        }
        try gradCheck("attention causal scaled", [q, k, v]) {
            try attention(q: q, k: k, v: v, heads: h, keyMask: mask,
                          options: AttentionOptions(scale: 0.5, causal: true, queryOffset: tk - tq))
        }
        let drop = AttentionOptions(dropout: 0.25, key: RNGKey(seed: 3))
        try gradCheck("attention dropout", [q, k, v, bias]) {
            try attention(q: q, k: k, v: v, heads: h, bias: bias, keyMask: mask, options: drop)
        }
        let recompute = AttentionOptions(scale: 0.8, dropout: 0.25, key: RNGKey(seed: 4), recomputeProbabilities: true)
        try gradCheck("attention dropout, P recomputed", [q, k, v, bias]) {
            try attention(q: q, k: k, v: v, heads: h, bias: bias, keyMask: mask, options: recompute)
        }
    }

    /// Backward with P recomputed equals backward with P kept, bit for bit (same ops in the same
    /// order), with and without a bias gradient (per-head accumulation order).
    func testAttentionRecomputedProbabilitiesBitIdentical() throws {
        let b = 3, h = 2, dk = 4, tq = 6, tk = 11
        var m = [Float](repeating: 1, count: b * tk)
        m[4] = 0; m[2 * tk + 10] = 0
        let mask = Tensor(shape: [b, tk], values: m)
        for biasGrad in [false, true] {
            func run(_ recompute: Bool) throws -> [[Float]] {
                let q = rand([b, tq, h * dk], "rq"), k = rand([b, tk, h * dk], "rk"), v = rand([b, tk, h * dk], "rv")
                let bias = rand([h, tq, tk], "rb", grad: biasGrad), w = rand([b, tq, h * dk], "rw", grad: false)
                let opts = AttentionOptions(causal: true, queryOffset: tk - tq, dropout: 0.2, key: RNGKey(seed: 11),
                                            recomputeProbabilities: recompute)
                let tape = Tape()
                let loss = try tape.record { sum(try mul(try attention(q: q, k: k, v: v, heads: h, bias: bias, keyMask: mask, options: opts), w)) }
                tape.backward(loss)
                return [loss.array, q.grad!.array, k.grad!.array, v.grad!.array] + (biasGrad ? [bias.grad!.array] : [])
            }
            let kept = try run(false), recomputed = try run(true)
            XCTAssertEqual(kept.count, biasGrad ? 5 : 4)
            XCTAssertEqual(kept, recomputed, "bias gradient: \(biasGrad)")
        }
    }

    /// `realPositionsOnly` (the T5 encoder inside a training loss) computes each row's queries up to
    /// its last real key and keys up to that rounded to 8, yet keeps the bits of every real position:
    /// outputs, the loss, and the gradients of q, k, v and the bias, with dropout, kept and
    /// recomputed probabilities, on every own kernel. Rows at T = 41: full length (computed whole);
    /// 18 and 36 real keys, computed over 24 and 40 (exactly 18 or 36 would put their last keys in
    /// the softmax's scalar tail, where at T = 41 they are in its 8-wide part); 16, a multiple of 8;
    /// 5 with a masked key inside; none (computed whole). The upstream gradient is 0 at padded
    /// queries, as in the encoder. Computing exactly the real keys (no rounding) fails this test.
    func testAttentionOverRealPositionsKeepsRealBits() throws {
        let lengths = [41, 18, 36, 16, 5, 0], b = lengths.count, h = 2, dk = 8, dv = 6, t = 41
        var m = [Float](repeating: 0, count: b * t)
        for (bi, n) in lengths.enumerated() { for j in 0..<n { m[bi * t + j] = 1 } }
        m[4 * t + 2] = 0
        let mask = Tensor(shape: [b, t], values: m)
        let live = lengths.map { $0 == 0 ? t : $0 }
        var wValues = rand([b, t, h * dv], "rpw", grad: false).array
        for bi in 0..<b { for i in live[bi]..<t { for c in 0..<(h * dv) { wValues[(bi * t + i) * h * dv + c] = 0 } } }
        let w = Tensor(shape: [b, t, h * dv], values: wValues)
        for kernel in BLAS.availableKernels where kernel != .openblas {
            for recompute in [false, true] {
                func run(_ real: Bool) throws -> (out: [Float], grads: [[Float]]) {
                    let q = rand([b, t, h * dk], "rpq"), k = rand([b, t, h * dk], "rpk"), v = rand([b, t, h * dv], "rpv")
                    let bias = rand([h, t, t], "rpb")
                    let opts = AttentionOptions(dropout: 0.2, key: RNGKey(seed: 12), recomputeProbabilities: recompute,
                                                realPositionsOnly: real)
                    let tape = Tape()
                    var out: Tensor?
                    let loss = try tape.record { () throws -> Tensor in
                        out = try attention(q: q, k: k, v: v, heads: h, bias: bias, keyMask: mask, options: opts)
                        return sum(try mul(out!, w))
                    }
                    tape.backward(loss)
                    return (out!.array, [loss.array, q.grad!.array, k.grad!.array, v.grad!.array, bias.grad!.array])
                }
                let (ro, rg) = try BLAS.withKernel(kernel) { try run(true) }
                let (fo, fg) = try BLAS.withKernel(kernel) { try run(false) }
                let label = "\(kernel), recompute \(recompute)"
                for bi in 0..<b {
                    for i in 0..<t {
                        for c in 0..<(h * dv) {
                            let e = (bi * t + i) * h * dv + c
                            if i < live[bi] { XCTAssertEqual(ro[e].bitPattern, fo[e].bitPattern, "\(label): out[\(bi), \(i), \(c)]") }
                            else { XCTAssertEqual(ro[e], 0, "\(label): out[\(bi), \(i), \(c)] past the real keys") }
                        }
                    }
                }
                XCTAssertEqual(rg[0][0].bitPattern, fg[0][0].bitPattern, "\(label): loss")
                // dq at real queries, dk and dv everywhere, dbias everywhere: the same bits, or both
                // zero (a sum of zeros may carry either sign).
                for (g, name) in zip(1...4, ["dq", "dk", "dv", "dbias"]) {
                    let width = rg[g].count / (g == 4 ? h * t : b * t)
                    for e in rg[g].indices {
                        let (row, pos) = g == 4 ? (0, 0) : (e / width / t, e / width % t)
                        if g == 1 && pos >= live[row] { continue }
                        let same = rg[g][e].bitPattern == fg[g][e].bitPattern || (rg[g][e] == 0 && fg[g][e] == 0)
                        XCTAssertTrue(same, "\(label): \(name)[\(e)] \(rg[g][e]) against \(fg[g][e])")
                        if !same { return }
                    }
                }
            }
        }
    }

    func testFusedAttentionMatchesNaive() throws {
        // tk 9: one SIMD block and a tail; tk 37: several blocks, with masks and the causal limit inside them.
        for (tq, tk) in [(7, 9), (13, 37)] {
            let b = 2, h = 3, dk = 5
            let q = rand([b, tq, h * dk], "nq\(tk)", lo: -3, hi: 3, grad: false), k = rand([b, tk, h * dk], "nk\(tk)", grad: false)
            let v = rand([b, tk, h * 4], "nv\(tk)", grad: false), bias = rand([h, tq, tk], "nb\(tk)", grad: false)
            var m = [Float](repeating: 1, count: b * tk)
            m[3] = 0; m[tk + 8] = 0; m[tk - 1] = 0
            let mask = Tensor(shape: [b, tk], values: m)
            for opts in [AttentionOptions(), AttentionOptions(scale: 0.3, causal: true, queryOffset: tk - tq - 1),
                         AttentionOptions(dropout: 0.1, key: RNGKey(seed: 8))] {
                let fast = try attention(q: q, k: k, v: v, heads: h, bias: bias, keyMask: mask, options: opts)
                let slow = attentionNaive(q: q, k: k, v: v, heads: h, bias: bias, keyMask: mask, options: opts)
                XCTAssertEqual(fast.shape, [b, tq, h * 4])
                for i in 0..<fast.count { XCTAssertEqual(fast[i], slow[i], accuracy: 1e-5) }
            }
            XCTAssertThrowsError(try attention(q: q, k: k, v: v, heads: h, bias: rand([h, tq, tk + 1], "bad")))
        }
    }

    func testAbsorbedCrossAttentionGradients() throws {
        let b = dim("xb", 1, 3), h = dim("xh", 1, 3), dk = dim("xdk", 2, 4), tq = dim("xtq", 1, 4), tk = dim("xtk", 3, 6) + 8
        let d = dim("xd", 3, 7)
        let q = rand([b, tq, h * dk], "xq"), e = rand([b, tk, d], "xe")
        let wk = rand([h * dk, d], "xwk"), wv = rand([h * (dk + 1), d], "xwv")
        var m = [Float](repeating: 1, count: b * tk)
        m[tk - 1] = 0
        m[2] = 0
        let mask = Tensor(shape: [b, tk], values: m)
        try gradCheck("absorbed cross-attention", [q, e, wk, wv]) {
            try crossAttentionAbsorbed(q: q, memory: e, wk: wk, wv: wv, heads: h, keyMask: mask)
        }
        let drop = AttentionOptions(scale: 0.7, dropout: 0.25, key: RNGKey(seed: 5))
        try gradCheck("absorbed cross-attention dropout", [q, e, wk, wv]) {
            try crossAttentionAbsorbed(q: q, memory: e, wk: wk, wv: wv, heads: h, keyMask: mask, options: drop)
        }
        // Only some inputs trainable (prompt tuning: q and memory; frozen weights get no gradient).
        wk.requiresGrad = false
        wv.requiresGrad = false
        wk.zeroGrad(); wv.zeroGrad()
        try gradCheck("absorbed cross-attention frozen weights", [q, e]) {
            try crossAttentionAbsorbed(q: q, memory: e, wk: wk, wv: wv, heads: h, keyMask: mask, options: drop)
        }
        XCTAssertNil(wk.grad)
        XCTAssertThrowsError(try crossAttentionAbsorbed(q: q, memory: e, wk: rand([h * dk, d + 1], "xbad"), wv: wv, heads: h))
        XCTAssertThrowsError(try crossAttentionAbsorbed(q: q, memory: e, wk: wk, wv: wv, heads: h,
                                                        options: AttentionOptions(causal: true)))
    }

    /// One query per batch row (a greedy step) runs Q̃ and the output projection as one product per
    /// head over all B rows; each row must come out bit for bit as when it is the only row (M = 1),
    /// with every own kernel — B = 14 spans two 12-row tiles, d = 40 two column panels — and within
    /// rounding with OpenBLAS. A wrong stride or head offset in the batched products breaks it.
    func testAbsorbedCrossAttentionOneQueryBatchedEqualsRowByRow() throws {
        let (b, h, dk, d, tk) = (14, 4, 6, 40, 29)
        let q = Tensor.normal([b, 1, h * dk], key: RNGKey(seed: 71)), e = Tensor.normal([b, tk, d], key: RNGKey(seed: 72))
        let wk = Tensor.normal([h * dk, d], key: RNGKey(seed: 73)), wv = Tensor.normal([h * (dk + 2), d], key: RNGKey(seed: 74))
        var m = [Float](repeating: 1, count: b * tk)
        for r in 0..<b { for j in (tk - r % 5)..<tk { m[r * tk + j] = 0 } }
        let mask = Tensor(shape: [b, tk], values: m)
        let opts = AttentionOptions(scale: 0.8)
        for kernel in BLAS.availableKernels {
            try BLAS.withKernel(kernel) {
                let all = try crossAttentionAbsorbed(q: q, memory: e, wk: wk, wv: wv, heads: h, keyMask: mask, options: opts)
                XCTAssertEqual(all.shape, [b, 1, h * (dk + 2)])
                let w = h * (dk + 2)
                for r in 0..<b {
                    func row(_ t: Tensor) -> Tensor {
                        let n = t.count / t.shape[0]
                        return Tensor(shape: [1] + Array(t.shape.dropFirst()), values: Array(t.array[(r * n)..<((r + 1) * n)]))
                    }
                    let one = try crossAttentionAbsorbed(q: row(q), memory: row(e), wk: wk, wv: wv, heads: h, keyMask: row(mask), options: opts)
                    let got = Array(all.array[(r * w)..<((r + 1) * w)])
                    if kernel == .openblas {
                        for i in 0..<w { XCTAssertEqual(got[i], one.array[i], accuracy: 1e-5 * max(1, abs(one.array[i]))) }
                    } else {
                        XCTAssertEqual(got.map(\.bitPattern), one.array.map(\.bitPattern), "\(kernel) row \(r)")
                    }
                }
            }
        }
    }

    func testAbsorbedCrossAttentionMatchesProjected() throws {
        // The absorbed form against attention(q, E·Wkᵀ, E·Wvᵀ): outputs and every gradient, with a
        // key mask and dropout (same masks: same key per (b, h) unit), over a SIMD block and a tail;
        // one batch row runs serially with threaded GEMMs, more run as parallel units.
        for (b, tq, tk) in [(1, 2, 13), (3, 1, 21), (2, 4, 37)] {
            let h = 4, dk = 5, d = 11
            let opts = AttentionOptions(dropout: 0.2, key: RNGKey(seed: UInt64(tk)))
            var m = [Float](repeating: 1, count: b * tk)
            m[3] = 0; m[(b - 1) * tk + 7] = 0
            let mask = Tensor(shape: [b, tk], values: m)
            func run(_ absorbed: Bool) throws -> (Tensor, [Tensor]) {
                let q = rand([b, tq, h * dk], "pq\(tk)", lo: -2, hi: 2), e = rand([b, tk, d], "pe\(tk)")
                let wk = rand([h * dk, d], "pk\(tk)"), wv = rand([h * dk, d], "pv\(tk)")
                let w = rand([b, tq, h * dk], "pw\(tk)", grad: false)
                let tape = Tape()
                let out = try tape.record { () throws -> Tensor in
                    absorbed
                        ? try crossAttentionAbsorbed(q: q, memory: e, wk: wk, wv: wv, heads: h, keyMask: mask, options: opts)
                        : try attention(q: q, k: try linear(e, wk), v: try linear(e, wv), heads: h, keyMask: mask, options: opts)
                }
                let loss = try tape.record { sum(try mul(out, w)) }
                tape.backward(loss)
                return (out, [q, e, wk, wv].map { $0.grad! })
            }
            let (fast, gFast) = try run(true), (ref, gRef) = try run(false)
            for i in 0..<ref.count { XCTAssertEqual(fast[i], ref[i], accuracy: 1e-5) }
            for (gf, gr) in zip(gFast, gRef) {
                XCTAssertEqual(gf.shape, gr.shape)
                for i in 0..<gr.count { XCTAssertEqual(gf[i], gr[i], accuracy: 2e-5 * max(1, abs(gr[i]))) }
            }
        }
    }
}
