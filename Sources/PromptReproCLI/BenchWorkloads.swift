import ArgumentParser
import Foundation
import Methods
import Models
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
    @Option var repeats: Int = 5
    @Option var threads: Int?
    @Option var seqLen: Int = 256
    @Option var batch: Int?
    @Option var prompt: Int = 100

    func run() throws {
        Parallel.configure(threads: threads)
        guard case .t5(let cfg) = Architectures.known[shape] ?? .t5(Architectures.t5Small) else { throw ValidationError("T5 shapes only") }
        let model = try T5Model.random(config: cfg, key: RNGKey(seed: 1))
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
        var step = 0
        func once() throws {
            switch workload {
            case "train", "ft":
                let tape = Tape()
                let drop = DropoutContext(key: key.derive("dropout").derive(UInt64(step)), p: 0.1)
                let out = try tape.record {
                    try model.forward(inputIds: ids, attentionMask: mask, labels: labels, batch: b, prompt: workload == "ft" ? nil : p, drop: drop)
                }
                tape.backward(out.loss)
                opt.update()
                for t in params { t.zeroGrad() }
            case "eval":
                _ = try model.forward(inputIds: ids, attentionMask: mask, labels: labels, batch: b, prompt: p, drop: .eval)
            case "generate":
                let (e, m) = try model.promptedInputs(inputIds: ids, attentionMask: mask, batch: b, prompt: p)
                _ = try model.generate(embeds: consume e, mask: m, maxNewTokens: 3)
            default: throw ValidationError("unknown workload \(workload)")
            }
            step += 1
        }
        try once()  // warm-up
        AttentionClock.seconds = 0
        var times: [Double] = []
        for _ in 0..<max(1, repeats) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try once()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        times.sort()
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let S = seqLen + (workload == "ft" ? 0 : prompt)
        let flops = BenchFlops.t5(cfg, batch: b, encoderLength: S, decoderLength: 3, workload: workload)
        let med = times[times.count / 2]
        let obj: [String: Any] = ["shape": shape, "workload": workload, "batch": b, "encoder_tokens": S, "seconds_median": med,
                                  "seconds_all": times, "peak_rss_mb": Double(usage.ru_maxrss) / 1024, "gflop": flops / 1e9,
                                  "gflops_per_s": flops / med / 1e9, "threads": Parallel.threads,
                                  "attention_share": AttentionClock.seconds / times.reduce(0, +)]
        print(String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self))
    }
}

/// Matrix-multiply FLOPs (2·m·n·k per GEMM) of a T5 step; backward of frozen weights counts only
/// activation gradients (one GEMM per linear, two per attention product), FT adds weight gradients.
enum BenchFlops {
    static func t5(_ c: T5Config, batch B: Int, encoderLength S: Int, decoderLength T: Int, workload: String) -> Double {
        let d = Double(c.dModel), inner = Double(c.innerDim), ff = Double(c.dFf) * (c.isGated ? 2 : 1), H = Double(c.numHeads), dk = Double(c.dKv)
        let b = Double(B), s = Double(S), t = Double(T), V = Double(c.vocabSize)
        let encLinear = 2 * b * s * (4 * d * inner + 2 * d * ff / (c.isGated ? 2 : 1) * (c.isGated ? 1.5 : 1))
        let encAttn = 2 * 2 * b * H * s * s * dk
        let crossKV = 2 * 2 * b * s * d * inner  // cross-attention K and V of the encoder states, per decoder layer
        let decLinear = 2 * b * t * (6 * d * inner + 2 * d * ff / (c.isGated ? 2 : 1) * (c.isGated ? 1.5 : 1)) + crossKV
        let decAttn = 2 * 2 * b * H * (t * t + t * s) * dk
        let head = 2 * b * t * d * V
        let encoderForward = Double(c.numLayers) * (encLinear + encAttn)
        let decoderForward = Double(c.decoderLayers) * (decLinear + decAttn) + head
        switch workload {
        case "eval": return encoderForward + decoderForward
        case "generate":
            // cross K/V once, then 3 one-token steps (the per-token share of the decoder without them)
            let crossAll = Double(c.decoderLayers) * crossKV
            return encoderForward + crossAll + 3 * ((decoderForward - crossAll) / t)
        case "train":
            // backward: dX GEMMs (= forward linear FLOPs) + attention backward (2× its forward)
            return 2 * (encoderForward + decoderForward) + Double(c.numLayers) * encAttn + Double(c.decoderLayers) * decAttn
        default:  // ft: plus weight gradients (= forward linear FLOPs)
            return 3 * (encoderForward + decoderForward) + Double(c.numLayers) * encAttn + Double(c.decoderLayers) * decAttn
        }
    }
}
