import Support
import Tensor
import XCTest

/// Central finite differences against the tape's gradients.
///
/// The scalar probed is L = Σ wᵢ·outᵢ with fixed random weights w (accumulated in Double), so
/// every output element contributes. For each input that requires gradients, up to `maxProbes`
/// elements (all of them for small tensors) are perturbed by ±h in fp32.
/// Tolerance: |analytic − numeric| ≤ atol + rtol·|numeric| with h = 1e-2, atol = 2e-3, rtol = 2e-2
/// unless a test states otherwise (fp32 forward, Double projection). A non-finite analytic or
/// numeric value fails (a NaN compares false with every tolerance, and `max(x, NaN)` is x).
func gradCheck(_ label: String, _ inputs: [Tensor], h: Float = 1e-2, atol: Double = 2e-3, rtol: Double = 2e-2,
               maxProbes: Int = 48, file: StaticString = #filePath, line: UInt = #line,
               _ f: () throws -> Tensor) throws {
    var worst = 0.0
    if let problem = try gradCheckProblem(label, inputs, h: h, atol: atol, rtol: rtol, maxProbes: maxProbes, worst: &worst, f) {
        XCTFail(problem, file: file, line: line)
        return
    }
    print("gradcheck \(label): worst error/tolerance = \(String(format: "%.3f", worst))")
}

/// `gradCheck`'s comparison: the first disagreement found (an element outside the tolerance, a
/// non-finite value, an input without a gradient, an undrained tape), or nil; `worst` is the
/// largest error/tolerance seen.
func gradCheckProblem(_ label: String, _ inputs: [Tensor], h: Float = 1e-2, atol: Double = 2e-3, rtol: Double = 2e-2,
                      maxProbes: Int = 48, worst: inout Double, _ f: () throws -> Tensor) throws -> String? {
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
    guard tape.isEmpty else { return "\(label): tape not drained" }
    var probed = 0
    for (n, x) in inputs.enumerated() where x.requiresGrad {
        guard let g = x.grad else { return "\(label): input \(n) got no gradient" }
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
            let tolerance = atol + rtol * abs(numeric)
            let err = abs(analytic - numeric)
            probed += 1
            guard analytic.isFinite, numeric.isFinite, err <= tolerance else {
                worst = .infinity
                return "\(label): input \(n) \(x.shape) element \(i): analytic \(analytic) vs numeric \(numeric)"
                    + (analytic.isFinite && numeric.isFinite ? "" : " (not finite)")
            }
            worst = max(worst, err / tolerance)
        }
    }
    return probed > 0 ? nil : "\(label): no input requires gradients: nothing was checked"
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

/// The checker itself fails where it must: a NaN reached both sides of the comparison and passed
/// (NaN > tolerance is false), so a backward producing NaN would have passed every op's check.
final class GradCheckSelfTests: XCTestCase {
    func testNonFiniteValuesFailAndFiniteOnesPass() throws {
        var worst = 0.0
        let x = rand([2, 3], "gradcheck-nan")
        // tanh's forward and its gradient 1 − tanh² are NaN there, and the NaN output makes every
        // difference quotient of the projected sum NaN.
        x.data[4] = .nan
        let problem = try gradCheckProblem("tanh with a NaN", [x], worst: &worst) { tanh(x) }
        XCTAssertTrue(problem?.contains("not finite") == true, problem ?? "passed")
        XCTAssertEqual(worst, .infinity)
        // An infinite input: the analytic gradient 2x is inf, the difference quotient inf − inf NaN.
        let y = rand([3], "gradcheck-inf")
        y.data[1] = .infinity
        worst = 0
        XCTAssertNotNil(try gradCheckProblem("x²", [y], worst: &worst) { try mul(y, y) })
        // The same ops on finite inputs pass.
        let z = rand([2, 3], "gradcheck-finite")
        worst = 0
        XCTAssertNil(try gradCheckProblem("tanh", [z], worst: &worst) { tanh(z) })
        XCTAssertGreaterThan(worst, 0)
        XCTAssertLessThanOrEqual(worst, 1)
        // Nothing to check is not a pass.
        let c = rand([3], "gradcheck-const", grad: false)
        XCTAssertNotNil(try gradCheckProblem("constant", [c], worst: &worst) { tanh(c) })
    }
}
