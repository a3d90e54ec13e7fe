// Token cross-entropy with ignore index −100, mean over counted tokens of the whole batch.
import Foundation

public let ignoreIndex: Int32 = -100

/// Mean over rows with target ≠ −100 of logsumexp(logits[row]) − logits[row, target]; the
/// exponential sum accumulates in Double.
/// `logits` is [..., V] with one row per target. Returns a scalar; 0 if no row counts.
public func crossEntropy(_ logits: Tensor, targets: [Int32]) throws -> Tensor {
    guard let v = logits.shape.last, logits.count / max(v, 1) == targets.count else {
        throw TensorError.shapeMismatch(op: "crossEntropy", detail: "logits \(shapeString(logits.shape)) need one row per target (\(targets.count) targets)")
    }
    if let bad = targets.first(where: { $0 != ignoreIndex && ($0 < 0 || Int($0) >= v) }) {
        throw TensorError.invalidArgument(op: "crossEntropy", detail: "target \(bad) outside vocabulary of \(v)")
    }
    let rows = targets.count
    let counted = targets.filter { $0 != ignoreIndex }.count
    let lse = Tensor(uninitialized: [rows])
    let px = logits.data, pl = lse.data
    Parallel.forRange(rows, costPerItem: v * 4) { range in
        for r in range {
            let xr = px + r * v
            var mx = -Float.infinity
            for j in 0..<v { mx = max(mx, xr[j]) }
            // The sum of V exponentials in Double: a float32 running sum over a 32k vocabulary
            // drifts by ~√V ulps (2e-5 of the loss on T5 v1.1 logits), well above PyTorch's
            // float32 error; in Double it is exact to float32 precision.
            var s = 0.0
            for j in 0..<v { s += Double(expf(xr[j] - mx)) }
            pl[r] = mx + Float(log(s))
        }
    }
    var total = 0.0
    for r in 0..<rows where targets[r] != ignoreIndex {
        total += Double(pl[r]) - Double(px[r * v + Int(targets[r])])
    }
    let out = Tensor(shape: [], values: [counted == 0 ? 0 : Float(total / Double(counted))])
    if Tape.needsGrad(logits), counted > 0 {
        let ob = out.box  // keeps logits and lse
        Tape.push(out, inputs: [logits]) {
            let px = logits.data
            let g = ob.grad!.data[0] / Float(counted), gx = logits.gradBuffer()
            Parallel.forRange(rows, costPerItem: v * 4) { range in
                for r in range where targets[r] != ignoreIndex {
                    let xr = px + r * v, gr = gx + r * v, l = lse.data[r]  // captures lse
                    for j in 0..<v { gr[j] += g * expf(xr[j] - l) }
                    gr[Int(targets[r])] -= g
                }
            }
        }
    }
    return out
}
