// What zero skill scores, and which outputs name no label (issue #20 items 4–5).
//
// Label outputs. For each validation example, the outputs that name each label under a template
// set: the verbaliser's targets when the set has a closed label set ("0"/"1"/…, or words); WSC
// with a generated referent (DPT): [a non-referent, the referent] for labels [false, true], as
// T5's wsc_simple rule reads them; ReCoRD: the passage's entities (each query its own labels).
//
// Majority class: the most frequent label among the scored validation examples (ties: the first
// label in the task's label order), predicted for every example and scored by `Metrics.score`,
// so each metric's own rule applies. ReCoRD has no label shared across queries: no majority row.
//
// Uniform chance: the exact expected score when every prediction is drawn independently and
// uniformly from the example's label outputs. Accuracy-like metrics are means over examples, so
// the expectation is the mean over examples of the mean over outputs of the one-example score
// (accuracy: 100/C). F1 of a class (macro-F1, MultiRC F1a) is 2·TP/(n_c + TP + FP) with
// TP ~ Bin(n_c, 1/C) and FP ~ Bin(n − n_c, 1/C) independent: summed exactly over both. MultiRC EM
// is the mean over questions of (1/2)^rows. Nothing is sampled.
//
// Invalid outputs (`invalidFraction`): a prediction that names no label — with a verbaliser, a
// stripped output that is none of its targets; ReCoRD, an output equal (after SQuAD normalisation,
// as the metric compares) to none of the passage's entities; WSC generating the referent, an
// output that is empty once determiners are dropped (wsc_simple's −1: it decides nothing; any
// other text reads as "referent" or "not the referent"). Other sets: no rule (nil).
import Foundation
import Support

public enum ReferenceScores {
    /// WSC (generated referent): the output that stands for label false, a phrase no referent contains.
    static let nonReferent = "<no referent>"

    /// The outputs naming each label of `e` (index = label), or nil when the set has none.
    static func labelOutputs(_ def: TaskDefinition, verbalizer: [String]?, _ e: Example) -> [String]? {
        if let verbalizer { return verbalizer }
        if def.reader == "superglue_record" { return e.entities }
        if def.metrics.contains("accuracy_label1") { return [nonReferent, e.referent ?? ""] }
        return nil
    }

    /// Majority-class scores on `examples` (every metric of the task), nil without a fixed label set.
    public static func majority(_ def: TaskDefinition, set: TemplateSet, examples: [Example]) throws -> [String: Double]? {
        guard !examples.isEmpty, let labels = def.labels else { return nil }
        let verbalizer = try def.template(set).verbalizer(labels: labels)
        var counts = [Int](repeating: 0, count: labels.count)
        for e in examples { if let l = e.label, l < counts.count { counts[l] += 1 } }
        let top = counts.indices.max { counts[$0] < counts[$1] || (counts[$0] == counts[$1] && $0 > $1) }!  // ties: first label
        var preds: [String] = []
        for e in examples {
            guard let outs = labelOutputs(def, verbalizer: verbalizer, e), top < outs.count else { return nil }
            preds.append(outs[top])
        }
        return try Metrics.score(def, set: set, examples: examples, predictions: preds)
    }

    /// Exact expected scores of uniform random label outputs on `examples`, nil without label outputs.
    public static func uniform(_ def: TaskDefinition, set: TemplateSet, examples: [Example]) throws -> [String: Double]? {
        guard !examples.isEmpty else { return nil }
        let verbalizer = try def.template(set).verbalizer(labels: def.labels)
        var outs: [[String]] = []
        for e in examples {
            guard let o = labelOutputs(def, verbalizer: verbalizer, e) else { return nil }
            outs.append(o)
        }
        /// Mean over `e`'s outputs of its one-example scores.
        func expected(_ i: Int) throws -> [String: Double] {
            var sum: [String: Double] = [:]
            for o in outs[i] {
                for (k, v) in try Metrics.score(def, set: set, examples: [examples[i]], predictions: [o]) { sum[k, default: 0] += v }
            }
            return sum.mapValues { $0 / Double(max(outs[i].count, 1)) }
        }
        var out: [String: Double] = [:]
        switch def.reader {
        case "superglue_multirc":
            let n1 = examples.filter { $0.label == 1 }.count
            out["f1a"] = 100 * expectedF1(positives: n1, negatives: examples.count - n1, p: 0.5)
            var rows: [String: Int] = [:]
            for e in examples { rows[e.group ?? "\(e.id)", default: 0] += 1 }
            out["em"] = 100 * rows.values.map { pow(0.5, Double($0)) }.reduce(0, +) / Double(rows.count)
        case "superglue_record":
            var sums: [String: Double] = [:]
            var rowWeight = 0.0
            for i in examples.indices {
                let w = Double(max(1, examples[i].answers.count))
                rowWeight += w
                let s = outs[i].isEmpty ? [:] : try expected(i)  // no entity to draw: scores 0
                for k in ["em", "f1"] {
                    sums[k, default: 0] += s[k] ?? 0
                    sums["\(k)_per_row", default: 0] += w * (s[k] ?? 0)
                }
            }
            out = ["em": sums["em"]! / Double(examples.count), "f1": sums["f1"]! / Double(examples.count),
                   "em_per_row": sums["em_per_row"]! / rowWeight, "f1_per_row": sums["f1_per_row"]! / rowWeight]
        default:
            var acc = 0.0, l1 = 0.0, l1Count = 0
            for i in examples.indices {
                let s = try expected(i)
                acc += s["accuracy"] ?? 0
                if examples[i].label == 1, let v = s["accuracy_label1"] { l1 += v; l1Count += 1 }
            }
            out["accuracy"] = acc / Double(examples.count)
            if def.metrics.contains("accuracy_label1") { out["accuracy_label1"] = l1Count == 0 ? 0 : l1 / Double(l1Count) }
            if def.metrics.contains("macro_f1"), let labels = def.labels {
                let C = labels.count
                let f1s = (0..<C).map { c -> Double in
                    let nc = examples.filter { $0.label == c }.count
                    return expectedF1(positives: nc, negatives: examples.count - nc, p: 1 / Double(C))
                }
                out["macro_f1"] = 100 * f1s.reduce(0, +) / Double(C)
            }
        }
        return out
    }

    /// E[2·TP / (n_c + TP + FP)] (0 when TP = 0) for TP ~ Bin(positives, p), FP ~ Bin(negatives, p)
    /// independent: the expected F1 of one class when each prediction is that class with probability p.
    public static func expectedF1(positives: Int, negatives: Int, p: Double) -> Double {
        let a = binomial(positives, p), b = binomial(negatives, p)
        var e = 0.0
        for tp in 1..<max(a.count, 1) where a[tp] > 0 {
            for fp in b.indices where b[fp] > 0 {
                e += a[tp] * b[fp] * 2 * Double(tp) / Double(positives + tp + fp)
            }
        }
        return e
    }

    /// Bin(n, p) probabilities of 0…n (log-space, so large n does not underflow the middle).
    static func binomial(_ n: Int, _ p: Double) -> [Double] {
        if p <= 0 || p >= 1 { return (0...n).map { k in (p <= 0 ? k == 0 : k == n) ? 1 : 0 } }  // a constant prediction
        var logFact = [0.0]  // log(k!) for k = 0…n
        for k in stride(from: 1, through: n, by: 1) { logFact.append(logFact[k - 1] + log(Double(k))) }
        let lp = log(p), lq = log1p(-p)
        return (0...n).map { k -> Double in
            let logChoose = logFact[n] - logFact[k] - logFact[n - k]
            return exp(logChoose + Double(k) * lp + Double(n - k) * lq)
        }
    }
}

extension Metrics {
    /// Fraction (0–1) of `predictions` that name no label (rules at the top of Reference.swift);
    /// nil when the template set has no rule, or for ReCoRD when `examples` (with entities) is nil.
    public static func invalidFraction(_ def: TaskDefinition, set: TemplateSet, examples: [Example]?, predictions: [String]) throws -> Double? {
        guard !predictions.isEmpty else { return nil }
        let preds = predictions.map(pyStrip)
        let invalid: Int
        if let v = try def.template(set).verbalizer(labels: def.labels) {
            let targets = Set(v)
            invalid = preds.filter { !targets.contains($0) }.count
        } else if def.reader == "superglue_record" {
            guard let examples, examples.count == preds.count else { return nil }
            invalid = zip(examples, preds).filter { e, p in
                let q = squadNormalize(p)
                return !(e.entities ?? []).contains { squadNormalize($0) == q }
            }.count
        } else if def.metrics.contains("accuracy_label1") {
            invalid = preds.filter { wscSimple(prediction: $0, referent: "") == -1 }.count
        } else {
            return nil
        }
        return Double(invalid) / Double(preds.count)
    }
}
