import ArgumentParser
import Foundation
import Methods
import Models
import Training

struct Params: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Trainable-parameter counts from method formulas and architecture configs (no weights needed).",
        discussion: "With --audit, prints every count printed in the DPT and LoPT papers beside ours and exits 1 on any mismatch.")
    @Option(help: "Method: ft, pt, respt, dept, dpt, lopt1, lopt2, lora, probe.") var method: String?
    @Option(help: "Architecture: t5-small, t5-base, t5-large, google/flan-t5-base, gpt2-large, embedded:t5-tiny, or a config.json.")
    var model: String = "t5-base"
    @Option(parsing: .unconditional, help: "Prompt length n.") var n: Int?
    @Option(parsing: .unconditional, help: "Rank r.") var r: Int?
    @Option(parsing: .unconditional, help: "ResPT bottleneck / DePT prompt length m.") var m: Int?
    @Option(parsing: .unconditional, help: "DePT max input length s.") var s: Int?
    @Option(help: "LoRA targets, comma-separated (e.g. q,v).") var targets: String?
    @Flag(help: "Audit every printed count in both papers.") var audit = false

    func run() throws {
        if audit {
            let rows = try ParameterAudit.rows()
            print("| source | row | printed | ours | ok | note |\n|---|---|---|---|---|---|")
            for r in rows {
                print("| \(r.source) | \(r.row) | \(r.printed) | \(r.oursText) | \(r.ours == nil ? "cited" : (r.matches ? "✓" : "✗ MISMATCH")) | \(r.note) |")
            }
            let bad = rows.filter { !$0.matches }
            print("\naudit: \(rows.filter { $0.ours != nil }.count) computed counts, \(bad.count) mismatches, \(rows.filter { $0.ours == nil }.count) cited (not computed)")
            if !bad.isEmpty { throw ExitCode(1) }
            return
        }
        guard let method else { throw ValidationError("give --method or --audit") }
        var c = try MethodConfig.defaults(method)
        if let n { c.n = n }
        if let r { c.r = r }
        if let m { c.m = m }
        if let s { c.s = s }
        if let targets { c.targets = targets.split(separator: ",").map(String.init) }
        // The settings `train` would refuse are refused here too (a rank 0 or an unread --n
        // printed a count of 0, or the default's count, with exit 0).
        if let problem = c.settingsProblem() { throw ValidationError(problem) }
        for (flag, given) in [("n", n), ("r", r), ("m", m), ("s", s)] {
            if let v = given, v < 1 { throw ValidationError("--\(flag) must be ≥ 1, got \(v)") }
        }
        let arch: ModelConfig
        if model.hasSuffix(".json") { arch = try ModelConfig.load(path: model) } else {
            guard let a = Architectures.known[model] else {
                throw ValidationError("unknown architecture '\(model)'; known: \(Architectures.known.keys.sorted().joined(separator: ", "))")
            }
            arch = a
        }
        let count = try MethodRegistry.parameterCount(c, architecture: arch)
        if count == 0 && method == "lora" {
            throw ValidationError("--targets \(c.targets.joined(separator: ",")): no linear layer of \(model) matches (T5: q, k, v, o, wi, wo, wi_0, wi_1; GPT-2: c_attn, c_proj, c_fc)")
        }
        if case .gpt2(let g) = arch, TrainConfig.promptRows(c) >= g.nPositions {  // the input needs ≥ 1 position
            throw ValidationError("--\(c.method == "dept" ? "m" : "n") \(TrainConfig.promptRows(c)): the prompt rows leave no position of \(model)'s n_positions \(g.nPositions) for the input")
        }
        // All: the backbone, plus the method's trainable tensors and the frozen ones it adds
        // (LoPT-2's X0); full fine-tuning trains the backbone itself.
        let total = arch.parameterCount + (method == "ft" ? 0 : count + (try MethodRegistry.frozenParameterCount(c, architecture: arch)))
        print("trainable params: \(count.formatted()) || all params: \(total.formatted()) || trainable%: \(String(format: "%.4f", 100 * Double(count) / Double(total)))")
    }
}
