import Foundation
import Harness
import Methods
import Reports
import Store
import TestSupport
import Training
import XCTest

/// A store holding hand-chosen best scores for some cells of a spec/profile.
/// Seeds past the end of a task's values fail.
func fixtureStore(_ path: String, spec: String, variant: String, values: [String: [Double]], model: String = "t5-small",
                  profile: String = "cpu", dataFiles: [String: String] = [:]) throws -> ResultsStore {
    let s = try ResultsStore(path: path)
    let specObj = try ExperimentSpec.load("\(repoRoot)/Baselines/specs/\(spec).yaml")
    let runs = try specObj.expand(profile: profile).filter { $0.variant == variant && $0.model == model && values[$0.task] != nil }
    try s.insertPending(runs)
    while let c = try s.claim(worker: "fixture", pid: getpid()) {
        let vals = values[c.spec.task]!
        guard c.spec.seed <= vals.count else { try s.fail(c.id, error: "fixture has no value for this seed"); continue }
        let v = vals[c.spec.seed - 1]
        let metric = ["multirc": "f1a", "record": "f1"][c.spec.task] ?? "accuracy"
        let r = TrainResult(config: c.spec.config, status: .done, divergedAtStep: nil, bestEpoch: 1, best: [metric: v], last: [metric: v - 1],
                            history: [], trainableParams: 1, trainExamples: 1, evalExamples: 1, dataFiles: dataFiles, manifest: nil, smoke: false, predictions: [])
        try s.complete(c.id, result: r)
    }
    return s
}

/// Runs the built `promptrepro` from the repository root (with `env` added to this process's
/// environment); returns its exit status, stdout and stderr.
func runCLI(_ args: [String], env: [String: String] = [:]) throws -> (status: Int32, out: String, err: String) {
    let bin = try binary()
    let errPath = tempDir("stderr") + "/err.txt"
    _ = FileManager.default.createFile(atPath: errPath, contents: nil)
    defer { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: errPath).deletingLastPathComponent().path) }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: bin)
    p.arguments = args
    p.currentDirectoryURL = URL(fileURLWithPath: repoRoot)
    if !env.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(env) { $1 } }
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
    try p.run()
    let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    return (p.terminationStatus, out, try String(contentsOfFile: errPath, encoding: .utf8))
}

/// Relative paths of the files under `dir`.
func files(under dir: String) -> [String] {
    ((FileManager.default.enumerator(atPath: dir)?.allObjects as? [String]) ?? [])
        .filter { var d: ObjCBool = false; return FileManager.default.fileExists(atPath: "\(dir)/\($0)", isDirectory: &d) && !d.boolValue }.sorted()
}

final class PublishedTests: XCTestCase {
    /// Every printed "Avg." equals the mean of its row's task cells, rounded or truncated to two
    /// decimals (the paper does both). One printed average disagrees with its own cells in the paper
    /// text itself (Baselines/published/NOTES.md); it is listed here, so any other mismatch — a
    /// transcription error — fails.
    func testPublishedAveragesRecompute() throws {
        let paperInconsistencies: [String: Double] = ["Table 1|T5-Base|dpt": 71.9175]
        let values = try Published.load(directory: "\(repoRoot)/Baselines/published")
        let avgs = values.filter { $0.column == "avg" }
        XCTAssertEqual(avgs.count, 12 + 3)  // DPT Table 1 (12 rows) and Table 4 (3 rows)
        for a in avgs {
            let cells = values.filter { $0.paper == a.paper && $0.table == a.table && $0.model == a.model && $0.method == a.method
                && !["avg", "params"].contains($0.column) }.compactMap(\.number)
            XCTAssertEqual(cells.count, 8, "\(a.table) \(a.model) \(a.method)")
            let mean = cells.reduce(0, +) / 8
            if let known = paperInconsistencies["\(a.table)|\(a.model)|\(a.method)"] {
                XCTAssertEqual(mean, known, accuracy: 1e-9)
                continue
            }
            let rounded = (mean * 100).rounded() / 100, truncated = ((mean * 100) + 1e-9).rounded(.down) / 100
            XCTAssertTrue(abs(rounded - a.number!) < 1e-9 || abs(truncated - a.number!) < 1e-9,
                          "\(a.table) \(a.model) \(a.method): cells average \(mean), printed \(a.value)")
        }
        // Table 3 (std) and the LoPT tables are complete.
        XCTAssertEqual(values.filter { $0.table == "Table 3" && $0.paper == "dpt" }.count, 72)
        XCTAssertEqual(values.filter { $0.paper == "lopt" && $0.table == "Table 3" && $0.column == "delta_params" }.count, 9)
    }
}

final class TableRenderTests: XCTestCase {
    /// Table 4 from a fixture store: published value / our mean ± sample std (Δ) per cell; rows
    /// without runs show "—", RTE's failed third seed shows "✗ failed 1/3"; the trainable-parameter
    /// column uses our counts.
    func testTable4MarkdownAgainstHandWritten() throws {
        let dir = tempDir("t4")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try fixtureStore("\(dir)/s.sqlite", spec: "table4", variant: "respt10",
                                     values: ["wsc": [64, 66, 65], "cb": [70, 72, 74], "record": [50, 51, 52], "rte": [60, 62]])
        let cells = try store.cellResults(spec: "table4", profile: "cpu")
        let layout = try PaperTables.layout("table4", directory: "\(repoRoot)/Baselines/tables")
        var pubs = try Published.load(directory: "\(repoRoot)/Baselines/published")
        pubs = pubs.filter { $0.table == "Table 4" }
        let md = PaperTables.markdown(layout, cells: cells, published: pubs, profile: "cpu", paperParams: try ExperimentSpec.load("\(repoRoot)/Baselines/specs/table4.yaml").paperParameterCounts())
        let expected = """
        # DPT Table 4 — Residual PT with 10 prompt tokens

        Profile: **cpu**. Each cell: published value / ours as mean ± sample std over seeds of the best-epoch validation score, (Δ = ours − published). † smoke profile; ‡ fewer than 3 seeds; — no counted run in this profile (not run, or left out as stale: see the notes); ✗ failed k/n: k of the cell's n runs failed (or diverged) and are left out of the mean.
        Metric per column (stored name): WSC `accuracy`, WiC `accuracy`, BoolQ `accuracy`, CB `accuracy`, COPA `accuracy`, MultiRC `f1a`, ReCoRD `f1`, RTE `accuracy`.
        Our parameter count is the method's on the column's model (its formula on that architecture, METHODS.md section 3, as the runs store it), whichever model a profile runs in the column (a smoke or stand-in run trains fewer: `promptrepro results --efficiency` lists what each run trained).

        | Model | # Trainable Params (paper / ours) | WSC | WiC | BoolQ | CB | COPA | MultiRC | ReCoRD | RTE | Avg. |
        |---|---|---|---|---|---|---|---|---|---|---|
        | **T5-Small** | | | | | | | | | | |
        | Residual PT (n=10) | 416K / 416,656 | 64.73 / 65.00 ± 1.00 (Δ +0.27) | 58.09 / — | 69.70 / — | 73.21 / 72.00 ± 2.00 (Δ -1.21) | 58.66 / — | 63.21 / — | 52.82 / 51.00 ± 1.00 (Δ -1.82) | 62.21 / 61.00 ± 1.41‡ (Δ -1.21) ✗ failed 1/3 | 62.83 / — |
        | **T5-Base** | | | | | | | | | | |
        | Residual PT (n=10) | 624K / 624,784 | 68.26 / — | 66.87 / — | 79.11 / — | 74.99 / — | 57.66 / — | 71.20 / — | 72.41 / — | 68.58 / — | 69.88 / — |
        | **T5-Large** | | | | | | | | | | |
        | Residual PT (n=10) | 832K / 832,912 | 69.86 / — | 69.74 / — | 84.18 / — | 70.82 / — | 59.33 / — | 74.77 / — | 84.31 / — | 88.20 / — | 75.15 / — |

        Columns whose metric has a paper-code variant (results lists both): WSC accuracy — WSC over all rows: correct iff T5's wsc_simple flag (prediction names the referent) equals the label; a label target is compared with the label; stored beside it: accuracy_label1 — WSC over label-1 rows only (the released DPT code's filtered set): % with verdict 1. ReCoRD f1 — SQuAD token F1, max over gold answers, each query once; stored beside it: f1_per_row — SQuAD token F1 as DPT's code scores it: each query weighted by its number of answers (its duplicated validation rows), articles found with the `regex` module's word characters.

        """
        XCTAssertEqual(md, expected)
        XCTAssertTrue(PaperTables.latex(layout, cells: cells, published: pubs, profile: "cpu").contains("65.00 $\\pm$ 1.00"))
    }
}

final class ReportSourceTests: XCTestCase {
    /// A table of the cpu profile says how its runs differ from the papers' (stand-in model, k):
    /// it read as like-for-like, "T5-Base" rows run on t5-small, 32-shot, against full-data numbers.
    func testCPUProfileTablesStateTheirSetting() throws {
        let dir = tempDir("setting")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: "\(dir)/res", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "\(repoRoot)/Baselines/results/lopt-table2-smoke.cells.json", toPath: "\(dir)/res/lopt-table2-cpu.cells.json")
        let r = try runCLI(["report", "lopt-table2", "--profile", "cpu", "--db", "\(dir)/none.sqlite", "--results-dir", "\(dir)/res", "--out-dir", "\(dir)/out",
                            "--data-dir", try sharedData()])
        XCTAssertEqual(r.status, 0, r.err)
        let md = try String(contentsOfFile: "\(dir)/out/lopt-table2.md", encoding: .utf8)
        XCTAssertTrue(md.contains("Setting of profile cpu (t5-small stands in for T5-Base): the T5-Base rows run t5-small; k = 32 training examples."), md)
        // The smoke table states its setting too (it once said only that it reproduces nothing).
        XCTAssertTrue(try String(contentsOfFile: "\(repoRoot)/Reports/lopt-table2.md", encoding: .utf8).contains("Setting of profile smoke"))
    }

    /// The setting note's eval_limit clause names the val-half rows only where some run selects on
    /// val-half (`select_on` in a profile's, the spec's or a variant's train settings, a search's
    /// included): every search once added it, a train-dev one too. The table is drawn from the
    /// committed smoke export under an edited copy of lopt-table2 (the edited rows are left out as
    /// stale; the note is the spec's).
    func testSettingNoteNamesValHalfOnlyWhereARunSelectsOnIt() throws {
        let root = tempDir("valhalfnote")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let fm = FileManager.default
        try fm.createDirectory(atPath: "\(root)/Baselines/specs", withIntermediateDirectories: true)
        for item in ["manifests", "data.lock", "published", "tables", "results"] {
            try fm.createSymbolicLink(atPath: "\(root)/Baselines/\(item)", withDestinationPath: "\(repoRoot)/Baselines/\(item)")
        }
        let original = try String(contentsOfFile: "\(repoRoot)/Baselines/specs/lopt-table2.yaml", encoding: .utf8)
        let entry = "{name: pt, method: pt, n: 100}"
        XCTAssertTrue(original.contains(entry), "lopt-table2's pt entry changed: edit the test")
        let clause = "rows selecting on val-half: the first 48 of the split's report half"
        for (edit, named) in [("", false), (", train: {select_on: val-half}", true),
                              (", search: {grid: {lr: [0.3, 0.03]}, select_on: train-dev}", false),
                              (", search: {grid: {lr: [0.3, 0.03]}, select_on: val-half}", true)] {
            try original.replacingOccurrences(of: entry, with: "{name: pt, method: pt, n: 100\(edit)}")
                .write(toFile: "\(root)/Baselines/specs/lopt-table2.yaml", atomically: true, encoding: .utf8)
            try? fm.removeItem(atPath: "\(root)/out")
            let r = try runCLI(["report", "lopt-table2", "--profile", "smoke", "--db", "\(root)/none.sqlite", "--out-dir", "\(root)/out",
                                "--data-dir", try sharedData()], env: ["PROMPTREPRO_ROOT": root])
            XCTAssertEqual(r.status, 0, "\(edit): \(r.err)")
            let md = try String(contentsOfFile: "\(root)/out/lopt-table2.md", encoding: .utf8)
            XCTAssertTrue(md.contains("scored on the first 48 validation examples of each task (eval_limit"), "\(edit): \(md)")
            XCTAssertEqual(md.contains(clause), named, "\(edit): \(md)")
            // The edited entry's cells, left out of the committed export as stale, are named in the
            // table itself (only stderr said so, and the table showed them as never run).
            let leftOut = md.components(separatedBy: "\n").first { $0.contains("Left out: ") }
            XCTAssertEqual(leftOut != nil, !edit.isEmpty, "\(edit): \(md)")
            if let leftOut {
                XCTAssertTrue(leftOut.contains("Left out: 5 cells of ") && leftOut.contains("lopt-table2-smoke.cells.json (e.g. pt|")
                              && leftOut.contains("promptrepro sweep lopt-table2 --profile smoke"), leftOut)
                // Why, as it is: an edited entry is stale, a searched one undecided by the export's grid points.
                let searched = edit.contains("search")
                XCTAssertEqual(leftOut.contains("ran under settings, task files or inputs that spec lopt-table2 no longer plans"), !searched, leftOut)
                XCTAssertEqual(leftOut.contains("are searches that the export's grid points no longer decide"), searched, leftOut)
            }
        }
    }

    /// A store holding only some Table 1 runs: `report` and `figures` redraw Tables 1 and 3 from the
    /// store and everything else from the committed exports, which leaves those files byte-identical
    /// to the committed Reports/ (so nothing is overwritten with "no runs" placeholders).
    func testStoreWithOnlyTable1ChangesOnlyTables1And3() throws {
        let dir = tempDir("src")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let db = "\(dir)/s.sqlite", out = "\(dir)/Reports"
        _ = try fixtureStore(db, spec: "table1", variant: "dpt", values: ["cb": [80, 82, 81], "rte": [60, 61, 62]], profile: "smoke")
        try FileManager.default.copyItem(atPath: "\(repoRoot)/Reports", toPath: out)
        let rep = try runCLI(["report", "--profile", "smoke", "--db", db, "--out-dir", out, "--data-dir", try sharedData()])
        XCTAssertEqual(rep.status, 0, rep.err)
        let fig = try runCLI(["figures", "--profile", "smoke", "--db", db, "--out-dir", "\(out)/figures"])
        XCTAssertEqual(fig.status, 0, fig.err)
        var changed: [String] = []
        for f in files(under: "\(repoRoot)/Reports") {
            // gnuplot's PNG/SVG bytes depend on its version and fonts; the .dat and .gp it draws from are compared.
            if f.hasSuffix(".png") || f.hasSuffix(".svg") { continue }
            if FileManager.default.contents(atPath: "\(repoRoot)/Reports/\(f)") != FileManager.default.contents(atPath: "\(out)/\(f)") { changed.append(f) }
        }
        XCTAssertEqual(changed, ["table1.md", "table1.tex", "table3.md", "table3.tex"])
        let t1 = try String(contentsOfFile: "\(out)/table1.md", encoding: .utf8)
        XCTAssertTrue(t1.contains("| 79.16 / 81.00 ± 1.00† (Δ +1.84) |"), t1)
        XCTAssertTrue(t1.contains("from \(db)._"), "footer names the store")
        XCTAssertTrue(try String(contentsOfFile: "\(out)/table4.md", encoding: .utf8).contains("from Baselines/results/table4-smoke.cells.json._"))
    }

    /// A spec with neither store runs nor an export: its table and figure are kept as they were, one
    /// line names the spec, profile and what to run, and the command exits 1 after writing the rest.
    func testMissingSpecKeepsFilesAndFails() throws {
        let dir = tempDir("miss")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let db = "\(dir)/s.sqlite", out = "\(dir)/R", empty = "\(dir)/results"
        _ = try fixtureStore(db, spec: "table1", variant: "dpt", values: ["cb": [80, 82, 81]], profile: "smoke")
        try FileManager.default.createDirectory(atPath: "\(out)/figures", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        try "kept".write(toFile: "\(out)/table4.md", atomically: true, encoding: .utf8)
        try "kept".write(toFile: "\(out)/figures/fig8.dat", atomically: true, encoding: .utf8)
        let rep = try runCLI(["report", "table4", "table1", "--profile", "smoke", "--db", db, "--out-dir", out, "--results-dir", empty])
        XCTAssertEqual(rep.status, 1)
        let line = rep.err.split(separator: "\n").filter { $0.hasPrefix("missing:") }
        XCTAssertEqual(line.count, 1, rep.err)
        XCTAssertTrue(line[0].contains("spec table4 [smoke]") && line[0].contains("promptrepro sweep table4 --profile smoke"), rep.err)
        XCTAssertTrue(line[0].contains("kept \(out)/table4.md"), rep.err)
        // table4's planned runs are not "unfinished here": no table4 number is taken from this store.
        XCTAssertFalse(rep.err.contains("runs spec table4 [smoke] plans have no finished result"), rep.err)
        XCTAssertEqual(try String(contentsOfFile: "\(out)/table4.md", encoding: .utf8), "kept")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(out)/table4.tex"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(out)/table1.md"), "the other tables are still written")
        let fig = try runCLI(["figures", "fig8", "--profile", "smoke", "--db", db, "--out-dir", "\(out)/figures", "--results-dir", empty])
        XCTAssertEqual(fig.status, 1)
        XCTAssertTrue(fig.err.contains("missing: no counted runs of spec fig8 [smoke]") && fig.err.contains("kept \(out)/figures/fig8.*"), fig.err)
        XCTAssertEqual(try String(contentsOfFile: "\(out)/figures/fig8.dat", encoding: .utf8), "kept")
        // Nothing there to keep: said as such (it said "kept" of a file that does not exist).
        let none = try runCLI(["report", "table4", "--profile", "smoke", "--db", db, "--out-dir", "\(dir)/R2", "--results-dir", empty])
        XCTAssertEqual(none.status, 1)
        XCTAssertTrue(none.err.contains("\(dir)/R2/table4.md not written") && !none.err.contains("kept"), none.err)
    }
}

final class FailureMarkerTests: XCTestCase {
    /// Failed runs are marked "✗ failed k/n" (never the "not run" dash) in Markdown, LaTeX and
    /// `results --format md`, whose cell ids ("variant|task|model|k") are escaped for Markdown.
    func testFailedCellsAreMarkedEverywhere() throws {
        let dir = tempDir("fail")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try fixtureStore("\(dir)/s.sqlite", spec: "table4", variant: "respt10", values: ["cb": [70], "rte": [], "wsc": [60, 61, 62]])
        let cells = try store.cellResults(spec: "table4", profile: "cpu")
        let layout = try PaperTables.layout("table4", directory: "\(repoRoot)/Baselines/tables")
        let pubs = try Published.load(directory: "\(repoRoot)/Baselines/published")
        let md = PaperTables.markdown(layout, cells: cells, published: pubs, profile: "cpu")
        XCTAssertTrue(md.contains("| 73.21 / 70.00‡ (Δ -3.21) ✗ failed 2/3 |"), md)  // one seed: no "± 0.00"
        XCTAssertTrue(ResultsExport.markdown(cells, spec: "table4", profile: "cpu").contains("70.00 (n=1)"), "one seed has no sample std")
        XCTAssertTrue(md.contains("| 62.21 / ✗ failed 3/3 |"), md)
        XCTAssertTrue(md.contains("| 64.73 / 61.00 ± 1.00 (Δ -3.73) |"), md)
        let tex = PaperTables.latex(layout, cells: cells, published: pubs, profile: "cpu")
        XCTAssertTrue(tex.contains(" & 62.21 / $\\times$ failed 3/3 & "), tex)

        let results = ResultsExport.markdown(cells, spec: "table4", profile: "cpu")
        let rows = results.split(separator: "\n").filter { $0.hasPrefix("| respt10") }
        XCTAssertEqual(rows.count, 3)
        for r in rows {  // 8 columns: 9 unescaped bars
            let bars = zip(r, [" "] + r.dropLast()).filter { $0.0 == "|" && $0.1 != "\\" }.count
            XCTAssertEqual(bars, 9, String(r))
        }
        XCTAssertTrue(results.contains("| respt10\\|rte\\|t5-small\\|k32 | 0 | accuracy | ✗ failed 3/3 | ✗ failed 3/3 | — |  | ✗ failed 3/3 |"), results)
        // The JSON (`results --format json`, `export`'s .json) counts each cell's runs by status:
        // cb's one seed read like a cell of one seed planned, its two failed runs nowhere.
        let json = try JSONSerialization.jsonObject(with: Data(try ResultsExport.json(cells, spec: "table4", profile: "cpu").utf8)) as? [String: Any]
        let entries = try XCTUnwrap(json?["results"] as? [String: [String: Any]])
        let cb = try XCTUnwrap(entries.values.first { $0["task"] as? String == "cb" })
        XCTAssertEqual(cb["seeds"] as? [Int], [1])
        XCTAssertEqual(cb["runs_by_status"] as? [String: Int], ["done": 1, "failed": 2])
    }
}

final class TableGridTests: XCTestCase {
    /// Markdown and LaTeX are two renderings of one grid: for a small layout, every cell holds the
    /// same numbers in both, the parameter column shows our count in both, and LaTeX specials in
    /// labels are escaped.
    func testMarkdownAndLatexShowTheSameCells() throws {
        let dir = tempDir("grid")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try fixtureStore("\(dir)/s.sqlite", spec: "table4", variant: "respt10", values: ["cb": [70, 72, 74], "rte": [60, 62]])
        let cells = try store.cellResults(spec: "table4", profile: "cpu")
        let layout = TableLayout(name: "t", title: "Small & 100% _test_", spec: "table4", publishedTable: "Table 4", paper: "dpt",
                                 sections: [.init(model: "t5-small", label: "T5-Small")],
                                 rows: [.init(variant: "respt10", label: "Res_PT #10 {a} ~x^2 \\y & 5%", publishedMethod: "respt")],
                                 columns: [.init(key: "cb", label: "CB", metric: "accuracy"), .init(key: "rte", label: "RTE", metric: "accuracy")],
                                 average: true, kind: .score, paramsColumn: true)
        let pubs = try Published.load(directory: "\(repoRoot)/Baselines/published")
        let spec = try ExperimentSpec.load("\(repoRoot)/Baselines/specs/table4.yaml")
        let md = PaperTables.markdown(layout, cells: cells, published: pubs, profile: "smoke", paperParams: spec.paperParameterCounts())
        let tex = PaperTables.latex(layout, cells: cells, published: pubs, profile: "smoke", paperParams: spec.paperParameterCounts())
        let mdRows = md.split(separator: "\n").filter { $0.hasPrefix("| ") }.map {
            $0.split(separator: "|", omittingEmptySubsequences: false).dropFirst().dropLast().map { $0.trimmingCharacters(in: .whitespaces) }
        }
        let texRows = tex.split(separator: "\n").filter { $0.hasSuffix(" \\\\") }.map {
            $0.dropLast(3).components(separatedBy: " & ").map { $0.trimmingCharacters(in: .whitespaces) }
        }
        func numbers(_ s: String) -> [String] {
            let re = try! NSRegularExpression(pattern: #"[0-9][0-9,]*(\.[0-9]+)?"#)
            return re.matches(in: s, range: NSRange(s.startIndex..., in: s)).map { String(s[Range($0.range, in: s)!]) }
        }
        XCTAssertEqual(mdRows.count, 3)  // header, section, one row
        XCTAssertEqual(texRows.count, 3)
        let (mdRow, texRow) = (mdRows[2], texRows[2])
        XCTAssertEqual(mdRow.count, 5)
        XCTAssertEqual(texRow.count, 5)
        for (m, t) in zip(mdRow, texRow) { XCTAssertEqual(numbers(m), numbers(t), "\(m) vs \(t)") }
        XCTAssertEqual(mdRow[1], "416K / 416,656")
        XCTAssertEqual(texRow[1], "416K / 416,656")
        XCTAssertEqual(numbers(mdRow[2]), ["73.21", "72.00", "2.00", "1.21"])
        XCTAssertTrue(texRow[3].contains("61.00 $\\pm$ 1.41$^\\dagger$$^\\ddagger$ ($\\Delta$ $-$1.21) $\\times$ failed 1/3"), texRow[3])
        XCTAssertEqual(texRow[0], ##"Res\_PT \#10 \{a\} \textasciitilde{}x\textasciicircum{}2 \textbackslash{}y \& 5\%"##)
        XCTAssertTrue(tex.contains("\\multicolumn{5}{l}{\\textbf{T5-Small}} \\\\"), tex)
        XCTAssertTrue(texRows[0][1].hasPrefix("\\# Trainable Params"), tex)
    }
}

final class TableLayoutTests: XCTestCase {
    /// Layouts are data (Baselines/tables/*.yaml), listed DPT first then LoPT; every table title and
    /// figure label names its own paper and its table/figure; a layout whose name disagrees with its
    /// file is rejected with the path.
    func testLayoutsAreDataAndNameTheirPaper() throws {
        let names = ["dpt": "DPT", "lopt": "LoPT", "study": "PromptRepro"]  // study: PromptRepro's own tables (no published numbers)
        let layouts = try PaperTables.layouts(directory: "\(repoRoot)/Baselines/tables")
        XCTAssertEqual(layouts.map(\.name), ["table1", "table3", "table4", "lopt-table1", "lopt-table2", "lopt-table3", "protocol-study"])
        for l in layouts {
            XCTAssertTrue(l.title.hasPrefix("\(names[l.paper]!) \(l.publishedTable) — "), l.title)
            XCTAssertEqual(try ExperimentSpec.load("\(repoRoot)/Baselines/specs/\(l.spec).yaml").paper, l.paper, l.name)
        }
        XCTAssertEqual(layouts.first { $0.name == "lopt-table3" }?.rows.count, 10)
        XCTAssertEqual(layouts.first { $0.name == "table3" }?.kind, .std)
        let figDir = "\(repoRoot)/Baselines/figures"
        for file in try FileManager.default.contentsOfDirectory(atPath: figDir) where file.hasSuffix(".yaml") {
            let f = try FigureSpec.load("\(figDir)/\(file)")
            let paper = try ExperimentSpec.load("\(repoRoot)/Baselines/specs/\(f.spec).yaml").paper
            XCTAssertEqual(f.label, "\(names[paper]!) Figure \(f.figure.dropFirst(3))", file)
        }
        let dir = tempDir("layout")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let text = try String(contentsOfFile: "\(repoRoot)/Baselines/tables/table4.yaml", encoding: .utf8)
        try text.write(toFile: "\(dir)/other.yaml", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try PaperTables.layouts(directory: dir)) { XCTAssertTrue("\($0)".contains("\(dir)/other.yaml"), "\($0)") }
    }
}

final class FigureTests: XCTestCase {
    func pngSize(_ path: String) throws -> (Int, Int) {
        let d = try Data(contentsOf: URL(fileURLWithPath: path))
        XCTAssertEqual(Array(d.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        func be(_ o: Int) -> Int { d[o..<(o + 4)].reduce(0) { $0 << 8 | Int($1) } }
        return (be(16), be(20))
    }

    func testGnuplotRendersPNGAndSVGOfTheDeclaredSize() throws {
        let dir = tempDir("fig")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try fixtureStore("\(dir)/s.sqlite", spec: "fig8", variant: "dpt-r1000", values: ["rte": [60, 64, 62]], model: "t5-large")
        _ = try fixtureStore("\(dir)/s.sqlite", spec: "fig8", variant: "dpt-r10", values: ["rte": [66, 67, 65]], model: "t5-large")
        let cells = try store.cellResults(spec: "fig8", profile: "cpu")
        let f = try FigureSpec.load("\(repoRoot)/Baselines/figures/fig8.yaml")
        let out = try Figures.render(f, cells: cells, tasks: ["rte"], profile: "cpu", outDir: dir)
        let (w, h) = try pngSize(out[0])
        XCTAssertEqual(w, 640)
        XCTAssertEqual(h, 400)
        XCTAssertGreaterThan(try Data(contentsOf: URL(fileURLWithPath: out[0])).count, 5_000)
        XCTAssertTrue(try String(contentsOfFile: out[1], encoding: .utf8).contains("<svg"))
        // The data file carries min/avg/max per bottleneck.
        let dat = try String(contentsOfFile: "\(dir)/fig8.dat", encoding: .utf8)
        XCTAssertTrue(dat.contains("10.0 66.0 65.0 67.0"), dat)
        XCTAssertTrue(dat.contains("1000.0 62.0 60.0 64.0"), dat)
        // Deterministic: a second render gives identical bytes.
        let first = try Data(contentsOf: URL(fileURLWithPath: out[0]))
        _ = try Figures.render(f, cells: cells, tasks: ["rte"], profile: "cpu", outDir: dir)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out[0])), first)
    }

    /// A reference may name one point of a varied method (Figure 10's PT at n 100 is the
    /// appendix's `pt-length-n100`): drawn as a level line at its mean. It matched no cell (only
    /// base names did) and the key said "PT: no runs".
    func testAReferenceNamesOnePointOfAVariedMethod() throws {
        let dir = tempDir("figref")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try fixtureStore("\(dir)/s.sqlite", spec: "appendix", variant: "dpt-bottleneck-r10", values: ["rte": [66, 67, 65]], model: "t5-base")
        _ = try fixtureStore("\(dir)/s.sqlite", spec: "appendix", variant: "pt-length-n100", values: ["rte": [58, 60, 59]], model: "t5-base")
        _ = try fixtureStore("\(dir)/s.sqlite", spec: "appendix", variant: "pt-length-n20", values: ["rte": [50, 50, 50]], model: "t5-base")
        let cells = try store.cellResults(spec: "appendix", profile: "cpu")
        var f = try FigureSpec.load("\(repoRoot)/Baselines/figures/fig10.yaml")
        XCTAssertEqual(f.references?.map(\.variant), ["pt-length-n100"])
        f.panels = ["rte"]
        _ = try Figures.render(f, cells: cells, tasks: ["rte"], profile: "cpu", outDir: dir)
        let gp = try String(contentsOfFile: "\(dir)/fig10.gp", encoding: .utf8)
        XCTAssertTrue(gp.contains("59.0 with lines dashtype 2 lc 2 title 'PT'") && !gp.contains("no runs"), gp)  // the mean of 58, 60, 59; n 20's 50 not mixed in
    }
}

final class CompareTests: XCTestCase {
    /// Welch t, df and two-sided p against scipy.stats.ttest_ind(equal_var=False); Student t tail
    /// probabilities against 2·scipy.stats.t.sf.
    func testWelchAgainstScipy() {
        let w = Statistics.welch([71.2, 73.5, 70.9], [68.0, 69.4, 70.1])!
        XCTAssertEqual(w.t, 2.627987022318347, accuracy: 1e-10)
        XCTAssertEqual(w.df, 3.7132430086114327, accuracy: 1e-10)
        XCTAssertEqual(w.p, 0.06291679252626492, accuracy: 1e-9)
        let w2 = Statistics.welch([80.0, 82.5, 79.0, 81.0], [75.0, 76.0])!
        XCTAssertEqual(w2.t, 5.70398841785007, accuracy: 1e-10)
        XCTAssertEqual(w2.p, 0.004943245163105283, accuracy: 1e-9)
        XCTAssertEqual(Statistics.twoSidedP(t: 2.0, df: 10), 0.07338803477074037, accuracy: 1e-10)
        XCTAssertEqual(Statistics.twoSidedP(t: 1.3, df: 2.7), 0.29345264370384533, accuracy: 1e-10)
        XCTAssertEqual(Statistics.twoSidedP(t: 5.1, df: 3.3), 0.011511912753605275, accuracy: 1e-10)
        XCTAssertNil(Statistics.welch([1], [2, 3]))
    }

    /// The bootstrap CI is fixed by its seed and brackets the observed difference; with constant
    /// groups it collapses to the difference.
    func testBootstrapCI() {
        let a = [71.2, 73.5, 70.9], b = [68.0, 69.4, 70.1]
        let ci = Statistics.bootstrapCI(a, b)
        XCTAssertEqual(ci.0, Statistics.bootstrapCI(a, b).0)
        XCTAssertLessThan(ci.0, Statistics.mean(a) - Statistics.mean(b))
        XCTAssertGreaterThan(ci.1, Statistics.mean(a) - Statistics.mean(b))
        // Range of resampled mean differences is bounded by min(a)−max(b) … max(a)−min(b).
        XCTAssertGreaterThanOrEqual(ci.0, 70.9 - 70.1 - 1e-9)
        XCTAssertLessThanOrEqual(ci.1, 73.5 - 68.0 + 1e-9)
        XCTAssertEqual(Statistics.bootstrapCI([5, 5], [3, 3]).0, 2)
    }

    /// Seed differences equal up to their last bits (10 more of CB's 56 rows right on every seed:
    /// 1000/56 is 17.857142857142854 or 17.85714285714286 by how the means were summed) are equal
    /// differences: the t-test's limit (p 0, [Δ, Δ]), not a t of ~1e16 with an interval of width
    /// 1e-14 that the equal-differences note missed; a real spread is not.
    func testSeedDifferencesEqualUpToRoundingAreEqualDifferences() throws {
        let d = [17.857142857142854, 17.85714285714286, 17.85714285714286, 17.857142857142854]
        XCTAssertTrue(Compare.equalDifferences(d))
        let t = try XCTUnwrap(Compare.pairedT(d, level: 0.95))
        XCTAssertEqual(t.p, 0)
        XCTAssertEqual(t.ci.0, t.ci.1)
        XCTAssertFalse(Compare.equalDifferences([17.857, 17.858, 17.857]))
        XCTAssertTrue(Compare.equalDifferences([1e-12, -1e-12]))
        XCTAssertEqual(Compare.pairedT([1e-12, -1e-12], level: 0.95)?.p, 1)
    }

    /// `compare` gates through its exit code. The store holds only cb and rte of table1, so without
    /// --allow-missing the gate fails listing the missing tasks. cb: d = (10, 11, 9), paired t over 3
    /// seeds → win; rte: d = (−3, −3, −3) → a degenerate interval at −3 → loss, within a margin of 5,
    /// beyond a margin of 2. Published baselines show Δ only and cannot gate.
    func testCompareExitCodes() throws {
        let dir = tempDir("cmp")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let db = "\(dir)/s.sqlite"
        _ = try fixtureStore(db, spec: "table1", variant: "dpt", values: ["cb": [80, 82, 81], "rte": [60, 61, 62]])
        _ = try fixtureStore(db, spec: "table1", variant: "pt", values: ["cb": [70, 71, 72], "rte": [63, 64, 65]])
        func run(_ extra: [String]) throws -> (Int32, String) {
            let r = try runCLI(["compare", "--method", "dpt", "--baseline", "pt", "--profile", "cpu", "--db", db] + extra)
            return (r.status, r.out)
        }
        let (missing, mtext) = try run(["--max-regression", "5"])
        XCTAssertEqual(missing, 1)
        XCTAssertTrue(mtext.contains("Missing runs") && mtext.contains("new 'dpt' wsc") && mtext.contains("FAILED"), mtext)
        // Counted in runs, not cells: 22 cells a side (8 tasks × 3 backbones but t5-small's cb and
        // rte) × 3 seeds (the count once read 44, the cells).
        XCTAssertTrue(mtext.contains("Missing runs (132 runs in 44 cells)") && mtext.contains("FAILED — 132 runs missing"), mtext)
        // A negative margin written as two words reached ArgumentParser as a flag ("Missing value").
        for margin in [["--max-regression", "-5"], ["--max-regression=-5"]] {
            let bad = try runCLI(["compare", "--method", "dpt", "--baseline", "pt", "--profile", "cpu", "--db", db] + margin)
            XCTAssertNotEqual(bad.status, 0)
            XCTAssertTrue(bad.err.contains("--max-regression -5.0: the margin must be a finite number of points ≥ 0"), bad.err)
        }
        let (ok, text) = try run(["--max-regression", "5", "--allow-missing"])
        XCTAssertEqual(ok, 0, text)
        XCTAssertTrue(text.contains("| cb | accuracy |") && text.contains("+10.00") && text.contains("-3.00"), text)
        XCTAssertTrue(text.contains("paired t over 3 seeds") && text.contains("1 win / 0 tie / 1 loss"), text)
        // The gate judged what exists and says so (it claimed "every expected run present").
        XCTAssertTrue(text.contains("missing or failed runs left out under --allow-missing") && !text.contains("every expected run present"), text)
        // rte's equal differences are named as such beside the row; cb's (10, 11, 9) are not.
        XCTAssertEqual(text.components(separatedBy: "every seed's difference equal: t infinite").count, 2, text)
        XCTAssertTrue(text.contains("profile **cpu**") && text.contains("t5-small = t5-small"), text)
        XCTAssertFalse(text.contains("Mixed numerics"), "no setups recorded: nothing to say")
        XCTAssertEqual(try run(["--max-regression", "2", "--allow-missing"]).0, 1)
        // The sides ran under other kernels (a baseline swept on another host): said in the header,
        // cell by cell, where only a mix within one cell was named before.
        let s = try ResultsStore(path: db)
        try s.db.query("UPDATE runs SET tool_version='promptrepro 0.1.0; swift 6; avx512 12x32 mc 4092 kc 384 nc 160 + openblas 0.3.21 Zen', threads=2")
        let (_, same) = try run(["--max-regression", "5", "--allow-missing"])
        XCTAssertFalse(same.contains("Mixed numerics"), same)
        try s.db.query("UPDATE runs SET tool_version='promptrepro 0.1.0; swift 6; avx2 6x16 mc 4092 kc 256 nc 128 + openblas 0.3.21 Zen' WHERE variant='pt' AND task='cb'")
        let (_, crossed) = try run(["--max-regression", "5", "--allow-missing"])
        XCTAssertTrue(crossed.contains("> Mixed numerics: dpt and pt ran under different numerics setups in 1 cell (e.g. cb t5-small") && crossed.contains(": dpt under promptrepro 0.1.0; swift 6; avx512")
                      && crossed.contains("pt under promptrepro 0.1.0; swift 6; avx2"), crossed)
        // Gating on what exists needs something to exist: a spec edited and not re-swept leaves no
        // current run, and the gate with --allow-missing passed over 0 tested tasks.
        let edited = try String(contentsOfFile: "\(repoRoot)/Baselines/specs/table1.yaml", encoding: .utf8)
            .replacingOccurrences(of: "train: {epochs: 20, eval_batch_size: 64}", with: "train: {epochs: 21, eval_batch_size: 64}")
        XCTAssertTrue(edited.contains("epochs: 21"), "the cpu profile's line moved: edit the test")
        try edited.write(toFile: "\(dir)/table1.yaml", atomically: true, encoding: .utf8)
        let untested = try run(["--spec", "\(dir)/table1.yaml", "--max-regression", "5", "--allow-missing"])
        XCTAssertEqual(untested.0, 1, untested.1)
        XCTAssertTrue(untested.1.contains("FAILED") && untested.1.contains("no task has runs of both sides to test"), untested.1)
        // A misspelt stored baseline is refused (it compared nothing), and the gate needs the store.
        let typo = try runCLI(["compare", "--method", "dpt", "--baseline", "ptt", "--profile", "cpu", "--db", db, "--max-regression", "5", "--allow-missing"])
        XCTAssertNotEqual(typo.status, 0)
        XCTAssertTrue(typo.err.contains("--baseline ptt: no runs of that variant") && typo.err.contains("did you mean 'pt'"), typo.err)
        let nostore = try runCLI(["compare", "--method", "dpt", "--baseline", "pt", "--profile", "cpu", "--db", "\(dir)/nosuch.sqlite", "--max-regression", "5"])
        XCTAssertNotEqual(nostore.status, 0)
        XCTAssertTrue(nostore.err.contains("no such store; the gate (--max-regression) needs the store"), nostore.err)
        XCTAssertNotEqual(try run(["--against", "published", "--max-regression", "100"]).0, 0)
        let (pub, ptext) = try run(["--against", "published"])
        XCTAssertEqual(pub, 0)
        XCTAssertTrue(ptext.contains("published value: no spread to test"), ptext)
        // DPT Table 1's published PT on T5-Small: CB 74.99 (Baselines/published/dpt-table1.csv), so Δ = 81.00 − 74.99.
        XCTAssertTrue(ptext.contains("+6.01"), ptext)
        // Outside the smoke profile the runs' setting is stated, as under the tables.
        XCTAssertTrue(ptext.contains("> Setting of profile cpu"), ptext)
        // --table takes a layout's name too (table1 → "Table 1"); an unknown table is said, with the known ones.
        XCTAssertEqual(try run(["--against", "published", "--table", "table1"]).1, ptext)
        let bad = try runCLI(["compare", "--method", "dpt", "--baseline", "pt", "--profile", "cpu", "--db", db, "--against", "published", "--table", "Table 9"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.err.contains("--table Table 9: paper dpt has no published values in 'Table 9'; known: Table 1, Table 3, Table 4"), bad.err)
        // A spec of a paper with no published numbers (paper: study): said as such, not as a bad --table.
        let study = try runCLI(["compare", "--spec", "protocol-study", "--method", "pt-dev", "--profile", "smoke", "--db", db, "--against", "published"])
        XCTAssertNotEqual(study.status, 0)
        XCTAssertTrue(study.err.contains("--against published: spec protocol-study is of paper study, which has no published values in Baselines/published (papers there: dpt, lopt)"), study.err)
        // A table of standard deviations, a layout of the other paper: refused.
        for (t, fragment) in [("table3", "publishes standard deviations"), ("Table 3", "publishes standard deviations"), ("lopt-table1", "a layout of paper lopt")] {
            let r = try runCLI(["compare", "--method", "dpt", "--baseline", "pt", "--profile", "cpu", "--db", db, "--against", "published", "--table", t])
            XCTAssertNotEqual(r.status, 0, t)
            XCTAssertTrue(r.err.contains(fragment), "\(t): \(r.err)")
        }
        // A spec that no layout shows needs --table (fig4's few-shot cells once met Table 1's full-data values).
        let fig = try runCLI(["compare", "--method", "dpt", "--baseline", "pt", "--profile", "cpu", "--db", db, "--against", "published", "--spec", "fig4"])
        XCTAssertNotEqual(fig.status, 0)
        XCTAssertTrue(fig.err.contains("no layout in Baselines/tables shows spec fig4: pass --table"), fig.err)
        // --tables-dir, as `report` takes it: a layout there that shows fig4 decides its table.
        let tables = "\(dir)/tables"
        try FileManager.default.createDirectory(atPath: tables, withIntermediateDirectories: true)
        try String(contentsOfFile: "\(repoRoot)/Baselines/tables/table1.yaml", encoding: .utf8).replacingOccurrences(of: "spec: table1", with: "spec: fig4")
            .write(toFile: "\(tables)/table1.yaml", atomically: true, encoding: .utf8)
        let figDir = try runCLI(["compare", "--method", "dpt", "--baseline", "pt", "--profile", "cpu", "--db", db, "--against", "published", "--spec", "fig4",
                                 "--tables-dir", tables])
        XCTAssertFalse(figDir.err.contains("no layout in"), figDir.err)
        try FileManager.default.createDirectory(atPath: "\(dir)/no-tables", withIntermediateDirectories: true)
        let emptyTables = try runCLI(["compare", "--method", "dpt", "--baseline", "pt", "--profile", "cpu", "--db", db, "--against", "published", "--spec", "fig4",
                                      "--tables-dir", "\(dir)/no-tables"])
        XCTAssertNotEqual(emptyTables.status, 0)
        XCTAssertTrue(emptyTables.err.contains("no layout in \(dir)/no-tables shows spec fig4"), emptyTables.err)
        // The same method with other settings than the published row's is named (once compared
        // without a word: our r = 5 DPT against the paper's r = 10; our 100-token Residual PT
        // against Table 4's 10 tokens); DPT against published PT, another method, is not.
        _ = try fixtureStore(db, spec: "fig5", variant: "dpt-r5", values: ["cb": [80, 82, 81]], model: "t5-large")
        let r5 = try runCLI(["compare", "--method", "dpt-r5", "--baseline", "dpt", "--profile", "cpu", "--db", db, "--against", "published",
                             "--spec", "fig5", "--table", "table1"])
        XCTAssertEqual(r5.status, 0, r5.err)
        XCTAssertTrue(r5.out.contains("published 'dpt' of Table 1 is dpt with r 10 (layout table1, variant 'dpt' of spec table1); 'dpt-r5' here has r 5"), r5.out)
        XCTAssertTrue(r5.err.contains("the Δ compares different settings of the method"), r5.err)
        XCTAssertFalse(ptext.contains("different settings of the method"), ptext)
        // A baseline the published table has no row of is named with the rows it has (was "no task has both").
        let none = try runCLI(["compare", "--method", "dpt", "--baseline", "pt-n10", "--profile", "cpu", "--db", db, "--against", "published"])
        XCTAssertNotEqual(none.status, 0)
        XCTAssertTrue(none.err.contains("--baseline pt-n10: Table 1 publishes no row of that name") && none.err.contains("respt"), none.err)
    }
}

final class ComparePublishedCoverageTests: XCTestCase {
    /// A task of the spec that the published table has no value for is named under the comparison
    /// (SST-2 is not in DPT Table 1), not dropped without a word.
    func testTasksWithoutPublishedValuesAreNamed() throws {
        let data = try sharedData()
        let dir = tempDir("cmppub")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let spec = """
        spec: mini
        title: mini test grid
        paper: dpt
        methods:
          - {name: pt, method: pt, n: 8}
        tasks: [cb, sst2]
        models: [t5-small]
        seeds: [1]
        k: [8]
        profiles:
          smoke:
            models: {t5-small: "embedded:t5-tiny"}
            train: {epochs: 1, batch_size: 4, eval_limit: 8, eval_batch_size: 8, decode_max_tokens: 3, max_source_length: 96}
        """
        try spec.write(toFile: "\(dir)/mini.yaml", atomically: true, encoding: .utf8)
        let db = "\(dir)/s.sqlite"
        let sweep = try runCLI(["sweep", "\(dir)/mini.yaml", "--profile", "smoke", "--workers", "2", "--db", db, "--data-dir", data, "--checkpoints", "\(dir)/ck"])
        XCTAssertEqual(sweep.status, 0, sweep.err)
        let r = try runCLI(["compare", "--spec", "\(dir)/mini.yaml", "--method", "pt", "--baseline", "pt", "--against", "published", "--table", "Table 1",
                            "--profile", "smoke", "--db", db, "--data-dir", data])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("| cb |"), r.out)
        XCTAssertTrue(r.out.contains("Not compared: Table 1 of dpt publishes no pt value for sst2 (t5-small, k=8)."), r.out)
    }
}

final class ProtocolLabelTests: XCTestCase {
    /// A table whose rows use protocol variants names them under the table (Markdown and LaTeX);
    /// rows of the papers' protocol are not listed.
    func testTablesNameTheProtocolVariants() throws {
        let layout = try PaperTables.layout("protocol-study", directory: "\(repoRoot)/Baselines/tables")
        func cell(_ v: String, _ label: String?) -> CellResult {
            var c = CellResult(cell: "\(v)|cb|t5-small|k16", variant: v, method: "pt", task: "cb", model: "t5-small", k: 16, seeds: [1, 2, 3],
                               statuses: ["done": 3], trainableParams: 1, best: ["accuracy": Stat([50, 50, 50])], last: [:], divergedSeeds: [],
                               probe: nil)
            c.protocolLabel = label
            return c
        }
        let cells = [cell("pt", nil), cell("pt-dev-rank", "selection: train-dev (k_dev 16); eval: rank")]
        let md = PaperTables.markdown(layout, cells: cells, published: [], profile: "smoke")
        XCTAssertTrue(md.contains("PT — select on train-dev, rank — selection: train-dev (k_dev 16); eval: rank."), md)
        XCTAssertFalse(md.contains("PT — select on validation, generate (DPT code) —"), md)
        let tex = PaperTables.latex(layout, cells: cells, published: [], profile: "smoke")
        XCTAssertTrue(tex.contains("selection: train-dev (k\\_dev 16); eval: rank"), tex)
        // A papers'-protocol table has no protocol note.
        XCTAssertFalse(PaperTables.markdown(layout, cells: [cell("pt", nil)], published: [], profile: "smoke").contains("Protocol:"))
        // Every row `published: none`: cells are ours alone (they read "— / 50.00"), and the legend
        // says so instead of "published value / ours … (Δ = ours − published)".
        XCTAssertFalse(layout.hasPublished)
        XCTAssertTrue(md.contains("| PT — select on validation, generate (DPT code) | 50.00 ± 0.00† | — | — | — |"), md)
        XCTAssertTrue(md.contains("Each cell: ours as mean ± sample std") && !md.contains("published value / ours"), md)
        XCTAssertTrue(try PaperTables.layout("table1", directory: "\(repoRoot)/Baselines/tables").hasPublished)
    }
}

final class ParamsColumnTests: XCTestCase {
    /// LoPT Table 3 prints "Δ # Params" (against PT of the same length), not counts: the column
    /// shows those values for the paper (it showed "—", as if nothing were printed) and says so.
    func testDeltaParamsTableShowsThePapersPercentages() throws {
        let layout = try PaperTables.layout("lopt-table3", directory: "\(repoRoot)/Baselines/tables")
        let published = try Published.load(directory: "\(repoRoot)/Baselines/published")
        let grid = PaperTables.grid(layout, cells: [], published: published, profile: "smoke")
        XCTAssertTrue(grid.header.contains("Δ # Params vs PT (paper) / # Trainable Params (ours)"), grid.header.description)
        let params = grid.rows.compactMap { row -> String? in
            if case .cells(let cs) = row { return cs.first { $0.kind == .params }?.text }
            return nil
        }
        XCTAssertEqual(params.first, "— / —", "the paper prints '-' for PT itself")
        XCTAssertEqual(params.dropFirst().map { String($0.prefix { $0 != " " }) },
                       ["-89.92%", "-79.84%", "-49.61%", "-89.84%", "-79.69%", "-49.22%", "-89.77%", "-79.53%", "-48.83%"])
    }

    /// ‡ counts training seeds, not runs: a crossed cell of 2 samples × 2 seeds (4 runs) has 2
    /// seeds and is marked; 3 seeds on 3 samples are not.
    func testFewSeedsMarkCountsSeedsNotRuns() throws {
        let layout = TableLayout(name: "t", title: "t", spec: "table1", publishedTable: "Table 1", paper: "dpt",
                                 sections: [.init(model: "t5-small", label: "T5-Small")],
                                 rows: [.init(variant: "dpt", label: "DPT", publishedMethod: "dpt")],
                                 columns: [.init(key: "cb", label: "CB", metric: "accuracy")], average: false, kind: .score, paramsColumn: false)
        func text(_ c: CellResult) -> String? {
            PaperTables.grid(layout, cells: [c], published: [], profile: "cpu").rows.compactMap { row -> String? in
                if case .cells(let cs) = row { return cs.first { $0.kind == .score }?.text }
                return nil
            }.first
        }
        var crossed = CellResult(cell: "dpt|cb|t5-small|k8", variant: "dpt", method: "dpt", task: "cb", model: "t5-small", k: 8, seeds: [1, 2, 1, 2],
                                 statuses: ["done": 4], trainableParams: 1, best: ["accuracy": Stat([50, 52, 54, 56])], last: [:], divergedSeeds: [], probe: nil)
        crossed.sampleSeeds = [1, 1, 2, 2]
        XCTAssertTrue(text(crossed)?.hasSuffix("‡") == true, text(crossed) ?? "")
        let three = CellResult(cell: "dpt|cb|t5-small|k8", variant: "dpt", method: "dpt", task: "cb", model: "t5-small", k: 8, seeds: [1, 2, 3],
                               statuses: ["done": 3], trainableParams: 1, best: ["accuracy": Stat([50, 52, 54])], last: [:], divergedSeeds: [], probe: nil)
        XCTAssertFalse(text(three)?.contains("‡") == true, text(three) ?? "")
    }

    /// Our trainable count per row and section: the `paper_params` the cell's runs stored wins over
    /// the count passed from the spec; a section without runs, or whose runs are from before the
    /// metric was stored (an old export), prints the passed count; with neither it prints "—".
    func testStoredCountWinsOverThePassedMapAndTheMapFillsTheRest() throws {
        let layout = TableLayout(name: "t", title: "t", spec: "table1", publishedTable: "Table 1", paper: "dpt",
                                 sections: [.init(model: "t5-small", label: "T5-Small"), .init(model: "t5-base", label: "T5-Base"),
                                            .init(model: "t5-large", label: "T5-Large"), .init(model: "gpt2", label: "GPT-2")],
                                 rows: [.init(variant: "dpt", label: "DPT", publishedMethod: "dpt")],
                                 columns: [.init(key: "cb", label: "CB", metric: "accuracy")], average: false, kind: .score, paramsColumn: true)
        func cell(_ model: String, stored: [Double]?) -> CellResult {
            var c = CellResult(cell: "dpt|cb|\(model)|k8", variant: "dpt", method: "dpt", task: "cb", model: model, k: 8, seeds: [1, 2],
                               statuses: ["done": 2], trainableParams: 1, best: ["accuracy": Stat([50, 52])], last: [:], divergedSeeds: [], probe: nil)
            c.extras = stored.map { ["paper_params": Stat($0), "seconds_per_step": Stat([0.1, 0.2])] }
            return c
        }
        // t5-small: runs stored 6,120 (DPT n=100 r=10: 100·10 + 10·512), the map says otherwise → stored;
        // t5-base: no runs → the map; t5-large: an old export's runs (no paper_params) → the map; gpt2: neither → —.
        let cells = [cell("t5-small", stored: [6120, 6120]), cell("t5-large", stored: nil)]
        let map = ["dpt": ["t5-small": 999, "t5-base": 8_680, "t5-large": 11_240]]
        XCTAssertEqual(cells[0].paperParams, 6120)
        XCTAssertNil(cells[1].paperParams)
        let grid = PaperTables.grid(layout, cells: cells, published: [], profile: "smoke", paperParams: map)
        let params = grid.rows.compactMap { row -> String? in
            if case .cells(let cs) = row { return cs.first { $0.kind == .params }?.text }
            return nil
        }
        XCTAssertEqual(params, ["— / 6,120", "— / 8,680", "— / 11,240", "— / —"])
        // A row's variant with neither (an adapter stored by `eval --db`): the count its runs
        // recorded (it printed "—" beside the 1,280 the evaluation reported).
        var adapter = cell("gpt2", stored: nil)
        adapter.trainableParams = 1280
        let withAdapter = PaperTables.grid(layout, cells: cells + [adapter], published: [], profile: "smoke", paperParams: map)
        XCTAssertEqual(withAdapter.rows.compactMap { row -> String? in
            if case .cells(let cs) = row { return cs.first { $0.kind == .params }?.text }
            return nil
        }.last, "— / 1,280")
        // Runs of one cell that disagree store no single count (the map is used).
        XCTAssertNil(cell("t5-small", stored: [6120, 6121]).paperParams)
        // Cells of two few-shot sizes for one table cell: no number is picked for it.
        var k16 = cell("t5-small", stored: nil)
        k16.k = 16
        k16.best = ["accuracy": Stat([90, 92])]
        let two = PaperTables.grid(layout, cells: [cell("t5-small", stored: nil), k16], published: [], profile: "smoke", paperParams: map)
        let scores = two.rows.compactMap { row -> String? in
            if case .cells(let cs) = row { return cs.first { $0.kind == .score }?.text }
            return nil
        }
        XCTAssertEqual(scores.first, "— / ✗ k 8, 16: the spec plans several k, the table shows one")
    }
}

/// What the paper's own table says about a value, and what our runs read, stays on the table
/// (2026-12-06 review): the paper's ∗ rows, values it cites from other work, a printed Avg. that is
/// not its cells' mean, each column's metric, and subset data files.
final class PublishedMarksTests: XCTestCase {
    func averageCells(_ grid: TableGrid) -> [String] {
        grid.rows.compactMap { row -> String? in
            if case .cells(let cs) = row { return cs.first { $0.kind == .average }?.text }
            return nil
        }
    }

    func testStarredRowsAndAnAverageThatIsNotItsCellsMean() throws {
        let layout = try PaperTables.layout("table1", directory: "\(repoRoot)/Baselines/tables")
        let published = try Published.load(directory: "\(repoRoot)/Baselines/published")
        let grid = PaperTables.grid(layout, cells: [], published: published, profile: "cpu")
        let rows = grid.rows.compactMap { row -> [TableGrid.Cell]? in if case .cells(let cs) = row { return cs }; return nil }
        // Fine-Tuning rows: T5-Small unstarred, T5-Base and T5-Large starred (their unit "acc %*").
        let ft = rows.filter { $0[0].text.hasPrefix("Fine-Tuning") }
        XCTAssertEqual(ft.map { $0[0].text }, ["Fine-Tuning", "Fine-Tuning∗", "Fine-Tuning∗"])
        XCTAssertEqual(ft[1][2].text, "81.70 / —")
        XCTAssertEqual(rows.filter { $0[0].text.contains("∗") }.count, 2)
        // Only T5-Base DPT's printed 71.88 is neither the rounded nor the truncated mean of its cells
        // (71.9175 by hand: 575.34 / 8); every other Avg. of the table matches one of the two.
        let marked = averageCells(grid).filter { $0.contains("¶") }
        XCTAssertEqual(marked, ["71.88¶ / —"])
        XCTAssertTrue(grid.notes.contains { $0.contains("T5-Base DPT (ours in the paper): 71.88 printed, 71.9175 the mean of its cells") }, grid.notes.description)
        XCTAssertTrue(grid.notes.contains { $0.hasPrefix("∗ rows the paper marks so") }, grid.notes.description)
        // The legend names each column's metric (the paper's second header row).
        let md = PaperTables.markdown(layout, grid: grid, profile: "cpu")
        XCTAssertTrue(md.contains("Metric per column (stored name): WSC `accuracy`, WiC `accuracy`, BoolQ `accuracy`, CB `accuracy`, COPA `accuracy`, MultiRC `f1a`, ReCoRD `f1`, RTE `accuracy`."), md)
        XCTAssertFalse(md.contains("METHODS.md section 5"), "the formulas are in section 3")
    }

    func testCitedValuesSayWhoseTheyAre() throws {
        let layout = try PaperTables.layout("lopt-table2", directory: "\(repoRoot)/Baselines/tables")
        let published = try Published.load(directory: "\(repoRoot)/Baselines/published")
        let grid = PaperTables.grid(layout, cells: [], published: published, profile: "cpu")
        let rows = grid.rows.compactMap { row -> [TableGrid.Cell]? in if case .cells(let cs) = row { return cs }; return nil }
        XCTAssertEqual(rows.map { $0[0].text }, ["Fine-tuningᶜ", "LoRAᶜ", "PTᶜ", "DePTᶜ", "LoPT-1", "LoPT-2"])
        XCTAssertEqual(rows[0][2].text, "94.6 / —")
        let note = grid.notes.first { $0.hasPrefix("ᶜ") } ?? ""
        XCTAssertTrue(note.contains("Fine-tuning from Asai et al. 2022"), note)
        XCTAssertTrue(note.contains("LoRA from Sung et al. 2022"), note)
        XCTAssertTrue(note.contains("DePT, PT from Shi & Lipani 2023"), note)
    }

    func testSubsetDataFilesAreNamed() throws {
        let dir = tempDir("subsetnote")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try fixtureStore("\(dir)/s.sqlite", spec: "table1", variant: "pt", values: ["boolq": [60, 61, 62], "cb": [70, 71, 72]],
                                     dataFiles: ["superglue/boolq/train.subset41.jsonl": "aa", "superglue/boolq/val.jsonl": "bb"])
        let cells = try store.cellResults(spec: "table1", profile: "cpu")
        XCTAssertEqual(cells.first { $0.task == "boolq" }?.dataFiles, ["superglue/boolq/train.subset41.jsonl", "superglue/boolq/val.jsonl"])
        let layout = try PaperTables.layout("table1", directory: "\(repoRoot)/Baselines/tables")
        let grid = PaperTables.grid(layout, cells: cells, published: [], profile: "cpu")
        let note = grid.notes.first { $0.hasPrefix("Subset data") } ?? ""
        XCTAssertTrue(note.contains("BoolQ (train superglue/boolq/train.subset41.jsonl)"), grid.notes.description)
        XCTAssertFalse(note.contains("val.jsonl"), "the official validation file is not a subset")
        // Without subset files (an export from before data files were kept) there is no note.
        var old = cells
        for i in old.indices { old[i].dataFiles = nil }
        XCTAssertFalse(PaperTables.grid(layout, cells: old, published: [], profile: "cpu").notes.contains { $0.hasPrefix("Subset data") })
    }

    /// A table whose cell averages seeds run under different numerics says so under the table
    /// (the note went to stderr only), from the store and from its export alike; mc / nc alone is
    /// no mix, and cells without recorded setups (exports made before) say nothing.
    func testTablesNameCellsOfMixedNumerics() throws {
        let dir = tempDir("mixednote")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try fixtureStore("\(dir)/s.sqlite", spec: "table1", variant: "pt", values: ["boolq": [60, 61, 62], "cb": [70, 71, 72]])
        try store.db.query("UPDATE runs SET tool_version='promptrepro 0.1.0; swift 6; avx512 12x32 mc 4092 kc 384 nc 160 + openblas 0.3.21 Zen', threads=2")
        try store.db.query("UPDATE runs SET tool_version='promptrepro 0.1.0; swift 6; avx512 12x32 mc 2400 kc 384 nc 320 + openblas 0.3.21 Zen' WHERE task='boolq' AND seed=2")
        let layout = try PaperTables.layout("table1", directory: "\(repoRoot)/Baselines/tables")
        var cells = try store.cellResults(spec: "table1", profile: "cpu")
        XCTAssertNil(cells.first { $0.task == "boolq" }?.mixedNumerics, "another mc / nc gives the same bits")
        XCTAssertFalse(PaperTables.grid(layout, cells: cells, published: [], profile: "cpu").notes.contains { $0.hasPrefix("Mixed numerics") })
        try store.db.query("UPDATE runs SET threads=1 WHERE task='cb' AND seed=3")
        cells = try store.cellResults(spec: "table1", profile: "cpu")
        let cb = try XCTUnwrap(cells.first { $0.task == "cb" })
        XCTAssertEqual(cb.mixedNumerics?.count, 2)
        let note = PaperTables.grid(layout, cells: cells, published: [], profile: "cpu").notes.first { $0.hasPrefix("Mixed numerics") } ?? ""
        XCTAssertTrue(note.hasPrefix("Mixed numerics: 1 cell average runs of different GEMM kernels") && note.contains("(e.g. \(cb.cell): "), note)
        XCTAssertTrue(note.contains("; threads 1 | ") || note.contains("; threads 2 | "), note)
        // Through the export's JSON, as `report` reads a committed export.
        let exported = try JSONDecoder().decode([CellResult].self, from: try JSONEncoder().encode(cells))
        XCTAssertEqual(exported.first { $0.task == "cb" }?.mixedNumerics, cb.mixedNumerics)
        let summary = try JSONSerialization.jsonObject(with: Data(try ResultsExport.json(cells, spec: "table1", profile: "cpu").utf8)) as? [String: Any]
        let entry = ((summary?["results"] as? [String: Any])?[cb.cell] as? [String: Any])
        XCTAssertEqual((entry?["numerics_per_seed"] as? [Any])?.count, 3)
        XCTAssertEqual((entry?["mixed_numerics"] as? [String])?.count, 2)
        var old = cells
        for i in old.indices { old[i].runNumerics = nil }
        XCTAssertFalse(PaperTables.grid(layout, cells: old, published: [], profile: "cpu").notes.contains { $0.hasPrefix("Mixed numerics") })
    }

    func testLatexKeepsCodeSpansAndDoubleHyphens() {
        XCTAssertEqual(PaperTables.latexText("run `make fetch-data` or pass --data-dir; 1–2 — x"),
                       "run \\texttt{make fetch-data} or pass -{}-data-dir; 1--2 --- x")
        XCTAssertEqual(PaperTables.latexText("81.70∗ / 3.8Mᶜ ¶"), "81.70$^*$ / 3.8M$^{c}$ \\P{}")
        XCTAssertEqual(PaperTables.latexText("one ` backtick"), "one ` backtick")
        // What pdflatex with its defaults (OT1, utf8 input) misprinted or refused (review,
        // 2026-12-07): "|" as an em dash, '"' as a closing quote on both sides, ≥ and friends
        // stopped the run; a minus sign before a number was a hyphen.
        XCTAssertEqual(PaperTables.latexText("AG|News \"q\" k ≥ 2, ≤ 3, ∞ ≈ 1 ✓ σ"),
                       "AG\\textbar{}News ``q'' k $\\geq$ 2, $\\leq$ 3, $\\infty$ $\\approx$ 1 $\\surd$ $\\sigma$")
        XCTAssertEqual(PaperTables.latexText("(Δ -3.21) t5-small 1-3 -n"), "($\\Delta$ $-$3.21) t5-small 1-3 -n")
        // Accented letters, precomposed or decomposed, as accent commands (OT1 prints those);
        // letters pdflatex's defaults refuse (ħ, Đ) and other symbols by code point; typographic
        // quotes as TeX's; a minus after "[", "=" or before ".5"; a quote inside a code span straight.
        XCTAssertEqual(PaperTables.latexText("é e\u{301} í ñ ç µ ★ ħ Đ"), "\\'{e} \\'{e} \\'{\\i} \\~{n} \\c{c} $\\mu$ [U+2605] [U+0127] [U+0110]")
        XCTAssertEqual(PaperTables.latexText("O’Brien “x” [-1, 2] x=-3 -.5 a-1"), "O'Brien ``x'' [$-$1, 2] x=$-$3 $-$.5 a-1")
        XCTAssertEqual(PaperTables.latexText("`a \"b\"`"), "\\texttt{a \\char`\\\"{}b\\char`\\\"{}}")
        // Pieces that would join into a TeX ligature are kept apart: "!``" is ¡ followed by a
        // quote, "--" + "-" an em dash; Latin-1 signs by their text commands.
        XCTAssertEqual(PaperTables.latexText("!“bang” ?‘q’ –-5 ¡ ½ ®"), "!{}``bang'' ?{}`q' --{}-5 \\textexclamdown{} $\\frac12$ \\textregistered{}")
        XCTAssertEqual(PaperTables.latexText("“‘x’”"), "``{}`x'{}''")
    }

    /// Every committed LaTeX table, and one whose labels hold what pdflatex's defaults refused or
    /// misprinted, compiles with pdflatex (article, booktabs, the tabular scaled through
    /// \promptreprotable). Skipped, saying so, where pdflatex is not installed (CI installs no TeX).
    func testLatexTablesCompileWithPdflatex() throws {
        try XCTSkipUnless(toolInstalled("pdflatex"), "pdflatex is not installed")
        let dir = tempDir("pdflatex")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var tables = try FileManager.default.contentsOfDirectory(atPath: "\(repoRoot)/Reports").filter { $0.hasSuffix(".tex") }
            .map { "\(repoRoot)/Reports/\($0)" }
        XCTAssertGreaterThanOrEqual(tables.count, 7)
        var layout = try PaperTables.layout("table4", directory: "\(repoRoot)/Baselines/tables")
        layout.title = "Odd “labels” ≥ 2 — O’Brien | ħ Đ e\u{301} ★ \"q\" `a \"b\"` [-1, 2] !“x” ½ ¢ ¥ € ® ª º\nsecond line"
        let odd = "\(dir)/odd.tex"
        try PaperTables.latex(layout, cells: [], published: [], profile: "smoke").write(toFile: odd, atomically: true, encoding: .utf8)
        var grid = PaperTables.grid(layout, cells: [], published: [], profile: "smoke")
        grid.notes.append(layout.title)
        try PaperTables.latex(layout, grid: grid, profile: "smoke").write(toFile: "\(dir)/odd2.tex", atomically: true, encoding: .utf8)
        tables += [odd, "\(dir)/odd2.tex"]
        for (i, table) in tables.enumerated() {
            let doc = "\\documentclass{article}\\usepackage{booktabs}\\usepackage{graphicx}"
                + "\\newcommand{\\promptreprotable}[1]{\\noindent\\resizebox{\\textwidth}{!}{#1}}"
                + "\\begin{document}\\input{\(table)}\\end{document}\n"
            try doc.write(toFile: "\(dir)/doc\(i).tex", atomically: true, encoding: .utf8)
            let (status, _) = try runTool(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc\(i).tex"], in: dir)
            let log = (try? String(contentsOfFile: "\(dir)/doc\(i).log", encoding: .utf8)) ?? ""
            XCTAssertEqual(status, 0, "\(table): " + log.split(separator: "\n").filter { $0.hasPrefix("!") }.joined(separator: "; "))
            XCTAssertFalse(log.contains("Overfull \\hbox"), "\(table): overfull box")
        }
    }

    /// A folded YAML title (`title: >`) ends in a newline: its second line left the comment and was
    /// typeset above the table. The tabular is the argument of \promptreprotable, so a document can
    /// scale it without the notes (a \resizebox around the file shrank the notes to one line).
    func testLatexTitleStaysACommentAndTheTabularScalesAlone() throws {
        var layout = try PaperTables.layout("table4", directory: "\(repoRoot)/Baselines/tables")
        layout.title = "Special table folded\nover two lines\n"
        let tex = PaperTables.latex(layout, cells: [], published: [], profile: "smoke")
        let lines = tex.split(separator: "\n", omittingEmptySubsequences: false)
        XCTAssertEqual(lines.first.map(String.init), "% Special table folded over two lines — profile smoke")
        let body = lines.filter { !$0.hasPrefix("%") }
        XCTAssertEqual(body.first.map(String.init), "\\providecommand{\\promptreprotable}[1]{#1}")
        XCTAssertTrue(body.dropFirst().first?.hasPrefix("\\promptreprotable{\\begin{tabular}{l") == true, tex)
        XCTAssertTrue(tex.contains("\\bottomrule\n\\end{tabular}}\n"), tex)
    }

    /// compare's header names what each side's settings resolved to and the settings the two
    /// sides differ in (LoPT's preset trains with Adafactor at a constant rate, PT's dpt-paper one
    /// with AdamW and a linear decay: compared without a word). Values from the presets as
    /// METHODS.md states them (dpt-paper: AdamW lr 0.3, wd 1e-5, linear, clip 1, batch 16, 100
    /// epochs; lopt-paper: Adafactor, constant, no decay, no dropout, batch 8 on CB, 30 epochs).
    func testResolvedSettingsNameWhatTheSidesTrainWith() throws {
        let pt = try TrainConfig.preset("dpt-paper", method: try MethodConfig.defaults("pt"), task: "cb", model: "embedded:t5-tiny", k: 8, seed: 1)
        let lopt = try TrainConfig.preset("lopt-paper", method: try MethodConfig.defaults("lopt1"), task: "cb", model: "embedded:t5-tiny", k: 8, seed: 1)
        let a = Compare.resolvedSettings([pt]), b = Compare.resolvedSettings([lopt])
        let av = Dictionary(uniqueKeysWithValues: a.map { ($0.key, $0.value) }), bv = Dictionary(uniqueKeysWithValues: b.map { ($0.key, $0.value) })
        XCTAssertEqual(av["optimizer"], "adamw-torch")
        XCTAssertEqual(av["lr"], "0.3")
        XCTAssertEqual(av["weight_decay"], "1e-05")
        XCTAssertEqual(av["batch_size"], "16")
        XCTAssertEqual(av["epochs"], "100")
        XCTAssertEqual(av["clip_norm"], "1")
        XCTAssertEqual(bv["optimizer"], "adafactor")
        XCTAssertEqual(bv["schedule"], "constant")
        XCTAssertEqual(bv["dropout"], "off")
        XCTAssertEqual(bv["epochs"], "30")
        let differing = Compare.differingSettings(new: ["cb": lopt], baseline: ["cb": pt])
        XCTAssertTrue(differing.contains("optimizer adafactor vs adamw-torch"), "\(differing)")
        XCTAssertTrue(differing.contains("epochs 30 vs 100"), "\(differing)")
        XCTAssertFalse(differing.contains { $0.hasPrefix("preset") }, "\(differing)")
        XCTAssertEqual(Compare.differingSettings(new: ["cb": pt], baseline: ["cb": pt]), [])
        // A value that differs between a side's cells lists each one.
        var other = pt
        other.lr = 0.5
        XCTAssertEqual(Dictionary(uniqueKeysWithValues: Compare.resolvedSettings([pt, other, pt]).map { ($0.key, $0.value) })["lr"], "0.3 | 0.5")
        XCTAssertEqual(Compare.resolvedSettings([]).count, 0)
        // Cell by cell: lr {cb 0.3, rte 0.5, wic 0.3} against {cb 0.3, rte 0.5, wic 0.5} reads
        // "0.3 | 0.5" on both sides, yet wic differs; the same values in another order do not.
        let newSide = ["cb": pt, "rte": other, "wic": pt], baseSide = ["cb": pt, "rte": other, "wic": other]
        XCTAssertEqual(Compare.differingSettings(new: newSide, baseline: baseSide), ["lr 0.3 vs 0.5 in 1 of 3 cells (wic)"])
        XCTAssertEqual(Compare.differingSettings(new: ["cb": other, "rte": pt], baseline: ["cb": other, "rte": pt]), [])
        // The templates (inputs and label words) and the scoring are settings too: LoPT's preset
        // reads its own template set, and a spec's `templates: respt` showed nowhere.
        XCTAssertEqual(av["templates"], "dpt")
        XCTAssertEqual(bv["templates"], "lopt")
        XCTAssertTrue(differing.contains("templates lopt vs dpt"), "\(differing)")
        var ranked = pt
        ranked.templates = .respt
        ranked.evalMode = .rank
        XCTAssertEqual(Compare.differingSettings(new: ["cb": ranked], baseline: ["cb": pt]), ["templates respt vs dpt", "eval_mode rank vs generate"])
        // GPT-2 ranks the verbaliser's words: no decode cap, no "generate" (both were printed).
        let gpt2 = try TrainConfig.preset("lopt-paper", method: try MethodConfig.defaults("lopt1"), task: "sst2", model: "embedded:gpt2-tiny", k: 8, seed: 1)
        let gv = Dictionary(uniqueKeysWithValues: Compare.resolvedSettings([gpt2]).map { ($0.key, $0.value) })
        XCTAssertEqual(gv["decode"], "none (GPT-2)")
        XCTAssertEqual(gv["eval_mode"], "rank (GPT-2: the verbaliser's words)")
    }
}
