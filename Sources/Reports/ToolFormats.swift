// Results in the formats other tools read:
// * lm-evaluation-harness: one results JSON per spec/profile/variant/model column with `results`
//   (per task: "<metric>,none" and "<metric>_stderr,none", the standard error of the mean over
//   seeds), `versions` (the task YAML's version), `n-samples` (validation examples scored) and
//   `config` (model, spec, profile, seeds) — lm_eval/result_schema.py's layout;
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

public enum ToolFormats {
    /// lm-eval-harness-shaped results for the cells of one variant and model column (the caller
    /// passes one k's cells where the spec has several, and `k`, written as `config.k`).
    public static func lmEval(cells: [CellResult], variant: String, model: String, spec: String, profile: String,
                              versions: [String: Int], samples: [String: Int], originals: [String: Int] = [:], modelSpec: String,
                              k: Int? = nil, gridPointOf: String? = nil) -> [String: Any] {
        var results: [String: Any] = [:], vers: [String: Any] = [:], n: [String: Any] = [:], seeds: [String: Any] = [:]
        var better: [String: Any] = [:]
        for c in cells where c.variant == variant && c.model == model {
            // lm-eval's `higher_is_better` (per task, per metric; make_table prints ↑/↓ from it):
            // each stored score's registry direction.
            if let def = try? TaskRegistry.definition(c.task) {
                var dir: [String: Bool] = [:]
                for m in def.metrics { if let e = try? m.entry { dir[m.name] = e.higherIsBetter } }
                better[c.task] = dir
            }
            // How many seeds each task's mean and stderr cover, and the cell's runs left out of them.
            var s: [String: Any] = ["n": c.best[(try? TaskRegistry.definition(c.task))?.selectionMetric ?? ""]?.n ?? c.seeds.count]
            let left = c.statuses.filter { !["done", "evaluated"].contains($0.key) }
            if !left.isEmpty { s["not_counted"] = left }
            seeds[c.task] = s
            var r: [String: Any] = ["alias": c.task]
            for (metric, st) in c.best.sorted(by: { $0.key < $1.key }) {
                r["\(metric),none"] = st.mean / 100  // lm-eval reports fractions
                r["\(metric)_stderr,none"] = st.n > 1 ? (st.sampleStd ?? 0) / Double(st.n).squareRoot() / 100 : "N/A"
            }
            results[c.task] = r
            vers[c.task] = versions[c.task] ?? 0
            // original: the validation split's examples; effective: those scored (fewer under eval_limit).
            n[c.task] = ["original": originals[c.task].map { $0 as Any } ?? NSNull(), "effective": samples[c.task] ?? 0]
        }
        let mine = cells.filter { $0.variant == variant && $0.model == model }
        var config: [String: Any] = ["model": "promptrepro", "model_args": "pretrained=\(modelSpec),variant=\(variant)", "spec": spec, "profile": profile,
                                     // The cells' own protocol (`TrainConfig.variantLabel`): a val-half or train-dev run was once labelled the paper's protocol.
                                     "selection": Set(mine.map { c -> String in
                                         let parts = (c.protocolLabel ?? "").components(separatedBy: "; ").filter { $0.hasPrefix("selection:") || $0.contains("best epoch by") }
                                         return parts.isEmpty ? "best epoch on the validation split (default protocol)" : parts.joined(separator: "; ")
                                     }).sorted().joined(separator: " / ") + "; mean over seeds",
                                     "protocol": Set(mine.map { $0.protocolLabel ?? "default protocol" }).sorted().joined(separator: " / "),
                                     "templates": Set(mine.compactMap(\.templates)).sorted(),
                                     "stderr": "standard error of the mean over seeds (sample std / sqrt(seeds)), not lm-eval's standard error over examples",
                                     "seeds": seeds,
                                     "smoke": profile == "smoke" || modelSpec.hasPrefix("embedded:")]
        if let k { config["k"] = k }
        // A search's grid point (the searched variant's name): search runs, not a method's results.
        if let gridPointOf { config["grid_point_of"] = gridPointOf }
        return ["results": results, "versions": vers, "n-samples": n, "config": config, "higher_is_better": better]
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
        let peftConfig: Any = name == "ft" ? NSNull() : method.merging(["peft_type": peftType]) { a, _ in a }
        config["model_id"] = r["model_spec"]?.text ?? r["model"]?.text ?? ""
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
            last["test metric"] = "\(metric): best epoch on the reported split (validation under the default protocol), as a fraction"
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
