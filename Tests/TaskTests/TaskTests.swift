import Foundation
import Support
import Tasks
import TestSupport
import XCTest

final class DataFileRefusalTests: XCTestCase {
    /// Files as users' copies have them that Python's json / open(encoding="utf-8") or HF's
    /// loaders refuse, which were read silently (a data review): each is refused naming the file,
    /// the line and what is wrong. The first lines of the real files, one of them altered.
    func testMalformedRowsAreRefusedByFileAndLine() throws {
        let shared = try sharedData()
        let dir = tempDir("datarefuse")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func lines(_ rel: String, _ n: Int) throws -> [String] {
            Array(try String(contentsOfFile: "\(shared)/\(rel)", encoding: .utf8).split(separator: "\n").prefix(n).map(String.init))
        }
        func refused(_ task: String, _ split: Split, _ rel: String, _ content: Data, _ fragment: String, file: StaticString = #filePath, line: UInt = #line) throws {
            let d = "\(dir)/\(task)-\(fragment.hashValue)"
            try FileManager.default.createDirectory(atPath: ("\(d)/\(rel)" as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try content.write(to: URL(fileURLWithPath: "\(d)/\(rel)"))
            let def = try TaskRegistry.definition(task)
            XCTAssertThrowsError(try Templates.examples(try DataLoader.load(def, split: split, dataDir: d), set: .dpt, training: split == .train),
                                 file: file, line: line) { e in
                XCTAssertTrue("\(e)".contains("\(d)/\(rel): ") && "\(e)".contains(fragment), "\(e)", file: file, line: line)
            }
        }
        let cb = try lines("superglue/cb/val.jsonl", 4), cbRel = "superglue/cb/val.jsonl"
        func text(_ l: [String]) -> Data { Data(l.joined(separator: "\n").utf8) }
        // Latin-1 "é" (0xE9) on line 2: Python's UnicodeDecodeError (it was read as U+FFFD).
        var l1 = Data((cb[0] + "\n").utf8); l1.append(contentsOf: Array("{\"premise\": \"caf".utf8) + [0xE9] + Array("\", \"idx\": 1}".utf8))
        try refused("cb", .validation, cbRel, l1, "line 2, byte 17 (0xe9): not valid UTF-8")
        // A trailing comma (Python: "Expecting property name enclosed in double quotes").
        try refused("cb", .validation, cbRel, text([cb[0], String(cb[1].dropLast()) + ", }"]), "line 2: not valid JSON (a comma before a closing bracket")
        // A null field a template reads (it was rendered as the text "<null>"); a null nothing reads is no error.
        try refused("cb", .validation, cbRel, text([cb[0], cb[1].replacingOccurrences(of: #""hypothesis": ""#, with: #""hypothesis": null, "x": ""#)]),
                    "line 2: field 'hypothesis' is null, and template set 'dpt' of Registry/cb.yaml reads it")
        let metaNull = "\(dir)/meta-null/superglue/cb"
        try FileManager.default.createDirectory(atPath: metaNull, withIntermediateDirectories: true)
        try text([cb[0], String(cb[1].dropLast()) + #", "meta": null}"#]).write(to: URL(fileURLWithPath: "\(metaNull)/val.jsonl"))
        XCTAssertEqual(try Templates.examples(try DataLoader.load(try TaskRegistry.definition("cb"), split: .validation, dataDir: "\(dir)/meta-null"),
                                              set: .dpt, training: false).count, 2)
        // A missing field: named with the data file and line (it named Registry/cb.yaml only).
        var noHyp = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(cb[2].utf8)) as? [String: Any])
        noHyp["hypothesis"] = nil
        try refused("cb", .validation, cbRel, text([cb[0], cb[1], String(decoding: try JSONSerialization.data(withJSONObject: noHyp), as: UTF8.self)]),
                    "line 3: no field 'hypothesis', which template set 'dpt' of Registry/cb.yaml reads")
        // A fractional or too-large label (read as another class by NSNumber.intValue); a bool printed as 1.
        let copa = try lines("superglue/copa/val.jsonl", 3), copaRel = "superglue/copa/val.jsonl"
        for (bad, shown) in [("0.6", "label 0.6 is not one of"), ("18446744073709551616", "label 18446744073709551616 is not one of")] {
            try refused("copa", .validation, copaRel, text([copa[0], copa[1].replacingOccurrences(of: #""label": 1"#, with: "\"label\": \(bad)")]), "line 2: " + shown)
        }
        try refused("copa", .validation, copaRel, text([copa[0], copa[1].replacingOccurrences(of: #""label": 1"#, with: #""label": true"#)]), "line 2: label true is not one of")
        // A WSC word index given as a string left the pronoun unmarked.
        let wsc = try lines("superglue/wsc/val.jsonl", 2), wscRel = "superglue/wsc/val.jsonl"
        let idx = try XCTUnwrap(wsc[1].range(of: #""span2_index": \d+"#, options: .regularExpression))
        try refused("wsc", .validation, wscRel, text([wsc[0], wsc[1].replacingCharacters(in: idx, with: "\"span2_index\": \"\(wsc[1][idx].split(separator: " ").last!)\"")]),
                    "line 2: 'span2_index' is \"")
        // ReCoRD: a validation query without answers (the official metric's max() fails), a passage
        // without entities, an entity offset given as a string (it said "outside the passage").
        // (The first line of whichever validation file the shared data has, written under the full file's name.)
        let recSource = FileManager.default.fileExists(atPath: "\(shared)/superglue/record/val.jsonl") ? "superglue/record/val.jsonl" : "superglue/record/val.subset5.jsonl"
        let rec = try lines(recSource, 1), recRel = "superglue/record/val.jsonl"
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(rec[0].utf8)) as? [String: Any])
        func recLine(_ edit: (inout [String: Any]) -> Void) throws -> Data {
            var o = obj
            edit(&o)
            return try JSONSerialization.data(withJSONObject: o)
        }
        try refused("record", .validation, recRel, try recLine { o in
            var qas = o["qas"] as! [[String: Any]]; qas[0]["answers"] = [[String: Any]](); o["qas"] = qas
        }, "line 1: query {passage")
        try refused("record", .validation, recRel, try recLine { o in
            var p = o["passage"] as! [String: Any]; p["entities"] = nil; o["passage"] = p
        }, "line 1: passage has no 'entities' list")
        try refused("record", .validation, recRel, try recLine { o in
            var p = o["passage"] as! [String: Any]; var e = p["entities"] as! [[String: Any]]; e[0]["start"] = "0"; p["entities"] = e; o["passage"] = p
        }, "line 1: entity 'start' is \"0\", not an integer code point offset")
    }
}

final class ReaderTests: XCTestCase {
    /// Row counts of the files present in shared/data against the official sizes (SOURCES.md).
    func testOfficialRowCounts() throws {
        let dir = try sharedData()
        let expected: [(String, Split, Int)] = [
            ("boolq", .validation, 3270), ("cb", .train, 250), ("cb", .validation, 56), ("copa", .train, 400),
            ("copa", .validation, 100), ("multirc", .train, 27243), ("multirc", .validation, 4848), ("rte", .train, 2490),
            ("rte", .validation, 277), ("wic", .train, 5428), ("wic", .validation, 638), ("wsc", .train, 554),
            ("wsc", .validation, 104), ("sst2", .train, 67349), ("sst2", .validation, 872), ("agnews", .validation, 7600),
        ]
        for (task, split, n) in expected {
            let d = try DataLoader.load(try TaskRegistry.definition(task), split: split, dataDir: dir)
            XCTAssertEqual(d.rows.count, n, "\(task) \(split)")
            XCTAssertFalse(d.isSubset, "\(task) \(split)")
        }
        // Subset files stand in for missing official splits, and say so.
        let boolqTrain = try DataLoader.load(try TaskRegistry.definition("boolq"), split: .train, dataDir: dir)
        XCTAssertTrue(boolqTrain.isSubset)
        XCTAssertEqual(boolqTrain.rows.count, 41)
        let recordVal = try DataLoader.load(try TaskRegistry.definition("record"), split: .validation, dataDir: dir)
        XCTAssertEqual(recordVal.rows.count, 11)  // 5 passages, 11 queries
        XCTAssertEqual(Set(FewShotSampler.pool(try DataLoader.load(try TaskRegistry.definition("wsc"), split: .train, dataDir: dir))).count, 259)
    }

    func testMissingSplitAndBadLinesNameTheFile() throws {
        let tmp = NSTemporaryDirectory() + "tasks-\(getpid())"
        try FileManager.default.createDirectory(atPath: "\(tmp)/superglue/cb", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        XCTAssertThrowsError(try DataLoader.load(try TaskRegistry.definition("cb"), split: .train, dataDir: tmp)) { e in
            XCTAssertTrue("\(e)".contains("superglue/cb/train.jsonl") && "\(e)".contains("fetch-data"), "\(e)")
        }
        try "{\"premise\": \"a\", \"hypothesis\": \"b\", \"label\": \"entailment\", \"idx\": 0}\n{broken\n"
            .write(toFile: "\(tmp)/superglue/cb/train.jsonl", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try DataLoader.load(try TaskRegistry.definition("cb"), split: .train, dataDir: tmp)) { e in
            XCTAssertTrue("\(e)".contains("train.jsonl") && "\(e)".contains("line 2"), "\(e)")
        }
        XCTAssertThrowsError(try TaskRegistry.definition("rtee")) { e in XCTAssertTrue("\(e)".contains("did you mean 'rte'"), "\(e)") }
    }
}

final class TemplateTests: XCTestCase {
    func first(_ task: String, training: Bool = false, set: TemplateSet = .dpt) throws -> Example {
        let d = try DataLoader.load(try TaskRegistry.definition(task), split: .validation, dataDir: try sharedData())
        return try Templates.examples(d, set: set, training: training)[0]
    }

    /// WSC under DePT's templates marks its spans as DePT's code does (T5's `_mark_span`, a regex
    /// at the span's word index, the span text unescaped, case-sensitive). Expected values from
    /// `scripts/dept_wsc_marks.py` (DePT's function, `regex` 2026.12.2): the sha256 of every row's
    /// source, and four rows in full. The marks were put by word count: 10 of the 104 validation
    /// inputs differed, e.g. val 5 (span "the table" against "The table": DePT marks nothing) and
    /// train 433 (DePT's "* Emma *'s", not "* Emma's *").
    func testDePTWSCMarksFollowDePTsCode() throws {
        let def = try TaskRegistry.definition("wsc"), dir = try sharedData()
        let want: [(Split, rows: Int, sha: String, examples: [Int: String])] = [
            (.train, 554, "a934b4d73364be2a64fd2604402f2a0c1e83904c7f8d08c8f386bb36214b0911",
             [137: "text: The boy continued to whip the * pony * , and eventually the pony threw him over. John laughed out quite loud. \"Good for # him #,\" he said. ",
              433: "text: * Emma *'s mother had died long ago, and # her # place had been taken by an excellent woman as governess."]),
            (.validation, 104, "901ef8c6d658c316dbe4646a9bdc1269389251a589ca58d592cabb2b6fb30f0c",
             [0: "text: Bernard , who had not told the government official that he was less than 21 when he filed for a homestead claim, did not consider that he had done anything dishonest. Still, * anyone * who knew that he was 19 years old could take his claim away from # him # .",
              5: "text: The large ball crashed right through the table because it was made of styrofoam."]),
        ]
        for (split, rows, sha, examples) in want {
            let d = try DataLoader.load(def, split: split, dataDir: dir)
            let ex = try Templates.examples(d, set: .dept, training: false)
            XCTAssertEqual(ex.count, rows, "\(split)")
            for (idx, source) in examples {
                XCTAssertEqual(ex.first { $0.id == .index(idx) }?.source, source, "\(split) idx \(idx)")
            }
            XCTAssertEqual(sha256Hex(ex.map(\.source).joined(separator: "\n")), sha, "\(split): some row's marks differ from DePT's")
        }
    }

    /// The first validation row of each task rendered with the DPT-code templates of METHODS §4.1.
    func testDPTTemplatesOnRealRows() throws {
        let cb = try first("cb")
        XCTAssertEqual(cb.source, "premise: Valence the void-brain, Valence the virtuous valet. Why couldn't the figger choose his own portion of titanic anatomy to shaft? Did he think he was helping? hypothesis: Valence was helping")
        XCTAssertEqual(cb.target, "1")  // contradiction
        let copa = try first("copa")
        XCTAssertEqual(copa.source, "premise: The man turned on the faucet. choice1: The toilet filled with water. choice2: Water flowed from the spout.")
        XCTAssertEqual(copa.target, "1")
        let rte = try first("rte")
        XCTAssertEqual(rte.source, "sentence1: Dana Reeve, the widow of the actor Christopher Reeve, has died of lung cancer at age 44, according to the Christopher Reeve Foundation. sentence2: Christopher Reeve had an accident.")
        XCTAssertEqual(rte.target, "1")  // not_entailment
        let wic = try first("wic")
        XCTAssertEqual(wic.source, "sentence1: An emerging professional class. sentence2: Apologizing for losing your temper, even though you were badly provoked, showed real class. word: class")
        XCTAssertEqual(wic.target, "0")
        let wsc = try first("wsc")
        XCTAssertEqual(wsc.source, "Bernard , who had not told the government official that he was less than 21 when he filed for a homestead claim, did not consider that he had done anything dishonest. Still, anyone who knew that he was 19 years old could take his claim away from * him * .")
        XCTAssertEqual(wsc.target, "anyone")
        XCTAssertEqual(wsc.label, 0)
        let boolq = try first("boolq")
        XCTAssertTrue(boolq.source.hasPrefix("question: does ethanol take more energy make that produces passage: Ethanol fuel -- All biomass"), boolq.source)
        let mrc = try first("multirc")
        XCTAssertTrue(mrc.source.hasPrefix("question: Would the mass of a baseball affect how much force you have to use to pick it up? answer: No paragraph: What causes a change in motion?"), mrc.source)
        XCTAssertEqual(mrc.target, "0")
        XCTAssertEqual(mrc.group, "0-0")
        let rec = try first("record")
        XCTAssertTrue(rec.source.hasPrefix("superglue-record record query: On October 10, acclaimed comedian and star of the summer box office hit Trainwreck Amy Schumer will make her SNL debut, followed by @placeholder a week later. entities: Amy Schumer, James, Jimmy Mack, McNair, Miley Cyrus, Morgan, NBC, New Jersey, New Jersey Turnpike, Night Live, SNL, Season 41, Tracy Morgan, Twitter passage: Tracy Morgan hasn't appeared"), rec.source)
        XCTAssertFalse(rec.source.contains("@highlight"))
        XCTAssertEqual(rec.answers, ["Morgan", "Tracy Morgan"])
        let sst = try first("sst2")
        XCTAssertEqual(sst.source, "sentence: it 's a charming and often affecting journey . ")  // GLUE's trailing space, kept
        XCTAssertEqual(sst.target, "1")
    }

    func testTrainingExpansionAndFilters() throws {
        let dir = try sharedData()
        let rec = try DataLoader.load(try TaskRegistry.definition("record"), split: .validation, dataDir: dir)
        let train = try Templates.examples(rec, set: .dpt, training: true, rows: [0])
        XCTAssertEqual(train.map(\.target), ["Morgan", "Tracy Morgan"])  // one row per gold answer
        let wsc = try DataLoader.load(try TaskRegistry.definition("wsc"), split: .validation, dataDir: dir)
        XCTAssertEqual(try Templates.examples(wsc, set: .dpt, training: true).count, 38)   // label-1 only
        XCTAssertEqual(try Templates.examples(wsc, set: .dpt, training: false).count, 104)
        let sst = try DataLoader.load(try TaskRegistry.definition("sst2"), split: .validation, dataDir: dir)
        let lopt = try Templates.examples(sst, set: .lopt, training: false, rows: [0])[0]
        XCTAssertEqual(lopt.source, "it 's a charming and often affecting journey . . It was")
        XCTAssertEqual(lopt.target, "positive")
    }
}

final class MetricTests: XCTestCase {
    func ex(_ target: String, label: Int? = nil, group: String? = nil, referent: String? = nil, answers: [String]? = nil, id: Int = 0) -> Example {
        Example(id: .index(id), row: id, source: "", target: target, answers: answers ?? [target], label: label, group: group, referent: referent)
    }

    func testAccuracyAndMacroF1ByHand() {
        XCTAssertEqual(Metrics.accuracy(["0", "1", "2", "1"], ["0", "1", "1", "banana"]), 50)
        // Class 0: tp1 → F1 1; class 1: tp1 fp1 fn1 → 2/4 = 0.5; class 2: tp0 → 0. Macro = 1.5/3 = 50 %.
        XCTAssertEqual(Metrics.macroF1(["0", "1", "2", "1"], ["0", "1", "1", "banana"], classes: ["0", "1", "2"]), 50, accuracy: 1e-9)
    }

    func testMultiRCByHand() {
        // Group A: rows (1,1) (0,0) all correct; group B: (1,0) wrong, (0,"x") invalid → counts as wrong.
        let e = [ex("1", label: 1, group: "A"), ex("0", label: 0, group: "A"), ex("1", label: 1, group: "B"), ex("0", label: 0, group: "B")]
        let (f1a, em) = Metrics.multirc(e, ["1", "0", "0", "x"])
        // Invalid "x" with gold 0 becomes "1": tp 1, fp 1, fn 1 → F1 = 2/4 = 50 %.
        XCTAssertEqual(f1a, 50, accuracy: 1e-9)
        XCTAssertEqual(em, 50, accuracy: 1e-9)
    }

    func testReCoRDByHand() {
        XCTAssertEqual(Metrics.squadNormalize("The  U.S. Army's"), "us armys")
        XCTAssertEqual(Metrics.tokenF1("Tracy Morgan show", "Morgan"), 0.5, accuracy: 1e-12)  // P 1/3, R 1 → 0.5
        let e = [ex("", answers: ["Morgan", "Tracy Morgan"]), ex("", answers: ["NBC"], id: 1)]
        let r = Metrics.record(e, ["the Morgan", "CBS"])
        XCTAssertEqual(r["em"]!, 50, accuracy: 1e-9)
        XCTAssertEqual(r["f1"]!, 50, accuracy: 1e-9)
        XCTAssertEqual(r["em_per_row"]!, 100 * 2.0 / 3.0, accuracy: 1e-9)  // first query weighs 2 rows
    }

    func testWSCRuleByHand() {
        XCTAssertEqual(Metrics.wscSimple(prediction: "the dog", referent: "The big dog"), 1)
        XCTAssertEqual(Metrics.wscSimple(prediction: "Mr. Moncrieff", referent: "Mr. Moncrieff's son"), 0)  // apostrophe on one side
        XCTAssertEqual(Metrics.wscSimple(prediction: "  ", referent: "dog"), -1)
        XCTAssertEqual(Metrics.wscSimple(prediction: "cat", referent: "dog"), 0)
        let e = [ex("dog", label: 1, referent: "dog"), ex("cat", label: 0, referent: "cat"), ex("man", label: 1, referent: "the man")]
        let (all, l1) = Metrics.wsc(e, ["the dog", "cat", ""])
        XCTAssertEqual(all, 100.0 / 3.0, accuracy: 1e-9)  // row 1 ok; row 2 flag 1 ≠ label 0; row 3 empty
        XCTAssertEqual(l1, 50, accuracy: 1e-9)
    }

    /// Python `str.split()` / `str.strip()` whitespace: every Unicode space and U+001C–U+001F, not U+200B.
    func testUnicodeWhitespaceAsPython() {
        XCTAssertEqual(Metrics.squadNormalize("the\u{a0}New\u{2009}York"), "new york")
        for sep in ["\u{a0}", "\u{2009}", "\u{3000}", "\u{2028}", "\u{1f}", "\u{1c}", "\u{0b}", "\u{85}", "\u{2003}", "\u{202f}", "\u{1680}"] {
            XCTAssertEqual(Metrics.squadNormalize("New\(sep)York\(sep)"), "new york", "U+\(String(sep.unicodeScalars.first!.value, radix: 16))")
            XCTAssertEqual(pyStrip("\(sep) x y\(sep)"), "x y")
        }
        XCTAssertEqual(pySplit("a\u{200b}b c"), ["a\u{200b}b", "c"])  // zero-width space is not whitespace in Python
        XCTAssertEqual(Metrics.tokenF1("New\u{a0}York Times", "new york"), 0.8, accuracy: 1e-12)  // P 2/3, R 1
        XCTAssertEqual(Metrics.wscSimple(prediction: "\u{3000}the dog\u{85}", referent: "dog"), 1)
        XCTAssertEqual(pySlice("a😀bc", 1, 3), "😀b")  // code points, as Python indexes str
    }

    /// Python `str` semantics beyond whitespace, each case worked by hand from the official SQuAD
    /// v1.1 `normalize_answer` / `f1_score` and T5's `wsc_simple` (and checked against them run in
    /// Python): comparison by code points (Swift's `==` equates canonically equivalent strings),
    /// `lower()` with Final_Sigma, `re`'s `\b` (letters and numerics are word characters, combining
    /// marks and joiners are not), and `split(" ")` on the scalar U+0020.
    func testSQuADAndWSCFollowPythonStrings() {
        // Final sigma: "ΟΔΟΣ".lower() == "οδος" with ς (U+03C2); σ inside a word or alone.
        XCTAssertEqual(Array(pyLower(Array("ΟΔΟΣ ΣΑ Σ".unicodeScalars)).map(\.value)),
                       [0x3BF, 0x3B4, 0x3BF, 0x3C2, 0x20, 0x3C3, 0x3B1, 0x20, 0x3C3])
        XCTAssertTrue(Metrics.squadExactMatch("ΟΔΟΣ", "οδο\u{3C2}"))
        XCTAssertEqual(Metrics.wscSimple(prediction: "οδο\u{3C2}", referent: "ΟΔΟΣ"), 1)
        // NFC and NFD are different strings to Python: EM 0; "Zoë Ball" against NFD "Zoe\u{308} Ball"
        // shares one token of two on each side, F1 = 0.5.
        XCTAssertFalse(Metrics.squadExactMatch("Jose\u{301}", "Jos\u{E9}"))
        XCTAssertEqual(Metrics.tokenF1("Zo\u{EB} Ball", "Zoe\u{308} Ball"), 0.5, accuracy: 1e-12)
        XCTAssertEqual(Metrics.wscSimple(prediction: "Jose\u{301}", referent: "Jos\u{E9}"), 0)
        // "a²": ² is numeric, so a word character: no boundary after "a", the article stays (tokens
        // a², x against ², x: F1 0.5). A combining mark or a joiner after "the" is not a word
        // character, so "the" is an article there and is removed.
        XCTAssertFalse(Metrics.squadExactMatch("\u{B2} x", "a\u{B2} x"))
        XCTAssertEqual(Metrics.tokenF1("\u{B2} x", "a\u{B2} x"), 0.5, accuracy: 1e-12)
        XCTAssertTrue(Metrics.squadExactMatch("\u{301} cat", "the\u{301} cat"))
        XCTAssertTrue(Metrics.squadExactMatch("\u{200D} x", "the\u{200D} x"))
        // A space followed by a combining mark still separates tokens: gold x, \u{301}y against x
        // gives P 1, R 1/2, F1 2/3; and WSC's word sets {x} ⊂ {x, \u{301}y}.
        XCTAssertEqual(Metrics.tokenF1("x", "x \u{301}y"), 2.0 / 3.0, accuracy: 1e-12)
        XCTAssertEqual(Metrics.wscSimple(prediction: "x", referent: "x \u{301}y"), 1)
        // A referent of determiners only cleans to "", whose word set is {""}: not inside {dog}.
        XCTAssertEqual(Metrics.wscSimple(prediction: "dog", referent: "the"), 0)
        XCTAssertEqual(Metrics.wscSimple(prediction: "the dog", referent: "The"), 0)
        // HF's loader keeps both spellings (sorted(set(...)) of str), ordered by code points.
        XCTAssertEqual(pySortedUnique(["Jos\u{E9}", "Jose\u{301}", "Bob", "Jos\u{E9}"]).map { $0.unicodeScalars.map(\.value) },
                       [[0x42, 0x6F, 0x62], [0x4A, 0x6F, 0x73, 0x65, 0x301], [0x4A, 0x6F, 0x73, 0xE9]])
    }

    /// A prediction names a label word when their code points are equal, as Python's `==` on str:
    /// "café" decoded as NFD (e + U+0301) is not the NFC label word, and counts as invalid.
    func testLabelWordsCompareAsCodePoints() throws {
        let yaml = try String(contentsOfFile: "\(repoRoot)/Sources/Tasks/Registry/cb.yaml", encoding: .utf8)
            .replacingOccurrences(of: "words: [entailment, contradiction, neutral]", with: "words: [caf\u{E9}, non, peut-\u{EA}tre]")
        let def = try TaskRegistry.decode(yaml, file: "cb-accents.yaml")
        let e = [ex("caf\u{E9}", label: 0, id: 0), ex("non", label: 1, id: 1)]
        let nfd = "cafe\u{301}"
        let rows = try Metrics.rows(def, set: .respt, examples: e, predictions: ["caf\u{E9}", nfd])
        XCTAssertEqual(rows.map { $0.label }, [0, nil])
        XCTAssertEqual(Metrics.unlabelled(def, set: .respt, predictions: [nfd, " caf\u{E9} "]), 1)
    }

    /// Files with Windows ("\r\n") or old Mac ("\r") line endings read as Python's text mode reads
    /// them: a grapheme-level split kept "\r\n" whole, so a CRLF JSONL file was one line.
    func testLinesAsPythonTextMode() throws {
        XCTAssertEqual(pyLines("a\r\nb\rc\n\nd"), ["a", "b", "c", "", "d"])
        XCTAssertEqual(pyLines("a\n"), ["a"])
        XCTAssertEqual(try Readers.jsonLines("{\"x\": 1}\r\n{\"x\": 2}\r\n", path: "t.jsonl").map { $0.1["x"] as? Int }, [1, 2])
        let tsv = try Readers.tsv("sentence\tlabel\r\ngood film\t1\r\nbad\t0\r\n", path: "t.tsv")
        XCTAssertEqual(tsv.map { $0.fields["label"] as? Int }, [1, 0])
    }

    /// AG News lines as HF's ag_news loader reads them (Python `csv.reader`, `skipinitialspace=True`;
    /// expected fields from Python 3.11's csv module): spaces after a comma are skipped, a quote
    /// followed by a combining mark still opens a quoted field (read by Characters, the two were one
    /// and the field kept its quotes), doubled quotes are one, a quote inside an unquoted field is
    /// kept. An unterminated quote is refused (our choice: Python's lenient reader would end the
    /// field at the line's end). SST-2 sentences keep their trailing space (GLUE's, which HF's
    /// glue/sst2 keeps).
    func testCSVFieldsAsPythonsReaderAndSST2Verbatim() throws {
        func f(_ l: String) throws -> [String] { try Readers.csvFields(l, path: "t.csv", line: 1) }
        XCTAssertEqual(try f("\"3\", \"Space after comma\",\"desc\""), ["3", "Space after comma", "desc"])
        XCTAssertEqual(try f("\"3\",\"\u{301}Comb title\",\"desc\""), ["3", "\u{301}Comb title", "desc"])
        XCTAssertEqual(try f("  \"1\",\"a \"\"q\"\" b\",x\"y"), ["1", "a \"q\" b", "x\"y"])
        XCTAssertEqual(try f("\"2\",\"\",\"\""), ["2", "", ""])
        XCTAssertThrowsError(try f("\"2\",\"open"))
        let tsv = try Readers.tsv("sentence\tlabel\nit 's good . \t1\n", path: "t.tsv")
        XCTAssertEqual(tsv.first?.fields["sentence"] as? String, "it 's good . ")
    }

    /// For every task × template set with label targets: the set's own targets score 100 on every
    /// metric; the same decisions written in any set's vocabulary score the same; and invalid
    /// outputs score as the official metrics say (accuracy: wrong; macro-F1: a miss for the gold
    /// class; MultiRC F1a: the opposite of the gold label). Generated-text sets (WSC referent,
    /// ReCoRD answers) score 100 on their own targets where the rule allows it.
    func testMetricsFollowTheTemplateSetsLabelWords() throws {
        let dir = try sharedData()
        for task in TaskRegistry.names {
            let def = try TaskRegistry.definition(task)
            let data = try DataLoader.load(def, split: .validation, dataDir: dir)
            var decisions: [Int?]? = nil
            var reference: [String: Double]? = nil
            for set in TemplateSet.allCases {
                guard let tpl = def.templates[set.rawValue] else { continue }
                let ex = Array(try Templates.examples(data, set: set, training: false).prefix(400))
                let own = try Metrics.score(def, set: set, examples: ex, predictions: ex.map(\.target))
                guard let v = tpl.verbalizer(labels: def.labels) else {
                    if task == "wsc" { XCTAssertEqual(own["accuracy_label1"], 100, "\(task)/\(set) own targets") }
                    // ReCoRD/respt targets join every answer with "; " and are compared whole with each
                    // answer, as ResPT's scorer does: only single-answer queries reach 100.
                    else if !(task == "record" && set == .respt) { for (k, x) in own { XCTAssertEqual(x, 100, "\(task)/\(set) own targets: \(k)") } }
                    continue
                }
                for (k, x) in own { XCTAssertEqual(x, 100, "\(task)/\(set) own targets: \(k)") }
                // Fixed decisions: mostly right, some wrong, every 7th an invalid output.
                if decisions == nil {
                    decisions = ex.enumerated().map { i, e in i % 7 == 3 ? nil : (i % 3 == 0 ? ((e.label ?? 0) + 1) % v.count : e.label) }
                }
                let preds = decisions!.map { $0.map { v[$0] } ?? "maybe" }
                let got = try Metrics.score(def, set: set, examples: ex, predictions: preds)
                if let r = reference {
                    XCTAssertEqual(got, r, "\(task)/\(set): the same decisions must score the same in every set")
                } else {
                    reference = got
                }
                // Invalid outputs, by the rule of each metric (computed here from the decisions).
                let gold = ex.map { $0.label! }
                let right = zip(gold, decisions!).filter { $0 == $1 }.count
                if let acc = got["accuracy"], task != "wsc" {
                    XCTAssertEqual(acc, 100 * Double(right) / Double(ex.count), accuracy: 1e-9, "\(task)/\(set) accuracy")
                }
                if task == "multirc" {
                    var tp = 0, fp = 0, fn = 0
                    for (g, d) in zip(gold, decisions!) {
                        let p = d ?? 1 - g
                        if p == 1 && g == 1 { tp += 1 } else if p == 1 { fp += 1 } else if g == 1 { fn += 1 }
                    }
                    XCTAssertEqual(got["f1a"]!, 100 * 2 * Double(tp) / Double(2 * tp + fp + fn), accuracy: 1e-9, "\(task)/\(set) f1a")
                }
            }
        }
    }

    func testScoreFileChecksIdx() throws {
        let dir = try sharedData()
        let def = try TaskRegistry.definition("cb")
        let data = try DataLoader.load(def, split: .validation, dataDir: dir)
        let tmp = NSTemporaryDirectory() + "preds-\(getpid()).jsonl"
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let ex = try Templates.examples(data, set: .dpt, training: false)
        var lines = ex.map { "{\"idx\": \($0.id), \"prediction\": \"\($0.target)\"}" }
        try lines.joined(separator: "\n").write(toFile: tmp, atomically: true, encoding: .utf8)
        let s = try Metrics.scoreFile(def, data: data, predictionsPath: tmp)
        XCTAssertEqual(s["accuracy"], 100)
        XCTAssertEqual(s["macro_f1"], 100)
        lines.append(lines[0])
        try lines.joined(separator: "\n").write(toFile: tmp, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try Metrics.scoreFile(def, data: data, predictionsPath: tmp)) { XCTAssertTrue("\($0)".contains("duplicate")) }
        try lines.dropFirst(2).joined(separator: "\n").write(toFile: tmp, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try Metrics.scoreFile(def, data: data, predictionsPath: tmp)) { XCTAssertTrue("\($0)".contains("no prediction")) }
    }
}

final class SamplerTests: XCTestCase {
    func testDeterministicNestedAndStable() throws {
        let data = try DataLoader.load(try TaskRegistry.definition("rte"), split: .train, dataDir: try sharedData())
        let a = try FewShotSampler.sample(data, k: 16, seed: 2), b = try FewShotSampler.sample(data, k: 16, seed: 2)
        XCTAssertEqual(try a.encoded(), try b.encoded())
        let k8 = try FewShotSampler.sample(data, k: 8, seed: 2)
        XCTAssertEqual(Array(a.indices.prefix(8)), k8.indices)   // nested across k
        XCTAssertNotEqual(try FewShotSampler.sample(data, k: 16, seed: 3).indices, a.indices)
        XCTAssertEqual(Set(a.indices).count, 16)
        let round = try JSONDecoder().decode(Manifest.self, from: try a.encoded())
        XCTAssertEqual(round, a)
        var bad = a
        bad.trainSha256 = String(repeating: "0", count: 64)
        XCTAssertThrowsError(try bad.verify(against: data, path: "m.json", k: 16, seed: 2, sampler: .uniform)) { XCTAssertTrue("\($0)".contains("hash mismatch")) }
        XCTAssertNoThrow(try a.verify(against: data, path: "m.json", k: 16, seed: 2, sampler: .uniform))
        // Not this cell's sample: a manifest under another cell's name (k 16 read as k 8, seed 2
        // as seed 1), another sampler, or a list that is not k distinct rows of the pool.
        for (k, seed, sampler, fragment) in [(8, 2, SamplerKind.uniform, "k is 16, but the run reading it needs 8"),
                                             (16, 1, .uniform, "seed is 2, but the run reading it needs 1"),
                                             (16, 2, .balanced, "sampler is philox4x32-10 fisher-yates v1 (key")] {
            XCTAssertThrowsError(try a.verify(against: data, path: "m.json", k: k, seed: seed, sampler: sampler)) {
                XCTAssertTrue("\($0)".contains("m.json") && "\($0)".contains(fragment), "\($0)")
            }
        }
        var repeated = a
        repeated.indices[1] = repeated.indices[0]
        XCTAssertThrowsError(try repeated.verify(against: data, path: "m.json", k: 16, seed: 2, sampler: .uniform)) { XCTAssertTrue("\($0)".contains("listed twice"), "\($0)") }
        var short = a
        short.indices.removeLast()
        XCTAssertThrowsError(try short.verify(against: data, path: "m.json", k: 16, seed: 2, sampler: .uniform)) { XCTAssertTrue("\($0)".contains("15 indices for k = 16"), "\($0)") }
    }

    func testWSCSamplesOnlyLabelOne() throws {
        let data = try DataLoader.load(try TaskRegistry.definition("wsc"), split: .train, dataDir: try sharedData())
        let m = try FewShotSampler.sample(data, k: 32, seed: 1)
        for i in m.indices { XCTAssertEqual(data.rows[i].fields["label"] as? Bool, true) }
        // A hand-made WSC manifest with a label-0 row is refused: it is not a row WSC trains on.
        var edited = m
        edited.indices[0] = try XCTUnwrap(data.rows.indices.first { data.rows[$0].fields["label"] as? Bool == false && !m.indices.contains($0) })
        XCTAssertThrowsError(try edited.verify(against: data, path: "w.json", k: 32, seed: 1, sampler: .uniform)) {
            XCTAssertTrue("\($0)".contains("is not one the task samples from"), "\($0)")
        }
    }
}

/// The committed manifests are exactly what the sampler draws now (byte-stable), and cover every
/// paper setting: k = 8/16/32 × seeds 1–3 × all tasks.
final class CommittedManifestTests: XCTestCase {
    func testManifestsAreCompleteAndByteStable() throws {
        let dir = try sharedData()
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Baselines/manifests").standardized.path
        for task in TaskRegistry.names {
            let data = try DataLoader.load(try TaskRegistry.definition(task), split: .train, dataDir: dir)
            for k in [8, 16, 32] {
                for seed in 1...3 {
                    let m = try FewShotSampler.sample(data, k: k, seed: seed)
                    let path = "\(root)/\(m.fileName)"
                    let committed = try Data(contentsOf: URL(fileURLWithPath: path))
                    XCTAssertEqual(committed, try m.encoded(), "\(path) differs from a fresh draw")
                    try Manifest.load(path: path).verify(against: data, path: path, k: k, seed: seed, sampler: .uniform)
                }
            }
        }
    }

    func testDataLockMatchesSharedData() throws {
        let dir = try sharedData()
        let lockPath = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Baselines/data.lock").standardized.path
        let lock = try DataFiles.Lock.load(path: lockPath)
        XCTAssertGreaterThan(lock.entries.count, 30)
        for (rel, sha) in lock.entries {
            try lock.check(relativePath: rel, sha256: try SHA256.hex(file: "\(dir)/\(rel)"), allowUnpinned: false, lockPath: lockPath)
            XCTAssertEqual(sha.count, 64)
        }
        XCTAssertThrowsError(try lock.check(relativePath: "superglue/cb/val.jsonl", sha256: String(repeating: "1", count: 64), allowUnpinned: false, lockPath: lockPath))
        XCTAssertNoThrow(try lock.check(relativePath: "x/y.jsonl", sha256: "", allowUnpinned: true, lockPath: lockPath))
    }
}

/// The respt set as ResPT's code builds its inputs (METHODS §4.1): `key: value` sources (SST-2's
/// `sentence: …`, where it gave the bare sentence) and one ReCoRD training row per query with the
/// "; "-joined answers (it repeated that row once per gold answer: 21 rows for 16 queries). The
/// dpt set keeps DPT's one row per gold answer.
final class ResPTInputTests: XCTestCase {
    func testResPTSourcesAndReCoRDRows() throws {
        let dir = try sharedData()
        let sst2 = try DataLoader.load(try TaskRegistry.definition("sst2"), split: .validation, dataDir: dir)
        let first = try XCTUnwrap(try Templates.examples(sst2, set: .respt, training: false).first)
        XCTAssertEqual(first.source, "sentence: " + (sst2.rows[0].fields["sentence"] as! String))
        let record = try DataLoader.load(try TaskRegistry.definition("record"), split: .train, dataDir: dir)
        let rows = Array(0..<40)
        let answers = rows.map { ((record.rows[$0].fields["answers"] as? [String]) ?? []).count }
        XCTAssertGreaterThan(answers.filter { $0 > 1 }.count, 0, "some query has several gold answers")
        let respt = try Templates.examples(record, set: .respt, training: true, rows: rows)
        XCTAssertEqual(respt.count, rows.count)
        XCTAssertEqual(respt[0].target, ((record.rows[0].fields["answers"] as? [String]) ?? []).joined(separator: "; "))
        let dpt = try Templates.examples(record, set: .dpt, training: true, rows: rows)
        XCTAssertEqual(dpt.count, answers.map { max($0, 1) }.reduce(0, +))
    }
}
