import Foundation
import Support
import Tensor

/// One per-head attention product timed in `bench`'s sgemm rounds (issue #21 item 1: our SGEMM
/// ≥ 0.9 × the best reference "at the bench shapes and at the per-head attention shapes"). The
/// shapes are the t5-small PT train step's and eval forward's self-attention: batch 8 × 8 heads
/// = 64 units over 356 positions (256 tokens and the 100 prompt rows), head width 64, in the
/// layouts `Attention.swift` reads and writes: Q, K, V, dO and the output are [batch, 356, 8·64]
/// with a unit's head a 64-column slice (ld 512), P is [units, 356, 356]. The three forms cover
/// all five of a layer's per-head products (the backward's dP = dO·Vᵀ is the scores' form, dQ =
/// dS·K the values', dK = dSᵀ·Q the transposed one).
///
/// Ours runs as the attention runs it: `Parallel.units` over the 64 units, each `BLAS.sgemm`
/// serial inside its unit (its kernel chosen by `BLAS.usesOwnKernel`, the own one at these
/// sizes). OpenBLAS runs the same units and layouts single-threaded per unit
/// (`BLAS.sgemmSerial(own: false)`); torch runs `torch.matmul` on the 4-D views transformers'
/// T5 attention multiplies (bench/pytorch_reference.py, `--child gemm --attention`).
struct AttentionProduct {
    /// m×n×k with the form as `bench-gemm` names shapes (no suffix: A·Bᵀ; `:nn` A·B; `:tn` Aᵀ·B).
    let name: String
    /// What the product is in the attention.
    let product: String
    let transA: Bool, transB: Bool

    static let batch = 8, heads = 8, positions = 356, width = 64
    static let all = [
        AttentionProduct(name: "356x356x64", product: "scores Q·Kᵀ per head (and the backward's dO·Vᵀ)", transA: false, transB: true),
        AttentionProduct(name: "356x64x356:nn", product: "P·V per head (and the backward's dS·K)", transA: false, transB: false),
        AttentionProduct(name: "356x64x356:tn", product: "Pᵀ·dO per head (and dSᵀ·Q), the backward", transA: true, transB: false),
    ]

    var units: Int { Self.batch * Self.heads }
    var m: Int { Self.positions }
    var n: Int { transB ? Self.positions : Self.width }
    var k: Int { transB ? Self.width : Self.positions }
    /// FLOPs of one call (all units): 2·m·n·k per unit.
    var flops: Double { 2 * Double(units) * Double(m) * Double(n) * Double(k) }

    /// A, B and C of all units: the rows of heads [batch, positions, heads·width] or the units'
    /// P [units, positions, positions], uniform in [−1, 1] (P in [0, 1]), fixed seeds.
    struct Operands { let a: Tensor, b: Tensor, c: Tensor }

    func operands() -> Operands {
        let rows = [Self.batch, Self.positions, Self.heads * Self.width]
        let probs = [units, Self.positions, Self.positions]
        if transB {  // Q·Kᵀ: Q and K rows of heads, C the units' scores
            return Operands(a: Tensor.uniform(rows, lo: -1, hi: 1, key: RNGKey(seed: 3)),
                            b: Tensor.uniform(rows, lo: -1, hi: 1, key: RNGKey(seed: 4)), c: Tensor(zeros: probs))
        }
        return Operands(a: Tensor.uniform(probs, lo: 0, hi: 1, key: RNGKey(seed: 5)),
                        b: Tensor.uniform(rows, lo: -1, hi: 1, key: RNGKey(seed: 6)), c: Tensor(zeros: rows))
    }

    /// One call: every unit's product, ours (`openBLAS` false) or OpenBLAS's.
    func run(_ o: Operands, openBLAS: Bool) {
        let t = Self.positions, hd = Self.heads * Self.width, w = Self.width
        let pa = o.a.data, pb = o.b.data, pc = o.c.data
        let (m, n, k, transA, transB) = (m, n, k, transA, transB)
        Parallel.units(units) { u in
            let bi = u / Self.heads, h = u % Self.heads
            let head = bi * t * hd + h * w
            // Scores: A and B are head slices, C the unit's [t, t]. Otherwise A is the unit's P
            // (read transposed for Pᵀ·dO), B and C head slices.
            let (a, lda) = transB ? (pa + head, hd) : (pa + u * t * t, t)
            let (c, ldc) = transB ? (pc + u * t * t, t) : (pc + head, hd)
            if openBLAS {
                BLAS.sgemmSerial(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 1, a: a, lda: lda, b: pb + head, ldb: hd,
                                 beta: 0, c: c, ldc: ldc, own: false)
            } else {
                BLAS.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 1, a: a, lda: lda, b: pb + head, ldb: hd,
                           beta: 0, c: c, ldc: ldc)
            }
        }
    }
}
