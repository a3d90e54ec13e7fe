// Metric registry (house style §5, after lm-eval `lm_eval/api/metrics.py`): every metric a task can
// declare, by a unique id, with its direction, its aggregation and a per-example statistic
// (METHODS §4.4). A task YAML lists `metrics:` as registry ids, or as `{name: stored name, metric:
// id}` where the name results are stored under is not the id (MultiRC's "em" is
// `multirc_group_em`, ReCoRD's "em" is `squad_em`, WSC's "accuracy" is `wsc_simple`).
//
// Arithmetic is fixed so stored scores keep their bits: `.mean` = 100·Σs / max(n, 1), `.weightedMean`
// = 100·Σ(w·s) / max(Σw, 1), `.f1` = 100·Σ_c F1_c / C from summed counts, `.groupAllCorrect` =
// 100·(groups all correct / groups). Sums run in example order.
import Foundation
import Support

/// How a metric's per-example statistics become its score (percent).
public enum Aggregation: Equatable, Sendable {
    /// Mean over examples of s ∈ [0, 1]. Statistics: [s].
    case mean
    /// Σ w·s / Σ w: a weight-0 example does not count. Statistics: [s, w].
    case weightedMean
    /// Corpus-level F1 = 2·TP / (2·TP + FP + FN) (0 when TP = 0), averaged over classes; `positive`:
    /// the one class scored (binary F1), nil: every label class (macro). Statistics: [tp, fp, fn] per class.
    case f1(positive: Int?)
    /// Share of question groups (`Example.group`, else the example alone) whose every row has s = 1.
    /// Statistics: [s]. Not a sum over examples: no per-example bootstrap.
    case groupAllCorrect
}

/// One example as a metric sees it.
public struct MetricRow {
    public var example: Example
    /// The prediction, `.strip()`ped as DPT strips decoded text.
    public var prediction: String
    /// The prediction read back into a label index with the set's verbaliser (nil: no label, or no verbaliser).
    public var label: Int?
    /// Whether the template set's target names the label (false: generated text).
    public var verbalized: Bool
    /// Number of label classes of the task.
    public var classes: Int

    public init(example: Example, prediction: String, label: Int?, verbalized: Bool, classes: Int) {
        self.example = example; self.prediction = prediction; self.label = label; self.verbalized = verbalized; self.classes = classes
    }
}

/// What a metric says about generated outputs (sets without a verbaliser): the outputs that stand
/// for each label (index = label) or the candidates to draw from, and which outputs name no label.
public struct GeneratedOutputs: Sendable {
    public let outputs: @Sendable (Example) -> [String]?
    /// True when the output names no label; `readsExample`: the rule needs the example (else it gets nil).
    public let invalid: @Sendable (Example?, String) -> Bool
    public let readsExample: Bool
}

public struct MetricEntry: Sendable {
    public let id: String
    public let higherIsBetter: Bool
    public let aggregation: Aggregation
    /// Whether the metric reads predictions as labels (the template's target must be `{label_index}`/`{label_word}`).
    public let needsVerbalizer: Bool
    public let summary: String
    /// The statistics `aggregation` combines, for one example.
    public let stats: @Sendable (MetricRow) -> [Double]
    public let generated: GeneratedOutputs?
    /// The registry id of the metric this one re-weights or filters as a paper's released code did
    /// (ReCoRD per answer row, WSC's label-1 rows; METHODS.md), nil for the standard definitions.
    /// Tables name such a variant under a column that reports the standard one.
    public var variantOf: String? = nil

    /// The score from statistics summed over `count` examples (weighted means: summed (w·s, w));
    /// nil for `.groupAllCorrect`.
    public func value(_ sums: [Double], count: Int) -> Double? {
        switch aggregation {
        case .mean: return 100 * sums[0] / Double(max(count, 1))
        case .weightedMean: return 100 * sums[0] / max(sums[1], 1)
        case .f1:
            let classes = sums.count / 3
            guard classes > 0 else { return 0 }
            var total = 0.0
            for c in 0..<classes {
                let (tp, fp, fn) = (sums[3 * c], sums[3 * c + 1], sums[3 * c + 2])
                total += tp == 0 ? 0 : 2 * tp / (2 * tp + fp + fn)
            }
            return 100 * total / Double(classes)
        case .groupAllCorrect: return nil
        }
    }

    /// The score of `rows` (percent).
    public func score(_ rows: [MetricRow]) -> Double {
        switch aggregation {
        case .groupAllCorrect:
            var ok: [String: Bool] = [:], order: [String] = []
            for r in rows {
                let g = r.example.group ?? "\(r.example.id)"
                if ok[g] == nil { order.append(g); ok[g] = true }
                if stats(r)[0] != 1 { ok[g] = false }
            }
            return 100 * (order.isEmpty ? 0 : Double(order.filter { ok[$0]! }.count) / Double(order.count))
        case .weightedMean:
            var sws = 0.0, sw = 0.0
            for r in rows { let s = stats(r); sws += s[1] * s[0]; sw += s[1] }
            return value([sws, sw], count: rows.count)!
        case .mean, .f1:
            var sums: [Double] = []
            for r in rows {
                let s = stats(r)
                if sums.isEmpty { sums = s } else { for i in s.indices { sums[i] += s[i] } }
            }
            if sums.isEmpty { sums = aggregation == .mean ? [0] : [] }
            return value(sums, count: rows.count)!
        }
    }
}

public enum MetricRegistry {
    static func flag(_ b: Bool) -> Double { b ? 1 : 0 }

    /// ReCoRD: the answers a prediction is compared with ("<unk>" when a query has none).
    static func golds(_ e: Example) -> [String] { e.answers.isEmpty ? ["<unk>"] : e.answers }
    /// SQuAD EM / token F1, max over the gold answers; `\b` by `word` (`pyIsWordCharacter`: stdlib
    /// `re`, the official scripts; the per-row variants, DPT's code, use `regexModuleIsWordCharacter`).
    static func squadEM(_ r: MetricRow, word: (Unicode.Scalar) -> Bool = pyIsWordCharacter) -> Double {
        let p = Metrics.squadNormalized(r.prediction, word: word)
        return golds(r.example).map { p == Metrics.squadNormalized($0, word: word) ? 1.0 : 0.0 }.max()!
    }
    static func squadF1(_ r: MetricRow, word: (Unicode.Scalar) -> Bool = pyIsWordCharacter) -> Double {
        golds(r.example).map { Metrics.tokenF1(r.prediction, $0, word: word) }.max()!
    }
    static func answerWeight(_ r: MetricRow) -> Double { Double(max(1, r.example.answers.count)) }
    /// ReCoRD outputs: the passage's entities; an output equal to none of them (SQuAD-normalised) names no label.
    static let entities = GeneratedOutputs(
        outputs: { $0.entities },
        invalid: { e, p in
            let q = Metrics.squadNormalized(p)
            return !(e?.entities ?? []).contains { Metrics.squadNormalized($0) == q }
        },
        readsExample: true)

    /// WSC generating the referent: [a phrase no referent contains, the referent] for labels [false,
    /// true]; an output empty once determiners are dropped (wsc_simple's −1) decides nothing.
    public static let nonReferent = "<no referent>"
    static let referent = GeneratedOutputs(
        outputs: { [nonReferent, $0.referent ?? ""] },
        invalid: { _, p in Metrics.wscSimple(prediction: p, referent: "") == -1 },
        readsExample: false)
    /// WSC verdict of one row: the wsc_simple flag of a generated referent, or the label read back
    /// when the template's target is the label itself (DePT "0"/"1").
    static func wscVerdict(_ r: MetricRow) -> Int? {
        r.verbalized ? r.label : Metrics.wscSimple(prediction: r.prediction, referent: r.example.referent ?? "")
    }

    /// Every metric, by id.
    public static let entries: [MetricEntry] = [
        MetricEntry(id: "accuracy", higherIsBetter: true, aggregation: .mean, needsVerbalizer: false,
                    summary: "% of examples whose prediction is the gold label (read back with the verbaliser), or equals the target string when the target is generated; invalid = wrong",
                    stats: { r in [flag(r.verbalized ? r.label == (r.example.label ?? -1) : r.prediction.unicodeScalars.elementsEqual(r.example.target.unicodeScalars))] },
                    generated: nil),
        MetricEntry(id: "macro_f1", higherIsBetter: true, aggregation: .f1(positive: nil), needsVerbalizer: true,
                    summary: "sklearn macro-F1 over label classes 0..<C; an invalid prediction is a miss for its gold class",
                    stats: { r in
                        let t = r.example.label ?? -1
                        return (0..<r.classes).flatMap { c -> [Double] in
                            [flag(r.label == c && t == c), flag(r.label == c && t != c), flag(r.label != c && t == c)]
                        }
                    },
                    generated: nil),
        MetricEntry(id: "f1a", higherIsBetter: true, aggregation: .f1(positive: 1), needsVerbalizer: true,
                    summary: "MultiRC F1a: binary F1 of label 1 over all answer rows; an invalid prediction becomes the opposite of the gold label (T5 f1_score_with_invalid)",
                    stats: { r in
                        let gold = r.example.label ?? 0
                        let pred = r.label ?? (gold == 1 ? 0 : 1)
                        return [flag(pred == 1 && gold == 1), flag(pred == 1 && gold != 1), flag(pred != 1 && gold == 1)]
                    },
                    generated: nil),
        MetricEntry(id: "multirc_group_em", higherIsBetter: true, aggregation: .groupAllCorrect, needsVerbalizer: true,
                    summary: "MultiRC EM: % of question groups whose every answer row is right (invalid = wrong; DPT mean_group_metric(exact_match))",
                    stats: { r in [flag(r.label == (r.example.label ?? 0))] },
                    generated: nil),
        MetricEntry(id: "squad_em", higherIsBetter: true, aggregation: .mean, needsVerbalizer: false,
                    summary: "SQuAD exact match, max over gold answers, each query once",
                    stats: { r in [squadEM(r)] }, generated: entities),
        MetricEntry(id: "squad_f1", higherIsBetter: true, aggregation: .mean, needsVerbalizer: false,
                    summary: "SQuAD token F1, max over gold answers, each query once",
                    stats: { r in [squadF1(r)] }, generated: entities),
        MetricEntry(id: "squad_em_per_row", higherIsBetter: true, aggregation: .weightedMean, needsVerbalizer: false,
                    summary: "SQuAD exact match as DPT's code scores it: each query weighted by its number of answers (its duplicated validation rows), articles found with the `regex` module's word characters",
                    stats: { r in [squadEM(r, word: regexModuleIsWordCharacter), answerWeight(r)] }, generated: entities, variantOf: "squad_em"),
        MetricEntry(id: "squad_f1_per_row", higherIsBetter: true, aggregation: .weightedMean, needsVerbalizer: false,
                    summary: "SQuAD token F1 as DPT's code scores it: each query weighted by its number of answers (its duplicated validation rows), articles found with the `regex` module's word characters",
                    stats: { r in [squadF1(r, word: regexModuleIsWordCharacter), answerWeight(r)] }, generated: entities, variantOf: "squad_f1"),
        MetricEntry(id: "wsc_simple", higherIsBetter: true, aggregation: .mean, needsVerbalizer: false,
                    summary: "WSC over all rows: correct iff T5's wsc_simple flag (prediction names the referent) equals the label; a label target is compared with the label",
                    stats: { r in [flag(wscVerdict(r) == (r.verbalized ? r.example.label : (r.example.label ?? 0)))] },
                    generated: referent),
        MetricEntry(id: "wsc_simple_label1", higherIsBetter: true, aggregation: .weightedMean, needsVerbalizer: false,
                    summary: "WSC over label-1 rows only (the released DPT code's filtered set): % with verdict 1",
                    stats: { r in [flag(wscVerdict(r) == 1), flag(r.example.label == 1)] },
                    generated: referent, variantOf: "wsc_simple"),
    ]

    public static var ids: [String] { entries.map(\.id) }

    /// The entry of `id`; the error names `file` and the closest id.
    public static func entry(_ id: String, file: String = "metric registry") throws -> MetricEntry {
        guard let e = entries.first(where: { $0.id == id }) else {
            throw TaskError(file: file, detail: "unknown metric id '\(id)'\(didYouMean(id, ids)); known: \(ids.joined(separator: ", "))")
        }
        return e
    }
}

/// A metric as a task declares it: the name its score is stored under and the registry id that
/// computes it. YAML: a plain id (`accuracy`: name = id) or `{name: em, metric: multirc_group_em}`.
public struct MetricSpec: Codable, Equatable, Sendable, CustomStringConvertible {
    public var name: String
    public var metric: String

    public init(name: String, metric: String) { self.name = name; self.metric = metric }

    enum CodingKeys: String, CodingKey { case name, metric }

    public init(from decoder: Decoder) throws {
        if let id = try? decoder.singleValueContainer().decode(String.self) { self.init(name: id, metric: id); return }
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let metric = try c.decode(String.self, forKey: .metric)
        self.init(name: try c.decodeIfPresent(String.self, forKey: .name) ?? metric, metric: metric)
    }

    public func encode(to encoder: Encoder) throws {
        if name == metric { var c = encoder.singleValueContainer(); try c.encode(name); return }
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(metric, forKey: .metric)
    }

    public var description: String { name }
    public var entry: MetricEntry { get throws { try MetricRegistry.entry(metric) } }
}
