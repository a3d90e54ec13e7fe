import Foundation
import Harness
import Models
import Store
import Support
import Tensor
import TestSupport
import XCTest

/// PromptRepro → PEFT: `train --save-adapter` writes what the run trained (DPT: the materialised
/// prompt A·B, factors beside it; LoRA: its A/B pairs under PEFT's module keys), `export-adapter`
/// refuses DePT, and `forward --adapter` reads the written adapter back. (`make interop-check` has
/// PEFT itself load such adapters and compares logits; it needs torch and is not part of CI.)
final class AdapterRoundTripTests: XCTestCase {
    func testSavedAdaptersHoldWhatTheRunTrained() throws {
        let data = try sharedData()
        let dir = tempDir("adapter")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func train(_ method: String, _ extra: [String] = []) throws {
            // LoRA has no prompt: --n would be refused (it reads r, alpha, dropout, targets).
            let n = method == "lora" ? [] : ["--n", "5"]
            let (status, err) = try runCapture(["train", "--method", method, "--task", "cb", "--k", "8", "--epochs", "1"] + n + ["--r", "2",
                                                "--eval-limit", "4", "--decode-max-tokens", "2", "--data-dir", data,
                                                "--artifact", "\(dir)/\(method).safetensors", "--save-adapter", "\(dir)/\(method)"] + extra)
            XCTAssertEqual(status, 0, err)
        }
        try train("dpt")
        let art = try SafeTensorsFile(path: "\(dir)/dpt.safetensors")
        let expected = try matmul(try art.tensor("prefix_first"), try art.tensor("prefix_second"))
        let model = try T5Model.load(directory: try ModelFiles.locate("embedded:t5-tiny"))
        let params = model.parameters.map { ($0.name, $0.tensor.shape) }
        let a = try PEFTAdapter.load(directory: "\(dir)/dpt", parameters: params, dModel: model.config.dModel, isT5: true)
        XCTAssertEqual(a.config.peftType, "PROMPT_TUNING")
        XCTAssertEqual(a.config.numTransformerSubmodules, 1)
        XCTAssertEqual(a.encoderPrompt?.array, expected.array)
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(dir)/dpt/promptrepro_factors.safetensors"))

        try train("lora", ["--lora-targets", "q,v"])
        let lart = try SafeTensorsFile(path: "\(dir)/lora.safetensors")
        let l = try PEFTAdapter.load(directory: "\(dir)/lora", parameters: params, dModel: model.config.dModel, isT5: true)
        XCTAssertEqual(l.config.peftType, "LORA")
        // A prompt transfer from a LoRA adapter is refused by its type (it failed on the adapter's
        // target modules, "select no module of this model", which is false).
        let (refused, why) = try runCapture(["train", "--method", "pt", "--task", "cb", "--k", "8", "--n", "5", "--max-steps", "0", "--data-dir", data,
                                             "--init-from", "\(dir)/lora"])
        XCTAssertNotEqual(refused, 0)
        XCTAssertTrue(why.contains("lora/adapter_config.json: --init-from reads a PROMPT_TUNING adapter; this one is LORA"), why)
        XCTAssertEqual(l.lora.count, lart.names.count / 2)
        for p in l.lora {
            XCTAssertEqual(p.a.array, try lart.tensor("\(p.weight).lora_A").array, p.weight)
            XCTAssertEqual(p.b.array, try lart.tensor("\(p.weight).lora_B").array, p.weight)
            XCTAssertEqual(p.scaling, 8 / 2)  // lora_alpha 8 (the method's default) / r 2
        }
        let (status, err) = try runCapture(["train", "--method", "dept", "--task", "cb", "--k", "8", "--epochs", "1", "--m", "4", "--r", "2",
                                            "--eval-limit", "4", "--decode-max-tokens", "2", "--data-dir", data, "--save-adapter", "\(dir)/dept"])
        XCTAssertNotEqual(status, 0, "DePT cannot be saved as a PEFT adapter")
        XCTAssertTrue(err.contains("PEFT has no adapter type"), err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/dept"), "refused before training, nothing written")
        // Exporting a run without factors (LoRA, PT) into the DPT adapter's directory leaves no
        // DPT factors beside it: `--init-from` read them as the new adapter's.
        for (artifact, kind) in [("lora", "LORA"), ("dpt", "PROMPT_TUNING")] {
            let (rc, out) = try runCapture(["export-adapter", "--artifact", "\(dir)/\(artifact).safetensors", "--out", "\(dir)/dpt"])
            XCTAssertEqual(rc, 0, out)
            XCTAssertEqual(try PEFTAdapter.load(directory: "\(dir)/dpt", parameters: params, dModel: model.config.dModel, isT5: true).config.peftType, kind)
            XCTAssertEqual(FileManager.default.fileExists(atPath: "\(dir)/dpt/promptrepro_factors.safetensors"), artifact == "dpt", artifact)
        }
    }
}

/// A GPT-2 LoRA adapter names the modules PEFT finds in GPT2LMHeadModel. The default targets
/// (T5's q, v) select GPT-2's fused `c_attn`; the adapter once said `"target_modules": ["q", "v"]`,
/// which PEFT refuses ("Target modules {'q', 'v'} not found"), while PromptRepro's own `eval` read it.
final class GPT2LoRAAdapterTests: XCTestCase {
    func testExportedTargetsMatchTheAdaptersModulesByPEFTsRule() throws {
        let data = try sharedData()
        let dir = tempDir("gpt2lora")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for (name, extra, expected) in [("default", [String](), ["c_attn"]), ("qvo", ["--lora-targets", "q,v,o"], ["c_attn", "attn.c_proj"]),
                                         ("conv", ["--lora-targets", "c_attn,c_fc"], ["c_attn", "c_fc"])] {
            let (status, err) = try runCapture(["train", "--method", "lora", "--task", "sst2", "--model", "embedded:gpt2-tiny", "--k", "16",
                                                "--max-steps", "1", "--eval-limit", "4", "--data-dir", data,
                                                "--save-adapter", "\(dir)/\(name)"] + extra)
            XCTAssertEqual(status, 0, err)
            let cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/\(name)/adapter_config.json"))) as! [String: Any]
            let targets = cfg["target_modules"] as! [String]
            XCTAssertEqual(targets, expected, name)
            XCTAssertEqual(cfg["fan_in_fan_out"] as? Bool, true, "GPT-2's Conv1D stores W as (in, out)")
            let keys = try SafeTensorsFile(path: "\(dir)/\(name)/adapter_model.safetensors").names
            XCTAssertFalse(keys.isEmpty, name)
            for k in keys {
                // PEFT: a module is targeted when its name equals a target or ends with "." + target.
                let module = String(k.dropFirst("base_model.model.".count).dropLast(".lora_A.weight".count))
                XCTAssertTrue(targets.contains { module == $0 || module.hasSuffix("." + $0) }, "\(name): \(k) matches no target of \(targets)")
            }
            // Every target names some module of the adapter (PEFT errors on a target it cannot find).
            for t in targets {
                XCTAssertTrue(keys.contains { k in
                    let module = String(k.dropFirst("base_model.model.".count).dropLast(".lora_A.weight".count))
                    return module == t || module.hasSuffix("." + t)
                }, "\(name): target \(t) names no module")
            }
        }
    }
}

/// Writes `config` as a run config from before `adapter_sha256` (the key dropped), with the
/// method's `field` set to `value`: the shape the older staleness check compares with the adapter.
func writeLegacyRunConfig(_ config: [String: Any], method field: String, _ value: Int, to path: String) throws {
    var o = config
    o["adapter_sha256"] = nil
    var method = try XCTUnwrap(o["method"] as? [String: Any])
    method[field] = value
    o["method"] = method
    try JSONSerialization.data(withJSONObject: o).write(to: URL(fileURLWithPath: path))
}

/// An evaluated PEFT adapter is a run like any other: `eval --adapter --db` stores it (status
/// evaluated, the adapter's sha256), `results` lists it and `compare` pairs it with trained runs.
final class EvaluatedAdapterTests: XCTestCase {
    /// Evaluated adapters count only as runs of variants of their own (a review's gate trials):
    /// - `eval --db --spec FILE` refuses a variant the spec trains, and reads leave out an
    ///   evaluated row found in such a cell (the baseline's adapters stored as the new method's
    ///   passed the gate);
    /// - one adapter is refused under a second seed of its cell, and reads count such a copy once
    ///   (three copies passed as three seeds);
    /// - an adapter whose file changed since its evaluation is left out (its old score was gated);
    /// - a stored score that is not a finite number (text "NaN", ±Inf) leaves its run out.
    func testEvaluatedAdaptersCannotStandInForOtherRuns() throws {
        let data = try sharedData()
        let dir = tempDir("evalstandin")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try miniSpec.write(toFile: "\(dir)/mini.yaml", atomically: true, encoding: .utf8)
        let db = "\(dir)/s.sqlite"
        XCTAssertEqual(try runCLI(["sweep", "\(dir)/mini.yaml", "--profile", "smoke", "--workers", "2", "--db", db, "--data-dir", data,
                                   "--checkpoints", "\(dir)/ck"]).terminationStatus, 0)
        for (name, seed) in [("a1", "1"), ("a2", "2")] {
            let (status, err) = try runCapture(["train", "--method", "pt", "--task", "cb", "--k", "8", "--epochs", "1", "--n", "8", "--eval-limit", "4",
                                                "--decode-max-tokens", "2", "--seed", seed, "--data-dir", data, "--save-adapter", "\(dir)/\(name)"])
            XCTAssertEqual(status, 0, err)
        }
        for copy in ["bare1", "bare2"] {  // PEFT adapters trained elsewhere: no run config, so no seed
            try FileManager.default.copyItem(atPath: "\(dir)/a1", toPath: "\(dir)/\(copy)")
            try FileManager.default.removeItem(atPath: "\(dir)/\(copy)/promptrepro_run_config.json")
        }
        func eval(_ adapter: String, _ variant: String, seed: String) throws -> (Int32, String) {
            try runCapture(["eval", "--model", "embedded:t5-tiny", "--adapter", "\(dir)/\(adapter)", "--variant", variant, "--seed", seed,
                            "--task", "cb", "--k", "8", "--eval-limit", "16", "--decode-max-tokens", "3", "--data-dir", data, "--db", db,
                            "--spec", "\(dir)/mini.yaml", "--column", "t5-small", "--profile", "smoke"])
        }
        func gate(_ method: String) throws -> (Int32, String, String) {
            let args = ["compare", "--spec", "\(dir)/mini.yaml", "--method", method, "--baseline", "pt", "--db", db, "--data-dir", data,
                        "--profile", "smoke", "--max-regression", "100"]
            let (status, out) = try runStdout(args)
            return (status, out, try runCapture(args).1)
        }
        let s = try ResultsStore(path: db)
        // A variant the spec trains is refused before anything is scored.
        var (status, err) = try eval("bare1", "dpt", seed: "1")
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(err.contains("--variant dpt: spec mini trains this variant (method dpt)") && err.contains("--variant peft-dpt"), err)
        // Characters that separate the parts of cell names and run keys are refused in a variant
        // and a column, and in an adapter directory's name standing in for the variant.
        let runsBefore = try s.db.query("SELECT count(*) AS n FROM runs").first?["n"]?.int
        for (flag, value, word) in [("--variant", "peft@2", "'@' is reserved in variant names"), ("--variant", "peft#2", "'#' is reserved in variant names"),
                                    ("--column", "t5|small", "'|' is reserved in model columns"), ("--column", "t5#small", "'#' is reserved in model columns")] {
            var args = ["eval", "--model", "embedded:t5-tiny", "--adapter", "\(dir)/bare1", "--seed", "1", "--task", "cb", "--k", "8", "--eval-limit", "16",
                        "--decode-max-tokens", "3", "--data-dir", data, "--db", db, "--profile", "smoke", flag, value]
            if flag == "--column" { args += ["--variant", "peft-ok"] }
            (status, err) = try runCapture(args)
            XCTAssertNotEqual(status, 0, err)
            XCTAssertTrue(err.contains(word), err)
        }
        try FileManager.default.copyItem(atPath: "\(dir)/bare1", toPath: "\(dir)/bare|x")
        (status, err) = try runCapture(["eval", "--model", "embedded:t5-tiny", "--adapter", "\(dir)/bare|x", "--seed", "1", "--task", "cb", "--k", "8",
                                        "--eval-limit", "16", "--decode-max-tokens", "3", "--data-dir", data, "--db", db, "--profile", "smoke"])
        XCTAssertNotEqual(status, 0, err)
        XCTAssertTrue(err.contains("variant 'bare|x' (the adapter directory's name): '|' is reserved in variant names"), err)
        XCTAssertEqual(try s.db.query("SELECT count(*) AS n FROM runs").first?["n"]?.int, runsBefore)
        // One stored there anyway (an older store, a merge): left out, and the gate fails.
        (status, err) = try eval("bare1", "tmp", seed: "1")
        XCTAssertEqual(status, 0, err)
        try s.db.query("DELETE FROM runs WHERE variant='dpt' AND task='cb' AND seed=1")
        try s.db.query("UPDATE runs SET variant='dpt', cell='dpt|cb|t5-small|k8' WHERE variant='tmp'")
        var (code, out, notes) = try gate("dpt")
        XCTAssertNotEqual(code, 0, out)
        XCTAssertTrue(out.contains("new 'dpt' cb t5-small k=8: seed 1 missing"), out)
        XCTAssertTrue(notes.contains("1 runs of adapters evaluated into a cell the spec trains"), notes)
        XCTAssertEqual(try s.cellResults(spec: "mini", profile: "smoke", planned: try ExperimentSpec.load("\(dir)/mini.yaml").plannedRuns(profile: "smoke", store: s))
                        .first { $0.cell == "dpt|cb|t5-small|k8" }?.seeds, [2])
        // The same weights under a second seed of a cell: refused; one stored anyway counts once.
        (status, err) = try eval("bare1", "peft-dup", seed: "1")
        XCTAssertEqual(status, 0, err)
        (status, err) = try eval("bare2", "peft-dup", seed: "2")
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(err.contains("seed 1 holds evaluated run") && err.contains("of the same adapter weights"), err)
        (status, err) = try eval("bare2", "tmp2", seed: "2")
        XCTAssertEqual(status, 0, err)
        try s.db.query("UPDATE runs SET variant='peft-dup', cell='peft-dup|cb|t5-small|k8' WHERE variant='tmp2'")
        (code, out, notes) = try gate("peft-dup")
        XCTAssertNotEqual(code, 0, out)
        XCTAssertTrue(out.contains("new 'peft-dup' cb t5-small k=8: seed 2 missing"), out)
        XCTAssertTrue(notes.contains("evaluated with the same adapter weights as another seed of their cell"), notes)
        let plan = try ExperimentSpec.load("\(dir)/mini.yaml").plannedRuns(profile: "smoke", store: s)
        XCTAssertEqual(try s.cellResults(spec: "mini", profile: "smoke", planned: plan).first { $0.cell == "peft-dup|cb|t5-small|k8" }?.seeds, [1])
        // An adapter scored in rank mode against the spec's generate-mode baseline: named.
        (status, err) = try runCapture(["eval", "--model", "embedded:t5-tiny", "--adapter", "\(dir)/bare2", "--variant", "peft-rank", "--seed", "1",
                                        "--task", "cb", "--k", "8", "--eval-limit", "16", "--eval-mode", "rank", "--data-dir", data, "--db", db,
                                        "--spec", "\(dir)/mini.yaml", "--column", "t5-small", "--profile", "smoke"])
        XCTAssertEqual(status, 0, err)
        (code, out, notes) = try gate("peft-rank")
        XCTAssertTrue(out.contains("peft-rank and pt are scored with different settings (") && out.contains("eval_mode rank vs generate"), out)
        // An adapter whose weights changed at its path since it was evaluated: left out.
        (status, err) = try eval("a1", "peft-chg", seed: "1")
        XCTAssertEqual(status, 0, err)
        XCTAssertNotNil(try s.cellResults(spec: "mini", profile: "smoke", planned: plan).first { $0.cell == "peft-chg|cb|t5-small|k8" })
        try FileManager.default.removeItem(atPath: "\(dir)/a1/adapter_model.safetensors")
        try FileManager.default.copyItem(atPath: "\(dir)/a2/adapter_model.safetensors", toPath: "\(dir)/a1/adapter_model.safetensors")
        XCTAssertNil(try s.cellResults(spec: "mini", profile: "smoke", planned: plan).first { $0.cell == "peft-chg|cb|t5-small|k8" })
        XCTAssertEqual(try s.staleRuns(spec: "mini", profile: "smoke", planned: plan).filter { $0.cell == "peft-chg|cb|t5-small|k8" }.map(\.reason), [.adapterChanged])
        // An adapter's config edited at its path (lora_alpha, use_rslora move every number): left out.
        XCTAssertNotNil(try s.cellResults(spec: "mini", profile: "smoke", planned: plan).first { $0.cell == "peft-dup|cb|t5-small|k8" })
        let config = "\(dir)/bare1/adapter_config.json"
        try (try String(contentsOfFile: config, encoding: .utf8) + "\n").write(toFile: config, atomically: true, encoding: .utf8)
        XCTAssertEqual(try s.staleRuns(spec: "mini", profile: "smoke", planned: plan).filter { $0.cell == "peft-dup|cb|t5-small|k8" && $0.seed == 1 }.map(\.reason),
                       [.adapterChanged])
        // An adapter scored on a validation file that has changed since: left out, as trained runs are.
        for task in ["cb", "rte"] {
            try FileManager.default.createDirectory(atPath: "\(dir)/data2/superglue", withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: "\(data)/superglue/\(task)", toPath: "\(dir)/data2/superglue/\(task)")
        }
        let current = try ExperimentSpec.load("\(dir)/mini.yaml").plannedRuns(profile: "smoke", store: s, dataDir: "\(dir)/data2",
                                                                            manifestDir: "\(repoRoot)/Baselines/manifests")
        XCTAssertNotNil(try s.cellResults(spec: "mini", profile: "smoke", planned: current).first { $0.cell == "peft-rank|cb|t5-small|k8" })
        let val = "\(dir)/data2/superglue/cb/val.jsonl"
        try (try String(contentsOfFile: val, encoding: .utf8)).replacingOccurrences(of: "\"label\": \"contradiction\"", with: "\"label\": \"entailment\"")
            .write(toFile: val, atomically: true, encoding: .utf8)
        let edited = try ExperimentSpec.load("\(dir)/mini.yaml").plannedRuns(profile: "smoke", store: s, dataDir: "\(dir)/data2",
                                                                           manifestDir: "\(repoRoot)/Baselines/manifests")
        XCTAssertEqual(try s.staleRuns(spec: "mini", profile: "smoke", planned: edited).filter { $0.cell == "peft-rank|cb|t5-small|k8" }.map(\.reason), [.evaluatedInputsChanged])
        // An adapter scored under a task definition edited since (here its template's source, as
        // an older task file had it): left out, as trained runs are, in store and export reads.
        let rank = try XCTUnwrap(try s.db.query("SELECT id, identity_json FROM runs WHERE variant='peft-rank' AND status='evaluated'").first)
        let rankJSON = try XCTUnwrap(rank["identity_json"]?.text)
        var rankIdentity = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(rankJSON.utf8)) as? [String: Any])
        var template = try XCTUnwrap(rankIdentity["template"] as? [String: Any])
        template["source"] = "premise: " + (template["source"] as? String ?? "")
        rankIdentity["template"] = template
        let exported = try XCTUnwrap(try s.cellResults(spec: "mini", profile: "smoke", planned: plan).first { $0.cell == "peft-rank|cb|t5-small|k8" })
        XCTAssertEqual(ExportedCells.current([exported], plan: plan).kept.map(\.cell), ["peft-rank|cb|t5-small|k8"])
        var oldExport = exported
        oldExport.runTaskParts = exported.runTaskParts?.mapValues { $0.merging(["template": PlannedRuns.canonical(template)]) { _, b in b } }
        XCTAssertEqual(oldExport.runTaskParts?.count, 1)
        XCTAssertEqual(ExportedCells.current([oldExport], plan: plan).adaptersChanged, ["peft-rank|cb|t5-small|k8"])
        let oldJSON = String(decoding: try JSONSerialization.data(withJSONObject: rankIdentity, options: [.sortedKeys]), as: UTF8.self)
        try s.db.query("UPDATE runs SET identity_json=? WHERE id=?", [.text(oldJSON), .int(rank["id"]!.int!)])
        XCTAssertEqual(try s.staleRuns(spec: "mini", profile: "smoke", planned: plan).filter { $0.cell == "peft-rank|cb|t5-small|k8" }.map(\.reason), [.evaluatedTaskChanged])
        XCTAssertNil(try s.cellResults(spec: "mini", profile: "smoke", planned: plan).first { $0.cell == "peft-rank|cb|t5-small|k8" })
        try s.db.query("UPDATE runs SET identity_json=? WHERE id=?", [.text(rankJSON), .int(rank["id"]!.int!)])
        XCTAssertNotNil(try s.cellResults(spec: "mini", profile: "smoke", planned: plan).first { $0.cell == "peft-rank|cb|t5-small|k8" })
        // Without a data directory the few-shot manifests, the checkout's, are compared still (the
        // gate passed on runs of an edited manifest without --data-dir).
        try FileManager.default.copyItem(atPath: "\(repoRoot)/Baselines/manifests", toPath: "\(dir)/manifests")
        func manifestStale() throws -> [String] {
            let p = try ExperimentSpec.load("\(dir)/mini.yaml").plannedRuns(profile: "smoke", store: s, dataDir: nil, manifestDir: "\(dir)/manifests")
            return try s.staleRuns(spec: "mini", profile: "smoke", planned: p).filter { $0.reason == .inputsChanged }.map { "\($0.cell) \($0.seed)" }.sorted()
        }
        XCTAssertEqual(try manifestStale(), [])
        let manifest = "\(dir)/manifests/cb-k8-s1.json"
        try (try String(contentsOfFile: manifest, encoding: .utf8) + "\n").write(toFile: manifest, atomically: true, encoding: .utf8)
        // Seed 1's cb runs (dpt's seed 1 was deleted above; seed 2 reads another manifest).
        XCTAssertEqual(try manifestStale(), ["pt|cb|t5-small|k8 1"])
        // An adapter trained on another sample seed is stored with it (it was stored as sample 1
        // and paired with sample 1's runs), and one trained on another task is not stored as a run
        // of this one (a transfer).
        (status, err) = try runCapture(["train", "--method", "pt", "--task", "cb", "--k", "8", "--epochs", "1", "--n", "8", "--eval-limit", "4",
                                        "--decode-max-tokens", "2", "--seed", "1", "--sample-seed", "2", "--data-dir", data, "--save-adapter", "\(dir)/ss2"])
        XCTAssertEqual(status, 0, err)
        (status, err) = try eval("ss2", "peft-ss", seed: "1")
        XCTAssertEqual(status, 0, err)
        XCTAssertEqual(try s.db.query("SELECT sample_seed FROM runs WHERE variant='peft-ss'").map { $0["sample_seed"]?.int }, [2])
        // A row an older `eval` stored under sample 1 (the seed's): evaluated again, it goes to
        // history and the run's sample takes its place (it stayed current beside it, and the
        // copies rule kept the wrong one).
        try s.db.query("UPDATE runs SET sample_seed=NULL WHERE variant='peft-ss'")
        (status, err) = try eval("ss2", "peft-ss", seed: "1")
        XCTAssertEqual(status, 0, err)
        XCTAssertTrue(err.contains("under another sample seed go to history"), err)
        XCTAssertEqual(try s.db.query("SELECT status, sample_seed FROM runs WHERE variant='peft-ss' ORDER BY id").map { "\($0["status"]?.text ?? "") \($0["sample_seed"]?.int.map(String.init) ?? "nil")" },
                       ["superseded nil", "evaluated 2"])
        (status, err) = try runCapture(["eval", "--model", "embedded:t5-tiny", "--adapter", "\(dir)/ss2", "--variant", "peft-rte", "--task", "rte",
                                        "--eval-limit", "16", "--data-dir", data, "--db", db, "--spec", "\(dir)/mini.yaml", "--column", "t5-small", "--profile", "smoke"])
        XCTAssertNotEqual(status, 0, err)
        XCTAssertTrue(err.contains("--task rte: the adapter was trained on cb") && err.contains("not stored"), err)
        // A score stored as text ("NaN") or ±Inf: its run is left out, and the gate fails.
        let pt = try XCTUnwrap(try s.db.query("SELECT id FROM runs WHERE variant='pt' AND task='rte' AND seed=2 AND status='done'").first?["id"]?.int)
        try s.db.query("UPDATE scores SET value='NaN' WHERE run_id=? AND metric='accuracy' AND kind='best'", [.int(pt)])
        (code, out, notes) = try gate("dpt")
        XCTAssertNotEqual(code, 0, out)
        XCTAssertTrue(out.contains("baseline 'pt' rte t5-small k=8: seed 2 missing"), out)
        XCTAssertTrue(notes.contains("with a stored score or measurement that is not a finite number"), notes)
        XCTAssertEqual(try s.cellResults(spec: "mini", profile: "smoke", planned: plan).first { $0.cell == "pt|rte|t5-small|k8" }?.seeds, [1])
        try s.db.query("UPDATE scores SET value=9e999 WHERE run_id=? AND metric='accuracy' AND kind='best'", [.int(pt)])
        XCTAssertEqual(try s.unusableRuns(spec: "mini", profile: "smoke")[pt], .corruptScores)
        // The same in the per-run and per-epoch measurements (selection score, invalid
        // predictions): -Inf in run_metrics, then text in epoch_metrics (a merged shard's), with the score mended.
        try s.db.query("UPDATE scores SET value=0.5 WHERE run_id=? AND metric='accuracy' AND kind='best'", [.int(pt)])
        XCTAssertNil(try s.unusableRuns(spec: "mini", profile: "smoke")[pt])
        XCTAssertFalse(try s.db.query("SELECT 1 FROM run_metrics WHERE run_id=?", [.int(pt)]).isEmpty)
        try s.db.query("UPDATE run_metrics SET value=-9e999 WHERE run_id=?", [.int(pt)])
        XCTAssertEqual(try s.unusableRuns(spec: "mini", profile: "smoke")[pt], .corruptScores)
        try s.db.query("UPDATE run_metrics SET value=0.25 WHERE run_id=?", [.int(pt)])
        XCTAssertNil(try s.unusableRuns(spec: "mini", profile: "smoke")[pt])
        try s.db.query("INSERT OR REPLACE INTO epoch_metrics (run_id, epoch, name, value) VALUES (?, 1, 'invalid_predictions', 'n/a')", [.int(pt)])
        XCTAssertEqual(try s.unusableRuns(spec: "mini", profile: "smoke")[pt], .corruptScores)
        try s.db.query("UPDATE scores SET value=9e999 WHERE run_id=? AND metric='accuracy' AND kind='best'", [.int(pt)])
        // A compared run without stored predictions: its task falls back to the t over seeds, said.
        let dpt = try XCTUnwrap(try s.db.query("SELECT id FROM runs WHERE variant='dpt' AND task='rte' AND seed=1 AND status='done'").first?["id"]?.int)
        try s.db.query("DELETE FROM predictions WHERE run_id=? AND kind='best'", [.int(dpt)])
        (code, out, notes) = try gate("dpt")
        XCTAssertTrue(out.contains("1 compared run has no stored predictions (rte seed 1 (dpt)): their tasks are tested by the paired t over seeds alone"), out)
    }

    func testEvaluatedAdapterAppearsInResultsAndCompare() throws {
        let data = try sharedData()
        let dir = tempDir("evaladapter")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try miniSpec.write(toFile: "\(dir)/mini.yaml", atomically: true, encoding: .utf8)
        let db = "\(dir)/s.sqlite"
        XCTAssertEqual(try runCLI(["sweep", "\(dir)/mini.yaml", "--profile", "smoke", "--workers", "2", "--db", db, "--data-dir", data,
                                   "--checkpoints", "\(dir)/ck"]).terminationStatus, 0)
        var (status, err) = try runCapture(["train", "--method", "pt", "--task", "cb", "--k", "8", "--epochs", "1", "--n", "8", "--eval-limit", "4",
                                            "--decode-max-tokens", "2", "--data-dir", data, "--save-adapter", "\(dir)/adapter"])
        XCTAssertEqual(status, 0, err)
        // Prompt transfer: --init-from a PEFT adapter directory starts PT from its prompt.
        (status, err) = try runCapture(["train", "--method", "pt", "--task", "rte", "--k", "8", "--n", "8", "--max-steps", "0", "--eval-limit", "2",
                                        "--decode-max-tokens", "1", "--data-dir", data, "--init-from", "\(dir)/adapter", "--artifact", "\(dir)/init.safetensors"])
        XCTAssertEqual(status, 0, err)
        XCTAssertEqual(try SafeTensorsFile(path: "\(dir)/init.safetensors").tensor("prompt").array,
                       try SafeTensorsFile(path: "\(dir)/adapter/adapter_model.safetensors").tensor("prompt_embeddings").array)
        // max_steps 0 evaluates the initial state once (it stored a run without scores as done):
        // PT started from the adapter's prompt scores what `eval` of that adapter scores.
        let (zrc, zjson) = try runStdout(["train", "--method", "pt", "--task", "rte", "--k", "8", "--n", "8", "--max-steps", "0", "--eval-limit", "6",
                                          "--decode-max-tokens", "2", "--data-dir", data, "--init-from", "\(dir)/adapter"])
        XCTAssertEqual(zrc, 0)
        let (erc, ejson) = try runStdout(["eval", "--model", "embedded:t5-tiny", "--adapter", "\(dir)/adapter", "--task", "rte", "--eval-limit", "6",
                                          "--decode-max-tokens", "2", "--data-dir", data])
        XCTAssertEqual(erc, 0)
        let zero = try JSONSerialization.jsonObject(with: Data(zjson.utf8)) as? [String: Any]
        let evaluated = try JSONSerialization.jsonObject(with: Data(ejson.utf8)) as? [String: Any]
        XCTAssertNotNil((zero?["best"] as? [String: Any])?["accuracy"], zjson)
        XCTAssertEqual(zero?["best"] as? [String: Double], evaluated?["best"] as? [String: Double])
        XCTAssertEqual(zero?["bestEpoch"] as? Int, 0, zjson)
        // The result says what fixed its bits beyond the config: kernel, blocking, threads.
        XCTAssertTrue((zero?["numerics"] as? String)?.contains("threads") == true, zjson)
        XCTAssertTrue((evaluated?["numerics"] as? String)?.contains("openblas") == true, ejson)
        // Selecting on a dev split, the initial state is scored there too: a search reads the
        // run's selection_score (without it every max_steps 0 grid point read as diverged).
        let (drc, djson) = try runStdout(["train", "--method", "pt", "--task", "cb", "--k", "8", "--n", "8", "--max-steps", "0", "--eval-limit", "4",
                                          "--decode-max-tokens", "1", "--select-on", "train-dev", "--data-dir", data])
        XCTAssertEqual(drc, 0)
        let dev = try JSONSerialization.jsonObject(with: Data(djson.utf8)) as? [String: Any]
        XCTAssertNotNil((dev?["extras"] as? [String: Any])?["selection_score"] as? Double, djson)
        // A path holding "#" (the stored value is "PATH#sha256:…"): it was cut at its first "#",
        // and `runs#2/adapter` was read as `runs`.
        try FileManager.default.createDirectory(atPath: "\(dir)/runs#2", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "\(dir)/adapter", toPath: "\(dir)/runs#2/adapter")
        (status, err) = try runCapture(["train", "--method", "pt", "--task", "rte", "--k", "8", "--n", "8", "--max-steps", "0", "--eval-limit", "2",
                                        "--decode-max-tokens", "1", "--data-dir", data, "--init-from", "\(dir)/runs#2/adapter",
                                        "--artifact", "\(dir)/init-hash.safetensors"])
        XCTAssertEqual(status, 0, err)
        XCTAssertEqual(try SafeTensorsFile(path: "\(dir)/init-hash.safetensors").tensor("prompt").array,
                       try SafeTensorsFile(path: "\(dir)/adapter/adapter_model.safetensors").tensor("prompt_embeddings").array)
        (status, err) = try runCapture(["eval", "--model", "embedded:t5-tiny", "--adapter", "\(dir)/runs#2/adapter", "--task", "cb", "--eval-limit", "2",
                                        "--decode-max-tokens", "1", "--data-dir", data])
        XCTAssertEqual(status, 0, err)
        XCTAssertFalse(err.contains("warning: the adapter was trained on task"), err)
        // Scored on another task than it trained on (its run config says cb): a transfer, said as such.
        (status, err) = try runCapture(["eval", "--model", "embedded:t5-tiny", "--adapter", "\(dir)/runs#2/adapter", "--task", "rte", "--eval-limit", "2",
                                        "--decode-max-tokens", "2", "--data-dir", data])
        XCTAssertEqual(status, 0, err)
        XCTAssertTrue(err.contains("warning: the adapter was trained on task cb (") && err.contains("and is scored on rte: a transfer"), err)
        (status, err) = try runCapture(["train", "--method", "pt", "--task", "rte", "--k", "8", "--n", "5", "--max-steps", "0", "--data-dir", data,
                                        "--init-from", "\(dir)/adapter"])
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(err.contains("set n / m to match"), err)
        // The adapter's kind of model is the run's: every directory was read as a T5 adapter, so a
        // T5 prompt started a GPT-2 run and a GPT-2 prompt was refused as a "decoder-only" one.
        (status, err) = try runCapture(["train", "--method", "pt", "--task", "sst2", "--k", "8", "--n", "8", "--max-steps", "0", "--model", "embedded:gpt2-tiny",
                                        "--data-dir", data, "--init-from", "\(dir)/adapter"])
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(err.contains("task_type SEQ_2_SEQ_LM is an adapter for an encoder-decoder (T5) model; this model is GPT-2"), err)
        (status, err) = try runCapture(["train", "--method", "pt", "--task", "sst2", "--k", "8", "--epochs", "1", "--n", "8", "--eval-limit", "4",
                                        "--model", "embedded:gpt2-tiny", "--data-dir", data, "--save-adapter", "\(dir)/gpt2-adapter"])
        XCTAssertEqual(status, 0, err)
        (status, err) = try runCapture(["train", "--method", "pt", "--task", "sst2", "--k", "8", "--n", "8", "--max-steps", "0", "--eval-limit", "2",
                                        "--model", "embedded:gpt2-tiny", "--data-dir", data, "--init-from", "\(dir)/gpt2-adapter", "--artifact", "\(dir)/gpt2-init.safetensors"])
        XCTAssertEqual(status, 0, err)
        XCTAssertEqual(try SafeTensorsFile(path: "\(dir)/gpt2-init.safetensors").tensor("prompt").array,
                       try SafeTensorsFile(path: "\(dir)/gpt2-adapter/adapter_model.safetensors").tensor("prompt_embeddings").array)
        // respt-code cuts prompt and text to 512 together: an adapter without its run's settings
        // keeps 512 − num_virtual_tokens text tokens (the preset saw no prompt rows: 512).
        try FileManager.default.copyItem(atPath: "\(dir)/adapter", toPath: "\(dir)/bare")
        try FileManager.default.removeItem(atPath: "\(dir)/bare/promptrepro_run_config.json")
        (status, err) = try runCapture(["eval", "--model", "embedded:t5-tiny", "--adapter", "\(dir)/bare", "--task", "cb", "--protocol", "respt-code",
                                        "--eval-limit", "2", "--data-dir", data, "--db", "\(dir)/respt.sqlite"])
        XCTAssertEqual(status, 0, err)
        XCTAssertEqual(try ResultsStore(path: "\(dir)/respt.sqlite").db.query("SELECT json_extract(config_json, '$.max_source_length') AS l FROM runs")
                        .first?["l"]?.int, 504)
        (status, err) = try runCapture(["train", "--method", "pt", "--task", "cb", "--k", "8", "--epochs", "1", "--n", "8", "--eval-limit", "4",
                                        "--decode-max-tokens", "2", "--seed", "2", "--data-dir", data, "--save-adapter", "\(dir)/adapter2"])
        XCTAssertEqual(status, 0, err)
        let evalArgs = ["--task", "cb", "--k", "8", "--eval-limit", "16", "--decode-max-tokens", "3", "--data-dir", data, "--db", db,
                        "--spec", "mini", "--column", "t5-small", "--profile", "smoke"]
        /// `eval` of an adapter on CB k 8, its first 16 rows, into a store under a spec and column
        /// (defaults: the embedded T5, `dir/adapter`, `db`, `dir/mini.yaml`, column t5-small; a nil
        /// column passes none).
        func evalCB(_ variant: String, model: String = "embedded:t5-tiny", adapter: String? = nil, store: String? = nil, spec: String? = nil,
                    column: String? = "t5-small") throws -> (Int32, String) {
            try runCapture(["eval", "--model", model, "--adapter", adapter ?? "\(dir)/adapter", "--variant", variant,
                            "--task", "cb", "--k", "8", "--eval-limit", "16", "--decode-max-tokens", "3", "--data-dir", data,
                            "--db", store ?? db, "--spec", spec ?? "\(dir)/mini.yaml"] + (column.map { ["--column", $0] } ?? []) + ["--profile", "smoke"])
        }
        for (seed, adapter) in [("1", "adapter"), ("2", "adapter2")] {
            (status, err) = try runCapture(["eval", "--model", "embedded:t5-tiny", "--adapter", "\(dir)/\(adapter)", "--seed", seed, "--variant", "peft-pt",
                                            "--threads", "1"] + evalArgs)
            XCTAssertEqual(status, 0, err)
        }
        // What an evaluation ran on is recorded as for a trained run (both were NULL, so a cell
        // evaluated under two kernels or thread counts was never named by the reads).
        let recorded = try ResultsStore(path: db).db.query("SELECT tool_version, threads FROM runs WHERE variant='peft-pt' AND status='evaluated'")
        XCTAssertEqual(recorded.count, 2)
        for row in recorded {
            XCTAssertTrue(row["tool_version"]?.text?.hasPrefix("promptrepro ") == true, "\(row)")
            XCTAssertEqual(row["threads"]?.int, 1)
        }
        XCTAssertEqual(try ResultsStore(path: db).mixedNumerics(spec: "mini", profile: "smoke", planned: nil), [:])
        // Seed 2 evaluated again on 2 threads (a re-evaluation replaces its run): the cell mixes setups.
        (status, err) = try runCapture(["eval", "--model", "embedded:t5-tiny", "--adapter", "\(dir)/adapter2", "--seed", "2", "--variant", "peft-pt",
                                        "--threads", "2"] + evalArgs)
        XCTAssertEqual(status, 0, err)
        let mixed = try ResultsStore(path: db).mixedNumerics(spec: "mini", profile: "smoke", planned: nil)
        XCTAssertEqual(mixed.count, 1, "\(mixed)")
        XCTAssertEqual(mixed.values.first?.map { $0.hasSuffix("threads 1") || $0.hasSuffix("threads 2") }, [true, true], "\(mixed)")
        // The seed is the training run's: another one is refused (it would pair the adapter with
        // the wrong seed's runs), and without --seed the run config's is used.
        (status, err) = try runCapture(["eval", "--model", "embedded:t5-tiny", "--adapter", "\(dir)/adapter", "--seed", "2", "--variant", "peft-pt"] + evalArgs)
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(err.contains("--seed 2: the adapter was trained with seed 1"), err)
        // A cell of the sweep is not taken over: `pt` is a trained variant of the spec, and its
        // finished seed-1 run stays current.
        let s0 = try ResultsStore(path: db)
        let before = try s0.db.query("SELECT id, status FROM runs WHERE variant='pt' AND task='cb' AND seed=1 AND status != 'superseded'")
        XCTAssertEqual(before.first?["status"]?.text, "done")
        (status, err) = try runCapture(["eval", "--model", "embedded:t5-tiny", "--adapter", "\(dir)/adapter", "--variant", "pt"] + evalArgs)
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(err.contains("holds a done run of the sweep") && err.contains("--variant"), err)
        XCTAssertEqual(try s0.db.query("SELECT id, status FROM runs WHERE variant='pt' AND task='cb' AND seed=1 AND status != 'superseded'"), before)
        let (_, json) = try runStdout(["eval", "--model", "embedded:t5-tiny", "--adapter", "\(dir)/adapter", "--task", "cb", "--eval-limit", "8",
                                       "--data-dir", data])
        let r = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        XCTAssertEqual(r?["status"] as? String, "evaluated")
        XCTAssertNotNil((r?["best"] as? [String: Any])?["accuracy"], "the result JSON is printed")
        let s = try ResultsStore(path: db)
        let rows = try s.db.query("SELECT status, adapter_sha256, json_extract(config_json, '$.method.n') AS n, trainable_params FROM runs WHERE variant='peft-pt'")
        XCTAssertEqual(rows.count, 2)
        for r in rows {
            XCTAssertEqual(r["status"]?.text, "evaluated")
            XCTAssertEqual(r["adapter_sha256"]?.text?.count, 64)
            // The adapter's num_virtual_tokens (8, from `train --n 8`), not the PT preset's prompt length.
            XCTAssertEqual(r["n"]?.int, 8)
            // Its prompt's scalars: 8 tokens × t5-tiny's hidden size.
            XCTAssertEqual(r["trainable_params"]?.int, 8 * EmbeddedBackbones.t5Tiny.dModel)
        }
        // Its one evaluation is epoch 0 for both kinds of scores (the last ones were stored without an epoch).
        let epochs = try s.db.query("SELECT DISTINCT scores.kind, scores.epoch FROM scores JOIN runs ON runs.id = run_id WHERE variant='peft-pt' ORDER BY scores.kind")
        XCTAssertEqual(epochs.map { $0["kind"]?.text ?? "" }, ["best", "last"])
        for r in epochs {
            XCTAssertEqual(r["epoch"]?.int, 0, "\(r)")
        }
        let cell = try XCTUnwrap(try s.cellResults(spec: "mini", profile: "smoke").first { $0.variant == "peft-pt" })
        XCTAssertEqual(cell.seeds, [1, 2])
        let (code, text) = try runStdout(["compare", "--spec", "\(dir)/mini.yaml", "--method", "peft-pt", "--baseline", "pt", "--db", db, "--data-dir", data])
        XCTAssertEqual(code, 0, text)
        XCTAssertTrue(text.contains("| cb | accuracy |") && text.contains("paired bootstrap over 16 examples × 2 seeds"), text)
        // peft-bench: an evaluated run's training settings are not known here (they were the
        // evaluation preset's: 100 epochs of method "peft-adapter"); its PEFT config is its own.
        XCTAssertEqual(try runCLI(["export", "\(dir)/mini.yaml", "--db", db, "--format", "peft-bench", "--out", "\(dir)/pbe", "--data-dir", data]).terminationStatus, 0)
        let pbFile = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: "\(dir)/pbe").first { $0.hasPrefix("peft-pt_cb") })
        let pb = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/pbe/\(pbFile)"))) as? [String: Any])
        let runInfo = try XCTUnwrap(pb["run_info"] as? [String: Any])
        let trainConfig = try XCTUnwrap(runInfo["train_config"] as? [String: Any])
        XCTAssertTrue(trainConfig["epochs"] is NSNull && trainConfig["lr"] is NSNull && (trainConfig["evaluated_only"] as? String) != nil, "\(trainConfig)")
        XCTAssertTrue(trainConfig["method"] is NSNull && (trainConfig["protocol"] as? String)?.hasSuffix("(evaluation settings only)") == true, "\(trainConfig)")
        // lm-eval: the greedy decode's cap is a number, and the evaluated variant's preset is said to be the evaluation's.
        XCTAssertEqual(try runCLI(["export", "\(dir)/mini.yaml", "--db", db, "--format", "lm-eval", "--out", "\(dir)/lme", "--data-dir", data]).terminationStatus, 0)
        let lmeDir = "\(dir)/lme/mini__smoke__peft-pt__t5-small__k8"
        let lmeFile = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: lmeDir).first)
        let lme = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(lmeDir)/\(lmeFile)"))) as? [String: Any])
        let lmeConfig = try XCTUnwrap(lme["config"] as? [String: Any])
        XCTAssertEqual((lmeConfig["gen_kwargs"] as? [String: Any])?["max_new_tokens"] as? Int, 3, "\(lmeConfig)")
        XCTAssertEqual(lmeConfig["presets"] as? [String], ["dpt-paper (evaluation settings of an adapter trained elsewhere)"])
        XCTAssertEqual((runInfo["peft_config"] as? [String: Any])?["peft_type"] as? String, "PROMPT_TUNING")
        let pbMetrics = try XCTUnwrap((pb["train_info"] as? [String: Any])?["metrics"] as? [[String: Any]])
        XCTAssertTrue((pbMetrics.last?["test metric"] as? String)?.contains("the adapter's one evaluation") == true, "\(pbMetrics)")
        // The evaluated side's one score is of the weights given, the trained side's of its best epoch: said.
        XCTAssertTrue(text.contains("> peft-pt holds evaluated adapters, each scored once on the weights given") && text.contains("pt's trained runs report their best epoch"), text)
        // An adapter variant the spec does not plan is expected where the other side is: scored on
        // cb only, it lacks the spec's rte runs, and the gate fails (it expected nothing of it and
        // passed: "every expected run present"); the same with the sides swapped.
        for (new, base, label) in [("peft-pt", "pt", "new 'peft-pt'"), ("dpt", "peft-pt", "baseline 'peft-pt'")] {
            let (gate, gateText) = try runStdout(["compare", "--spec", "\(dir)/mini.yaml", "--method", new, "--baseline", base, "--db", db, "--data-dir", data,
                                                  "--max-regression", "100"])
            XCTAssertEqual(gate, 1, gateText)
            XCTAssertTrue(gateText.contains("\(label) rte t5-small k=8: seeds 1, 2 missing (no counted runs: not evaluated into this store (eval --db))")
                          && gateText.contains("FAILED — 2 runs missing"), gateText)
            XCTAssertFalse(gateText.contains("\(label) cb"), gateText)
        }
        // A spec given by its file's path is stored under the name the file declares (the path was
        // stored as the spec's name, and `compare --spec FILE` found no run of the variant).
        (status, err) = try evalCB("by-path")
        XCTAssertEqual(status, 0, err)
        XCTAssertTrue(err.contains("(by-path|cb|t5-small|k8, seed 1, evaluated) under spec mini [smoke] in \(db)"), err)
        XCTAssertEqual(try ResultsStore(path: db).db.query("SELECT spec FROM runs WHERE variant='by-path'").map { $0["spec"]?.text ?? "" }, ["mini"])
        try ResultsStore(path: db).db.query("DELETE FROM runs WHERE variant='by-path'")
        // A spec file that is not there is refused before anything is scored or stored (a typo
        // stored the run under the path as its spec name); a bare name without a file is stored
        // under that name, with a note that no sweep plans it.
        (status, err) = try evalCB("typo", spec: "\(dir)/mini-typo.yaml")
        XCTAssertNotEqual(status, 0, err)
        XCTAssertTrue(err.contains("mini-typo.yaml"), err)
        XCTAssertEqual(try ResultsStore(path: db).db.query("SELECT id FROM runs WHERE variant='typo'").count, 0)
        // A name with '/' that is no file is refused (reads take it for a missing spec path, and
        // the runs stored under it could not be read).
        (status, err) = try runCapture(["eval", "--model", "embedded:t5-tiny", "--adapter", "\(dir)/adapter", "--variant", "slash",
                                        "--task", "cb", "--k", "8", "--eval-limit", "16", "--data-dir", data, "--db", db,
                                        "--spec", "team/adapters", "--column", "t5-small", "--profile", "smoke"])
        XCTAssertNotEqual(status, 0, err)
        XCTAssertTrue(err.contains("--spec team/adapters: no such spec file; a spec name without a file (runs of evaluated adapters only) may not contain '/'"), err)
        try FileManager.default.createDirectory(atPath: "\(dir)/nospec", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "\(dir)/adapter", toPath: "\(dir)/nospec/adapter")
        (status, err) = try evalCB("bare", adapter: "\(dir)/nospec/adapter", spec: "no-such-spec")
        XCTAssertEqual(status, 0, err)
        XCTAssertTrue(err.contains("note: no spec file") && err.contains("stored under spec 'no-such-spec', which no sweep plans"), err)
        XCTAssertEqual(try ResultsStore(path: db).db.query("SELECT spec FROM runs WHERE variant='bare'").map { $0["spec"]?.text ?? "" }, ["no-such-spec"])
        // `compare` on such a name says why it needs a spec file and where the runs are listed.
        (status, err) = try runCapture(["compare", "--spec", "no-such-spec", "--method", "bare", "--baseline", "pt", "--db", db, "--profile", "smoke"])
        XCTAssertEqual(status, 1, err)
        XCTAssertTrue(err.contains("no such spec") && err.contains("compare pairs runs against what a spec plans") && err.contains("promptrepro results no-such-spec"), err)
        // Reads of such a name leave out an adapter changed at its stored path (it counted: only
        // reads against a spec's plan compared adapters), and say when it is not there any more.
        func bareRead(status want: Int32 = 0) throws -> (String, String) {
            let args = ["results", "no-such-spec", "--profile", "smoke", "--db", db, "--format", "csv"]
            let (rc, out) = try runCLIText(args, stdout: true)
            let err = try runCLIText(args, stdout: false).1
            XCTAssertEqual(rc, want, out + err)
            return (out, err)
        }
        var (bareOut, bareErr) = try bareRead()
        XCTAssertTrue(bareOut.contains("bare|cb|t5-small|k8") && !bareErr.contains("evaluated run"), bareOut + bareErr)
        try FileManager.default.removeItem(atPath: "\(dir)/nospec/adapter/adapter_model.safetensors")
        try FileManager.default.copyItem(atPath: "\(dir)/adapter2/adapter_model.safetensors", toPath: "\(dir)/nospec/adapter/adapter_model.safetensors")
        (bareOut, bareErr) = try bareRead(status: 1)  // its only run left out: nothing to show
        XCTAssertTrue(!bareOut.contains("bare|cb|t5-small|k8") && bareErr.contains("1 evaluated run of no-such-spec [smoke] (e.g. bare|cb|t5-small|k8 seed 1) left out"), bareOut + bareErr)
        try FileManager.default.removeItem(atPath: "\(dir)/nospec")
        (bareOut, bareErr) = try bareRead()
        XCTAssertTrue(bareOut.contains("bare|cb|t5-small|k8") && bareErr.contains("counted, not compared: their adapter is not at the stored path"), bareOut + bareErr)
        try ResultsStore(path: db).db.query("DELETE FROM runs WHERE variant='bare'")
        // Without --column, the spec's column that loads --model in this profile (t5-small loads
        // embedded:t5-tiny under smoke): the run was stored under the column "embedded:t5-tiny".
        (status, err) = try evalCB("no-column", column: nil)
        XCTAssertEqual(status, 0, err)
        XCTAssertTrue(err.contains("eval: model column t5-small of spec mini [smoke], which loads embedded:t5-tiny"), err)
        XCTAssertEqual(try ResultsStore(path: db).db.query("SELECT model FROM runs WHERE variant='no-column'").map { $0["model"]?.text ?? "" }, ["t5-small"])
        try ResultsStore(path: db).db.query("DELETE FROM runs WHERE variant='no-column'")
        // A --db whose folder is not there is refused (a mistyped path stored the run in a new
        // store no read looked at), nothing created; a directory given as the store is named so.
        (status, err) = try evalCB("nodir", store: "\(dir)/no-such-folder/x.sqlite")
        XCTAssertNotEqual(status, 0, err)
        XCTAssertTrue(err.contains("neither the store nor its folder \(dir)/no-such-folder exists"), err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/no-such-folder"))
        (status, err) = try runCapture(["results", "\(dir)/mini.yaml", "--profile", "smoke", "--db", dir, "--data-dir", data])
        XCTAssertEqual(status, 1, err)
        XCTAssertTrue(err.contains("\(dir): is a directory, not an SQLite store") && !err.contains("disk"), err)
        // Another checkpoint than the column loads: its weights must be the column's (a copy at
        // another path is stored there); other weights are refused before anything is scored
        // (a 32-dim random T5 was stored in column t5-small and `compare` paired it with the
        // column's runs, gate passed).
        let embedded = try ModelFiles.locate("embedded:t5-tiny")
        for copy in ["t5copy", "t5other"] {
            try? FileManager.default.removeItem(atPath: "\(dir)/\(copy)")
            try FileManager.default.copyItem(atPath: embedded, toPath: "\(dir)/\(copy)")
        }
        let other = try XCTUnwrap(FileHandle(forUpdatingAtPath: "\(dir)/t5other/model.safetensors"))
        let end = try other.seekToEnd()
        try other.seek(toOffset: end - 4)
        try other.write(contentsOf: Data([0x00, 0x00, 0x80, 0x3f]))  // the last weight becomes 1.0
        try other.close()
        (status, err) = try evalCB("other-weights", model: "\(dir)/t5other")
        XCTAssertNotEqual(status, 0, err)
        XCTAssertTrue(err.contains("--model \(dir)/t5other: spec mini [smoke] loads embedded:t5-tiny for column t5-small, whose weights differ")
                      && err.contains("Pass --column NAME"), err)
        XCTAssertEqual(try ResultsStore(path: db).db.query("SELECT id FROM runs WHERE variant='other-weights'").count, 0)
        // Into a store that does not exist yet: refused, and no empty store left behind.
        (status, err) = try evalCB("other-weights", model: "\(dir)/t5other", store: "\(dir)/fresh.sqlite")
        XCTAssertNotEqual(status, 0, err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/fresh.sqlite"), err)
        (status, err) = try evalCB("copied-weights", model: "\(dir)/t5copy")
        XCTAssertEqual(status, 0, err)
        XCTAssertTrue(err.contains("eval: \(dir)/t5copy has the weights of embedded:t5-tiny, which column t5-small loads"), err)
        XCTAssertEqual(try ResultsStore(path: db).db.query("SELECT model FROM runs WHERE variant='copied-weights'").map { $0["model"]?.text ?? "" }, ["t5-small"])
        try ResultsStore(path: db).db.query("DELETE FROM runs WHERE variant='copied-weights'")
        // One variant's seeds evaluated on different example sets (16 and 8 rows: an eval_limit
        // forgotten on one seed): its mean mixes sets, `results` names it, and `compare` does not
        // pair it (the cell's unknown example count skipped the check: paired t, gate passed).
        for (seed, adapter, limit) in [("1", "adapter", "16"), ("2", "adapter2", "8")] {
            (status, err) = try runCapture(["eval", "--model", "embedded:t5-tiny", "--adapter", "\(dir)/\(adapter)", "--seed", seed, "--variant", "mixed",
                                            "--task", "cb", "--k", "8", "--eval-limit", limit, "--decode-max-tokens", "3", "--data-dir", data, "--db", db,
                                            "--spec", "mini", "--column", "t5-small", "--profile", "smoke"])
            XCTAssertEqual(status, 0, err)
        }
        let (_, mixedResults) = try runStdout(["results", "\(dir)/mini.yaml", "--profile", "smoke", "--db", db, "--data-dir", data])
        XCTAssertTrue(mixedResults.contains("> Mixed evaluation sets: 1 cell (e.g. mixed|cb|t5-small|k8: templates dpt, 16 examples | templates dpt, 8 examples)"), mixedResults)
        let (mixedGate, mixedText) = try runStdout(["compare", "--spec", "\(dir)/mini.yaml", "--method", "mixed", "--baseline", "pt", "--db", db, "--data-dir", data,
                                                    "--max-regression", "100", "--allow-missing"])
        XCTAssertEqual(mixedGate, 1, mixedText)
        XCTAssertTrue(mixedText.contains("none: the runs of mixed scored different validation sets (templates dpt, 16 examples / templates dpt, 8 examples), not paired"), mixedText)
        // A run without stored best-epoch predictions (a migrated legacy run) says nothing of its
        // set: the cell's set is its other runs' (it was unknown, and `compare` skipped the check).
        let ms = try ResultsStore(path: db)
        try ms.db.query("DELETE FROM predictions WHERE kind='best' AND run_id IN (SELECT id FROM runs WHERE variant='mixed' AND seed=2)")
        let legacy = try XCTUnwrap(try ms.cellResults(spec: "mini", profile: "smoke").first { $0.variant == "mixed" })
        XCTAssertEqual(legacy.evalExamples, 16)
        XCTAssertNil(legacy.mixedEvalSets)
        try ms.db.query("DELETE FROM runs WHERE variant='mixed'")
        // Another adapter directory of the same name under the same variant (the variant defaults
        // to the directory's name, `adapter`): it superseded the first without a word; now other
        // weights are refused, and replaced with --replace. The same weights at another path (a
        // copy) and the same directory again re-evaluate in place.
        func seedOne() throws -> [String] {
            try s.db.query("SELECT json_extract(config_json, '$.adapter') AS a FROM runs WHERE variant='peft-pt' AND seed=1 AND status='evaluated'")
                .compactMap { $0["a"]?.text.map { String($0.prefix { $0 != "#" }) } }
        }
        try FileManager.default.createDirectory(atPath: "\(dir)/copy", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "\(dir)/adapter", toPath: "\(dir)/copy/adapter")
        (status, err) = try runCapture(["eval", "--model", "embedded:t5-tiny", "--adapter", "\(dir)/copy/adapter", "--variant", "peft-pt"] + evalArgs)
        XCTAssertEqual(status, 0, err)
        XCTAssertEqual(try seedOne(), ["\(dir)/copy/adapter"])
        // The same weights with another adapter_config.json (whose lora_alpha or use_rslora would
        // move every number): not the same adapter, refused as other weights are.
        try FileManager.default.createDirectory(atPath: "\(dir)/reconfigured", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "\(dir)/adapter", toPath: "\(dir)/reconfigured/adapter")
        var cfg = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/reconfigured/adapter/adapter_config.json"))) as? [String: Any])
        cfg["inference_mode"] = false
        try JSONSerialization.data(withJSONObject: cfg).write(to: URL(fileURLWithPath: "\(dir)/reconfigured/adapter/adapter_config.json"))
        (status, err) = try runCapture(["eval", "--model", "embedded:t5-tiny", "--adapter", "\(dir)/reconfigured/adapter", "--variant", "peft-pt"] + evalArgs)
        XCTAssertNotEqual(status, 0, err)
        XCTAssertTrue(err.contains("holds evaluated run") && err.contains("--replace"), err)
        XCTAssertEqual(try seedOne(), ["\(dir)/copy/adapter"])
        // Other weights: the copy's prompt moved by 0.5, without the run config (which names the
        // old weights' sha256), so seed and lengths come from the flags.
        try FileManager.default.createDirectory(atPath: "\(dir)/other", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "\(dir)/adapter", toPath: "\(dir)/other/adapter")
        try FileManager.default.removeItem(atPath: "\(dir)/other/adapter/promptrepro_run_config.json")
        let prompt = try SafeTensorsFile(path: "\(dir)/other/adapter/adapter_model.safetensors").tensor("prompt_embeddings")
        try SafeTensorsFile.write(["prompt_embeddings": Tensor(shape: prompt.shape, values: prompt.array.map { $0 + 0.5 })],
                                  to: "\(dir)/other/adapter/adapter_model.safetensors")
        (status, err) = try runCapture(["eval", "--model", "embedded:t5-tiny", "--adapter", "\(dir)/other/adapter", "--variant", "peft-pt", "--seed", "1"] + evalArgs)
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(err.contains("cell peft-pt|cb|t5-small|k8 seed 1 holds evaluated run") && err.contains("of the adapter at \(dir)/copy/adapter (sha256 ")
                      && err.contains("--replace"), err)
        XCTAssertEqual(try seedOne(), ["\(dir)/copy/adapter"])
        (status, err) = try runCapture(["eval", "--model", "embedded:t5-tiny", "--adapter", "\(dir)/copy/adapter", "--variant", "peft-pt"] + evalArgs)
        XCTAssertEqual(status, 0, err)
        (status, err) = try runCapture(["eval", "--model", "embedded:t5-tiny", "--adapter", "\(dir)/other/adapter", "--variant", "peft-pt", "--seed", "1", "--replace"] + evalArgs)
        XCTAssertEqual(status, 0, err)
        XCTAssertEqual(try seedOne(), ["\(dir)/other/adapter"])
    }

    /// A DePT adapter (PEFT fork's PROMPT_TUNING_LORA) is stored with its sizes in DePT's fields:
    /// num_virtual_tokens as m (DePT's prompt length), r, lora_alpha as alpha, max_length as s.
    func testEvaluatedDePTAdapterRecordsItsShape() throws {
        let data = try sharedData()
        let dir = tempDir("evaldept")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: "\(dir)/ad", withIntermediateDirectories: true)
        try #"{"peft_type": "PROMPT_TUNING_LORA", "task_type": "SEQ_2_SEQ_LM", "num_virtual_tokens": 6, "token_dim": 64, "num_transformer_submodules": 1, "r": 3, "lora_alpha": 8, "max_length": 64}"#
            .write(toFile: "\(dir)/ad/adapter_config.json", atomically: true, encoding: .utf8)
        let key = RNGKey(seed: 5)
        try SafeTensorsFile.write(["prompt_embeddings": Tensor.normal([6, 64], std: 0.5, key: key.derive("p")),
                                   "lora_embedding_A": Tensor.normal([64, 3], key: key.derive("a")),
                                   "lora_embedding_B": Tensor.normal([3, 64], std: 0.1, key: key.derive("b"))], to: "\(dir)/ad/adapter_model.safetensors")
        let db = "\(dir)/s.sqlite"
        let (status, err) = try runCapture(["eval", "--model", "embedded:t5-tiny", "--adapter", "\(dir)/ad", "--adapter-format", "dept", "--task", "cb",
                                            "--eval-limit", "4", "--decode-max-tokens", "2", "--max-source-length", "64", "--data-dir", data,
                                            "--db", db, "--spec", "adapters", "--variant", "dept-peft"])
        XCTAssertEqual(status, 0, err)
        // An embedded (random-weight) backbone's run is a smoke run: by default, and no other profile.
        XCTAssertEqual(try ResultsStore(path: db).db.query("SELECT profile FROM runs").first?["profile"]?.text, "smoke")
        let (refused, why) = try runCapture(["eval", "--model", "embedded:t5-tiny", "--adapter", "\(dir)/ad", "--adapter-format", "dept", "--task", "cb",
                                             "--db", db, "--spec", "adapters", "--variant", "dept-cpu", "--profile", "cpu", "--data-dir", data])
        XCTAssertNotEqual(refused, 0)
        XCTAssertTrue(why.contains("is a random-weight smoke backbone"), why)
        // The run's identity covers the adapter's config as well as its tensors.
        let adapterField = try ResultsStore(path: db).db.query("SELECT json_extract(config_json, '$.adapter') AS a FROM runs").first?["a"]?.text ?? ""
        XCTAssertTrue(adapterField.hasSuffix("#adapter_config:" + (try SHA256.hex(file: "\(dir)/ad/adapter_config.json"))), adapterField)
        // A prompt transfer would drop a DePT adapter's input update: refused, naming the type.
        let (transfer, transferErr) = try runCapture(["train", "--method", "dept", "--task", "cb", "--k", "8", "--m", "6", "--r", "3", "--dept-s", "64",
                                                      "--max-source-length", "64", "--max-steps", "0", "--data-dir", data, "--init-from", "\(dir)/ad"])
        XCTAssertNotEqual(transfer, 0)
        XCTAssertTrue(transferErr.contains("--init-from reads a PROMPT_TUNING adapter; this one is PROMPT_TUNING_LORA"), transferErr)
        let row = try XCTUnwrap(try ResultsStore(path: db).db.query("""
            SELECT json_extract(config_json, '$.method.m') AS m, json_extract(config_json, '$.method.r') AS r,
                   json_extract(config_json, '$.method.s') AS s, json_extract(config_json, '$.method.alpha') AS alpha FROM runs
            """).first)
        XCTAssertEqual([row["m"]?.int, row["r"]?.int, row["s"]?.int], [6, 3, 64])
        XCTAssertEqual(row["alpha"]?.double ?? row["alpha"]?.int.map(Double.init), 8)
    }

    /// `eval --adapter` of an adapter PromptRepro trained builds its inputs as training did: a run
    /// with a non-default max_source_length (192; the table1 smoke profile's kind of setting)
    /// scores the same in `eval` as in `train`, where the preset's 256 scores otherwise (14.29 here
    /// against 8.93, which the check on the explicit flag keeps visible).
    func testEvalReadsTheTrainingRunsInputSettings() throws {
        let data = try sharedData()
        let dir = tempDir("evallen")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let common = ["--task", "cb", "--k", "32", "--seed", "2", "--eval-limit", "64", "--decode-max-tokens", "8", "--threads", "2", "--data-dir", data]
        let (status, trained) = try runStdout(["train", "--method", "pt", "--n", "100", "--epochs", "10", "--batch-size", "8", "--eval-every", "5",
                                               "--eval-batch-size", "64", "--max-source-length", "192", "--save-adapter", "\(dir)/ad"] + common)
        XCTAssertEqual(status, 0)
        func accuracy(_ json: String) throws -> Double {
            let r = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
            return try XCTUnwrap((r["best"] as? [String: Any])?["accuracy"] as? Double, json)
        }
        let trainedAccuracy = try accuracy(trained)
        let (s1, evaluated) = try runStdout(["eval", "--model", "embedded:t5-tiny", "--adapter", "\(dir)/ad"] + common)
        XCTAssertEqual(s1, 0)
        XCTAssertEqual(try accuracy(evaluated), trainedAccuracy)
        let (s2, preset) = try runStdout(["eval", "--model", "embedded:t5-tiny", "--adapter", "\(dir)/ad", "--max-source-length", "256"] + common)
        XCTAssertEqual(s2, 0)
        XCTAssertNotEqual(try accuracy(preset), trainedAccuracy, "inputs of 192 and 256 tokens score alike here: the check above cannot fail")
        // The settings line says what the evaluation runs with, flags applied (it printed the run
        // config's 192 and 64 beside a 256-token, 8-row evaluation).
        let (s3, said) = try runCapture(["eval", "--model", "embedded:t5-tiny", "--adapter", "\(dir)/ad", "--max-source-length", "256"]
                                        + common.map { $0 == "64" ? "8" : $0 })
        XCTAssertEqual(s3, 0, said)
        XCTAssertTrue(said.contains("eval: max_source_length 256, ") && said.contains("eval_limit 8 (the training run's"), said)
    }

    /// A GPT-2 prompt adapter's rows count against n_positions (512 on the embedded GPT-2): 8
    /// prompt rows + max_source_length 510 is refused up front with the length that fits, 504,
    /// which then runs (the generic check counted no rows for an adapter and advised ≤ 512,
    /// which failed in the forward pass).
    func testEvalCountsAGPT2AdaptersPromptRows() throws {
        let data = try sharedData()
        let dir = tempDir("evalgpt2len")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (trc, terr) = try runCapture(["train", "--method", "pt", "--task", "sst2", "--model", "embedded:gpt2-tiny", "--k", "8", "--n", "8", "--max-steps", "0",
                                          "--eval-limit", "2", "--threads", "1", "--data-dir", data, "--save-adapter", "\(dir)/ad"])
        XCTAssertEqual(trc, 0, terr)
        let evalArgs = ["eval", "--model", "embedded:gpt2-tiny", "--adapter", "\(dir)/ad", "--task", "sst2", "--eval-limit", "2", "--threads", "1", "--data-dir", data]
        let (rc, err) = try runCapture(evalArgs + ["--max-source-length", "510"])
        XCTAssertNotEqual(rc, 0)
        XCTAssertTrue(err.contains("n_positions is 512, while the adapter's num_virtual_tokens 8 (prompt rows) + max_source_length 510 = 518 positions; pass --max-source-length 504 or less"), err)
        let (ok, okErr) = try runCapture(evalArgs + ["--max-source-length", "504"])
        XCTAssertEqual(ok, 0, okErr)
        // An eval mode or target length means nothing on GPT-2 (it ranks the verbaliser's words):
        // refused, on train and eval (train recorded --eval-mode generate in the run's identity,
        // eval replaced it in silence).
        let (gen, genErr) = try runCapture(["train", "--method", "pt", "--task", "sst2", "--model", "embedded:gpt2-tiny", "--k", "8", "--n", "8", "--max-steps", "0",
                                            "--eval-limit", "2", "--threads", "1", "--data-dir", data, "--eval-mode", "generate"])
        XCTAssertNotEqual(gen, 0)
        XCTAssertTrue(genErr.contains("--eval-mode generate: GPT-2 runs score the verbaliser's label words after the input"), genErr)
        let (mtl, mtlErr) = try runCapture(["train", "--method", "pt", "--task", "sst2", "--model", "embedded:gpt2-tiny", "--k", "8", "--n", "8", "--max-steps", "0",
                                            "--eval-limit", "2", "--threads", "1", "--data-dir", data, "--max-target-length", "4"])
        XCTAssertNotEqual(mtl, 0)
        XCTAssertTrue(mtlErr.contains("--max-target-length 4: GPT-2 runs"), mtlErr)
        // LoRA on q (or q,v, the default) of GPT-2 trains its fused c_attn, k included: said.
        let (lq, lqErr) = try runCapture(["train", "--method", "lora", "--task", "sst2", "--model", "embedded:gpt2-tiny", "--k", "8", "--max-steps", "0",
                                          "--eval-limit", "2", "--threads", "1", "--data-dir", data, "--lora-targets", "q"])
        XCTAssertEqual(lq, 0, lqErr)
        XCTAssertTrue(lqErr.contains("note: GPT-2 fuses q, k and v in one projection (c_attn): LoRA targets q train all three of them"), lqErr)
        // A transfer to AG News keeps SST-2's input length unless told: said, with the length AG News uses.
        let (tr, trErr) = try runCapture(["eval", "--model", "embedded:gpt2-tiny", "--adapter", "\(dir)/ad", "--task", "agnews", "--eval-limit", "2", "--threads", "1", "--data-dir", data])
        XCTAssertEqual(tr, 0, trErr)
        XCTAssertTrue(trErr.contains("note: the transfer cuts agnews's inputs at the training run's max_source_length 128; agnews's runs under lopt-paper use 256"), trErr)
        let (emtl, emtlErr) = try runCapture(evalArgs + ["--max-target-length", "4"])
        XCTAssertNotEqual(emtl, 0)
        XCTAssertTrue(emtlErr.contains("--max-target-length 4: GPT-2 runs score the verbaliser's label words"), emtlErr)
        let (evalGen, evalGenErr) = try runCapture(evalArgs + ["--eval-mode", "generate"])
        XCTAssertNotEqual(evalGen, 0)
        XCTAssertTrue(evalGenErr.contains("--eval-mode generate: GPT-2 runs score the verbaliser's label words"), evalGenErr)
        // Its settings line says what GPT-2 does: no "eval_mode generate" and decode cap.
        XCTAssertTrue(okErr.contains("eval_mode rank (GPT-2: the verbaliser's words), eval_limit") && !okErr.contains("generate"), okErr)
    }

    /// `eval` scores an adapter as its run did: rank classification and the decode settings come
    /// from the run config beside it (a rank-mode adapter scored 0 with every output invalid, since
    /// eval generated), and a run config written with another adapter is refused instead of lending
    /// its settings (a PEFT adapter saved into the directory later took the old run's 40-token limit).
    func testEvalScoresAsTheRunDidAndRefusesAnotherAdaptersRunConfig() throws {
        let data = try sharedData()
        let dir = tempDir("evalmode")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let common = ["--task", "cb", "--k", "8", "--seed", "1", "--eval-limit", "16", "--threads", "2", "--data-dir", data]
        let (status, trained) = try runStdout(["train", "--method", "pt", "--n", "4", "--epochs", "1", "--batch-size", "8", "--eval-mode", "rank",
                                               "--max-source-length", "96", "--save-adapter", "\(dir)/ad"] + common)
        XCTAssertEqual(status, 0, trained)
        func scores(_ json: String) throws -> [String: Double] {
            let r = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
            return try XCTUnwrap(r["last"] as? [String: Double], json)
        }
        let runConfig = "\(dir)/ad/promptrepro_run_config.json"
        let written = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: runConfig))) as? [String: Any])
        XCTAssertEqual(written["eval_mode"] as? String, "rank")
        XCTAssertEqual(written["adapter_sha256"] as? String, try SHA256.hex(file: "\(dir)/ad/adapter_model.safetensors"))
        let (s1, evaluated) = try runStdout(["eval", "--model", "embedded:t5-tiny", "--adapter", "\(dir)/ad"] + common)
        XCTAssertEqual(s1, 0, evaluated)
        XCTAssertEqual(try scores(evaluated), try scores(trained), "eval ranks as the run did")
        // Without --eval-limit eval scores the examples the run scored (its eval_limit, 16 of CB's
        // 56): the whole split was scored, beside a run that scored 16.
        func examples(_ json: String) throws -> Int? {
            (try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])?["evalExamples"] as? Int
        }
        let noLimit = ["--task", "cb", "--k", "8", "--seed", "1", "--threads", "2", "--data-dir", data]
        let (s0, same) = try runStdout(["eval", "--model", "embedded:t5-tiny", "--adapter", "\(dir)/ad"] + noLimit)
        XCTAssertEqual(s0, 0, same)
        XCTAssertEqual(try examples(same), 16, same)
        XCTAssertEqual(try scores(same), try scores(trained))
        let (s5, whole) = try runStdout(["eval", "--model", "embedded:t5-tiny", "--adapter", "\(dir)/ad", "--eval-limit", "56"] + noLimit)
        XCTAssertEqual(s5, 0, whole)
        XCTAssertEqual(try examples(whole), 56, whole)
        let (s2, generated) = try runStdout(["eval", "--model", "embedded:t5-tiny", "--adapter", "\(dir)/ad", "--eval-mode", "generate"] + common)
        XCTAssertEqual(s2, 0, generated)
        XCTAssertNotEqual(try scores(generated), try scores(trained), "ranking and generating score alike here: the check above cannot fail")

        // The run config of another adapter: by its recorded sha256, and (configs written before the
        // hash) by the prompt length.
        var other = written
        other["adapter_sha256"] = String(repeating: "0", count: 64)
        try JSONSerialization.data(withJSONObject: other).write(to: URL(fileURLWithPath: runConfig))
        var (s3, err) = try runCapture(["eval", "--model", "embedded:t5-tiny", "--adapter", "\(dir)/ad"] + common)
        XCTAssertNotEqual(s3, 0)
        XCTAssertTrue(err.contains("promptrepro_run_config.json: written with adapter sha256 000000000000") && err.contains("belongs to another adapter"), err)
        try writeLegacyRunConfig(other, method: "n", 6, to: runConfig)
        (s3, err) = try runCapture(["eval", "--model", "embedded:t5-tiny", "--adapter", "\(dir)/ad"] + common)
        XCTAssertNotEqual(s3, 0)
        XCTAssertTrue(err.contains("the run's prompt has 6 tokens, the adapter's num_virtual_tokens 4"), err)
    }

    /// An adapter of a model in a local directory names it by absolute path in
    /// `base_model_name_or_path` (the relative path a run was given resolved only from where it
    /// ran, so AutoPeftModel elsewhere could not find the base model).
    func testSavedAdapterNamesALocalBaseModelByAbsolutePath() throws {
        let data = try sharedData()
        let dir = tempDir("basepath")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.copyItem(atPath: "\(data)/../models/tiny-random-t5", toPath: "\(dir)/m")
        let (status, out) = try runCapture(["train", "--method", "pt", "--n", "4", "--task", "cb", "--k", "8", "--model", "m", "--epochs", "1",
                                            "--eval-limit", "4", "--max-source-length", "64", "--data-dir", data, "--save-adapter", "out"], cwd: dir)
        XCTAssertEqual(status, 0, out)
        let cfg = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/out/adapter_config.json"))) as? [String: Any])
        XCTAssertEqual(cfg["base_model_name_or_path"] as? String, URL(fileURLWithPath: "\(dir)/m").standardizedFileURL.path)
    }

    /// eval takes the run's decode settings too (the stderr line names them), and for run configs
    /// written before `adapter_sha256` compares a LoRA run's r with the adapter's.
    func testEvalReadsDecodeSettingsAndChecksLoRARank() throws {
        let data = try sharedData()
        let dir = tempDir("evaldecode")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let common = ["--task", "cb", "--k", "8", "--seed", "1", "--eval-limit", "8", "--threads", "2", "--data-dir", data]
        var (status, out) = try runCapture(["train", "--method", "lora", "--r", "2", "--epochs", "1", "--batch-size", "8", "--max-source-length", "96",
                                            "--decode-max-tokens", "2", "--decode-stop", "eos", "--save-adapter", "\(dir)/ad"] + common)
        XCTAssertEqual(status, 0, out)
        (status, out) = try runCapture(["eval", "--model", "embedded:t5-tiny", "--adapter", "\(dir)/ad"] + common)
        XCTAssertEqual(status, 0, out)
        XCTAssertTrue(out.contains("decode_max_tokens 2, decode_stop eos, eval_limit 8 (the training run's \(dir)/ad/promptrepro_run_config.json where no flag is given)"), out)
        let runConfig = "\(dir)/ad/promptrepro_run_config.json"
        let o = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: runConfig))) as? [String: Any])
        try writeLegacyRunConfig(o, method: "r", 3, to: runConfig)
        (status, out) = try runCapture(["eval", "--model", "embedded:t5-tiny", "--adapter", "\(dir)/ad"] + common)
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(out.contains("the run's LoRA r is 3, the adapter's 2"), out)
    }
}
