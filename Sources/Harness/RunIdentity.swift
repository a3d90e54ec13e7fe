// Run identity: a run is the same run only while everything that can move its numbers is the same.
// The identity is the sha256 of a canonical JSON object of those inputs; `sweep` compares it with
// the stored one and reruns a cell whose identity changed (the old row stays, as 'superseded').
import Foundation
import Models
import Store
import Support
import Tasks
import Training

public enum RunIdentity {
    /// Parts of the identity (keys of the hashed JSON object):
    /// * `config`: the effective training config after preset, spec layers and profile (method
    ///   config included), without `threads` (which moves only the last bits of a GEMM's rounding;
    ///   recorded per run instead);
    /// * `task_version`, `template` and `task`: the task YAML's `version`, the chosen template set's
    ///   source, target and label words, and what else of the task file moves a score (labels,
    ///   metrics, selection metric, reader, preprocessing, training filter; `taskParts`). Rows
    ///   stored before `task` was a part match on the others (`ResultsStore.insertPending`);
    /// * `manifest`: sha256 of the few-shot manifest file (or "drawn" when none is committed);
    /// * `data`: sha256 of the training and validation files the run would read;
    /// * `weights`: sha256 of the checkpoint's safetensors files ("missing: …" when not found);
    /// * `model_files`: the other files of the checkpoint's directory a run reads (`modelFiles`:
    ///   config.json, the shard index and the tokenizer's), "NAME:sha256" joined by ","; absent when the checkpoint
    ///   is not found. Rows stored before the part existed match on the others (an edited
    ///   config.json or tokenizer, e.g. GPT-2's `activation_function` or `layer_norm_epsilon`,
    ///   moved every number under an unchanged identity before).
    /// `fileHash` computes (and may cache) a file's sha256.
    public static func compute(_ r: RunSpec, dataDir: String, manifestDir: String, fileHash: (String) throws -> String,
                               weightsHash: (String) throws -> String) throws -> (hash: String, json: String, taskVersion: Int) {
        var parts: [String: Any] = [:]
        var cfg = r.config
        cfg.threads = nil
        parts["config"] = cfg.json
        let def = try TaskRegistry.definition(r.task)
        for (k, v) in try taskParts(def, templates: cfg.templates, selectOn: cfg.selectOn) { parts[k] = v }
        for (k, v) in ruleParts(cfg) { parts[k] = v }
        if let name = cfg.manifestFileName {
            let path = "\(manifestDir)/\(name)"
            parts["manifest"] = FileManager.default.fileExists(atPath: path) ? try fileHash(path) : "drawn"
        }
        var data: [String: String] = [:]
        for (name, split) in [("train", Split.train), ("validation", Split.validation)] {
            if let rel = DataLoader.file(def, split: split, dataDir: dataDir) {
                data[name] = "\(rel):\(try fileHash((dataDir as NSString).appendingPathComponent(rel)))"
            } else {
                data[name] = "missing"
            }
        }
        parts["data"] = data
        if let dir = try? ModelFiles.locate(r.modelSpec) {
            parts["weights"] = try weightsHash(dir)
            parts["model_files"] = try modelFilesHash(dir, fileHash: fileHash)
        } else {
            parts["weights"] = "missing: \(r.modelSpec)"
        }
        let json = String(decoding: try JSONSerialization.data(withJSONObject: parts, options: [.sortedKeys]), as: UTF8.self)
        return (sha256Hex(json), json, def.version)
    }

    /// The files of a checkpoint directory besides the weights that a run reads: the architecture
    /// (config.json), the shard index (model.safetensors.index.json: which shard a tensor is read
    /// from) and the tokenizer (`Tokenizers.load`: tokenizer.json, spiece.model, vocab.json +
    /// merges.txt, and tokenizer_config.json for its class and settings).
    public static let modelFiles = ["config.json", "merges.txt", "model.safetensors.index.json", "spiece.model", "tokenizer.json",
                                    "tokenizer_config.json", "vocab.json"]

    /// `model_files`: "NAME:sha256" of each of `modelFiles` present in `dir`, joined by ",".
    public static func modelFilesHash(_ dir: String, fileHash: (String) throws -> String) throws -> String {
        try modelFiles.compactMap { name -> String? in
            let path = (dir as NSString).appendingPathComponent(name)
            return FileManager.default.fileExists(atPath: path) ? "\(name):\(try fileHash(path))" : nil
        }.joined(separator: ",")
    }

    /// The identity's parts that come from the task file: `task_version`, `template` (the set's
    /// source, target, label words) and `task` (labels, metrics, selection metric, reader,
    /// preprocessing, training filter). A label order swapped without a version bump inverts every
    /// gold label; it once left the stored runs counted as done.
    /// Two rules of the code enter where they apply only, so no other run changes identity:
    /// `template.train_rows` "one per query" for a ReCoRD set whose target is not the answer
    /// (ResPT's joined answers; one row per gold answer before 2026-12-06), and `task.val_half`
    /// "by question" for MultiRC under `select_on: val-half` (halved by rows before 2026-12-06).
    public static func taskParts(_ def: TaskDefinition, templates: TemplateSet, selectOn: SelectionSplit? = nil) throws -> [String: Any] {
        let tpl = try def.template(templates)
        var task: [String: Any] = [
            "labels": (def.labels ?? []).map(\.description), "metrics": def.metrics.map { ["name": $0.name, "metric": $0.metric] },
            "selection_metric": def.selectionMetric, "reader": def.reader, "preprocess": def.preprocess ?? [],
            "train_filter": def.trainFilter ?? ""]
        if selectOn == .valHalf && def.reader == "superglue_multirc" { task["val_half"] = "by question" }
        var template: [String: Any] = ["source": tpl.source, "target": tpl.target, "words": tpl.words ?? []]
        if def.reader == "superglue_record" && !tpl.target.contains("{answer}") { template["train_rows"] = "one per query" }
        return ["task_version": def.version, "template": template, "task": task]
    }

    /// `taskParts` as PlannedRuns compares them: part name → canonical JSON of its value.
    public static func canonicalTaskParts(_ def: TaskDefinition, templates: TemplateSet, selectOn: SelectionSplit? = nil) throws -> [String: String] {
        try taskParts(def, templates: templates, selectOn: selectOn).mapValues(PlannedRuns.canonical)
    }

    /// The parts of `r`'s identity a read compares with a stored row (`PlannedRuns.taskParts`):
    /// `canonicalTaskParts` and `ruleParts`, as canonical JSON.
    public static func plannedParts(_ r: RunSpec) throws -> [String: String] {
        var out = try canonicalTaskParts(TaskRegistry.definition(r.task), templates: r.config.templates, selectOn: r.config.selectOn)
        for (k, v) in ruleParts(r.config) { out[k] = PlannedRuns.canonical(v) }
        return out
    }

    /// `rules`: rules of the code that changed a run's numbers under an unchanged config, entered
    /// only for the runs they change, so that those runs (and only those) get a new identity and
    /// their old rows stop counting (a stored row without the part does not count where the plan
    /// has it: `PlannedRuns.ruleParts`). Empty for every other run.
    /// * `lora_dropout` "own sites": LoRA with `dropout` > 0 while the backbone's dropout is off
    ///   (`backbone_dropout: false` or `dropout_rate: 0`). Before 2026-12-06 the adapter's dropout
    ///   applied only while the backbone's did, so these runs trained without it.
    /// * `val_half_select` "floor": runs selecting on half of the validation split (`select_on:
    ///   val-half`). Before 2026-12-07 the selection half had ⌈N/2⌉ rows (DePT's has ⌊N/2⌋: an odd
    ///   split, RTE's 277 rows or MultiRC's 953 questions, moved one row or question), and an
    ///   eval_limit cut a MultiRC question (now whole questions). Even splits keep their rows but
    ///   rerun too: the part is entered for every val-half run, since the split's size is not
    ///   known from the config (an exception to "only for the runs they change" above).
    /// * `eval_limit` "whole questions": MultiRC runs with an `eval_limit`. Before 2026-12-07 the
    ///   limit took a prefix of rows, which ends inside a question at 48, 64, 96 or 128 rows, and
    ///   exact match scored that question on some of its answers; the prefix now ends at the last
    ///   whole question (61 rows at a limit of 64).
    /// * `wsc_dept_marks` "mark_span": WSC under DePT's templates. Before 2026-12-07 its `* … *` and
    ///   `# … #` were put by word count, where DePT's regex leaves a span of another case unmarked
    ///   and marks attached punctuation otherwise (10 of the 104 validation inputs differed).
    public static func ruleParts(_ c: TrainConfig) -> [String: Any] {
        var rules = evaluationRules(task: c.task, templates: c.templates, evalLimit: c.evalLimit)
        if c.method.method == "lora", c.method.dropout > 0, !c.backboneDropout || c.dropoutRate == 0 { rules["lora_dropout"] = "own sites" }
        if c.selectOn == .valHalf { rules["val_half_select"] = "floor" }
        return rules.isEmpty ? [:] : ["rules": rules]
    }

    /// The rules of `ruleParts` that move a score of given weights (the inputs an evaluation
    /// builds and the examples it scores), as opposed to training alone (`lora_dropout`):
    /// `wsc_dept_marks` and `eval_limit`. (`val_half_select` moves an evaluation too, but `eval`
    /// never scores on a half.)
    static func evaluationRules(task: String, templates: TemplateSet, evalLimit: Int?) -> [String: String] {
        var rules: [String: String] = [:]
        if task == "wsc" && templates == .dept { rules["wsc_dept_marks"] = "mark_span" }
        if task == "multirc", evalLimit != nil { rules["eval_limit"] = "whole questions" }
        return rules
    }
    static let evaluationRuleNames: Set<String> = ["wsc_dept_marks", "eval_limit"]
    /// Entries of the task parts that shape the training rows only (by part): not compared for
    /// evaluated runs.
    static let trainingOnlyEntries: [String: [String]] = ["template": ["train_rows"], "task": ["train_filter"]]

    /// Whether an evaluated run (`eval --db`: an adapter scored, never trained here) of `task`
    /// under `templates` and `selectOn` (raw values) was scored under another task definition than
    /// the task file gives now: its stored task parts (`PlannedRuns.storedTaskParts`: task_version,
    /// template, task) differ on a part it has, or its rules that move an evaluation
    /// (`evaluationRules`) differ from those that apply now (a row stored before such a rule lacks
    /// it). The training-only rules it may have stored are not compared: they never moved its
    /// score. `evalLimit`: the run's eval_limit, which decides whether the `eval_limit` rule
    /// applies (an adapter scored on MultiRC rows that ended inside a question before that rule
    /// is left out); `limitKnown: false` (an export read, which keeps no config) does not compare
    /// that rule. An unknown task or template set (a task file removed since) is not compared, as
    /// the rows of an unknown task are left out elsewhere (`unplanned`); nor is a row without
    /// stored parts (stored before identities). `PlannedRuns.evaluatedTaskCheck`.
    public static func evaluatedTaskChanged(task: String, templates: String, selectOn: String?, evalLimit: Int?, limitKnown: Bool = true,
                                            stored: [String: String]) -> Bool {
        guard !stored.isEmpty, let def = try? TaskRegistry.definition(task), let set = TemplateSet(rawValue: templates),
              let now = try? canonicalTaskParts(def, templates: set, selectOn: selectOn.flatMap(SelectionSplit.init(rawValue:))) else { return false }
        // Entries that shape only the training rows (ReCoRD's `train_rows`, `train_filter`) never
        // moved a score of given weights: a row stored before such an entry counts.
        func scored(_ name: String, _ value: String) -> String {
            guard let key = trainingOnlyEntries[name],
                  var object = ((try? JSONSerialization.jsonObject(with: Data(value.utf8))) as? [Any])?.first as? [String: Any] else { return PlannedRuns.recanonical(value) }
            for k in key { object[k] = nil }
            return PlannedRuns.canonical(object)
        }
        if now.contains(where: { name, value in stored[name].map { scored(name, $0) != scored(name, value) } ?? false }) { return true }
        let storedRules = stored["rules"].flatMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [[String: String]] }?.first ?? [:]
        let compared = limitKnown ? evaluationRuleNames : evaluationRuleNames.subtracting(["eval_limit"])
        return storedRules.filter { compared.contains($0.key) } != evaluationRules(task: task, templates: set, evalLimit: evalLimit).filter { compared.contains($0.key) }
    }
}

extension ResultsStore {
    /// `runs` with their identities filled in (see `RunIdentity.compute`).
    public func withIdentities(_ runs: [RunSpec], dataDir: String, manifestDir: String) throws -> [RunSpec] {
        var weights: [String: String] = [:]
        return try runs.map { r in
            var r = r
            let id = try RunIdentity.compute(r, dataDir: dataDir, manifestDir: manifestDir, fileHash: { try self.fileHash($0) }) { dir in
                if let w = weights[dir] { return w }
                let w = try self.weightsHash(directory: dir)
                weights[dir] = w
                return w
            }
            r.identity = id.hash
            r.identityJSON = id.json
            r.taskVersion = id.taskVersion
            return r
        }
    }
}
