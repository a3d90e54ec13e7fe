// Per-run efficiency (issue #20 item 7; DePT's headline claim is time and memory): what a run
// cost, written into `TrainResult.extras` and stored one row per name in `run_metrics`.
// Names and units (docs/formats.md "run_metrics"):
//   peak_rss_bytes    bytes   peak resident set of the process since the run started (VmHWM)
//   seconds_per_step  s       mean wall seconds of an optimizer step (StepRecord.seconds)
//   train_seconds     s       Σ optimizer-step seconds (batch building, forward, backward, update)
//   eval_seconds      s       Σ seconds in evaluation (validation, and the selection split when
//                             selecting on train-dev / val-half): decode or verbaliser scoring
//   trainable_params  count   the method's trainable scalars
//   artifact_bytes    bytes   size of the run's artifact file when one was written, else 4 × Σ
//                             state tensor sizes (fp32 data, no safetensors header)
//   train_flops       FLOP    GEMM FLOPs executed in every optimizer step (forward + backward,
//                             2·m·n·k each; products recomputed under PROMPTREPRO_CHECKPOINT count)
//   flops_per_step    FLOP    train_flops / optimizer steps
//   eval_flops        FLOP    GEMM FLOPs of every evaluation (encoder, decoding steps or scoring)
//   decode_flops      FLOP    the part of eval_flops spent in greedy decodes (`DecodeTraffic`)
//   decode_weight_flops FLOP  of decode_flops, the steps' weight products (2 × batch rows ×
//                             the weight values a step reads; `DecodeTraffic.Totals.weightFlops`)
//   decode_read_bytes bytes   what those decodes' steps read at least once (weights, K/V; the
//                             model of `T5Model.decodingStepReadBytes`)
//   decode_attention_read_bytes bytes  of decode_read_bytes, what the attention read (K/V,
//                             absorbed encoder states; `T5Model.decodingStepAttentionReadBytes`)
//   decode_seconds    s       wall seconds of those decodes (part of eval_seconds)
//   decode_row_steps  count   rows computed × steps of those decodes: each step counts the rows
//                             its batch ran, finished rows included (`DecodeTraffic.Totals.rowSteps`)
// Running totals live in `result.extras` while the run goes, so they travel in the epoch
// checkpoint and a resumed run counts the steps and evaluations before the resume point too.
import Foundation
import Methods
import Tensor

struct EfficiencyMeter {
    private var stepFlops0 = 0
    private var evalStart = Date()

    /// Starts a run: the process's peak RSS is reset so it measures this run (see `PeakMemory`).
    init() { PeakMemory.reset() }

    mutating func stepBegan() { stepFlops0 = BLAS.flops }

    /// After a completed optimizer step: adds its GEMM FLOPs to the running total.
    func stepEnded(_ result: inout TrainResult) {
        result.extras = result.extras ?? [:]
        result.extras!["train_flops", default: 0] += Double(BLAS.flops - stepFlops0)
    }

    /// The run metrics of greedy decodes (names in the header above) from their totals.
    static func decodeMetrics(_ d: DecodeTraffic.Totals) -> [(String, Double)] {
        [("decode_flops", Double(d.flops)), ("decode_weight_flops", Double(d.weightFlops)),
         ("decode_read_bytes", Double(d.readBytes)), ("decode_attention_read_bytes", Double(d.attentionReadBytes)),
         ("decode_seconds", d.seconds), ("decode_row_steps", Double(d.rowSteps))]
    }

    /// Runs one evaluation, adding its wall seconds to `eval_seconds`.
    func evaluation<T>(_ result: inout TrainResult, _ body: () throws -> T) rethrows -> T {
        let t0 = Date(), flops0 = BLAS.flops, decode0 = DecodeTraffic.snapshot()
        let value = try body()
        let decode = DecodeTraffic.snapshot().since(decode0)
        result.extras = result.extras ?? [:]
        result.extras!["eval_seconds", default: 0] += Date().timeIntervalSince(t0)
        result.extras!["eval_flops", default: 0] += Double(BLAS.flops - flops0)
        for (name, amount) in Self.decodeMetrics(decode) { result.extras![name, default: 0] += amount }
        return value
    }

    /// At the end of a finished run (after its artifact, if any, was written): the remaining names.
    func finish(_ result: inout TrainResult, state: [String: Tensor], artifactPath: String?) {
        var e = result.extras ?? [:]
        let seconds = (result.steps ?? []).map(\.seconds)
        e["train_seconds"] = seconds.reduce(0, +)
        e["seconds_per_step"] = seconds.isEmpty ? 0 : seconds.reduce(0, +) / Double(seconds.count)
        e["train_flops"] = e["train_flops"] ?? 0
        e["flops_per_step"] = seconds.isEmpty ? 0 : e["train_flops"]! / Double(seconds.count)
        e["eval_seconds"] = e["eval_seconds"] ?? 0
        e["eval_flops"] = e["eval_flops"] ?? 0
        for (name, _) in Self.decodeMetrics(DecodeTraffic.Totals()) { e[name] = e[name] ?? 0 }
        e["trainable_params"] = Double(result.trainableParams)
        if let path = artifactPath, let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int {
            e["artifact_bytes"] = Double(size)
        } else {
            e["artifact_bytes"] = Double(4 * state.values.reduce(0) { $0 + $1.count })
        }
        // A resumed run: the peak of the process that ran the epochs before the resume counts too.
        if let peak = PeakMemory.bytes { e["peak_rss_bytes"] = max(peak, e["peak_rss_bytes"] ?? 0) }
        result.extras = e
    }
}

/// The process's peak resident set size (Linux /proc/self/status VmHWM), resettable through
/// /proc/self/clear_refs ("5", Linux ≥ 4.0). Where that file cannot be written, the peak is the
/// process's so far: in a worker that ran other runs before, the largest of them.
public enum PeakMemory {
    /// VmHWM of /proc/self/status in bytes; nil where /proc does not give it.
    public static var hwmBytes: Double? {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = s.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
              let kb = Double(line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first ?? "") else { return nil }
        return kb * 1024
    }

    /// VmHWM in bytes; getrusage's ru_maxrss (never reset) where /proc is absent; nil if neither.
    public static var bytes: Double? {
        if let hwm = hwmBytes { return hwm }
        var u = rusage()
        #if os(Linux)
        guard getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &u) == 0 else { return nil }
        return Double(u.ru_maxrss) * 1024  // kilobytes on Linux
        #else
        guard getrusage(RUSAGE_SELF, &u) == 0 else { return nil }
        return Double(u.ru_maxrss)         // bytes on macOS
        #endif
    }

    /// Resets VmHWM to the current RSS; false where the kernel does not allow it.
    @discardableResult
    static func reset() -> Bool {
        guard let h = FileHandle(forWritingAtPath: "/proc/self/clear_refs") else { return false }
        defer { try? h.close() }
        return (try? h.write(contentsOf: Data("5".utf8))) != nil
    }
}

/// Floors of a run's greedy decodes from its run metrics (issue #21; `bench-e2e`'s `bound`):
/// seconds no decode with these FLOPs and bytes can beat at a GEMM rate of `gflops` (GFLOP/s)
/// and a memory read rate of `gbs` (GB/s, 10⁹ bytes).
/// - `overlapped`: the longer of all the decode's FLOPs at the GEMM rate and all its bytes at the
///   read rate (`decode_bound_seconds`): reads and products overlapping completely.
/// - `sequential`: a step's two phases one after the other (`decode_sequential_bound_seconds`),
///   each at its own roofline: the weight products (`weightFlops`, over the weights' bytes,
///   `readBytes − attentionReadBytes`), then the attention and the rest (`flops − weightFlops`,
///   over `attentionReadBytes`). Never below `overlapped`, since max(a, b) + max(c, d) ≥
///   max(a + c, b + d).
/// Inputs in FLOPs and bytes, as the run metrics `decode_flops`, `decode_weight_flops`,
/// `decode_read_bytes` and `decode_attention_read_bytes` hold them; rates must be positive.
public struct DecodeBounds: Equatable, Sendable {
    public let overlapped: Double
    public let sequential: Double

    public init(flops: Double, weightFlops: Double, readBytes: Double, attentionReadBytes: Double, gflops: Double, gbs: Double) {
        let compute = { (f: Double) in f / (gflops * 1e9) }, memory = { (b: Double) in b / (gbs * 1e9) }
        overlapped = max(compute(flops), memory(readBytes))
        sequential = max(compute(weightFlops), memory(readBytes - attentionReadBytes))
            + max(compute(flops - weightFlops), memory(attentionReadBytes))
    }
}
