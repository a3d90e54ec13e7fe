import Foundation
import Harness
@testable import Reports
import Store
import TestSupport
import XCTest

/// Table and figure files are data a user writes; a mistake in one must be an error naming the
/// file and key, never a table or figure that silently shows something else. A walkthrough found
/// a misspelled `metric` key showing accuracy under an F1 header, a second metric column of one
/// task compared with the task's published accuracy, a std table whose Avg. averaged the scores,
/// and a figure's average panel averaging fewer tasks where one had no score.
final class LayoutValidationTests: XCTestCase {
    func layoutError(_ edit: (String) -> String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let dir = tempDir("layouts")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let text = edit(try String(contentsOfFile: "\(repoRoot)/Baselines/tables/table4.yaml", encoding: .utf8))
        try text.write(toFile: "\(dir)/table4.yaml", atomically: true, encoding: .utf8)
        do { _ = try TableLayout.load("\(dir)/table4.yaml"); return "" } catch { return "\(error)" }
    }

    func testTableFilesAreChecked() throws {
        XCTAssertEqual(try layoutError { $0 }, "", "the committed layout loads")
        var e = try layoutError { $0.replacingOccurrences(of: "{task: cb, label: CB, metric: accuracy}", with: "{task: cb, label: CB F1, metrc: macro_f1}") }
        XCTAssertTrue(e.contains("table4.yaml: columns[3]: unknown key 'metrc'") && e.contains("did you mean 'metric'"), e)
        e = try layoutError { $0.replacingOccurrences(of: "{task: multirc, label: MultiRC, metric: f1a}", with: "{task: multirc, label: MultiRC}") }
        XCTAssertTrue(e.contains("task multirc scores") && e.contains("not 'accuracy' (the default when `metric` is left out)"), e)
        e = try layoutError { $0.replacingOccurrences(of: "metric: f1a}", with: "metric: f1_a}") }
        XCTAssertTrue(e.contains("not 'f1_a'") && e.contains("did you mean 'f1a'"), e)
        e = try layoutError { $0.replacingOccurrences(of: "{task: rte,", with: "{task: rtee,") }
        XCTAssertTrue(e.contains("unknown task 'rtee'"), e)
        e = try layoutError { $0.replacingOccurrences(of: "average: true", with: "average: true\nprofile: cpu") }
        XCTAssertTrue(e.contains("unknown key 'profile'"), e)
        // YAML that does not parse, and a missing field, in words with the line (it printed
        // "DecodingError.dataCorrupted: Data was corrupted. Debug description: …").
        e = try layoutError { $0 + "\nextra: [unclosed\n" }
        XCTAssertTrue(e.contains("table4.yaml: invalid table layout: invalid YAML: ") && !e.contains("DecodingError") && !e.contains("Debug description"), e)
        e = try layoutError { $0.components(separatedBy: "\n").filter { !$0.hasPrefix("title:") }.joined(separator: "\n") }
        XCTAssertTrue(e.contains("table4.yaml: invalid table layout: missing field 'title'"), e)
        // A field of a list entry is named with its position (it read 'rows.Index 0.variant').
        e = try layoutError { $0.replacingOccurrences(of: "label: \"Residual PT (n=10)\", published: respt}", with: "label: \"Residual PT (n=10)\", published: [respt]}") }
        XCTAssertTrue(e.contains("field 'rows[0].published' has the wrong type") && !e.contains("Index"), e)
        // Two columns of one task: the second needs its own published column (the CSV has no metric field).
        let two = "  - {task: cb, label: CB, metric: accuracy}\n  - {task: cb, label: CB F1, metric: macro_f1}"
        e = try layoutError { $0.replacingOccurrences(of: "  - {task: cb, label: CB, metric: accuracy}", with: two) }
        XCTAssertTrue(e.contains("columns[3] and columns[4] are both compared with published column 'cb'"), e)
        e = try layoutError { $0.replacingOccurrences(of: "  - {task: cb, label: CB, metric: accuracy}", with: two.replacingOccurrences(of: "macro_f1}", with: "macro_f1, published_column: none}")) }
        XCTAssertEqual(e, "")

        // Names the spec does not have.
        let l = try TableLayout.load("\(repoRoot)/Baselines/tables/table4.yaml")
        let spec = try ExperimentSpec.load("\(repoRoot)/Baselines/specs/table4.yaml")
        let pubs = try Published.load(directory: "\(repoRoot)/Baselines/published")
        XCTAssertEqual(l.problems(models: spec.models, tasks: spec.tasks), [])
        XCTAssertEqual(l.warnings(variants: spec.variants.map(\.name), published: pubs), [])
        var bad = l
        bad.rows[0].variant = "respt1O"
        bad.sections[0].model = "t5-smal"
        XCTAssertEqual(bad.problems(models: spec.models, tasks: spec.tasks),
                       ["sections[0]: spec table4 has no model column 't5-smal' (did you mean 't5-small'?)"])
        // A row's variant may be an adapter evaluated later (`eval --variant`): a warning, its row shows —.
        XCTAssertEqual(bad.warnings(variants: spec.variants.map(\.name), published: pubs),
                       ["rows[0]: spec table4 has no variant 'respt1O' and no runs of it (did you mean 'respt10'?): its row shows —"])
        // Published references that match nothing are said (each would print —).
        bad = l
        bad.rows[0].publishedMethod = "resptt"
        bad.columns[0].publishedColumn = "wcs"
        XCTAssertEqual(bad.warnings(variants: spec.variants.map(\.name), published: pubs),
                       ["rows[0]: no published method 'resptt' in dpt Table 4 (did you mean 'respt'?)",
                        "columns[0]: no published column 'wcs' in dpt Table 4 (did you mean 'wsc'?)"])
        bad = l
        bad.publishedTable = "Table 44"
        XCTAssertEqual(bad.warnings(variants: spec.variants.map(\.name), published: pubs),
                       ["paper dpt has no published values in 'Table 44' (has: Table 1, Table 3, Table 4): every published value shows —"])
    }

    /// A broken layout file is its own table's error: `report TABLE` of another table reads only
    /// that table's file, and `report` writes every other table and exits 1 naming the broken one.
    func testABrokenLayoutStopsOnlyItsTable() throws {
        let dir = tempDir("brokenlayout")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: "\(dir)/tables", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "\(repoRoot)/Baselines/tables/table4.yaml", toPath: "\(dir)/tables/table4.yaml")
        try "table: walk\nkind: sdt\n".write(toFile: "\(dir)/tables/walk.yaml", atomically: true, encoding: .utf8)
        let data = try sharedData()
        let base = ["report", "--profile", "smoke", "--db", "\(dir)/none.sqlite", "--tables-dir", "\(dir)/tables", "--out-dir", "\(dir)/out", "--data-dir", data]
        let one = try runCLI(["report", "table4"] + base.dropFirst())
        XCTAssertEqual(one.status, 0, one.err)
        let all = try runCLI(base)
        XCTAssertEqual(all.status, 1)
        XCTAssertTrue(all.err.contains("walk.yaml") && all.err.contains("not written"), all.err)
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(dir)/out/table4.md"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/out/walk.md"))
        // The footer's command reruns the table: it names the folders given (without --tables-dir
        // a table of another folder was "unknown").
        let md = try String(contentsOfFile: "\(dir)/out/table4.md", encoding: .utf8)
        XCTAssertTrue(md.contains("_Generated by `promptrepro report table4 --profile smoke --tables-dir \(dir)/tables` from "), md)
        // A folder the shell would split is quoted.
        try FileManager.default.copyItem(atPath: "\(dir)/tables", toPath: "\(dir)/my tables")
        try FileManager.default.removeItem(atPath: "\(dir)/my tables/walk.yaml")
        let spaced = try runCLI(["report", "table4", "--profile", "smoke", "--db", "\(dir)/none.sqlite", "--tables-dir", "\(dir)/my tables", "--out-dir", "\(dir)/out2", "--data-dir", data])
        XCTAssertEqual(spaced.status, 0, spaced.err)
        let md2 = try String(contentsOfFile: "\(dir)/out2/table4.md", encoding: .utf8)
        XCTAssertTrue(md2.contains("--tables-dir '\(dir)/my tables'` from Baselines/results/table4-smoke.cells.json"), md2)
    }

    /// A figure name without a file names the known figures and the closest (it said only
    /// "cannot read").
    func testAnUnknownFigureNamesTheKnownOnes() throws {
        let dir = tempDir("unknownfig")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try runCLI(["figures", "fgi4", "--profile", "smoke", "--db", "\(dir)/none.sqlite", "--out-dir", "\(dir)/out"])
        XCTAssertEqual(r.status, 1, r.err)
        XCTAssertTrue(r.err.contains("unknown figure 'fgi4' (did you mean 'fig4'?); known (") && r.err.contains("fig3, fig4, fig5"), r.err)
    }

    /// A std table's Avg. is the mean of the standard deviations it shows (hand-worked: seeds
    /// 70, 72, 74 → 2.00; 60, 64, 68 → 4.00; Avg. 3.00), not of the scores (67.00).
    func testStdTableAveragesTheStds() throws {
        let dir = tempDir("stdavg")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try fixtureStore("\(dir)/s.sqlite", spec: "table4", variant: "respt10", values: ["cb": [70, 72, 74], "rte": [60, 64, 68]])
        let cells = try store.cellResults(spec: "table4", profile: "cpu")
        var layout = try TableLayout.load("\(repoRoot)/Baselines/tables/table4.yaml")
        layout.columns = layout.columns.filter { ["cb", "rte"].contains($0.key) }
        layout.kind = .std
        layout.sections = [layout.sections[0]]
        let md = PaperTables.markdown(layout, cells: cells, published: [], profile: "cpu")
        XCTAssertTrue(md.contains("| — / 2.00 | — / 4.00 | — / 3.00 |"), md)
    }

    func testFigureFilesAreChecked() throws {
        let dir = tempDir("figs")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let base = try String(contentsOfFile: "\(repoRoot)/Baselines/figures/fig4.yaml", encoding: .utf8)
        func load(_ edit: (String) -> String, as name: String = "fig4") -> String {
            try? edit(base).write(toFile: "\(dir)/\(name).yaml", atomically: true, encoding: .utf8)
            do { _ = try FigureSpec.load("\(dir)/\(name).yaml"); return "" } catch { return "\(error)" }
        }
        XCTAssertEqual(load { $0 }, "")
        XCTAssertTrue(load { $0 + "stats: minmax\n" }.contains("unknown key 'stats'"))
        XCTAssertTrue(load { $0 + "stat: min-max\n" }.contains("stat 'min-max'"))
        XCTAssertTrue(load { $0.replacingOccurrences(of: "x: k", with: "x: shots") }.contains("x 'shots'"))
        XCTAssertTrue(load { $0.replacingOccurrences(of: "copa, rte", with: "copa, rtee") }.contains("panels[3]: unknown task 'rtee'"))
        XCTAssertTrue(load { $0.replacingOccurrences(of: "panels: [avg, cb, copa, rte, wic]", with: "panels: []") }.contains("panels must list at least one task (or avg)"))
        XCTAssertTrue(load({ $0 }, as: "fig4b").contains("figure 'fig4' must match the file name 'fig4b'"))
        let broken = load { $0 + "extra: [unclosed\n" }
        XCTAssertTrue(broken.contains("fig4.yaml: invalid figure spec: invalid YAML: ") && !broken.contains("DecodingError"), broken)
        let f = try FigureSpec.load("\(repoRoot)/Baselines/figures/fig4.yaml")
        XCTAssertEqual(f.problems(variants: ["pt", "respt", "dpt"], models: ["t5-large"], tasks: ["cb", "copa", "rte", "wic"]), [])
        XCTAssertEqual(f.problems(variants: ["pt", "respt"], models: ["t5-large"], tasks: ["cb", "copa", "rte", "wic"]),
                       ["series[2]: spec fig4 has no variant 'dpt' (did you mean 'pt'?)"])
    }

    /// The average panel: at an x where one of the spec's tasks has no score, no point (a gap),
    /// never the mean of the others on the same line.
    func testFigureAveragePanelNeedsEveryTask() throws {
        let dir = tempDir("figavg")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try fixtureStore("\(dir)/s.sqlite", spec: "table4", variant: "respt10", values: ["cb": [70, 72, 74], "rte": [60, 64, 68]])
        var cells = try store.cellResults(spec: "table4", profile: "cpu")
        let f = try FigureSpec.load("\(repoRoot)/Baselines/figures/fig4.yaml")
        var pts = try Figures.points(f, cells: cells, variant: "respt10", panel: "avg", tasks: ["cb", "rte"])
        XCTAssertEqual(pts.map(\.mean), [(72.0 + 64.0) / 2])
        cells.removeAll { $0.task == "rte" }
        pts = try Figures.points(f, cells: cells, variant: "respt10", panel: "avg", tasks: ["cb", "rte"])
        XCTAssertEqual(pts.count, 1)
        XCTAssertTrue(pts.allSatisfy { $0.mean.isNaN }, "averaged fewer tasks: \(pts)")
    }

    /// A task panel breaks its line where the series' cell of that task has no score (its runs
    /// failed): the line joined k = 8 to k = 32 across the failed k = 16. Two cells that would be
    /// the same point (model columns of a figure that names none) are refused: one overwrote the
    /// other. A reference with one point per k is drawn through them, not at the first one's level.
    func testFigurePanelsGapsCollisionsAndReferences() throws {
        let dir = tempDir("figpanel")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try fixtureStore("\(dir)/s.sqlite", spec: "table4", variant: "respt10", values: ["cb": [70, 72, 74]])
        let base = try XCTUnwrap(try store.cellResults(spec: "table4", profile: "cpu").first { $0.task == "cb" })
        let f = try FigureSpec.load("\(repoRoot)/Baselines/figures/fig4.yaml")
        func at(_ k: Int, scored: Bool, model: String? = nil, variant: String = "respt10") -> CellResult {
            var c = base
            c.k = k
            c.cell = "\(variant)_cb_\(model ?? c.model)_k\(k)"
            c.variant = variant
            if let model { c.model = model }
            if !scored { c.best = [:] }
            return c
        }
        let cells = [at(8, scored: true), at(16, scored: false), at(32, scored: true)]
        let pts = try Figures.points(f, cells: cells, variant: "respt10", panel: "cb", tasks: ["cb"])
        XCTAssertEqual(pts.map(\.x), [8, 16, 32])
        XCTAssertEqual(pts.map { $0.mean.isNaN }, [false, true, false])
        XCTAssertEqual(pts[0].mean, 72)
        XCTAssertThrowsError(try Figures.points(f, cells: cells + [at(8, scored: true, model: "t5-base")], variant: "respt10", panel: "cb", tasks: ["cb"])) {
            XCTAssertTrue("\($0)".contains("model columns") && "\($0)".contains("name one with `model:`"), "\($0)")
        }
        // The reference (PT at k = 8 and 32) as a dashed line through its two points.
        var withPT = cells
        var pt8 = at(8, scored: true, variant: "pt"), pt32 = at(32, scored: true, variant: "pt")
        pt8.best["accuracy"]?.mean = 50
        pt32.best["accuracy"]?.mean = 60
        withPT += [pt8, pt32]
        var g = f
        g.series = [.init(variant: "respt10", label: "Residual PT")]
        g.references = [.init(variant: "pt", label: "PT")]
        g.panels = ["cb"]
        _ = try? Figures.render(g, cells: withPT, tasks: ["cb"], profile: "cpu", outDir: dir, gnuplot: stubGnuplot)
        let dat = try String(contentsOfFile: "\(dir)/fig4.dat", encoding: .utf8)
        XCTAssertTrue(dat.contains("# panel cb reference PT: x mean\n8.0 50.0\n32.0 60.0\n"), dat)
        let gp = try String(contentsOfFile: "\(dir)/fig4.gp", encoding: .utf8)
        XCTAssertTrue(gp.contains("index 1 using 1:2 with linespoints dashtype 2 lc 2 title 'PT'"), gp)
        // A reference point whose runs failed is a gap in its line, not skipped (joining 8 to 32),
        // and a reference with one scored point of several is no level line across every k.
        _ = try? Figures.render(g, cells: withPT + [at(16, scored: false, variant: "pt")], tasks: ["cb"], profile: "cpu", outDir: dir, gnuplot: stubGnuplot)
        let gapped = try String(contentsOfFile: "\(dir)/fig4.dat", encoding: .utf8)
        XCTAssertTrue(gapped.contains("# panel cb reference PT: x mean\n8.0 50.0\n\n32.0 60.0\n"), gapped)
        _ = try? Figures.render(g, cells: cells + [pt8, at(16, scored: false, variant: "pt"), at(32, scored: false, variant: "pt")], tasks: ["cb"],
                                profile: "cpu", outDir: dir, gnuplot: stubGnuplot)
        let one = try String(contentsOfFile: "\(dir)/fig4.gp", encoding: .utf8)
        XCTAssertFalse(one.contains("50.0 with lines dashtype 2"), one)
        XCTAssertTrue(one.contains("index 1 using 1:2 with linespoints dashtype 2 lc 2 title 'PT'"), one)
        // Panels a row: up to 3, four as 2 × 2 (3 columns left two of six slots empty), five as 3 + 2.
        for (panels, layout) in [(["cb"], "layout 1,1"), (["cb", "rte", "wic"], "layout 1,3"), (["cb", "rte", "wic", "copa"], "layout 2,2"),
                                 (["avg", "cb", "rte", "wic", "copa"], "layout 2,3")] {
            g.panels = panels
            try? FileManager.default.removeItem(atPath: "\(dir)/fig4.gp")   // each case reads its own render
            _ = try? Figures.render(g, cells: withPT, tasks: ["cb"], profile: "cpu", outDir: dir, gnuplot: stubGnuplot)
            let gp = try String(contentsOfFile: "\(dir)/fig4.gp", encoding: .utf8)
            XCTAssertTrue(gp.contains("set multiplot \(layout) "), "\(panels): \(gp.prefix(400))")
        }
    }

    /// What a figure leaves unsaid (review, 2026-12-06): an x the spec plans with no cell (never
    /// run, or a stale export cell left out) was bridged by the line; a series or reference whose
    /// runs all failed vanished without a word (and the next series took its colour); the seeds
    /// behind the points and failed runs left out of a mean were not shown; a probe figure took
    /// a log axis; half-epoch ticks were labelled 0 1 2 2 2 3 4 4 4.
    func testFiguresSayWhatIsMissingFailedAndHowManySeeds() throws {
        let dir = tempDir("figsay")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try fixtureStore("\(dir)/s.sqlite", spec: "table4", variant: "respt10", values: ["cb": [70, 72, 74]])
        let base = try XCTUnwrap(try store.cellResults(spec: "table4", profile: "cpu").first { $0.task == "cb" })
        func at(_ k: Int, variant: String = "respt10", scored: Bool = true) -> CellResult {
            var c = base
            (c.k, c.variant, c.cell) = (k, variant, "\(variant)_cb_t5-small_k\(k)")
            if !scored { c.best = [:]; c.statuses = ["failed": 3] }
            return c
        }
        var f = try FigureSpec.load("\(repoRoot)/Baselines/figures/fig4.yaml")
        f.series = [.init(variant: "respt10", label: "Residual PT"), .init(variant: "dpt", label: "DPT")]
        f.references = [.init(variant: "pt", label: "PT")]
        f.panels = ["cb"]
        let planned = [8, 16, 32].map { PlannedCell(variant: "respt10", task: "cb", model: "t5-small", k: $0) }
        let pts = try Figures.points(f, cells: [at(8), at(32)], variant: "respt10", panel: "cb", tasks: ["cb"], planned: planned)
        XCTAssertEqual(pts.map(\.x), [8, 16, 32])
        XCTAssertEqual(pts.map { $0.mean.isNaN }, [false, true, false])
        var partly = at(32)
        partly.statuses["failed"] = 1
        _ = try? Figures.render(f, cells: [at(8), partly, at(8, variant: "dpt", scored: false), at(8, variant: "pt", scored: false)], tasks: ["cb"],
                                profile: "cpu", outDir: dir, planned: planned, setting: "t5-small stands in for t5-large", gnuplot: stubGnuplot)
        let dat = try String(contentsOfFile: "\(dir)/fig4.dat", encoding: .utf8)
        XCTAssertTrue(dat.contains("8.0 72.0 70.0 74.0 3 0\n\n32.0 72.0 70.0 74.0 3 1\n"), dat)
        let gp = try String(contentsOfFile: "\(dir)/fig4.gp", encoding: .utf8)
        XCTAssertTrue(gp.contains("lc 2 title 'DPT: runs failed'"), gp)
        // A series without any cell (not run) is not called failed.
        var g = f
        g.series.append(.init(variant: "lopt1", label: "LoPT-1"))
        _ = try? Figures.render(g, cells: [at(8)], tasks: ["cb"], profile: "cpu", outDir: dir, gnuplot: stubGnuplot)
        XCTAssertTrue(try String(contentsOfFile: "\(dir)/fig4.gp", encoding: .utf8).contains("lc 3 title 'LoPT-1: no runs'"))
        XCTAssertTrue(gp.contains("1/0 with lines dashtype 2 lc 3 title 'PT: runs failed'"), gp)
        XCTAssertTrue(gp.contains("profile cpu; t5-small stands in for t5-large\\n3 seeds per point; 1 point leave out failed runs"), gp)
        // Cells whose runs read a subset of the official split (BoolQ's 41-row training subset) say so
        // in the title, as the tables' "Subset data" note (an average panel mixes them in); full files do not.
        var subset = at(8)
        subset.task = "boolq"
        subset.dataFiles = ["superglue/boolq/train.subset41.jsonl", "superglue/boolq/val.jsonl"]
        var full = at(16)
        full.dataFiles = ["superglue/cb/train.jsonl", "superglue/cb/val.jsonl"]
        var h = f
        h.panels = ["avg"]
        _ = try? Figures.render(h, cells: [subset, full], tasks: ["cb", "boolq"], profile: "cpu", outDir: dir, gnuplot: stubGnuplot)
        let subsetGP = try String(contentsOfFile: "\(dir)/fig4.gp", encoding: .utf8)
        XCTAssertTrue(subsetGP.contains("\\nsubset data (part of the official split; SOURCES.md): boolq\""), subsetGP)
        // A figure that does not draw the subset task (a cb panel only) does not name it.
        h.panels = ["cb"]
        _ = try? Figures.render(h, cells: [subset, full], tasks: ["cb", "boolq"], profile: "cpu", outDir: dir, gnuplot: stubGnuplot)
        XCTAssertFalse(try String(contentsOfFile: "\(dir)/fig4.gp", encoding: .utf8).contains("subset data"))
        // A series whose variant names carry no x (x r, a variant "respt10") was drawn at x = 0.
        var byR = f
        byR.x = "r"
        XCTAssertThrowsError(try Figures.points(byR, cells: [at(8)], variant: "respt10", panel: "cb", tasks: ["cb"])) {
            XCTAssertTrue("\($0)".contains("variant respt10 has no '-r<value>' suffix"), "\($0)")
        }
        XCTAssertEqual(try Figures.points(byR, cells: [at(8)], variant: "respt10", panel: "cb", tasks: ["cb"], reference: true).count, 1)
        // Probe figures: whole-epoch ticks; a score figure's options are refused.
        let probe = try String(contentsOfFile: "\(repoRoot)/Baselines/figures/fig3.yaml", encoding: .utf8)
        try FileManager.default.createDirectory(atPath: "\(dir)/p", withIntermediateDirectories: true)
        for (edit, fragment) in [("logx: true\n", "query probe does not draw logx"), ("stat: minmax\n", "stat minmax")] {
            try (probe + edit).write(toFile: "\(dir)/p/fig3.yaml", atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try FigureSpec.load("\(dir)/p/fig3.yaml")) { XCTAssertTrue("\($0)".contains(fragment), "\($0)") }
        }
        let p3 = try FigureSpec.load("\(repoRoot)/Baselines/figures/fig3.yaml")
        var probed = base
        (probed.method, probed.variant, probed.probe) = ("probe", "probe", (1...4).map { ProbePoint(epoch: $0, positive: 1, negative: 0, rank: 1) })
        _ = try? Figures.render(p3, cells: [probed], tasks: ["cb"], profile: "smoke", outDir: dir, gnuplot: stubGnuplot)
        XCTAssertTrue(try String(contentsOfFile: "\(dir)/fig3.gp", encoding: .utf8).contains("set format x '%.0f'\nset xtics 1\n"))
    }

    /// In the data file a gap is one blank line between the points around it, which breaks
    /// gnuplot's line (two blank lines would end the data block instead).
    func testGapsBreakTheDrawnLine() throws {
        let dir = tempDir("figgap")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var cells = try JSONDecoder().decode([CellResult].self, from: Data(contentsOf: URL(fileURLWithPath: "\(repoRoot)/Baselines/results/fig4-smoke.cells.json")))
        let f = try FigureSpec.load("\(repoRoot)/Baselines/figures/fig4.yaml")
        let tasks = try ExperimentSpec.load("\(repoRoot)/Baselines/specs/fig4.yaml").tasks
        let ks = Set(cells.compactMap(\.k)).sorted()
        XCTAssertEqual(ks.count, 3)
        cells.removeAll { $0.variant == "dpt" && $0.task == tasks[0] && $0.k == ks[1] }
        _ = try? Figures.render(f, cells: cells, tasks: tasks, profile: "smoke", outDir: dir, gnuplot: stubGnuplot)
        let dat = try String(contentsOfFile: "\(dir)/fig4.dat", encoding: .utf8)
        let block = dat.components(separatedBy: "# panel avg series DPT")[1].components(separatedBy: "\n\n\n")[0]
        let lines = block.split(separator: "\n", omittingEmptySubsequences: false).dropFirst().map(String.init)
        XCTAssertEqual(lines.map { $0.isEmpty ? "" : String($0.split(separator: " ")[0]) }, ["\(Double(ks[0]))", "", "\(Double(ks[2]))"], block)
        // The task's own panel too, where the spec plans the cell: its x counted as present because
        // other tasks had cells there, and the line joined k[0] to k[2] (a figures review).
        let planned = cells.map { PlannedCell(variant: $0.variant, task: $0.task, model: $0.model, k: $0.k) }
        cells.removeAll { $0.variant == "dpt" && $0.task == "cb" && $0.k == ks[1] }  // a panel of the figure
        _ = try? Figures.render(f, cells: cells, tasks: tasks, profile: "smoke", outDir: dir, planned: planned, gnuplot: stubGnuplot)
        let withPlan = try String(contentsOfFile: "\(dir)/fig4.dat", encoding: .utf8)
        let taskBlock = try XCTUnwrap(withPlan.components(separatedBy: "# panel cb series DPT").dropFirst().first).components(separatedBy: "\n\n\n")[0]
        let taskLines = taskBlock.split(separator: "\n", omittingEmptySubsequences: false).dropFirst().map(String.init)
        XCTAssertEqual(taskLines.map { $0.isEmpty ? "" : String($0.split(separator: " ")[0]) }, ["\(Double(ks[0]))", "", "\(Double(ks[2]))"], taskBlock)
    }

    /// Text a figure file or spec carries reaches gnuplot quoted (a label "P'T" or a title with a
    /// double quote broke the script), and a render that fails leaves the committed images as they
    /// were (gnuplot had already opened NAME.png: it was truncated to 0 bytes, the SVG left stale).
    /// A panel whose values are all one level (a smoke run's zeros) gets a y range from it (gnuplot
    /// warned of an empty range and drew −1…1); whole-number x values get ticks at those values;
    /// points whose every output named no label are counted in the title (review, 2026-12-07).
    func testFigureTextIsQuotedAndAFailedRenderChangesNothing() throws {
        let dir = tempDir("figquote")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try fixtureStore("\(dir)/s.sqlite", spec: "table4", variant: "respt10", values: ["cb": [0, 0, 0]])
        var base = try XCTUnwrap(try store.cellResults(spec: "table4", profile: "cpu").first { $0.task == "cb" })
        base.invalidFraction = ["best": Stat([1, 1, 1])]
        var f = try FigureSpec.load("\(repoRoot)/Baselines/figures/fig4.yaml")
        f.series = [.init(variant: "respt10", label: "P'T \"v2\"")]
        f.references = []
        f.panels = ["cb"]
        f.title = "Say \"hi\" \\ back's `touch \(dir)/x`"
        f.xlabel = "k's"
        var cells: [CellResult] = []
        for k in [6, 10] { var c = base; c.k = k; c.cell = "respt10_cb_\(c.model)_k\(k)"; cells.append(c) }
        _ = try Figures.render(f, cells: cells, tasks: ["cb"], profile: "cpu", outDir: dir, gnuplot: stubGnuplot)
        let gp = try String(contentsOfFile: "\(dir)/fig4.gp", encoding: .utf8)
        XCTAssertTrue(gp.contains("title 'P''T \"v2\"'"), gp)
        XCTAssertTrue(gp.contains("title \"Say \\\"hi\\\" \\\\ back's \\`touch \(dir)/x\\`\\nprofile cpu"), gp)
        XCTAssertTrue(gp.contains("set xlabel 'k''s'"), gp)
        XCTAssertTrue(gp.contains("set xtics (6, 10)"), gp)
        XCTAssertTrue(gp.contains("set yrange [-0.05:1.0]"), gp)
        XCTAssertTrue(gp.contains("2 of 2 points: every output named no label (100% invalid, scored 0)"), gp)
        // With gnuplot itself (CI installs it): the script renders without a warning.
        guard toolInstalled("gnuplot") else { return }
        let images = try Figures.render(f, cells: cells, tasks: ["cb"], profile: "cpu", outDir: dir)
        let png = try Data(contentsOf: URL(fileURLWithPath: images[0]))
        XCTAssertGreaterThan(png.count, 1000)
        let (status, warnings) = try runTool(["gnuplot", "fig4.gp"], in: dir)
        XCTAssertEqual(status, 0, warnings)
        XCTAssertEqual(warnings, "")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/x"), "a backquoted title ran as a shell command")
        // A render whose gnuplot fails changes nothing under the output directory.
        XCTAssertThrowsError(try Figures.render(f, cells: cells, tasks: ["cb"], profile: "cpu", outDir: dir, gnuplot: "false")) {
            XCTAssertTrue("\($0)".contains("nothing under"), "\($0)")
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: images[0])), png)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix(".render") }, [])
    }
}

/// A stand-in for gnuplot that writes empty NAME.png and NAME.svg for its NAME.gp argument: tests
/// that read the generated script and data run without gnuplot (a render that writes no image is
/// an error, and nothing of it lands).
let stubGnuplot: String = {
    let path = NSTemporaryDirectory() + "promptrepro-stub-gnuplot-\(getpid())"
    try? "#!/bin/sh\nb=$(basename \"$1\" .gp)\n: > \"$b.png\"\n: > \"$b.svg\"\n".write(toFile: path, atomically: true, encoding: .utf8)
    chmod(path, 0o755)
    return path
}()
