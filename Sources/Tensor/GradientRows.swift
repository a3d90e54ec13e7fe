// The rows of an activation's gradient that backward needs, when not all of them.
//
// A soft prompt prepended to frozen token embeddings (PT, DPT, Residual PT, LoPT) trains only
// through the prompt's positions of the first layer's input: `concat` marks the injected
// embeddings [B, n + L, d] as needing their gradient at positions 0 ..< n only. Ops that act on
// each row alone pass the mark on to their output while nothing of theirs trains (dropout, a
// norm or a linear layer with frozen weights, attention whose keys and values need no gradient),
// and their backward then computes their input's gradient at those rows only: in a T5 or GPT-2
// PT step, the first layer's Q/K/V input gradients (dX = dQ·W_q and its K, V twins), its norm's,
// and the attention's dQ over the prompt's queries and dK, dV over the prompt's keys. Everything
// after the first attention (whose keys and values do need gradients) needs every row. t5-small
// train step (batch 8, 256 + 100 positions): 5.5 of 259 GFLOP left out.
//
// Why the computed rows keep their bits: with the own GEMM kernels every row (or, for Aᵀ·B, every
// column of A) of a product is the same chain of FMAs whatever the other rows, and the norm is a
// per-row loop. Rows left out of an input's gradient hold values that nothing reads: a
// gradient's consumer reads only the rows its own mark names, and every op that does not know
// about marks gives its output no mark, so it reads and writes all rows (always correct).
// Not applied with OpenBLAS as the kernel, or when a batch row's marked span is shorter than 32
// positions (a product of fewer rows might run OpenBLAS where the whole one runs the own kernel:
// `BLAS.usesOwnKernel`).

/// Positions `positions` of each of `batch` rows of length `length`: the rows of a
/// [batch, length, ·] tensor's gradient that backward needs (see GradientRows.swift).
public struct GradientRows: Equatable, Sendable {
    public let batch: Int, length: Int
    public let positions: Range<Int>

    /// false: nothing is marked (tests compare both ways; the marked rows' bits agree).
    nonisolated(unsafe) public static var isEnabled = true

    /// nil unless `positions` is a proper, non-empty part of 0 ..< length.
    public init?(batch: Int, length: Int, positions: Range<Int>) {
        guard positions.lowerBound >= 0, positions.upperBound <= length, !positions.isEmpty,
              positions.count < length else { return nil }
        (self.batch, self.length, self.positions) = (batch, length, positions)
    }

    /// Whether a tensor of `shape` is [batch, length, ·].
    func fits(_ shape: [Int]) -> Bool { shape.count == 3 && shape[0] == batch && shape[1] == length }

    /// The marked positions of each batch row within its computed rows `live[b]` (flat rows of
    /// [batch · length] from the row's first position, as `PaddedRows` gives them; every position
    /// when `live` is nil), as flat row ranges; nil when some batch row's span is shorter than 32
    /// positions, or the kernel is OpenBLAS (`span(within:)`; then all rows are computed).
    func rowRanges(live: [Range<Int>]? = nil) -> [Range<Int>]? {
        var out: [Range<Int>] = []
        for b in 0..<batch {
            let base = b * length
            guard let r = span(within: live.map { $0[b].upperBound - base } ?? length) else { return nil }
            out.append((base + r.lowerBound)..<(base + r.upperBound))
        }
        return out
    }

    /// Whether backward computes the marked rows alone: marks on, the own kernels, at least 32
    /// positions (before padding) in each batch row; otherwise every row.
    public var narrowsProducts: Bool { GradientRows.isEnabled && rowRanges() != nil }

    /// The rows of 0 ..< `rows` outside `ranges` (ascending, disjoint).
    static func gaps(_ ranges: [Range<Int>], rows: Int) -> [Range<Int>] {
        var out: [Range<Int>] = [], at = 0
        for r in ranges {
            if r.lowerBound > at { out.append(at..<r.lowerBound) }
            at = max(at, r.upperBound)
        }
        if at < rows { out.append(at..<rows) }
        return out
    }

    /// The marked positions within 0 ..< `extent` (one batch row's computed block of a
    /// product over positions), nil when fewer than 32 or the kernel is OpenBLAS.
    func span(within extent: Int) -> Range<Int>? {
        guard BLAS.kernel != .openblas else { return nil }
        let r = positions.clamped(to: 0..<extent)
        return r.count >= 32 ? r : nil
    }
}

extension Tensor {
    /// The rows of this tensor's gradient that backward needs, nil for all (GradientRows.swift).
    /// Set only while a tape records; read by the backward of the ops that consume the tensor.
    /// After backward, `grad` of a marked activation is complete at the marked rows only (the
    /// others hold partial sums or zeros): read it there, or turn `GradientRows.isEnabled` off.
    public internal(set) var gradientRows: GradientRows? {
        get { box.gradientRows }
        set { box.gradientRows = GradientRows.isEnabled ? newValue.flatMap { $0.fits(shape) ? $0 : nil } : nil }
    }

    /// Passes `source`'s mark to this output of a row-wise op (same [batch, length] leading axes)
    /// whose other inputs need no gradient; called only while recording.
    func inheritGradientRows(_ source: Tensor) {
        if let r = source.gradientRows { gradientRows = r }
    }
}
