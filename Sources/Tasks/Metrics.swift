// Official metrics as DPT evaluates them (METHODS §4.4), in percent (0–100). Which metrics a task
// scores is data: its YAML `metrics:` names entries of `MetricRegistry` (MetricRegistry.swift).
import Foundation
import Support

public enum Metrics {
    /// Every metric the task declares, keyed by its stored name and computed by its registry entry
    /// (`MetricRegistry`), for predictions written in the target format of template set `set`: a
    /// prediction is first read back into a label with the same table that built that set's targets
    /// (`TemplateSpec.verbalizer`), so the same decisions score the same in every set; an output that
    /// is no label is invalid and scored as each official metric says. Predictions are `.strip()`ped
    /// first, as DPT strips decoded text.
    public static func score(_ def: TaskDefinition, set: TemplateSet, examples: [Example], predictions: [String]) throws -> [String: Double] {
        let rows = try rows(def, set: set, examples: examples, predictions: predictions)
        var out: [String: Double] = [:]
        for m in def.metrics {
            out[m.name] = try entry(def, m, set: set).score(rows)
        }
        return out
    }

    /// The registry entry of `m`, checked against the template set (label metrics need a verbaliser).
    public static func entry(_ def: TaskDefinition, _ m: MetricSpec, set: TemplateSet) throws -> MetricEntry {
        let file = "Registry/\(def.task).yaml"
        let e = try MetricRegistry.entry(m.metric, file: file)
        if e.needsVerbalizer, try def.template(set).verbalizer(labels: def.labels) == nil {
            throw TaskError(file: file, detail: "metric '\(m.name)' (\(m.metric)) reads predictions as labels, but template '\(set.rawValue)' has no label targets")
        }
        return e
    }

    /// What each metric sees of each example: the stripped prediction and the label it names.
    public static func rows(_ def: TaskDefinition, set: TemplateSet, examples: [Example], predictions: [String]) throws -> [MetricRow] {
        precondition(examples.count == predictions.count, "one prediction per example")
        let verbalizer = try def.template(set).verbalizer(labels: def.labels)
        let classes = def.labels?.count ?? 0
        return zip(examples, predictions).map { e, p in
            let s = pyStrip(p)
            // Python's `==` on str: code points (Swift's `==` equates canonically equivalent text).
            return MetricRow(example: e, prediction: s, label: verbalizer?.firstIndex { $0.unicodeScalars.elementsEqual(s.unicodeScalars) },
                             verbalized: verbalizer != nil, classes: classes)
        }
    }

    /// The rule for generated outputs (no verbaliser) of the task's first metric that has one
    /// (wsc_simple: referent or not; SQuAD metrics: the passage's entities).
    public static func generatedOutputs(_ def: TaskDefinition) -> GeneratedOutputs? {
        for m in def.metrics { if let g = (try? m.entry)?.generated { return g } }
        return nil
    }

    // Direct transcriptions of the official functions (METHODS §4.4), kept as oracles: the registry
    // entries must give the same bits (TaskTests `testRegistryAgreesWithTheOfficialFunctions`).

    /// 100 · mean(prediction == target) (exact string match of code points, as Python's ==;
    /// invalid outputs are wrong).
    public static func accuracy(_ targets: [String], _ preds: [String]) -> Double {
        guard !targets.isEmpty else { return 0 }
        return 100 * Double(zip(targets, preds).filter { $0.unicodeScalars.elementsEqual($1.unicodeScalars) }.count) / Double(targets.count)
    }

    /// Macro-F1 over label indices 0..<classes (sklearn `f1_score(labels=range(classes), average="macro")`);
    /// an invalid prediction (nil) is a miss for its gold class, never a class of its own.
    public static func macroF1(gold: [Int], predicted: [Int?], classes: Int) -> Double {
        guard classes > 0 else { return 0 }
        var total = 0.0
        for c in 0..<classes {
            var tp = 0, fp = 0, fn = 0
            for (t, p) in zip(gold, predicted) {
                if p == c && t == c { tp += 1 } else if p == c { fp += 1 } else if t == c { fn += 1 }
            }
            total += tp == 0 ? 0 : 2 * Double(tp) / Double(2 * tp + fp + fn)
        }
        return 100 * total / Double(classes)
    }

    /// Macro-F1 over the given classes; a prediction outside them is a miss for its gold class.
    public static func macroF1(_ targets: [String], _ preds: [String], classes: [String]) -> Double {
        guard !classes.isEmpty else { return 0 }
        var total = 0.0
        for c in classes {
            var tp = 0, fp = 0, fn = 0
            for (t, p) in zip(targets, preds) {
                if p == c && t == c { tp += 1 } else if p == c { fp += 1 } else if t == c { fn += 1 }
            }
            total += tp == 0 ? 0 : 2 * Double(tp) / Double(2 * tp + fp + fn)
        }
        return 100 * total / Double(classes.count)
    }

    /// MultiRC on label indices (1 = the answer is true): F1a = binary F1 of class 1 over all answer
    /// rows, an invalid prediction (nil) replaced by the opposite of the gold label (T5/DPT
    /// `f1_score_with_invalid`); EM = % of question groups with every row correct (invalid = wrong).
    public static func multirc(_ ex: [Example], _ predicted: [Int?]) -> (Double, Double) {
        var tp = 0, fp = 0, fn = 0
        var groupOK: [String: Bool] = [:]
        var order: [String] = []
        for (e, p) in zip(ex, predicted) {
            let gold = e.label ?? 0
            let pred = p ?? (gold == 1 ? 0 : 1)
            if pred == 1 && gold == 1 { tp += 1 } else if pred == 1 { fp += 1 } else if gold == 1 { fn += 1 }
            let g = e.group ?? "\(e.id)"
            if groupOK[g] == nil { order.append(g); groupOK[g] = true }
            if p != gold { groupOK[g] = false }
        }
        let f1 = tp == 0 ? 0 : 2 * Double(tp) / Double(2 * tp + fp + fn)
        let em = order.isEmpty ? 0 : Double(order.filter { groupOK[$0]! }.count) / Double(order.count)
        return (100 * f1, 100 * em)
    }

    /// MultiRC with DPT's digit targets ("0"/"1"), for callers holding strings.
    public static func multirc(_ ex: [Example], _ preds: [String]) -> (Double, Double) {
        multirc(ex, preds.map { ["0": 0, "1": 1][pyStrip($0)] })
    }

    /// SQuAD normalisation as the official script: `s.lower()` (`pyLower`: Python's mapping, final
    /// sigma included), delete every character of `string.punctuation` (ASCII), replace
    /// `\b(a|an|the)\b` with a space (Python's `\b`: `pyIsWordCharacter`), then `" ".join(s.split())`
    /// with Python's whitespace (every Unicode space, U+001C–U+001F; `pySplit`). As code points:
    /// compare results with `squadNormalized` (Swift's `==` on String equates canonically
    /// equivalent text, "José" and "Jose\u{301}", which Python's comparison does not).
    /// `word` decides `\b`: `pyIsWordCharacter` (stdlib `re`, the official scripts) or
    /// `regexModuleIsWordCharacter` (the `regex` module, which DPT's metrics.py imports as `re`).
    public static func squadNormalize(_ s: String, word: (Unicode.Scalar) -> Bool = pyIsWordCharacter) -> String {
        String(String.UnicodeScalarView(squadNormalized(s, word: word)))
    }

    /// `squadNormalize` as code points, the form EM and token F1 compare.
    public static func squadNormalized(_ s: String, word isWord: (Unicode.Scalar) -> Bool = pyIsWordCharacter) -> [Unicode.Scalar] {
        let punct = Set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~".unicodeScalars)
        let lower = pyLower(Array(s.unicodeScalars)).filter { !punct.contains($0) }
        // re.sub(r"\b(a|an|the)\b", " ", text): at each position where a boundary holds, the
        // first of a, an, the that matches and is followed by a boundary is replaced; the scan
        // resumes after it (boundaries are those of the text before any replacement).
        let word = lower.map(isWord)
        func boundary(_ j: Int) -> Bool { (j > 0 && word[j - 1]) != (j < lower.count && word[j]) }
        var out: [Unicode.Scalar] = []
        var i = 0
        while i < lower.count {
            if boundary(i), let w = articles.first(where: { w in
                i + w.count <= lower.count && lower[i..<(i + w.count)].elementsEqual(w) && boundary(i + w.count)
            }) {
                out.append(" ")
                i += w.count
            } else {
                out.append(lower[i])
                i += 1
            }
        }
        return Array(pySplit(String(String.UnicodeScalarView(out))).joined(separator: " ").unicodeScalars)
    }

    static let articles: [[Unicode.Scalar]] = ["a", "an", "the"].map { Array($0.unicodeScalars) }

    /// Code-point tokens of a normalised answer (`normalize_answer(s).split()`).
    static func squadTokens(_ s: String, word: (Unicode.Scalar) -> Bool = pyIsWordCharacter) -> [[Unicode.Scalar]] {
        squadNormalized(s, word: word).split(separator: " ").map(Array.init)
    }

    /// SQuAD exact match of two answers: their normalised code points are equal (`word`: as `squadNormalize`).
    public static func squadExactMatch(_ pred: String, _ gold: String, word: (Unicode.Scalar) -> Bool = pyIsWordCharacter) -> Bool {
        squadNormalized(pred, word: word) == squadNormalized(gold, word: word)
    }

    /// Token F1 with multiset overlap (0 when nothing overlaps), tokens compared as code points
    /// (`word`: as `squadNormalize`).
    public static func tokenF1(_ pred: String, _ gold: String, word: (Unicode.Scalar) -> Bool = pyIsWordCharacter) -> Double {
        let p = squadTokens(pred, word: word), g = squadTokens(gold, word: word)
        var counts: [[Unicode.Scalar]: Int] = [:]
        for t in g { counts[t, default: 0] += 1 }
        var common = 0
        for t in p where (counts[t] ?? 0) > 0 { common += 1; counts[t]! -= 1 }
        if common == 0 { return 0 }
        let precision = Double(common) / Double(p.count), recall = Double(common) / Double(g.count)
        return 2 * precision * recall / (precision + recall)
    }

    /// ReCoRD EM/F1 (max over gold answers), per query and per row (each query weighted by its
    /// number of answers, as DPT's duplicated validation rows weigh it, and `\b` as DPT's `regex`
    /// module decides it: `regexModuleIsWordCharacter`).
    public static func record(_ ex: [Example], _ preds: [String]) -> [String: Double] {
        var em = 0.0, f1 = 0.0, emRow = 0.0, f1Row = 0.0, rows = 0.0
        for (e, p) in zip(ex, preds) {
            let golds = e.answers.isEmpty ? ["<unk>"] : e.answers
            let qEM = golds.map { squadExactMatch(p, $0) ? 1.0 : 0.0 }.max()!
            let qF1 = golds.map { tokenF1(p, $0) }.max()!
            let rEM = golds.map { squadExactMatch(p, $0, word: regexModuleIsWordCharacter) ? 1.0 : 0.0 }.max()!
            let rF1 = golds.map { tokenF1(p, $0, word: regexModuleIsWordCharacter) }.max()!
            let w = Double(max(1, e.answers.count))
            em += qEM; f1 += qF1
            emRow += w * rEM; f1Row += w * rF1; rows += w
        }
        let n = Double(max(ex.count, 1))
        return ["em": 100 * em / n, "f1": 100 * f1 / n, "em_per_row": 100 * emRow / max(rows, 1), "f1_per_row": 100 * f1Row / max(rows, 1)]
    }

    static let determiners: Set<[Unicode.Scalar]> = Set(["a", "an", "few", "her", "his", "each", "every", "many", "much", "my", "our", "some",
                                                          "that", "the", "their", "these", "this", "those", "which", "whose", "your"]
                                                          .map { Array($0.unicodeScalars) })

    /// T5 `wsc_simple`: −1 for an empty prediction, 0 if exactly one side has an apostrophe,
    /// else 1 iff one word set contains the other (words split on single spaces, determiners dropped).
    /// On code points as Python: `s.strip().lower()` (`pyStrip`, `pyLower`), `split(" ")` on the
    /// scalar U+0020 (a space followed by a combining mark still splits), words compared as scalars.
    public static func wscSimple(prediction: String, referent: String) -> Int {
        // The words of `" ".join(kept).split(" ")`: the kept words themselves, or one empty word
        // when none is kept ("the" as a referent cleans to "", whose set {""} does not sit inside
        // {"dog"}; an empty set would).
        func clean(_ s: String) -> [[Unicode.Scalar]] {
            let kept = pyLower(Array(pyStrip(s).unicodeScalars))
                .split(separator: " ", omittingEmptySubsequences: false).map(Array.init)
                .filter { !determiners.contains($0) }
            return kept.isEmpty ? [[]] : kept
        }
        let p = clean(prediction)
        if p == [[]] { return -1 }  // the joined prediction is ""
        let r = clean(referent)
        let apostrophe: Unicode.Scalar = "'"
        if p.contains(where: { $0.contains(apostrophe) }) != r.contains(where: { $0.contains(apostrophe) }) { return 0 }
        let pw = Set(p), rw = Set(r)
        return (pw.isSubset(of: rw) || rw.isSubset(of: pw)) ? 1 : 0
    }

    /// WSC over all rows (correct iff wsc_simple flag == label) and over label-1 rows (flag == 1).
    public static func wsc(_ ex: [Example], _ preds: [String]) -> (Double, Double) {
        var correct = 0, l1 = 0, l1Correct = 0
        for (e, p) in zip(ex, preds) {
            let flag = wscSimple(prediction: p, referent: e.referent ?? "")
            if flag == (e.label ?? 0) { correct += 1 }
            if e.label == 1 { l1 += 1; if flag == 1 { l1Correct += 1 } }
        }
        return (100 * Double(correct) / Double(max(ex.count, 1)), 100 * Double(l1Correct) / Double(max(l1, 1)))
    }

    /// WSC when the template's target is the label itself (DePT: "0"/"1"): accuracy over all rows
    /// (prediction == label, invalid = wrong) and over label-1 rows (prediction == 1).
    public static func wscLabels(_ ex: [Example], _ predicted: [Int?]) -> (Double, Double) {
        var correct = 0, l1 = 0, l1Correct = 0
        for (e, p) in zip(ex, predicted) {
            if p == e.label { correct += 1 }
            if e.label == 1 { l1 += 1; if p == 1 { l1Correct += 1 } }
        }
        return (100 * Double(correct) / Double(max(ex.count, 1)), 100 * Double(l1Correct) / Double(max(l1, 1)))
    }

    /// Scores a predictions file (JSONL of {"idx", "prediction"}) against the validation split.
    public static func scoreFile(_ def: TaskDefinition, data: TaskData, predictionsPath: String, set: TemplateSet = .dpt) throws -> [String: Double] {
        let (examples, predictions) = try predictionsFile(def, data: data, predictionsPath: predictionsPath, set: set)
        return try score(def, set: set, examples: examples, predictions: predictions)
    }

    /// The validation examples of `set` and the prediction of each, read from a predictions file
    /// (JSONL of {"idx", "prediction"}, one line per validation row). Errors name the file and line.
    public static func predictionsFile(_ def: TaskDefinition, data: TaskData, predictionsPath: String, set: TemplateSet) throws
        -> (examples: [Example], predictions: [String]) {
        guard let raw = FileManager.default.contents(atPath: predictionsPath) else {
            throw TaskError(file: predictionsPath, detail: "cannot read")
        }
        let examples = try Templates.examples(data, set: set, training: false)
        var byID: [RowID: String] = [:]
        for (i, line) in pyLines(String(decoding: raw, as: UTF8.self)).enumerated() {
            let l = line.trimmingCharacters(in: .whitespaces)
            if l.isEmpty { continue }
            guard let o = try? JSONSerialization.jsonObject(with: Data(l.utf8)) as? [String: Any] else {
                throw TaskError(file: predictionsPath, detail: "line \(i + 1): not a JSON object")
            }
            guard let idxAny = o["idx"], let id = RowID(json: idxAny) else {
                throw TaskError(file: predictionsPath, detail: "line \(i + 1): missing or malformed 'idx'")
            }
            guard let pred = o["prediction"] as? String else {
                throw TaskError(file: predictionsPath, detail: "line \(i + 1): 'prediction' must be a string")
            }
            if byID[id] != nil { throw TaskError(file: predictionsPath, detail: "line \(i + 1): duplicate idx \(id)") }
            byID[id] = pred
        }
        let known = Set(examples.map(\.id))
        if let extra = byID.keys.filter({ !known.contains($0) }).min(by: { $0.description < $1.description }) {
            throw TaskError(file: predictionsPath, detail: "idx \(extra) is not in \(data.relativePath)")
        }
        let missing = examples.filter { byID[$0.id] == nil }
        if !missing.isEmpty {
            throw TaskError(file: predictionsPath, detail: "\(missing.count) of \(examples.count) validation rows have no prediction (first: idx \(missing[0].id))")
        }
        return (examples, examples.map { byID[$0.id]! })
    }

    /// How many of `predictions` (stripped, as `score` reads them) name no label of template set
    /// `set`; nil when the set's targets are generated text (no label table to read them with).
    public static func unlabelled(_ def: TaskDefinition, set: TemplateSet, predictions: [String]) -> Int? {
        guard let words = try? def.template(set).verbalizer(labels: def.labels) else { return nil }
        let known = Set(words.map { Array($0.unicodeScalars) })
        return predictions.filter { !known.contains(Array(pyStrip($0).unicodeScalars)) }.count
    }
}
