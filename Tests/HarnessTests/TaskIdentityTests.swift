import Foundation
import Harness
@testable import Store
import Methods
import Support
import Tasks
import Training
import TestSupport
import XCTest

/// A task file edited without a version bump (labels reordered, which inverts every gold label;
/// metrics changed) left its stored runs counted as done: the run identity held the template but
/// not the rest of the task file, and reads compared configs only. The identity now has a `task`
/// part, reads leave out rows whose stored task parts differ from the file's, and rows stored
/// before the part existed keep matching when nothing else changed.
final class TaskIdentityTests: XCTestCase {
    func json(_ o: [String: Any]) -> String { String(decoding: try! JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]), as: UTF8.self) }

    func testReadsLeaveOutRowsOfAnEditedTaskFile() throws {
        let def = try TaskRegistry.definition("cb")
        var parts = try RunIdentity.taskParts(def, templates: .dpt)
        var plan = PlannedRuns([(key: PlannedRuns.key(cell: "c", seed: 1, sampleSeed: 1), configHash: PlannedRuns.configHash(try cfg()))])
        plan.taskParts[PlannedRuns.key(cell: "c", seed: 1, sampleSeed: 1)] = try RunIdentity.canonicalTaskParts(def, templates: .dpt)
        let config = try cfg().json
        func reason(_ p: [String: Any]) -> StaleRun.Reason? {
            plan.staleReason(cell: "c", seed: 1, sampleSeed: 1, configJSON: config, status: "done", identityJSON: json(p.merging(["weights": "w"]) { a, _ in a }))
        }
        XCTAssertNil(reason(parts), "the same task file")
        var task = parts["task"] as! [String: Any]
        task["labels"] = (task["labels"] as! [String]).reversed() as [String]
        parts["task"] = task
        XCTAssertEqual(reason(parts), .taskChanged, "labels reordered")
        parts = try RunIdentity.taskParts(def, templates: .dpt)
        parts["task"] = nil
        XCTAssertNil(reason(parts), "a row stored before the task part: compared on the others")
        var tpl = parts["template"] as! [String: Any]
        tpl["source"] = "premise: {premise}"
        parts["template"] = tpl
        XCTAssertEqual(reason(parts), .taskChanged, "template edited")
        XCTAssertNil(plan.staleReason(cell: "c", seed: 1, sampleSeed: 1, configJSON: config, status: "done", identityJSON: nil), "no identity stored")
        // The read's note names them, with the sweep that reruns them.
        let note = staleRunsNote([StaleRun(id: 1, cell: "c", seed: 1, status: "done", reason: .taskChanged)], spec: "s", profile: "smoke") ?? ""
        XCTAssertTrue(note.contains("1 run with another task definition") && note.contains("promptrepro sweep s --profile smoke"), note)
    }

    func testRowsStoredBeforeTheTaskPartKeepTheirRun() throws {
        let parts: [String: Any] = try RunIdentity.taskParts(TaskRegistry.definition("cb"), templates: .dpt).merging(["weights": "w", "config": "{}"]) { a, _ in a }
        let newJSON = json(parts)
        var legacy = parts
        legacy["task"] = nil
        let legacyJSON = json(legacy)
        let row: [String: SQLiteDB.Value] = ["identity": .text(sha256Hex(legacyJSON)), "identity_json": .text(legacyJSON)]
        XCTAssertEqual(ResultsStore.legacyIdentityMatch(stored: row, newJSON: newJSON), newJSON)
        // Another part changed as well: a rerun.
        var moved = legacy
        moved["weights"] = "w2"
        let movedJSON = json(moved)
        XCTAssertNil(ResultsStore.legacyIdentityMatch(stored: ["identity": .text(sha256Hex(movedJSON)), "identity_json": .text(movedJSON)], newJSON: newJSON))
        // A row that has the task part is compared whole (no legacy match).
        XCTAssertNil(ResultsStore.legacyIdentityMatch(stored: ["identity": .text(sha256Hex(newJSON)), "identity_json": .text(newJSON)], newJSON: newJSON))
    }

    /// `merge` rules on identities as `insertPending` does: a shard's run and the store's run that
    /// differ only by the task part one of them predates are the same run. Without the rule the
    /// store's finished legacy row was superseded by the shard's copy, and a shard's finished
    /// legacy row whose run here was planned later joined as history, leaving the run pending.
    func testMergeTreatsRowsBeforeTheTaskPartAsTheSameRun() throws {
        let dir = tempDir("merge-legacy")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let parts: [String: Any] = try RunIdentity.taskParts(TaskRegistry.definition("cb"), templates: .dpt).merging(["weights": "w"]) { a, _ in a }
        var runs = try ExperimentSpec.load("\(repoRoot)/Baselines/specs/table1.yaml").expand(profile: "smoke").filter { $0.variant == "dpt" && $0.task == "cb" }
        XCTAssertEqual(runs.count, 3)
        for i in runs.indices {
            let j = json(parts.merging(["config": runs[i].config.json]) { a, _ in a })
            runs[i].identityJSON = j
            runs[i].identity = sha256Hex(j)
        }
        func makeLegacy(_ s: ResultsStore, seed: Int) throws {
            let row = try XCTUnwrap(try s.db.query("SELECT id, identity_json FROM runs WHERE seed=? AND status != 'superseded'", [.int(seed)]).first)
            var o = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(row["identity_json"]!.text!.utf8)) as? [String: Any])
            o["task"] = nil
            let legacy = json(o)
            try s.db.query("UPDATE runs SET identity=?, identity_json=? WHERE id=?", [.text(sha256Hex(legacy)), .text(legacy), row["id"]!])
        }
        func finish(_ s: ResultsStore, seeds: Set<Int>) throws {
            for _ in seeds {
                let c = try XCTUnwrap(try s.claim(worker: "t", pid: getpid()))
                XCTAssertTrue(seeds.contains(c.spec.seed))
                try s.complete(c.id, result: TrainResult(config: c.spec.config, status: .done, divergedAtStep: nil, bestEpoch: 1, best: ["accuracy": 50],
                                                         last: ["accuracy": 50], history: [], trainableParams: 1, trainExamples: 8, evalExamples: 8,
                                                         dataFiles: [:], manifest: nil, smoke: true, predictions: nil))
            }
        }
        let seeds = runs.map(\.seed)
        let shard = try ResultsStore(path: "\(dir)/shard.sqlite")
        try shard.insertPending(runs)
        try finish(shard, seeds: Set(seeds))
        try makeLegacy(shard, seed: seeds[1])  // a shard written before the task part
        let home = try ResultsStore(path: "\(dir)/home.sqlite")
        try home.insertPending(runs)
        try finish(home, seeds: [seeds[0]])    // claims the oldest pending run: runs[0]
        try makeLegacy(home, seed: seeds[0])   // a finished run stored here before the task part
        try home.db.query("UPDATE runs SET created_at='9999' WHERE seed=?", [.int(seeds[1])])  // planned here after the shard
        XCTAssertEqual(try home.merge(from: "\(dir)/shard.sqlite"), 2, "the run finished here stays; the other two come in")
        let rows = try home.db.query("SELECT seed, status, identity FROM runs")
        XCTAssertEqual(rows.map { $0["seed"]?.int ?? -1 }.sorted(), seeds.sorted(), "no run twice, none as history")
        XCTAssertEqual(rows.map { $0["status"]?.text ?? "" }, ["done", "done", "done"])
        let identities = Dictionary(rows.map { ($0["seed"]?.int ?? -1, $0["identity"]?.text ?? "") }, uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(identities, Dictionary(uniqueKeysWithValues: runs.map { ($0.seed, $0.identity!) }), "every row under the identity with the task part")
    }

    func cfg() throws -> TrainConfig {
        try TrainConfig.preset("dpt-paper", method: try MethodConfig.defaults("pt"), task: "cb", model: "embedded:t5-tiny", k: 8, seed: 1)
    }

    /// Rules of the code that changed for some runs only enter those runs' identities: MultiRC
    /// under val-half (halved by question since 2026-12-06, by rows before) and ReCoRD's respt set
    /// (one training row per query, one per gold answer before); every other run keeps its parts.
    func testChangedRulesEnterOnlyTheRunsTheyChange() throws {
        let mrc = try TaskRegistry.definition("multirc"), rec = try TaskRegistry.definition("record"), cb = try TaskRegistry.definition("cb")
        func part(_ d: TaskDefinition, _ t: TemplateSet, _ s: SelectionSplit?) throws -> [String: String] {
            try RunIdentity.canonicalTaskParts(d, templates: t, selectOn: s)
        }
        XCTAssertTrue(try part(mrc, .dpt, .valHalf)["task"]!.contains("\"val_half\":\"by question\""))
        XCTAssertEqual(try part(mrc, .dpt, nil), try part(mrc, .dpt, .trainDev))
        XCTAssertFalse(try part(mrc, .dpt, nil)["task"]!.contains("val_half"))
        XCTAssertEqual(try part(cb, .dpt, .valHalf), try part(cb, .dpt, nil))
        XCTAssertTrue(try part(rec, .respt, nil)["template"]!.contains("\"train_rows\":\"one per query\""))
        XCTAssertFalse(try part(rec, .dpt, nil)["template"]!.contains("train_rows"))
        // A row stored before the `task` part existed matches a new identity that differs only by
        // that part (legacyIdentityMatch), except where the part carries a changed rule: a MultiRC
        // val-half row of that time was halved by rows.
        func identity(_ parts: [String: Any]) throws -> (hash: String, json: String) {
            let json = String(decoding: try JSONSerialization.data(withJSONObject: parts, options: [.sortedKeys]), as: UTF8.self)
            return (sha256Hex(json), json)
        }
        for (selectOn, matches) in [(SelectionSplit?.none, true), (.valHalf, false)] {
            var new = try RunIdentity.taskParts(mrc, templates: .dpt, selectOn: selectOn)
            new["config"] = "{}"
            var old = new
            old["task"] = nil
            let stored = try identity(old), now = try identity(new)
            let row: [String: SQLiteDB.Value] = ["identity": .text(stored.hash), "identity_json": .text(stored.json)]
            XCTAssertEqual(ResultsStore.legacyIdentityMatch(stored: row, newJSON: now.json) != nil, matches, "\(String(describing: selectOn))")
        }
    }
    /// LoRA with its own dropout while the backbone's is off trained without that dropout before
    /// 2026-12-06 (`RunIdentity.ruleParts`): those runs alone get a `rules` part, reads leave out
    /// a stored row of theirs without it (a row never has had it, so this is no legacy case), and
    /// a row with it counts; a LoRA run with the backbone's dropout on keeps its identity.
    func testAFixedRuleLeavesOutTheRowsItChanged() throws {
        var c = try TrainConfig.preset("lopt-paper", method: try MethodConfig.defaults("lora"), task: "sst2", model: "embedded:gpt2-tiny", k: 8, seed: 1)
        XCTAssertFalse(c.backboneDropout, "LoPT's preset turns the backbone's dropout off")
        XCTAssertTrue(RunIdentity.ruleParts(c).isEmpty, "lora dropout 0: nothing changed")
        c.method.dropout = 0.1
        XCTAssertEqual(PlannedRuns.canonical(RunIdentity.ruleParts(c)["rules"]!), "[{\"lora_dropout\":\"own sites\"}]")
        var on = c
        on.backboneDropout = true; on.dropoutRate = 0.1
        XCTAssertTrue(RunIdentity.ruleParts(on).isEmpty, "backbone dropout on: the same masks as before")
        on.dropoutRate = 0
        XCTAssertFalse(RunIdentity.ruleParts(on).isEmpty, "rate 0 switched the adapter's dropout off too")

        let r = RunSpec(spec: "s", profile: "smoke", cell: "c", variant: "lora", method: "lora", task: "sst2", model: "gpt2",
                        modelSpec: "embedded:gpt2-tiny", k: 8, seed: 1, sampleSeed: nil, config: c)
        let key = PlannedRuns.key(cell: "c", seed: 1, sampleSeed: 1)
        var plan = PlannedRuns([(key: key, configHash: PlannedRuns.configHash(c))])
        plan.taskParts[key] = try RunIdentity.plannedParts(r)
        var parts: [String: Any] = try RunIdentity.taskParts(TaskRegistry.definition("sst2"), templates: c.templates).merging(["weights": "w"]) { a, _ in a }
        func reason(_ p: [String: Any]) -> StaleRun.Reason? {
            plan.staleReason(cell: "c", seed: 1, sampleSeed: 1, configJSON: c.json, status: "done", identityJSON: json(p))
        }
        XCTAssertEqual(reason(parts), .ruleChanged, "a row of the old rule")
        let note = staleRunsNote([StaleRun(id: 1, cell: "c", seed: 1, status: "done", reason: .ruleChanged)], spec: "s", profile: "smoke") ?? ""
        XCTAssertTrue(note.contains("run before a fix of the code") && note.contains("promptrepro sweep s --profile smoke"), note)
        parts["rules"] = ["lora_dropout": "own sites"]
        XCTAssertNil(reason(parts), "a row run under the rule")
        let row: [String: SQLiteDB.Value] = ["identity": .text(sha256Hex(json(parts.filter { $0.key != "rules" }))),
                                             "identity_json": .text(json(parts.filter { $0.key != "rules" }))]
        XCTAssertNil(ResultsStore.legacyIdentityMatch(stored: row, newJSON: json(parts)), "not taken as a legacy row: rerun")
    }

    /// An evaluated run (`eval --db`) is compared on the task parts and the rules that move an
    /// evaluation: another template set's parts, or a WSC/DePT row stored before its marking rule,
    /// differ; the training-only LoRA dropout rule it may carry does not; a row without parts is
    /// not compared.
    func testEvaluatedRunsAreComparedOnTheirTaskPartsAndEvaluationRules() throws {
        let cb = try RunIdentity.canonicalTaskParts(TaskRegistry.definition("cb"), templates: .dpt)
        XCTAssertFalse(RunIdentity.evaluatedTaskChanged(task: "cb", templates: "dpt", selectOn: nil, evalLimit: nil, stored: cb))
        XCTAssertTrue(RunIdentity.evaluatedTaskChanged(task: "cb", templates: "respt", selectOn: nil, evalLimit: nil, stored: cb), "ResPT's template set has label words for targets")
        XCTAssertFalse(RunIdentity.evaluatedTaskChanged(task: "cb", templates: "dept", selectOn: nil, evalLimit: nil, stored: cb), "DePT's CB template is DPT's")
        var bumped = cb
        bumped["task_version"] = PlannedRuns.canonical(0)
        XCTAssertTrue(RunIdentity.evaluatedTaskChanged(task: "cb", templates: "dpt", selectOn: nil, evalLimit: nil, stored: bumped))
        var older = cb
        older["task"] = nil  // stored before the part existed: compared on the others
        XCTAssertFalse(RunIdentity.evaluatedTaskChanged(task: "cb", templates: "dpt", selectOn: nil, evalLimit: nil, stored: older))
        XCTAssertFalse(RunIdentity.evaluatedTaskChanged(task: "cb", templates: "dpt", selectOn: nil, evalLimit: nil, stored: [:]))
        XCTAssertFalse(RunIdentity.evaluatedTaskChanged(task: "no-such-task", templates: "dpt", selectOn: nil, evalLimit: nil, stored: cb))
        let lora = PlannedRuns.canonical(["lora_dropout": "own sites"])
        XCTAssertFalse(RunIdentity.evaluatedTaskChanged(task: "cb", templates: "dpt", selectOn: nil, evalLimit: nil, stored: cb.merging(["rules": lora]) { a, _ in a }),
                       "a training-only rule never moved an evaluation")
        let wsc = try RunIdentity.canonicalTaskParts(TaskRegistry.definition("wsc"), templates: .dept)
        let marks = PlannedRuns.canonical(["wsc_dept_marks": "mark_span"])
        XCTAssertTrue(RunIdentity.evaluatedTaskChanged(task: "wsc", templates: "dept", selectOn: nil, evalLimit: nil, stored: wsc), "scored before the marking rule")
        XCTAssertFalse(RunIdentity.evaluatedTaskChanged(task: "wsc", templates: "dept", selectOn: nil, evalLimit: nil, stored: wsc.merging(["rules": marks]) { a, _ in a }))
        let both = PlannedRuns.canonical(["wsc_dept_marks": "mark_span", "lora_dropout": "own sites"])
        XCTAssertFalse(RunIdentity.evaluatedTaskChanged(task: "wsc", templates: "dept", selectOn: nil, evalLimit: nil, stored: wsc.merging(["rules": both]) { a, _ in a }))
        // Entries that shape the training rows only are not compared: a ReCoRD row under ResPT's
        // templates stored before `train_rows` entered the template part still counts.
        let record = try RunIdentity.canonicalTaskParts(TaskRegistry.definition("record"), templates: .respt)
        XCTAssertTrue(try XCTUnwrap(record["template"]).contains("train_rows"))
        var beforeTrainRows = record
        var tpl = try XCTUnwrap(((try JSONSerialization.jsonObject(with: Data(record["template"]!.utf8))) as? [Any])?.first as? [String: Any])
        tpl["train_rows"] = nil
        beforeTrainRows["template"] = PlannedRuns.canonical(tpl)
        XCTAssertFalse(RunIdentity.evaluatedTaskChanged(task: "record", templates: "respt", selectOn: nil, evalLimit: nil, stored: beforeTrainRows))
        tpl["source"] = "edited"
        beforeTrainRows["template"] = PlannedRuns.canonical(tpl)
        XCTAssertTrue(RunIdentity.evaluatedTaskChanged(task: "record", templates: "respt", selectOn: nil, evalLimit: nil, stored: beforeTrainRows))
        // MultiRC halved by question under val-half: the part the selection split enters.
        let half = try RunIdentity.canonicalTaskParts(TaskRegistry.definition("multirc"), templates: .dpt, selectOn: .valHalf)
        XCTAssertFalse(RunIdentity.evaluatedTaskChanged(task: "multirc", templates: "dpt", selectOn: "val-half", evalLimit: nil, stored: half))
        XCTAssertTrue(RunIdentity.evaluatedTaskChanged(task: "multirc", templates: "dpt", selectOn: nil, evalLimit: nil, stored: half))
        var plan = PlannedRuns([])
        plan.evaluatedTaskCheck = RunIdentity.evaluatedTaskChanged
        XCTAssertFalse(plan.evaluatedTaskChanged(task: "multirc", templates: "dpt", stored: half), "an export's val-half part read back as val-half")
        XCTAssertTrue(plan.evaluatedTaskChanged(task: "cb", templates: "respt", stored: cb))
        // An export cell of mixed template sets (templates nil) is checked against every set.
        XCTAssertFalse(plan.evaluatedTaskChanged(task: "cb", templates: nil, stored: cb))
        XCTAssertTrue(plan.evaluatedTaskChanged(task: "cb", templates: nil, stored: bumped))
    }

    /// An adapter scored on MultiRC with an eval_limit before the limit ended at a whole question
    /// (its row lacks the `eval_limit` rule) is left out where the run's limit is known (a store
    /// read, from its config); scored without a limit, or on another task, nothing changed. An
    /// export read keeps no limit and does not compare the rule either way.
    func testEvaluatedMultiRCRowsCarryTheirLimitRule() throws {
        let multirc = try RunIdentity.canonicalTaskParts(TaskRegistry.definition("multirc"), templates: .dpt)
        let limitRule = multirc.merging(["rules": PlannedRuns.canonical(["eval_limit": "whole questions"])]) { a, _ in a }
        XCTAssertTrue(RunIdentity.evaluatedTaskChanged(task: "multirc", templates: "dpt", selectOn: nil, evalLimit: 64, stored: multirc),
                      "scored on a prefix that could end inside a question")
        XCTAssertFalse(RunIdentity.evaluatedTaskChanged(task: "multirc", templates: "dpt", selectOn: nil, evalLimit: 64, stored: limitRule))
        XCTAssertFalse(RunIdentity.evaluatedTaskChanged(task: "multirc", templates: "dpt", selectOn: nil, evalLimit: nil, stored: multirc), "the whole split")
        XCTAssertTrue(RunIdentity.evaluatedTaskChanged(task: "multirc", templates: "dpt", selectOn: nil, evalLimit: nil, stored: limitRule))
        XCTAssertFalse(RunIdentity.evaluatedTaskChanged(task: "multirc", templates: "dpt", selectOn: nil, evalLimit: nil, limitKnown: false, stored: multirc))
        XCTAssertFalse(RunIdentity.evaluatedTaskChanged(task: "multirc", templates: "dpt", selectOn: nil, evalLimit: nil, limitKnown: false, stored: limitRule))
        let cb = try RunIdentity.canonicalTaskParts(TaskRegistry.definition("cb"), templates: .dpt)
        XCTAssertFalse(RunIdentity.evaluatedTaskChanged(task: "cb", templates: "dpt", selectOn: nil, evalLimit: 64, stored: cb), "whole rows elsewhere")
        var plan = PlannedRuns([])
        plan.evaluatedTaskCheck = RunIdentity.evaluatedTaskChanged
        XCTAssertFalse(plan.evaluatedTaskChanged(task: "multirc", templates: "dpt", stored: multirc), "an export read")
        // The rule a stored row gets is the one the check expects: a config with the limit.
        var c = try TrainConfig.preset("dpt-paper", method: try MethodConfig.defaults("pt"), task: "multirc", model: "embedded:t5-tiny", k: 8, seed: 1)
        c.evalLimit = 64
        let stored = multirc.merging(RunIdentity.ruleParts(c).mapValues(PlannedRuns.canonical)) { a, _ in a }
        XCTAssertFalse(RunIdentity.evaluatedTaskChanged(task: "multirc", templates: "dpt", selectOn: nil, evalLimit: 64, stored: stored))
        // A store read takes the limit from the row's config.
        func identityJSON(_ parts: [String: String]) throws -> String {
            let object = try parts.mapValues { try XCTUnwrap((try JSONSerialization.jsonObject(with: Data($0.utf8), options: .fragmentsAllowed) as? [Any])?.first) }
            return String(decoding: try JSONSerialization.data(withJSONObject: object, options: .sortedKeys), as: UTF8.self)
        }
        XCTAssertTrue(plan.evaluatedTaskChanged(config: c, identityJSON: try identityJSON(multirc)), "stored before the rule, scored on 64 rows")
        XCTAssertFalse(plan.evaluatedTaskChanged(config: c, identityJSON: try identityJSON(stored)))
        c.evalLimit = nil
        XCTAssertFalse(plan.evaluatedTaskChanged(config: c, identityJSON: try identityJSON(multirc)))
        XCTAssertFalse(plan.evaluatedTaskChanged(config: c, identityJSON: nil), "no identity: not compared")
    }

    /// Runs selecting on half of validation carry `val_half_select` (the halves' sizes changed to
    /// DePT's ⌊N/2⌋ on 2026-12-07): a row stored without it does not count; other runs are untouched.
    func testValHalfRunsCarryTheirSplitRule() throws {
        var c = try TrainConfig.preset("dpt-paper", method: try MethodConfig.defaults("pt"), task: "rte", model: "embedded:t5-tiny", k: 8, seed: 1)
        XCTAssertTrue(RunIdentity.ruleParts(c).isEmpty)
        c.selectOn = .trainDev
        XCTAssertTrue(RunIdentity.ruleParts(c).isEmpty)
        c.selectOn = .valHalf
        XCTAssertEqual(PlannedRuns.canonical(RunIdentity.ruleParts(c)["rules"]!), "[{\"val_half_select\":\"floor\"}]")
        let r = RunSpec(spec: "s", profile: "smoke", cell: "c", variant: "pt", method: "pt", task: "rte", model: "t5-small",
                        modelSpec: "embedded:t5-tiny", k: 8, seed: 1, sampleSeed: nil, config: c)
        let key = PlannedRuns.key(cell: "c", seed: 1, sampleSeed: 1)
        var plan = PlannedRuns([(key: key, configHash: PlannedRuns.configHash(c))])
        plan.taskParts[key] = try RunIdentity.plannedParts(r)
        var old = plan.taskParts[key]!
        old["rules"] = nil
        XCTAssertTrue(plan.taskChanged(key: key, stored: old, rules: true), "a row split by ⌈N/2⌉ does not count")
        XCTAssertFalse(plan.taskChanged(key: key, stored: plan.taskParts[key]!, rules: true))
    }

    /// An evaluated adapter is compared on its base checkpoint too (weights, config and tokenizer
    /// files of its model column as a store read hashes them now): a replaced checkpoint leaves
    /// its old score out; a part stored as "missing" or a column not hashed is not compared.
    func testEvaluatedRunsAreComparedOnTheirBaseCheckpoint() throws {
        var plan = PlannedRuns([(key: PlannedRuns.key(cell: "pt|cb|t5-small|k8", seed: 1, sampleSeed: 1), configHash: "h")])
        var config = try TrainConfig.preset("dpt-paper", method: try MethodConfig.defaults("pt"), task: "cb", model: "embedded:t5-tiny", k: 8, seed: 1)
        func reason(_ identity: [String: Any], cell: String = "peft|cb|t5-small|k8") throws -> StaleRun.Reason? {
            let json = String(decoding: try JSONSerialization.data(withJSONObject: identity, options: [.sortedKeys]), as: UTF8.self)
            return plan.staleReason(cell: cell, seed: 1, sampleSeed: 1, configJSON: config.json, status: "evaluated", identityJSON: json)
        }
        let stored: [String: Any] = ["weights": "w1", "model_files": "config.json:c1"]
        XCTAssertNil(try reason(stored), "not compared without the column's hashes")
        plan.modelData["t5-small"] = ("embedded:t5-tiny", ["weights": "w1", "model_files": "config.json:c1"])
        XCTAssertNil(try reason(stored))
        plan.modelData["t5-small"] = ("embedded:t5-tiny", ["weights": "w2", "model_files": "config.json:c1"])
        XCTAssertEqual(try reason(stored), .evaluatedInputsChanged)
        plan.modelData["t5-small"] = ("embedded:t5-tiny", ["weights": "w1", "model_files": "config.json:c2"])
        XCTAssertEqual(try reason(stored), .evaluatedInputsChanged)
        XCTAssertNil(try reason(["weights": "missing: t5-small", "model_files": "config.json:c2"]))
        // An adapter scored on another checkpoint than the column loads (stored with a warning
        // before 2026-12-08; `compare` paired it with the column's runs) counts only where its
        // weights are the column's: the same weights under another path do, other weights do
        // not; its config and tokenizer files are another checkpoint's and not compared.
        config.model = "/elsewhere/t5-small-copy"
        XCTAssertNil(try reason(stored), "the column's weights (w1), its own config files")
        plan.modelData["t5-small"] = ("embedded:t5-tiny", ["weights": "w2", "model_files": "config.json:c1"])
        XCTAssertEqual(try reason(stored), .evaluatedInputsChanged, "another backbone's weights")
        XCTAssertNil(try reason(["weights": "missing: elsewhere"]), "not hashed when stored: not compared")
    }
}
