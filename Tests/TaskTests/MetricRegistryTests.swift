import Foundation
import Support
import Tasks
import TestSupport
import XCTest

/// The metric registry: its entries on hand-worked inputs, agreement (to the bit) with the direct
/// transcriptions of the official functions, the YAML checks, and the stored names every task keeps.
final class MetricRegistryTests: XCTestCase {
    func ex(_ target: String, label: Int? = nil, group: String? = nil, referent: String? = nil, answers: [String]? = nil, id: Int = 0) -> Example {
        Example(id: .index(id), row: id, source: "", target: target, answers: answers ?? [target], label: label, group: group, referent: referent)
    }

    /// Rows as `Metrics.rows` builds them, for a verbaliser `v` (nil: generated targets).
    func rows(_ e: [Example], _ preds: [String], _ v: [String]?, classes: Int = 2) -> [MetricRow] {
        zip(e, preds).map { x, p in
            MetricRow(example: x, prediction: pyStrip(p), label: v?.firstIndex(of: pyStrip(p)), verbalized: v != nil, classes: classes)
        }
    }

    func score(_ id: String, _ r: [MetricRow]) throws -> Double { try MetricRegistry.entry(id).score(r) }

    /// The hand-worked cases of TaskTests, through the registry.
    func testEntriesByHand() throws {
        let v = ["0", "1", "2"]
        let cb = [ex("0", label: 0), ex("1", label: 1), ex("2", label: 2), ex("1", label: 1)]
        let cbRows = rows(cb, ["0", "1", "1", "banana"], v, classes: 3)
        XCTAssertEqual(try score("accuracy", cbRows), 50)
        XCTAssertEqual(try score("macro_f1", cbRows), 50, accuracy: 1e-9)  // F1 1, 0.5, 0 → 50 %

        // Group A all right; group B: (1→0) wrong, (0→"x") invalid: wrong for EM, "1" for F1a.
        let mr = [ex("1", label: 1, group: "A"), ex("0", label: 0, group: "A"), ex("1", label: 1, group: "B"), ex("0", label: 0, group: "B")]
        let mrRows = rows(mr, ["1", "0", "0", "x"], ["0", "1"])
        XCTAssertEqual(try score("f1a", mrRows), 50, accuracy: 1e-9)  // tp 1, fp 1, fn 1
        XCTAssertEqual(try score("multirc_group_em", mrRows), 50, accuracy: 1e-9)
        XCTAssertEqual(try score("accuracy", mrRows), 50, accuracy: 1e-9)  // rows, not groups: "em" was never this

        let rc = [ex("", answers: ["Morgan", "Tracy Morgan"]), ex("", answers: ["NBC"], id: 1)]
        let rcRows = rows(rc, ["the Morgan", "CBS"], nil)
        XCTAssertEqual(try score("squad_em", rcRows), 50, accuracy: 1e-9)
        XCTAssertEqual(try score("squad_f1", rcRows), 50, accuracy: 1e-9)
        XCTAssertEqual(try score("squad_em_per_row", rcRows), 100 * 2.0 / 3.0, accuracy: 1e-9)  // the first query weighs 2 rows
        XCTAssertEqual(try score("squad_f1_per_row", rcRows), 100 * 2.0 / 3.0, accuracy: 1e-9)

        let ws = [ex("dog", label: 1, referent: "dog"), ex("cat", label: 0, referent: "cat"), ex("man", label: 1, referent: "the man")]
        let wsRows = rows(ws, ["the dog", "cat", ""], nil)
        XCTAssertEqual(try score("wsc_simple", wsRows), 100.0 / 3.0, accuracy: 1e-9)  // row 1 ok; row 2 flag 1 ≠ 0; row 3 empty
        XCTAssertEqual(try score("wsc_simple_label1", wsRows), 50, accuracy: 1e-9)
        // DePT targets the label: compared with it directly.
        let wsLabelRows = rows(ws, ["1", "1", "maybe"], ["0", "1"])
        XCTAssertEqual(try score("wsc_simple", wsLabelRows), 100.0 / 3.0, accuracy: 1e-9)
        XCTAssertEqual(try score("wsc_simple_label1", wsLabelRows), 50, accuracy: 1e-9)

        // Empty inputs score 0, never NaN.
        for e in MetricRegistry.entries { XCTAssertEqual(e.score([]), 0, e.id) }
    }

    /// Which characters make a word for `\b` in the SQuAD article rule: stdlib `re` for the official
    /// ReCoRD metrics (`pyIsWordCharacter`), the `regex` module for the per-row variants, which
    /// follow DPT's metrics.py (`import regex as re`). Every code point against the ranges
    /// `scripts/regex_word_ranges.py` wrote with regex 2026.12.2 and CPython 3.11 (Unicode 14.0 for
    /// `re`): code points unassigned in Swift's tables or in the fixture's (`regex_assigned`: a
    /// Swift with newer tables would otherwise disagree on letters `regex` 2026.12.2 never saw),
    /// or (for `re`) assigned after Unicode 14.0, are left out. Then hand-worked ReCoRD rows where the two rules part (a review found the
    /// per-row variants using `re`'s rule).
    func testWordCharactersFollowEachRegexEngine() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Resources/regex-word-ranges.json")
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        func set(_ key: String) throws -> [Bool] {
            var w = [Bool](repeating: false, count: 0x110000)
            for r in try XCTUnwrap(json[key] as? [[Int]]) { for c in r[0]...r[1] { w[c] = true } }
            return w
        }
        let regexWord = try set("regex_word"), reWord = try set("re_word"), regexAssigned = try set("regex_assigned")
        var regexChecked = 0, regexWrong: [String] = [], reChecked = 0, reWrong: [String] = []
        for v in 0..<0x110000 {
            guard let c = Unicode.Scalar(v), let age = c.properties.age else { continue }
            if regexAssigned[v] {
                regexChecked += 1
                if regexModuleIsWordCharacter(c) != regexWord[v] { regexWrong.append(String(format: "U+%04X", v)) }
            }
            if age.major < 14 || (age.major == 14 && age.minor == 0) {
                reChecked += 1
                if pyIsWordCharacter(c) != reWord[v] { reWrong.append(String(format: "U+%04X", v)) }
            }
        }
        XCTAssertGreaterThan(regexChecked, 280_000)
        XCTAssertGreaterThan(reChecked, 280_000)
        XCTAssertEqual(regexWrong.count, 0, "regex module: \(regexWrong.prefix(20))")
        XCTAssertEqual(reWrong.count, 0, "stdlib re: \(reWrong.prefix(20))")
        // By hand. "e\u{301}a": for `re` the mark ends a word, so "a" is an article and goes
        // ("e\u{301}" matches); for `regex` the mark is a word character and "a" stays.
        // "a\u{BD}": for `re` ½ is a word character, so "a" stays; for `regex` it is not, "a" goes.
        let rc = [ex("", answers: ["e\u{301}a"]), ex("", answers: ["a\u{BD}"], id: 1)]
        let first = rows([rc[0]], ["e\u{301}"], nil), second = rows([rc[1]], ["\u{BD}"], nil)
        XCTAssertEqual(try score("squad_em", first), 100)
        XCTAssertEqual(try score("squad_em_per_row", first), 0)
        XCTAssertEqual(try score("squad_f1", first), 100)
        XCTAssertEqual(try score("squad_f1_per_row", first), 0)
        XCTAssertEqual(try score("squad_em", second), 0)
        XCTAssertEqual(try score("squad_em_per_row", second), 100)
        // The direct function gives the same.
        let direct = Metrics.record(rc, ["e\u{301}", "\u{BD}"])
        XCTAssertEqual(direct["em"]!, 50, accuracy: 1e-12)
        XCTAssertEqual(direct["em_per_row"]!, 50, accuracy: 1e-12)
        // The two engines part on ² and ½ (No), agree on Ⅻ (Nl: Alphabetic).
        XCTAssertEqual([pyIsWordCharacter("\u{B2}"), regexModuleIsWordCharacter("\u{B2}")], [true, false])
        XCTAssertEqual([pyIsWordCharacter("\u{216B}"), regexModuleIsWordCharacter("\u{216B}")], [true, true])
        XCTAssertEqual(Metrics.squadNormalize("x\u{200D}the y"), "x\u{200D} y")
        XCTAssertEqual(Metrics.squadNormalize("x\u{200D}the y", word: regexModuleIsWordCharacter), "x\u{200D}the y")
    }

    /// Every entry that sums over examples: the score equals `value` of the summed statistics
    /// (weighted means summing (w·s, w)) — the form `compare` bootstraps.
    func testScoreIsValueOfSummedStatistics() throws {
        let cases: [([Example], [String], [String]?)] = [
            ([ex("0", label: 0), ex("1", label: 1), ex("2", label: 2), ex("1", label: 1), ex("0", label: 0)], ["0", "2", "1", "1", "?"], ["0", "1", "2"]),
            ([ex("", answers: ["Morgan", "Tracy Morgan"]), ex("", answers: ["NBC"], id: 1), ex("", answers: [], id: 2)], ["Tracy", "NBC.", "<unk>"], nil),
            ([ex("dog", label: 1, referent: "dog"), ex("cat", label: 0, referent: "cat")], ["dog", "the cat"], nil),
        ]
        for (e, p, v) in cases {
            let r = rows(e, p, v, classes: 3)
            for entry in MetricRegistry.entries where entry.aggregation != .groupAllCorrect && (v != nil || !entry.needsVerbalizer) {
                let stats = r.map(entry.stats).map { entry.aggregation == .weightedMean ? [$0[1] * $0[0], $0[1]] : $0 }
                let sums = stats.dropFirst().reduce(stats[0]) { zip($0, $1).map(+) }
                XCTAssertEqual(entry.value(sums, count: r.count)!, entry.score(r), accuracy: 1e-12, entry.id)
            }
        }
    }

    /// On real validation rows of every task × set, fixed decisions (some wrong, some invalid) and
    /// own targets score the same bits through the registry as through the per-metric functions
    /// (`Metrics.multirc/record/wsc/…`). Both sides are this project's code: this checks the
    /// registry's wiring (which function, which rows, which label words), not the metrics'
    /// definitions, which the hand-worked cases (TaskTests) and shared/trials' metric cases check
    /// against the official SuperGLUE / SQuAD v1.1 / T5 scripts' values.
    func testRegistryAgreesWithTheMetricFunctions() throws {
        let dir = try sharedData()
        for task in TaskRegistry.names {
            let def = try TaskRegistry.definition(task)
            let data = try DataLoader.load(def, split: .validation, dataDir: dir)
            for set in TemplateSet.allCases where def.templates[set.rawValue] != nil {
                let ex = Array(try Templates.examples(data, set: set, training: false).prefix(task == "record" ? 200 : 600))
                let v = try def.template(set).verbalizer(labels: def.labels)
                let preds = ex.enumerated().map { i, e -> String in
                    guard let v else { return i % 4 == 0 ? "the " + e.target : (i % 4 == 1 ? "" : (i % 4 == 2 ? "x y" : e.target)) }
                    return i % 7 == 3 ? " maybe" : v[(i % 3 == 0 ? ((e.label ?? 0) + 1) : (e.label ?? 0)) % v.count] + (i % 5 == 0 ? "\n" : "")
                }
                for p in [preds, ex.map(\.target)] {
                    let got = try Metrics.score(def, set: set, examples: ex, predictions: p)
                    let s = p.map(pyStrip)
                    var want: [String: Double] = [:]
                    if def.uses("f1a") {
                        let (f1a, em) = Metrics.multirc(ex, s.map { v!.firstIndex(of: $0) })
                        want = ["f1a": f1a, "em": em]
                    } else if def.uses("squad_em") {
                        want = Metrics.record(ex, s)
                    } else if def.uses("wsc_simple") {
                        let (all, l1) = v == nil ? Metrics.wsc(ex, s) : Metrics.wscLabels(ex, s.map { v!.firstIndex(of: $0) })
                        want = ["accuracy": all, "accuracy_label1": l1]
                    } else {
                        want["accuracy"] = Metrics.accuracy(ex.map(\.target), s)
                        if def.uses("macro_f1") {
                            want["macro_f1"] = Metrics.macroF1(gold: ex.map { $0.label ?? -1 }, predicted: s.map { v!.firstIndex(of: $0) }, classes: def.labels!.count)
                        }
                    }
                    XCTAssertEqual(got.mapValues(\.bitPattern), want.mapValues(\.bitPattern), "\(task)/\(set)")
                }
            }
        }
    }

    /// The names results are stored under (exports, reports, the store) do not change: every task
    /// resolves every metric and its selection metric, under these names.
    func testEveryTaskResolvesItsMetricsUnderItsStoredNames() throws {
        let stored: [String: [String]] = [
            "boolq": ["accuracy"], "cb": ["accuracy", "macro_f1"], "copa": ["accuracy"], "multirc": ["f1a", "em"],
            "record": ["em", "f1", "em_per_row", "f1_per_row"], "rte": ["accuracy"], "wic": ["accuracy"],
            "wsc": ["accuracy", "accuracy_label1"], "sst2": ["accuracy"], "agnews": ["accuracy"],
        ]
        XCTAssertEqual(Set(TaskRegistry.names), Set(stored.keys))
        for task in TaskRegistry.names {
            let def = try TaskRegistry.definition(task)
            XCTAssertEqual(def.metricNames, stored[task], task)
            for m in def.metrics { XCTAssertNoThrow(try m.entry, "\(task): \(m.metric)") }
            XCTAssertTrue(try def.selectionEntry.higherIsBetter, task)
        }
        XCTAssertEqual(try TaskRegistry.definition("multirc").metrics.last, MetricSpec(name: "em", metric: "multirc_group_em"))
        XCTAssertEqual(try TaskRegistry.definition("record").metrics.first, MetricSpec(name: "em", metric: "squad_em"))
        XCTAssertEqual(Set(MetricRegistry.ids).count, MetricRegistry.ids.count, "registry ids are unique")
    }

    static let yaml = """
    task: toy
    version: 1
    reader: superglue
    files: {train: [toy/train.jsonl], validation: [toy/val.jsonl]}
    labels: [false, true]
    templates:
      dpt: {source: "{text}", target: "{label_index}"}
    """

    /// A key a task file does not have is refused, naming the file, the line and the closest key:
    /// the decoder dropped it without a word (a misspelt `fewglue`, or the input lengths task files
    /// once carried that no run read: they are the protocol's).
    func testUnknownTaskFileKeysAreRefused() throws {
        let body = Self.yaml + "\nmetrics: [accuracy]\nselection_metric: accuracy\n"
        XCTAssertNoThrow(try TaskRegistry.decode(body, file: "Registry/toy.yaml"))
        for (text, words) in [
            (body + "max_source_length: 128\n", ["Registry/toy.yaml", "line 10: max_source_length: input lengths are the protocol's", "under `train:`", "--max-source-length"]),
            (body + "selection_metrc: accuracy\n", ["unknown key 'selection_metrc'", "did you mean 'selection_metric'"]),
            (body.replacingOccurrences(of: "validation: [toy/val.jsonl]}", with: "validation: [toy/val.jsonl], fewglu: few/toy.jsonl}"),
             ["unknown key 'files.fewglu'", "did you mean 'fewglue'"]),
            (body.replacingOccurrences(of: "target: \"{label_index}\"}", with: "target: \"{label_index}\", word: [no, yes]}"),
             ["unknown key 'templates.dpt.word'", "did you mean 'words'"]),
            (body.replacingOccurrences(of: "  dpt: {", with: "  detp: {"), ["unknown template set 'detp'", "did you mean 'dept'"]),
            (body.replacingOccurrences(of: "metrics: [accuracy]", with: "metrics: [{metric: accuracy, nmae: acc}]"),
             ["unknown key 'metrics[0].nmae'", "did you mean 'name'", "a metric entry has name, metric"]),
        ] {
            XCTAssertThrowsError(try TaskRegistry.decode(text, file: "Registry/toy.yaml"), text) { e in
                let d = "\(e)"
                for w in words { XCTAssertTrue(d.contains(w), "\(w) not in: \(d)") }
            }
        }
        // Every task file of the registry has known keys only.
        for name in TaskRegistry.names { XCTAssertNoThrow(try TaskRegistry.definition(name), name) }
    }

    /// An unknown metric id is refused naming the file and the closest id; so is a selection
    /// metric that is no declared name, and a name declared twice.
    func testUnknownMetricIsRefusedWithASuggestion() throws {
        let ok = try TaskRegistry.decode(Self.yaml + "\nmetrics: [accuracy, {name: em, metric: multirc_group_em}]\nselection_metric: em\n", file: "Registry/toy.yaml")
        XCTAssertEqual(ok.metrics, [MetricSpec(name: "accuracy", metric: "accuracy"), MetricSpec(name: "em", metric: "multirc_group_em")])
        XCTAssertEqual(ok.selectionMetric, "em")

        XCTAssertThrowsError(try TaskRegistry.decode(Self.yaml + "\nmetrics: [acuracy]\nselection_metric: acuracy\n", file: "Registry/toy.yaml")) {
            let s = "\($0)"
            XCTAssertTrue(s.hasPrefix("Registry/toy.yaml: "), s)
            XCTAssertTrue(s.contains("unknown metric id 'acuracy' (did you mean 'accuracy'?)"), s)
        }
        XCTAssertThrowsError(try TaskRegistry.decode(Self.yaml + "\nmetrics: [{name: f1, metric: squad_f}]\nselection_metric: f1\n", file: "Registry/toy.yaml")) {
            XCTAssertTrue("\($0)".contains("metrics[0] ('f1'): unknown metric id 'squad_f' (did you mean 'squad_f1'?)"), "\($0)")
        }
        XCTAssertThrowsError(try TaskRegistry.decode(Self.yaml + "\nmetrics: [accuracy]\nselection_metric: acc\n", file: "Registry/toy.yaml")) {
            XCTAssertTrue("\($0)".contains("selection_metric 'acc' is not one of metrics (accuracy)"), "\($0)")
        }
        XCTAssertThrowsError(try TaskRegistry.decode(Self.yaml + "\nmetrics: [accuracy, {name: accuracy, metric: macro_f1}]\nselection_metric: accuracy\n", file: "Registry/toy.yaml")) {
            XCTAssertTrue("\($0)".contains("declared twice"), "\($0)")
        }
        // A label metric on a set whose target is generated text is refused when scoring.
        let gen = try TaskRegistry.decode(Self.yaml.replacingOccurrences(of: "{label_index}", with: "{span1_text}")
            + "\nmetrics: [accuracy, {name: em, metric: multirc_group_em}]\nselection_metric: em\n", file: "Registry/toy.yaml")
        XCTAssertThrowsError(try Metrics.score(gen, set: .dpt, examples: [ex("a", label: 1)], predictions: ["a"])) {
            XCTAssertTrue("\($0)".contains("metric 'em' (multirc_group_em) reads predictions as labels"), "\($0)")
        }
    }

    /// A source template that names the gold answer ({label_index}, {label_word}, {label},
    /// {answers_joined}) puts it into the model's input; a walkthrough's task file did so unnoticed.
    func testSourcesMayNotNameTheAnswer() throws {
        for field in ["label_index", "label_word", "label", "answers", "answers_joined"] {
            let text = Self.yaml.replacingOccurrences(of: "source: \"{text}\"", with: "source: \"{text} answer: {\(field)}\"")
                + "\nmetrics: [accuracy]\nselection_metric: accuracy\n"
            XCTAssertThrowsError(try TaskRegistry.decode(text, file: "Registry/toy.yaml"), field) {
                XCTAssertTrue("\($0)".contains("Registry/toy.yaml: templates.dpt.source uses {\(field)}"), "\($0)")
            }
        }
        // The registry's own tasks pass (MultiRC's {answer} is the answer option, an input).
        for t in TaskRegistry.names { XCTAssertNoThrow(try TaskRegistry.definition(t), t) }
    }
}
