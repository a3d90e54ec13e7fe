// What greedy decoding read and computed, process-wide, for the end-to-end bench's memory bound
// (issue #21; docs/performance.md, "Fifth session"): a decoding step multiplies a few rows (one
// query per batch row) by every decoder weight and the LM head and attends over every row's cached
// keys and values, so it does few FLOPs per byte, and on a host whose memory reads slowly its time
// is set by the bytes. The model's decode adds each step's bytes (`T5Model.decodingStepReadBytes`)
// and the GEMM FLOPs and wall seconds of its whole decode; the trainer stores the differences
// around each evaluation as the run metrics `decode_read_bytes`, `decode_flops` and `decode_seconds`.
import Foundation

public enum DecodeTraffic {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var bytes = 0, flops = 0
    nonisolated(unsafe) private static var wall = 0.0

    /// Bytes the decoding steps run in this process so far read at least once (the per-step model
    /// of `T5Model.decodingStepReadBytes`), and the GEMM FLOPs of those decodes (2·m·n·k per
    /// product, `BLAS.flops` around each decode, so its cross-attention projections too).
    public static var readBytes: Int { lock.withLock { bytes } }
    public static var decodeFlops: Int { lock.withLock { flops } }
    /// Wall seconds of those decodes (each from its set-up to its last step).
    public static var seconds: Double { lock.withLock { wall } }

    /// Adds one decode's totals.
    public static func add(readBytes b: Int, flops f: Int, seconds s: Double) {
        lock.withLock {
            bytes += b
            flops += f
            wall += s
        }
    }
}
