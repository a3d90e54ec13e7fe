// T5's runtime switches: how cross-attention forms its keys and values, whether attention
// probabilities are kept or recomputed, activation checkpointing, and encoder streaming. None of
// them changes what a forward computes beyond fp32 rounding (checkpointing and streaming: not even
// that); they trade FLOPs for memory. The architecture itself is in T5.swift.
import Foundation
import Tensor

extension T5Model {
    /// `.projected`: K = E·Wkᵀ and V = E·Wvᵀ per decoder layer, as transformers does.
    /// `.absorbed`: the projections folded into the queries and the attention output
    /// (`crossAttentionAbsorbed`), no per-layer K/V. `.auto` picks the form with fewer FLOPs for the
    /// number of decoder queries (absorbed for a few label tokens over a long input) and always the
    /// projected form when an adapter sits on the cross-attention K or V weight.
    public enum CrossAttentionMode: Sendable { case auto, projected, absorbed }

    public struct Runtime: Sendable {
        /// How cross-attention forms its keys and values (see `CrossAttentionMode`).
        public var crossAttentionMode: CrossAttentionMode = .auto
        /// Self-attention backward recomputes the probabilities P (one more QKᵀ GEMM and softmax per
        /// head) instead of keeping them from forward: B·H·L² floats per layer. nil (default):
        /// recompute when backbone weights train (full fine-tuning, where weight gradients and
        /// optimizer state already hold four copies of the model); keep them when only a prompt or
        /// adapter trains. A checkpointed self-attention's second run keeps them either way (its
        /// backward follows at once).
        public var recomputeAttentionProbabilities: Bool? = nil
        /// Activation checkpointing of the feed-forward sublayers (norm, FFN, dropout): forward keeps
        /// only each sublayer's input and backward runs the sublayer again, so the FFN hidden states
        /// are not kept. The second run computes no output projection (nothing reads its values), so
        /// it costs one more Wi GEMM per layer. Same gradients, bit for bit. Off by default; on when
        /// `T5Model.checkpointSetting` lists `ffn` (the CLI: PROMPTREPRO_CHECKPOINT).
        public var checkpointFeedForward = T5Model.checkpointSetting?.contains("ffn") ?? false
        /// The same for the self-attention sublayers (norm, Q/K/V, attention, output projection,
        /// dropout): Q, K, V and the attention output are not kept, and backward runs the sublayer
        /// again without its output projection: three more [d → inner] GEMMs and one attention
        /// forward per layer, whose probabilities backward then uses instead of recomputing them.
        /// nil (default): on when backbone weights train (full fine-tuning: t5-base at batch 8 × 256
        /// keeps 4 × 6.3 MB per encoder layer fewer, +8.6 % FLOPs, on top of weights and optimizer
        /// state that already take 2.7 GB), off when only a prompt or adapter trains.
        /// `T5Model.checkpointSetting` (PROMPTREPRO_CHECKPOINT) overrides it.
        public var checkpointSelfAttention: Bool? = T5Model.checkpointSetting.map { $0.contains("attention") }
        /// Encoder passes that record no gradients and draw no dropout (evaluation, generation)
        /// stream the batch through the encoder in chunks of about `streamTokens` rows (never less
        /// than one sequence), so that per-layer temporaries (Q/K/V, FFN hidden) scale with the
        /// chunk, not the batch. Sequences do not interact in the encoder, so its output is the whole
        /// batch's. The pass runs layer by layer over the chunks, so each layer's weights are packed
        /// for the GEMM once, not once per chunk (`encode`). The decoder runs on the whole batch
        /// (its few query rows per sequence would otherwise re-read every decoder weight per chunk).
        /// 0 turns streaming off.
        public var streamTokens: Int = 512
        /// The encoder's linear layers compute only each row's positions up to its last real key
        /// (`PaddedRows`; own kernels). The loss and every gradient that reaches a real position or
        /// a weight keep their bits (tested), but the encoder states at padding positions are 0
        /// after a linear layer instead of transformers' values, so this is off by default (a
        /// forward that returns them, as parity and `promptrepro forward` do) and on for a
        /// training loss (`withEncoderOverRealPositions`).
        public var encoderSkipsPadding = false
        /// A greedy decode of at least `threads` × this many rows decodes one contiguous group of
        /// rows per thread, each group's products and attention on its thread alone
        /// (`T5Model.decodingRowGroups`); 0 turns it off. Same bits: every row's products, norms
        /// and attention are the same chains of operations whichever rows share its batch and
        /// however a product is split over threads. A step's weight products are compute-bound
        /// and its attention reads keys and values at the memory's rate; with one group per
        /// thread the two phases of different groups overlap instead of taking turns, and no
        /// product is split, so no step waits at a product's end for the other thread. The cost:
        /// every group reads all weights once a step. nil (default): PROMPTREPRO_DECODE_GROUP_ROWS
        /// if set, else `T5Model.defaultDecodingGroupMinRows` for the GEMM kernel.
        public var decodingGroupMinRows: Int? = T5Model.decodingGroupRowsSetting
        public init() {}
    }

    public var crossAttentionMode: CrossAttentionMode {
        get { runtime.crossAttentionMode }
        set { runtime.crossAttentionMode = newValue }
    }
    public var recomputeAttentionProbabilities: Bool? {
        get { runtime.recomputeAttentionProbabilities }
        set { runtime.recomputeAttentionProbabilities = newValue }
    }
    public var checkpointFeedForward: Bool {
        get { runtime.checkpointFeedForward }
        set { runtime.checkpointFeedForward = newValue }
    }
    /// Whether self-attention sublayers are checkpointed now (`Runtime.checkpointSelfAttention`,
    /// its nil resolved against the parameters that train); setting it fixes it either way.
    public var checkpointSelfAttention: Bool {
        get { runtime.checkpointSelfAttention ?? backboneTrains }
        set { runtime.checkpointSelfAttention = newValue }
    }
    public var streamTokens: Int {
        get { runtime.streamTokens }
        set { runtime.streamTokens = newValue }
    }
    public var encoderSkipsPadding: Bool {
        get { runtime.encoderSkipsPadding }
        set { runtime.encoderSkipsPadding = newValue }
    }

    /// Whether self-attention backward recomputes P (`Runtime.recomputeAttentionProbabilities`,
    /// its nil resolved); a checkpointed sublayer's second run keeps P whatever this says.
    public var recomputesProbabilities: Bool {
        runtime.recomputeAttentionProbabilities ?? backboneTrains
    }

    /// Whether any backbone weight trains (full fine-tuning), which the runtime's nil defaults follow.
    var backboneTrains: Bool { parameters.contains { $0.tensor.requiresGrad } }

    /// `Runtime.decodingGroupMinRows` of new models: PROMPTREPRO_DECODE_GROUP_ROWS if set to a
    /// number ≥ 0 (0: off), else nil (by kernel).
    public static let decodingGroupRowsSetting: Int? = {
        if let v = ProcessInfo.processInfo.environment["PROMPTREPRO_DECODE_GROUP_ROWS"], let n = Int(v), n >= 0 { return n }
        return nil
    }()

    /// Rows per group from which a decode runs in row groups when nothing else is set: 16 with
    /// the own kernels (AVX2 and AVX-512), off (0) with OpenBLAS (`decodingRowGroups` never
    /// groups there). Measured in ABBA pairs of `bench-one --workload generate --batch 56
    /// --seq-len 156 --prompt 100 --new-tokens 128 --alternate decode-groups` (docs/performance.md):
    /// AMD Zen 1 (family 23 model 1, AVX2 kernel; "Thirteenth session"), Zen 3 (family 25 model 1,
    /// AVX2 kernel: the decode 1.04× faster) and Zen 4 (family 25 model 17, AVX-512 kernel on
    /// half-width units: 1.07×, 5.84 against 6.31 s; "Twenty-fifth session"). Not measured on
    /// full-width AVX-512 hosts (Zen 5, Intel), where a core's products run about twice as fast
    /// again, so each group's own read of every weight a step may leave the steps memory-bound
    /// (PROMPTREPRO_DECODE_GROUP_ROWS=0 turns the groups off to compare).
    public static func defaultDecodingGroupMinRows(_ kern: GEMMKernel) -> Int { kern == .openblas ? 0 : 16 }

    /// Sublayers new models checkpoint (`ffn`, `attention`); nil: the defaults (`Runtime`). The CLI
    /// sets it from PROMPTREPRO_CHECKPOINT.
    nonisolated(unsafe) public static var checkpointSetting: Set<String>? = nil

    /// Parses a comma-separated sublayer list (ffn, attention; all = both; none = no sublayer),
    /// which replaces the defaults, or `auto` or nothing (nil: the defaults); throws naming unknown
    /// ones.
    public static func checkpointSublayers(_ raw: String) throws -> Set<String>? {
        let parts = Set(raw.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }.filter { !$0.isEmpty })
        if parts.isEmpty || parts == ["auto"] { return nil }
        let unknown = parts.subtracting(["ffn", "attention", "all", "none"])
        if !unknown.isEmpty || (parts.contains("none") && parts.count > 1) {
            throw TensorError.invalidArgument(op: "checkpointing", detail: "unknown sublayer list '\(raw)'; use ffn, attention, all, none or auto")
        }
        return parts.contains("all") ? ["ffn", "attention"] : parts.subtracting(["none"])
    }

    /// Runs `body` (a forward whose only output is its loss, as a training step's) with
    /// `encoderSkipsPadding` on. Errors: rethrows `body`'s.
    public func withEncoderOverRealPositions<T>(_ body: () throws -> T) rethrows -> T {
        try withEncoderSkipsPadding(true, body)
    }

    /// Runs `body` with `encoderSkipsPadding` set to `skips`, then restores it. Errors: rethrows `body`'s.
    func withEncoderSkipsPadding<T>(_ skips: Bool, _ body: () throws -> T) rethrows -> T {
        let saved = runtime.encoderSkipsPadding
        runtime.encoderSkipsPadding = skips
        defer { runtime.encoderSkipsPadding = saved }
        return try body()
    }

    /// One chunk of a streamed encoder pass: batch `rows` (indices into the batch) run over their
    /// first `length` positions.
    public struct StreamChunk: Equatable, Sendable {
        public let rows: [Int]
        public let length: Int
        public init(rows: [Int], length: Int) { self.rows = rows; self.length = length }
    }

    /// The positions a streamed encoder pass runs a row of real length `n` over, in a batch padded
    /// to `padded`: `n` rounded up to a multiple of 8, or `padded` when that is not shorter than
    /// `padded`. Run over these positions, the row's real positions get the bits they get in the
    /// padded batch (`encode`; `softmaxSafeLength`, the rule the training attention's cut follows too).
    public static func bucketLength(real n: Int, padded: Int) -> Int { softmaxSafeLength(real: n, padded: padded) }

    /// Whether a streamed pass over `batch` rows of `length` positions buckets them by length: with
    /// the own GEMM kernels (rows independent, `BLAS.usesOwnKernel`) and at least 32 rows of tokens
    /// (so the whole batch's products run them too).
    static func bucketsByLength(batch: Int, length: Int) -> Bool { BLAS.kernel != .openblas && batch * length >= 32 }

    /// The chunks of a streamed encoder pass over a batch with key mask [B, L] (one chunk of every
    /// row over all L positions when streaming does not apply: a recording tape, dropout, B = 1 or
    /// `streamTokens` 0).
    /// With the own GEMM kernels (whose products give each row the same bits whatever the other
    /// rows, `BLAS.usesOwnKernel`) and at least 32 rows of tokens, rows are bucketed by length: in
    /// ascending order of `bucketLength`, each chunk takes rows while rows × its length stays within
    /// `streamTokens` (at least one row) and runs over its longest row's `bucketLength` positions,
    /// so padding is computed only up to the chunk's longest row. Otherwise (OpenBLAS) chunks are
    /// consecutive rows over all L positions, about `streamTokens` tokens each.
    public func streamChunks(mask: Tensor, drop: DropoutContext) -> [StreamChunk] {
        let (batch, length) = (mask.shape[0], mask.count / max(mask.shape[0], 1))
        guard streamTokens > 0, batch > 1, !Tape.isRecording, !drop.training else { return [StreamChunk(rows: Array(0..<batch), length: length)] }
        guard Self.bucketsByLength(batch: batch, length: length) else {
            let n = max(1, min(batch, batch * length / streamTokens))
            return (0..<n).map { c in StreamChunk(rows: Array((c * batch / n)..<((c + 1) * batch / n)), length: length) }
        }
        let need = realKeyLengths(mask).map { Self.bucketLength(real: $0, padded: length) }
        let order = (0..<batch).sorted { need[$0] != need[$1] ? need[$0] < need[$1] : $0 < $1 }
        var chunks: [StreamChunk] = [], rows: [Int] = []
        for r in order {
            if !rows.isEmpty, (rows.count + 1) * need[r] > streamTokens {
                chunks.append(StreamChunk(rows: rows, length: need[rows.last!]))
                rows = []
            }
            rows.append(r)
        }
        chunks.append(StreamChunk(rows: rows, length: need[rows.last!]))
        return chunks
    }

    /// Whether this cross-attention layer runs in the absorbed form for `queries` decoder rows.
    func absorbsCross(_ a: Attn, queries: Int, keys: Int) -> Bool {
        switch crossAttentionMode {
        case .projected: return false
        case .absorbed, .auto:
            if adapters[a.k.name] != nil || adapters[a.v.name] != nil { return false }
            return crossAttentionMode == .absorbed
                || crossAttentionAbsorbedIsCheaper(queries: queries, keys: keys, model: config.dModel, inner: config.innerDim,
                                                   heads: config.numHeads)
        }
    }

    /// Whether cross-attention runs in the absorbed form for `queries` decoder rows over `keys`
    /// encoder rows (no adapters attached).
    public func crossAttentionIsAbsorbed(queries: Int, keys: Int) -> Bool {
        decoderBlocks.first.map { absorbsCross($0.crossAttn!, queries: queries, keys: keys) } ?? false
    }
}
