// What greedy decoding read and computed, process-wide, for the end-to-end bench's memory bound
// (issue #21; docs/performance.md, "Fifth session" and "Sixth session"): a decoding step multiplies
// a few rows (one query per batch row) by every decoder weight and the LM head and attends over
// every row's cached keys and values, so it does few FLOPs per byte, and on a host whose memory
// reads slowly its time is set by the bytes. The model's decode adds each step's bytes
// (`T5Model.decodingStepReadBytes`, of them the attention's, `decodingStepAttentionReadBytes`), the
// FLOPs of its weight products (2 × batch rows × weight values read, a step), and the GEMM FLOPs
// and wall seconds of its whole decode; the trainer stores the differences around each evaluation
// as run metrics (`decode_*`, docs/formats.md).
import Foundation

public enum DecodeTraffic {
    /// Running totals of the decodes of this process so far.
    public struct Totals: Equatable, Sendable {
        /// Bytes the decoding steps read at least once (the per-step model of
        /// `T5Model.decodingStepReadBytes`).
        public var readBytes = 0
        /// The part of `readBytes` the attention reads: keys and values, or the encoder states of
        /// the absorbed cross-attention (`T5Model.decodingStepAttentionReadBytes`); these reads run
        /// in products of one query row (a few FLOPs per byte), between the weight products.
        public var attentionReadBytes = 0
        /// FLOPs of the steps' weight products: 2 × batch rows × the weight values a step reads
        /// (`readBytes − attentionReadBytes`, ÷ 4), so the products of every decoder weight and the
        /// LM head with the step's rows, not the attention's products or the one-off K/V projections.
        public var weightFlops = 0
        /// GEMM FLOPs of those decodes (2·m·n·k per product, `BLAS.flops` around each decode, so
        /// the attention's products and the cross-attention projections too).
        public var flops = 0
        /// Wall seconds of those decodes (each from its set-up to its last step).
        public var seconds = 0.0
        /// Row-steps computed: at each step, the rows its batch (or row group) ran, finished rows
        /// included (a batch keeps its rows, as transformers' `generate` does). Σ over steps, so
        /// 56 rows decoded for 128 steps are 7168; what a comparison of decoding work between two
        /// implementations counts (`bench-e2e`).
        public var rowSteps = 0

        public init() {}

        /// Each total minus the same total of `earlier` (what ran in between).
        public func since(_ earlier: Totals) -> Totals {
            var d = Totals()
            d.readBytes = readBytes - earlier.readBytes
            d.attentionReadBytes = attentionReadBytes - earlier.attentionReadBytes
            d.weightFlops = weightFlops - earlier.weightFlops
            d.flops = flops - earlier.flops
            d.seconds = seconds - earlier.seconds
            d.rowSteps = rowSteps - earlier.rowSteps
            return d
        }
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var totals = Totals()

    /// All totals, read together.
    public static func snapshot() -> Totals { lock.withLock { totals } }

    /// Adds one decode's totals.
    public static func add(_ decode: Totals) {
        lock.withLock {
            totals.readBytes += decode.readBytes
            totals.attentionReadBytes += decode.attentionReadBytes
            totals.weightFlops += decode.weightFlops
            totals.flops += decode.flops
            totals.seconds += decode.seconds
            totals.rowSteps += decode.rowSteps
        }
    }
}
