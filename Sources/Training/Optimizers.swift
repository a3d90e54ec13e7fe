// Optimizers with the exact update rules of the code the papers ran (METHODS §2.8):
//   adamw-torch   torch.optim.AdamW: decay first, bias-corrected moments, eps outside the sqrt
//   adamw-hf      transformers.AdamW: step size lr·√(1−β2ᵗ)/(1−β1ᵗ), eps on √v, decay after
//   adafactor     transformers Adafactor(relative_step=False, scale_parameter=False, warmup_init=False):
//                 factored second moments for ≥2-D tensors, ρ = 1 − t^−0.8, eps1 1e-30, update
//                 clipped to RMS ≤ 1, no momentum, decay p −= lr·wd·p before the update
// Parameter groups carry their own learning rate and weight decay (DePT: prompt vs A/B).
import CGemm
import Foundation
import Tensor

public enum OptimizerKind: String, Codable, CaseIterable, Sendable {
    case adamwTorch = "adamw-torch", adamwHF = "adamw-hf", adafactor
}

public struct ParamGroup {
    public var tensors: [Tensor]
    public var lr: Float
    public var weightDecay: Float
    public init(tensors: [Tensor], lr: Float, weightDecay: Float) {
        self.tensors = tensors
        self.lr = lr
        self.weightDecay = weightDecay
    }
}

public final class Optimizer {
    public let kind: OptimizerKind
    public var groups: [ParamGroup]
    public let beta1: Double, beta2: Double, eps: Double
    public private(set) var step = 0
    /// Per tensor: AdamW m, v; Adafactor row/col (factored) or v (1-D). Keyed by tensor name.
    var slots: [String: [Tensor]] = [:]

    public init(kind: OptimizerKind, groups: [ParamGroup], beta1: Double = 0.9, beta2: Double = 0.999, eps: Double = 1e-8) {
        self.kind = kind
        self.groups = groups
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
    }

    /// One update with every group's lr multiplied by `lrScale` (the schedule factor).
    public func update(lrScale: Float = 1) {
        beginStep(lrScale: lrScale)
        for g in groups { for t in g.tensors { apply(t, g) } }
    }

    /// Starts a step whose tensors are then updated one at a time with `update(_:)`, in any order
    /// (each tensor's rule reads only its own gradient and state): the same arithmetic as
    /// `update(lrScale:)`, for an optimizer step fused into backward (`backwardWithStep`).
    public func beginStep(lrScale: Float = 1) {
        step += 1
        stepScale = lrScale
        norms.removeAll(keepingCapacity: true)
        groupOf.removeAll(keepingCapacity: true)
        for (i, g) in groups.enumerated() { for x in g.tensors where groupOf[ObjectIdentifier(x)] == nil { groupOf[ObjectIdentifier(x)] = i } }
    }

    /// Updates one parameter of the current step (begun by `beginStep`) with its group's lr and
    /// weight decay; nothing when it has no gradient.
    public func update(_ t: Tensor) {
        guard let gi = groupOf[ObjectIdentifier(t)] else { preconditionFailure("optimizer update of a tensor in none of its groups: \(t.name)") }
        apply(t, groups[gi])
    }

    func apply(_ t: Tensor, _ g: ParamGroup) {
        guard let grad = t.grad else { return }
        let lr = Double(g.lr * stepScale), wd = Double(g.weightDecay)
        switch kind {
        case .adamwTorch, .adamwHF: adam(t, grad, lr: lr, wd: wd)
        case .adafactor: adafactor(t, grad, lr: lr, wd: wd)
        }
    }

    /// When true, each update also records the L2 norms of the gradient it applied and of the
    /// tensor's new values (`norms`), summed inside the update loops that read both anyway (the
    /// trainer's per-step log at no extra pass over the weights).
    public var recordsNorms = false
    /// Per tensor updated in the current step: (‖gradient‖₂, ‖new values‖₂).
    public private(set) var norms: [ObjectIdentifier: (grad: Double, param: Double)] = [:]
    let normsLock = NSLock()

    var stepScale: Float = 1
    /// Tensor → index of the first group holding it, rebuilt by `beginStep`.
    var groupOf: [ObjectIdentifier: Int] = [:]

    func slot(_ t: Tensor, _ shapes: [[Int]]) -> [Tensor] {
        let key = t.name.isEmpty ? "\(ObjectIdentifier(t).hashValue)" : t.name
        if let s = slots[key] { return s }
        let s = shapes.map { Tensor(zeros: $0) }
        slots[key] = s
        return s
    }

    /// fp32 arithmetic like torch's CPU AdamW; per-step constants in Double, then rounded once.
    func adam(_ p: Tensor, _ grad: Tensor, lr: Double, wd: Double) {
        let s = slot(p, [p.shape, p.shape])
        let m = s[0].data, v = s[1].data, x = p.data, g = grad.data
        let t = Double(step)
        let bc1 = 1 - pow(beta1, t), bc2 = 1 - pow(beta2, t)
        let b1 = Float(beta1), b2 = Float(beta2), c1 = Float(1 - beta1), c2 = Float(1 - beta2), e = Float(eps)
        let torch = kind == .adamwTorch
        // torch: p ← p(1 − lr·wd); p ← p − (lr/bc1)·m / (√v/√bc2 + eps)
        let decay = Float(1 - lr * wd), stepSize = Float(lr / bc1), rootBC2 = Float(bc2.squareRoot())
        // transformers: p ← p − (lr·√bc2/bc1)·m / (√v + eps); p ← p − lr·wd·p
        let hfStep = Float(lr * bc2.squareRoot() / bc1), hfDecay = Float(lr * wd)
        // Elementwise, so splitting over threads leaves every value unchanged. Norm partial sums are
        // kept per chunk and added in chunk order (deterministic for a thread count).
        let record = recordsNorms
        var partial: [Int: (Double, Double)] = [:]
        let lock = NSLock()
        let b1v = SIMD8<Float>(repeating: b1), b2v = SIMD8<Float>(repeating: b2), c1v = SIMD8<Float>(repeating: c1),
            c2v = SIMD8<Float>(repeating: c2), ev = SIMD8<Float>(repeating: e), decayV = SIMD8<Float>(repeating: decay),
            stepV = SIMD8<Float>(repeating: stepSize), rootV = SIMD8<Float>(repeating: rootBC2),
            hfStepV = SIMD8<Float>(repeating: hfStep), hfDecayV = SIMD8<Float>(repeating: hfDecay)
        @inline(__always) func load(_ q: UnsafeMutablePointer<Float>, _ i: Int) -> SIMD8<Float> {
            UnsafeRawPointer(q + i).loadUnaligned(as: SIMD8<Float>.self)
        }
        @inline(__always) func store(_ x: SIMD8<Float>, _ q: UnsafeMutablePointer<Float>, _ i: Int) {
            UnsafeMutableRawPointer(q + i).storeBytes(of: x, as: SIMD8<Float>.self)
        }
        let viaC = AdamWAVX2.uses
        let k = [b1, b2, c1, c2, e, decay, stepSize, rootBC2, hfStep, hfDecay]
        Parallel.forRange(p.count, costPerItem: 8) { range in
            var sg = 0.0, sp = 0.0
            defer { if record { lock.lock(); partial[range.lowerBound] = (sg, sp); lock.unlock() } }
            if viaC {  // the same loop in C (Sources/CGemm/adamw.c), the same bits
                pr_adamw_avx2(range.count, x + range.lowerBound, g + range.lowerBound, m + range.lowerBound, v + range.lowerBound,
                              torch ? 1 : 0, k, record ? 1 : 0, &sg, &sp)
                return
            }
            // Eight lanes at a time with the scalar tail's exact operations in the same order (no
            // fused multiply-add), so every updated value is the scalar rule's bits. The norms'
            // Double sums run per lane and are added at the end of the chunk.
            var sg8 = SIMD8<Double>(), sp8 = SIMD8<Double>()
            var i = range.lowerBound
            while i + 8 <= range.upperBound {
                let gi = load(g, i)
                let mi = b1v * load(m, i) + c1v * gi
                let vi = b2v * load(v, i) + c2v * gi * gi
                store(mi, m, i)
                store(vi, v, i)
                let xi: SIMD8<Float>
                if torch {
                    xi = load(x, i) * decayV - stepV * mi / (vi.squareRoot() / rootV + ev)
                } else {
                    let yi = load(x, i) - hfStepV * mi / (vi.squareRoot() + ev)
                    xi = yi - hfDecayV * yi
                }
                store(xi, x, i)
                if record {
                    let gd = SIMD8<Double>(gi), xd = SIMD8<Double>(xi)
                    sg8 += gd * gd
                    sp8 += xd * xd
                }
                i += 8
            }
            if record { sg = sg8.sum(); sp = sp8.sum() }
            while i < range.upperBound {
                let gi = g[i]
                let mi = b1 * m[i] + c1 * gi
                let vi = b2 * v[i] + c2 * gi * gi
                m[i] = mi
                v[i] = vi
                if torch {
                    x[i] = x[i] * decay - stepSize * mi / (vi.squareRoot() / rootBC2 + e)
                } else {
                    let xi = x[i] - hfStep * mi / (vi.squareRoot() + e)
                    x[i] = xi - hfDecay * xi
                }
                if record { sg += Double(gi) * Double(gi); sp += Double(x[i]) * Double(x[i]) }
                i += 1
            }
        }
        if record {
            let sums = partial.keys.sorted().reduce((0.0, 0.0)) { ($0.0 + partial[$1]!.0, $0.1 + partial[$1]!.1) }
            setNorms(p, grad: sums.0, param: sums.1)
        }
    }

    /// AdamW's loop in C where the CPU has AVX2 and FMA (`pr_adamw_avx2`), else `adam`'s Swift loop;
    /// the same bits (tested). `forced` false makes tests and `bench-one --alternate adamw-c` run
    /// the Swift loop.
    public enum AdamWAVX2 {
        nonisolated(unsafe) public static var forced: Bool?
        static var uses: Bool { (forced ?? true) && BLAS.avx2Available }
    }

    func setNorms(_ p: Tensor, grad: Double, param: Double) {
        normsLock.lock()
        norms[ObjectIdentifier(p)] = (grad.squareRoot(), param.squareRoot())
        normsLock.unlock()
    }

    func adafactor(_ p: Tensor, _ grad: Tensor, lr: Double, wd: Double) {
        let eps1 = 1e-30, clip = 1.0
        let rho = 1 - pow(Double(step), -0.8)
        let n = p.count, g = grad.data
        var u = [Double](repeating: 0, count: n)
        if p.rank >= 2 {
            let cols = p.shape[p.rank - 1], rows = n / cols
            let s = slot(p, [[rows], [cols]])
            let r = s[0].data, c = s[1].data
            var rowMean = [Double](repeating: 0, count: rows), colMean = [Double](repeating: 0, count: cols)
            for i in 0..<rows { for j in 0..<cols {
                let sq = Double(g[i * cols + j]) * Double(g[i * cols + j]) + eps1
                rowMean[i] += sq / Double(cols)
                colMean[j] += sq / Double(rows)
            } }
            for i in 0..<rows { r[i] = Float(rho * Double(r[i]) + (1 - rho) * rowMean[i]) }
            for j in 0..<cols { c[j] = Float(rho * Double(c[j]) + (1 - rho) * colMean[j]) }
            var rMean = 0.0
            for i in 0..<rows { rMean += Double(r[i]) / Double(rows) }
            for i in 0..<rows { for j in 0..<cols {
                u[i * cols + j] = Double(g[i * cols + j]) / (Double(r[i]) / rMean).squareRoot() / Double(c[j]).squareRoot()
            } }
        } else {
            let v = slot(p, [p.shape])[0].data
            for i in 0..<n {
                let sq = Double(g[i]) * Double(g[i]) + eps1
                v[i] = Float(rho * Double(v[i]) + (1 - rho) * sq)
                u[i] = Double(g[i]) / Double(v[i]).squareRoot()
            }
        }
        let rms = (u.reduce(0) { $0 + $1 * $1 } / Double(max(n, 1))).squareRoot()
        let denom = max(1, rms / clip)
        var sg = 0.0, sp = 0.0
        for i in 0..<n {
            var xi = Double(p.data[i])
            if wd != 0 { xi -= wd * lr * xi }
            xi -= lr * u[i] / denom
            p.data[i] = Float(xi)
            if recordsNorms { sg += Double(g[i]) * Double(g[i]); sp += Double(p.data[i]) * Double(p.data[i]) }
        }
        if recordsNorms { setNorms(p, grad: sg, param: sp) }
    }

    /// Optimizer state for checkpoints ("opt.<tensor>.<slot>"), plus the step count.
    public var state: [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (k, s) in slots { for (i, t) in s.enumerated() { out["opt.\(k).\(i)"] = t } }
        out["opt.step"] = Tensor(shape: [1], values: [Float(step)])
        return out
    }

    public func load(state saved: [String: Tensor]) {
        step = Int(saved["opt.step"]?.scalar ?? 0)
        slots = [:]
        var grouped: [String: [(Int, Tensor)]] = [:]
        for (k, t) in saved where k.hasPrefix("opt.") && k != "opt.step" {
            let body = k.dropFirst(4)
            guard let dot = body.lastIndex(of: "."), let i = Int(body[body.index(after: dot)...]) else { continue }
            grouped[String(body[..<dot]), default: []].append((i, t.detached()))
        }
        for (k, list) in grouped { slots[k] = list.sorted { $0.0 < $1.0 }.map(\.1) }
    }
}

/// Learning-rate factor per optimizer step t (0-based, before the step), total T, warmup W.
public enum Schedule: String, Codable, CaseIterable, Sendable {
    case constant, constantWarmup = "constant-warmup", linear

    public func factor(step t: Int, total: Int, warmup: Int) -> Float {
        switch self {
        case .constant: return 1
        case .constantWarmup: return t < warmup ? Float(t) / Float(max(1, warmup)) : 1
        case .linear:
            if t < warmup { return Float(t) / Float(max(1, warmup)) }
            return max(0, Float(total - t) / Float(max(1, total - warmup)))
        }
    }
}

/// torch.nn.utils.clip_grad_norm_: scales every gradient by max/(‖g‖ + 1e-6) when that is < 1.
/// Returns the total norm before clipping.
@discardableResult
public func clipGradNorm(_ tensors: [Tensor], maxNorm: Float) -> Float {
    var total = 0.0
    for t in tensors { if let g = t.grad { for i in 0..<g.count { total += Double(g.data[i]) * Double(g.data[i]) } } }
    let norm = Float(total.squareRoot())
    let coef = maxNorm / (norm + 1e-6)
    if coef < 1 { for t in tensors { if let g = t.grad { for i in 0..<g.count { g.data[i] *= coef } } } }
    return norm
}

/// Backward with the optimizer step fused in: each parameter in `params` is updated by `optimizer`
/// as soon as its gradient is complete and no later backward node reads it, and its gradient is
/// dropped right after, so a full fine-tuning step never holds every gradient at once (peak
/// memory weights + optimizer state + one layer's gradients, instead of + all gradients). The
/// result is bit-identical to `tape.backward(loss)` then `optimizer.update(lrScale:)`: the same
/// per-tensor arithmetic, in another order. Only for steps without gradient clipping (a global norm
/// needs every gradient first) and without accumulation over micro-batches. Parameters that got no
/// gradient are left as they are, as `update` leaves them.
/// `observe`, when given, sees each parameter with its complete gradient just before its update
/// (the trainer's per-step gradient norms).
public func backwardWithStep(_ tape: Tape, loss: Tensor, optimizer: Optimizer, params: [Tensor], lrScale: Float = 1,
                             observe: ((Tensor) -> Void)? = nil) {
    var byBox: [ObjectIdentifier: Tensor] = [:]
    for t in params { byBox[ObjectIdentifier(t.box)] = t }
    optimizer.beginStep(lrScale: lrScale)
    tape.backward(loss) { box in
        guard let t = byBox[ObjectIdentifier(box)] else { return }
        observe?(t)
        optimizer.update(t)
        t.zeroGrad()
    }
    // Parameters outside `params` keep their gradients; those inside whose last reader was skipped
    // (no gradient reached it) have none.
}
