import ArgumentParser
import Foundation
import Models
import Support
import Tasks
import Tensor
import Training

/// `promptrepro bench-e2e` (issue #21 item 3): one complete few-shot DPT run timed end to end, as
/// users wait for it. CB, k = 32 (Baselines/manifests/cb-k32-s1.json), DPT n = 100, r = 10, the
/// dpt-paper protocol (AdamW lr 0.3, warm-up 10 %, clip 1.0, batch 16, dropout on), evaluation
/// after every epoch on all 56 validation rows by greedy decoding, random-init t5-small.
///
/// Sides, one process each, interleaved per round (ours, its lever variants, DPT code, dynamic, …):
///   promptrepro            `promptrepro train` on a random-init t5-small checkpoint written once
///                          from `T5Model.random` (seed 1, as `bench-one`) with the shared t5 tokenizer
///   promptrepro+<lever>    the same run with an opt-in lever (decode-auto: `--decode-max-tokens auto`)
///   pytorch-dpt-code       scripts/bench_e2e_reference.py --variant dpt-code (pads to 256 / 128)
///   pytorch-dynamic        … --variant dynamic (pads to the batch's longest)
/// Both sides load the same checkpoint (PyTorch with `from_pretrained --model`, as the DPT code
/// loads t5). Before the first round each side starts once untimed (ours `info` on the checkpoint,
/// PyTorch's imports and `from_pretrained`), so no round pays for reading the libraries from disk.
/// Wall seconds are those of the child process (interpreter start, imports, model build and data
/// loading included: what a user waits for); ratios are theirs / ours per round, by wall and per
/// epoch (the sides' own timers over training plus evaluation, the part a run of the papers' 100
/// epochs is made of: start-up is paid once per run, and with the bench's one epoch it is a larger
/// share of PyTorch's wall than of ours). The goal is judged on the lower of the two.
struct BenchE2E: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench-e2e",
        abstract: "Time one complete few-shot DPT run (CB k=32, t5-small random init) against PyTorch pipelines, interleaved.")

    @Option(help: "Python with torch + transformers (make bench-reference creates one).") var reference: String
    @Option(parsing: .unconditional, help: "Epochs per run (the papers run 100; the bench's default keeps one invocation short).") var epochs: Int = 1
    @Option(parsing: .unconditional, help: "Rounds; each runs every side once.") var rounds: Int = 4
    @Option(parsing: .unconditional, help: "Threads of every side.", transform: threadCount) var threads: Int = 2
    @Option(help: "Our sides, comma-separated: default, decode-auto, decode-eos (the papers' literal decode; default stops rows whose text can no longer be a label).") var ours: String = "default,decode-auto"
    @Option(help: "PyTorch variants, comma-separated: dpt-code, dynamic.") var pytorch: String = "dpt-code,dynamic"
    @Option(help: "Data directory (default: PROMPTREPRO_DATA or data/).") var dataDir: String?
    @Option(help: "Tokenizer directory (default: $PROMPTREPRO_SHARED/models/t5-tokenizer, else ../shared/models/t5-tokenizer).") var tokenizer: String?
    @Option(name: .customLong("model-dir"), help: "Where the random-init t5-small checkpoint is written once and reused (default: runs/bench-e2e/t5-small-random in the checkout).") var modelDirGiven: String?
    var modelDir: String { modelDirGiven ?? ProjectRoot.resolve("runs/bench-e2e/t5-small-random") }
    @Option(help: "Write the JSON here as well as to stdout.") var out: String?

    static let levers: [String: [String]] = ["default": [], "decode-auto": ["--decode-max-tokens", "auto"],
                                              "decode-eos": ["--decode-stop", "eos"]]

    func run() throws {
        Parallel.configure(threads: threads)
        let shared = Environment.values["PROMPTREPRO_SHARED"] ?? ProjectRoot.resolve("../shared")
        let tok = tokenizer ?? "\(shared)/models/t5-tokenizer"
        let data = try DataFiles.directory(dataDir, environmentDir: Environment.dataDir, defaultDir: ProjectRoot.resolve("data"))
        let manifest = ProjectRoot.resolve("Baselines/manifests/cb-k32-s1.json")
        let model = ProjectRoot.resolve(modelDir)
        let oursSides = ours.split(separator: ",").map(String.init)
        for s in oursSides where Self.levers[s] == nil { throw ValidationError("--ours: unknown side '\(s)' (known: \(Self.levers.keys.sorted().joined(separator: ", ")))") }
        let ptSides = pytorch.split(separator: ",").map(String.init)
        for s in ptSides where !["dpt-code", "dynamic"].contains(s) { throw ValidationError("--pytorch: unknown variant '\(s)' (dpt-code, dynamic)") }
        guard rounds > 0 else { throw ValidationError("--rounds must be positive") }
        guard epochs > 0 else { throw ValidationError("--epochs must be positive") }
        // Alternating orders balance a drift of the host only over an even number of rounds.
        if rounds % 2 == 1 { stderr("warning: --rounds \(rounds) is odd: the sides' order alternates per round, so a drift of the host's speed is balanced only over an even number of rounds (the report says `balanced: false`)") }
        // Validated first: the checkpoint takes 242 MB and a few seconds to write.
        try Self.writeRandomT5Small(to: model, tokenizer: tok)
        let modelSHA = try SHA256.hex(file: "\(model)/model.safetensors")
        // Each child's stderr, per round and side, kept for reading after the run (warnings of the
        // PyTorch side, such as another torch than the pinned one, are also gathered in `sides`).
        let logs = (model as NSString).deletingLastPathComponent + "/logs"
        try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
        var warnings: [String: [String]] = [:]
        let tmp = NSTemporaryDirectory() + "promptrepro-bench-e2e-\(getpid())"
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: tmp) }

        var steals: [String: [Double]] = [:]   // per side, each round's steal share (`stealSummary`)
        var walls: [String: [Double]] = [:], cpus: [String: [Double]] = [:], last: [String: [String: Any]] = [:], runSeconds: [String: [Double]] = [:]
        let order = oursSides.map { $0 == "default" ? "promptrepro" : "promptrepro+\($0)" } + ptSides.map { "pytorch-\($0)" }
        // The host's memory read rate, once per round before its sides (median of 5 passes over
        // 512 MiB on the run's threads): a greedy decoding step is bound by the bytes it reads
        // (docs/performance.md, "Fifth session"), so this rate sets its floor as the GEMM rate sets
        // the training's.
        var memoryRead: [Double] = []
        // Progress after every side's run, with the time left from the runs timed so far (a side
        // not yet run from the others of ours or of PyTorch's).
        var eta = RoundsETA(plan: (1...max(1, rounds)).flatMap { _ in
            order.map { RoundsETA.Round(group: $0, family: $0.hasPrefix("promptrepro") ? "ours" : "pytorch") }
        }, noun: "run")
        // Untimed warm-up: the first start of each side reads its binaries and libraries (torch's
        // shared objects: 15–121 s beyond its own timer in 6 of 28 committed reports) and the
        // checkpoint from disk; the rounds then find them in the page cache, as a second run does.
        stderr("warm-up (untimed): each side starts once")
        try runChild(executablePath(), ["info", "--model", model], side: "warm-up promptrepro", log: "\(logs)/warm-up-promptrepro.stderr")
        if !ptSides.isEmpty {
            try runChild(reference, ["-c", "import sys, torch, transformers; from transformers import T5ForConditionalGeneration as M; "
                                     + "M.from_pretrained(sys.argv[1], dtype=torch.float32)", model], side: "warm-up pytorch", log: "\(logs)/warm-up-pytorch.stderr")
        }
        var epochSeconds: [String: [Double]] = [:]  // per side, each round's training + evaluation seconds by its own timer
        for round in 1...max(1, rounds) {
            memoryRead.append(round1(medianOf(MemoryReadProbe.gigabytesPerSecond(threads: threads))))
            // Alternating: odd rounds run the sides in `order`, even rounds in reverse; over an
            // even number of rounds (the default 4) a drift of the host within a round favours
            // neither side.
            for side in round % 2 == 1 ? order : order.reversed() {
                let log = "\(logs)/round\(round)-\(side).stderr"
                let t0 = DispatchTime.now().uptimeNanoseconds, cpu0 = Self.childrenCPUSeconds(), ticks0 = MachineCPUTicks.read()
                var record: [String: Any]
                if side.hasPrefix("promptrepro") {
                    let lever = side == "promptrepro" ? "default" : String(side.dropFirst("promptrepro+".count))
                    let path = "\(tmp)/\(lever).json"
                    try runChild(executablePath(), ["train", "--method", "dpt", "--task", "cb", "--k", "32", "--seed", "1", "--model", model,
                                                    "--epochs", "\(epochs)", "--threads", "\(threads)", "--data-dir", data, "--out", path]
                                 + Self.levers[lever]!, side: side, log: log)
                    let wall = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
                    record = try Self.summarizeOurs(path)
                    record["wall_seconds"] = wall
                } else {
                    let variant = String(side.dropFirst("pytorch-".count))
                    let text = try runChild(reference, [ProjectRoot.resolve("scripts/bench_e2e_reference.py"), "--variant", variant,
                                                        "--epochs", "\(epochs)", "--threads", "\(threads)", "--data-dir", data,
                                                        "--manifest", manifest, "--tokenizer", tok, "--model", model], side: side, log: log)
                    let wall = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
                    guard let line = text.split(separator: "\n").last,
                          let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                        throw CommandFailure("\(side): no JSON line from scripts/bench_e2e_reference.py")
                    }
                    record = obj
                    record["wall_seconds"] = wall
                    // The decoding work of the run, as ours counts it (all epochs).
                    record["decode_row_steps"] = ((obj["history"] as? [[String: Any]]) ?? []).compactMap { $0["decode_row_steps"] as? Int }.reduce(0, +)
                }
                for line in ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n")
                where line.range(of: "warn", options: .caseInsensitive) != nil {
                    let l = String(line.prefix(300))
                    if !(warnings[side] ?? []).contains(l), (warnings[side] ?? []).count < 10 { warnings[side, default: []].append(l) }
                }
                walls[side, default: []].append(record["wall_seconds"] as! Double)
                cpus[side, default: []].append(Self.childrenCPUSeconds() - cpu0)
                runSeconds[side, default: []].append(record["seconds"] as? Double ?? .nan)
                epochSeconds[side, default: []].append(Self.epochSeconds(record, ours: side.hasPrefix("promptrepro")))
                let share = ticks0.flatMap { t in MachineCPUTicks.read()?.stealShare(since: t) }
                if let share { steals[side, default: []].append(share) }
                last[side] = record
                eta.finish(wallSeconds: Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
                stderr(String(format: "round %d %@: %.1f s wall, %.1f CPU s", round, side, record["wall_seconds"] as! Double, cpus[side]!.last!)
                       + (share.map { String(format: ", %.0f %% of the machine's CPU time stolen by the hypervisor", 100 * $0) } ?? "")
                       + "; \(eta.progress)")
            }
        }

        // A lever must leave training alone: its step losses against the default's, and how many
        // best-epoch predictions it changed.
        func losses(_ side: String) -> [Double] {
            ((last[side]?["history"] as? [[String: Any]]) ?? []).flatMap { ($0["losses"] as? [Double]) ?? [] }
        }
        var sides: [String: Any] = [:]
        for side in order {
            var s = last[side] ?? [:]
            if side.hasPrefix("promptrepro+"), last["promptrepro"] != nil {
                s["step_losses_equal_default"] = losses(side) == losses("promptrepro")
                let a = s["best_predictions"] as? [String] ?? [], b = last["promptrepro"]?["best_predictions"] as? [String] ?? []
                s["best_predictions_changed"] = a.count == b.count ? zip(a, b).filter { $0 != $1 }.count : -1
            }
            s.removeValue(forKey: "best_predictions")
            s["wall"] = Self.stats(walls[side] ?? [])
            s["cpu"] = Self.stats(cpus[side] ?? [])
            s["run"] = Self.stats(runSeconds[side] ?? [])
            s["epochs"] = Self.stats(epochSeconds[side] ?? [])
            if let st = steals[side] { s["steal_share"] = Self.stats(st) }
            s["stderr_warnings"] = warnings[side] ?? []
            s.removeValue(forKey: "wall_seconds")
            sides[side] = s
        }
        // The decoding work each side did in its last round (rows computed × steps, all epochs):
        // a ratio where our side decoded less than PyTorch's is partly a ratio of work, which the
        // note says (the default stops rows that can no longer become a label; `decode-auto` caps
        // the steps at the longest label; `decode-eos` decodes as the papers' code does).
        var decodeWork: [String: Any] = [:]
        for side in order {
            let v = last[side]?["decode_row_steps"]
            if let n = (v as? Int) ?? (v as? NSNumber)?.intValue { decodeWork[side] = n }
        }
        var decodeNotes: [String] = []
        for o in order where o.hasPrefix("promptrepro") {
            guard let mine = decodeWork[o] as? Int else { continue }
            for p in order where p.hasPrefix("pytorch") {
                guard let theirs = decodeWork[p] as? Int, theirs > 0 else { continue }
                if mine != theirs {
                    decodeNotes.append("\(o) decoded \(mine) row-steps, \(p) \(theirs) (\(String(format: "%.3f", Double(mine) / Double(theirs)))×, "
                                       + (mine > theirs ? "more" : "less") + " on our side): its ratios against \(p) compare different decoding work")
                }
            }
        }
        if !decodeNotes.isEmpty { decodeWork["notes"] = decodeNotes }
        // Ratios per round: their wall / ours (higher: we are faster), for each pair of ours × theirs.
        var ratios: [String: Any] = [:]
        for o in order where o.hasPrefix("promptrepro") {
            for p in order where p.hasPrefix("pytorch") {
                ratios["\(p) / \(o)"] = Self.stats(zip(walls[p] ?? [], walls[o] ?? []).map { $0 / $1 })
                ratios["\(p) / \(o) (CPU)"] = Self.stats(zip(cpus[p] ?? [], cpus[o] ?? []).map { $0 / $1 })
                ratios["\(p) / \(o) (per epoch)"] = Self.stats(zip(epochSeconds[p] ?? [], epochSeconds[o] ?? []).map { $0 / $1 })
            }
        }
        var machine = machineInfo()
        machine["kernel"] = BLAS.kernelDescription
        // The ceiling physics leaves (issue #21's bound_best, end to end): PyTorch's wall / the
        // seconds our run's GEMM FLOPs (training + evaluation, as its run metrics count them) take
        // at the best GEMM rate measured on this host in this invocation, by `bench`'s rule: per
        // sgemm shape the best median of ours, OpenBLAS's and torch's linear, averaged over the
        // three shapes. Start-up, data, and every non-GEMM op count as zero, so no run can reach it.
        // Ours, OpenBLAS's and torch's rates interleaved over 3 rounds (Bench.sgemmSection).
        let gemm = try Bench.sgemmSection(threads: threads, rounds: 3, python: reference)
        var bound: [String: Any] = ["sgemm": gemm, "memory_read_gbs_all": memoryRead, "memory_read_gbs": round1(medianOf(memoryRead))]
        if let rate = BenchGoals.bestGEMMRate(sgemm: gemm), case let best = round1(rate), best > 0 {
            bound["best_gflops"] = best
            for o in order where o.hasPrefix("promptrepro") {
                guard let tf = last[o]?["train_flops"] as? Double, let ef = last[o]?["eval_flops"] as? Double else { continue }
                let seconds = (tf + ef) / (best * 1e9)
                var b: [String: Any] = ["gemm_gflop": ((tf + ef) / 1e9).rounded(), "gemm_bound_seconds": (seconds * 100).rounded() / 100]
                if let w = (Self.stats(walls[o] ?? [])["median"] as? Double), w > 0 { b["fraction_of_bound_reached"] = round3(seconds / w) }
                for p in order where p.hasPrefix("pytorch") {
                    if let w = Self.stats(walls[p] ?? [])["median"] as? Double { b["bound_best vs \(p)"] = (w / seconds * 100).rounded() / 100 }
                    // Also against its epochs' own seconds: the wall adds PyTorch's start-up (imports,
                    // the interpreter: 4–6 s), which no GEMM rate removes.
                    if let e = Self.stats(epochSeconds[p] ?? [])["median"] as? Double, e > 0 {
                        b["bound_best vs \(p) (per epoch)"] = (e / seconds * 100).rounded() / 100
                    }
                }
                // The memory bound: the decode's GEMM FLOPs at the best rate or its bytes at the
                // fastest memory read rate of the rounds, whichever takes longer, plus the rest of the
                // run's FLOPs at the best rate (`roofline`). Still a floor no run reaches: non-GEMM
                // work and start-up count as zero, and compute and reads are assumed to overlap fully.
                if let df = last[o]?["decode_flops"] as? Double, let db = last[o]?["decode_read_bytes"] as? Double,
                   let bw = memoryRead.max(), bw > 0 {
                    let wf = last[o]?["decode_weight_flops"] as? Double, ab = last[o]?["decode_attention_read_bytes"] as? Double
                    let bounds = DecodeBounds(flops: df, weightFlops: wf ?? 0, readBytes: db, attentionReadBytes: ab ?? 0, gflops: best, gbs: bw)
                    let decode = bounds.overlapped, roofline = (tf + ef - df) / (best * 1e9) + decode
                    b["decode_gemm_gflop"] = (df / 1e9).rounded()
                    b["decode_read_gb"] = (db / 1e8).rounded() / 10
                    b["decode_bound_seconds"] = (decode * 100).rounded() / 100
                    let ds = (last[o]?["decode_seconds"] as? Double).flatMap { $0 > 0 ? $0 : nil }  // the last round's decodes
                    if let ds {
                        b["decode_seconds"] = (ds * 100).rounded() / 100
                        b["decode_fraction_of_bound_reached"] = round3(decode / ds)
                    }
                    // The sequential bound (`DecodeBounds`): a step runs its weight products and its
                    // attention one after the other, each at its own roofline; the gap to the
                    // overlapped bound is what overlapping the phases could win. Reports of runs
                    // without the split metrics leave it out.
                    if let wf, let ab {
                        let sequential = bounds.sequential
                        b["decode_weight_gflop"] = (wf / 1e9).rounded()
                        b["decode_attention_read_gb"] = (ab / 1e8).rounded() / 10
                        b["decode_sequential_bound_seconds"] = (sequential * 100).rounded() / 100
                        if let ds { b["decode_fraction_of_sequential_bound_reached"] = round3(sequential / ds) }
                    }
                    b["roofline_seconds"] = (roofline * 100).rounded() / 100
                    if let w = (Self.stats(walls[o] ?? [])["median"] as? Double), w > 0 { b["fraction_of_roofline_reached"] = round3(roofline / w) }
                    for p in order where p.hasPrefix("pytorch") {
                        if let w = Self.stats(walls[p] ?? [])["median"] as? Double { b["bound_roofline vs \(p)"] = (w / roofline * 100).rounded() / 100 }
                        if let e = Self.stats(epochSeconds[p] ?? [])["median"] as? Double, e > 0 {
                            b["bound_roofline vs \(p) (per epoch)"] = (e / roofline * 100).rounded() / 100
                        }
                    }
                }
                bound[o] = b
            }
        }
        // Sides whose wall times, or epoch times (on which the goal is judged too), spread by more
        // than 10 % over the rounds ((max − min) / median).
        func spreads(_ w: [Double]) -> Bool {
            let med = medianOf(w)
            return w.count > 1 && med > 0 && (w.max()! - w.min()!) / med > 0.1
        }
        let unstable = order.filter { spreads(walls[$0] ?? []) } + order.filter { spreads(epochSeconds[$0] ?? []) }.map { "\($0) epochs" }
        let goals = BenchGoals.evaluateE2E(["ratios": ratios, "sides": sides, "unstable": unstable])
        let steal = stealSummary(order.flatMap { steals[$0] ?? [] })
        let report: [String: Any] = [
            "machine": machine, "ratios": ratios, "sides": sides, "bound": bound, "goals": goals, "unstable": unstable, "steal": steal,
            "decode_work": decodeWork,
            "config": ["task": "cb", "k": 32, "seed": 1, "method": "dpt", "n": 100, "r": 10, "epochs": epochs, "rounds": rounds,
                       "balanced": rounds % 2 == 0, "logs": ProjectRoot.display(logs),
                       "threads": threads, "model": "random-init t5-small written once from T5Model.random seed 1 (\(modelDir)); both sides load it (PyTorch: T5ForConditionalGeneration.from_pretrained, refused unless every weight loads as stored)",
                       "model_sha256": modelSHA,
                       "protocol": "dpt-paper: AdamW lr 0.3 wd 1e-5, linear warm-up 10 %, clip 1.0, batch 16, dropout 0.1, eval every epoch on 56 validation rows by greedy decoding (each side's decoding: `decode` in `sides`; the work it did: `decode_work`)"],
            "measurement": "interleaved, alternating: per round one run of each side in its own process (odd rounds in the order \(order.joined(separator: ", ")), even rounds in reverse: balanced over an even number of rounds); wall = the child process's wall seconds (start-up, imports, model build, data, training, evaluation); cpu = its user + system CPU seconds (on a busy host the share of the cores a side got varies; CPU seconds count only what it ran); run = the side's own timer, not like for like (ours: its epochs, from the first training step to the last evaluation; PyTorch: from loading the tokenizer, the data and the model to the last evaluation; only reports without epoch series are judged on it); epochs = each side's own timer over its epochs' training and evaluation only (ours: the epochs' seconds; PyTorch: train_seconds + eval_seconds); before the first round each side starts once untimed (ours: `info` on the checkpoint; PyTorch: its imports and from_pretrained), so no round reads the libraries from disk; ratios are PyTorch / ours per round (median, min, max over \(rounds) rounds), by wall, by CPU seconds and per epoch; the goal is judged on the lower of the wall and per-epoch medians; unstable = sides whose wall spread (max − min)/median > 10 %, and SIDE epochs where its epoch seconds spread so; steal_share = the machine's CPU time the hypervisor gave to other guests while the side ran (/proc/stat), per side over the rounds and for all runs in `steal`. Busy shared host: compare within one invocation.",
        ]
        let json = String(decoding: try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys]), as: UTF8.self)
        print(json)
        if let out {
            try FileManager.default.createDirectory(atPath: (out as NSString).deletingLastPathComponent.isEmpty ? "." : (out as NSString).deletingLastPathComponent,
                                                    withIntermediateDirectories: true)
            try (json + "\n").write(toFile: out, atomically: true, encoding: .utf8)
        }
        if let note = steal["note"] as? String { stderr(note) }
        for side in order {
            let w = Self.stats(walls[side] ?? [])
            stderr(String(format: "%-28@ wall median %.1f s (min %.1f, max %.1f)", side as NSString, w["median"] as! Double, w["min"] as! Double, w["max"] as! Double))
        }
        for k in ratios.keys.sorted() {
            let r = ratios[k] as! [String: Any]
            stderr(String(format: "%@: %.2f× (min %.2f, max %.2f)", k, r["median"] as! Double, r["min"] as! Double, r["max"] as! Double))
        }
        FileHandle.standardError.write(Data(BenchGoals.summaryE2E(goals).utf8))
        for side in order { if let n = decodeWork[side] { stderr("\(side): decoded \(n) row-steps (rows computed × steps, all epochs of the last round)") } }
        for n in decodeNotes { stderr("note: \(n)") }
        for side in order { for w in warnings[side] ?? [] { stderr("\(side) warned: \(w)") } }
        stderr("each side's stderr: \(ProjectRoot.display(logs))/")
        stderr("memory read rate (\(threads) threads, 512 MiB, per round): \(memoryRead.map { "\($0)" }.joined(separator: ", ")) GB/s")
        if let best = bound["best_gflops"] as? Double {
            for o in order where o.hasPrefix("promptrepro") {
                guard let b = bound[o] as? [String: Any] else { continue }
                let ceilings = b.keys.filter { $0.hasPrefix("bound_best") }.sorted().map { "\($0) \(b[$0]!)×" }.joined(separator: ", ")
                stderr("\(o): \(b["gemm_gflop"]!) GFLOP of GEMMs = \(b["gemm_bound_seconds"]!) s at \(best) GFLOP/s (best measured); \(ceilings)")
                if let r = b["roofline_seconds"], let gb = b["decode_read_gb"] {
                    let roof = b.keys.filter { $0.hasPrefix("bound_roofline") }.sorted().map { "\($0) \(b[$0]!)×" }.joined(separator: ", ")
                    stderr("\(o): the decode reads \(gb) GB (\(b["decode_bound_seconds"]!) s at \(memoryRead.max()!) GB/s or its GFLOPs at \(best)); memory bound \(r) s; \(roof)")
                    if let seq = b["decode_sequential_bound_seconds"], let ab = b["decode_attention_read_gb"], let wf = b["decode_weight_gflop"] {
                        let took = b["decode_seconds"].map { "; the decode took \($0) s" } ?? ""
                        stderr("\(o): without overlap, \(wf) GFLOP of weight products, then \(ab) GB of attention reads: at least \(seq) s\(took)")
                    }
                }
            }
        }
    }

    /// Runs a child process; returns its stdout; its stderr goes to the file `log` (replaced).
    /// Throws naming the side, the command and the log's last lines.
    @discardableResult
    func runChild(_ exe: String, _ args: [String], side: String, log: String) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        let pipe = Pipe()
        p.standardOutput = pipe
        guard FileManager.default.createFile(atPath: log, contents: nil), let err = FileHandle(forWritingAtPath: log) else {
            throw CommandFailure("\(log): cannot write the child's log")
        }
        defer { try? err.close() }
        p.standardError = err
        do { try p.run() } catch { throw CommandFailure("\(side): cannot start \(exe) (\(error.localizedDescription)); run `make bench-reference`") }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            let tail = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").suffix(5).joined(separator: "\n")
            throw CommandFailure("\(side) failed (exit \(p.terminationStatus)): \(exe) \(args.joined(separator: " "))"
                                 + (tail.isEmpty ? "" : "\n\(tail)") + "\n(its stderr: \(log))")
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// Per-epoch losses, accuracies, train/eval seconds of our result JSON (`train --out`).
    static func summarizeOurs(_ path: String) throws -> [String: Any] {
        guard let obj = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any] else {
            throw CommandFailure("\(path): not a result JSON")
        }
        let steps = obj["steps"] as? [[String: Any]] ?? []
        let history = (obj["history"] as? [[String: Any]] ?? []).map { h -> [String: Any] in
            let e = h["epoch"] as? Int ?? 0
            return ["epoch": e, "losses": steps.filter { $0["epoch"] as? Int == e }.compactMap { $0["loss"] },
                    "accuracy": (h["metrics"] as? [String: Any])?["accuracy"] ?? NSNull(), "seconds": h["seconds"] ?? NSNull()]
        }
        let extras = obj["extras"] as? [String: Any] ?? [:]
        let seconds = (obj["history"] as? [[String: Any]] ?? []).compactMap { $0["seconds"] as? Double }.reduce(0, +)
        return ["history": history, "seconds": seconds, "eval_seconds": extras["eval_seconds"] ?? NSNull(),
                "train_flops": extras["train_flops"] ?? NSNull(), "eval_flops": extras["eval_flops"] ?? NSNull(),
                "decode_flops": extras["decode_flops"] ?? NSNull(), "decode_read_bytes": extras["decode_read_bytes"] ?? NSNull(),
                "decode_weight_flops": extras["decode_weight_flops"] ?? NSNull(),
                "decode_attention_read_bytes": extras["decode_attention_read_bytes"] ?? NSNull(),
                "decode_seconds": extras["decode_seconds"] ?? NSNull(),
                "decode_unfinished_rows": extras["decode_unfinished_rows"] ?? NSNull(),
                "decode_row_steps": (extras["decode_row_steps"] as? Double).flatMap { $0.isFinite ? Int($0) as Any : nil } ?? NSNull(),
                "decode": Self.ourDecode(obj["config"] as? [String: Any] ?? [:]),
                "best_predictions": obj["bestPredictions"] ?? obj["best_predictions"] ?? NSNull(),
                "decode_max_tokens": ((obj["config"] as? [String: Any])?["decode_max_tokens"]) ?? "max_target_length"]
    }

    /// Our side's greedy decoding in words, from the run's config: the token cap and the stop rule
    /// (`decode_stop`; absent: `no-label`, the default).
    static func ourDecode(_ config: [String: Any]) -> String {
        let cap = config["decode_max_tokens"].map { "\($0)" == "auto" ? "the task's longest label in tokens (decode_max_tokens auto)" : "decode_max_tokens \($0)" }
            ?? "max_target_length \(config["max_target_length"] ?? "?")"
        let stop = config["decode_stop"] as? String ?? DecodeStop.noLabel.rawValue
        return "greedy: up to \(cap) new tokens per row; stop: \(stop)"
            + (stop == DecodeStop.noLabel.rawValue ? " (a row ends at </s> or when its text can no longer be read as a label)" : " (a row ends at </s>)")
            + "; a batch decodes until every row has ended, its rows computed at every step"
    }

    /// A side's seconds of training and evaluation by its own timer, summed over its epochs: ours,
    /// the epochs' `seconds` (each from its first step to the end of its evaluation); PyTorch's,
    /// each epoch's `train_seconds` + `eval_seconds`. NaN when the record has none.
    static func epochSeconds(_ record: [String: Any], ours: Bool) -> Double {
        let history = record["history"] as? [[String: Any]] ?? []
        let per = history.map { h -> Double in
            ours ? (h["seconds"] as? Double ?? .nan) : (h["train_seconds"] as? Double ?? .nan) + (h["eval_seconds"] as? Double ?? .nan)
        }
        return per.isEmpty ? .nan : per.reduce(0, +)
    }

    /// User + system CPU seconds of the children waited for so far.
    static func childrenCPUSeconds() -> Double {
        var u = rusage()
        getrusage(RUSAGE_CHILDREN.rawValue, &u)
        return Double(u.ru_utime.tv_sec) + Double(u.ru_utime.tv_usec) / 1e6 + Double(u.ru_stime.tv_sec) + Double(u.ru_stime.tv_usec) / 1e6
    }

    static func stats(_ v: [Double]) -> [String: Any] {
        let s = v.sorted()
        guard !s.isEmpty else { return ["median": Double.nan, "min": Double.nan, "max": Double.nan, "all": v] }
        return ["median": round3(medianOf(v)), "min": round3(s.first!), "max": round3(s.last!), "all": v.map(round3)]
    }

    /// A random-init t5-small in Hugging Face layout (config.json, model.safetensors) with the t5
    /// tokenizer's files, written once: the weights `bench-one` builds (T5Model.random, seed 1).
    static func writeRandomT5Small(to dir: String, tokenizer: String) throws {
        let fm = FileManager.default
        let stamp = "\(dir)/.complete"
        if fm.fileExists(atPath: stamp) { return }
        guard fm.fileExists(atPath: "\(tokenizer)/tokenizer.json") || fm.fileExists(atPath: "\(tokenizer)/spiece.model") else {
            throw CommandFailure("\(tokenizer): no tokenizer.json or spiece.model\n---> HINT: pass --tokenizer DIR or set PROMPTREPRO_SHARED to the shared folder holding models/t5-tokenizer")
        }
        guard case .t5(let cfg)? = Architectures.known["t5-small"] else { throw CommandFailure("no t5-small architecture") }
        try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let m = try T5Model.random(config: cfg, key: RNGKey(seed: 1))
        var tensors: [String: Tensor] = [:]
        for (n, t) in m.parameters { tensors[n] = t }
        try SafeTensorsFile.write(tensors, to: "\(dir)/model.safetensors", metadata: ["generator": "promptrepro bench-e2e: T5Model.random seed 1"])
        try JSONSerialization.data(withJSONObject: try JSONSerialization.jsonObject(with: JSONEncoder().encode(cfg)), options: [.prettyPrinted, .sortedKeys])
            .write(to: URL(fileURLWithPath: "\(dir)/config.json"))
        for f in ["tokenizer.json", "spiece.model", "tokenizer_config.json", "special_tokens_map.json"] where fm.fileExists(atPath: "\(tokenizer)/\(f)") {
            try? fm.removeItem(atPath: "\(dir)/\(f)")
            try fm.copyItem(atPath: "\(tokenizer)/\(f)", toPath: "\(dir)/\(f)")
        }
        _ = fm.createFile(atPath: stamp, contents: Data())
    }
}
