// Results in the formats other tools read:
// * lm-evaluation-harness: one results JSON per spec/profile/variant/model column with `results`
//   (per task: "<metric>,none" and "<metric>_stderr,none", the standard error of the mean over
//   seeds), `versions` (the task YAML's version), `n-samples` (validation examples scored) and
//   `config` (model, spec, profile, seeds) — lm_eval/result_schema.py's layout;
// * PEFT's method_comparison: one JSON per run with `run_info` (created_at, total_time,
//   experiment_name, train_config, peft_config, error_msg), `train_info` (status, metrics per
//   evaluation, num_trainable_params, num_total_params, train_time, file_size) and `meta_info`
//   (model, dataset and package information) — method_comparison/MetaMathQA/results/*.json.
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
        for c in cells where c.variant == variant && c.model == model {
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
        return ["results": results, "versions": vers, "n-samples": n, "config": config]
    }

    /// One run as PEFT method_comparison's per-run JSON.
    /// `methodKeys`: the method config keys the run's method reads (`TuningMethod.configKeys`);
    /// `peft_config` lists only those (DPT's listed LoRA's alpha and DePT's m and s); nil: all.
    public static func peftBench(run r: [String: SQLiteDB.Value], epochs: [[String: SQLiteDB.Value]], totalParams: Int?, artifactBytes: Int?,
                                 methodKeys: Set<String>? = nil, gridPointOf: String? = nil) -> [String: Any] {
        let config = (try? JSONSerialization.jsonObject(with: Data((r["config_json"]?.text ?? "{}").utf8))) ?? [:]
        var method = (config as? [String: Any])?["method"] as? [String: Any] ?? [:]
        if let keys = methodKeys { method = method.filter { keys.contains($0.key) || $0.key == "method" || ($0.key == "init_tokens" && keys.contains("init")) } }
        let train = epochs.reduce(0.0) { $0 + ($1["seconds"]?.double ?? 0) }
        let metrics: [[String: Any]] = epochs.map { e in
            var m: [String: Any] = ["epoch": e["epoch"]?.int ?? 0, "step": e["step"]?.int ?? 0, "train loss": e["train_loss"]?.double ?? NSNull()]
            if let j = e["metrics_json"]?.text, let o = try? JSONSerialization.jsonObject(with: Data(j.utf8)) as? [String: Any] { for (k, v) in o { m[k] = v } }
            return m
        }
        return [
            "run_info": ["created_at": r["created_at"]?.text ?? "", "total_time": train, "experiment_name": r["cell"]?.text ?? "",
                         "peft_branch": "promptrepro", "train_config": config, "peft_config": method,
                         "error_msg": r["error"]?.text ?? ""].merging(gridPointOf.map { ["grid_point_of": $0] } ?? [:]) { a, _ in a } as [String: Any],
            "train_info": ["status": r["status"]?.text ?? "", "metrics": metrics, "num_trainable_params": r["trainable_params"]?.int ?? NSNull(),
                           "num_total_params": totalParams.map { $0 as Any } ?? NSNull(), "train_time": train,
                           "file_size": artifactBytes.map { $0 as Any } ?? NSNull(), "seed": r["seed"]?.int ?? 0] as [String: Any],
            "meta_info": ["model_info": ["model": r["model"]?.text ?? "", "loaded": r["model_spec"]?.text ?? "", "sha256": r["weights_sha256"]?.text ?? "",
                                         // The embedded random-weight backbone: numbers that test the pipeline and reproduce nothing.
                                         "smoke": r["profile"]?.text == "smoke" || (r["model_spec"]?.text ?? "").hasPrefix("embedded:"),
                                         "profile": r["profile"]?.text ?? ""] as [String: Any],
                          "dataset_info": ["task": r["task"]?.text ?? "", "k": r["k"]?.int ?? NSNull(), "manifest": r["manifest"]?.text ?? "",
                                           "data_hashes": r["data_hashes"]?.text ?? ""] as [String: Any],
                          "package_info": ["promptrepro": r["tool_version"]?.text ?? "", "git_commit": r["git_commit"]?.text ?? ""],
                          "system_info": ["host": r["host"]?.text ?? "", "threads": r["threads"]?.int ?? NSNull()] as [String: Any]] as [String: Any],
        ]
    }
}
