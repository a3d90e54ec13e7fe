// Activations that backward reads but forward need not keep, because they are cheap to compute
// again, bit for bit, from tensors the tape keeps anyway.
//
// The case it serves: a norm's output y feeds linear layers whose weights train (full
// fine-tuning). Their weight gradients dW = gᵀ·y read y, so the tape used to keep one [rows, d]
// buffer per norm on top of the norm's input x, which the norm's own backward keeps. A norm now
// attaches a `Rematerialization` to y (its input, weight and per-row statistics, not y itself);
// `linear` keeps that instead of y when it needs y only for dW, and backward computes y again
// (one pass over x, no GEMM) when the first of its nodes runs, sharing it with the others until
// the last has run. t5-base FT at batch 8 × 256: two [8·256, 768] buffers per encoder layer fewer.
import Foundation

/// A recipe for an activation's values: computed on first demand in backward, shared by every
/// node registered with `register()`, released when the last has called `take()`.
/// The recipe must give the forward's values bit for bit (the same expression per element).
public final class Rematerialization {
    private let recompute: () -> Tensor
    private var value: Tensor?
    private var uses = 0
    /// Times the values were computed again (for tests).
    public private(set) var recomputations = 0

    /// `recompute` returns a fresh tensor holding the activation's values.
    public init(recompute: @escaping () -> Tensor) { self.recompute = recompute }

    /// A node that will call `take()` once in backward.
    func register() { uses += 1 }

    /// The values, computed again unless another registered node still holds them; released
    /// once every registered node has taken them.
    func take() -> Tensor {
        let v: Tensor
        if let value { v = value } else { v = recompute(); recomputations += 1 }
        uses -= 1
        value = uses > 0 ? v : nil
        return v
    }
}
