import Foundation
import Methods
@testable import Harness
import Store
import Support
import Tasks
import TestSupport
import Training
import XCTest

/// A spec setting that would be ignored or could not run is refused with the file and the key,
/// before anything is stored: a misspelt model column, a malformed profile seed list, per-run
/// keys (protocol, model, k, seed) in a `train:` layer or `vary`, and values out of range.
final class SpecValidationTests: XCTestCase {
    func expectSpecError(_ edit: (String) -> String, _ fragments: [String], expand: Bool = false,
                         file: StaticString = #filePath, line: UInt = #line) throws {
        let dir = tempDir("specval")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = "\(dir)/s.yaml"
        try edit(miniSpec).write(toFile: path, atomically: true, encoding: .utf8)
        do {
            let s = try ExperimentSpec.load(path)
            if expand { _ = try s.expand(profile: "smoke") }
            XCTFail("accepted:\n\(edit(miniSpec))", file: file, line: line)
        } catch {
            let text = "\(error)"
            for f in [path] + fragments { XCTAssertTrue(text.contains(f), "'\(f)' not in: \(text)", file: file, line: line) }
        }
    }

    func testSettingsThatWouldBeIgnoredOrCannotRunAreRefused() throws {
        // The unedited spec loads and expands (8 runs), so each case below fails on its edit alone.
        let dir = tempDir("specok")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try miniSpec.write(toFile: "\(dir)/ok.yaml", atomically: true, encoding: .utf8)
        XCTAssertEqual(try ExperimentSpec.load("\(dir)/ok.yaml").expand(profile: "smoke").count, 8)

        try expectSpecError({ $0.replacingOccurrences(of: "{t5-small: \"embedded:t5-tiny\"}", with: "{t5-smal: \"embedded:t5-tiny\"}") },
                            ["profiles.smoke.models: 't5-smal' is not a model column", "did you mean 't5-small'"])
        try expectSpecError({ $0.replacingOccurrences(of: "{t5-small: \"embedded:t5-tiny\"}", with: "{}") }, ["profiles.smoke.models must map"])
        // "|" and "#" separate cell names' and run keys' parts, "@" names grid points: a variant
        // "pt|cb" on t5-small and pt on a column "cb|t5-small" shared one cell, and every sweep
        // superseded the other's runs (a review).
        for bad in ["pt|cb", "pt#2", "pt@lr=3e-2"] {
            try expectSpecError({ $0.replacingOccurrences(of: "{name: pt, method: pt, n: 8}", with: "{name: \"\(bad)\", method: pt, n: 8}") },
                                ["methods[1].name '\(bad)'", "is reserved"])
        }
        try expectSpecError({ $0.replacingOccurrences(of: "models: [t5-small]", with: "models: [t5-small, \"cb|t5-small\"]") },
                            ["models: 'cb|t5-small': '|' and '#' are reserved"])
        // eval_mode on a GPT-2 column: `train` refuses it, and each swept run failed at its start.
        try expectSpecError({ $0.replacingOccurrences(of: "tasks: [cb, rte]", with: "tasks: [sst2]")
                                .replacingOccurrences(of: "{t5-small: \"embedded:t5-tiny\"}", with: "{t5-small: \"embedded:gpt2-tiny\"}")
                                .replacingOccurrences(of: "  - {name: dpt, method: dpt, n: 8, r: 2}\n", with: "")
                                .replacingOccurrences(of: "{name: pt, method: pt, n: 8}", with: "{name: pt, method: pt, n: 8, train: {eval_mode: rank}}") },
                            ["pt on sst2 [smoke], model column t5-small (embedded:gpt2-tiny): eval_mode rank: GPT-2 runs already score the label words"], expand: true)
        // eval_mode generate, the default written out (a spec-wide `train:` shared with T5 columns), is accepted.
        let gpt2 = miniSpec.replacingOccurrences(of: "tasks: [cb, rte]", with: "tasks: [sst2]")
            .replacingOccurrences(of: "{t5-small: \"embedded:t5-tiny\"}", with: "{t5-small: \"embedded:gpt2-tiny\"}")
            .replacingOccurrences(of: "  - {name: dpt, method: dpt, n: 8, r: 2}\n", with: "")
            .replacingOccurrences(of: "{name: pt, method: pt, n: 8}", with: "{name: pt, method: pt, n: 8, train: {eval_mode: generate}}")
        try gpt2.write(toFile: "\(dir)/gpt2.yaml", atomically: true, encoding: .utf8)
        XCTAssertEqual(try ExperimentSpec.load("\(dir)/gpt2.yaml").expand(profile: "smoke").count, 2)
        // Two entries of one variant name shared (and superseded) each other's runs: one method never ran.
        try expectSpecError({ $0.replacingOccurrences(of: "{name: pt, method: pt, n: 8}", with: "{name: dpt, method: pt, n: 8}") },
                            ["two methods give the variant name 'dpt'"])
        // Settings of the wrong shape were dropped without a word.
        try expectSpecError({ $0.replacingOccurrences(of: "{name: pt, method: pt, n: 8}", with: "{name: pt, method: pt, n: 8, train: fast}") },
                            ["methods[1].train must be a mapping"])
        // selection_metric: one of every task's metrics, checked when the spec expands (a run of
        // RTE failed at run time); written as the task's default it is dropped (no new identity).
        try expectSpecError({ $0.replacingOccurrences(of: "{name: pt, method: pt, n: 8}", with: "{name: pt, method: pt, n: 8, train: {selection_metric: macro_f1}}") },
                            ["pt on rte [smoke]: selection_metric 'macro_f1': not a metric of rte"], expand: true)
        let explicit = miniSpec.replacingOccurrences(of: "{name: pt, method: pt, n: 8}", with: "{name: pt, method: pt, n: 8, train: {selection_metric: accuracy}}")
        try explicit.write(toFile: "\(dir)/explicit.yaml", atomically: true, encoding: .utf8)
        XCTAssertEqual(try ExperimentSpec.load("\(dir)/explicit.yaml").expand(profile: "smoke").map(\.config.json),
                       try ExperimentSpec.load("\(dir)/ok.yaml").expand(profile: "smoke").map(\.config.json))
        // DePT's WSC template on the label-1 training pool is refused when the spec expands.
        try expectSpecError({ $0.replacingOccurrences(of: "tasks: [cb, rte]", with: "tasks: [cb, wsc]")
                                .replacingOccurrences(of: "{name: pt, method: pt, n: 8}", with: "{name: pt, method: pt, n: 8, train: {templates: dept}}") },
                            ["pt on wsc [smoke]: wsc with template set 'dept': its target names the label"], expand: true)
        // An empty mapping (every entry commented out: YAML null) still means no settings.
        let nulls = miniSpec.replacingOccurrences(of: "{name: pt, method: pt, n: 8}", with: "{name: pt, method: pt, n: 8, train: }")
            + "\ntrain:\n"
        try nulls.write(toFile: "\(dir)/nulls.yaml", atomically: true, encoding: .utf8)
        XCTAssertEqual(try ExperimentSpec.load("\(dir)/nulls.yaml").expand(profile: "smoke").count, 8)
        try expectSpecError({ $0.replacingOccurrences(of: "  smoke:\n", with: "  smoke:\n    seeds: [1, 2x, 3]\n") },
                            ["profiles.smoke.seeds", "'2x' is not an integer"])
        try expectSpecError({ $0.replacingOccurrences(of: "{name: pt, method: pt, n: 8}", with: "{name: pt, method: pt, n: 8, train: {protocol: lopt-paper}}") },
                            ["methods[1].train: 'protocol' is the spec's"])
        try expectSpecError({ $0.replacingOccurrences(of: "train: {epochs: 4,", with: "train: {seed: 3, epochs: 4,") },
                            ["profiles.smoke.train: 'seed' comes from the spec's 'seeds'"])
        try expectSpecError({ $0.replacingOccurrences(of: "{name: pt, method: pt, n: 8}", with: "{name: pt, method: pt, n: 8, vary: {k: [8, 16]}}") },
                            ["methods[1].vary: 'k' comes from the spec's 'k' list"])
        // A misspelt method key is matched against the keys its method reads: 'rr' on pt suggested 'r', which pt refuses.
        try expectSpecError({ $0.replacingOccurrences(of: "{name: pt, method: pt, n: 8}", with: "{name: pt, method: pt, nn: 8}") },
                            ["unknown method key 'nn' (did you mean 'n'?) (method pt reads n, init; training settings go under 'train')"])
        try expectSpecError({ $0.replacingOccurrences(of: "{name: pt, method: pt, n: 8}", with: "{name: pt, method: pt, n: 8, rr: 3}") },
                            ["unknown method key 'rr' (did you mean 'n'?) (method pt reads n, init;"])  // not 'r': pt reads no r
        try expectSpecError({ $0.replacingOccurrences(of: "batch_size: 4", with: "batch_size: 0") },
                            ["dpt on cb [smoke]", "batch_size must be ≥ 1, got 0"], expand: true)
        try expectSpecError({ $0.replacingOccurrences(of: "epochs: 4", with: "epochs: 0") }, ["epochs must be ≥ 1, got 0"], expand: true)
        try expectSpecError({ $0.replacingOccurrences(of: "decode_max_tokens: 3", with: "decode_max_tokens: 0") },
                            ["decode_max_tokens must be ≥ 1 or auto, got 0"], expand: true)
        // Empty lists would plan no run at all.
        try expectSpecError({ $0.replacingOccurrences(of: "tasks: [cb, rte]", with: "tasks: []") }, ["'tasks' must be a non-empty list"])
        try expectSpecError({ $0.replacingOccurrences(of: "seeds: [1, 2]", with: "seeds: []") }, ["'seeds' must be a non-empty list"])
        try expectSpecError({ $0.replacingOccurrences(of: "k: [8]", with: "k: []") }, ["'k' must list at least one few-shot size"])
        try expectSpecError({ $0.replacingOccurrences(of: "  smoke:\n", with: "  smoke:\n    k: []\n") }, ["'k' must list at least one"])
        try expectSpecError({ s in
            let methods = s.range(of: "methods:")!.lowerBound, tasks = s.range(of: "tasks:")!.lowerBound
            return s.replacingCharacters(in: methods..<tasks, with: "methods: []\n")
        }, ["'methods' must be a non-empty list"])
        // A method's sizes, in the spec and as train flags.
        try expectSpecError({ $0.replacingOccurrences(of: "{name: pt, method: pt, n: 8}", with: "{name: pt, method: pt, n: 0}") },
                            ["pt on cb [smoke]", "n must be ≥ 1, got 0"], expand: true)
        try expectSpecError({ $0.replacingOccurrences(of: "n: 8, r: 2}", with: "n: 8, r: 0}") }, ["r must be ≥ 1, got 0"], expand: true)
        // A method key the method does not read changed only the run's identity (`dropout` on
        // respt, as ResPT's MLP dropout would be; `n` on ft; `init` on lora).
        try expectSpecError({ $0.replacingOccurrences(of: "{name: pt, method: pt, n: 8}", with: "{name: pt, method: respt, n: 8, dropout: 0.1}") },
                            ["pt: method respt does not read 'dropout' (it reads n, m, init)"], expand: true)
        try expectSpecError({ $0.replacingOccurrences(of: "{name: pt, method: pt, n: 8}", with: "{name: pt, method: ft, n: 8}") },
                            ["pt: method ft does not read 'n' (it reads none of them)"], expand: true)
        try expectSpecError({ $0.replacingOccurrences(of: "{name: pt, method: pt, n: 8}", with: "{name: pt, method: lora, init: uniform, alpha: 16}") },
                            ["pt: method lora does not read 'init'"], expand: true)
        // A method's defaults written out, and the keys it reads, are accepted.
        let readKeys = miniSpec.replacingOccurrences(of: "{name: pt, method: pt, n: 8}", with: "{name: pt, method: lora, r: 4, alpha: 16, dropout: 0.1, n: 100, init: default}")
        try readKeys.write(toFile: "\(dir)/readkeys.yaml", atomically: true, encoding: .utf8)
        XCTAssertEqual(try ExperimentSpec.load("\(dir)/readkeys.yaml").expand(profile: "smoke").count, 8)
        // An empty vary list planned no variant: the method left the grid without a word; a key
        // set inline and varied was silently replaced by the listed values.
        try expectSpecError({ $0.replacingOccurrences(of: "{name: pt, method: pt, n: 8}", with: "{name: pt, method: pt, vary: {n: []}}") },
                            ["methods[1].vary.n must be a non-empty list"])
        try expectSpecError({ $0.replacingOccurrences(of: "{name: pt, method: pt, n: 8}", with: "{name: pt, method: pt, n: 8, vary: {n: [4, 16]}}") },
                            ["methods[1]: 'n' is set both inline and in vary"])
        try expectSpecError({ $0.replacingOccurrences(of: "{name: pt, method: pt, n: 8}", with: "{name: pt, method: pt, n: 8, train: {lr: 0.1}, vary: {lr: [0.3, 0.5]}}") },
                            ["methods[1]: 'lr' is set both inline and in vary"])
        // An empty `protocol:` (YAML null) is each method's own preset, as when it is unset.
        let nullProtocol = miniSpec + "\nprotocol:\n"
        try nullProtocol.write(toFile: "\(dir)/nullprotocol.yaml", atomically: true, encoding: .utf8)
        XCTAssertEqual(try ExperimentSpec.load("\(dir)/nullprotocol.yaml").expand(profile: "smoke").map(\.config.json),
                       try ExperimentSpec.load("\(dir)/ok.yaml").expand(profile: "smoke").map(\.config.json))
        // Seeds key unsigned counter-based streams: a negative one is refused where it is written.
        try expectSpecError({ $0.replacingOccurrences(of: "seeds: [1, 2]", with: "seeds: [1, -2]") }, ["'seeds': -2 must be ≥ 0"])
        try expectSpecError({ $0.replacingOccurrences(of: "  smoke:\n", with: "  smoke:\n    seeds: [-1]\n") }, ["'profiles.smoke.seeds': -1 must be ≥ 0"])
        // Unknown names and values of the wrong type name the key and the layer, not a decoder dump
        // or a `--protocol` flag the user never typed.
        try expectSpecError({ $0.replacingOccurrences(of: "{name: pt, method: pt, n: 8}", with: "{name: pt, method: ptt, n: 8}") },
                            ["methods[1].method:", "ptt"])
        try expectSpecError({ $0.replacingOccurrences(of: "tasks: [cb, rte]", with: "tasks: [cb, rtee]") }, ["tasks:", "rtee"])
        try expectSpecError({ $0 + "\nprotocol: dpt-papr\n" }, ["protocol: unknown preset 'dpt-papr'", "did you mean 'dpt-paper'"])
        try expectSpecError({ $0.replacingOccurrences(of: "epochs: 4", with: "epochs: two") },
                            ["profiles.smoke.train: 'epochs': two is not a valid value"], expand: true)
        try expectSpecError({ $0.replacingOccurrences(of: "epochs: 4,", with: "epochs: 4, eval_mode: rnk,") },
                            ["profiles.smoke.train: 'eval_mode': rnk is not a valid value (one of: generate, rank, rank-mean)"], expand: true)
        // An init the method does not build by is refused at load (every run failed when it started).
        try expectSpecError({ $0.replacingOccurrences(of: "{name: pt, method: pt, n: 8}", with: "{name: pt, method: pt, n: 8, init: zzz}") },
                            ["pt: method pt: unknown init 'zzz' (one of: default, sampled-vocab"], expand: true)
        // Every closed setting lists its values (it said only "not one of its values").
        try expectSpecError({ $0.replacingOccurrences(of: "epochs: 4,", with: "epochs: 4, select_on: dev,") },
                            ["'select_on': dev is not a valid value (one of: " + SelectionSplit.allCases.map(\.rawValue).joined(separator: ", ") + ")"], expand: true)
        try expectSpecError({ $0.replacingOccurrences(of: "{name: pt, method: pt, n: 8}", with: "{name: pt, method: pt, n: 8, train: {lr: .nan}}") },
                            ["variant pt's train: 'lr': nan is not a finite number"], expand: true)
        // The few-shot sample's seed is the spec's sample_seeds (one value fixes it).
        try expectSpecError({ $0.replacingOccurrences(of: "train: {epochs: 4,", with: "train: {sample_seed: 7, epochs: 4,") },
                            ["profiles.smoke.train: 'sample_seed' comes from the spec's 'sample_seeds'"])
    }

    /// Every closed setting of `TrainConfig` (a field whose type, or optional's wrapped type, is a
    /// `CaseIterable` enum) is in `ExperimentSpec.closedValues`, the list a refused value's message
    /// names its values from: a new enum setting left out of that hand-kept list fails here, not
    /// as "(not one of its values)" in a user's terminal. The fields come from the type itself
    /// (`Mirror`), so a setting added later is checked without editing this test.
    func testEveryClosedTrainSettingListsItsValues() throws {
        let cfg = try TrainConfig.preset("dpt-paper", method: try MethodConfig.defaults("pt"), task: "cb", model: "embedded:t5-tiny", k: 8, seed: 1)
        var closed: [String] = []
        for child in Mirror(reflecting: cfg).children {
            var t: Any.Type = type(of: child.value)
            if let o = t as? any OptionalTypeProbe.Type { t = o.wrappedType }
            guard let e = t as? any CaseIterable.Type else { continue }
            closed.append("\(child.label ?? "?"): \(t)")
            let values = ExperimentSpec.closedValues["\(t)"]
            XCTAssertNotNil(values, "TrainConfig.\(child.label ?? "?") (\(t)) is a closed setting missing from ExperimentSpec.closedValues")
            XCTAssertEqual(values?.count, e.allCasesCount, "\(t)")
        }
        // The probe itself can fail: the seven enum settings TrainConfig has today are all found.
        XCTAssertEqual(closed.count, 7, "\(closed)")
    }

    /// Specs that would silently plan other runs than they say (2026-12-06 review): a repeated
    /// key (Yams kept the last value: a pasted `seeds: [1]` gated on one seed), a repeated list
    /// entry (deduplicated, yet counted in the plan), and the embedded random backbone under a
    /// profile other than smoke (its tables carried no smoke mark).
    func testRepeatedKeysEntriesAndEmbeddedOutsideSmokeAreRefused() throws {
        try expectSpecError({ $0 + "\nseeds: [1]\n" }, ["line 15, column 1", "key 'seeds' repeats the key at line 9"])
        try expectSpecError({ $0.replacingOccurrences(of: "train: {epochs: 4,", with: "train: {epochs: 4, epochs: 5,") },
                            ["line 14, column 24: key 'epochs' repeats the key at line 14"])
        try expectSpecError({ $0.replacingOccurrences(of: "seeds: [1, 2]", with: "seeds: [1, 2, 2]") }, ["'seeds' lists 2 more than once"])
        try expectSpecError({ $0.replacingOccurrences(of: "seeds: [1, 2]", with: "seeds: [1, \"01\"]") }, ["'seeds' lists 1 more than once"])
        try expectSpecError({ $0.replacingOccurrences(of: "tasks: [cb, rte]", with: "tasks: [cb, rte, cb]") }, ["'tasks' lists cb more than once"])
        try expectSpecError({ $0.replacingOccurrences(of: "k: [8]", with: "k: [8, null, null]") }, ["'k' lists null more than once"])
        let cpu = miniSpec + "\n  cpu:\n    models: {t5-small: \"embedded:t5-tiny\"}\n"
        let dir = tempDir("specemb")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try cpu.write(toFile: "\(dir)/s.yaml", atomically: true, encoding: .utf8)
        // Refused on loading, whichever profile runs (it loaded and ran under smoke, refused only
        // under cpu, where docs/cli.md says such a spec is refused).
        XCTAssertThrowsError(try ExperimentSpec.load("\(dir)/s.yaml")) { e in
            XCTAssertTrue("\(e)".contains("profiles.cpu runs model column t5-small on embedded:t5-tiny"), "\(e)")
        }
        // A spec without profiles says how to add one (it listed none: "have: ").
        let bare = miniSpec.components(separatedBy: "\nprofiles:")[0]
        XCTAssertFalse(bare.contains("profiles"), bare)
        try bare.write(toFile: "\(dir)/bare.yaml", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ExperimentSpec.load("\(dir)/bare.yaml").expand(profile: "smoke")) { e in
            XCTAssertTrue("\(e)".contains("profile 'smoke' is not defined: the spec has no profiles; add e.g. `profiles: {smoke: {models: {t5-small: \"embedded:t5-tiny\"}}}`"), "\(e)")
        }
        XCTAssertThrowsError(try ExperimentSpec.load("\(dir)/bare.yaml").expand(profile: "cpu")) { e in
            XCTAssertTrue("\(e)".contains("add a `cpu:` entry under `profiles:`"), "\(e)")
        }
        try bare.replacingOccurrences(of: "models: [t5-small]", with: "models: [gpt2]").replacingOccurrences(of: "tasks: [cb, rte]", with: "tasks: [sst2]")
            .write(toFile: "\(dir)/bare.yaml", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ExperimentSpec.load("\(dir)/bare.yaml").expand(profile: "smoke")) { e in
            XCTAssertTrue("\(e)".contains("{gpt2: \"embedded:gpt2-tiny\"}"), "\(e)")
        }
    }

    /// A search's points select on the search's split even where a profile's `train` sets another
    /// (a search never selects on the reported split); the other variants take the profile's.
    func testSearchPointsKeepTheirSelectionSplit() throws {
        let dir = tempDir("specsel")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try miniSpec.replacingOccurrences(of: "{name: pt, method: pt, n: 8}",
                                          with: "{name: pt, method: pt, n: 8, search: {grid: {lr: [0.3, 0.03]}, select_on: train-dev}}")
            .replacingOccurrences(of: "train: {epochs: 4,", with: "train: {select_on: validation, epochs: 4,")
            .write(toFile: "\(dir)/s.yaml", atomically: true, encoding: .utf8)
        let runs = try ExperimentSpec.load("\(dir)/s.yaml").expand(profile: "smoke")
        let points = runs.filter { $0.variant.hasPrefix("pt@") }
        XCTAssertEqual(points.count, 4)  // 2 points × 2 tasks × the first seed
        XCTAssertTrue(points.allSatisfy { $0.config.selectOn == .trainDev }, "\(points.map { $0.config.selectOn as Any })")
        XCTAssertTrue(runs.filter { $0.variant == "dpt" }.allSatisfy { $0.config.selectOn == .validation })
    }

    /// `protocol: auto` picks what `train` picks: on a GPT-2 model column, LoPT's preset for prompt
    /// methods and their own optimizer with LoPT's templates for FT and LoRA (it picked the T5
    /// defaults, whose DPT templates have no label words: every such run failed).
    func testAutoProtocolOnGPT2FollowsTrain() throws {
        let dir = tempDir("specgpt2")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try """
        spec: gauto
        title: GPT-2 under auto
        paper: lopt
        protocol: auto
        methods:
          - {name: pt, method: pt, n: 4}
          - {name: ft, method: ft}
          - {name: lora, method: lora}
        tasks: [sst2]
        models: [gpt2-large]
        seeds: [1]
        k: [16]
        profiles:
          smoke: {models: {gpt2-large: "embedded:gpt2-tiny"}}
        """.write(toFile: "\(dir)/gauto.yaml", atomically: true, encoding: .utf8)
        let runs = try ExperimentSpec.load("\(dir)/gauto.yaml").expand(profile: "smoke")
        let by = Dictionary(uniqueKeysWithValues: runs.map { ($0.variant, $0.config) })
        XCTAssertEqual(by["pt"]?.protocolName, "lopt-paper")
        XCTAssertEqual(by["pt"]?.optimizer, .adafactor)
        XCTAssertEqual(by["ft"]?.optimizer, .adamwHF)
        XCTAssertEqual(by["ft"]?.lr, 3e-4)
        XCTAssertEqual(by["lora"]?.protocolName, "lora-paper")
        XCTAssertEqual(by["lora"]?.lr, 5e-4)
        XCTAssertTrue(runs.allSatisfy { $0.config.templates == .lopt }, "\(runs.map(\.config.templates))")
        // On T5 nothing changes: each method's own preset with DPT's templates.
        let t5 = try ExperimentSpec.load("\(repoRoot)/Baselines/specs/lopt-table2.yaml").expand(profile: "smoke")
        XCTAssertEqual(Set(t5.map { "\($0.variant):\($0.config.protocolName)" }),
                       ["ft:ft-respt-code", "lora:lora-paper", "pt:dpt-paper", "dept:dept-code", "lopt1:lopt-paper", "lopt2:lopt-paper"])
    }

    /// `train` refuses the same values by their flag names, before it loads anything.
    func testTrainRefusesOutOfRangeFlags() throws {
        for (flag, value, message) in [("--batch-size", "0", "--batch-size must be ≥ 1, got 0"), ("--epochs", "0", "--epochs must be ≥ 1, got 0"),
                                       ("--n", "0", "--n must be ≥ 1, got 0"),
                                       ("--warmup-ratio", "1.5", "--warmup-ratio must be in [0, 1], got 1.5")] {
            let (status, err) = try runCapture(["train", "--method", "pt", "--task", "cb", "--k", "8", flag, value])
            XCTAssertNotEqual(status, 0, flag)
            XCTAssertTrue(err.contains(message), "\(flag): \(err)")
        }
        // A run on the full training split where only a subset file is there (AG News: 581 rows of
        // ~120,000 in the shared mirror) trained on the subset as if it were the split.
        let (full, fullErr) = try runCapture(["train", "--method", "pt", "--task", "agnews", "--model", "embedded:gpt2-tiny", "--n", "4",
                                              "--max-steps", "1", "--eval-limit", "2", "--data-dir", try sharedData()])
        XCTAssertNotEqual(full, 0)
        XCTAssertTrue(fullErr.contains("agnews: the full training split agnews/train.csv is not in") && fullErr.contains("only the subset agnews/train_head581.csv, 581 rows"), fullErr)
        let (fewShot, fewErr) = try runCapture(["train", "--method", "pt", "--task", "agnews", "--model", "embedded:gpt2-tiny", "--n", "4", "--k", "8",
                                                "--max-steps", "1", "--eval-limit", "2", "--data-dir", try sharedData()])
        XCTAssertEqual(fewShot, 0, fewErr)
        // A size the method does not read (ft has no prompt) would change only the run's identity.
        let (status, err) = try runCapture(["train", "--method", "ft", "--task", "cb", "--k", "8", "--n", "5"])
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(err.contains("method ft does not read 'n'"), err)
        // DePT's update covers the first s input positions: longer inputs failed mid-run with an
        // internal shape message ("delta [256, 32] must be [s ≥ 300, 32]") naming neither setting.
        for extra in [["--dept-s", "64"], ["--max-source-length", "300"]] {
            let (status, err) = try runCapture(["train", "--method", "dept", "--task", "cb", "--k", "8"] + extra)
            XCTAssertNotEqual(status, 0, "\(extra)")
            XCTAssertTrue(err.contains("--dept-s must be ≥ max_source_length"), "\(extra): \(err)")
        }
    }
}

/// A spec named (not given by path) whose file no longer loads: `results`, `export` and `steps`
/// counted every stored run of it ("note: … every stored run counts") and exited 0, so one typo
/// showed runs of dropped seeds and old settings as current and `export` wrote them over the
/// committed export. A name with no spec file keeps that reading (stores of specs kept elsewhere).
final class BrokenSpecReadTests: XCTestCase {
    func testReadsOfASpecThatNoLongerLoadsFail() throws {
        let data = try sharedData()
        let root = tempDir("brokenspec")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let fm = FileManager.default
        try fm.createDirectory(atPath: "\(root)/Baselines/specs", withIntermediateDirectories: true)
        for item in ["manifests", "data.lock", "published", "tables"] {
            try fm.createSymbolicLink(atPath: "\(root)/Baselines/\(item)", withDestinationPath: "\(repoRoot)/Baselines/\(item)")
        }
        let spec = "\(root)/Baselines/specs/mini.yaml"
        try miniSpec.write(toFile: spec, atomically: true, encoding: .utf8)
        let env = ["PROMPTREPRO_ROOT": root], db = "\(root)/s.sqlite"
        var (status, err) = try runCapture(["sweep", "mini", "--profile", "smoke", "--db", db, "--data-dir", data, "--checkpoints", "\(root)/ck"], env: env)
        XCTAssertEqual(status, 0, err)
        (status, err) = try runCapture(["results", "mini", "--profile", "smoke", "--db", db, "--data-dir", data], env: env)
        XCTAssertEqual(status, 0, err)
        // The default store is the checkout's runs/promptrepro.sqlite from any working directory
        // (from a subfolder it was looked for there: "no results store").
        try fm.createDirectory(atPath: "\(root)/runs", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: "\(root)/sub", withIntermediateDirectories: true)
        try fm.copyItem(atPath: db, toPath: "\(root)/runs/promptrepro.sqlite")
        let (subStatus, subOut) = try runCLIText(["results", "mini", "--profile", "smoke", "--data-dir", data, "--format", "csv"], stdout: true, cwd: "\(root)/sub", env: env)
        XCTAssertEqual(subStatus, 0, subOut)
        XCTAssertTrue(subOut.contains("pt|cb|t5-small|k8"), subOut)
        XCTAssertFalse(fm.fileExists(atPath: "\(root)/sub/runs"), "nothing written under the working directory")
        // A spec path that is not there is an error (it was read as a spec named by the path,
        // every stored run of that name counting).
        let (missingStatus, missingErr) = try runCapture(["results", "\(root)/no-such.yaml", "--profile", "smoke", "--db", db, "--data-dir", data], env: env)
        XCTAssertEqual(missingStatus, 1, missingErr)
        XCTAssertTrue(missingErr.contains("\(root)/no-such.yaml: no such spec file") && !missingErr.contains("counts"), missingErr)
        let before = try SHA256.hex(file: db)
        // A read writes nothing: a seed the spec gained (its manifest not yet hashed here) added a
        // row to the store's file-hash cache, so the store's bytes changed on `results`.
        try miniSpec.replacingOccurrences(of: "seeds: [1, 2]", with: "seeds: [1, 2, 3]").write(toFile: spec, atomically: true, encoding: .utf8)
        for args in [["results", "mini", "--data-dir", data], ["export", "mini", "--results-dir", "\(root)/r0", "--data-dir", data], ["steps", "mini"]] {
            (status, err) = try runCapture(args + ["--profile", "smoke", "--db", db], env: env)
            XCTAssertEqual(try SHA256.hex(file: db), before, "\(args[0]) wrote to the store: \(err)")
        }
        try miniSpec.replacingOccurrences(of: "epochs: 4,", with: "epochs: 4, learning_rat: 0.1,").write(toFile: spec, atomically: true, encoding: .utf8)
        for args in [["results", "mini"], ["export", "mini", "--results-dir", "\(root)/results"], ["steps", "mini"]] {
            (status, err) = try runCapture(args + ["--profile", "smoke", "--db", db] + (args[0] == "steps" ? [] : ["--data-dir", data]), env: env)
            XCTAssertEqual(status, 1, "\(args): \(err)")
            XCTAssertTrue(err.contains("\(spec): profiles.smoke.train: unknown training key 'learning_rat'") && !err.contains("counts"), "\(args): \(err)")
        }
        XCTAssertFalse(fm.fileExists(atPath: "\(root)/results/mini-smoke.cells.json"), "export wrote the stale runs")
        XCTAssertEqual(try SHA256.hex(file: db), before)
        // Without a store, `report` reads the committed export against the spec file: a spec that
        // does not load fails that table (it showed the export's every seed), and the other tables
        // are still written.
        try fm.createSymbolicLink(atPath: "\(root)/Baselines/results", withDestinationPath: "\(repoRoot)/Baselines/results")
        for name in ["table4", "lopt-table3"] { try fm.copyItem(atPath: "\(repoRoot)/Baselines/specs/\(name).yaml", toPath: "\(root)/Baselines/specs/\(name).yaml") }
        let table4 = "\(root)/Baselines/specs/table4.yaml"
        try (try String(contentsOfFile: table4, encoding: .utf8)).replacingOccurrences(of: "seeds: [1, 2, 3]", with: "seeds: [1, 2, -3]")
            .write(toFile: table4, atomically: true, encoding: .utf8)
        (status, err) = try runCapture(["report", "table4", "lopt-table3", "--profile", "smoke", "--db", "\(root)/none.sqlite", "--out-dir", "\(root)/out",
                                        "--data-dir", data], env: env)
        XCTAssertEqual(status, 1, err)
        XCTAssertTrue(err.contains("error: table4: \(table4): 'seeds': -3 must be ≥ 0") && err.contains("not written"), err)
        XCTAssertFalse(fm.fileExists(atPath: "\(root)/out/table4.md"))
        XCTAssertTrue(fm.fileExists(atPath: "\(root)/out/lopt-table3.md"), err)
        // A Pareto figure of that spec is its own failure too (it ended the report before any table).
        try fm.removeItem(atPath: "\(root)/out")
        (status, err) = try runCapture(["report", "lopt-table3", "--pareto", "table4", "--profile", "smoke", "--db", "\(root)/none.sqlite",
                                        "--out-dir", "\(root)/out", "--data-dir", data], env: env)
        XCTAssertEqual(status, 1, err)
        XCTAssertTrue(err.contains("error: table4: ") && fm.fileExists(atPath: "\(root)/out/lopt-table3.md"), err)
        // A spec that loads but cannot be planned (a method's epochs against the profile's) fails
        // the export read as it fails a store read (the export was shown whole, without a word).
        let lt3 = "\(root)/Baselines/specs/lopt-table3.yaml"
        try (try String(contentsOfFile: lt3, encoding: .utf8)).replacingOccurrences(of: "{name: pt, method: pt, n: 10}", with: "{name: pt, method: pt, n: 10, train: {epochs: 50}}")
            .write(toFile: lt3, atomically: true, encoding: .utf8)
        (status, err) = try runCapture(["report", "lopt-table3", "--profile", "smoke", "--db", "\(root)/none.sqlite", "--out-dir", "\(root)/out2",
                                        "--data-dir", data], env: env)
        XCTAssertEqual(status, 1, err)
        XCTAssertTrue(err.contains("error: lopt-table3: ") && err.contains("cannot be planned"), err)
        // No spec file of that name: every stored run of it counts, as before.
        try fm.removeItem(atPath: spec)
        (status, err) = try runCapture(["results", "mini", "--profile", "smoke", "--db", db, "--data-dir", data], env: env)
        XCTAssertEqual(status, 0, err)
        XCTAssertTrue(err.contains("no such spec") && err.contains("every stored run of spec mini [smoke] counts"), err)
        // Seeds of one cell run under another thread count (a merged shard's worker): said in the table.
        let (_, same) = try runCLIText(["results", "mini", "--profile", "smoke", "--db", db, "--data-dir", data], stdout: true, env: env)
        XCTAssertFalse(same.contains("Mixed numerics"), same)
        try SQLiteDB(path: db).exec("UPDATE runs SET threads = 9 WHERE id = (SELECT MIN(id) FROM runs WHERE status = 'done')")
        let (_, md) = try runCLIText(["results", "mini", "--profile", "smoke", "--db", db, "--data-dir", data], stdout: true, env: env)
        XCTAssertTrue(md.contains("> Mixed numerics: 1 cell (e.g. ") && md.contains("; threads 9"), md)
        // … and by the other reads of the store (only `results` said it): an export carries the mean.
        (status, err) = try runCapture(["export", "mini", "--profile", "smoke", "--db", db, "--data-dir", data, "--results-dir", "\(root)/exp"], env: env)
        XCTAssertEqual(status, 0, err)
        XCTAssertTrue(err.contains("note: Mixed numerics: 1 cell (e.g. ") && err.contains("; threads 9"), err)
    }
}

/// The wrapped type of an `Optional` metatype (a nil field's Mirror value says only `Optional<T>`).
protocol OptionalTypeProbe { static var wrappedType: Any.Type { get } }
extension Optional: OptionalTypeProbe { static var wrappedType: Any.Type { Wrapped.self } }
extension CaseIterable { static var allCasesCount: Int { allCases.count } }
