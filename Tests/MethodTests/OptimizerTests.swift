import Foundation
import Support
import Tensor
@testable import Training
import XCTest

/// Optimizer updates against trajectories from torch.optim.AdamW and transformers' Adafactor
/// (scripts/optimizer_reference.py, torch 2.15, transformers 5.23), and transformers' AdamW worked
/// out by hand from its update rule. Tolerance 2e-6 (fp32 parameters).
final class OptimizerTests: XCTestCase {
    let p0: [Float] = [0.5, -1.0, 2.0, 0.25, 0.0, -0.75]
    let grads: [[Float]] = [[0.1, -0.2, 0.3, 0.4, -0.5, 0.6], [-0.3, 0.1, 0.0, 0.2, 0.2, -0.1], [0.05, 0.5, -0.4, -0.6, 0.3, 0.2]]

    func trajectory(_ kind: OptimizerKind, shape: [Int], wd: Float, lr: Float = 0.3) -> [[Float]] {
        let n = shape.reduce(1, *)
        let p = Tensor(shape: shape, values: Array(p0.prefix(n)), requiresGrad: true)
        p.name = "p"
        let opt = Optimizer(kind: kind, groups: [ParamGroup(tensors: [p], lr: lr, weightDecay: wd)])
        var out: [[Float]] = []
        for g in grads {
            p.grad = Tensor(shape: shape, values: Array(g.prefix(n)))
            opt.update()
            out.append(p.array)
        }
        return out
    }

    func assertClose(_ a: [[Float]], _ b: [[Double]], _ label: String) {
        for (s, (x, y)) in zip(a, b).enumerated() {
            for (i, (u, v)) in zip(x, y).enumerated() { XCTAssertEqual(Double(u), v, accuracy: 2e-6, "\(label) step \(s + 1) [\(i)]") }
        }
    }

    func testTorchAdamW() {
        assertClose(trajectory(.adamwTorch, shape: [2, 3], wd: 1e-5), [
            [0.19999852776527405, -0.699997067451477, 1.6999940872192383, -0.05000075697898865, 0.29999998211860657, -1.0499976873397827],
            [0.34825485944747925, -0.6200938820838928, 1.4989715814590454, -0.3296545445919037, 0.40368086099624634, -1.2115558385849],
            [0.4315032660961151, -0.7698685526847839, 1.559165120124817, -0.3050605058670044, 0.38034650683403015, -1.3900927305221558],
        ], "adamw-torch")
    }

    /// AdamW updates run eight lanes at a time with a scalar tail; each element's update is the
    /// same chain of fp32 operations either way. A 6-element tensor (all tail; checked against
    /// torch above) and a 6 × 9 + 5 = 59-element tensor repeating its values and gradients (lanes
    /// at every position, then a tail) must give bit-identical trajectories.
    func testAdamWLanesMatchTheScalarRuleBitForBit() {
        for kind in [OptimizerKind.adamwTorch, .adamwHF] {
            let short = trajectory(kind, shape: [6], wd: 1e-2)
            let n = 59
            let p = Tensor(shape: [n], values: (0..<n).map { p0[$0 % 6] }, requiresGrad: true)
            p.name = "p"
            let opt = Optimizer(kind: kind, groups: [ParamGroup(tensors: [p], lr: 0.3, weightDecay: 1e-2)])
            for (s, g) in grads.enumerated() {
                p.grad = Tensor(shape: [n], values: (0..<n).map { g[$0 % 6] })
                opt.update()
                let long = p.array
                for i in 0..<n { XCTAssertEqual(long[i].bitPattern, short[s][i % 6].bitPattern, "\(kind) step \(s + 1) [\(i)]") }
            }
        }
    }

    /// AdamW's loop in C (Sources/CGemm/adamw.c, AVX2 hosts) against the Swift loop it replaces:
    /// the weights, both moments and the recorded norms bit for bit, for both update rules, over
    /// three steps, at lengths that are all tail, all lanes, and lanes then a tail, one big enough
    /// to be split over threads; values from 1e-30 to 10 in size, zeros and −0 among them. A product
    /// and sum contracted into an FMA, or the norms' lanes added in another order, fails it.
    func testAdamWInCIsBitIdenticalToSwiftLoop() throws {
        try XCTSkipUnless(BLAS.avx2Available, "no AVX2 and FMA on this CPU")
        defer { Optimizer.AdamWAVX2.forced = nil }
        for kind in [OptimizerKind.adamwTorch, .adamwHF] {
            for n in [1, 7, 8, 9, 64, 1003, 200_003] {
                let key = RNGKey(seed: 31).derive("adamw\(n)")
                func values(_ name: String) -> [Float] {
                    let u = key.derive(name).uniformArray(n, lo: -1, hi: 1), s = key.derive(name + "s").uniformArray(n, lo: -30, hi: 1)
                    return (0..<n).map { i in i % 97 == 3 ? 0 : (i % 89 == 5 ? -0.0 : u[i] * Float(pow(10, Double(s[i])))) }
                }
                let p0 = values("p"), grads = (0..<3).map { values("g\($0)") }
                var runs: [(p: [Float], m: [Float], v: [Float], norms: [Double])] = []
                for viaC in [false, true] {
                    Optimizer.AdamWAVX2.forced = viaC
                    let p = Tensor(shape: [n], values: p0, requiresGrad: true)
                    p.name = "p"
                    let opt = Optimizer(kind: kind, groups: [ParamGroup(tensors: [p], lr: 0.01, weightDecay: 0.1)])
                    var norms: [Double] = []
                    for (s, g) in grads.enumerated() {
                        opt.recordsNorms = s != 1  // the loop without the sums too
                        p.grad = Tensor(shape: [n], values: g)
                        opt.update()
                        if let (gn, pn) = opt.norms[ObjectIdentifier(p)] { norms += [gn, pn] }
                    }
                    let slots = try XCTUnwrap(opt.slots["p"])
                    runs.append((p.array, slots[0].array, slots[1].array, norms))
                }
                let (a, b) = (runs[0], runs[1])
                for (label, x, y) in [("weights", a.p, b.p), ("m", a.m, b.m), ("v", a.v, b.v)] {
                    for i in 0..<n where x[i].bitPattern != y[i].bitPattern {
                        XCTFail("\(kind) n \(n) \(label)[\(i)]: Swift \(x[i]) C \(y[i])"); break
                    }
                }
                XCTAssertEqual(a.norms.count, 4)
                XCTAssertEqual(a.norms.map(\.bitPattern), b.norms.map(\.bitPattern), "\(kind) n \(n) norms")
            }
        }
    }

    /// The recorded norms (the trainer's per-step log) are the Euclidean norms of the gradient and
    /// of the updated parameter, summed in Double.
    func testAdamWRecordedNormsAreTheNorms() {
        let n = 1000
        let p = Tensor(shape: [n], values: (0..<n).map { Float($0 % 17) * 0.01 - 0.08 }, requiresGrad: true)
        p.name = "p"
        let opt = Optimizer(kind: .adamwTorch, groups: [ParamGroup(tensors: [p], lr: 0.1, weightDecay: 0.01)])
        opt.recordsNorms = true
        let g = (0..<n).map { Float(($0 * 7) % 13) * 0.05 - 0.3 }
        p.grad = Tensor(shape: [n], values: g)
        opt.update()
        let (gn, pn) = try! XCTUnwrap(opt.norms[ObjectIdentifier(p)])
        XCTAssertEqual(gn, g.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(pn, p.array.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot(), accuracy: 1e-12)
    }

    func testAdafactorFactoredAndVector() {
        assertClose(trajectory(.adafactor, shape: [2, 3], wd: 0), [
            [0.31449592113494873, -0.7159407138824463, 1.657947301864624, -0.06639686226844788, 0.3028082251548767, -1.041703462600708],
            [0.7979443073272705, -0.8743501901626587, 1.657947301864624, -0.24538612365722656, 0.12686225771903992, -0.9644450545310974],
            [0.7549989223480225, -1.3096815347671509, 2.03303861618042, 0.14149343967437744, -0.0692249983549118, -1.1052393913269043],
        ], "adafactor 2-D")
        assertClose(trajectory(.adafactor, shape: [3], wd: 0), [
            [0.19999998807907104, -0.699999988079071, 1.7000000476837158],
            [0.5804963111877441, -0.8988127708435059, 1.7000000476837158],
            [0.5098737478256226, -1.2779358625411987, 2.048250198364258],
        ], "adafactor 1-D")
        assertClose(trajectory(.adafactor, shape: [2, 3], wd: 1e-2), [
            [0.31299591064453125, -0.7129406929016113, 1.651947259902954, -0.06714686751365662, 0.3028082251548767, -1.0394535064697266],
            [0.7955052852630615, -0.8692113757133484, 1.6469913721084595, -0.24593469500541687, 0.1259538233280182, -0.9590767025947571],
            [0.7501733899116516, -1.301935076713562, 2.017141580581665, 0.1416826695203781, -0.07051129639148712, -1.0969938039779663],
        ], "adafactor wd")
    }

    /// transformers.AdamW, step 1 by hand for p = 0.5, g = 0.1, lr 0.3, wd 0.01:
    /// m = 0.01, v = 1e-5; step size = 0.3·√(1−0.999)/(1−0.9) = 0.0948683; p −= 0.0948683·0.01/(√1e-5 + 1e-8)
    /// = 0.5 − 0.2999990 = 0.2000010; then decay p −= 0.3·0.01·p → 0.1994010.
    func testTransformersAdamWByHand() {
        let t = trajectory(.adamwHF, shape: [1], wd: 0.01)
        let stepSize = 0.3 * (1 - 0.999).squareRoot() / (1 - 0.9)
        var p = 0.5 - stepSize * 0.01 / (1e-5.squareRoot() + 1e-8)
        p -= 0.3 * 0.01 * p
        XCTAssertEqual(Double(t[0][0]), p, accuracy: 1e-6)
        XCTAssertEqual(Double(t[0][0]), 0.199401, accuracy: 1e-5)
    }

    func testSchedulesAndClipping() {
        XCTAssertEqual(Schedule.linear.factor(step: 0, total: 100, warmup: 10), 0)
        XCTAssertEqual(Schedule.linear.factor(step: 5, total: 100, warmup: 10), 0.5)
        XCTAssertEqual(Schedule.linear.factor(step: 10, total: 100, warmup: 10), 1)
        XCTAssertEqual(Schedule.linear.factor(step: 55, total: 100, warmup: 10), 0.5)
        XCTAssertEqual(Schedule.linear.factor(step: 100, total: 100, warmup: 10), 0)
        XCTAssertEqual(Schedule.constantWarmup.factor(step: 250, total: 1000, warmup: 500), 0.5)
        XCTAssertEqual(Schedule.constant.factor(step: 3, total: 10, warmup: 5), 1)
        let a = Tensor(shape: [2], values: [3, 0], requiresGrad: true), b = Tensor(shape: [1], values: [0], requiresGrad: true)
        a.grad = Tensor(shape: [2], values: [3, 0]); b.grad = Tensor(shape: [1], values: [4])
        XCTAssertEqual(clipGradNorm([a, b], maxNorm: 1), 5, accuracy: 1e-6)
        XCTAssertEqual(a.grad!.array[0], 3 / 5.000001, accuracy: 1e-6)
        XCTAssertEqual(b.grad!.array[0], 4 / 5.000001, accuracy: 1e-6)
    }

    func testDePTGroupsHaveTheirOwnLearningRate() {
        let p = Tensor(shape: [1], values: [1], requiresGrad: true), q = Tensor(shape: [1], values: [1], requiresGrad: true)
        p.name = "p"; q.name = "q"
        let opt = Optimizer(kind: .adamwTorch, groups: [ParamGroup(tensors: [p], lr: 0.3, weightDecay: 0), ParamGroup(tensors: [q], lr: 0.003, weightDecay: 0)])
        p.grad = Tensor(shape: [1], values: [1]); q.grad = Tensor(shape: [1], values: [1])
        opt.update()
        XCTAssertEqual(p.array[0], 0.7, accuracy: 1e-6)   // first Adam step moves by lr
        XCTAssertEqual(q.array[0], 0.997, accuracy: 1e-6)
    }
}
