import Support
import Tensor
import XCTest

/// Central finite differences against the tape's gradients.
///
/// The scalar probed is L = Σ wᵢ·outᵢ with fixed random weights w (accumulated in Double), so
/// every output element contributes. For each input that requires gradients, up to `maxProbes`
/// elements (all of them for small tensors) are perturbed by ±h in fp32.
/// Tolerance: |analytic − numeric| ≤ atol + rtol·|numeric| with h = 1e-2, atol = 2e-3, rtol = 2e-2
/// unless a test states otherwise (fp32 forward, Double projection).
func gradCheck(_ label: String, _ inputs: [Tensor], h: Float = 1e-2, atol: Double = 2e-3, rtol: Double = 2e-2,
               maxProbes: Int = 48, file: StaticString = #filePath, line: UInt = #line,
               _ f: () throws -> Tensor) throws {
    let probe = try f()
    let w = RNGKey(seed: 99, stream: UInt64(probe.count)).uniformArray(probe.count, lo: -1, hi: 1)
    func project(_ t: Tensor) -> Double {
        var acc = 0.0
        for i in 0..<t.count { acc += Double(w[i]) * Double(t.data[i]) }
        return acc
    }
    for x in inputs { x.zeroGrad() }
    let tape = Tape()
    let loss = try tape.record { () throws -> Tensor in
        let out = try f()
        let wt = Tensor(shape: out.shape, values: w)
        return sum(try mul(out, wt))
    }
    tape.backward(loss)
    XCTAssertTrue(tape.isEmpty, "\(label): tape not drained", file: file, line: line)
    var worst = 0.0
    for (n, x) in inputs.enumerated() where x.requiresGrad {
        guard let g = x.grad else { XCTFail("\(label): input \(n) got no gradient", file: file, line: line); continue }
        let stride = max(1, x.count / maxProbes)
        for i in Swift.stride(from: 0, to: x.count, by: stride) {
            let orig = x.data[i]
            x.data[i] = orig + h
            let up = project(try f())
            x.data[i] = orig - h
            let down = project(try f())
            x.data[i] = orig
            let numeric = (up - down) / Double(2 * h)
            let analytic = Double(g.data[i])
            let err = abs(analytic - numeric)
            worst = max(worst, err / (atol + rtol * abs(numeric)))
            if err > atol + rtol * abs(numeric) {
                XCTFail("\(label): input \(n) \(x.shape) element \(i): analytic \(analytic) vs numeric \(numeric)", file: file, line: line)
                return
            }
        }
    }
    print("gradcheck \(label): worst error/tolerance = \(String(format: "%.3f", worst))")
}

/// Random tensor from a labelled stream; values in [lo, hi).
func rand(_ shape: [Int], _ label: String, lo: Float = -1, hi: Float = 1, grad: Bool = true) -> Tensor {
    Tensor.uniform(shape, lo: lo, hi: hi, key: RNGKey(seed: 7).derive(label), requiresGrad: grad)
}

/// Random dimension in lo...hi from a labelled stream (shapes vary per test, fixed per label).
func dim(_ label: String, _ lo: Int, _ hi: Int) -> Int {
    var s = PhiloxStream(RNGKey(seed: 11).derive(label))
    return lo + s.nextInt(below: hi - lo + 1)
}
