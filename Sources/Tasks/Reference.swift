// What zero skill scores, and which outputs name no label (issue #20 items 4–5).
//
// Label outputs. For each validation example, the outputs that name each label under a template
// set: the verbaliser's targets when the set has a closed label set ("0"/"1"/…, or words); else
// what the task's metric declares (`MetricEntry.generated`): WSC's wsc_simple with a generated
// referent (DPT): [a non-referent, the referent] for labels [false, true], as T5's rule reads
// them; the SQuAD metrics (ReCoRD): the passage's entities (each query its own labels).
//
// Majority class: the most frequent label among the scored validation examples (ties: the first
// label in the task's label order), predicted for every example and scored by `Metrics.score`,
// so each metric's own rule applies. ReCoRD has no label shared across queries: no majority row.
//
// Uniform chance: the exact expected score when every prediction is drawn independently and
// uniformly from the example's label outputs, by each metric's registry aggregation. Means over
// examples (accuracy, wsc_simple, SQuAD EM/F1; weighted: per-row, label-1 only): the mean over
// examples of the mean over outputs of the one-example score (accuracy: 100/C). F1 of a class (macro-F1, MultiRC F1a) is 2·TP/(n_c + TP + FP) with
// TP ~ Bin(n_c, 1/C) and FP ~ Bin(n − n_c, 1/C) independent: summed exactly over both. MultiRC EM
// is the mean over questions of (1/2)^rows. Nothing is sampled.
//
// Invalid outputs (`invalidFraction`): a prediction that names no label — with a verbaliser, a
// stripped output that is none of its targets; else the metric's rule: ReCoRD, an output equal
// (after SQuAD normalisation, as the metric compares) to none of the passage's entities; WSC generating the referent, an
// output that is empty once determiners are dropped (wsc_simple's −1: it decides nothing; any
// other text reads as "referent" or "not the referent"). Other sets: no rule (nil).
import Foundation
import Support

public enum ReferenceScores {
    /// WSC (generated referent): the output that stands for label false, a phrase no referent contains.
    static let nonReferent = MetricRegistry.nonReferent

    /// The outputs naming each label of `e` (index = label): the verbaliser's targets, else the
    /// task's metric rule for generated outputs (`GeneratedOutputs`); nil when there are none.
    static func labelOutputs(_ def: TaskDefinition, verbalizer: [String]?, _ e: Example) -> [String]? {
        if let verbalizer { return verbalizer }
        return Metrics.generatedOutputs(def)?.outputs(e)
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
        let classes = def.labels?.count ?? 0
        /// Mean over `e`'s outputs of 100 × the statistic `k` of `entry` (0 without outputs).
        func expected(_ entry: MetricEntry, _ i: Int, _ k: Int) -> Double {
            var sum = 0.0
            for o in outs[i].map(pyStrip) {
                let row = MetricRow(example: examples[i], prediction: o, label: verbalizer?.firstIndex(of: o), verbalized: verbalizer != nil, classes: classes)
                sum += 100 * entry.stats(row)[k]
            }
            return outs[i].isEmpty ? 0 : sum / Double(outs[i].count)
        }
        var out: [String: Double] = [:]
        for m in def.metrics {
            let entry = try Metrics.entry(def, m, set: set)
            switch entry.aggregation {
            case .mean:
                var sum = 0.0
                for i in examples.indices { sum += expected(entry, i, 0) }
                out[m.name] = sum / Double(examples.count)
            case .weightedMean:  // the weight does not depend on the prediction
                var sum = 0.0, weight = 0.0
                for i in examples.indices {
                    let row = MetricRow(example: examples[i], prediction: "", label: nil, verbalized: verbalizer != nil, classes: classes)
                    let w = entry.stats(row)[1]
                    sum += w * expected(entry, i, 0)
                    weight += w
                }
                out[m.name] = weight == 0 ? 0 : sum / weight
            case .f1(let positive):  // every output one label: p = 1/C
                let f1s = (positive.map { [$0] } ?? Array(0..<classes)).map { c -> Double in
                    let nc = examples.filter { $0.label == c }.count
                    return expectedF1(positives: nc, negatives: examples.count - nc, p: 1 / Double(classes))
                }
                out[m.name] = 100 * f1s.reduce(0, +) / Double(max(f1s.count, 1))
            case .groupAllCorrect:  // one right output of C per row
                var rows: [String: Int] = [:], order: [String] = []
                for e in examples {
                    let g = e.group ?? "\(e.id)"
                    if rows[g] == nil { order.append(g) }
                    rows[g, default: 0] += 1
                }
                out[m.name] = 100 * order.map { pow(1 / Double(classes), Double(rows[$0]!)) }.reduce(0, +) / Double(order.count)
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
    /// Whether `invalidFraction` needs the examples for `def` (its generated-output rule reads them).
    public static func invalidRuleReadsExamples(_ def: TaskDefinition) -> Bool {
        generatedOutputs(def)?.readsExample == true
    }

    /// Fraction (0–1) of `predictions` that name no label (rules at the top of Reference.swift);
    /// nil when the template set has no rule, or when the rule reads the examples (ReCoRD's
    /// entities) and `examples` is nil.
    public static func invalidFraction(_ def: TaskDefinition, set: TemplateSet, examples: [Example]?, predictions: [String]) throws -> Double? {
        guard !predictions.isEmpty else { return nil }
        let preds = predictions.map(pyStrip)
        let invalid: Int
        if let v = try def.template(set).verbalizer(labels: def.labels) {
            // Code points, as the scorer (Metrics.rows) and Python compare: Swift's == equates
            // canonically equivalent strings ("K" and U+212A KELVIN SIGN).
            let targets = Set(v.map { Array($0.unicodeScalars) })
            invalid = preds.filter { !targets.contains(Array($0.unicodeScalars)) }.count
        } else if let rule = Metrics.generatedOutputs(def) {
            if rule.readsExample {
                guard let examples, examples.count == preds.count else { return nil }
                invalid = zip(examples, preds).filter { rule.invalid($0, $1) }.count
            } else {
                invalid = preds.filter { rule.invalid(nil, $0) }.count
            }
        } else {
            return nil
        }
        return Double(invalid) / Double(preds.count)
    }
}
