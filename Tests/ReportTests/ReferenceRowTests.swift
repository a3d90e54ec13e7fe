import Foundation
import Harness
import Reports
import Store
import Tasks
import TestSupport
import Training
import XCTest

final class ReferenceRowTests: XCTestCase {
    /// Three CB runs of table4's respt10 that scored the first 8 validation examples: seed 1 has
    /// 2 of 8 outputs that are no label (from its stored predictions), seed 2 none, seed 3 a
    /// recorded `invalid_fraction` of 0.5 in `run_metrics`, which wins over its predictions.
    func store(_ dir: String) throws -> ResultsStore {
        let s = try ResultsStore(path: "\(dir)/s.sqlite")
        let runs = try ExperimentSpec.load("\(repoRoot)/Baselines/specs/table4.yaml").expand(profile: "cpu")
            .filter { $0.variant == "respt10" && $0.model == "t5-small" && $0.task == "cb" }
        try s.insertPending(runs)
        let preds = [1: ["0", "x", "1", "", "2", "0", "1", "1"], 2: ["0", "1", "2", "0", "1", "1", "1", "1"], 3: Array(repeating: "1", count: 8)]
        while let c = try s.claim(worker: "fixture", pid: getpid()) {
            var r = TrainResult(config: c.spec.config, status: .done, divergedAtStep: nil, bestEpoch: 1, best: ["accuracy": 50], last: ["accuracy": 40],
                                history: [], trainableParams: 1, trainExamples: 1, evalExamples: 8, dataFiles: [:], manifest: nil, smoke: false,
                                predictions: preds[c.spec.seed])
            r.bestPredictions = preds[c.spec.seed]
            if c.spec.seed == 3 { r.extras = ["invalid_fraction": 0.5, "seconds_per_step": 1] }
            try s.complete(c.id, result: r)
        }
        return s
    }

    func testCellsCarryInvalidFractionsAndTheirEvalSubset() throws {
        let dir = tempDir("ref")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cells = try store(dir).cellResults(spec: "table4", profile: "cpu")
        XCTAssertEqual(cells.count, 1)
        let c = cells[0]
        XCTAssertEqual(c.best["accuracy"]!.values, [50, 50, 50], "scores are unchanged")
        XCTAssertEqual(c.invalidFraction?["best"]?.values, [0.25, 0, 0.5])
        XCTAssertEqual(c.invalidFraction?["last"]?.values, [0.25, 0, 0], "seed 3 recorded no last fraction: its predictions give 0")
        XCTAssertEqual(c.templates, "dpt")
        XCTAssertEqual(c.evalExamples, 8)
        let csv = ResultsExport.csv(cells)
        XCTAssertTrue(csv.contains(",best,invalid_fraction,3,0.2500,"), csv)
        XCTAssertTrue(ResultsExport.markdown(cells, spec: "table4", profile: "cpu").contains("| 3 | accuracy | 50.00 ± 0.00 (n=3) | 40.00 ± 0.00 (n=3) | 25.0% |"))
        // The export round-trips the new fields; an export without them still decodes.
        let data = try JSONEncoder().encode(cells)
        let back = try JSONDecoder().decode([CellResult].self, from: data)
        XCTAssertEqual(back[0].invalidFraction, c.invalidFraction)
        XCTAssertEqual(back[0].evalExamples, 8)
        let old = try JSONDecoder().decode([CellResult].self, from: Data(contentsOf: URL(fileURLWithPath: "\(repoRoot)/Baselines/results/table4-smoke.cells.json")))
        XCTAssertFalse(old.isEmpty)
    }

    /// The table gets "Majority class" and "Uniform chance" rows on the examples the runs scored (CB:
    /// the first 8 of 56; columns without runs: the profile's full split), and a cell whose outputs
    /// are not all labels shows its invalid share, in Markdown and LaTeX alike.
    func testReferenceRowsAndInvalidMarkerInBothRenderings() throws {
        let data = try sharedData()
        let dir = tempDir("ref2")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cells = try store(dir).cellResults(spec: "table4", profile: "cpu")
        let layout = try PaperTables.layout("table4", directory: "\(repoRoot)/Baselines/tables")
        let spec = try ExperimentSpec.load("\(repoRoot)/Baselines/specs/table4.yaml")
        let subsets = ReferenceRows.subsets(layout, cells: cells, planned: try spec.expand(profile: "cpu"))
        XCTAssertEqual(subsets["cb"], [EvalSubset(templates: .dpt, limit: 8)])
        XCTAssertEqual(subsets["rte"], [EvalSubset(templates: .dpt, limit: nil)], "no runs: the cpu profile's full split")
        let refs = ReferenceRows.compute(subsets, dataDir: data)
        // CB's first 8 validation labels, by hand from the file.
        let cb = try TaskRegistry.definition("cb")
        let labels = try Templates.examples(try DataLoader.load(cb, split: .validation, dataDir: data), set: .dpt, training: false).prefix(8).map { $0.label! }
        var counts = [0, 0, 0]
        for l in labels { counts[l] += 1 }
        let top = counts.firstIndex(of: counts.max()!)!
        XCTAssertEqual(refs["cb"]?.first?.examples, 8)
        XCTAssertEqual(refs["cb"]!.first!.majority!["accuracy"]!, 100 * Double(counts[top]) / 8, accuracy: 1e-9)
        XCTAssertEqual(refs["cb"]!.first!.uniform!["accuracy"]!, 100.0 / 3, accuracy: 1e-9)
        XCTAssertNil(refs["record"]?.first?.majority, "ReCoRD has no majority class")

        let pubs = try Published.load(directory: "\(repoRoot)/Baselines/published")
        let grid = PaperTables.grid(layout, cells: cells, published: pubs, profile: "cpu", paperParams: spec.paperParameterCounts(), references: refs)
        let md = PaperTables.markdown(layout, grid: grid, profile: "cpu")
        let tex = PaperTables.latex(layout, grid: grid, profile: "cpu")
        XCTAssertTrue(md.contains("73.21 / 50.00 ± 0.00 (Δ -23.21) [25% invalid] |"), md)
        XCTAssertTrue(tex.contains("73.21 / 50.00 $\\pm$ 0.00 ($\\Delta$ $-$23.21) [25\\% invalid] &"), tex)
        XCTAssertTrue(md.contains("| **Reference (zero skill)** |"))
        let majority = md.split(separator: "\n").first { $0.hasPrefix("| Majority class |") }.map(String.init) ?? ""
        XCTAssertTrue(majority.contains(String(format: "| %.2f |", 100 * Double(counts[top]) / 8)), majority)
        XCTAssertTrue(md.contains("| Uniform chance (exact expectation) | — | 50.00 | 50.00 | 50.00 | 33.33 |"), md)
        XCTAssertTrue(md.contains("CB first 8 of 56"), md)
        XCTAssertTrue(tex.contains("Majority class & --- & "), tex)
        XCTAssertTrue(tex.contains("{\\footnotesize\\sloppy\\noindent Reference rows:"), tex)
        // The LaTeX carries the Markdown's legend: the profile, the cell format and the markers,
        // and for the smoke profile that its numbers reproduce nothing.
        XCTAssertTrue(tex.contains("{\\footnotesize\\sloppy\\noindent Profile: \\textbf{cpu}. Each cell: published value / ours as mean $\\pm$ sample std"), tex)
        XCTAssertTrue(tex.contains("$^\\dagger$ smoke profile; $^\\ddagger$ fewer than 3 seeds"), tex)
        XCTAssertTrue(PaperTables.latex(layout, grid: grid, profile: "smoke").contains("our numbers test the pipeline and \\textbf{reproduce nothing}"))
        // What the ReCoRD and WSC columns report, and the paper-code variant stored beside each.
        XCTAssertTrue(md.contains("ReCoRD f1 — SQuAD token F1, max over gold answers, each query once; stored beside it: f1_per_row — SQuAD token F1 as DPT's code scores it: each query weighted"), md)
        XCTAssertTrue(md.contains("stored beside it: accuracy_label1 — WSC over label-1 rows only"), md)
        XCTAssertTrue(tex.contains("stored beside it: f1\\_per\\_row"), tex)
        // Without data the rows are there but empty, and the note says what to do; std tables get none.
        let bare = PaperTables.markdown(layout, grid: PaperTables.grid(layout, cells: cells, published: pubs, profile: "cpu", paperParams: spec.paperParameterCounts(), references: [:]), profile: "cpu")
        XCTAssertTrue(bare.contains("| Majority class | — | — | — |") && bare.contains("make fetch-data"), bare)
        let t3 = try PaperTables.layout("table3", directory: "\(repoRoot)/Baselines/tables")
        XCTAssertFalse(PaperTables.markdown(t3, grid: PaperTables.grid(t3, cells: [], published: pubs, profile: "cpu", references: [:]), profile: "cpu")
            .contains("Majority class"))
    }

    func testPercentNeverRoundsToTheEnds() {
        XCTAssertEqual(PaperTables.percent(0.001), "<1%")
        XCTAssertEqual(PaperTables.percent(0.998), ">99%")
        XCTAssertEqual(PaperTables.percent(1), "100%")
        XCTAssertEqual(PaperTables.percent(0.25), "25%")
        XCTAssertEqual(PaperTables.latexText("[<1% invalid]"), "[$<$1\\% invalid]")
    }

    /// A layout over some of a paper table's tasks: the published Avg. is the mean of the published
    /// values it shows, marked § (it printed the paper's 8-task 69.58 beside our 3-task mean); FT on
    /// T5-Small publishes CB 89.28, COPA 59.00, RTE 72.56, mean 73.61. A column of another metric
    /// than the paper's (CB macro-F1 against its accuracy) gets no Δ, and a note says so.
    func testSubsetAverageAndOtherMetricAgainstPublished() throws {
        let dir = tempDir("subset")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let yaml = try String(contentsOfFile: "\(repoRoot)/Baselines/tables/table1.yaml", encoding: .utf8)
        let head = yaml.components(separatedBy: "columns:")[0]
        func layout(_ name: String, cbMetric: String) throws -> TableLayout {
            try (head.replacingOccurrences(of: "table: table1", with: "table: \(name)") + "columns:\n  - {task: cb, label: CB, metric: \(cbMetric)}\n"
                 + "  - {task: copa, label: COPA, metric: accuracy}\n  - {task: rte, label: RTE, metric: accuracy}\n")
                .write(toFile: "\(dir)/\(name).yaml", atomically: true, encoding: .utf8)
            return try PaperTables.layout(name, directory: dir)
        }
        var cells = try fixtureStore("\(dir)/s.sqlite", spec: "table1", variant: "ft", values: ["cb": [50, 60, 70], "copa": [55, 56, 57], "rte": [60, 61, 62]])
            .cellResults(spec: "table1", profile: "cpu")
        for i in cells.indices where cells[i].task == "cb" { cells[i].best["macro_f1"] = cells[i].best["accuracy"] }
        let pubs = try Published.load(directory: "\(repoRoot)/Baselines/published").filter { $0.table == "Table 1" }
        func ftRow(_ md: String) -> String { md.split(separator: "\n").first { $0.hasPrefix("| Fine-Tuning |") }.map(String.init) ?? "" }
        let md = PaperTables.markdown(try layout("t1sub", cbMetric: "accuracy"), cells: cells, published: pubs, profile: "cpu")
        XCTAssertTrue(ftRow(md).contains("| 89.28 / 60.00 ± 10.00 (Δ -29.28) |"), ftRow(md))
        XCTAssertTrue(ftRow(md).hasSuffix("| 73.61§ / 59.00 |"), ftRow(md))
        XCTAssertTrue(md.contains("§ published Avg.: the mean of the published values in this table's columns"), md)
        // CB as macro-F1 against the paper's accuracy: no Δ, and no published Avg. (it averages other measures).
        let f1 = PaperTables.markdown(try layout("t1f1", cbMetric: "macro_f1"), cells: cells, published: pubs, profile: "cpu")
        XCTAssertTrue(ftRow(f1).contains("| 89.28 / 60.00 ± 10.00 |"), ftRow(f1))
        XCTAssertTrue(ftRow(f1).contains("| 59.00 / 56.00 ± 1.00 (Δ -3.00) |"), ftRow(f1))
        XCTAssertTrue(ftRow(f1).hasSuffix("| — / 59.00 |"), ftRow(f1))
        XCTAssertTrue(f1.contains("No Δ, and no published Avg., where a column's metric is not the one the paper reports: CB shows macro_f1, the paper's values are acc %."), f1)
        // The full table's columns keep the paper's own Avg. (69.58 for FT on T5-Small).
        let full = PaperTables.markdown(try PaperTables.layout("table1", directory: "\(repoRoot)/Baselines/tables"), cells: cells, published: pubs, profile: "cpu")
        XCTAssertTrue(full.contains("| 69.58 / — |") && !full.contains("§"), full)
    }

    /// A cell's Δ is the difference of the two numbers it prints. 50.125 is exact in binary and
    /// prints 50.12 (ties to even); against a published 10.01 the printed difference is 40.11,
    /// while the unrounded one (40.115…, as 10.01 is stored a little low) printed 40.12. A mean
    /// that prints as the published value gives +0.00, never -0.00.
    func testDeltaIsTheDifferenceOfThePrintedNumbers() {
        XCTAssertEqual(PaperTables.signedDelta(50.125, 10.01), "+40.11")
        XCTAssertEqual(PaperTables.signedDelta(49.999, 50.0), "+0.00")
        XCTAssertEqual(PaperTables.signedDelta(50.0, 73.21), "-23.21")
        XCTAssertEqual(PaperTables.signedDelta(75.5, 73.21), "+2.29")
    }
}
