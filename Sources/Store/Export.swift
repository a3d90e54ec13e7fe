// Results export: Markdown overview, CSV (one row per cell × kind × metric), and JSON in the
// spirit of lm-evaluation-harness (config, versions, per-task results, per-seed values).
import Foundation
import Tasks

public enum ResultsExport {
    static func fmt(_ s: Stat?) -> String {
        guard let s, s.n > 0 else { return "—" }
        // One seed has no sample standard deviation: the mean alone (a "± 0.00" would claim one).
        guard let sd = s.sampleStd else { return String(format: "%.2f (n=%d)", s.mean, s.n) }
        return String(format: "%.2f ± %.2f (n=%d)", s.mean, sd, s.n)
    }

    /// A Markdown table cell: `|` would end the cell (cell ids are "variant|task|model|k").
    public static func mdCell(_ s: String) -> String { s.replacingOccurrences(of: "|", with: "\\|") }

    public static func markdown(_ cells: [CellResult], spec: String, profile: String) -> String {
        var out = "# \(spec) — \(profile) profile\n\n"
        if profile == "smoke" { out += "_Smoke profile: embedded random-weight backbone; these numbers test the pipeline and reproduce nothing._\n\n" }
        out += "Validation score in the task's selection metric at the best epoch (picked by that metric, unless the cell's protocol variant below names another) and at the last epoch, mean ± sample std over seeds."
        out += " — no finished run; ✗ failed k/n: k of the cell's n runs failed or diverged and are left out of the mean;"
        out += " invalid: mean over seeds of the % of the best epoch's validation outputs that name no label (— no rule for the task's outputs).\n\n"
        out += "| cell | seeds | metric | best | last | invalid (best) | diverged seeds | failed |\n|---|---|---|---|---|---|---|---|\n"
        for c in cells {
            let metric = (try? TaskRegistry.definition(c.task).selectionMetric) ?? "accuracy"
            func score(_ s: Stat?) -> String { (s?.n ?? 0) > 0 ? fmt(s) : (c.failureMarker ?? "—") }
            let invalid = c.invalidFraction?["best"].map { String(format: "%.1f%%", 100 * $0.mean) } ?? "—"
            let row = [c.cell, "\(c.seeds.count)", metric, score(c.best[metric]), score(c.last[metric]), invalid,
                       c.divergedSeeds.map(String.init).joined(separator: ","), c.failureMarker ?? ""]
            out += "|" + row.map { " \(mdCell($0)) |" }.joined() + "\n"
        }
        let labelled = cells.filter { $0.protocolLabel != nil }
        if !labelled.isEmpty {
            out += "\nProtocol variants (every other cell follows the default protocol: one seed for sample and training, best epoch selected on the reported validation split, greedy generation; the last two as DPT's released code does, none stated by the papers):\n\n"
            for c in labelled { out += "- \(mdCell(c.cell)): \(c.protocolLabel!)\n" }
        }
        let crossed = cells.compactMap { c -> (CellResult, String, VarianceComponents)? in
            let metric = (try? TaskRegistry.definition(c.task).selectionMetric) ?? "accuracy"
            return c.varianceComponents(metric).map { (c, metric, $0) }
        }
        if !crossed.isEmpty {
            out += "\nVariance components of the best-epoch score (one-way random effects over few-shot samples, ANOVA estimator; sd in points):\n\n"
            out += "| cell | metric | samples | runs | sd between samples | sd within sample (seed) | share of variance from the sample |\n|---|---|---|---|---|---|---|\n"
            for (c, metric, v) in crossed {
                out += "| \(mdCell(c.cell)) | \(metric) | \(v.samples) | \(v.runs) | " + String(format: "%.2f | %.2f | ", v.between.squareRoot(), v.within.squareRoot())
                    + (v.sampleShare.map { String(format: "%.0f%%", 100 * $0) } ?? "—") + " |\n"
            }
        }
        return out
    }

    /// Efficiency columns of `results --efficiency`: run_metrics name, header, divisor (unit), format.
    static let efficiencyColumns: [(name: String, header: String, divisor: Double, format: String)] = [
        ("trainable_params", "trainable params", 1, "%.0f"), ("peak_rss_bytes", "peak RSS (MiB)", 1_048_576, "%.1f"),
        ("seconds_per_step", "s/step", 1, "%.3f"), ("flops_per_step", "GFLOP/step", 1e9, "%.3f"),
        ("train_seconds", "train s", 1, "%.2f"), ("eval_seconds", "eval s", 1, "%.2f"), ("artifact_bytes", "artifact (KiB)", 1024, "%.1f"),
    ]

    /// Per cell, the mean over seeds of each efficiency measurement (run_metrics); "—" where the
    /// cell's runs have none (runs recorded before them).
    public static func efficiencyMarkdown(_ cells: [CellResult]) -> String {
        var out = "\nEfficiency per run, mean over the cell's finished seeds (peak RSS: the run's process; train s excludes evaluation).\n\n"
        out += "| cell | seeds | " + efficiencyColumns.map(\.header).joined(separator: " | ") + " |\n"
        out += "|---|---|" + String(repeating: "---|", count: efficiencyColumns.count) + "\n"
        for c in cells {
            let vals = efficiencyColumns.map { col in
                c.extras?[col.name].map { String(format: col.format, $0.mean / col.divisor) } ?? "—"
            }
            out += "| \(mdCell(c.cell)) | \(c.seeds.count) | " + vals.joined(separator: " | ") + " |\n"
        }
        return out
    }

    /// One CSV field as RFC 4180 writes it: quoted (its quotes doubled) when it holds a comma, a
    /// quote or a line break, else as it is.
    public static func csvField(_ s: String) -> String {
        s.unicodeScalars.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
    }

    /// One row per cell × kind × metric; with `extras`, also kind "extras" rows (run_metrics, raw units).
    /// With `profile`, every row ends with it, `smoke` (true: the embedded random-weight backbone,
    /// numbers that reproduce nothing) and `grid_point_of` (the searched variant whose grid point
    /// the row's variant is, from `gridPoints`, the spec's `gridPointOwners`; empty for any other
    /// variant), so a row read on its own still says what it is.
    /// Text fields are quoted as RFC 4180 says (`csvField`): a grid point of a search over two
    /// keys is named `NAME@a=1,b=2`, and its unquoted rows had two fields more than the header.
    public static func csv(_ cells: [CellResult], extras: Bool = false, profile: String? = nil, gridPoints: [String: String] = [:]) -> String {
        var out = "cell,variant,method,task,model,k,kind,metric,n,mean,std,pop_std,min,max,values" + (profile == nil ? "" : ",profile,smoke,grid_point_of") + "\n"
        for c in cells {
            let tail = profile.map { ",\(csvField($0)),\($0 == "smoke"),\(csvField(gridPoints[c.variant] ?? ""))" } ?? ""
            let head = [c.cell, c.variant, c.method, c.task, c.model].map(csvField).joined(separator: ",")
            for (kind, scores) in [("best", c.best), ("last", c.last)] + (extras ? [("extras", c.extras ?? [:])] : []) {
                var stats = scores
                if kind != "extras" { stats["invalid_fraction"] = c.invalidFraction?[kind] }  // a fraction (0–1), not a score
                for (m, s) in stats.sorted(by: { $0.key < $1.key }) {
                    let vals = s.values.map { String(format: "%.4f", $0) }.joined(separator: ";")
                    out += "\(head),\(c.k.map(String.init) ?? "full"),\(kind),\(csvField(m)),\(s.n),"
                    out += String(format: "%.4f,%@,%.4f,%.4f,%.4f,", s.mean, s.sampleStd.map { String(format: "%.4f", $0) } ?? "", s.populationStd, s.min, s.max)
                    out += "\(vals)\(tail)\n"
                }
            }
        }
        return out
    }

    /// lm-eval-style JSON of `cells`; a cell whose variant is one of `gridPoints` (grid point →
    /// searched variant, the spec's `gridPointOwners`) carries `grid_point_of`.
    public static func json(_ cells: [CellResult], spec: String, profile: String, gridPoints: [String: String] = [:]) throws -> String {
        var results: [String: Any] = [:], versions: [String: Int] = [:]
        for c in cells {
            versions[c.task] = (try? TaskRegistry.definition(c.task).version) ?? 0
            var entry: [String: Any] = ["variant": c.variant, "method": c.method, "task": c.task, "model": c.model,
                                        "k": c.k as Any, "seeds": c.seeds, "trainable_params": c.trainableParams as Any,
                                        "diverged_seeds": c.divergedSeeds,
                                        // Counted runs by status ("done", "failed", …): a failed seed is
                                        // told from one never run, which `seeds` alone did not.
                                        "runs_by_status": c.statuses]
            for (kind, stats) in [("best", c.best), ("last", c.last)] {
                var m: [String: Any] = [:]
                for (name, s) in stats {
                    m[name] = s.mean
                    m["\(name)_std"] = s.sampleStd as Any
                    m["\(name)_pop_std"] = s.populationStd
                    m["\(name)_per_seed"] = s.values
                }
                if let f = c.invalidFraction?[kind] {  // fraction (0–1) of outputs that name no label
                    m["invalid_fraction"] = f.mean
                    m["invalid_fraction_per_seed"] = f.values
                }
                entry[kind] = m
            }
            if let label = c.protocolLabel { entry["protocol"] = label }
            // A search's grid point (trained on the search seeds, chosen between on the dev split):
            // not a method to read or rank by its scores here.
            if let owner = gridPoints[c.variant] { entry["grid_point_of"] = owner }
            // The setups the seeds ran under (kernel, OpenBLAS, threads), per seed where recorded:
            // an export of a merged store said nothing of a mix the store's reads named.
            if let runs = c.runNumerics, !runs.isEmpty {
                entry["numerics_per_seed"] = c.replicates.map { rep -> Any in
                    runs[PlannedRuns.key(cell: c.cell, seed: rep.seed, sampleSeed: rep.sampleSeed)] ?? NSNull()
                }
                if let mixed = c.mixedNumerics { entry["mixed_numerics"] = mixed }
            }
            // Runs a sweep adopted (copied from a finished run of the same identity elsewhere),
            // per seed: where each ran, null for runs trained in this cell.
            if let adopted = c.runAdoptedFrom, !adopted.isEmpty {
                entry["adopted_from_per_seed"] = c.replicates.map { rep -> Any in
                    adopted[PlannedRuns.key(cell: c.cell, seed: rep.seed, sampleSeed: rep.sampleSeed)] ?? NSNull()
                }
            }
            if let samples = c.sampleSeeds {
                entry["sample_seeds"] = samples
                let metric = (try? TaskRegistry.definition(c.task).selectionMetric) ?? "accuracy"
                if let v = c.varianceComponents(metric) {
                    entry["variance_components"] = ["metric": metric, "estimator": "one-way random effects, ANOVA (method of moments), truncated at 0",
                                                    "samples": v.samples, "runs": v.runs, "between_sample": v.between, "within_sample": v.within]
                }
            }
            if let x = c.extras {  // run_metrics: mean over seeds and per-seed values (docs/formats.md)
                var m: [String: Any] = [:]
                for (name, s) in x { m[name] = s.mean; m["\(name)_per_seed"] = s.values }
                entry["extras"] = m
            }
            results[c.cell] = entry
        }
        let obj: [String: Any] = ["config": ["spec": spec, "profile": profile, "smoke": profile == "smoke"], "versions": versions,
                                  "results": results, "n-seeds": Dictionary(uniqueKeysWithValues: cells.map { ($0.cell, $0.seeds.count) })]
        return String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .prettyPrinted]), as: UTF8.self) + "\n"
    }
}
