import ArgumentParser
import Foundation
import Methods
import Models
import Support
import Tensor
import Training

/// One benchmark workload in its own process (so its peak RSS is its own). Prints one JSON object.
/// Shapes as the issue fixes them: PT train step b8 (encoder 256 + 100 prompt tokens, target 3,
/// dropout 0.1, AdamW), eval forward b32 (teacher-forced loss, dropout off), greedy generation of
/// 3 tokens b32, full fine-tuning step b8; random-init weights of the named architecture.
struct BenchOne: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench-one", abstract: "Run one benchmark workload (used by `bench`).", shouldDisplay: false)
    @Option var shape: String = "t5-small"
    @Option(help: "train | eval | generate | ft") var workload: String = "train"
    @Option(parsing: .unconditional) var repeats: Int = 5
    @Option(parsing: .unconditional, transform: threadCount) var threads: Int?
    @Option(parsing: .unconditional) var seqLen: Int = 256
    @Option(parsing: .unconditional) var batch: Int?
    @Option(parsing: .unconditional) var prompt: Int = 100
    @Option(parsing: .unconditional, help: "Greedy steps of the generate workload (the bench's shape is 3).") var newTokens: Int = 3
    @Option(help: "Cross-attention form: auto | projected | absorbed.") var cross: String = "auto"
    @Flag(help: "Leave out the per-step norms the trainer logs (to measure their cost).") var noStepLog = false
    @Option(help: "Matrix products of eval and generate: fp32 (default) or bf16 (opt-in; CPUs with AVX512-BF16; never in the default rows).")
    var precision: String = "fp32"
    @Option(help: "Kernel of --precision bf16: avx512_bf16 or amx_bf16 (default: amx_bf16 where the CPU has AMX-BF16, else avx512_bf16).")
    var bf16Kernel: String?
    @Option(help: ArgumentHelp("Alternate the timed repetitions between the default form of some code (a C loop; for decode-groups, one group of rows per thread) and its reference form (the Swift loop; the whole batch per product), which give the same bits. Pairs in the order ABBA; prints each form's seconds and the per-pair ratios (an even --repeats).",
                               valueName: "form"))
    var alternate: AlternateForm?

    func validate() throws {
        if alternate != nil, repeats < 2 || repeats % 2 != 0 {
            throw ValidationError("--alternate times the two forms in pairs: --repeats must be even and at least 2, not \(repeats)")
        }
    }

    func run() throws {
        Parallel.configure(threads: threads)
        guard ["fp32", "bf16"].contains(precision) else { throw ValidationError("--precision: fp32 or bf16, not '\(precision)'") }
        if precision == "bf16" {
            guard ["eval", "generate"].contains(workload) else { throw ValidationError("--precision bf16 is an evaluation mode: eval or generate, not \(workload)") }
            guard BF16Products.available else { throw ValidationError("--precision bf16 needs AVX512-BF16, which this CPU lacks") }
        }
        let kernel = try bf16Kernel.map { name -> BF16Products.Kernel in
            guard precision == "bf16" else { throw ValidationError("--bf16-kernel goes with --precision bf16") }
            guard let k = BF16Products.Kernel(rawValue: name) else {
                throw ValidationError("--bf16-kernel: \(BF16Products.Kernel.allCases.map(\.rawValue).joined(separator: " or ")), not '\(name)'")
            }
            guard BF16Products.availableKernels.contains(k) else {
                throw ValidationError("--bf16-kernel \(name) does not run on this CPU (it runs: \(BF16Products.availableKernels.map(\.rawValue).joined(separator: ", ")))")
            }
            return k
        } ?? BF16Products.defaultKernel
        guard case .t5(let cfg) = Architectures.known[shape] else {
            let t5 = Architectures.known.filter { if case .t5 = $0.value { return true } else { return false } }.keys.sorted()
            throw ValidationError("--shape \(shape): not a T5 architecture (one of \(t5.joined(separator: ", ")))")
        }
        let model = try T5Model.random(config: cfg, key: RNGKey(seed: 1))
        switch cross {
        case "auto": model.crossAttentionMode = .auto
        case "projected": model.crossAttentionMode = .projected
        case "absorbed": model.crossAttentionMode = .absorbed
        default: throw ValidationError("--cross: auto, projected or absorbed, not '\(cross)'")
        }
        let b = batch ?? (["eval", "generate"].contains(workload) ? 32 : 8)
        let key = RNGKey(seed: 2)
        var s = PhiloxStream(key.derive("ids"))
        let ids = (0..<(b * seqLen)).map { i in i % seqLen == seqLen - 1 ? Int32(1) : Int32(3 + s.nextInt(below: 31_000)) }
        let mask = [Float](repeating: 1, count: b * seqLen)
        let labels = (0..<(b * 3)).map { i in i % 3 == 2 ? Int32(1) : Int32(3 + s.nextInt(below: 31_000)) }
        let p = Tensor.normal([prompt, cfg.dModel], std: 0.5, key: key.derive("prompt"), requiresGrad: true)
        p.name = "prompt"
        if workload == "ft" { model.setTrainable(true) }
        let params = workload == "ft" ? model.parameters.map(\.tensor) : [p]
        let opt = Optimizer(kind: .adamwTorch, groups: [ParamGroup(tensors: params, lr: workload == "ft" ? 1e-4 : 0.3, weightDecay: 1e-5)])
        opt.recordsNorms = !noStepLog  // as the trainer does for its per-step log
        var step = 0
        func inPrecision<T>(_ body: () throws -> T) throws -> T { precision == "bf16" ? try BF16Products.with(kernel: kernel, body) : try body() }
        func once() throws {
            switch workload {
            case "train", "ft":
                let tape = Tape()
                let drop = DropoutContext(key: key.derive("dropout").derive(UInt64(step)), p: 0.1)
                let out = try tape.record { () -> T5Model.Output in
                    let (e, m) = try Injection(prompt: workload == "ft" ? nil : p).inputs(for: model, inputIds: ids, attentionMask: mask, batch: b)
                    return try model.forward(inputsEmbeds: e, attentionMask: m, labels: labels, drop: drop)
                }
                // No clipping (as the PyTorch reference): the trainer's path for such steps, the
                // optimizer fused into backward (same values as backward, then update).
                backwardWithStep(tape, loss: out.loss, optimizer: opt, params: params)
            case "eval":
                let (e, m) = try Injection(prompt: p).inputs(for: model, inputIds: ids, attentionMask: mask, batch: b)
                _ = try inPrecision { try model.forward(inputsEmbeds: e, attentionMask: m, labels: labels, drop: .eval) }
            case "generate":
                let (e, m) = try Injection(prompt: p).inputs(for: model, inputIds: ids, attentionMask: mask, batch: b)
                if precision == "bf16" {
                    _ = try BF16Products.with(kernel: kernel) { try model.generate(embeds: e, mask: m, maxNewTokens: newTokens) }
                } else {
                    _ = try model.generate(embeds: consume e, mask: m, maxNewTokens: newTokens)  // as before: e freed while decoding
                }
            default: throw ValidationError("unknown workload \(workload)")
            }
            step += 1
        }
        try once()  // warm-up
        if let alternate {  // and one of the other form
            alternate.select(reference: true, model: model)
            try once()
            alternate.select(reference: false, model: model)
        }
        AttentionClock.seconds = 0
        let flops0 = BLAS.flops
        var times: [Double] = [], decodeTimes: [Double] = []
        for rep in 0..<max(1, repeats) {
            alternate?.select(reference: AlternateForm.runsReference(repetition: rep), model: model)
            let t0 = DispatchTime.now().uptimeNanoseconds, decode0 = DecodeTraffic.snapshot()
            try once()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
            decodeTimes.append(DecodeTraffic.snapshot().since(decode0).seconds)
        }
        alternate?.select(reference: false, model: model)
        var alternation = alternate.map { $0.summary(times) }
        if workload == "generate", let a = alternate { alternation?["decode"] = a.summary(decodeTimes) }
        let measured = Double(BLAS.flops - flops0) / Double(max(1, repeats))  // GEMM FLOPs counted per repeat
        times.sort()
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let S = seqLen + (workload == "ft" ? 0 : prompt)
        // Generation: each step is one query row; the model picks its cross-attention form for 3 steps.
        let absorbed = model.crossAttentionIsAbsorbed(queries: workload == "generate" ? newTokens : 3, keys: S)
        let recompute = workload == "ft"  // the only workload whose FLOP count knows about recomputation
        let promptRows = workload == "train" && GradientRows(batch: b, length: S, positions: 0..<prompt)?.narrowsProducts == true ? prompt : nil
        let flops = BenchFlops.t5(cfg, batch: b, encoderLength: S, decoderLength: 3, workload: workload, absorbed: absorbed,
                                  recomputesAttention: recompute && model.checkpointSelfAttention,
                                  recomputesFeedForward: recompute && model.checkpointFeedForward,
                                  recomputesProbabilities: recompute && model.recomputesProbabilities, steps: newTokens,
                                  promptRowsOnly: promptRows)
        let flopsProjected = BenchFlops.t5(cfg, batch: b, encoderLength: S, decoderLength: 3, workload: workload, absorbed: false, steps: newTokens)
        // The work itself, without what checkpointing computes again: what the bounds divide by
        // (recomputation is our memory trade, not work the step needs; the overhead keeps `gflop`,
        // the GEMMs that ran).
        let flopsMinimal = BenchFlops.t5(cfg, batch: b, encoderLength: S, decoderLength: 3, workload: workload, absorbed: absorbed, steps: newTokens,
                                         promptRowsOnly: promptRows)
        let med = medianOf(times)  // the mean of the two middle ones for an even count, as every other median here
        var obj: [String: Any] = ["shape": shape, "workload": workload, "batch": b, "encoder_tokens": S, "seconds_median": med,
                                  "seconds_all": times, "peak_rss_mb": (PeakMemory.hwmBytes ?? Double(usage.ru_maxrss) * 1024) / 1_048_576,
                                  "peak_rss_source": PeakMemory.hwmBytes != nil ? "VmHWM" : "ru_maxrss", "gflop": flops / 1e9, "gflop_minimal": flopsMinimal / 1e9, "gflop_transformers_form": flopsProjected / 1e9,
                                  "gflop_measured": measured / 1e9,
                                  "cross_attention": absorbed ? "absorbed" : "projected", "precision": precision,
                                  "bf16_kernel": precision == "bf16" ? kernel.rawValue : "",
                                  "gflops_per_s": flops / med / 1e9, "threads": Parallel.threads,
                                  "decode_seconds_all": decodeTimes,
                                  "attention_share": AttentionClock.seconds / (times.reduce(0, +) * Double(Parallel.threads)),
                                  "checkpoint": [model.checkpointSelfAttention ? "attention" : nil, model.checkpointFeedForward ? "ffn" : nil]
                                      .compactMap { $0 }.joined(separator: ",")]
        if let alternation { obj["alternate"] = alternation }
        print(String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self))
    }
}

/// Code that runs in two forms giving the same bits: a C loop (the default where the CPU has AVX2
/// and FMA) and the Swift loop it replaced (the reference form, which the bit tests compare it
/// with). `bench-one --alternate` times the two in one process, repetition by repetition, so that a
/// drift of the host's speed (a KVM guest's neighbours) falls on both forms alike; separate
/// processes run minutes apart cannot resolve a few per cent on such hosts.
enum AlternateForm: String, CaseIterable, ExpressibleByArgument {
    /// The attention softmax's row (`SoftmaxExp`; Sources/CGemm/softmax_exp.c).
    case softmaxC = "softmax-c"
    /// Dropout's mask drawn and applied, and applied in backward (`DropoutAVX2`, `DropoutAVX512`;
    /// Sources/CGemm/dropout_mask.c).
    case dropoutC = "dropout-c"
    /// AdamW's update loop (`Optimizer.AdamWAVX2`; Sources/CGemm/adamw.c).
    case adamwC = "adamw-c"
    /// A greedy decode's rows in one group per thread (`T5Model.decodingRowGroups`, groups of at
    /// least PROMPTREPRO_DECODE_GROUP_ROWS rows or the AVX2 kernel's default, 16, also where the
    /// kernel's default is off); the reference form decodes the whole batch, each product split
    /// over the threads.
    case decodeGroups = "decode-groups"

    /// Selects the reference form, or back to the default, in the process or on `model`.
    func select(reference: Bool, model: T5Model) {
        let forced: Bool? = reference ? false : nil
        switch self {
        case .softmaxC: SoftmaxExp.forced = forced
        case .dropoutC: DropoutAVX2.forced = forced; DropoutAVX512.forced = forced
        case .adamwC: Optimizer.AdamWAVX2.forced = forced
        case .decodeGroups: model.runtime.decodingGroupMinRows = reference ? 0 : T5Model.decodingGroupRowsSetting ?? T5Model.defaultDecodingGroupMinRows(.avx2)
        }
    }

    /// Whether timed repetition `repetition` runs the reference form: pairs in the order ABBA
    /// (default, reference, reference, default, …), so neither form always runs first in a pair.
    static func runsReference(repetition: Int) -> Bool { repetition % 4 == 1 || repetition % 4 == 2 }

    /// The forms in the order the repetitions ran them, each form's seconds in that order, their
    /// medians, and per pair (repetitions 2i and 2i + 1) the reference form's seconds ÷ the default
    /// form's: above 1 where the default is faster. (The JSON's other fields, `seconds_median`
    /// among them, are over all repetitions, both forms.)
    func summary(_ seconds: [Double]) -> [String: Any] {
        var def: [Double] = [], ref: [Double] = [], ratios: [Double] = []
        for (i, t) in seconds.enumerated() { if Self.runsReference(repetition: i) { ref.append(t) } else { def.append(t) } }
        for i in stride(from: 0, to: seconds.count - 1, by: 2) {
            let (a, b) = (seconds[i], seconds[i + 1])
            ratios.append(Self.runsReference(repetition: i) ? a / b : b / a)
        }
        let order = seconds.indices.map { Self.runsReference(repetition: $0) ? "reference" : "default" }
        return ["form": rawValue, "order": order, "seconds_default": def, "seconds_reference": ref, "median_default": medianOf(def),
                "median_reference": medianOf(ref), "pair_ratios": ratios, "median_pair_ratio": medianOf(ratios)]
    }
}

/// Matrix-multiply FLOPs (2·m·n·k per GEMM) of a T5 step as executed; backward of frozen weights
/// counts only activation gradients, FT adds weight gradients. Cross-attention is counted in the
/// form the model runs: projected (K/V of the encoder states per decoder layer, as transformers)
/// or absorbed (`crossAttentionAbsorbed`: Wk/Wv folded into queries and output, two GEMMs with the
/// encoder states per head-stacked batch row). `absorbed: false` gives transformers' count.
enum BenchFlops {
    static func t5(_ c: T5Config, batch B: Int, encoderLength S: Int, decoderLength T: Int, workload: String, absorbed: Bool,
                   recomputesAttention: Bool = false, recomputesFeedForward: Bool = false, recomputesProbabilities: Bool = false,
                   steps: Int = 3, promptRowsOnly n: Int? = nil) -> Double {
        let d = Double(c.dModel), inner = Double(c.innerDim), ff = Double(c.dFf), H = Double(c.numHeads), dk = Double(c.dKv)
        let b = Double(B), s = Double(S), V = Double(c.vocabSize)
        let ffn = 2 * 2 * d * ff * (c.isGated ? 1.5 : 1)             // per token: wi (wi_0, wi_1) and wo
        let gemm = { (m: Double, n: Double, k: Double) in 2 * m * n * k }
        // One pass with t decoder query rows (t = T teacher-forced, 1 per generation step).
        struct Parts { var linear = 0.0, attn = 0.0 }                 // attn: products with activations on both sides
        func encoder() -> Parts {
            Parts(linear: Double(c.numLayers) * b * s * (gemm(1, 4 * inner, d) + ffn),
                  attn: Double(c.numLayers) * 2 * gemm(b * H * s, s, dk))
        }
        func decoder(t: Double, selfKeys: Double) -> Parts {
            var p = Parts(linear: b * t * (gemm(1, 4 * inner, d) + gemm(1, 2 * inner, d) + ffn),   // self q,k,v,o; cross q,o
                          attn: 2 * gemm(b * H * t, selfKeys, dk))
            if absorbed {
                p.linear += 2 * gemm(b * t, inner, d)                    // Q̃ = Q_h Wk_h and O = C_h Wv_hᵀ
                p.attn += 2 * gemm(b * H * t, s, d)                      // S = Q̃ Eᵀ and C = Pd E
            } else {
                p.attn += 2 * gemm(b * H * t, s, dk)
            }
            p.linear *= Double(c.decoderLayers)
            p.attn *= Double(c.decoderLayers)
            p.linear += gemm(b * t, V, d)                                // LM head
            return p
        }
        let crossKV = absorbed ? 0 : Double(c.decoderLayers) * 2 * gemm(b * s, inner, d)
        let enc = encoder(), dec = decoder(t: Double(T), selfKeys: Double(T))
        let linear = enc.linear + dec.linear + crossKV, attn = enc.attn + dec.attn
        switch workload {
        case "eval": return linear + attn
        case "generate":
            // encoder, cross K/V once (projected form), then `steps` one-token steps over a growing self cache
            var total = enc.linear + enc.attn + crossKV
            for step in 0..<steps {
                let p = decoder(t: 1, selfKeys: Double(step + 1))
                total += p.linear + p.attn
            }
            return total
        case "train":
            // backward: one activation-gradient GEMM per linear, two per activation product; with
            // `promptRowsOnly` n (a prompt in the first n positions, `GradientRows`), the first
            // layer's Q/K/V input gradients and its attention's dQ, dK and dV leave out the other
            // s − n rows.
            var skipped = 0.0
            if let n {
                let rest = s - Double(n)
                skipped = b * rest * gemm(1, 3 * inner, d) + 3 * gemm(b * H * rest, s, dk)
            }
            return 2 * linear + 3 * attn - skipped
        default:  // ft: plus one weight-gradient GEMM per linear (absorbed: dWk, dWv per head over b·t rows)
            // Checkpointed sublayers run their forward once more in backward, without the output
            // projection (nothing reads its values); a checkpointed self-attention keeps the
            // probabilities of that run, an uncheckpointed one computes them again in backward
            // (one QKᵀ per layer).
            let t = Double(T), L = Double(c.numLayers), Ld = Double(c.decoderLayers)
            var again = 0.0
            if recomputesAttention {
                again += L * (b * s * gemm(1, 3 * inner, d) + 2 * gemm(b * H * s, s, dk))
                again += Ld * (b * t * gemm(1, 3 * inner, d) + 2 * gemm(b * H * t, t, dk))
            } else if recomputesProbabilities {
                again += L * gemm(b * H * s, s, dk) + Ld * gemm(b * H * t, t, dk)
            }
            if recomputesFeedForward { again += (L * b * s + Ld * b * t) * (ffn - gemm(1, d, ff)) }   // wi only
            return 3 * linear + 3 * attn + again
        }
    }
}
