// `compare`: a new method (a spec variant or a method file) against stored runs of a baseline
// variant, or against published numbers, per task: mean ± std of both, Δ, Welch t-test p-value,
// bootstrap 95% CI of Δ over seeds, win/tie/loss, and a gate on the largest regression.
import Foundation
import Store
import Tasks

public struct ComparisonRow {
    public var task: String
    public var model: String
    public var new: [Double]
    public var baseline: [Double]      // per-seed values (stored), or [] against published
    public var baselineMean: Double
    public var delta: Double
    public var test: Statistics.Welch?
    public var ci: (Double, Double)
    public var verdict: String         // win | tie | loss
}

public enum Compare {
    /// Per-task comparison of `newVariant` against `baselineVariant` (stored) or published values.
    public static func rows(cells: [CellResult], newVariant: String, baselineVariant: String, published: [PublishedValue]?,
                            paper: String, table: String) -> [ComparisonRow] {
        var out: [ComparisonRow] = []
        for c in cells where c.variant == newVariant {
            let metric = (try? TaskRegistry.definition(c.task).selectionMetric) ?? "accuracy"
            guard let new = c.best[metric]?.values, !new.isEmpty else { continue }
            var base: [Double] = []
            var baseMean = Double.nan
            if let published {
                let modelLabel = ["t5-small": "T5-Small", "t5-base": "T5-Base", "t5-large": "T5-Large"][c.model] ?? c.model
                guard let v = published.first(where: { $0.paper == paper && $0.table == table && $0.method == baselineVariant
                    && ($0.model == modelLabel || $0.model == c.model) && $0.column == c.task })?.number else { continue }
                baseMean = v
            } else {
                guard let b = cells.first(where: { $0.variant == baselineVariant && $0.task == c.task && $0.model == c.model && $0.k == c.k }),
                      let vals = b.best[metric]?.values, !vals.isEmpty else { continue }
                base = vals
                baseMean = Statistics.mean(vals)
            }
            let delta = Statistics.mean(new) - baseMean
            let test = base.isEmpty ? Statistics.oneSample(new, against: baseMean) : Statistics.welch(new, base)
            let ci = Statistics.bootstrapCI(new, base, constant: baseMean)
            let verdict: String
            if let p = test?.p, p < 0.05 { verdict = delta > 0 ? "win" : "loss" } else if test == nil && (ci.0 > 0 || ci.1 < 0) {
                verdict = ci.0 > 0 ? "win" : "loss"
            } else { verdict = "tie" }
            out.append(ComparisonRow(task: c.task, model: c.model, new: new, baseline: base, baselineMean: baseMean, delta: delta,
                                     test: test, ci: ci, verdict: verdict))
        }
        return out
    }

    public static func markdown(_ rows: [ComparisonRow], new: String, baseline: String, against: String, maxRegression: Double?) -> String {
        func ms(_ v: [Double]) -> String {
            v.isEmpty ? "—" : String(format: "%.2f ± %.2f (n=%d)", Statistics.mean(v), Statistics.sampleVariance(v).squareRoot(), v.count)
        }
        var out = "# compare: \(new) vs \(baseline) (\(against))\n\n"
        out += "| task | model | \(new) | \(baseline) | Δ | t | p (Welch) | 95% CI of Δ (bootstrap) | verdict |\n|---|---|---|---|---|---|---|---|---|\n"
        for r in rows {
            let b = r.baseline.isEmpty ? String(format: "%.2f (published)", r.baselineMean) : ms(r.baseline)
            out += "| \(r.task) | \(r.model) | \(ms(r.new)) | \(b) | \(String(format: "%+.2f", r.delta)) | "
            out += (r.test.map { String(format: "%.3f", $0.t) } ?? "—") + " | " + (r.test.map { String(format: "%.4f", $0.p) } ?? "—") + " | "
            out += String(format: "[%+.2f, %+.2f]", r.ci.0, r.ci.1) + " | \(r.verdict) |\n"
        }
        let w = rows.filter { $0.verdict == "win" }.count, l = rows.filter { $0.verdict == "loss" }.count
        out += "\n**\(w) win / \(rows.count - w - l) tie / \(l) loss** over \(rows.count) tasks (win/loss: p < 0.05)."
        if let m = maxRegression {
            let worst = rows.map(\.delta).min() ?? 0
            out += " Largest regression \(String(format: "%+.2f", worst)) points; gate −\(m): \(worst < -m ? "FAILED" : "passed")."
        }
        return out + "\n"
    }
}
