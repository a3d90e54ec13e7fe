// Protocol variants beside the default protocol (issue #20; docs/protocol.md "Variants"). The
// default draws the few-shot sample uniformly (the DPT paper: "without balancing the label
// distribution") with the training seed, selects the best epoch on the validation split it
// reports and reads labels from generated text (DPT's released code; the papers state neither).
// Each variant here is opt-in; the default value of every switch changes no number.
import Foundation
import Support

/// How the k training rows are drawn (`--sampler`).
public enum SamplerKind: String, Codable, CaseIterable, Sendable {
    /// The papers' sampler: the first k rows of a Philox Fisher–Yates permutation (METHODS §4.5).
    case uniform
    /// k/C rows per class, walking the same permutation (DePT's few-shot sampler is class-balanced).
    case balanced
}

/// Where the best epoch is selected (`--select-on`).
public enum SelectionSplit: String, Codable, CaseIterable, Sendable {
    /// The papers' rule: select and report on the full validation split (validation = selection = report).
    case validation
    /// A few-shot dev set of k_dev rows of the training split, disjoint from the sample; report on
    /// the full validation split.
    case trainDev = "train-dev"
    /// DePT's split: the validation rows are permuted with a fixed seed; the first half selects,
    /// the second half is reported.
    case valHalf = "val-half"

    /// The selection rule in words, for table captions.
    public var rule: String {
        switch self {
        case .validation: return "best epoch on the validation split that is reported (the default, as DPT's released code selects)"
        case .trainDev: return "best epoch on a few-shot dev set drawn from the training split, disjoint from the sample; full validation split reported"
        case .valHalf: return "best epoch on one half of the validation split, the other half reported (DePT's split)"
        }
    }
}

/// How a T5 prediction is read (`--eval-mode`).
public enum EvalMode: String, Codable, CaseIterable, Sendable {
    /// Greedy decoding, then the text is read through the template's verbaliser (the papers).
    case generate
    /// Rank classification (T0, lm-eval-harness): every candidate target is scored by its summed
    /// token log-likelihood under teacher forcing; the argmax is the prediction.
    case rank
    /// As `rank`, with the log-likelihood divided by the candidate's token count.
    case rankMean = "rank-mean"
}

/// When greedy decoding ends a row (`--decode-stop`).
public enum DecodeStop: String, Codable, CaseIterable, Sendable {
    /// At `</s>`, or as soon as the decoded text can no longer be read back as any label of the
    /// template's verbaliser (`LabelReachability`): the same scores as `eos`, with invalid outputs
    /// kept only up to the token that decided them. Templates without a verbaliser decode as `eos`.
    case noLabel = "no-label"
    /// Only at `</s>` or the token cap, as the papers' code does (`model.generate`).
    case eos
}

extension FewShotSampler {
    public static let balancedSamplerID = "philox4x32-10 fisher-yates v1 class-balanced (key: seed, stream: fewshot/<task>)"

    /// Class index of every pool row, or an error naming why the task has no classes to balance.
    /// MultiRC's rows are answer options, so its class is the option's true/false label; ReCoRD has
    /// no label set (the answer is an entity of the passage) and is refused.
    static func classes(_ data: TaskData, pool: [Int]) throws -> (perRow: [Int: Int], count: Int) {
        guard let labels = data.definition.labels else {
            throw TaskError(file: "Registry/\(data.definition.task).yaml",
                            detail: "--sampler balanced needs classes, but \(data.definition.task) has no label set (its target is a passage entity); use --sampler uniform")
        }
        var out: [Int: Int] = [:]
        for i in pool {
            guard let raw = data.rows[i].fields["label"], let lv = LabelValue(json: raw), let c = labels.firstIndex(of: lv) else {
                throw TaskError(file: data.path, detail: "line \(data.rows[i].line): --sampler balanced needs a label in \(labels) on every training row")
            }
            out[i] = c
        }
        return (out, labels.count)
    }

    /// Takes `k` rows from `order` (pool rows in permutation order), class-balanced: every class
    /// present in `order` gets ⌊k/C⌋ rows (C = classes present), the remainder k mod C goes one
    /// each to the first classes met along `order` (so which class gets the extra row depends on
    /// the seed, not on the label order); a class with too few rows leaves its shortfall to the
    /// next unused rows of `order`, whatever their class. Result in `order`'s order.
    public static func balancedTake(_ order: [Int], k: Int, classOf: [Int: Int]) -> [Int] {
        var firstSeen: [Int] = []
        for i in order where !firstSeen.contains(classOf[i]!) { firstSeen.append(classOf[i]!) }
        guard !firstSeen.isEmpty else { return [] }
        let C = firstSeen.count
        var quota: [Int: Int] = [:]
        for (j, c) in firstSeen.enumerated() { quota[c] = k / C + (j < k % C ? 1 : 0) }
        var taken = Set<Int>()
        for i in order where quota[classOf[i]!]! > 0 {
            quota[classOf[i]!]! -= 1
            taken.insert(i)
        }
        for i in order where taken.count < k && !taken.contains(i) { taken.insert(i) }
        return order.filter(taken.contains)
    }

    /// Why a balanced sample of `rows` (k of them) is not balanced, in words, or nil when every
    /// class holds ⌊k/C⌋ or ⌈k/C⌉ of its rows: k below the number of classes (some get none), or
    /// a class with fewer training rows than its share (its shortfall went to other classes,
    /// `balancedTake`). The counts are by the task's label order.
    public static func balanceProblem(_ data: TaskData, rows: [Int], k: Int) -> String? {
        guard let labels = data.definition.labels, let perRow = try? classes(data, pool: rows).perRow else { return nil }
        var counts = [Int](repeating: 0, count: labels.count)
        for i in rows { counts[perRow[i]!] += 1 }
        let lo = k / labels.count, hi = lo + (k % labels.count == 0 ? 0 : 1)
        guard counts.contains(where: { $0 < lo || $0 > hi }) || k < labels.count else { return nil }
        let shown = zip(labels, counts).map { "\($0.0.description): \($0.1)" }.joined(separator: ", ")
        return k < labels.count
            ? "k = \(k) is below the task's \(labels.count) classes: the balanced sample cannot hold every class (\(shown))"
            : "the balanced sample of k = \(k) has class counts \(shown), not \(lo)\(hi == lo ? "" : "–\(hi)") each: a class has fewer training rows than its share, and its shortfall went to other classes"
    }

    /// The few-shot sample of (task, k, seed) drawn with `sampler`. `.uniform` is `sample(_:k:seed:)`.
    public static func sample(_ data: TaskData, k: Int, seed: Int, sampler: SamplerKind) throws -> Manifest {
        var m = try sample(data, k: k, seed: seed)
        guard sampler == .balanced else { return m }
        let order = permutedPool(data, seed: seed)
        m.indices = balancedTake(order, k: k, classOf: try classes(data, pool: order).perRow)
        m.sampler = balancedSamplerID
        return m
    }

    /// A few-shot dev set of `kDev` training rows disjoint from `sample`: the same permutation as
    /// the sample, walked from its end (so the dev rows do not depend on k), with the sampler's
    /// balancing. Throws when the pool has fewer than `kDev` rows left.
    public static func devRows(_ data: TaskData, kDev: Int, seed: Int, sampler: SamplerKind, excluding sample: [Int]) throws -> [Int] {
        let used = Set(sample)
        let order = permutedPool(data, seed: seed).reversed().filter { !used.contains($0) }
        guard kDev > 0, kDev <= order.count else {
            throw TaskError(file: data.path, detail: "cannot draw a dev set of k_dev = \(kDev) from the \(order.count) training rows outside the sample")
        }
        if sampler == .balanced {
            return balancedTake(order, k: kDev, classOf: try classes(data, pool: order).perRow)
        }
        return Array(order.prefix(kDev))
    }

    /// DePT's validation split (METHODS §2.4: a permutation with a fixed seed, first half selects,
    /// second half is reported), over the validation rows; Philox with key `seed` (42 as DePT's
    /// torch.randperm) stands in for torch's generator. The selection half has ⌊N/2⌋ rows and the
    /// reported half the other ⌈N/2⌉, as DePT's `get_split_indices(split, dataset,
    /// validation_size=len(dataset)//2)` (src/tasks.py): its RTE run (shared
    /// models/dept-reference/rte) selected on 138 rows and reported 139. Before 2026-12-07 the
    /// selection half had ⌈N/2⌉ (`RunIdentity.ruleParts` "val_half_select").
    public static func validationHalves(rows: Int, seed: Int = 42) -> (select: [Int], report: [Int]) {
        var stream = PhiloxStream(RNGKey(seed: UInt64(seed)).derive("validation-halves"))
        let perm = stream.permutation(rows)
        let h = rows / 2
        return (perm.prefix(h).sorted(), perm.dropFirst(h).sorted())
    }

    /// The halves of rows that belong to groups a metric scores together (`groups[i]`: row i's
    /// group, nil: a group of its own): the same permutation over the groups (in order of first
    /// appearance), ⌊G/2⌋ groups select, and each half holds whole groups. MultiRC's exact match
    /// scores a question's answer rows together: split by rows (DePT's split, which scores
    /// MultiRC per row), 846 of its 953 validation questions fell in both halves, exact match was
    /// computed on partial questions (a constant "true" scored 15.5 instead of 0.84), and the
    /// selection half saw answers of the reported questions. Without any group: `validationHalves(rows:)`.
    public static func validationHalves(groups: [String?], seed: Int = 42) -> (select: [Int], report: [Int]) {
        guard groups.contains(where: { $0 != nil }) else { return validationHalves(rows: groups.count, seed: seed) }
        var order: [String] = [], members: [String: [Int]] = [:]
        for (i, g) in groups.enumerated() {
            let key = g.map { "g:" + $0 } ?? "r:\(i)"
            if members[key] == nil { order.append(key) }
            members[key, default: []].append(i)
        }
        let halves = validationHalves(rows: order.count, seed: seed)
        return (halves.select.flatMap { members[order[$0]]! }.sorted(), halves.report.flatMap { members[order[$0]]! }.sorted())
    }

    /// `validationHalves(groups:)` of a validation split: MultiRC's rows grouped by question,
    /// every other task's rows one by one (`validationHalves(rows:)`, DePT's split).
    public static func validationHalves(_ data: TaskData) -> (select: [Int], report: [Int]) {
        validationHalves(groups: data.rows.map { row -> String? in
            if case .multirc(let p, let q, _) = row.id { return "\(p)-\(q)" }
            return nil
        })
    }
}

extension Manifest {
    /// The manifest file of (task, k, sample seed, sampler): `<task>-k<k>-s<seed>.json` for the
    /// papers' uniform sampler (the committed manifests), `…-balanced.json` for the balanced one.
    public static func fileName(task: String, k: Int, seed: Int, sampler: SamplerKind) -> String {
        "\(task)-k\(k)-s\(seed)\(sampler == .balanced ? "-balanced" : "").json"
    }
}

/// Candidate targets for rank classification.
public enum RankCandidates {
    /// The strings a T5 prediction of `example` is chosen among: the template's label targets
    /// (`{label_index}` → "0", "1", …; `{label_word}` → the words) or, for ReCoRD, the entities of
    /// the example's passage (in the data's order). Throws for targets that are free text (WSC's
    /// referent), which have no candidate set.
    public static func candidates(_ def: TaskDefinition, set: TemplateSet, data: TaskData, example: Example) throws -> [String] {
        let tpl = try def.template(set)
        if let words = tpl.verbalizer(labels: def.labels) { return words }
        if def.reader == "superglue_record", let ents = data.rows[example.row].fields["entities"] as? [String], !ents.isEmpty {
            guard ["{answer}", "{answers_joined}"].contains(tpl.target) else {
                throw TaskError(file: "Registry/\(def.task).yaml", detail: "--eval-mode rank: template '\(set.rawValue)' target \(tpl.target) is not an entity")
            }
            return ents
        }
        throw TaskError(file: "Registry/\(def.task).yaml",
                        detail: "--eval-mode rank needs a closed candidate set, but template '\(set.rawValue)' of \(def.task) generates free text (\(tpl.target)); use --eval-mode generate")
    }
}
