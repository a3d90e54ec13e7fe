import Foundation
import Methods
import Models
import Support
import Tasks
import Tensor
import TestSupport
import Training
import XCTest

final class TrainerTests: XCTestCase {
    func config(_ method: String, task: String = "cb", epochs: Int = 3, seed: Int = 1) throws -> TrainConfig {
        var mc = try MethodConfig.defaults(method)
        mc.n = 8; mc.r = 4
        var c = try TrainConfig.preset("dpt-paper", method: mc, task: task, model: "embedded:t5-tiny", k: 8, seed: seed)
        c.epochs = epochs; c.batchSize = 4; c.evalLimit = 12; c.decodeMaxTokens = 3; c.maxSourceLength = 96
        return c
    }

    func trainer(_ c: TrainConfig, checkpoint: String? = nil) throws -> Trainer {
        let t = Trainer(config: c, dataDir: try sharedData(), manifestDir: "\(repoRoot)/Baselines/manifests", checkpoint: checkpoint)
        t.lockPath = "\(repoRoot)/Baselines/data.lock"
        return t
    }

    /// `mayWrite` false (a sweep worker whose claim was taken over) stops the run before it writes
    /// a checkpoint or its artifact: both are the new claim's (the old worker wrote over them).
    func testMayWriteFalseWritesNeitherCheckpointNorArtifact() throws {
        let dir = tempDir("maywrite")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        // Lost after the first epoch's checkpoint: the second epoch's is not written.
        var asked = 0
        let t = try trainer(try config("pt", epochs: 2), checkpoint: "\(dir)/ck.safetensors")
        t.artifactPath = "\(dir)/artifact.safetensors"
        t.mayWrite = { asked += 1; return asked == 1 }
        let r = try t.run()
        XCTAssertEqual(r.status, .interrupted)
        XCTAssertEqual(asked, 2)
        XCTAssertEqual(r.history.count, 2)
        let first = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/ck.safetensors"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/artifact.safetensors"))
        // Lost after every checkpoint was written: the artifact alone is not (its check is the third call).
        try FileManager.default.removeItem(atPath: "\(dir)/ck.safetensors")
        asked = 0
        let u = try trainer(try config("pt", epochs: 2), checkpoint: "\(dir)/ck.safetensors")
        u.artifactPath = "\(dir)/artifact.safetensors"
        u.mayWrite = { asked += 1; return asked <= 2 }
        XCTAssertEqual(try u.run().status, .interrupted)
        XCTAssertEqual(asked, 3)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/artifact.safetensors"))
        XCTAssertNotEqual(try Data(contentsOf: URL(fileURLWithPath: "\(dir)/ck.safetensors")), first, "the second epoch's checkpoint was written this time")
    }

    /// Same seed and thread count → identical losses, scores and predictions.
    func testSameSeedIsBitIdentical() throws {
        let a = try trainer(try config("dpt")).run(), b = try trainer(try config("dpt")).run()
        XCTAssertEqual(a.history.map(\.trainLoss), b.history.map(\.trainLoss))
        XCTAssertEqual(a.history.map(\.metrics), b.history.map(\.metrics))
        XCTAssertEqual(a.predictions, b.predictions)
        let c = try trainer(try config("dpt", seed: 2)).run()
        XCTAssertNotEqual(a.history.map(\.trainLoss), c.history.map(\.trainLoss))
        XCTAssertEqual(a.status, .done)
        XCTAssertEqual(a.manifest, "\(repoRoot)/Baselines/manifests/cb-k8-s1.json")
        // Invalid outputs (CB, DPT targets "0"/"1"/"2"), best epoch and last evaluation, in extras.
        func share(_ p: [String]?) -> Double { Double(p!.filter { !["0", "1", "2"].contains($0.trimmingCharacters(in: .whitespaces)) }.count) / 12 }
        XCTAssertEqual(a.extras?["invalid_fraction"], share(a.bestPredictions))
        XCTAssertEqual(a.extras?["invalid_fraction_last"], share(a.predictions))
    }

    /// LoRA's dropout (`dropout`, PEFT's `lora_dropout`) is the adapter's own nn.Dropout: it
    /// applies in training whatever the backbone's dropout. It applied only while the backbone's
    /// did, so under `backbone_dropout: false` (LoPT's preset: LoRA on GPT-2) or `dropout_rate: 0`
    /// a rate of 0.5 trained bit for bit as 0. With the backbone's on, its masks are as before.
    func testLoRADropoutAppliesWithTheBackboneDropoutOff() throws {
        func losses(_ p: Float, backbone: Bool, rate: Float) throws -> [Double] {
            var c = try config("lora", epochs: 2)
            c.method = try MethodConfig.defaults("lora")
            c.method.r = 4; c.method.dropout = p
            c.backboneDropout = backbone; c.dropoutRate = rate
            return try trainer(c).run().history.map(\.trainLoss)
        }
        XCTAssertNotEqual(try losses(0, backbone: false, rate: 0.1), try losses(0.5, backbone: false, rate: 0.1))
        XCTAssertNotEqual(try losses(0, backbone: true, rate: 0), try losses(0.5, backbone: true, rate: 0))
        XCTAssertNotEqual(try losses(0, backbone: true, rate: 0.1), try losses(0.5, backbone: true, rate: 0.1))
        // Off in both places: the same run whichever way it is switched off.
        XCTAssertEqual(try losses(0, backbone: false, rate: 0.1), try losses(0, backbone: true, rate: 0))
    }

    /// A sink sees a run's events in order: started, then per epoch its steps, an evaluation (every
    /// epoch here) and the epoch record, then done; the step records are the result's, and the
    /// console sink writes one progress line per epoch.
    func testSinkReceivesEventsInOrder() throws {
        var c = try config("pt", epochs: 2)
        c.evalEvery = 1
        var lines: [String] = []
        let t = Trainer(config: c, dataDir: try sharedData(), manifestDir: "\(repoRoot)/Baselines/manifests") { lines.append($0) }
        t.lockPath = "\(repoRoot)/Baselines/data.lock"
        var events: [String] = []
        var steps: [StepRecord] = []
        t.sinks.append(ClosureSink { e in
            switch e {
            case .started(let p): events.append("started \(p.totalSteps)")
            case .step(let r): events.append("step"); steps.append(r)
            case .evaluated(let epoch, _, _, _): events.append("evaluated \(epoch)")
            case .epoch(let r, let done, let total, _): events.append("epoch \(r.epoch) \(done)/\(total)")
            case .diverged: events.append("diverged")
            case .done(let status): events.append("done \(status)")
            }
        })
        let r = try t.run()
        XCTAssertEqual(r.status, .done)
        let perEpoch = (r.trainExamples + c.batchSize - 1) / c.batchSize
        let epoch = { (e: Int) in Array(repeating: "step", count: perEpoch) + ["evaluated \(e)", "epoch \(e) \(e)/2"] }
        XCTAssertEqual(events, ["started \(2 * perEpoch)"] + epoch(1) + epoch(2) + ["done done"])
        XCTAssertEqual(steps, r.steps)
        XCTAssertEqual(lines.count, 2)
        XCTAssertTrue(lines[0].hasPrefix("epoch 1/2 step \(perEpoch) loss "), lines[0])
    }

    /// A huge learning rate makes the loss non-finite: the run stops as diverged with its step.
    func testDivergenceIsDetected() throws {
        var c = try config("pt", epochs: 5)
        c.lr = 1e12
        c.schedule = .constant
        c.clipNorm = nil
        let r = try trainer(c).run()
        XCTAssertEqual(r.status, .diverged)
        XCTAssertNotNil(r.divergedAtStep)
    }

    /// Interrupted after epoch 2 (checkpoint written), then resumed: identical to an uninterrupted
    /// 4-epoch run (losses, scores, predictions). A checkpoint of another configuration is refused.
    func testCheckpointResumeIsExact() throws {
        let ck = NSTemporaryDirectory() + "ck-\(getpid())-\(UUID().uuidString.prefix(6)).safetensors"
        defer { try? FileManager.default.removeItem(atPath: ck) }
        let c = try config("respt", epochs: 4)
        let full = try trainer(c).run()
        let first = try trainer(c, checkpoint: ck)
        first.interruptAfterEpoch = 2
        let partial = try first.run()
        XCTAssertEqual(partial.status, .interrupted)
        XCTAssertEqual(partial.history.count, 2)
        let resumed = try trainer(c, checkpoint: ck).run()
        XCTAssertEqual(resumed.status, .done)
        XCTAssertEqual(resumed.history.map(\.trainLoss), full.history.map(\.trainLoss))
        XCTAssertEqual(resumed.history.map(\.metrics), full.history.map(\.metrics))
        XCTAssertEqual(resumed.predictions, full.predictions)
        // The FLOP total travels in the checkpoint: the resumed run counts the epochs before it too.
        XCTAssertEqual(resumed.extras?["train_flops"], full.extras?["train_flops"])
        var other = c
        other.lr = 0.1
        XCTAssertThrowsError(try trainer(other, checkpoint: ck).run()) { XCTAssertTrue("\($0)".contains("another configuration")) }
    }

    /// A checkpoint written under other numerics (another GEMM kernel, blocking or thread count)
    /// starts the run over under the current ones: resumed, its first epochs and the rest came
    /// from two setups, bit-identical to neither, while the record named only the last.
    func testCheckpointOfOtherNumericsStartsOver() throws {
        try XCTSkipIf(BLAS.kernel == .openblas, "this CPU runs OpenBLAS by default: no other kernel to resume under")
        let ck = NSTemporaryDirectory() + "ck-numerics-\(getpid()).safetensors"
        defer { try? FileManager.default.removeItem(atPath: ck); try? FileManager.default.removeItem(atPath: ck + ".other-numerics") }
        let c = try config("pt", epochs: 3)
        let first = try trainer(c, checkpoint: ck)
        first.interruptAfterEpoch = 1
        XCTAssertEqual(try first.run().status, .interrupted)
        let (resumed, fresh) = try BLAS.withKernel(.openblas) { (try trainer(c, checkpoint: ck).run(), try trainer(c).run()) }
        XCTAssertEqual(resumed.status, .done)
        XCTAssertEqual(resumed.history.map(\.trainLoss), fresh.history.map(\.trainLoss))
        XCTAssertEqual(resumed.steps?.map(\.gradNorm), fresh.steps?.map(\.gradNorm))
        // Set aside by its reason (it reads fine), not as unreadable.
        XCTAssertTrue(FileManager.default.fileExists(atPath: ck + ".other-numerics"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: ck + ".unreadable"))
        // Under the same numerics it resumes (the exact-resume test above covers the numbers).
        try FileManager.default.removeItem(atPath: ck + ".other-numerics")
        try? FileManager.default.removeItem(atPath: ck)
        let again = try trainer(c, checkpoint: ck)
        again.interruptAfterEpoch = 1
        _ = try again.run()
        XCTAssertEqual(try trainer(c, checkpoint: ck).run().history.count, 3)
        XCTAssertFalse(FileManager.default.fileExists(atPath: ck + ".other-numerics"), "a checkpoint of the same numerics was set aside")
        // Another mc / nc (a host of other cache sizes, a calibration) changes no bit: it resumes,
        // with the numbers of a run that never stopped.
        let t = try XCTUnwrap(BLAS.kernel.tile), saved = BLAS.blockings
        defer { BLAS.blockings = saved }
        let third = try trainer(c, checkpoint: ck)
        third.interruptAfterEpoch = 1
        _ = try third.run()
        BLAS.blockings[BLAS.kernel] = GEMMBlocking(mc: 5 * t.mr, kc: t.kc, nc: 3 * t.nr)
        let moved = try trainer(c, checkpoint: ck).run()
        XCTAssertFalse(FileManager.default.fileExists(atPath: ck + ".other-numerics"), "a checkpoint of another mc / nc only was set aside")
        XCTAssertEqual(moved.history.map(\.trainLoss), try trainer(c).run().history.map(\.trainLoss))
        XCTAssertEqual(moved.history.count, 3)
    }

    /// What of a numerics string changes bits (hand-written strings of the record's form).
    func testNumericsThatChangeBits() {
        XCTAssertEqual(Trainer.bitsOfNumerics("promptrepro avx512 12x32 mc 4092 kc 384 nc 160 + openblas 0.3.21 Cooperlake (calibrated); threads 2"),
                       "promptrepro avx512 12x32 kc 384 + openblas 0.3.21 Cooperlake; threads 2")
        XCTAssertEqual(Trainer.bitsOfNumerics("promptrepro 0.1.0; swift 6; promptrepro avx2 6x16 mc 2400 kc 256 nc 128 + openblas Zen; threads 1"),
                       "promptrepro 0.1.0; swift 6; promptrepro avx2 6x16 kc 256 + openblas Zen; threads 1")
        XCTAssertEqual(Trainer.bitsOfNumerics("openblas 0.3.21 Zen; threads 2"), "openblas 0.3.21 Zen; threads 2")
        XCTAssertNotEqual(Trainer.bitsOfNumerics("promptrepro avx512 12x32 mc 4092 kc 384 nc 160 + openblas Zen; threads 2"),
                          Trainer.bitsOfNumerics("promptrepro avx512 12x32 mc 4092 kc 256 nc 160 + openblas Zen; threads 2"))
        // Records before 2026-12-07 name OpenBLAS's core only: the same setup with and without the
        // release agrees; two known releases, or another core, do not.
        let old = "promptrepro avx512 12x32 mc 4092 kc 384 nc 160 + openblas Cooperlake; threads 2"
        let new = "promptrepro avx512 12x32 mc 2400 kc 384 nc 320 + openblas 0.3.21 Cooperlake; threads 2"
        XCTAssertTrue(Trainer.numericsAgree(old, new))
        XCTAssertTrue(Trainer.numericsAgree(new, old))
        XCTAssertFalse(Trainer.numericsAgree(new, new.replacingOccurrences(of: "0.3.21", with: "0.3.26")))
        XCTAssertFalse(Trainer.numericsAgree(old, new.replacingOccurrences(of: "Cooperlake", with: "Zen")))
        XCTAssertFalse(Trainer.numericsAgree(old, new.replacingOccurrences(of: "threads 2", with: "threads 1")))
        XCTAssertEqual(Trainer.distinctNumerics([old, new]).count, 1)
        XCTAssertEqual(Trainer.distinctNumerics([new, new.replacingOccurrences(of: "0.3.21", with: "0.3.26")]).count, 2)
        XCTAssertEqual(Trainer.distinctNumerics([old, new, new.replacingOccurrences(of: "0.3.21", with: "0.3.26")]).count, 2)
        XCTAssertEqual(Trainer.distinctNumerics([old, old.replacingOccurrences(of: "threads 2", with: "threads 1")]).count, 2)
    }

    /// A checkpoint that cannot be read whole starts the run over (the same numbers as a fresh
    /// run), set aside as `.unreadable`: a training record that did not decode was dropped while
    /// the tensors resumed, so the epochs restarted at 1 from a later step and the run was stored
    /// as done with other results. A truncated file does the same, and so does one with a flipped
    /// bit in its tensor data (it resumed silently from the changed value before the checksum).
    func testUnreadableCheckpointStartsOver() throws {
        let c = try config("pt", epochs: 3)
        let full = try trainer(c).run()
        for damage in ["record", "truncate", "flip"] {
            let ck = NSTemporaryDirectory() + "ckbad-\(getpid())-\(UUID().uuidString.prefix(6)).safetensors"
            defer { try? FileManager.default.removeItem(atPath: ck); try? FileManager.default.removeItem(atPath: ck + ".unreadable") }
            let first = try trainer(c, checkpoint: ck)
            first.interruptAfterEpoch = 2
            XCTAssertEqual(try first.run().status, .interrupted)
            var bytes = try Data(contentsOf: URL(fileURLWithPath: ck))
            if damage == "record" {
                // Same length, so the header stays valid: the record's "history" key becomes "hixtory".
                let key = Data("\\\"history\\\"".utf8)
                let at = try XCTUnwrap(bytes.range(of: key), "no history key in the header")
                bytes[at.lowerBound + 4] = UInt8(ascii: "x")
            } else if damage == "flip" {
                // The last bytes of the file are the last tensor's values: one bit of one float.
                bytes[bytes.count - 7] ^= 0x10
            } else {
                bytes = bytes.prefix(bytes.count - 16)
            }
            try bytes.write(to: URL(fileURLWithPath: ck))
            let resumed = try trainer(c, checkpoint: ck).run()
            XCTAssertEqual(resumed.status, .done, damage)
            XCTAssertEqual(resumed.history.map(\.epoch), [1, 2, 3], damage)
            XCTAssertEqual(resumed.history.map(\.trainLoss), full.history.map(\.trainLoss), damage)
            XCTAssertEqual(resumed.predictions, full.predictions, damage)
            XCTAssertTrue(FileManager.default.fileExists(atPath: ck + ".unreadable"), damage)
        }
    }

    /// A finished run records its cost in `extras` (run_metrics): the step and evaluation times from
    /// its own records, a deterministic GEMM FLOP count, the process's peak RSS, and the artifact's
    /// file size (or 4 bytes per state value without one). Measuring changes no number of the run.
    func testRunRecordsEfficiency() throws {
        let c = try config("pt", epochs: 2)
        let artifact = NSTemporaryDirectory() + "eff-\(getpid())-\(UUID().uuidString.prefix(6)).safetensors"
        defer { try? FileManager.default.removeItem(atPath: artifact) }
        let t = try trainer(c)
        t.artifactPath = artifact
        let r = try t.run()
        let e = try XCTUnwrap(r.extras)
        for name in ["peak_rss_bytes", "seconds_per_step", "train_seconds", "eval_seconds", "trainable_params", "artifact_bytes",
                     "train_flops", "flops_per_step"] {
            XCTAssertNotNil(e[name], name)
        }
        let steps = try XCTUnwrap(r.steps).map(\.seconds)
        XCTAssertEqual(e["train_seconds"]!, steps.reduce(0, +), accuracy: 1e-9)
        XCTAssertEqual(e["seconds_per_step"]!, steps.reduce(0, +) / Double(steps.count), accuracy: 1e-9)
        XCTAssertEqual(e["flops_per_step"]! * Double(steps.count), e["train_flops"]!, accuracy: 1)
        XCTAssertGreaterThan(e["flops_per_step"]!, 0)
        XCTAssertGreaterThan(e["eval_seconds"]!, 0)
        // This run evaluates by greedy decoding: its decodes' share of the evaluation.
        XCTAssertGreaterThan(e["decode_read_bytes"]!, 0)
        XCTAssertGreaterThan(e["decode_flops"]!, 0)
        XCTAssertLessThanOrEqual(e["decode_flops"]!, e["eval_flops"]!)
        XCTAssertGreaterThan(e["decode_attention_read_bytes"]!, 0)
        XCTAssertLessThan(e["decode_attention_read_bytes"]!, e["decode_read_bytes"]!)
        XCTAssertGreaterThan(e["decode_weight_flops"]!, 0)
        XCTAssertLessThan(e["decode_weight_flops"]!, e["decode_flops"]!)
        XCTAssertGreaterThan(e["decode_seconds"]!, 0)
        XCTAssertLessThanOrEqual(e["decode_seconds"]!, e["eval_seconds"]!)
        XCTAssertGreaterThan(e["decode_row_steps"]!, 0)
        XCTAssertGreaterThan(e["peak_rss_bytes"]!, 1_048_576)
        XCTAssertEqual(e["trainable_params"], Double(r.trainableParams))
        let size = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: artifact)[.size] as? Int)
        XCTAssertEqual(e["artifact_bytes"], Double(size))
        let plain = try trainer(c).run()
        XCTAssertEqual(plain.extras?["artifact_bytes"], Double(4 * plain.trainableParams))  // PT's state: its prompt
        XCTAssertEqual(plain.extras?["train_flops"], e["train_flops"])
        XCTAssertEqual(plain.extras?["decode_read_bytes"], e["decode_read_bytes"])
        XCTAssertEqual(plain.extras?["decode_attention_read_bytes"], e["decode_attention_read_bytes"])
        XCTAssertEqual(plain.extras?["decode_weight_flops"], e["decode_weight_flops"])
        XCTAssertEqual(plain.history.map(\.trainLoss), r.history.map(\.trainLoss))
        XCTAssertEqual(plain.history.map(\.metrics), r.history.map(\.metrics))
    }

    /// A prompt method's checkpoint holds its trainable tensors and their optimizer state only
    /// (AdamW: two moments each, plus the step), never a backbone weight.
    func testCheckpointHoldsOnlyTrainableState() throws {
        let ck = NSTemporaryDirectory() + "ck-\(getpid())-\(UUID().uuidString.prefix(6)).safetensors"
        defer { try? FileManager.default.removeItem(atPath: ck) }
        let r = try trainer(try config("dpt", epochs: 1), checkpoint: ck).run()
        let f = try SafeTensorsFile(path: ck)
        let method = f.names.filter { !$0.hasPrefix("opt.") }
        XCTAssertEqual(Set(method), ["prefix_first", "prefix_second"])
        let values = try f.names.map { try f.tensor($0).count }.reduce(0, +)
        XCTAssertEqual(values, 3 * r.trainableParams + 1)
    }

    /// `decode_max_tokens: auto` decodes the longest label target (</s> included) + 1 new tokens:
    /// CB's targets "0"/"1"/"2" are 2 byte tokens on the embedded backbone, so auto = 3, the same
    /// predictions as the fixed cap 3; training is untouched. The config round-trips "auto".
    func testDecodeAutoIsLongestLabelPlusOne() throws {
        var c = try config("dpt", epochs: 2)
        let fixed = try trainer(c).run()
        c.decodeMaxTokens = .auto
        let auto = try trainer(c).run()
        XCTAssertEqual(auto.predictions, fixed.predictions)
        XCTAssertEqual(auto.history.map(\.trainLoss), fixed.history.map(\.trainLoss))
        XCTAssertNotNil(auto.extras?["decode_unfinished_rows"])
        XCTAssertNil(fixed.extras?["decode_unfinished_rows"])
        // The cap itself: 2 byte tokens + 1 on the embedded backbone; `▁ 0 </s>` + 1 with the t5 tokenizer.
        let def = try TaskRegistry.definition("cb")
        let val = try DataLoader.load(def, split: .validation, dataDir: try sharedData())
        let ex = try Templates.examples(val, set: .dpt, training: false)
        let t = try trainer(c)
        XCTAssertEqual(try t.decodeLimit(ex, data: val, tok: try Tokenizers.load(directory: try ModelFiles.locate("embedded:t5-tiny")), def: def), 3)
        if let t5 = sharedItem("models/t5-tokenizer") {
            XCTAssertEqual(try t.decodeLimit(ex, data: val, tok: try Tokenizers.load(directory: t5), def: def), 4)
        }
        XCTAssertTrue(c.json.contains("\"decode_max_tokens\":\"auto\""), c.json)
        XCTAssertEqual(try JSONDecoder().decode(TrainConfig.self, from: Data(c.json.utf8)).decodeMaxTokens, .auto)
        var wsc = try config("dpt", task: "wsc", epochs: 1)
        wsc.decodeMaxTokens = .auto
        XCTAssertThrowsError(try trainer(wsc).run()) { XCTAssertTrue("\($0)".contains("decode_max_tokens auto"), "\($0)") }
    }

    func testWSCTrainsOnLabelOneAndScoresAll() throws {
        var c = try config("dpt", task: "wsc", epochs: 1)
        c.evalLimit = nil
        c.decodeMaxTokens = 4
        let r = try trainer(c).run()
        XCTAssertEqual(r.trainExamples, 8)
        XCTAssertEqual(r.evalExamples, 104)
        XCTAssertNotNil(r.last["accuracy_label1"])
    }

    func testGPT2VerbalizerRun() throws {
        var mc = try MethodConfig.defaults("lopt1")
        mc.n = 4; mc.r = 2
        var c = try TrainConfig.preset("lopt-paper", method: mc, task: "sst2", model: "embedded:gpt2-tiny", k: 16, seed: 1)
        c.epochs = 2; c.evalLimit = 20
        let r = try trainer(c).run()
        XCTAssertEqual(r.status, .done)
        XCTAssertTrue(r.predictions!.allSatisfy { ["negative", "positive"].contains($0) })
        XCTAssertEqual(r.extras?["invalid_fraction"], 0)  // rank classification always names a label
    }

    /// Every method on both architectures through the trainer's own loss (T5: seq2seq cross-entropy
    /// on the generated target; GPT-2: the verbaliser's class cross-entropy at the mask position),
    /// under its default protocol: within three optimizer steps every trainable tensor receives a
    /// non-zero gradient (DePT's A and LoRA's A only once their zero-initialised B has moved), and
    /// every trainable tensor ends up changed. GPT-2 prompts once got no gradient at all here.
    func testEveryMethodTrainsThroughTheTrainerLoss() throws {
        // Three steps: under a warm-up the first step has learning rate 0, so a zero-initialised B
        // first moves at step 2 and its partner A first gets a gradient at step 3.
        let data = try sharedData()
        for (model, task) in [("embedded:t5-tiny", "cb"), ("embedded:gpt2-tiny", "sst2")] {
            for method in MethodRegistry.names {
                var mc = try MethodConfig.defaults(method)
                mc.n = 6; mc.r = 3
                if method == "dept" { mc.m = 4; mc.s = 128 }
                if method == "respt" { mc.m = 16 }
                var c = try TrainConfig.preset(TrainConfig.defaultProtocol(for: method), method: mc, task: task, model: model, k: 8, seed: 2)
                if model.contains("gpt2") { c.templates = .lopt }
                c.batchSize = 4; c.evalLimit = 4; c.decodeMaxTokens = 2; c.maxSourceLength = 64; c.epochs = 5
                let dir = NSTemporaryDirectory() + "trainer-grad-\(getpid())-\(method)"
                defer { try? FileManager.default.removeItem(atPath: dir) }
                func run(steps: Int) throws -> (TrainResult, [String: Tensor]) {
                    var cc = c
                    cc.maxSteps = steps
                    let t = Trainer(config: cc, dataDir: data, manifestDir: "\(repoRoot)/Baselines/manifests")
                    t.lockPath = "\(repoRoot)/Baselines/data.lock"
                    t.artifactPath = "\(dir)/\(steps).safetensors"
                    let r = try t.run()
                    let f = try SafeTensorsFile(path: t.artifactPath!)
                    var out: [String: Tensor] = [:]
                    for n in f.names { out[n] = try f.tensor(n).detached() }
                    return (r, out)
                }
                let label = "\(method) on \(model)"
                let (_, initial) = try run(steps: 0)
                let (r, trained) = try run(steps: 3)
                let steps = try XCTUnwrap(r.steps, label)
                XCTAssertEqual(steps.count, 3, label)
                XCTAssertFalse(initial.isEmpty, label)
                XCTAssertFalse(steps[0].gradNorms.isEmpty, label)
                for name in steps[0].gradNorms.keys.sorted() {  // the trainable tensors (not LoPT-2's frozen X0)
                    let g = steps.map { $0.gradNorms[name] ?? 0 }.max() ?? 0
                    XCTAssertGreaterThan(g, 0, "\(label): '\(name)' got no gradient in three steps")
                    XCTAssertTrue(initial[name]!.array != trained[name]!.array, "\(label): '\(name)' did not change")
                }
                XCTAssertTrue(steps.allSatisfy { $0.loss.isFinite && $0.gradNorm > 0 && !$0.lr.isEmpty }, label)
            }
        }
    }

    /// `init: text:…` (PEFT TEXT init, DePT's default) and `labels` (Lester et al.): the prompt's rows
    /// are the token embeddings of the text or of the label words, cycled to n; a factorised prompt
    /// refuses them with the reason.
    func testTextAndLabelInitialisation() throws {
        let data = try sharedData()
        for (model, task, initialization, method) in [("embedded:t5-tiny", "cb", "text:Classify this text", "pt"),
                                                      ("embedded:gpt2-tiny", "sst2", "labels", "pt"),
                                                      ("embedded:t5-tiny", "cb", "labels", "dept")] {
            var mc = try MethodConfig.defaults(method)
            mc.n = 7; mc.m = 7; mc.r = 2; mc.s = 64
            mc.initialization = initialization
            var c = try TrainConfig.preset(model.contains("gpt2") ? "lopt-paper" : TrainConfig.defaultProtocol(for: method), method: mc, task: task,
                                           model: model, k: 8, seed: 1)
            c.maxSteps = 0; c.evalLimit = 2; c.decodeMaxTokens = 1
            // max_steps 0 evaluates the initial state: DePT's s covers every input position.
            c.maxSourceLength = min(c.maxSourceLength, mc.s)
            XCTAssertEqual(c.problems, [])
            // A thread count past the pool (256) is refused: it was recorded while 256 ran.
            var many = c
            many.threads = 1000
            XCTAssertEqual(many.problems, ["threads must be ≤ 256 (the thread pool's size), got 1000"])
            let t = Trainer(config: c, dataDir: data, manifestDir: "\(repoRoot)/Baselines/manifests")
            t.lockPath = "\(repoRoot)/Baselines/data.lock"
            let path = NSTemporaryDirectory() + "init-\(getpid())-\(method).safetensors"
            defer { try? FileManager.default.removeItem(atPath: path) }
            t.artifactPath = path
            _ = try t.run()
            let prompt = try SafeTensorsFile(path: path).tensor("prompt")
            let dir = try EmbeddedBackbones.directory(model.replacingOccurrences(of: "embedded:", with: ""))
            let tok = try Tokenizers.load(directory: dir)
            let text = initialization == "labels" ? (model.contains("gpt2") ? "negative positive" : "0 1 2") : "Classify this text"
            let ids = tok.encode(text)
            let table: Tensor = model.contains("gpt2") ? try GPT2Model.load(directory: dir).wte : try T5Model.load(directory: dir).shared
            let d = table.shape[1]
            for i in 0..<7 {
                let row = Int(ids[i % ids.count])
                XCTAssertEqual(Array(prompt.array[(i * d)..<((i + 1) * d)]), Array(table.array[(row * d)..<((row + 1) * d)]), "\(method) \(initialization) row \(i)")
            }
        }
        var mc = try MethodConfig.defaults("dpt")
        mc.initialization = "text:hello"
        let backbone = try T5Model.load(directory: try EmbeddedBackbones.directory("t5-tiny"))
        XCTAssertThrowsError(try MethodRegistry.make(mc, backbone: backbone, key: RNGKey(seed: 1))) { XCTAssertTrue("\($0)".contains("factorised"), "\($0)") }
    }
}

/// Each method's `initRules` are the inits it builds by: every listed one builds (text with
/// tokens), an unlisted one is refused by building and by `initProblem` alike, before a run starts.
final class InitRulesTests: XCTestCase {
    func testInitRulesAgreeWithWhatEachMethodBuilds() throws {
        let backbone = try T5Model.load(directory: try EmbeddedBackbones.directory("t5-tiny"))
        for name in MethodRegistry.names {
            let t = try MethodRegistry.type(name)
            guard t.configKeys.contains("init") else {
                XCTAssertTrue(t.initRules.isEmpty, "\(name) reads no init but lists \(t.initRules)")
                continue
            }
            XCTAssertFalse(t.initRules.isEmpty, name)
            for rule in ["default"] + t.initRules + ["zzz", "text:hi", "labels", "uniform", "normal", "sampled-vocab"] {
                var mc = try MethodConfig.defaults(name)
                mc.initialization = rule == "text:<string>" ? "text:hello" : rule
                mc.initTokens = [5, 6, 7]
                let listed = mc.initProblem() == nil
                let builds = (try? MethodRegistry.make(mc, backbone: backbone, key: RNGKey(seed: 1))) != nil
                XCTAssertEqual(listed, builds, "\(name) init \(mc.initialization): initProblem \(mc.initProblem() ?? "none")")
            }
        }
        var mc = try MethodConfig.defaults("pt")
        mc.initialization = "zzz"
        XCTAssertEqual(mc.initProblem(), "method pt: unknown init 'zzz' (one of: default, sampled-vocab, respt-vocab, uniform, normal, text:<string>, labels)")
    }
}

/// Best-epoch selection follows the selection metric's registry direction.
final class SelectionDirectionTests: XCTestCase {
    func testImprovesRespectsDirection() {
        XCTAssertTrue(Trainer.improves(60, over: 50, higherIsBetter: true))
        XCTAssertFalse(Trainer.improves(50, over: 50, higherIsBetter: true))  // ties keep the earlier epoch
        XCTAssertFalse(Trainer.improves(40, over: 50, higherIsBetter: true))
        XCTAssertTrue(Trainer.improves(40, over: 50, higherIsBetter: false))
        XCTAssertFalse(Trainer.improves(60, over: 50, higherIsBetter: false))
        XCTAssertFalse(Trainer.improves(nil, over: 50, higherIsBetter: false))
        XCTAssertTrue(Trainer.improves(1e9, over: nil, higherIsBetter: false))
    }
}
