import Foundation
import Support
import Tasks
import TestSupport
import XCTest

/// Reference scores (majority class, uniform chance) and the invalid-output fraction, against
/// hand-worked numbers, exhaustive enumeration of every prediction vector, and a Philox Monte Carlo.
final class ReferenceScoreTests: XCTestCase {
    func ex(_ label: Int?, group: String? = nil, referent: String? = nil, answers: [String] = [], entities: [String]? = nil, id: Int = 0) -> Example {
        var e = Example(id: .index(id), row: id, source: "", target: label.map(String.init) ?? "", answers: answers, label: label, group: group, referent: referent)
        e.entities = entities
        return e
    }

    /// Mean of `Metrics.score` over every prediction vector with entries from `outputs(i)` (exact oracle).
    func enumerate(_ def: TaskDefinition, set: TemplateSet, _ examples: [Example], outputs: (Int) -> [String]) throws -> [String: Double] {
        var sums: [String: Double] = [:], count = 0.0
        func go(_ i: Int, _ preds: [String]) throws {
            if i == examples.count {
                for (k, v) in try Metrics.score(def, set: set, examples: examples, predictions: preds) { sums[k, default: 0] += v }
                count += 1
                return
            }
            for o in outputs(i) { try go(i + 1, preds + [o]) }
        }
        try go(0, [])
        return sums.mapValues { $0 / count }
    }

    func testCBMajorityAndUniformByHand() throws {
        let cb = try TaskRegistry.definition("cb")
        let e = [1, 0, 1, 2, 1, 0].enumerated().map { ex($1, id: $0) }
        // Majority: contradiction (3 of 6) → accuracy 50; macro-F1: class 1 F1 = 2·3/(3 + 6) = 2/3, others 0 → 22.22.
        let m = try XCTUnwrap(ReferenceScores.majority(cb, set: .dpt, examples: e))
        XCTAssertEqual(m["accuracy"]!, 50, accuracy: 1e-9)
        XCTAssertEqual(m["macro_f1"]!, 100 * (2.0 / 3) / 3, accuracy: 1e-9)
        // Uniform: accuracy exactly 100/3; macro-F1 equals the mean over all 3^6 prediction vectors.
        let u = try XCTUnwrap(ReferenceScores.uniform(cb, set: .dpt, examples: e))
        XCTAssertEqual(u["accuracy"]!, 100.0 / 3, accuracy: 1e-9)
        let all = try enumerate(cb, set: .dpt, e) { _ in ["0", "1", "2"] }
        XCTAssertEqual(u["macro_f1"]!, all["macro_f1"]!, accuracy: 1e-9)
        XCTAssertEqual(u["accuracy"]!, all["accuracy"]!, accuracy: 1e-9)
        // ResPT's label words give the same numbers (the verbaliser decides, not the spelling).
        XCTAssertEqual(try ReferenceScores.majority(cb, set: .respt, examples: e), m)
        // A constant prediction of one class c: F1_c = 2·n_c / (n_c + n); macro = that / C.
        XCTAssertEqual(ReferenceScores.expectedF1(positives: 3, negatives: 3, p: 1), 2.0 * 3 / (3 + 6), accuracy: 1e-12)
    }

    /// Ties go to the first label in the task's order: MultiRC rows 0,1,0,1 predict "0" (F1a 0, not 66.67).
    func testMultiRCMajorityTieAndUniformExact() throws {
        let mr = try TaskRegistry.definition("multirc")
        let tie = [0, 1, 0, 1].enumerated().map { ex($1, group: $0 < 2 ? "A" : "B", id: $0) }
        let m = try XCTUnwrap(ReferenceScores.majority(mr, set: .dpt, examples: tie))
        XCTAssertEqual(m["f1a"]!, 0)
        XCTAssertEqual(m["em"]!, 0)
        // Uniform: F1a and EM (mean over questions of 1/2^rows) against all 2^6 prediction vectors.
        let e = [1, 0, 0, 1, 1, 0].enumerated().map { ex($1, group: $0 < 4 ? "A" : "B", id: $0) }
        let u = try XCTUnwrap(ReferenceScores.uniform(mr, set: .dpt, examples: e))
        let all = try enumerate(mr, set: .dpt, e) { _ in ["0", "1"] }
        XCTAssertEqual(u["f1a"]!, all["f1a"]!, accuracy: 1e-9)
        XCTAssertEqual(u["em"]!, 100 * (1.0 / 16 + 1.0 / 4) / 2, accuracy: 1e-9)
        XCTAssertEqual(u["em"]!, all["em"]!, accuracy: 1e-9)
    }

    /// WSC generating the referent: label false is "a phrase that is not the referent", true the referent.
    func testWSCReferentSet() throws {
        let wsc = try TaskRegistry.definition("wsc")
        let e = [ex(1, referent: "the dog", id: 0), ex(0, referent: "Mr. Moncrieff's son", id: 1), ex(0, referent: "cat", id: 2)]
        let m = try XCTUnwrap(ReferenceScores.majority(wsc, set: .dpt, examples: e))
        XCTAssertEqual(m["accuracy"]!, 200.0 / 3, accuracy: 1e-9)
        XCTAssertEqual(m["accuracy_label1"]!, 0)
        let u = try XCTUnwrap(ReferenceScores.uniform(wsc, set: .dpt, examples: e))
        let all = try enumerate(wsc, set: .dpt, e) { ["<no referent>", e[$0].referent!] }
        XCTAssertEqual(u["accuracy"]!, 50, accuracy: 1e-9)
        XCTAssertEqual(u["accuracy_label1"]!, 50, accuracy: 1e-9)
        XCTAssertEqual(u["accuracy"]!, all["accuracy"]!, accuracy: 1e-9)
    }

    /// ReCoRD: no majority class; uniform over each passage's entities, per query and per row.
    func testReCoRDUniformOverEntities() throws {
        let rec = try TaskRegistry.definition("record")
        let e = [ex(nil, answers: ["Morgan", "Tracy Morgan"], entities: ["Morgan", "NBC", "Tracy Morgan"], id: 0),
                 ex(nil, answers: ["NBC"], entities: ["CBS", "NBC"], id: 1)]
        XCTAssertNil(try ReferenceScores.majority(rec, set: .dpt, examples: e))
        let u = try XCTUnwrap(ReferenceScores.uniform(rec, set: .dpt, examples: e))
        // Query 1: EM 1, 0, 1 and F1 1, 0, 1 over its entities → 2/3; query 2: 1/2. Per row: query 1 weighs 2.
        XCTAssertEqual(u["em"]!, 100 * (2.0 / 3 + 0.5) / 2, accuracy: 1e-9)
        XCTAssertEqual(u["f1"]!, 100 * (2.0 / 3 + 0.5) / 2, accuracy: 1e-9)
        XCTAssertEqual(u["em_per_row"]!, 100 * (2 * 2.0 / 3 + 0.5) / 3, accuracy: 1e-9)
        let all = try enumerate(rec, set: .dpt, e) { e[$0].entities! }
        for k in ["em", "f1", "em_per_row", "f1_per_row"] { XCTAssertEqual(u[k]!, all[k]!, accuracy: 1e-9, k) }
    }

    func testInvalidFractionRules() throws {
        let cb = try TaskRegistry.definition("cb")
        let e = (0..<5).map { ex(0, id: $0) }
        XCTAssertEqual(try Metrics.invalidFraction(cb, set: .dpt, examples: nil, predictions: ["0", " 1 ", "x", "", "2"]), 0.4)
        XCTAssertEqual(try Metrics.invalidFraction(cb, set: .respt, examples: e, predictions: ["entailment", "0", "neutral", "neutral", "1"]), 0.4)
        let rec = try TaskRegistry.definition("record")
        let r = [ex(nil, answers: ["NBC"], entities: ["Tracy Morgan", "NBC"], id: 0), ex(nil, answers: ["NBC"], entities: ["NBC"], id: 1)]
        XCTAssertEqual(try Metrics.invalidFraction(rec, set: .dpt, examples: r, predictions: ["tracy morgan.", "Obama"]), 0.5)
        XCTAssertNil(try Metrics.invalidFraction(rec, set: .dpt, examples: nil, predictions: ["NBC", "NBC"]), "ReCoRD needs the entities")
        let wsc = try TaskRegistry.definition("wsc")
        XCTAssertEqual(try Metrics.invalidFraction(wsc, set: .dpt, examples: nil, predictions: ["", "the", "dog", "zzz"]), 0.5)
        XCTAssertEqual(try Metrics.invalidFraction(wsc, set: .dept, examples: nil, predictions: ["0", "1", "dog", "1"]), 0.25)
    }

    /// Labels compare by code points, as the scorer and Python do: Swift's == took U+212A KELVIN
    /// SIGN for the label word "K", so the invalid-output share counted it as naming a label that
    /// the accuracy then scored as wrong.
    func testInvalidFractionComparesCodePoints() throws {
        // A task whose labels are K and no, with one template (`set`: `template`).
        func kelvinTask(_ name: String, _ template: String) throws -> TaskDefinition {
            try TaskRegistry.decode("""
                task: \(name)
                version: 1
                reader: superglue
                files: {train: [k/train.jsonl], validation: [k/val.jsonl]}
                labels: [K, no]
                templates:
                  \(template)
                metrics: [accuracy]
                selection_metric: accuracy
                """, file: "\(name).yaml")
        }
        let def = try kelvinTask("kelvin", #"respt: {source: "{premise}", target: "{label_word}", words: [K, "no"]}"#)
        let preds = ["\u{212A}", "K", "no", "x"]
        XCTAssertEqual(try Metrics.invalidFraction(def, set: .respt, examples: nil, predictions: preds), 0.5)
        let e = [ex(0, id: 0), ex(0, id: 1), ex(1, id: 2), ex(1, id: 3)]
        XCTAssertEqual(try Metrics.score(def, set: .respt, examples: e, predictions: preds)["accuracy"], 50)
        // A generated target (the text itself, no verbaliser): the registry's accuracy and the
        // official-function oracle both compare code points.
        let gen = try kelvinTask("kelvin2", #"dpt: {source: "{premise}", target: "{premise}"}"#)
        var g = [ex(0, id: 0), ex(0, id: 1)]
        for i in g.indices { g[i].target = "K" }
        XCTAssertEqual(try Metrics.score(gen, set: .dpt, examples: g, predictions: ["\u{212A}", "K"])["accuracy"], 50)
        XCTAssertEqual(Metrics.accuracy(["K", "K"], ["\u{212A}", "K"]), 50)
    }

    /// Real data: CB's full validation split (56: 23 entailment, 28 contradiction, 5 neutral) and a
    /// Philox Monte Carlo of uniform labels that agrees with the exact expectation within 4 standard errors.
    func testCBFullValidationAndMonteCarlo() throws {
        let cb = try TaskRegistry.definition("cb")
        let e = try Templates.examples(try DataLoader.load(cb, split: .validation, dataDir: try sharedData()), set: .dpt, training: false)
        XCTAssertEqual(e.count, 56)
        let m = try XCTUnwrap(ReferenceScores.majority(cb, set: .dpt, examples: e))
        XCTAssertEqual(m["accuracy"]!, 50, accuracy: 1e-9)                        // 28 / 56
        XCTAssertEqual(m["macro_f1"]!, 100 * (2.0 * 28 / (28 + 56)) / 3, accuracy: 1e-9)  // 22.22
        let u = try XCTUnwrap(ReferenceScores.uniform(cb, set: .dpt, examples: e))
        XCTAssertEqual(u["accuracy"]!, 100.0 / 3, accuracy: 1e-9)
        var s = PhiloxStream(RNGKey(seed: 20_26).derive("uniform-chance"))
        let draws = 20_000
        var vals: [Double] = []
        for _ in 0..<draws {
            let preds = e.map { _ in "\(s.nextInt(below: 3))" }
            vals.append(try Metrics.score(cb, set: .dpt, examples: e, predictions: preds)["macro_f1"]!)
        }
        let mean = vals.reduce(0, +) / Double(draws)
        let se = (vals.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(draws - 1) / Double(draws)).squareRoot()
        XCTAssertLessThan(se, 0.05)
        XCTAssertEqual(u["macro_f1"]!, mean, accuracy: 4 * se, "exact \(u["macro_f1"]!) vs Monte Carlo \(mean) ± \(se)")
        print(String(format: "CB validation (56): majority accuracy %.2f, macro-F1 %.2f; uniform accuracy %.2f, macro-F1 %.2f (Monte Carlo %.2f ± %.3f)",
                     m["accuracy"]!, m["macro_f1"]!, u["accuracy"]!, u["macro_f1"]!, mean, se))
    }

    /// Entities on ReCoRD examples change no score (the metric reads answers only).
    func testEntitiesLeaveScoresUnchanged() throws {
        let rec = try TaskRegistry.definition("record")
        let data = try DataLoader.load(rec, split: .validation, dataDir: try sharedData())
        let e = try Templates.examples(data, set: .dpt, training: false)
        XCTAssertTrue(e.allSatisfy { !($0.entities ?? []).isEmpty })
        var bare = e
        for i in bare.indices { bare[i].entities = nil }
        let preds = e.map { $0.entities![0] }
        XCTAssertEqual(try Metrics.score(rec, set: .dpt, examples: e, predictions: preds), try Metrics.score(rec, set: .dpt, examples: bare, predictions: preds))
    }
}
