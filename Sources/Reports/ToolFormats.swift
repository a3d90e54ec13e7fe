// Results in the formats other tools read:
// * lm-evaluation-harness: one results JSON per variant, model column and k, in a folder of its
//   own as lm-eval's EvaluationTracker writes them (`<model_name_sanitized>/results_<date>.json`),
//   with `results` (per task: "<metric>,none" and "<metric>_stderr,none", the standard error of
//   the mean over seeds), `group_subtasks`, `configs`, `versions`, `n-shot`, `higher_is_better`,
//   `n-samples` and `config` — lm_eval/result_schema.py's layout (lm-eval 0.4.13);
// * PEFT's method_comparison: one JSON per finished or failed run with `run_info` (created_at,
//   total_time, experiment_name, train_config with model_id, peft_config with peft_type or null
//   for full fine-tuning, error_msg), `train_info` (status success/failed, metrics per evaluation
//   with "valid accuracy" and, last, "test accuracy" as fractions, num_trainable_params,
//   num_total_params, train_time, file_size, the accelerator-memory keys null on CPU) and
//   `meta_info` (model, dataset, package and system information) — the keys
//   method_comparison/processing.py reads (checked by running it on an export).
import Foundation
import Store
import Tasks
import Training

public enum ToolFormats {
    /// What the runs of one lm-eval file were evaluated with (from their configs; the CLI reads
    /// them): lm-eval's `config.limit`, `batch_size` and `gen_kwargs`, and each task's
    /// `output_type` ("generate_until" for a greedy decode, "multiple_choice" for rank
    /// classification and GPT-2's verbaliser).
    public struct LMEvalSettings {
        public var limit: Int?
        public var batchSize: Int?
        public var genKwargs: [String: Any]?
        public var outputType: [String: String]
        /// The runs' presets (`TrainConfig.protocolName`: dpt-paper, lopt-paper, …), sorted.
        public var presets: [String]
        public init(limit: Int? = nil, batchSize: Int? = nil, genKwargs: [String: Any]? = nil, outputType: [String: String] = [:], presets: [String] = []) {
            self.limit = limit; self.batchSize = batchSize; self.genKwargs = genKwargs; self.outputType = outputType; self.presets = presets
        }
    }

    /// The task name an lm-eval file uses for PromptRepro's `task`: `promptrepro_<task>`. lm-eval
    /// registers its own `cb`, `rte`, `boolq`, … (zero-shot log-likelihood tasks with other
    /// metrics; its SuperGLUE RTE is `sglue_rte`), which a reader would take these scores for.
    /// The alias (what `make_table` prints) stays the task's name.
    public static func lmEvalTaskName(_ task: String) -> String { "promptrepro_\(task)" }

    /// The model name of one lm-eval file: `<spec>/<profile>/<variant>/<model column>/k<k>`
    /// ("full" for the whole training split); lm-eval keeps one folder per model name, and reads
    /// the latest results file of a folder only, so exports of two specs or profiles into one
    /// folder must not share a name.
    public static func lmEvalModelName(spec: String, profile: String, variant: String, model: String, k: Int?) -> String {
        "\(spec)/\(profile)/\(variant)/\(model)/k\(k.map(String.init) ?? "full")"
    }

    /// lm-eval's `sanitize_model_name` (lm_eval/utils.py): runs of `"<>:/|\?*[]` become `__`; the
    /// folder name of a model's results.
    public static func lmEvalSanitized(_ name: String) -> String {
        let special = Set("\"<>:/|\\?*[]")
        var out = "", inRun = false
        for ch in name {
            if special.contains(ch) { if !inRun { out += "__" }; inRun = true } else { out.append(ch); inRun = false }
        }
        return out
    }

    /// lm-eval's `date_id`, `datetime.now().isoformat().replace(":", "-")`
    /// (lm_eval/loggers/evaluation_tracker.py), in UTC with microseconds: the text after the last
    /// `_` of `results_<date_id>.json`, which lm-eval's readers order files by.
    public static func lmEvalDateID(_ date: Date) -> String {
        var c = Calendar(identifier: .gregorian)
        c.timeZone = TimeZone(identifier: "UTC")!
        let d = c.dateComponents([.year, .month, .day, .hour, .minute, .second, .nanosecond], from: date)
        func p(_ v: Int?, _ w: Int) -> String { let s = String(v ?? 0); return String(repeating: "0", count: max(0, w - s.count)) + s }
        return "\(p(d.year, 4))-\(p(d.month, 2))-\(p(d.day, 2))T\(p(d.hour, 2))-\(p(d.minute, 2))-\(p(d.second, 2)).\(p((d.nanosecond ?? 0) / 1000, 6))"
    }

    /// lm-eval-harness-shaped results for the cells of one variant, model column and k (the
    /// caller passes one k's cells), as lm-eval 0.4.13's `EvalResults` (lm_eval/result_schema.py):
    /// per task (`lmEvalTaskName`) `results` with name, alias, sample_len and the best-epoch
    /// scores as fractions ("<metric>,none"; "<metric>_stderr,none" the standard error of the mean
    /// over seeds, "N/A" for one seed), `configs` (what the task is: its data files, output type,
    /// metrics, num_fewshot 0), `versions` (the task YAML's version), `n-shot` (0: no in-context
    /// examples; the few-shot training size is `config.k`), `higher_is_better`, `n-samples`
    /// (`originals`: the validation split's examples, null where unknown; `samples`: those
    /// scored) and `group_subtasks` (none); `config` holds model, model_args, limit, batch_size,
    /// device, gen_kwargs and PromptRepro's spec, profile, k, protocol and seeds; `model_name`,
    /// `model_name_sanitized` and `date` (Unix seconds) as EvaluationTracker adds them.
    public static func lmEval(cells: [CellResult], variant: String, model: String, spec: String, profile: String,
                              versions: [String: Int], samples: [String: Int], originals: [String: Int] = [:], modelSpec: String,
                              k: Int?, settings: LMEvalSettings = LMEvalSettings(), date: Date = Date(), gridPointOf: String? = nil) -> [String: Any] {
        var results: [String: Any] = [:], vers: [String: Any] = [:], n: [String: Any] = [:], seeds: [String: Any] = [:]
        var better: [String: Any] = [:], configs: [String: Any] = [:], shots: [String: Any] = [:]
        for c in cells where c.variant == variant && c.model == model && c.k == k {
            let name = lmEvalTaskName(c.task)
            let def = try? TaskRegistry.definition(c.task)
            // lm-eval's `higher_is_better` (per task, per metric; make_table prints ↑/↓ from it):
            // each stored score's registry direction.
            var dir: [String: Bool] = [:]
            for m in def?.metrics ?? [] { if let e = try? m.entry { dir[m.name] = e.higherIsBetter } }
            better[name] = dir
            // How many seeds each task's mean and stderr cover, and the cell's runs left out of them.
            var s: [String: Any] = ["n": c.best[def?.selectionMetric ?? ""]?.n ?? c.seeds.count]
            let left = c.statuses.filter { !["done", "evaluated"].contains($0.key) }
            if !left.isEmpty { s["not_counted"] = left }
            seeds[name] = s
            let scored = samples[c.task] ?? 0
            var r: [String: Any] = ["name": name, "alias": c.task, "sample_len": scored]
            for (metric, st) in c.best.sorted(by: { $0.key < $1.key }) {
                r["\(metric),none"] = st.mean / 100  // lm-eval reports fractions
                r["\(metric)_stderr,none"] = st.n > 1 ? (st.sampleStd ?? 0) / Double(st.n).squareRoot() / 100 : "N/A"
            }
            results[name] = r
            let version = Double(versions[c.task] ?? def?.version ?? 0)
            vers[name] = version
            shots[name] = 0
            configs[name] = ["task": name, "task_alias": c.task, "dataset_path": (c.dataFiles ?? []).joined(separator: ", "),
                             "validation_split": "validation", "output_type": settings.outputType[c.task] ?? "generate_until",
                             "num_fewshot": 0, "metric_list": c.best.keys.sorted().map { m -> [String: Any] in
                                 ["metric": m, "aggregation": "mean over seeds of the best epoch's score", "higher_is_better": dir[m] ?? true]
                             },
                             "metadata": ["version": version, "few_shot_train_examples": k.map { $0 as Any } ?? NSNull()]] as [String: Any]
            // original: the validation split's examples; effective: those scored (fewer under eval_limit).
            n[name] = ["original": originals[c.task].map { $0 as Any } ?? NSNull(), "effective": scored]
        }
        let mine = cells.filter { $0.variant == variant && $0.model == model && $0.k == k }
        let modelName = lmEvalModelName(spec: spec, profile: profile, variant: variant, model: model, k: k)
        var config: [String: Any] = ["model": "promptrepro", "model_args": "pretrained=\(modelSpec),peft=\(variant)",
                                     "limit": settings.limit.map { $0 as Any } ?? NSNull(),
                                     "batch_size": settings.batchSize.map { $0 as Any } ?? NSNull(),
                                     "device": "cpu", "bootstrap_iters": 0,
                                     "gen_kwargs": settings.genKwargs.map { $0 as Any } ?? NSNull(),
                                     "spec": spec, "profile": profile, "k": k.map { $0 as Any } ?? NSNull(),
                                     // The cells' own protocol (`TrainConfig.variantLabel`): a val-half or train-dev run was once labelled the paper's protocol.
                                     "selection": Set(mine.map { c -> String in
                                         let parts = (c.protocolLabel ?? "").components(separatedBy: "; ").filter { $0.hasPrefix("selection:") || $0.contains("best epoch by") }
                                         return parts.isEmpty ? "best epoch on the validation split (default protocol)" : parts.joined(separator: "; ")
                                     }).sorted().joined(separator: " / ") + "; mean over seeds",
                                     // "default protocol": the preset's own choices (which preset: `presets`).
                                     "protocol": Set(mine.map { $0.protocolLabel ?? "default protocol" }).sorted().joined(separator: " / "),
                                     "presets": settings.presets,
                                     "templates": Set(mine.compactMap(\.templates)).sorted(),
                                     "stderr": "standard error of the mean over seeds (sample std / sqrt(seeds)), not lm-eval's standard error over examples",
                                     "seeds": seeds,
                                     "smoke": profile == "smoke" || modelSpec.hasPrefix("embedded:")]
        // A search's grid point (the searched variant's name): search runs, not a method's results.
        if let gridPointOf { config["grid_point_of"] = gridPointOf }
        return ["results": results, "group_subtasks": [String: Any](), "configs": configs, "versions": vers, "n-shot": shots,
                "higher_is_better": better, "n-samples": n, "config": config,
                "model_source": "promptrepro", "model_name": modelName, "model_name_sanitized": lmEvalSanitized(modelName),
                "date": date.timeIntervalSince1970]
    }

    /// `object` as JSON the way Python's `json.dumps(…, indent=2)` writes lm-eval's files: every
    /// Double with its decimal point or exponent (0.0, not 0: lm-eval's `make_table` formats only
    /// floats; JSONSerialization wrote whole-number scores as integers), keys sorted, NaN and ±∞
    /// as Python writes them. Types other than dictionaries, arrays, strings, Bool, Int, Double
    /// and NSNull are written as their description, quoted.
    public static func pythonJSON(_ object: Any, indent: Int = 0) -> String {
        let pad = String(repeating: " ", count: indent + 2), end = String(repeating: " ", count: indent)
        func quoted(_ s: String) -> String {
            var out = "\""
            for u in s.unicodeScalars {
                switch u {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case "\r": out += "\\r"
                case "\t": out += "\\t"
                case "\u{08}": out += "\\b"
                case "\u{0C}": out += "\\f"
                default:
                    if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
                }
            }
            return out + "\""
        }
        switch object {
        case let d as [String: Any]:
            if d.isEmpty { return "{}" }
            return "{\n" + d.keys.sorted().map { "\(pad)\(quoted($0)): \(pythonJSON(d[$0]!, indent: indent + 2))" }.joined(separator: ",\n") + "\n\(end)}"
        case let a as [Any]:
            if a.isEmpty { return "[]" }
            return "[\n" + a.map { "\(pad)\(pythonJSON($0, indent: indent + 2))" }.joined(separator: ",\n") + "\n\(end)]"
        case let s as String: return quoted(s)
        case let b as Bool: return b ? "true" : "false"
        case let i as Int: return String(i)
        case let x as Double:
            if x.isNaN { return "NaN" }
            if x.isInfinite { return x > 0 ? "Infinity" : "-Infinity" }
            let t = "\(x)"  // shortest round-trip digits, as Python's repr
            return t.contains(".") || t.contains("e") ? t : t + ".0"
        case is NSNull: return "null"
        default: return quoted("\(object)")
        }
    }

    /// One run as PEFT method_comparison's per-run JSON, in the keys its reader takes
    /// (huggingface/peft `method_comparison/processing.py` `preprocess`: `run_info.peft_config`
    /// null for full fine-tuning or with a `peft_type`; `train_info.status` "success", others
    /// skipped; `train_config.model_id`; `accelerator_memory_reserved_avg` / `_max` /
    /// `_reserved_99th`; `metrics[-1]` with "test accuracy", "train loss", "train samples",
    /// "train total tokens"; the five `package_info` versions). PEFT's accuracies are fractions:
    /// "valid accuracy" per evaluation is the epoch's score of `metric` on the reported split, and
    /// the last entry's "test accuracy" is the best-epoch score the tables report (`best`), both
    /// ÷ 100; PromptRepro's own per-epoch metrics stay beside them under their names, in percent.
    /// A CPU run has no accelerator memory: those keys are null, `peak_rss_bytes` holds the peak
    /// RSS. Tokens are not counted ("train total tokens" null).
    /// - Parameters:
    ///   - r: the `runs` row; `epochs`: its `epochs` rows in order; `best`: its best-epoch scores
    ///     (percent); `runMetrics`: its `run_metrics` (train_seconds, eval_seconds, peak_rss_bytes,
    ///     artifact_bytes); `metric`: the score written as accuracy (the run's selection metric);
    ///     `trainExamples`: examples per epoch; `totalParams`: backbone + adapter scalars.
    ///   - methodKeys: the method config keys the run's method reads (`TuningMethod.configKeys`);
    ///     `peft_config` lists only those (DPT's listed LoRA's alpha and DePT's m and s); nil: all.
    /// - Returns: nil for a run with no result to report (pending, running).
    public static func peftBench(run r: [String: SQLiteDB.Value], epochs: [[String: SQLiteDB.Value]], best: [String: Double], runMetrics: [String: Double],
                                 metric: String, trainExamples: Int?, totalParams: Int?, methodKeys: Set<String>? = nil,
                                 gridPointOf: String? = nil) -> [String: Any]? {
        let stored = r["status"]?.text ?? ""
        let status: String
        switch stored {
        case "done", "evaluated": status = best[metric] == nil ? "failed" : "success"
        case "failed", "diverged": status = "failed"
        default: return nil
        }
        var config = ((try? JSONSerialization.jsonObject(with: Data((r["config_json"]?.text ?? "{}").utf8))) as? [String: Any]) ?? [:]
        var method = config["method"] as? [String: Any] ?? [:]
        if let keys = methodKeys { method = method.filter { keys.contains($0.key) || $0.key == "method" || ($0.key == "init_tokens" && keys.contains("init")) } }
        let name = method["method"] as? String ?? r["method"]?.text ?? ""
        // PEFT's names where PEFT has the method; PromptRepro's otherwise.
        let peftType = ["pt": "PROMPT_TUNING", "lora": "LORA"][name] ?? name.uppercased()
        var peftConfig: Any = name == "ft" ? NSNull() : method.merging(["peft_type": peftType]) { a, _ in a }
        config["model_id"] = r["model_spec"]?.text ?? r["model"]?.text ?? ""
        // An adapter evaluated here was trained elsewhere: its config's training settings are the
        // evaluation preset's, not its own (a LoPT adapter read as 30 epochs of method
        // "peft-adapter"). Those are null; its PEFT config is its own adapter_config.json where
        // it is still at the stored path.
        if stored == "evaluated" {
            for key in ["epochs", "max_steps", "batch_size", "optimizer", "lr", "lr_secondary", "weight_decay", "eps", "beta1", "beta2",
                        "schedule", "warmup_ratio", "warmup_steps", "clip_norm", "backbone_dropout", "dropout_rate", "init_from"] where config[key] != nil {
                config[key] = NSNull()
            }
            config["evaluated_only"] = "an adapter trained elsewhere and scored here: its training settings are not known here"
            // The method object holds the evaluation's defaults beside the adapter's shape (init,
            // m, s of no adapter): the adapter's own config is `peft_config`.
            config["method"] = NSNull()
            if let p = config["protocol"] as? String { config["protocol"] = "\(p) (evaluation settings only)" }
            let path = TrainConfig.pathPart((config["adapter"] as? String) ?? "")
            let adapterConfig = FileManager.default.contents(atPath: (path as NSString).appendingPathComponent("adapter_config.json"))
                .flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }
            peftConfig = adapterConfig ?? ["peft_type": NSNull(), "adapter": path]
        }
        let train = runMetrics["train_seconds"] ?? epochs.reduce(0.0) { $0 + ($1["seconds"]?.double ?? 0) }
        let total = train + (runMetrics["eval_seconds"] ?? 0)
        var metrics: [[String: Any]] = epochs.map { e in
            let epoch = e["epoch"]?.int ?? 0
            var m: [String: Any] = ["epoch": epoch, "step": e["step"]?.int ?? 0, "train loss": e["train_loss"]?.double ?? NSNull(),
                                    "train samples": trainExamples.map { $0 * epoch } ?? NSNull(), "train total tokens": NSNull()]
            if let j = e["metrics_json"]?.text, let o = try? JSONSerialization.jsonObject(with: Data(j.utf8)) as? [String: Any] {
                for (k, v) in o { m[k] = v }
                m["valid accuracy"] = (o[metric] as? Double).map { $0 / 100 } ?? NSNull()
            }
            return m
        }
        if var last = metrics.popLast() ?? (status == "success" ? ["step": 0, "train loss": NSNull(), "train samples": 0, "train total tokens": NSNull()] : nil) {
            last["test accuracy"] = best[metric].map { $0 / 100 } ?? NSNull()
            last["test metric"] = stored == "evaluated"
                ? "\(metric): the adapter's one evaluation on the reported split (no epoch selection here), as a fraction"
                : "\(metric): best epoch on the reported split (validation under the default protocol), as a fraction"
            metrics.append(last)
        }
        let hashes = (r["data_hashes"]?.text).flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) } ?? NSNull()
        return [
            "run_info": ["created_at": r["created_at"]?.text ?? "", "total_time": total, "experiment_name": r["cell"]?.text ?? "",
                         "peft_branch": "promptrepro", "train_config": config, "peft_config": peftConfig,
                         "error_msg": r["error"]?.text ?? ""].merging(gridPointOf.map { ["grid_point_of": $0] } ?? [:]) { a, _ in a } as [String: Any],
            "train_info": ["status": status, "promptrepro_status": stored, "metrics": metrics,
                           "num_trainable_params": r["trainable_params"]?.int ?? NSNull(),
                           "num_total_params": totalParams.map { $0 as Any } ?? NSNull(), "train_time": train,
                           "accelerator_memory_reserved_avg": NSNull(), "accelerator_memory_max": NSNull(), "accelerator_memory_reserved_99th": NSNull(),
                           "peak_rss_bytes": runMetrics["peak_rss_bytes"].map { Int($0) as Any } ?? NSNull(),
                           "file_size": runMetrics["artifact_bytes"].map { Int($0) as Any } ?? NSNull(), "seed": r["seed"]?.int ?? 0] as [String: Any],
            "meta_info": ["model_info": ["model": r["model"]?.text ?? "", "loaded": r["model_spec"]?.text ?? "", "sha256": r["weights_sha256"]?.text ?? "",
                                         // The embedded random-weight backbone: numbers that test the pipeline and reproduce nothing.
                                         "smoke": r["profile"]?.text == "smoke" || (r["model_spec"]?.text ?? "").hasPrefix("embedded:"),
                                         "profile": r["profile"]?.text ?? ""] as [String: Any],
                          "dataset_info": ["task": r["task"]?.text ?? "", "k": r["k"]?.int ?? NSNull(), "manifest": r["manifest"]?.text ?? "",
                                           "data_hashes": hashes] as [String: Any],
                          // PEFT's reader takes these five versions; none of those packages runs here.
                          "package_info": ["promptrepro": r["tool_version"]?.text ?? "", "git_commit": r["git_commit"]?.text ?? "",
                                           "peft-version": NSNull(), "transformers-version": NSNull(), "datasets-version": NSNull(),
                                           "torch-version": NSNull(), "bitsandbytes-version": NSNull()] as [String: Any],
                          "system_info": ["host": r["host"]?.text ?? "", "threads": r["threads"]?.int ?? NSNull()] as [String: Any]] as [String: Any],
        ]
    }
}

/// The files an lm-eval export wrote into a folder.
public enum LMEvalExportFiles {
    /// Removes the `results_*.json` files under `dir` (directly, the layout before 2026-12-08, or
    /// one folder down, lm-eval's) that an earlier `export --format lm-eval` of `spec` and
    /// `profile` wrote (`config.model` "promptrepro" with that spec and profile), and the folders
    /// this empties; every other file stays. Returns how many files went. A missing `dir` removes
    /// nothing; a file that cannot be removed throws, naming it.
    public static func removeEarlier(in dir: String, spec: String, profile: String) throws -> Int {
        let fm = FileManager.default
        guard let top = try? fm.contentsOfDirectory(atPath: dir) else { return 0 }
        var removed = 0
        func isOurs(_ path: String) -> Bool {
            guard let data = fm.contents(atPath: path),
                  let config = ((try? JSONSerialization.jsonObject(with: data)) as? [String: Any])?["config"] as? [String: Any] else { return false }
            return config["model"] as? String == "promptrepro" && config["spec"] as? String == spec && config["profile"] as? String == profile
        }
        func isResults(_ name: String) -> Bool { name.hasPrefix("results_") && name.hasSuffix(".json") }
        for entry in top.sorted() {
            let path = (dir as NSString).appendingPathComponent(entry)
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: path, isDirectory: &isDir) else { continue }
            if !isDir.boolValue {
                if isResults(entry), isOurs(path) { try remove(path); removed += 1 }
                continue
            }
            guard let files = try? fm.contentsOfDirectory(atPath: path) else { continue }
            var left = files.count
            for f in files.sorted() where isResults(f) {
                let file = (path as NSString).appendingPathComponent(f)
                if isOurs(file) { try remove(file); removed += 1; left -= 1 }
            }
            if left == 0, files.count > 0 { try? fm.removeItem(atPath: path) }
        }
        return removed
    }

    static func remove(_ path: String) throws {
        do { try FileManager.default.removeItem(atPath: path) } catch {
            throw StoreError("\(path): could not remove this file of an earlier lm-eval export (\(error.localizedDescription))")
        }
    }
}
