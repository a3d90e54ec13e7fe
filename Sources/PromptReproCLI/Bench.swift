import ArgumentParser
import Foundation
import Support
import Tensor

/// `promptrepro bench`: JSON with (1) core sgemm GFLOP/s, raw OpenBLAS (its own thread pool) vs
/// the core's matmul path, at 2048³ and the t5-small FFN shapes; (2) the model workloads of
/// `bench-one` for t5-small and t5-base, each in its own process (peak RSS is per workload);
/// (3) with --reference PYTHON, bench/pytorch_reference.py on the same shapes in the same
/// invocation, and a `ratio` section (time: PyTorch s / PromptRepro s, higher is better;
/// peak_rss: PromptRepro MB / PyTorch MB, lower is better). Medians of ≥ 5 runs after a warm-up.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Benchmark JSON: core sgemm, T5 workloads, optional side-by-side PyTorch reference.")

    @Option(parsing: .unconditional, help: "Threads for OpenBLAS and the core (default: PROMPTREPRO_THREADS or the CPUs this process may use).", transform: threadCount) var threads: Int?
    @Option(parsing: .unconditional, help: "Timed repetitions per measurement (median reported).") var repeats: Int = 5
    @Option(help: "Write the JSON here as well as to stdout.") var out: String?
    @Flag(help: "t5-small only.") var quick = false
    @Option(help: "Model shapes to run, comma-separated, of \(Bench.supportedShapes.joined(separator: ", ")) (default: t5-small and t5-base; --quick: t5-small).")
    var shapes: String?
    @Flag(help: "The sgemm sections only: the three bench shapes and the per-head attention products (with --reference: ours, OpenBLAS and torch interleaved).") var coreOnly = false
    @Option(help: "Python with torch + transformers for the side-by-side reference (make bench-reference creates one).") var reference: String?
    @Option(help: "Judge the performance goals on a bench or bench-e2e JSON written earlier (e.g. Reports/bench.json) and print them; runs nothing.") var evaluate: String?

    func run() throws {
        if let path = evaluate {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
                throw CommandFailure("\(path): a directory, not a bench report (e.g. Reports/bench.json)")
            }
            let data: Data
            do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
                throw CommandFailure("\(path): cannot read (\(error.localizedDescription))")
            }
            let parsed: Any
            do { parsed = try JSONSerialization.jsonObject(with: data) } catch {
                // NaN, Infinity and other non-JSON tokens land here: name where, as the parser says.
                let detail = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? error.localizedDescription
                throw CommandFailure("\(path): not valid JSON (\(detail))")
            }
            guard let report = parsed as? [String: Any] else {
                throw CommandFailure("\(path): not a JSON object (expected the output of `promptrepro bench`)")
            }
            // A bench-e2e report has `sides`; a bench report has `ratio` when it ran with a reference.
            let e2e = report["sides"] != nil
            let goals = e2e ? BenchGoals.evaluateE2E(report) : BenchGoals.evaluate(report)
            guard !goals.isEmpty else {
                throw CommandFailure(e2e ? "\(path): a bench-e2e report without a `ratios` section; only a complete `make bench-e2e` run can be judged"
                                          : "\(path): no `ratio` section; only a run with --reference (make bench) can be judged")
            }
            FileHandle.standardError.write(Data((e2e ? BenchGoals.summaryE2E(goals) : BenchGoals.summary(goals)).utf8))
            let out: Data
            do { out = try JSONSerialization.data(withJSONObject: goals, options: [.prettyPrinted, .sortedKeys]) } catch {
                throw CommandFailure("\(path): its verdicts could not be written as JSON (\(error.localizedDescription))")
            }
            print(String(decoding: out, as: UTF8.self))
            return
        }
        let runShapes = try Self.modelShapes(shapes, quick: quick)  // checked before anything runs
        Parallel.configure(threads: threads)
        let t = Parallel.threads
        // With a reference the sgemm rounds interleave ours, OpenBLAS's and torch's (the rates
        // bound_best divides by); torch's rates also go to pytorch.gemm, as before.
        // The per-head attention products (AttentionProduct) are timed in the same rounds.
        let (sgemm, attention) = try Self.gemmSections(threads: t, rounds: repeats, python: reference, attention: true)
        var report: [String: Any] = ["machine": machineInfo(), "core": ["sgemm": sgemm, "attention": attention]]
        for (label, section) in [("sgemm", sgemm), ("sgemm per-head", attention)] {
            for (name, g) in section.sorted(by: { $0.key < $1.key }) {
                guard let g = g as? [String: Any] else { continue }
                let torch = (g["torch_gflops"] as? Double).map { String(format: " / torch %.0f", $0) } ?? ""
                let units = (g["units"] as? Int).map { " (\($0) units)" } ?? ""
                let range = (g["core_over_best_range"] as? [Double] ?? []).map { String(format: "%.2f", $0) }.joined(separator: "–")
                FileHandle.standardError.write(Data(String(format: "%@ %@%@: ours %.0f / OpenBLAS %.0f%@ GFLOP/s (medians of %d interleaved rounds); ours ÷ best %.2f (%@, goal ≥ 0.9)\n",
                                                           label, name, units, g["core_gflops"] as? Double ?? .nan, g["openblas_gflops"] as? Double ?? .nan, torch,
                                                           g["rounds"] as? Int ?? 0, g["core_over_best"] as? Double ?? .nan, range).utf8))
            }
        }
        if !coreOnly {
            let shapes = runShapes
            report["shapes"] = shapes
            // JSON key → (bench-one workload, PROMPTREPRO_CHECKPOINT). Every workload runs the
            // defaults (`auto`: the FT step checkpoints its self-attention sublayers). The FT step
            // without checkpointing is an extra row (`none`), run in the FT step's rounds and
            // compared with PyTorch's (uncheckpointed) FT step of the same round. Reports before
            // this change have the opposite extra row, `ft_step_checkpointed`, opt-in then; each
            // row's `checkpoint` field says what ran.
            // On a CPU with AVX512-BF16 the opt-in bf16 evaluation (`--precision bf16`) is one more
            // variant row, `eval_forward_bf16`, run in the eval forward's rounds and never judged.
            var runs: [String: BenchRun] = ["train_step": BenchRun("train"), "eval_forward": BenchRun("eval"), "generate": BenchRun("generate"),
                                            "ft_step": BenchRun("ft"), "ft_step_uncheckpointed": BenchRun("ft", checkpoint: "none")]
            if BF16Products.available { runs["eval_forward_bf16"] = BenchRun("eval", precision: "bf16") }
            var ours: [String: Any] = [:]
            let workloads = runs.mapValues(\.workload)
            if let py = reference {
                // Interleaved: ours, PyTorch's, ours, … one timed repetition per process, so a drift
                // of the host's speed lands on both sides; ratios are taken pair by pair.
                report.merge(try interleaved(python: py, shapes: shapes, runs: runs, threads: t, sgemm: sgemm)) { $1 }
            } else {
                for shape in shapes {
                    var m: [String: Any] = [:]
                    for (key, run) in runs.sorted(by: { $0.key < $1.key }) {
                        let r = try ourChild(run, shape: shape, repeats: repeats, threads: t)
                        m[key] = r
                        FileHandle.standardError.write(Data("promptrepro \(shape) \(key): \(String(format: "%.3f", r["seconds_median"] as? Double ?? .nan)) s\n".utf8))
                    }
                    ours[shape] = m
                }
                report["promptrepro"] = ours
            }
            if reference != nil, let pt = report["pytorch"] as? [String: Any] {
                let ours = report["promptrepro"] as? [String: Any] ?? [:]
                // The best ratio possible if every one of our FLOPs ran at this machine's measured
                // sgemm speed (the core path at the three sgemm shapes, averaged), or at the median
                // of the per-round GEMM probes (the same mean over the shapes, taken beside the
                // workloads) where that is higher.
                let core = (report["core"] as? [String: Any])?["sgemm"] as? [String: [String: Any]] ?? [:]
                let speeds = core.keys.sorted().compactMap { core[$0]?["core_gflops"] as? Double }.filter { $0 > 0 }  // fixed summation order; a failed shape left out
                let probes = BenchGoals.probeRates(ours)
                let probeMedian = probes.mean.isEmpty ? nil : medianOf(probes.mean)
                // bound_best (issue #21): the same with the best GEMM rate measured on the host —
                // ours, OpenBLAS's or PyTorch's (`torch.nn.functional.linear`), each the median of
                // the interleaved sgemm rounds, per shape; the mean over the three shapes of each
                // shape's best; or the probes' median where that is higher (`hostBestRate`).
                let sgemmBest = BenchGoals.bestGEMMRate(sgemm: core, torchGemm: pt["gemm"] as? [String: Any] ?? [:])
                let bestRate = BenchGoals.hostBestRate(sgemm: core, torchGemm: pt["gemm"] as? [String: Any] ?? [:], probes: probes)
                func source(_ sgemm: Double?) -> String {
                    let parts = [sgemm.map { "sgemm rounds \(round1($0))" }, probeMedian.map { "probes' median \(round1($0))" }].compactMap { $0 }
                    return parts.joined(separator: ", ")
                }
                func ratios(_ rate: Double) -> [String: Any] {
                    var bound: [String: Any] = [:]
                    for shape in shapes {
                        var r: [String: Any] = [:]
                        for key in workloads.keys.sorted() {
                            let ourM = (ours[shape] as? [String: Any])?[key] as? [String: Any]
                            let theirs = (pt[shape] as? [String: Any])?[key] as? [String: Any]
                            // The step's own work (`gflop_minimal`: no recomputation), where recorded.
                            if let a = theirs?["seconds_median"] as? Double, let gf = (ourM?["gflop_minimal"] ?? ourM?["gflop"]) as? Double {
                                r[key] = (a / (gf / rate) * 100).rounded() / 100
                            }
                        }
                        bound[shape] = r
                    }
                    return bound
                }
                if !speeds.isEmpty {
                    let mean = speeds.reduce(0, +) / Double(speeds.count)
                    let peak = max(mean, probeMedian ?? 0)
                    report["ratio_bound"] = ratios(peak)
                    report["ratio_bound_definition"] = "PyTorch seconds / (workload GFLOP, its own work: gflop_minimal where recorded, without checkpointing's recomputation / our GEMM GFLOP/s = \(round1(peak)), the higher of the mean core sgemm rate and the median of the per-round GEMM probes (\(source(mean)))): the speed-up if every FLOP ran at sgemm speed"
                }
                if let peak = bestRate {
                    report["ratio_bound_best"] = ratios(peak)
                    report["ratio_bound_best_definition"] = "PyTorch seconds / (workload GFLOP, its own work: gflop_minimal where recorded / best measured GEMM GFLOP/s = \(round1(peak)), the higher of the mean over the three sgemm shapes of max(ours, OpenBLAS, torch linear) and the median of the per-round GEMM probes of ours (\(source(sgemmBest)))); goal where it is below 2.5× (train) / 2× (others): ratio ≥ 0.85 × bound_best"
                }
                report["ratio_definition"] = "time: PyTorch seconds / PromptRepro seconds (higher is better); peak_rss: PromptRepro MB / PyTorch MB for the PT train step, <workload>_peak_rss per workload (lower is better)"
                let goals = BenchGoals.evaluate(report)
                if !goals.isEmpty {
                    report["goals"] = goals
                    FileHandle.standardError.write(Data(BenchGoals.summary(goals).utf8))
                }
            }
        }
        let data = try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys])
        let text = String(decoding: data, as: UTF8.self)
        print(text)
        if let out { try (text + "\n").write(toFile: out, atomically: true, encoding: .utf8) }
    }

    /// `repeats` rounds per workload, each one timed repetition of ours then one of PyTorch's (each
    /// in a fresh process after its warm-up), then one of each variant of ours (the FT step without
    /// checkpointing), which pairs with PyTorch's run of the same round. Per side: median, min and max; per
    /// round the ratio PyTorch/ours, reported as median and min–max; a workload whose times spread
    /// by more than 10 % ((max − min) / median on either side) is flagged in `unstable`. A side's
    /// record is its median round's (the lower middle one for an even count), with `seconds_all`
    /// every round's seconds in round order, `gflops_per_s` the GFLOP over the median seconds and
    /// `peak_rss_mb` the median over rounds (`peak_rss_mb_all`); RSS ratios are ours ÷ PyTorch's
    /// of those medians.
    func interleaved(python: String, shapes: [String], runs: [String: BenchRun], threads t: Int,
                     sgemm: [String: Any]) throws -> [String: Any] {
        func pytorch(_ args: [String]) throws -> [String: Any] { try Self.pytorchChild(python: python, args) }
        func stats(_ v: [Double]) -> [String: Any] {
            let s = v.sorted(), med = medianOf(v)
            return ["median": med, "min": s.first ?? .nan, "max": s.last ?? .nan, "all": v, "spread": med > 0 ? ((s.last ?? 0) - (s.first ?? 0)) / med : 0]
        }
        func seconds(_ r: [String: Any]) -> Double { r["seconds_median"] as? Double ?? .nan }
        // The machine's steal share while each child ran (`steal_share`), every one kept for the summary.
        var steals: [Double] = []
        func stealing(_ child: () throws -> [String: Any]) rethrows -> [String: Any] {
            let (result, share) = try measuringSteal(child)
            var r = result
            if let share { r["steal_share"] = round3(share); steals.append(share) }
            return r
        }
        func summarize(_ rounds: [[String: Any]]) -> [String: Any] {
            let a = rounds.map(seconds)
            let order = a.indices.sorted { a[$0] < a[$1] }
            var rec = rounds[order[(order.count - 1) / 2]]
            let med = medianOf(a)
            rec["seconds_median"] = med
            rec["seconds"] = stats(a)
            rec["seconds_all"] = a
            rec["steal_share_all"] = rounds.map { $0["steal_share"] ?? NSNull() }
            if rounds.contains(where: { $0["gemm_probe_gflops"] != nil }) {
                rec["gemm_probe_gflops_all"] = rounds.map { $0["gemm_probe_gflops"] ?? NSNull() }
                rec["gemm_probe_fastest_gflops_all"] = rounds.map { $0["gemm_probe_fastest_gflops"] ?? NSNull() }
            }
            if let gf = rec["gflop"] as? Double, med > 0 { rec["gflops_per_s"] = gf / med }
            let rss = rounds.compactMap { $0["peak_rss_mb"] as? Double }
            if rss.count == rounds.count {
                rec["peak_rss_mb"] = medianOf(rss)
                rec["peak_rss_mb_all"] = rss
            }
            return rec
        }
        var ours: [String: Any] = [:], pt: [String: Any] = [:], ratio: [String: Any] = [:], ratioRange: [String: Any] = [:]
        var unstable: [String] = []
        pt["gemm"] = sgemm.mapValues { g -> [String: Any] in
            let g = g as? [String: Any] ?? [:]
            return ["gflops": g["torch_gflops"] ?? Double.nan, "gflops_all": g["torch_gflops_all"] ?? []]
        }
        // PyTorch runs no variant of ours (a setting other than the defaults): a variant runs in
        // its plain workload's rounds.
        let bases = runs.filter { !$0.value.isVariant }.keys.sorted()
        let probe = GemmProbe()
        // Progress after every round, with the time left estimated from the rounds timed so far
        // (a workload not yet run from the others of its shape; a shape not yet run is untimed).
        let rounds = max(1, repeats)
        var eta = RoundsETA(plan: shapes.flatMap { shape in
            bases.flatMap { Array(repeating: RoundsETA.Round(group: "\(shape) \($0)", family: shape), count: rounds) }
        })
        for shape in shapes {
            var m: [String: Any] = [:], p: [String: Any] = [:], r: [String: Any] = [:], rr: [String: Any] = [:]
            for key in bases {
                let w = runs[key]!.workload
                let variants = runs.filter { $0.value.isVariant && $0.value.workload == w }.keys.sorted()
                var mine: [String: [[String: Any]]] = [:], theirs: [[String: Any]] = []
                for round in 1...rounds {
                    let roundStart = Date()
                    // Alternating: odd rounds run ours then PyTorch's, even rounds PyTorch's then
                    // ours, the variants after both; over an even number of rounds a drift of the
                    // host within a round favours neither side (over 5, the first order has one
                    // round more). Ours and PyTorch's stay adjacent in every round.
                    let pair: [() throws -> Void] = [
                        { mine[key, default: []].append(try probe.bracketing { try stealing { try ourChild(runs[key]!, shape: shape, repeats: 1, threads: t) } }) },
                        { theirs.append(try stealing { try pytorch(["--child", shape, w, "--repeats", "1", "--threads", "\(t)"]) }) },
                    ]
                    for step in round % 2 == 1 ? pair : pair.reversed() { try step() }
                    for v in variants {
                        mine[v, default: []].append(try probe.bracketing { try stealing { try ourChild(runs[v]!, shape: shape, repeats: 1, threads: t) } })
                    }
                    eta.finish(wallSeconds: Date().timeIntervalSince(roundStart))
                    FileHandle.standardError.write(Data(String(format: "%@ %@ round %d/%d: ours %.3f s, PyTorch %.3f s; %@\n", shape, key, round, rounds,
                                                               seconds(mine[key]!.last!), seconds(theirs.last!), eta.progress).utf8))
                }
                let b = theirs.map(seconds)
                p[key] = summarize(theirs)
                if (stats(b)["spread"] as! Double) > 0.1 { unstable.append("pytorch \(shape) \(key)") }
                for k in [key] + variants {
                    let rounds = mine[k] ?? []
                    let a = rounds.map(seconds)
                    let rec = summarize(rounds)
                    m[k] = rec
                    let pairs = zip(b, a).map { $0 / $1 }.sorted()
                    r[k] = ((stats(pairs)["median"] as! Double) * 100).rounded() / 100
                    rr[k] = [pairs.first ?? .nan, pairs.last ?? .nan].map { ($0 * 100).rounded() / 100 }
                    if let ra = (p[key] as? [String: Any])?["peak_rss_mb"] as? Double, let rb = rec["peak_rss_mb"] as? Double, ra > 0 {
                        r["\(k)_peak_rss"] = (rb / ra * 100).rounded() / 100
                        if k == "train_step" { r["peak_rss"] = (rb / ra * 100).rounded() / 100 }
                    }
                    if (stats(a)["spread"] as! Double) > 0.1 { unstable.append("promptrepro \(shape) \(k)") }
                    FileHandle.standardError.write(Data("\(shape) \(k): ours \(String(format: "%.3f", stats(a)["median"] as! Double)) s, PyTorch \(String(format: "%.3f", stats(b)["median"] as! Double)) s\(k == key ? "" : " (its plain workload's)")\n".utf8))
                }
            }
            ours[shape] = m; pt[shape] = p; ratio[shape] = r; ratioRange[shape] = rr
        }
        let stealSummary = stealSummary(steals)
        if let note = stealSummary["note"] as? String { FileHandle.standardError.write(Data((note + "\n").utf8)) }
        return ["promptrepro": ours, "pytorch": pt, "ratio": ratio, "ratio_range": ratioRange, "unstable": unstable, "steal": stealSummary,
                "measurement": "interleaved, alternating: per odd round one timed repetition of ours, then one of PyTorch's, per even round PyTorch's first, then one of each variant of ours (over an even number of rounds a drift within a round favours neither side; over an odd number the first order has one round more) (the FT step without checkpointing, paired with that round's PyTorch FT step; the opt-in bf16 eval forward where the CPU has AVX512-BF16, paired with that round's PyTorch eval forward), each in its own process after a warm-up; medians and min–max over \(repeats) rounds; ratios PyTorch/ours per round (median, min–max); a side's record is its median round's, with GFLOP/s at the median seconds and the median peak RSS; unstable = spread (max − min)/median > 10 %; steal_share = the machine's CPU time the hypervisor gave to other guests while the child ran (/proc/stat), per round in steal_share_all and for all children in `steal`; gemm_probe_gflops = our linear's rate at the sgemm shapes (mean over them, median of 3 products each) timed in the parent right before and after each of our children (the mean of the two; per round in gemm_probe_gflops_all), which that round's non-GEMM overhead divides by"]
    }

    /// One `bench-one` process of ours for `run` (its workload, checkpointing and precision).
    func ourChild(_ run: BenchRun, shape: String, repeats: Int, threads t: Int) throws -> [String: Any] {
        try child(["bench-one", "--shape", shape, "--workload", run.workload, "--repeats", "\(repeats)", "--threads", "\(t)",
                   "--precision", run.precision], environment: ["PROMPTREPRO_CHECKPOINT": run.checkpoint])
    }

    func child(_ args: [String], environment: [String: String] = [:]) throws -> [String: Any] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executablePath())
        p.arguments = args
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0, let obj = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw CommandFailure("benchmark child \(args.joined(separator: " ")) failed")
        }
        return obj
    }

    /// The model shapes `bench` runs: those bench/pytorch_reference.py builds (T5 v1.0, relu).
    static let supportedShapes = ["t5-small", "t5-base", "t5-large"]

    /// `--shapes` (comma-separated, each one of `supportedShapes`, no repeats) or the default: t5-small
    /// with `quick`, else t5-small and t5-base. Throws naming the bad shape, or when both are given.
    static func modelShapes(_ list: String?, quick: Bool) throws -> [String] {
        guard let list else { return quick ? ["t5-small"] : ["t5-small", "t5-base"] }
        if quick { throw ValidationError("--quick and --shapes: give one (--quick is --shapes t5-small)") }
        let names = list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        for name in names where !supportedShapes.contains(name) {
            throw ValidationError("--shapes: '\(name)' is not a bench shape (\(supportedShapes.joined(separator: ", ")))")
        }
        guard !names.isEmpty, Set(names).count == names.count else { throw ValidationError("--shapes: '\(list)' names no shape or one twice") }
        return names
    }

    /// The sgemm section's shapes: name (m×k×n), m, k, n; C = A·Wᵀ with W [n, k] as a Linear layer's.
    static let sgemmShapes: [(String, Int, Int, Int)] = [
        ("2048x2048x2048", 2048, 2048, 2048),
        ("2848x512x2048", 2848, 512, 2048),   // t5-small FFN wi: (B·T, d) · (d, d_ff), B·T = 8 × 356
        ("2848x2048x512", 2848, 2048, 512),   // t5-small FFN wo: (B·T, d_ff) · (d_ff, d)
    ]

    /// A and W of `shape` (uniform in [−1, 1], seeds 1 and 2), the same in every use.
    static func sgemmOperands(_ shape: (String, Int, Int, Int)) -> (a: Tensor, w: Tensor) {
        let (_, m, k, n) = shape
        return (Tensor.uniform([m, k], lo: -1, hi: 1, key: RNGKey(seed: 1)),
                Tensor.uniform([n, k], lo: -1, hi: 1, key: RNGKey(seed: 2)))  // [out, in] like torch Linear
    }

    /// GFLOP/s of our `linear(a, w)` at `shape`: 2·m·n·k ÷ the median of 3 products after a warm-up
    /// (the sgemm section's `core_gflops` per round, and the `GemmProbe`).
    static func linearRate(_ shape: (String, Int, Int, Int), _ a: Tensor, _ w: Tensor) -> Double {
        2.0 * Double(shape.1) * Double(shape.2) * Double(shape.3) / median(3) { _ = try! linear(a, w) } / 1e9
    }

    /// The sgemm section: our `linear`, raw OpenBLAS and (with `python`) torch's `linear` on `t`
    /// threads at three shapes, **interleaved** (issue #21 item 0): per round each side times every
    /// shape (median of 3 after a warm-up; torch first, in a fresh child process), so a drift of the host's
    /// speed lands on all sides. Per shape: the medians over the rounds (`core_gflops`,
    /// `openblas_gflops`, `torch_gflops`, GFLOP/s at 2·m·n·k per product), every round's rate
    /// (`*_all`), and `core_over_best`: per round ours ÷ the fastest reference (OpenBLAS or torch) of
    /// that round, median and min–max — the GEMM goal is ≥ 0.9. Throws when the torch child fails.
    static func sgemmSection(threads t: Int, rounds: Int, python: String? = nil) throws -> [String: Any] {
        try gemmSections(threads: t, rounds: rounds, python: python, attention: false).sgemm
    }

    /// `sgemmSection`, and with `attention` the per-head attention products (`AttentionProduct`)
    /// timed in the same rounds by the same rule: ours as `Attention.swift` runs them (one unit per
    /// head on the pool, each `BLAS.sgemm` serial), OpenBLAS in the same units and layouts, and
    /// torch's `matmul` on the 4-D views transformers' T5 attention multiplies. Their records
    /// (`attention`, keyed by `AttentionProduct.name`) have the sgemm records' fields plus
    /// `units` and `product`; no bound or overhead divides by their rates.
    static func gemmSections(threads t: Int, rounds: Int, python: String? = nil, attention: Bool)
        throws -> (sgemm: [String: Any], attention: [String: Any]) {
        let shapes = sgemmShapes
        let operands = shapes.map { shape in
            let (a, w) = sgemmOperands(shape)
            return (a, w, Tensor(zeros: [shape.1, shape.3]))
        }
        let heads = attention ? AttentionProduct.all : []
        let headOperands = heads.map { $0.operands() }
        var core = [[Double]](repeating: [], count: shapes.count), raw = core, torch = core
        var headCore = [[Double]](repeating: [], count: heads.count), headRaw = headCore, headTorch = headCore
        var steal: [Any] = []
        for round in 1...max(rounds, 1) {
            let roundStart = MachineCPUTicks.read()
            defer { steal.append(roundStart.flatMap { s in MachineCPUTicks.read()?.stealShare(since: s) }.map(round3) ?? NSNull()) }
            // Alternating: odd rounds time torch, then OpenBLAS, then ours; even rounds ours,
            // OpenBLAS, torch (balanced over an even number of rounds).
            func torchRound() throws {
                guard let python else { return }
                let rates = try pytorchChild(python: python, ["--child", "gemm", "-", "--repeats", "3", "--threads", "\(t)"]
                                                            + (attention ? ["--attention"] : []))
                for (i, (name, _, _, _)) in shapes.enumerated() {
                    guard let g = (rates[name] as? [String: Any])?["gflops"] as? Double else {
                        throw CommandFailure("bench/pytorch_reference.py --child gemm: no rate for \(name)")
                    }
                    torch[i].append(g)
                }
                for (i, h) in heads.enumerated() {
                    guard let g = ((rates["attention"] as? [String: Any])?[h.name] as? [String: Any])?["gflops"] as? Double else {
                        throw CommandFailure("bench/pytorch_reference.py --child gemm --attention: no rate for attention \(h.name)")
                    }
                    headTorch[i].append(g)
                }
            }
            func localRound(oursFirst: Bool) {
                for (i, (_, m, k, n)) in shapes.enumerated() {
                    let (a, w, c) = operands[i]
                    let flops = 2.0 * Double(m) * Double(n) * Double(k)
                    let openBLAS = { round3(flops / median(3) { BLAS.sgemmOpenBLASThreaded(threads: t, m: m, n: n, k: k, a: a.data, b: w.data, c: c.data) } / 1e9) }
                    if oursFirst { core[i].append(round3(linearRate(shapes[i], a, w))); raw[i].append(openBLAS()) }
                    else { raw[i].append(openBLAS()); core[i].append(round3(linearRate(shapes[i], a, w))) }
                }
                for (i, h) in heads.enumerated() {
                    let openBLAS = { round3(h.flops / median(3) { h.run(headOperands[i], openBLAS: true) } / 1e9) }
                    let ours = { round3(h.flops / median(3) { h.run(headOperands[i], openBLAS: false) } / 1e9) }
                    if oursFirst { headCore[i].append(ours()); headRaw[i].append(openBLAS()) }
                    else { headRaw[i].append(openBLAS()); headCore[i].append(ours()) }
                }
            }
            if round % 2 == 1 { try torchRound(); localRound(oursFirst: false) } else { localRound(oursFirst: true); try torchRound() }
        }
        func record(_ m: Int, _ n: Int, _ k: Int, core: [Double], raw: [Double], torch: [Double]) -> [String: Any] {
            var g: [String: Any] = ["m": m, "k": k, "n": n, "rounds": core.count,
                                    "core_gflops": medianOf(core), "openblas_gflops": medianOf(raw),
                                    "core_gflops_all": core, "openblas_gflops_all": raw,
                                    "core_over_openblas": round3(medianOf(zip(core, raw).map { $0 / $1 })),
                                    "steal_share_all": steal]
            let best = torch.isEmpty ? raw : zip(raw, torch).map { max($0, $1) }
            if !torch.isEmpty {
                g["torch_gflops"] = medianOf(torch)
                g["torch_gflops_all"] = torch
            }
            let perRound = zip(core, best).map { $0 / $1 }.sorted()
            g["core_over_best"] = round3(medianOf(perRound))
            g["core_over_best_range"] = [perRound.first ?? .nan, perRound.last ?? .nan].map(round3)
            g["core_over_best_goal_met"] = medianOf(perRound) >= 0.9
            g["best_of"] = torch.isEmpty ? "openblas (no --reference: torch not measured)" : "openblas, torch"
            return g
        }
        var gemm: [String: Any] = [:], perHead: [String: Any] = [:]
        for (i, (name, m, k, n)) in shapes.enumerated() {
            gemm[name] = record(m, n, k, core: core[i], raw: raw[i], torch: torch[i])
        }
        for (i, h) in heads.enumerated() {
            var g = record(h.m, h.n, h.k, core: headCore[i], raw: headRaw[i], torch: headTorch[i])
            g["units"] = h.units
            g["product"] = h.product
            perHead[h.name] = g
        }
        return (gemm, perHead)
    }

    /// Runs bench/pytorch_reference.py with `args` under `python`; its last stdout line as JSON.
    /// Throws (naming the arguments and the fix) when it fails or prints no JSON.
    static func pytorchChild(python: String, _ args: [String]) throws -> [String: Any] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = [ProjectRoot.resolve("bench/pytorch_reference.py")] + args
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0, let line = String(decoding: data, as: UTF8.self).split(separator: "\n").last,
              let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw CommandFailure("the PyTorch reference failed (\(args.joined(separator: " "))); run `make bench-reference`")
        }
        return obj
    }
}

/// Rounded to 0.1 (printed rates and sizes that no verdict recomputes from).
func round1(_ x: Double) -> Double { (x * 10).rounded() / 10 }
/// Rounded to 0.001: ratios, and the GEMM rates `bench --evaluate` recomputes verdicts from (the
/// sgemm and per-head rounds, the probes), so that rounding a stored rate moves a verdict's value by
/// at most a few 10⁻⁶ of itself, not the 3 × 10⁻⁴ of the 0.1 GFLOP/s that reports before 2026-12-05 kept.
func round3(_ x: Double) -> Double { (x * 1000).rounded() / 1000 }

/// The median of `v` (the mean of the middle two for an even count); NaN when `v` is empty.
func medianOf(_ v: [Double]) -> Double {
    let s = v.sorted()
    return s.isEmpty ? .nan : s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

/// Our `linear`'s GEMM rate at the sgemm section's shapes, timed in the parent `bench` process right
/// before and right after each of our workload children (`Bench.interleaved`), so that each
/// round's non-GEMM overhead divides by the rate of the host at that moment rather than by the
/// sgemm rounds' (minutes earlier: on a busy VM the two phases differed by up to 30 %). Runs with
/// the parent's threads while the child is not running; the operands are made once (68 MB).
struct GemmProbe {
    let shapes = Bench.sgemmShapes
    let operands: [(a: Tensor, w: Tensor)]

    init() { operands = Bench.sgemmShapes.map(Bench.sgemmOperands) }

    /// GFLOP/s per shape: 2·m·n·k ÷ the median of 3 products (after a warm-up); `mean` over the
    /// shapes (as the sgemm section's `core_gflops` are averaged for the overhead) and `fastest`.
    func rate() -> (mean: Double, fastest: Double) {
        let rates = zip(shapes, operands).map { Bench.linearRate($0, $1.a, $1.w) }
        return (rates.reduce(0, +) / Double(rates.count), rates.max() ?? .nan)
    }

    /// `child`'s record with `gemm_probe_gflops` (the mean of the rates before and after it, one
    /// decimal), `gemm_probe_gflops_bracket` ([before, after]) and `gemm_probe_fastest_gflops`
    /// (the fastest shape's, the mean of before and after).
    func bracketing(_ child: () throws -> [String: Any]) rethrows -> [String: Any] {
        let before = rate()
        var r = try child()
        let after = rate()
        r["gemm_probe_gflops"] = round3((before.mean + after.mean) / 2)
        r["gemm_probe_gflops_bracket"] = [round3(before.mean), round3(after.mean)]
        r["gemm_probe_fastest_gflops"] = round3((before.fastest + after.fastest) / 2)
        return r
    }
}

/// Median wall time in seconds of `repeats` runs after one warm-up run.
func median(_ repeats: Int, _ body: () -> Void) -> Double {
    body()
    var times: [Double] = []
    for _ in 0..<max(repeats, 1) {
        let t0 = DispatchTime.now().uptimeNanoseconds
        body()
        times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
    }
    return medianOf(times)
}

/// The CPU's identity from /proc/cpuinfo (empty fields where it is missing): what `bench` records
/// and what a GEMM calibration is keyed by.
struct CPUIdentity {
    /// `simd`: the flags the GEMM calibration's host signature names (kept as it was, so cached
    /// calibrations still apply); `simdReported`: more of the SIMD flags, for bench reports.
    var name = "unknown", vendor = "", family = "", model = "", stepping = "", simd = "", simdReported = ""
    /// The cpuinfo `hypervisor` flag: a virtual machine's vCPUs (whose speed can drift with the host's load).
    var virtualized = false

    static func read() -> CPUIdentity {
        var c = CPUIdentity()
        guard let s = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return c }
        let lines = s.split(separator: "\n")
        func field(_ name: String) -> String {
            guard let line = lines.first(where: { $0.hasPrefix(name) }), let v = line.split(separator: ":", maxSplits: 1).last else { return "" }
            return v.trimmingCharacters(in: .whitespaces)
        }
        c.name = field("model name"); c.family = field("cpu family"); c.model = field("model\t"); c.vendor = field("vendor_id")
        c.stepping = field("stepping")
        if c.model.isEmpty { c.model = lines.first { $0.hasPrefix("model") && !$0.hasPrefix("model name") }.flatMap { $0.split(separator: ":").last }
            .map { $0.trimmingCharacters(in: .whitespaces) } ?? "" }
        if let line = lines.first(where: { $0.hasPrefix("flags") }) {
            // Whole flag names (a substring test would let one flag's name match inside another's).
            let flags = Set(line.split(separator: ":", maxSplits: 1).last?.split(separator: " ").map(String.init) ?? [])
            c.simd = ["avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "avx2", "fma"].filter(flags.contains).joined(separator: ",")
            c.simdReported = ["avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "avx_vnni", "avx2", "fma"]
                .filter(flags.contains).joined(separator: ",")
            c.virtualized = flags.contains("hypervisor")
        }
        return c
    }
}

func machineInfo() -> [String: Any] {
    let id = CPUIdentity.read()
    let (cpu, flags, family, model, vendor, stepping) = (id.name, id.simdReported, id.family, id.model, id.vendor, id.stepping)
    return [
        "cpu": cpu, "simd": flags, "vendor": vendor, "cpu_family": family, "cpu_model": model, "cpu_stepping": stepping,
        "cores": ProcessInfo.processInfo.activeProcessorCount,
        // What this process may use (the affinity mask and cgroup quotas): the default threads.
        "cpus_available": HostResources.cpus,
        "threads": Parallel.threads,
        "memory_gb": round1(Double(ProcessInfo.processInfo.physicalMemory) / 1_073_741_824),
        "memory_available_gb": round1(Double(HostResources.memoryBytes) / 1_073_741_824),
        "openblas_config": BLAS.config,
        "openblas_core": BLAS.coreName,
        "gemm_kernel": BLAS.kernel.rawValue,
        "gemm_blocking": BLAS.blockingDescription,
        // The kernel of the opt-in bf16 products (the `eval_forward_bf16` row), none without AVX512-BF16.
        "bf16_kernel": BF16Products.available ? BF16Products.defaultKernel.rawValue : "none",
        "gemm_calibration": BLAS.calibrated.map { "\($0.choice) (measured \($0.measured), \($0.speedup)× the default)" } ?? "none",
        "swift_isa": BuildISA.name,
        "os": ProcessInfo.processInfo.operatingSystemVersionString,
        // The Linux kernel release (uname -r) and whether the CPU is a VM's vCPU.
        "os_kernel": ((try? String(contentsOfFile: "/proc/sys/kernel/osrelease", encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines),
        "virtualized": id.virtualized,
        // Under a hypervisor, family, model and flags are the CPUID it presents (an Intel vCPU
        // reported model 167 with AMX flags that model 167 lacks): they name a host type as these
        // machines show it, not necessarily the physical microarchitecture.
        "cpu_identity_source": id.virtualized ? "hypervisor CPUID (may not name the physical microarchitecture)" : "CPUID",
    ]
}

/// One workload row of `make bench`: the `bench-one` workload, `PROMPTREPRO_CHECKPOINT` and
/// `--precision`. A row with other settings than the defaults (`auto`, `fp32`) is a variant: it
/// runs in its plain workload's rounds and is compared with PyTorch's run of that workload.
struct BenchRun {
    let workload: String, checkpoint: String, precision: String
    init(_ workload: String, checkpoint: String = "auto", precision: String = "fp32") {
        self.workload = workload
        self.checkpoint = checkpoint
        self.precision = precision
    }
    var isVariant: Bool { checkpoint != "auto" || precision != "fp32" }
}
