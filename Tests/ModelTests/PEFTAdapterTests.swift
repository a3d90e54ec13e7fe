import Support
import Foundation
import Methods
import Models
import Tensor
import TestSupport
import XCTest

/// PEFT adapters in: `forward --adapter` against PEFT's own forward and generate (fixtures from
/// scripts/peft_interop.py with peft 0.21.2: PROMPT_TUNING on T5 with one and two transformer
/// submodules and on GPT-2; LORA on T5 (q,v), on T5 with rslora over every linear, on GPT-2's
/// Conv1D c_attn / c_proj, and with rank_pattern / alpha_pattern on both: PEFT's per-module r and
/// lora_alpha, which PromptRepro once ignored), and adapter keys that match no module refused by name.
final class PEFTAdapterTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Resources/peft").path

    func doubles(_ v: Any?) -> [Double] { (v as? [Any])?.compactMap { ($0 as? NSNumber)?.doubleValue } ?? [] }

    /// DoRA magnitudes in the file while the config says `use_dora: false` (PEFT applies them
    /// anyway: logits moved by 0.91 in a review): refused, and the message names DoRA (it named
    /// embeddings, biases and token rows only).
    func testDoRAMagnitudesAreRefusedByName() throws {
        let dir = tempDir("dora")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fm = FileManager.default
        try fm.copyItem(atPath: "\(Self.root)/t5-lora/adapter", toPath: "\(dir)/adapter")
        let file = "\(dir)/adapter/adapter_model.safetensors"
        let st = try SafeTensorsFile(path: file)
        var tensors: [String: Tensor] = [:]
        for n in st.names { tensors[n] = try st.tensor(n) }
        tensors["base_model.model.decoder.block.0.layer.0.SelfAttention.q.lora_magnitude_vector"] = Tensor(zeros: [30])
        try fm.removeItem(atPath: file)
        try SafeTensorsFile.write(tensors, to: file, metadata: ["format": "pt"])
        let c = try ParityCase.load(path: "\(Self.root)/t5-lora/case.json")
        XCTAssertThrowsError(try ParityRunner.run(modelDirectory: "\(Self.root)/t5-lora/model", case: c, adapter: "\(dir)/adapter")) { e in
            XCTAssertTrue("\(e)".contains("DoRA magnitudes (lora_magnitude_vector") && "\(e)".contains(file), "\(e)")
        }
    }

    /// `bias: "all"` is refused on both models: PEFT trains and saves every parameter whose name
    /// holds "bias" (its save_and_load.py), on T5 the relative_attention_bias tables, which a
    /// review found in such files; the message says so. `"lora_only"` on T5 is plain LoRA.
    func testBiasAllIsRefusedNamingWhatPEFTTrains() throws {
        let dir = tempDir("biasall")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for (fixture, extra) in [("t5-lora", "relative_attention_bias"), ("gpt2-lora", "")] {
            try? FileManager.default.removeItem(atPath: "\(dir)/adapter")
            try FileManager.default.copyItem(atPath: "\(Self.root)/\(fixture)/adapter", toPath: "\(dir)/adapter")
            let cfg = "\(dir)/adapter/adapter_config.json"
            var raw = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: cfg))) as! [String: Any]
            raw["bias"] = "all"
            try JSONSerialization.data(withJSONObject: raw).write(to: URL(fileURLWithPath: cfg))
            XCTAssertThrowsError(try ParityRunner.run(modelDirectory: "\(Self.root)/\(fixture)/model", case: try ParityCase.load(path: "\(Self.root)/\(fixture)/case.json"),
                                                      adapter: "\(dir)/adapter")) {
                XCTAssertTrue("\($0)".contains("bias 'all'") && (extra.isEmpty || "\($0)".contains(extra)), "\($0)")
            }
        }
        // "lora_only" on T5 trains no bias (its linears have none): the numbers of bias "none".
        try FileManager.default.removeItem(atPath: "\(dir)/adapter")
        try FileManager.default.copyItem(atPath: "\(Self.root)/t5-lora/adapter", toPath: "\(dir)/adapter")
        let cfg = "\(dir)/adapter/adapter_config.json"
        var raw = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: cfg))) as! [String: Any]
        raw["bias"] = "lora_only"
        try JSONSerialization.data(withJSONObject: raw).write(to: URL(fileURLWithPath: cfg))
        let c = try ParityCase.load(path: "\(Self.root)/t5-lora/case.json")
        let plain = try ParityRunner.run(modelDirectory: "\(Self.root)/t5-lora/model", case: c, adapter: "\(Self.root)/t5-lora/adapter")
        let loraOnly = try ParityRunner.run(modelDirectory: "\(Self.root)/t5-lora/model", case: c, adapter: "\(dir)/adapter")
        XCTAssertEqual(doubles(loraOnly["logits"]), doubles(plain["logits"]))
        XCTAssertFalse(doubles(plain["logits"]).isEmpty)
    }

    func testAdaptersMatchPEFT() throws {
        let fm = FileManager.default
        let cases = try fm.contentsOfDirectory(atPath: Self.root).filter { fm.fileExists(atPath: "\(Self.root)/\($0)/case.json") }.sorted()
        XCTAssertGreaterThanOrEqual(cases.count, 13)
        for name in cases {
            let dir = "\(Self.root)/\(name)"
            let raw = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/case.json"))) as! [String: Any]
            let c = try ParityCase.load(path: "\(dir)/case.json")
            // A copy of another case's adapter under an edited config names that case's model.
            let model = (raw["model_from"] as? String).map { "\(Self.root)/\($0)/model" } ?? "\(dir)/model"
            if let fragment = raw["expect_error"] as? String {
                XCTAssertThrowsError(try ParityRunner.run(modelDirectory: model, case: c, adapter: "\(dir)/adapter"), name) { e in
                    XCTAssertTrue("\(e)".contains(fragment) && "\(e)".contains("name no linear weight"), "\(e)")
                }
                continue
            }
            let exp = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/expected.json"))) as! [String: Any]
            let got = try ParityRunner.run(modelDirectory: model, case: c, adapter: "\(dir)/adapter")
            let el = (exp["loss"] as! NSNumber).doubleValue, gl = got["loss"] as! Double
            XCTAssertEqual(gl, el, accuracy: 1e-4 + 1e-4 * abs(el), "\(name) loss")
            XCTAssertEqual(got["logits_shape"] as? [Int], (exp["logits_shape"] as? [Any])?.compactMap { $0 as? Int }, "\(name) shape")
            let a = doubles(got["logits"]), e = doubles(exp["logits"])
            XCTAssertEqual(a.count, e.count, name)
            var worst = 0.0
            // A NaN (max(x, NaN) is x) counts as infinitely wrong.
            for (x, y) in zip(a, e) { let q = abs(x - y) / (1e-4 + 1e-4 * abs(y)); worst = q.isNaN ? .infinity : max(worst, q) }
            XCTAssertLessThanOrEqual(worst, 1, "\(name) logits")
            if let g = exp["generated_ids"] as? [[Int]] {
                let p = paddedToCommonWidth(got["generated_ids"] as? [[Int]] ?? [], g)
                XCTAssertEqual(p.actual, p.expected, "\(name) generate")
            }
            print(String(format: "peft %@: loss %.6f vs %.6f, logits worst/tolerance %.3f", name, gl, el, worst))
        }
    }

    /// A pickled adapter is refused with the way out; an unsupported PEFT type is refused by name.
    func testUnsupportedAdaptersAreRefused() throws {
        let dir = NSTemporaryDirectory() + "peft-bad-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try #"{"peft_type": "LORA", "r": 4, "lora_alpha": 8}"#.write(toFile: "\(dir)/adapter_config.json", atomically: true, encoding: .utf8)
        FileManager.default.createFile(atPath: "\(dir)/adapter_model.bin", contents: Data([0x80, 0x02]))
        XCTAssertThrowsError(try PEFTAdapter.load(directory: dir, parameters: [], dModel: 8, isT5: true)) { XCTAssertTrue("\($0)".contains("safe_serialization=True"), "\($0)") }
        try #"{"peft_type": "IA3"}"#.write(toFile: "\(dir)/adapter_config.json", atomically: true, encoding: .utf8)
        try SafeTensorsFile.write(["x": Tensor(zeros: [1])], to: "\(dir)/adapter_model.safetensors")
        XCTAssertThrowsError(try PEFTAdapter.load(directory: dir, parameters: [], dModel: 8, isT5: true)) { XCTAssertTrue("\($0)".contains("'IA3'"), "\($0)") }
    }

    /// A config that does not decode names what is wrong in it; an adapter holding a NaN or ±inf
    /// weight is refused naming the tensor (`eval` scored and stored one beside real runs).
    func testBrokenConfigsAndNonFiniteWeightsAreNamed() throws {
        let dir = NSTemporaryDirectory() + "peft-nonfinite-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for (text, fragment) in [(#"{"task_type": "SEQ_2_SEQ_LM""#, "(not valid JSON)"), (#"{"task_type": "SEQ_2_SEQ_LM"}"#, "(missing field 'peft_type')"),
                                 (#"{"peft_type": 3}"#, "(field 'peft_type' has the wrong type)"), ("[]", "(not a JSON object)"), ("null", "(not a JSON object")] {
            try text.write(toFile: "\(dir)/adapter_config.json", atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try PEFTAdapter.load(directory: dir, parameters: [], dModel: 4, isT5: true)) {
                XCTAssertTrue("\($0)".contains("\(dir)/adapter_config.json: not a PEFT adapter config \(fragment)"), "\($0)")
            }
        }
        try #"{"peft_type": "PROMPT_TUNING", "task_type": "SEQ_2_SEQ_LM", "num_virtual_tokens": 2, "token_dim": 4, "num_transformer_submodules": 1}"#
            .write(toFile: "\(dir)/adapter_config.json", atomically: true, encoding: .utf8)
        for bad in [Float.nan, .infinity, -.infinity] {
            try SafeTensorsFile.write(["prompt_embeddings": Tensor(shape: [2, 4], values: [0, 1, 2, 3, 4, bad, 6, 7])], to: "\(dir)/adapter_model.safetensors")
            XCTAssertThrowsError(try PEFTAdapter.load(directory: dir, parameters: [], dModel: 4, isT5: true)) {
                XCTAssertTrue("\($0)".contains("adapter_model.safetensors: tensor 'prompt_embeddings' holds a non-finite value") && "\($0)".contains("at element 5 of shape [2, 4]"), "\($0)")
            }
        }
        try SafeTensorsFile.write(["prompt_embeddings": Tensor(shape: [2, 4], values: [0, 1, 2, 3, 4, 5, 6, 7])], to: "\(dir)/adapter_model.safetensors")
        XCTAssertEqual(try PEFTAdapter.load(directory: dir, parameters: [], dModel: 4, isT5: true).encoderPrompt?.shape, [2, 4])
    }

    /// The non-finite check reads the tensors applied only: a NaN in a module the config leaves
    /// out (skipped with a warning, as PEFT skips it) loads; the same NaN in a targeted one is
    /// refused by name.
    func testNonFiniteCheckReadsTheAppliedTensorsOnly() throws {
        let (_, dir, load) = try editableFixture("t5-lora-patterns", tag: "peft-lora-nan")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = "\(dir)/adapter_model.safetensors"
        let file = try SafeTensorsFile(path: path)
        var tensors: [String: Tensor] = [:]
        for n in file.names { tensors[n] = try file.tensor(n).detached() }
        let poisoned = "base_model.model.encoder.block.0.layer.0.SelfAttention.v.lora_A.weight"
        let t = try XCTUnwrap(tensors[poisoned])
        tensors[poisoned] = Tensor(shape: t.shape, values: [Float.nan] + t.array.dropFirst())
        try SafeTensorsFile.write(tensors, to: path)
        XCTAssertEqual(try load(["target_modules": ["k", "o", "q"], "rank_pattern": ["k": 2], "alpha_pattern": ["EncDecAttention.q": 32]]).lora.count, 18)
        XCTAssertThrowsError(try load([:])) {
            XCTAssertTrue("\($0)".contains("tensor '\(poisoned)' holds a non-finite value (nan) at element 0"), "\($0)")
        }
    }

    /// A T5 fixture's model and a copy of its adapter whose config `load(edit)` rewrites (the
    /// fixture's config merged with `edit`) before loading it; the caller removes `dir`.
    func editableFixture(_ name: String, tag: String) throws -> (model: T5Model, dir: String, load: ([String: Any]) throws -> PEFTAdapter) {
        let src = "\(Self.root)/\(name)"
        let model = try T5Model.load(directory: "\(src)/model")
        let params = model.parameters.map { ($0.name, $0.tensor.shape) }
        let base = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(src)/adapter/adapter_config.json"))) as! [String: Any]
        let dir = NSTemporaryDirectory() + "\(tag)-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "\(src)/adapter/adapter_model.safetensors", toPath: "\(dir)/adapter_model.safetensors")
        return (model, dir, { edit in
            try JSONSerialization.data(withJSONObject: base.merging(edit) { $1 }).write(to: URL(fileURLWithPath: "\(dir)/adapter_config.json"))
            return try PEFTAdapter.load(directory: dir, parameters: params, dModel: model.config.dModel, isT5: true)
        })
    }

    /// LoRA settings PromptRepro does not apply are refused by name, never silently dropped: PiSSA /
    /// OLoRA initialisations (PEFT rewrites the base weights when it loads them: a walkthrough saw
    /// losses 11.02 / 10.66 in PEFT against 10.37 / 11.19 here), trained LoRA biases, an adapter for
    /// the other kind of model, and pattern keys that give one module two values.
    func testLoRASettingsThatChangeTheMathAreRefused() throws {
        let (_, dir, load) = try editableFixture("t5-lora-patterns", tag: "peft-lora-settings")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        XCTAssertEqual(try load([:]).lora.count, 24)  // the fixture as PEFT wrote it loads: q, k, v, o of 2 encoder and 2 × 2 decoder attentions
        for (edit, fragment) in [(["init_lora_weights": "pissa"], "init_lora_weights 'pissa'"), (["init_lora_weights": "pissa_niter_4"], "pissa_niter_4"),
                                 (["init_lora_weights": "olora"], "'olora'"), (["init_lora_weights": "corda"], "'corda'"),
                                 (["lora_bias": true], "lora_bias"), (["task_type": "CAUSAL_LM"], "task_type CAUSAL_LM"),
                                 (["task_type": "SEQ_CLS"], "task_type SEQ_CLS"), (["task_type": "FEATURE_EXTRACTION"], "another head"),
                                 (["alora_invocation_tokens": [5, 6]], "alora_invocation_tokens"),
                                 (["rank_pattern": ["k": 2, "SelfAttention.k": 3]], "ambiguous"),
                                 (["alpha_pattern": ["(": 2]], "not a regular expression")] as [([String: Any], String)] {
            XCTAssertThrowsError(try load(edit), "\(edit)") { XCTAssertTrue("\($0)".contains(fragment), "\(edit): \($0)") }
        }
        // Settings that leave the math alone still load: PEFT's default and Gaussian initialisations,
        // keys that agree, and null fields.
        for edit in [["init_lora_weights": "gaussian"], ["init_lora_weights": false], ["lora_bias": false, "layer_replication": NSNull()],
                     ["task_type": NSNull()],  // PEFT's plain PeftModel still applies LoRA layers
                     ["rank_pattern": ["k": 2, "SelfAttention.k": 2, "decoder.block.1.layer.0.SelfAttention.v": 6]]] as [[String: Any]] {
            XCTAssertNoThrow(try load(edit), "\(edit)")
        }
        // rank_pattern decides the expected shapes: without it, the r-2 k tensors are refused with the setting named.
        XCTAssertThrowsError(try load(["rank_pattern": NSNull()])) { XCTAssertTrue("\($0)".contains("expected [4,"), "\($0)") }
    }

    /// Which modules a LoRA adapter adapts comes from adapter_config.json, as in PEFT (the numbers of
    /// exclude_modules, layers_to_transform and a regex target_modules are fixtures checked against
    /// PEFT in testAdaptersMatchPEFT): a config narrower than the file leaves the other tensors out;
    /// what PEFT would not load as read here is refused — a targeted module without tensors (PEFT
    /// starts it from init_lora_weights), keys without `base_model.model.` (PEFT loads none of them
    /// and runs the base model: a review saw loss 5.481 here against PEFT's 5.588), LoRA on the LM
    /// head or an embedding (the head never read its adapter: logits off by 2.16), and
    /// `target_parameters` (PEFT's ParamWrapper adds B·A to a Conv1D weight transposed against a
    /// Conv1D LoRA: logits off by 0.22 on GPT-2's square attn.c_proj).
    func testLoRAModulesFollowTheConfig() throws {
        let (model, dir, load) = try editableFixture("t5-lora", tag: "peft-lora-targets")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let all = try load([:]).lora.map(\.weight)
        XCTAssertEqual(all.count, 12)  // q and v of 2 encoder and 2 × 2 decoder attentions
        let onlyQ = try load(["target_modules": ["q"]]).lora.map(\.weight)
        XCTAssertEqual(onlyQ, all.filter { $0.hasSuffix(".q.weight") })
        XCTAssertEqual(try load(["target_modules": ["q", "v"], "exclude_modules": "encoder\\..*"]).lora.map(\.weight), all.filter { $0.hasPrefix("decoder.") })
        XCTAssertEqual(try load(["layers_to_transform": 0]).lora.map(\.weight), all.filter { $0.contains(".block.0.") })
        // A full module name in the list is taken whatever layers_to_transform says (PEFT matches
        // it before its layer filter); a suffix is filtered.
        let q0 = "encoder.block.0.layer.0.SelfAttention.q"
        XCTAssertEqual(try load(["target_modules": [q0, "v"], "layers_to_transform": [1], "layers_pattern": "block"]).lora.map(\.weight).sorted(),
                       ([q0 + ".weight"] + all.filter { $0.hasSuffix(".v.weight") && $0.contains(".block.1.") }).sorted())
        // What LoraConfig or PEFT's injection refuses is refused.
        for (edit, fragment) in [(["target_modules": "all-linear", "layers_to_transform": [1]], "layers_to_transform cannot be used"),
                                 (["target_modules": ".*\\.q", "layers_pattern": "block", "layers_to_transform": [0]], "cannot be used when target_modules is a string"),
                                 (["layers_pattern": "block"], "layers_pattern needs layers_to_transform"),
                                 (["target_modules": [String]()], "select no module"),
                                 (["exclude_modules": ".*"], "select no module")] as [([String: Any], String)] {
            XCTAssertThrowsError(try load(edit), "\(edit)") { XCTAssertTrue("\($0)".contains(fragment), "\(edit): \($0)") }
        }
        // A list of 20 names or more is condensed to suffixes first (PEFT's inject_adapter), so the
        // layer filter applies to it: PEFT 0.21.2 on this adapter, with these 20 full names and
        // layers_to_transform [1], condenses them to {q, v, SelfAttention.k, SelfAttention.o} and
        // wraps the 10 modules of block 1; the file has tensors for its 6 q and v (k and o start
        // with B = 0 there, a warning here).
        var twenty: [String] = []
        for (stack, cross) in [("encoder", false), ("decoder", true)] {
            for b in 0..<2 {
                twenty += ["q", "v", "k", "o"].map { "\(stack).block.\(b).layer.0.SelfAttention.\($0)" }
                if cross { twenty += ["q", "v"].map { "\(stack).block.\(b).layer.1.EncDecAttention.\($0)" } }
            }
        }
        XCTAssertEqual(twenty.count, 20)
        XCTAssertEqual(try load(["target_modules": twenty, "layers_to_transform": [1], "layers_pattern": "block"]).lora.map(\.weight),
                       all.filter { $0.contains(".block.1.") })
        // Targeted modules without tensors: nothing with PEFT's default init (B = 0), refused with a
        // random one.
        XCTAssertEqual(try load(["target_modules": ["q", "v", "k"]]).lora.map(\.weight), all)
        for (edit, fragment) in [(["target_modules": ["q", "v", "k"], "init_lora_weights": false], "no LoRA tensors in the file"),
                                 (["target_modules": ["q", "v", "shared"]], "'shared'"),
                                 (["target_modules": ["q", "v", "relative_attention_bias"]], "relative_attention_bias"),
                                 (["target_parameters": ["SelfAttention.o.weight"]], "target_parameters")] as [([String: Any], String)] {
            XCTAssertThrowsError(try load(edit), "\(edit)") { XCTAssertTrue("\($0)".contains(fragment), "\(edit): \($0)") }
        }
        // An untied head is a module of the model too: targeting it is refused.
        let params = model.parameters.map { ($0.name, $0.tensor.shape) } + [("lm_head.weight", [model.config.vocabSize, model.config.dModel])]
        try JSONSerialization.data(withJSONObject: ["peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q", "v", "lm_head"]])
            .write(to: URL(fileURLWithPath: "\(dir)/adapter_config.json"))
        XCTAssertThrowsError(try PEFTAdapter.load(directory: dir, parameters: params, dModel: model.config.dModel, isT5: true)) {
            XCTAssertTrue("\($0)".contains("'lm_head'"), "\($0)")
        }
        // Keys without PEFT's prefix.
        let file = try SafeTensorsFile(path: "\(dir)/adapter_model.safetensors")
        var bare: [String: Tensor] = [:]
        for n in file.names { bare[String(n.dropFirst("base_model.model.".count))] = try file.tensor(n) }
        try SafeTensorsFile.write(bare, to: "\(dir)/adapter_model.safetensors")
        XCTAssertThrowsError(try load([:])) { XCTAssertTrue("\($0)".contains("without PEFT's 'base_model.model.' prefix"), "\($0)") }
    }

    /// PROMPT_TUNING adapters PEFT would not apply as read here are refused by name: task_type null
    /// (PEFT's plain PeftModel ignores the prompt: a walkthrough saw PEFT's loss equal the base
    /// model's, 25.68, against 27.85 here with the prompt), task types with other heads, and a
    /// token_dim other than the model's hidden size (PEFT fails at load; this loaded it).
    func testPromptTuningTaskTypeAndTokenDimAreChecked() throws {
        let (model, dir, load) = try editableFixture("t5-prompt-1", tag: "peft-prompt-settings")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        XCTAssertNotNil(try load([:]).encoderPrompt)
        XCTAssertNotNil(try load(["token_dim": model.config.dModel]).encoderPrompt)
        for (edit, fragment) in [(["task_type": NSNull()], "task_type null"), (["task_type": "FEATURE_EXTRACTION"], "task_type FEATURE_EXTRACTION"),
                                 (["task_type": "SEQ_CLS"], "task_type SEQ_CLS"), (["token_dim": model.config.dModel / 2], "token_dim \(model.config.dModel / 2)")]
                as [([String: Any], String)] {
            XCTAssertThrowsError(try load(edit), "\(edit)") { XCTAssertTrue("\($0)".contains(fragment), "\(edit): \($0)") }
        }
    }

    /// DePT's PEFT fork (PROMPT_TUNING_LORA, the configs of ../shared/models/dept-reference): every
    /// shared config is read; an adapter with that layout (here on the embedded T5, sizes scaled
    /// down, inputs shorter than max_length: the dynamic padding the fork cannot take) gives exactly
    /// the logits of PromptRepro's own DePT injection (P prepended, (lora_alpha/√r)·A·B added to the
    /// token embeddings), so an evaluated DePT adapter and a trained DePT run are one computation.
    /// The fork's own numbers are the t5-dept fixture of `testAdaptersMatchPEFT`
    /// (scripts/make_dept_adapter_case.py: transformers' T5 fed as the fork feeds it).
    func testDePTAdapters() throws {
        if let shared = sharedItem("models/dept-reference") {
            let refs = try FileManager.default.contentsOfDirectory(atPath: shared)
            XCTAssertFalse(refs.isEmpty, "\(shared): no dept-reference configs")
            for r in refs {
                let cfg = try JSONDecoder().decode(PEFTAdapterConfig.self, from: Data(contentsOf: URL(fileURLWithPath: "\(shared)/\(r)/adapter_config.json")))
                XCTAssertEqual(cfg.peftType, "PROMPT_TUNING_LORA", r)
                XCTAssertEqual(cfg.numVirtualTokens.map { $0 * 768 + 256 * (cfg.r ?? 0) + (cfg.r ?? 0) * 768 }, 76_800, "\(r): parameter-matched to 100-token PT")
            }
        }
        let modelDir = try EmbeddedBackbones.directory("t5-tiny")
        let model = try T5Model.load(directory: modelDir)
        let d = model.config.dModel, n = 6, rank = 3, s = 64
        let dir = NSTemporaryDirectory() + "dept-adapter-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try #"{"peft_type": "PROMPT_TUNING_LORA", "task_type": "SEQ_2_SEQ_LM", "num_virtual_tokens": 6, "token_dim": 64, "num_transformer_submodules": 1, "r": 3, "lora_alpha": 8, "max_length": 64}"#
            .write(toFile: "\(dir)/adapter_config.json", atomically: true, encoding: .utf8)
        let p = Tensor.normal([n, d], std: 0.5, key: RNGKey(seed: 3).derive("p")), a = Tensor.normal([s, rank], key: RNGKey(seed: 3).derive("a"))
        let b = Tensor.normal([rank, d], std: 0.1, key: RNGKey(seed: 3).derive("b"))
        try SafeTensorsFile.write(["prompt_embeddings": p, "lora_embedding_A": a, "lora_embedding_B": b], to: "\(dir)/adapter_model.safetensors")
        let c = try ParityCase.load(path: "\(Self.root)/t5-prompt-1/case.json")
        let got = try ParityRunner.run(modelDirectory: modelDir, case: c, adapter: dir)
        let ids = c.inputIds.flatMap { $0.map(Int32.init) }, mask = c.attentionMask.flatMap { $0.map(Float.init) }
        let delta = scale(try matmul(a, b), 8 / Float(rank).squareRoot())
        let (embeds, m) = try Injection(prompt: p, inputDelta: delta).inputs(for: model, inputIds: ids, attentionMask: mask, batch: c.inputIds.count)
        let want = try model.forward(inputsEmbeds: embeds, attentionMask: m, labels: c.labels.flatMap { $0.map(Int32.init) })
        XCTAssertEqual(doubles(got["logits"]), want.logits.array.map(Double.init))
        try SafeTensorsFile.write(["prompt_embeddings": p, "lora_embedding_A": a], to: "\(dir)/adapter_model.safetensors")
        XCTAssertThrowsError(try ParityRunner.run(modelDirectory: modelDir, case: c, adapter: dir)) { XCTAssertTrue("\($0)".contains("lora_embedding_B"), "\($0)") }
    }
}
