import Foundation
import Methods
import Models
import Tasks
@testable import Training
import XCTest

/// The presets `train` starts from. Full fine-tuning and LoRA once inherited a prompt learning
/// rate: on GPT-2 every method ran lopt-paper (Adafactor, lr 0.3; an FT run's loss went 0.71 →
/// 11.39 in 5 steps and was stored as done), and LoRA on T5 ran dpt-paper (AdamW, lr 0.3). The
/// values below are the sources' own: METHODS §2.1 (ResPT's FT script), §2.6 (PEZ/LoPT), and
/// Hu et al. 2021, LoRA, Table 9 (RoBERTa-base GLUE: lr 5e-4, warm-up ratio 0.06, linear decay)
/// with the weight decay 0.1 of its repository's GLUE scripts.
final class PresetTests: XCTestCase {
    func preset(_ method: String, gpt2: Bool, task: String = "sst2") throws -> TrainConfig {
        try TrainConfig.defaultPreset(method: try MethodConfig.defaults(method), task: task, model: gpt2 ? "gpt2" : "t5-small", k: 16, seed: 1, gpt2: gpt2)
    }

    /// respt-code follows ResPT's code (METHODS §2.3): prompt + text cut to 512 together, targets
    /// tokenized to and decoded up to `task_to_target_len` (generate's max_length counts the
    /// decoder's start token). It kept 512 text tokens on top of the prompt and 128 target tokens.
    func testResPTCodeCutsPromptAndTextTo512AndTargetsToItsLengths() throws {
        for (method, task, rows, target) in [("respt", "cb", 100, 5), ("pt", "record", 100, 10), ("dept", "boolq", 60, 2), ("dpt", "wsc", 100, 3),
                                             ("ft", "rte", 0, 5), ("lora", "multirc", 0, 5)] {
            var mc = try MethodConfig.defaults(method)
            if method == "respt" { mc.n = 10 }
            let c = try TrainConfig.preset("respt-code", method: mc, task: task, model: "t5-small", k: 16, seed: 1)
            XCTAssertEqual(c.maxSourceLength, 512 - (method == "respt" ? 10 : rows), method)
            XCTAssertEqual(c.maxTargetLength, target, "\(method) \(task)")
            XCTAssertEqual(c.decodeMaxTokens, .tokens(target - 1), "\(method) \(task)")
        }
    }

    func testPromptMethodsOnGPT2RunLoPTsOptimizer() throws {
        for m in ["pt", "lopt1", "lopt2", "dpt"] {
            let c = try preset(m, gpt2: true)
            XCTAssertEqual(c.protocolName, "lopt-paper", m)
            XCTAssertEqual(c.optimizer, .adafactor, m)
            XCTAssertEqual(c.lr, 0.3, m)
            XCTAssertEqual(c.templates, .lopt, m)
        }
    }

    func testFullFineTuningAndLoRAKeepTheirOwnOptimizer() throws {
        for gpt2 in [false, true] {
            let ft = try preset("ft", gpt2: gpt2)
            XCTAssertEqual(ft.optimizer, .adamwHF)
            XCTAssertEqual(ft.lr, 3e-4)
            XCTAssertEqual(ft.weightDecay, 1e-5)
            XCTAssertNil(ft.clipNorm)
            let lora = try preset("lora", gpt2: gpt2)
            XCTAssertEqual(lora.protocolName, "lora-paper")
            XCTAssertEqual(lora.optimizer, .adamwTorch)
            XCTAssertEqual(lora.lr, 5e-4)
            XCTAssertEqual(lora.weightDecay, 0.1)
            XCTAssertEqual(lora.warmupRatio, 0.06)
            XCTAssertEqual(lora.schedule, .linear)
        }
        // On GPT-2 they read their inputs as LoPT's GPT-2 runs do: verbaliser templates, its batch
        // size and input length (SST-2 16 and 128, AG News 16 and 256), no backbone dropout.
        for m in ["ft", "lora"] {
            for (task, length) in [("sst2", 128), ("agnews", 256)] {
                let c = try preset(m, gpt2: true, task: task)
                XCTAssertEqual(c.templates, .lopt, m)
                XCTAssertEqual(c.batchSize, 16, m)
                XCTAssertEqual(c.maxSourceLength, length, m)
                XCTAssertFalse(c.backboneDropout, m)
            }
            XCTAssertEqual(try preset(m, gpt2: false, task: "cb").templates, .dpt, m)
        }
    }

    /// METHODS §2.1, "Harness recommendation": FT on T5 takes ResPT's optimizer but the prompt
    /// methods' batch (16), epochs (100) and input length (256); the preset had ResPT's own batch 4,
    /// 50 epochs and 512 tokens (a review of the methods against METHODS.md found it).
    func testFullFineTuningOnT5TakesThePromptMethodsBatchEpochsAndLength() throws {
        let ft = try preset("ft", gpt2: false, task: "boolq"), pt = try preset("pt", gpt2: false, task: "boolq")
        XCTAssertEqual(ft.protocolName, "ft-respt-code")
        XCTAssertEqual([ft.batchSize, ft.epochs, ft.maxSourceLength], [16, 100, 256])
        XCTAssertEqual([ft.batchSize, ft.epochs, ft.maxSourceLength], [pt.batchSize, pt.epochs, pt.maxSourceLength])
        XCTAssertEqual(ft.schedule, .constant)
    }

    /// DePT (METHODS §2.4): its code warms up 500 steps of its max_steps (its own runs of these
    /// tasks, ../shared/models/dept-reference: 30,000, WiC and WSC 20,000) and initialises P from
    /// the text "Classify this text is postive or not:". The harness trains it for the other
    /// methods' epochs, so the warm-up is that share: a fixed 500 kept a 20-step few-shot run at
    /// 0–3.8 % of its learning rate. The text is DePT's default init.
    func testDePTWarmsUpForItsCodesShareAndStartsFromItsText() throws {
        let c = try preset("dept", gpt2: false, task: "cb")
        XCTAssertEqual(c.protocolName, "dept-code")
        XCTAssertNil(c.warmupSteps)
        XCTAssertEqual(c.warmupRatio, 500.0 / 30_000)
        XCTAssertEqual(try preset("dept", gpt2: false, task: "wic").warmupRatio, 500.0 / 20_000)
        XCTAssertEqual(c.method.initialization, "text:Classify this text is postive or not:")
        XCTAssertEqual(c.batchSize, 32)
        // DePT's train.py: generation_max_length defaults to 20, and HF's generate(max_length)
        // counts the decoder start token (19 new tokens); targets no longer than 20 tokens.
        XCTAssertEqual(c.decodeMaxTokens, .tokens(19))
        XCTAssertEqual(c.maxTargetLength, 20)
        XCTAssertNil(try preset("dpt", gpt2: false, task: "cb").decodeMaxTokens)
        // `init: default` names the same rule (specs and `train` resolve it, so the two are one
        // identity); likewise PT's (sampled-vocab).
        for m in ["dept", "pt"] {
            var d = try MethodConfig.defaults(m); d.initialization = "default"
            XCTAssertEqual(d.resolvingDefaultInit(), try MethodConfig.defaults(m), m)
        }
        XCTAssertEqual(try MethodConfig.defaults("pt").initialization, "sampled-vocab")
    }

    /// DePT's code keeps CB's best macro-F1 checkpoint (METHODS §6.10: "CB selected by
    /// macro-F1"); its preset selected on the task's accuracy. Only CB, only DePT's preset; the
    /// choice shows in the run's protocol label.
    func testDePTSelectsCBOnMacroF1() throws {
        let cb = try preset("dept", gpt2: false, task: "cb")
        XCTAssertEqual(cb.selectionMetric, "macro_f1")
        XCTAssertEqual(cb.variantLabel, "cb: best epoch by macro_f1")
        XCTAssertNil(try preset("dept", gpt2: false, task: "rte").selectionMetric)
        XCTAssertNil(try preset("dpt", gpt2: false, task: "cb").selectionMetric)
        XCTAssertTrue(String(decoding: try JSONEncoder().encode(try preset("dpt", gpt2: false, task: "cb")), as: UTF8.self).contains("selection_metric") == false,
                      "unset, the key is not encoded: other runs keep their identities")
    }

    /// DePT's A and B train at 5e-3 (METHODS §2.4 "Harness": one A/B rate from its README grid,
    /// kept fixed) under every preset; only dept-code set it, so under dpt-paper, lopt-paper (DePT
    /// on GPT-2 by default) and the others A/B trained at the prompt's lr 0.3. Methods without a
    /// secondary group keep it unset (their identities do not change).
    func testDePTsLowRankPairTrainsAtItsOwnRateUnderEveryPreset() throws {
        let dept = try MethodConfig.defaults("dept")
        for name in TrainConfig.protocols {
            let c = try TrainConfig.preset(name, method: dept, task: "cb", model: "t5-small", k: 16, seed: 1)
            XCTAssertEqual(c.lrSecondary, 5e-3, name)
            XCTAssertNil(try TrainConfig.preset(name, method: try MethodConfig.defaults("pt"), task: "cb", model: "t5-small", k: 16, seed: 1).lrSecondary, name)
        }
        XCTAssertEqual(try preset("dept", gpt2: true).protocolName, "lopt-paper")
        XCTAssertEqual(try preset("dept", gpt2: true).lrSecondary, 5e-3)
        XCTAssertEqual(try preset("dept", gpt2: true).lr, 0.3)
    }

    /// lopt-paper's templates: PEZ's fill-in-the-blank with word answers on GPT-2 (LoPT Table 1);
    /// on T5 (LoPT Table 2) SST-2 and AG News take the T5 format the table's PT and DePT rows use
    /// ("sentence: …" → "0"/"1"): LoPT's T5 SST-2 rows read "{sentence}. It was" → negative/positive.
    func testLoPTPaperTemplatesFollowTheBackbone() throws {
        let lopt1 = try MethodConfig.defaults("lopt1")
        for (task, model, expected) in [("sst2", "t5-base", TemplateSet.dpt), ("agnews", "embedded:t5-tiny", .dpt), ("cb", "t5-base", .lopt),
                                        ("sst2", "gpt2-large", .lopt), ("agnews", "embedded:gpt2-tiny", .lopt)] {
            XCTAssertEqual(try TrainConfig.preset("lopt-paper", method: lopt1, task: task, model: model, k: 16, seed: 1).templates, expected, "\(task) \(model)")
        }
        let sst2 = try TaskRegistry.definition("sst2")
        XCTAssertEqual(try sst2.template(.dpt).source, "sentence: {sentence}")
    }

    /// A prompt that cannot fit is refused before training: on GPT-2 prompt rows + input beyond
    /// n_positions (n 450 + 128 failed on a validation text after training), anywhere a batch's
    /// attention scores beyond the machine's memory (n 100000 on T5 aborted in an allocation).
    func testPromptsThatCannotFitAreRefusedBeforeTraining() throws {
        func config(_ method: String, gpt2: Bool, n: Int? = nil, source: Int? = nil) throws -> TrainConfig {
            var c = try preset(method, gpt2: gpt2)
            if let n { c.method.n = n; c.method.m = n }
            if let source { c.maxSourceLength = source }
            return c
        }
        let gpt2 = ModelConfig.gpt2(Architectures.gpt2Large), t5 = ModelConfig.t5(Architectures.t5Small)
        XCTAssertNoThrow(try TrainingSession.checkSequenceFits(try config("pt", gpt2: true, n: 896, source: 128), architecture: gpt2, configPath: "m/config.json"))
        XCTAssertThrowsError(try TrainingSession.checkSequenceFits(try config("pt", gpt2: true, n: 897, source: 128), architecture: gpt2, configPath: "m/config.json")) {
            XCTAssertTrue("\($0)".contains("m/config.json: n_positions is 1024, while n 897 (prompt rows) + max_source_length 128 = 1025 positions; lower n or max_source_length (together ≤ 1024)"), "\($0)")
        }
        XCTAssertThrowsError(try TrainingSession.checkSequenceFits(try config("dept", gpt2: true, n: 1000, source: 128), architecture: gpt2, configPath: "m/config.json")) {
            XCTAssertTrue("\($0)".contains("m 1000 (prompt rows)"), "\($0)")
        }
        XCTAssertThrowsError(try TrainingSession.checkSequenceFits(try config("lora", gpt2: true, source: 1025), architecture: gpt2, configPath: "m/config.json")) {
            XCTAssertTrue("\($0)".contains("while max_source_length 1025 = 1025 positions; lower max_source_length to ≤ 1024"), "\($0)")
        }
        // T5 (relative positions, no table): one layer's scores for one training batch (16 × 8
        // heads × S² × 4 B); evaluation is not priced. n 100 + 256: 16·8·356²·4 B ≈ 0.06 GiB;
        // n 100000 + 256: 16·8·100256²·4 B ≈ 4792.8 GiB; n 3300 at batch 2 (a run that peaked at
        // 4.4 GB): 2·8·3556²·4 B ≈ 0.75 GiB, allowed whatever the evaluation batch.
        let pt = try config("pt", gpt2: false, n: 100)
        XCTAssertEqual(pt.batchSize, 16)
        XCTAssertNoThrow(try TrainingSession.checkSequenceFits(pt, architecture: t5, configPath: "t5/config.json", memoryBytes: 1 << 30))
        var small = try config("pt", gpt2: false, n: 3300)
        (small.batchSize, small.evalBatchSize) = (2, 128)
        XCTAssertNoThrow(try TrainingSession.checkSequenceFits(small, architecture: t5, configPath: "t5/config.json", memoryBytes: 23 << 30))
        XCTAssertThrowsError(try TrainingSession.checkSequenceFits(try config("pt", gpt2: false, n: 100_000), architecture: t5, configPath: "t5/config.json",
                                                                  memoryBytes: 24 << 30)) {
            XCTAssertTrue("\($0)".contains("n 100000 (prompt rows) + max_source_length 256 = 100256 positions: one layer's attention scores for a training batch of 16 "
                                           + "(batch × 8 heads × 100256² × 4 bytes) alone take 4792.8 GiB, more than the 24.0 GiB of memory this process may use (the machine's, or its cgroup's limit); lower n"), "\($0)")
        }
    }
}
