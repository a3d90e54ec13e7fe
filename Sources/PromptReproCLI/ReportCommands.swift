import ArgumentParser
import Foundation
import Harness
import Methods
import Models
import Reports
import Store
import Support
import Tasks
import Training

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Render paper-mirroring tables (Markdown + LaTeX) into Reports/ from the store, or from Baselines/results.",
        discussion: """
        Each table uses the store's runs of its spec and profile when the store has any, else the committed export
        Baselines/results/<spec>-<profile>.cells.json. A table with neither is not written (its file is kept); the
        command names what to run and exits 1 after rendering the others.
        --pareto SPEC (repeatable) also draws Reports/figures/pareto-SPEC.{png,svg,gp,dat}: per task, best-epoch
        score against trainable parameters and against training seconds, with the Pareto front; given without
        table names, only the figures are drawn.
        """)
    @Argument(help: "Tables: names of Baselines/tables/*.yaml, e.g. table1 lopt-table2 (default: all).") var tables: [String] = []
    @OptionGroup var selection: StoreSelection
    var db: String { selection.db }
    var profile: String { selection.profile }
    @Option(name: .customLong("out-dir"), help: "Output directory (default: Reports in the checkout).") var outDirGiven: String?
    /// `--out-dir`, else "Reports" in the checkout (ProjectRoot), from any working directory.
    var outDir: String { outDirGiven ?? ProjectRoot.resolve("Reports") }
    @Option(name: .customLong("results-dir"), help: "Exported results used when the store has no runs of a spec (default: Baselines/results in the checkout).") var resultsDirGiven: String?
    /// `--results-dir`, else "Baselines/results" in the checkout (ProjectRoot), from any working directory.
    var resultsDir: String { resultsDirGiven ?? ProjectRoot.resolve("Baselines/results") }
    @Option(name: .customLong("published-dir"), help: "Published numbers (default: Baselines/published in the checkout).") var publishedDirGiven: String?
    /// `--published-dir`, else "Baselines/published" in the checkout (ProjectRoot), from any working directory.
    var publishedDir: String { publishedDirGiven ?? ProjectRoot.resolve("Baselines/published") }
    @Option(name: .customLong("tables-dir"), help: "Table layouts (default: Baselines/tables in the checkout).") var tablesDirGiven: String?
    /// `--tables-dir`, else PaperTables.defaultDirectory in the checkout (ProjectRoot), from any working directory.
    var tablesDir: String { tablesDirGiven ?? ProjectRoot.resolve(PaperTables.defaultDirectory) }
    @Option(help: "Spec whose Pareto figure (score against trainable parameters and training time) to draw (repeatable).")
    var pareto: [String] = []
    @Option(help: "Validation data for the reference rows (default: PROMPTREPRO_DATA or data/; without it the rows print —).") var dataDir: String?

    func run() throws {
        let data = dataDir != nil ? try DataFiles.directory(dataDir, environmentDir: Environment.dataDir)
            : try? DataFiles.directory(nil, environmentDir: Environment.dataDir, defaultDir: ProjectRoot.resolve("data"))
        if data == nil { stderr("warning: no validation data (data/ or PROMPTREPRO_DATA): the reference rows print —; run `make fetch-data` or pass --data-dir") }
        let published = try Published.load(directory: publishedDir)
        let store = FileManager.default.fileExists(atPath: db) ? try ResultsStore.forReading(path: db) : nil
        try FileManager.default.createDirectory(atPath: outDir, withIntermediateDirectories: true)
        var missing = 0
        // Each layout is read on its own: a broken file is that table's error, not every table's.
        let layouts = try PaperTables.layouts(directory: tablesDir, skippingBroken: true)
        let defaultNames = layouts.map(\.name) + (try PaperTables.names(directory: tablesDir)).filter { n in !layouts.contains { $0.name == n } }
        // Each item on its own: a failure is that item's error ("not written", exit 1), and the others are still written.
        for given in pareto {  // a spec name, or a spec file's path
            func one() throws {
                let spec = given.hasSuffix(".yaml") ? try ExperimentSpec.load(given, specsDir: ProjectRoot.resolve("Baselines/specs")).name : given
                guard let (cells, source, _, _) = try resolveCells(spec: given, profile: profile, store: store, db: db, resultsDir: resultsDir, dataDir: data) else {
                    stderr(missingSource(spec: spec, profile: profile, db: db, resultsDir: resultsDir, kept: "\(outDir)/figures/pareto-\(spec).*"))
                    missing += 1
                    return
                }
                // A search's grid points are not methods: one seed each, chosen between on the dev
                // split; on the front they offered the best point by its reported-split score.
                let points = gridPoints(try specForReading(given), cells: cells)
                let shown = cells.filter { points[$0.variant] == nil }
                if shown.count < cells.count {
                    let owners = Set(cells.compactMap { points[$0.variant] }).sorted()
                    stderr("note: \(cells.count - shown.count) cells of grid points of the search for \(owners.map { "'\($0)'" }.joined(separator: ", ")) left out of the Pareto figure (search runs, not methods: the searched variant's cells stand for them)")
                }
                let out = try Pareto.render(spec: spec, cells: shown, profile: profile, outDir: "\(outDir)/figures")
                stderr("wrote \(out.joined(separator: ", ")) (\(shown.count) cells from \(source))")
            }
            do { try one() } catch {
                stderr("error: \(given): \(error); not written")
                missing += 1
            }
        }
        // Each item on its own: a failure is that item's error ("not written", exit 1), and the others are still written.
        for name in tables.isEmpty && pareto.isEmpty ? defaultNames : tables {
            func one() throws {
                let layout: TableLayout
                do { layout = try PaperTables.layout(name, directory: tablesDir) } catch {
                    stderr("error: \(error); not written")
                    missing += 1
                    return
                }
                try requireSpec(layout.spec, of: "\(tablesDir)/\(name).yaml")
                // A spec that does not load is that table's error (the catch around `one`): the others are still written.
                guard let found = try resolveCells(spec: layout.spec, profile: profile, store: store, db: db, resultsDir: resultsDir, dataDir: data) else {
                    stderr(missingSource(spec: layout.spec, profile: profile, db: db, resultsDir: resultsDir, kept: "\(outDir)/\(name).md"))
                    missing += 1
                    return
                }
                let (cells, source, leftOut, fromStore) = found
                let spec = try? ExperimentSpec.load(layout.spec, specsDir: ProjectRoot.resolve("Baselines/specs"))
                // A row, section or column naming nothing of the spec would print "—" as if not run.
                if let spec {
                    let problems = layout.problems(models: spec.models, tasks: spec.tasks)
                    if !problems.isEmpty {  // this table is not written; the others still are
                        stderr("error: \(tablesDir)/\(name).yaml: " + problems.joined(separator: "; ") + "; not written")
                        missing += 1
                        return
                    }
                    for w in layout.warnings(variants: spec.variants.map(\.name) + cells.map(\.variant), published: published) {
                        stderr("warning: \(tablesDir)/\(name).yaml: \(w)")
                    }
                }
                // Reports reads no spec: the runs the spec plans and its paper-formula counts come as data.
                let planned = (try? spec?.expand(profile: profile)) ?? []
                let references = ReferenceRows.compute(ReferenceRows.subsets(layout, cells: cells, planned: planned), dataDir: data)
                var grid = PaperTables.grid(layout, cells: cells, published: published, profile: profile,
                                            paperParams: spec?.paperParameterCounts() ?? [:], references: references)
                // A searched variant's table states what its search chose and cost: from the store's
                // search runs, or from the export's `.json` `searches` when the cells came from the
                // export (a table built in CI from the committed export dropped the note).
                if let spec, spec.hasSearch {
                    let rows = Set(layout.rows.map(\.variant))
                    // The split each search selected on (its points' `select_on`): the note named none.
                    func split(_ variant: String) -> String {
                        (spec.variants.first { $0.searchFor == variant }?.train["select_on"] as? String).map { " on \($0)" } ?? ""
                    }
                    let found: [SearchSummary]
                    if fromStore, let store { found = try store.searchSummaries(spec, profile: profile) } else {
                        found = FileManager.default.contents(atPath: "\(resultsDir)/\(spec.name)-\(profile).json").map(ResultsExport.searches(inJSON:)) ?? []
                    }
                    // Each search's k where the spec has several (two lines read alike, one per k).
                    let severalK = Set(found.map(\.k)).count > 1
                    let lines = found.filter { rows.contains($0.variant) }.map { s in
                        "\(s.variant) on \(s.task)/\(s.model)\(severalK ? " k=\(s.k.map(String.init) ?? "full")" : ""): \(s.chosen ?? "search not finished") (selected\(split(s.variant)); \(s.scores.count) grid points, \(s.runs) runs, "
                            + s.cpuHoursText + " CPU-hours)"
                    }
                    if !lines.isEmpty {
                        grid.notes.append("Hyper-parameter search, selected on a dev split (never the reported one) and rerun on every seed: " + lines.joined(separator: "; ") + ".")
                    }
                }
                // Cells from an export made before runs kept their data files: the subset files their
                // few-shot samples were drawn from are in the committed manifests the spec plans.
                if !cells.isEmpty && cells.allSatisfy({ $0.dataFiles == nil }),
                   let note = PaperTables.subsetNote(layout, files: { task in
                       Set(planned.filter { r in r.task == task && layout.rows.contains { $0.variant == r.variant } }.compactMap { r in
                           r.config.manifestFileName.flatMap { try? Manifest.load(path: ProjectRoot.resolve("Baselines/manifests/\($0)")) }.map(\.trainFile)
                       })
                   }) {
                    grid.notes.append(note)
                }
                // Runs of the store the table leaves out as stale are said in it, not on stderr only:
                // a row read "— / —", "not run", after an edit that was not re-swept.
                if let leftOut { grid.notes.insert(leftOut, at: 0) }
                if let spec, let note = settingNote(spec: spec, profile: profile, layout: layout) { grid.notes.insert(note, at: 0) }
                var md = PaperTables.markdown(layout, grid: grid, profile: profile)
                // The folders given that the table is made from, so that the command makes it again
                // (without --tables-dir a table of another folder was an "unknown table"); the store
                // is named by `source`, and where it is written is the caller's choice.
                // Quoted where the shell would split or expand them (a folder with a space or '#').
                func quoted(_ p: String) -> String {
                    p.allSatisfy({ $0.isLetter || $0.isNumber || "/._-+=:@,".contains($0) }) ? p : "'" + p.replacingOccurrences(of: "'", with: "'\\''") + "'"
                }
                let given = [("--tables-dir", tablesDirGiven), ("--results-dir", resultsDirGiven), ("--published-dir", publishedDirGiven)]
                    .compactMap { flag, value in value.map { " \(flag) \(quoted($0))" } }.joined()
                md += "\n_Generated by `promptrepro report \(name) --profile \(profile)\(given)` from \(source)"
                md += cells.isEmpty ? " (no runs of spec `\(layout.spec)` in this profile yet: published values only)._\n" : "._\n"
                try md.write(toFile: "\(outDir)/\(name).md", atomically: true, encoding: .utf8)
                try PaperTables.latex(layout, grid: grid, profile: profile).write(toFile: "\(outDir)/\(name).tex", atomically: true, encoding: .utf8)
                stderr("wrote \(outDir)/\(name).md and .tex (\(cells.count) cells from \(source))")
            }
            do { try one() } catch {
                stderr("error: \(name): \(error); not written")
                missing += 1
            }
        }
        try ReportIndex.write(outDir: outDir, profile: profile, layouts: layouts)
        if missing > 0 { throw ExitCode(1) }
    }
}

enum ReportIndex {
    /// Reports/README.md: one line per table and figure on what it shows and which profile made it.
    static func write(outDir: String, profile: String, layouts: [TableLayout]) throws {
        var s = "# Reports\n\nGenerated by `promptrepro report` (profile **\(profile)**\(profile == "smoke" ? ": embedded random-weight backbone, a pipeline test that reproduces nothing" : "")).\n"
        s += "Tables show published value / our mean ± std over seeds (Δ); regenerate with `make report PROFILE=\(profile)` (`promptrepro report --profile \(profile)` and `promptrepro figures --profile \(profile)`).\n\n## Tables\n\n"
        for l in layouts where FileManager.default.fileExists(atPath: "\(outDir)/\(l.name).md") {
            s += "- [\(l.name).md](\(l.name).md) ([LaTeX](\(l.name).tex)) — \(l.title); runs of spec `\(l.spec)`, profile \(profile).\n"
        }
        s += "\n## Figures\n\n"
        let figs = ((try? FileManager.default.contentsOfDirectory(atPath: ProjectRoot.resolve("Baselines/figures"))) ?? []).filter { $0.hasSuffix(".yaml") }
            .map { String($0.dropLast(5)) }.sorted { Int($0.dropFirst(3)) ?? 0 < Int($1.dropFirst(3)) ?? 0 }
        for f in figs {
            guard let spec = try? FigureSpec.load(ProjectRoot.resolve("Baselines/figures/\(f).yaml")) else { continue }
            let have = FileManager.default.fileExists(atPath: "\(outDir)/figures/\(f).png")
            // A rendered figure whose every panel says "no runs" (its model column is not run in
            // this profile) is listed as empty, not as a drawing of its data.
            let script = (try? String(contentsOfFile: "\(outDir)/figures/\(f).gp", encoding: .utf8)) ?? ""
            let empty = have && script.contains("no runs of spec") && !script.contains(".dat' index")
            s += "- \(have ? "[\(f).png](figures/\(f).png) / [svg](figures/\(f).svg)" : "\(f) (not rendered)") — \(spec.label): \(spec.title); spec `\(spec.spec)`, profile \(profile)"
                + (empty ? " — **empty**: no runs of \(spec.model.map { "model column \($0)" } ?? "this spec") in this profile" : "") + ".\n"
        }
        let paretos = ((try? FileManager.default.contentsOfDirectory(atPath: "\(outDir)/figures")) ?? [])
            .filter { $0.hasPrefix("pareto-") && $0.hasSuffix(".png") }.map { String($0.dropLast(4)) }.sorted()
        for f in paretos {
            s += "- [\(f).png](figures/\(f).png) / [svg](figures/\(f).svg) — score against trainable parameters and training time, Pareto front; spec `\(f.dropFirst(7))`, profile \(profile).\n"
        }
        let fm = FileManager.default
        let hostRuns = ((try? fm.contentsOfDirectory(atPath: "\(outDir)/hosts")) ?? []).filter { $0.hasSuffix(".json") }.sorted()
        let hasBench = fm.fileExists(atPath: "\(outDir)/bench.json"), hasE2E = fm.fileExists(atPath: "\(outDir)/bench-e2e.json")
        if hasBench || hasE2E || !hostRuns.isEmpty {
            s += "\n## Benchmarks\n\n"
            if hasBench { s += "- [bench.json](bench.json) — the latest full `make bench` (see docs/performance.md; `promptrepro bench --evaluate` re-judges it).\n" }
            if hasE2E { s += "- [bench-e2e.json](bench-e2e.json) — the latest `make bench-e2e` (see docs/performance.md, End to end).\n" }
            for f in hostRuns {
                s += "- [hosts/\(f)](hosts/\(f)) — a benchmark on another host type, named vendor-family-model (see docs/performance.md, Hosts measured).\n"
            }
        }
        try s.write(toFile: "\(outDir)/README.md", atomically: true, encoding: .utf8)
    }
}

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Export per-cell results of a spec/profile to Baselines/results (committed, so reports build without a store), or for other tools.",
        discussion: """
        --format promptrepro (default): Baselines/results/<spec>-<profile>.{cells.json,json}.
        --format lm-eval: lm-evaluation-harness results JSON (results, configs, versions, n-shot, higher_is_better, n-samples, config) per variant, model column and k, as OUT/<spec>__<profile>__<variant>__<column>__k<k>/results_<date>.json; tasks are named promptrepro_<task>; an earlier lm-eval export of the spec and profile in OUT is replaced. Needs a store (--db).
        --format peft-bench: one JSON per run with run_info / train_info / meta_info, as PEFT's method_comparison.
        The per-step training log: `promptrepro steps SPEC --format csv|jsonl`.
        """)
    @Argument var spec: String
    @OptionGroup var selection: StoreSelection
    var db: String { selection.db }
    var profile: String { selection.profile }
    @Option(name: .customLong("results-dir"), help: "Where the export is written (default: Baselines/results in the checkout).") var resultsDirGiven: String?
    /// `--results-dir`, else Baselines/results in the checkout (ProjectRoot), from any working directory.
    var resultsDir: String { resultsDirGiven ?? ProjectRoot.resolve("Baselines/results") }
    @Option(help: "promptrepro, lm-eval or peft-bench.") var format: String = "promptrepro"
    @Option(help: "Output directory for lm-eval / peft-bench (default: runs/export/<spec>-<profile>/<format> in the checkout).") var out: String?
    @Option(help: "Validation data, for ReCoRD's invalid-output fraction of runs stored before it was recorded (default: PROMPTREPRO_DATA or data/).") var dataDir: String?
    @Flag(help: "Write the export even where it lacks finished runs of the export it replaces (a partial store).") var replace = false

    func run() throws {
        guard FileManager.default.fileExists(atPath: db) else { throw CommandFailure("\(db): no results store") }
        let store = try ResultsStore.forReading(path: db)
        let data = dataDir != nil ? try DataFiles.directory(dataDir, environmentDir: Environment.dataDir)
            : try? DataFiles.directory(nil, environmentDir: Environment.dataDir, defaultDir: ProjectRoot.resolve("data"))
        // A spec file's path names the spec its `spec:` field gives (as `sweep` reads it).
        let current = try currentPlan(spec: self.spec, profile: profile, store: store, dataDir: data)
        let spec = current?.name ?? self.spec
        let cells = try plannedCells(store, spec: self.spec, profile: profile, dataDir: data, current: current)
        // An export replaces the committed one: never with nothing.
        guard !cells.isEmpty else {
            throw CommandFailure("\(try noRunsMessage(store, spec: spec, profile: profile, db: db)); nothing exported, nothing overwritten")
        }
        // Nor with cells none of whose runs has ended (only pending or running: a fresh or shard
        // store, an export taken before the workers ran): it replaced a full export with empty
        // cells, exit 0. Failed runs are a result (tables mark them); the other formats write
        // elsewhere and replace no export.
        let ended = cells.contains { c in !c.seeds.isEmpty || !c.divergedSeeds.isEmpty || c.statuses.keys.contains { !["pending", "running"].contains($0) } }
        guard format != "promptrepro" || ended else {
            let counts = cells.reduce(into: [String: Int]()) { acc, c in for (k, v) in c.statuses { acc[k, default: 0] += v } }
            throw CommandFailure("\(db): no run of spec \(spec) [\(profile)] has ended ("
                + counts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
                + "); nothing exported, nothing overwritten — run `promptrepro sweep \(self.spec) --profile \(profile)` (or the workers) first")
        }
        // Nor, without --replace, with fewer finished runs than the export it replaces (a merge of
        // half-finished shards replaced a 20-cell export with 4 cells, exit 0): runs of the old
        // export that the spec still plans with the same settings and this store lacks.
        let cellsPath = "\(resultsDir)/\(spec)-\(profile).cells.json"
        if format == "promptrepro", !replace, FileManager.default.fileExists(atPath: cellsPath),
           let old = try? readCellsExport(cellsPath, spec: spec, profile: profile) {  // a broken file is replaced
            // Every run this store finished, diverged and incomplete ones included (they are results too).
            let ended: Set<String> = ["done", "evaluated", "diverged", "incomplete"]
            let have = Set(cells.flatMap { c in
                c.replicates.map { PlannedRuns.key(cell: c.cell, seed: $0.seed, sampleSeed: $0.sampleSeed) }
                    + (c.runStatuses ?? [:]).filter { ended.contains($0.value) }.map(\.key)
            })
            var lost: [String] = []
            for c in old {
                for rep in c.replicates {
                    let key = PlannedRuns.key(cell: c.cell, seed: rep.seed, sampleSeed: rep.sampleSeed)
                    guard !have.contains(key) else { continue }
                    if let plan = current?.plan {
                        // Still planned, with the settings it ran (an edited spec's old runs are meant
                        // to go), or a searched cell this store has not decided yet (a merge of the
                        // first pass's shards, whose chosen points are still to run).
                        let undecided = plan.undecidedCells.contains(c.cell)
                        guard undecided || plan.configHashes[key].map({ want in c.runConfigs?[key].map { $0 == want } ?? true }) == true else { continue }
                    }
                    lost.append("\(c.cell) seed \(rep.seed)" + (rep.sampleSeed == rep.seed ? "" : " (sample \(rep.sampleSeed))"))
                }
            }
            if !lost.isEmpty {
                throw CommandFailure("\(cellsPath) holds \(lost.count) finished run\(lost.count == 1 ? "" : "s") that \(db) lacks (e.g. \(lost.prefix(3).joined(separator: "; ")))"
                    + " and spec \(spec) [\(profile)] still plans; nothing overwritten. Finish or merge them first, or pass --replace to write the partial export")
            }
        }
        /// A current row the spec plans now (every row when there is no spec file).
        func counts(_ r: [String: SQLiteDB.Value]) -> Bool {
            guard let plan = current?.plan else { return true }
            return plan.staleReason(row: r) == nil
        }
        if format != "promptrepro" {
            // A search's grid points say so in their files (search runs, not a method's results).
            let pointOwners = gridPoints((try? specForReading(self.spec)) ?? nil, cells: cells)
            let dir = out ?? ProjectRoot.resolve("runs/export/\(spec)-\(profile)/\(format)")
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            func write(_ obj: Any, _ name: String) throws {
                try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .prettyPrinted]).write(to: URL(fileURLWithPath: "\(dir)/\(name)"))
            }
            var written = 0
            switch format {
            case "lm-eval":
                // One file per variant, model column and k, each in its model's folder as lm-eval
                // writes them (`<model_name_sanitized>/results_<date>.json`): lm-eval's readers take
                // every results_*.json of a folder for runs of one model and read the latest.
                func group(_ variant: String, _ model: String, _ k: Int?) -> String { "\(variant)|\(model)|\(k.map(String.init) ?? "")" }
                var versions: [String: Int] = [:], samples: [String: [String: Int]] = [:], specs: [String: String] = [:]
                var settings: [String: ToolFormats.LMEvalSettings] = [:]
                for r in try store.db.query("SELECT task, task_version, model, model_spec, variant, k, id, cell, seed, sample_seed, config_json, identity_json, status FROM runs WHERE spec=? AND profile=? AND status IN ('done','evaluated')",
                                            [.text(spec), .text(profile)]) where counts(r) {
                    let task = r["task"]!.text!, g = group(r["variant"]!.text!, r["model"]!.text!, r["k"]?.int)
                    versions[task] = r["task_version"]?.int ?? (try? TaskRegistry.definition(task).version) ?? 0
                    samples[g, default: [:]][task] = try store.predictions(run: r["id"]!.int!, kind: "best").count
                    specs[g] = r["model_spec"]?.text
                    // What the runs were evaluated with (lm-eval's config.limit, batch_size, gen_kwargs, output_type).
                    if let c = (r["config_json"]?.text).flatMap({ try? JSONDecoder().decode(TrainConfig.self, from: Data($0.utf8)) }) {
                        var s = settings[g] ?? ToolFormats.LMEvalSettings(limit: c.evalLimit, batchSize: c.evalBatchSize)
                        let ranks = ModelFiles.isGPT2(r["model_spec"]?.text ?? c.model) || (c.evalMode.map { $0 != .generate } ?? false)
                        s.outputType[task] = ranks ? "multiple_choice" : "generate_until"
                        // An evaluated adapter was trained elsewhere: its preset is the evaluation's only.
                        let preset = r["status"]?.text == "evaluated" ? "\(c.protocolName) (evaluation settings of an adapter trained elsewhere)" : c.protocolName
                        if !s.presets.contains(preset) { s.presets = (s.presets + [preset]).sorted() }
                        if !ranks && s.genKwargs == nil {
                            // A number, as generate takes it; `auto` (the longest label's tokens + 1, per
                            // task) is no one number: null, the rule beside it.
                            let cap: Any = { if case .tokens(let n)? = c.decodeMaxTokens { return n }; return c.decodeMaxTokens == nil ? c.maxTargetLength : NSNull() }()
                            s.genKwargs = ["do_sample": false, "max_new_tokens": cap, "decode_max_tokens": c.decodeMaxTokens?.description ?? "max_target_length",
                                           "decode_stop": c.decodeStop?.rawValue ?? "default"]
                        }
                        settings[g] = s
                    }
                }
                let tasks = Set(samples.values.flatMap(\.keys))
                // lm-eval's n-samples: "original" is the split's size, "effective" what was scored (an
                // eval_limit scores fewer); without the data the split's size is unknown: null.
                var originals: [String: Int] = [:]
                if let data {
                    for task in tasks {
                        let def = try TaskRegistry.definition(task)
                        if let d = try? DataLoader.load(def, split: .validation, dataDir: data),
                           let ex = try? Templates.examples(d, set: .dpt, training: false) { originals[task] = ex.count }
                    }
                }
                if originals.count < tasks.count { stderr("note: no validation data for \(tasks.subtracting(originals.keys).sorted().joined(separator: ", ")): n-samples.original is null (pass --data-dir)") }
                // The files an earlier lm-eval export of this spec and profile wrote here go (a
                // dropped variant or k kept its file, which readers took for a current model);
                // files of other exports or tools stay.
                let removed = try LMEvalExportFiles.removeEarlier(in: dir, spec: spec, profile: profile)
                if removed > 0 { stderr("replaced \(removed) file(s) of an earlier lm-eval export of \(spec) [\(profile)] under \(dir)") }
                let date = Date(), dateID = ToolFormats.lmEvalDateID(date)
                for key in Set(cells.map { "\($0.variant)|\($0.model)" }).sorted() {
                    let parts = key.split(separator: "|").map(String.init)
                    let ks = Set(cells.filter { $0.variant == parts[0] && $0.model == parts[1] }.map(\.k)).sorted { ($0 ?? -1) < ($1 ?? -1) }
                    for k in ks {
                        let g = group(parts[0], parts[1], k)
                        let obj = ToolFormats.lmEval(cells: cells, variant: parts[0], model: parts[1], spec: spec, profile: profile,
                                                     versions: versions, samples: samples[g] ?? [:], originals: originals, modelSpec: specs[g] ?? parts[1],
                                                     k: k, settings: settings[g] ?? ToolFormats.LMEvalSettings(), date: date, gridPointOf: pointOwners[parts[0]])
                        let folder = "\(dir)/\(ToolFormats.lmEvalSanitized(ToolFormats.lmEvalModelName(spec: spec, profile: profile, variant: parts[0], model: parts[1], k: k)))"
                        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                        try Data((ToolFormats.pythonJSON(obj) + "\n").utf8).write(to: URL(fileURLWithPath: "\(folder)/results_\(dateID).json"))
                        written += 1
                    }
                }
            case "peft-bench":
                // Per checkpoint, located and read once (every run of a column loads the same one).
                var backboneParams: [String: Int?] = [:]
                for r in try store.db.query("SELECT * FROM runs WHERE spec=? AND profile=? AND status != 'superseded' ORDER BY id", [.text(spec), .text(profile)]) where counts(r) {
                    let epochs = try store.db.query("SELECT * FROM epochs WHERE run_id=? ORDER BY epoch", [r["id"]!])
                    // The sample seed too where it differs (crossed designs have several runs per seed).
                    let seed = r["seed"]!.int!, sampleSeed = r["sample_seed"]?.int ?? seed
                    let name = "\(r["cell"]!.text!.replacingOccurrences(of: "|", with: "_"))-s\(seed)\(sampleSeed != seed ? "-d\(sampleSeed)" : "").json"
                    var metrics: [String: Double] = [:]
                    for m in try store.db.query("SELECT name, value FROM run_metrics WHERE run_id=?", [r["id"]!]) {
                        if let n = m["name"]?.text, let v = m["value"]?.double { metrics[n] = v }
                    }
                    var best: [String: Double] = [:]
                    for m in try store.db.query("SELECT metric, value FROM scores WHERE run_id=? AND kind='best'", [r["id"]!]) {
                        if let n = m["metric"]?.text, let v = m["value"]?.double { best[n] = v }
                    }
                    let keys = (r["method"]?.text).flatMap { try? MethodRegistry.type($0).configKeys }.map(Set.init)
                    let config = (r["config_json"]?.text).flatMap { try? JSONDecoder().decode(TrainConfig.self, from: Data($0.utf8)) }
                    let task = (r["task"]?.text).flatMap { try? TaskRegistry.definition($0) }
                    let metric = config?.selectionMetric ?? task?.selectionMetric ?? "accuracy"
                    // PEFT's num_total_params: the backbone's scalars (its architecture, as `info`
                    // counts them) plus the adapter's, for full fine-tuning the backbone's alone.
                    let backbone: Int? = (r["model_spec"]?.text).flatMap { spec in
                        if let n = backboneParams[spec] { return n }
                        let dir = try? ModelFiles.locate(spec)
                        let n = (dir.flatMap { try? ModelConfig.load(path: ($0 as NSString).appendingPathComponent("config.json")) } ?? Architectures.known[spec])?.parameterCount
                        backboneParams[spec] = n
                        return n
                    }
                    let total = backbone.map { $0 + (r["method"]?.text == "ft" ? 0 : r["trainable_params"]?.int ?? 0) }
                    // Training examples per epoch are not stored (WSC's filter and ReCoRD's answer rows make them differ from k).
                    guard let obj = ToolFormats.peftBench(run: r, epochs: epochs, best: best, runMetrics: metrics, metric: metric,
                                                          trainExamples: nil, totalParams: total, methodKeys: keys,
                                                          gridPointOf: r["variant"]?.text.flatMap { pointOwners[$0] }) else { continue }
                    try write(obj, name)
                    written += 1
                }
            default: throw ValidationError("unknown format '\(format)' (promptrepro, lm-eval, peft-bench)")
            }
            stderr("wrote \(written) \(format) file(s) under \(dir)")
            return
        }
        try FileManager.default.createDirectory(atPath: resultsDir, withIntermediateDirectories: true)
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .prettyPrinted]
        try e.encode(cells).write(to: URL(fileURLWithPath: "\(resultsDir)/\(spec)-\(profile).cells.json"), options: .atomic)
        let specFile = try? specForReading(self.spec)
        var summary = try ResultsExport.json(cells, spec: spec, profile: profile, gridPoints: gridPoints(specFile ?? nil, cells: cells))
        // The spec's searches (chosen points, per-point selection scores, cost), as `results` shows them.
        if let s = specFile, s.hasSearch { summary = try ResultsExport.addingSearches(summary, try store.searchSummaries(s, profile: profile)) }
        try summary.write(toFile: "\(resultsDir)/\(spec)-\(profile).json", atomically: true, encoding: .utf8)
        stderr("exported \(cells.count) cells to \(resultsDir)/\(spec)-\(profile).{cells.json,json}")
    }
}

/// The grid points among `cells` (grid point → searched variant): the spec file's, or without one
/// (runs of a spec kept elsewhere, read by name) by their names, `NAME@KEY=value`, said on stderr
/// (they were left unmarked, and on a Pareto front, without a word).
func gridPoints(_ spec: ExperimentSpec?, cells: [CellResult]) -> [String: String] {
    if let spec { return spec.gridPointOwners }
    let named = ExperimentSpec.gridPointOwners(byName: Set(cells.map(\.variant)).sorted())
    if !named.isEmpty {
        stderr("note: no spec file: the \(named.count) variants named NAME@KEY=value are taken for a search's grid points by their names")
    }
    return named
}

/// What the spec file of `spec` (a name in Baselines/specs or a path) plans in `profile` now, nil
/// when there is no such file or it lacks the profile: then every current row counts, and a note
/// on stderr says why.
/// With `dataDir`, rows run on other data files, manifests or checkpoints than those found now are
/// left out too (`PlannedRuns.inputParts`).
/// The spec file a read judges stored runs or an export against, nil when there is no file of
/// that name (runs of a spec kept elsewhere: every stored run counts; `noFile` says why).
/// - Throws: `CommandFailure` when the file exists and does not load (a typo, a YAML error, a value
///   out of range): reading every stored run then showed runs of settings, seeds or cells the
///   spec no longer plans as current, and `export` wrote them over the committed export.
func specForReading(_ spec: String, noFile: ((Error) -> Void)? = nil) throws -> ExperimentSpec? {
    let specsDir = ProjectRoot.resolve("Baselines/specs")
    do { return try ExperimentSpec.load(spec, specsDir: specsDir) } catch {
        // A spec given by its file's path that is not there is a mistake, not a name whose stored
        // runs all count (it was read as a spec named by the path).
        if spec.hasSuffix(".yaml") || spec.contains("/"), !FileManager.default.fileExists(atPath: spec) {
            throw CommandFailure("\(spec): no such spec file")
        }
        guard FileManager.default.fileExists(atPath: ExperimentSpec.path(of: spec, specsDir: specsDir)) else { noFile?(error); return nil }
        throw CommandFailure("\(error)\n(runs and exports of spec \(spec) are read against what it plans: fix the spec, or give the spec file they were swept with)")
    }
}

func currentPlan(spec: String, profile: String, store: ResultsStore, dataDir: String? = nil) throws -> (name: String, plan: PlannedRuns)? {
    guard let s = try specForReading(spec, noFile: { error in
        stderr("note: \(error) — every stored run of spec \(spec) [\(profile)] counts (but evaluated adapters changed at their stored path, damaged scores and one adapter under several seeds); name the spec file by its path to count only the runs it plans")
    }) else { return nil }
    do { return (s.name, try s.plannedRuns(profile: profile, store: store, dataDir: dataDir, manifestDir: ProjectRoot.resolve("Baselines/manifests"))) } catch {
        throw CommandFailure("\(error)\n(spec \(s.name) [\(profile)] cannot be planned, so its stored runs cannot be told current or stale)")
    }
}

/// One line for what a read shows (results, tables) on the stored runs it leaves out because they
/// ran under settings, a task file, a rule or inputs the spec no longer plans (edited since their
/// sweep, not re-swept); nil when there are none. Runs of cells or seeds taken out of the spec
/// are not counted: they are meant to be out.
func leftOutLine(_ store: ResultsStore, current: (name: String, plan: PlannedRuns)?, profile: String, given: String) throws -> String? {
    guard let (name, plan) = current else { return nil }
    let all = try store.staleRuns(spec: name, profile: profile, planned: plan).filter { $0.reason != .unplanned }
    guard !all.isEmpty else { return nil }
    // Runs of an edited spec or its inputs; then the adapters and damaged scores that count under no plan.
    let stale = all.filter { $0.reason.sweepReruns }
    var parts: [String] = []
    if !stale.isEmpty {
        let cells = Set(stale.map(\.cell)).sorted()
        parts.append("\(stale.count) stored run\(stale.count == 1 ? "" : "s") of \(cells.count) cell\(cells.count == 1 ? "" : "s") (e.g. \(cells[0])) ran under settings, task files or inputs"
            + " that spec \(name) no longer plans (edited since their sweep); `promptrepro sweep \(given) --profile \(profile)` reruns them")
    }
    for reason in StaleRun.Reason.allCases where !reason.sweepReruns {
        let these = all.filter { $0.reason == reason }
        guard let first = these.first else { continue }
        parts.append("\(these.count) \(reason.rawValue) (e.g. \(first.cell) seed \(first.seed)): \(reason.remedy(sweep: "`promptrepro sweep \(given) --profile \(profile)`"))")
    }
    return "Left out: " + parts.joined(separator: "; ") + ". Those cells show the runs that remain (a table shows — where none remains; `results` lists no row for such a cell in Markdown, a `left_out` row in csv, and every such cell under `left_out` in json)."
}

/// A cell with stored runs that a read leaves out as stale (`leftOutLine`'s runs), for the
/// machine-readable outputs: `results --format json` lists every such cell under `left_out`, and
/// `--format csv` gives a cell none of whose runs remain one row of kind `left_out` (it had no
/// row, and only stderr said why).
struct LeftOutCell {
    var cell: String, variant: String, method: String, task: String, model: String, k: Int?
    /// The cell's stale runs by status ("done", "pending", …) and the reasons they are stale.
    var runsByStatus: [String: Int], reasons: [String]
    var runs: Int { runsByStatus.values.reduce(0, +) }
}

/// The cells of `leftOutLine`'s stale runs, in the spec's cell order; empty without a plan.
func leftOutCells(_ store: ResultsStore, current: (name: String, plan: PlannedRuns)?, profile: String) throws -> [LeftOutCell] {
    guard let (name, plan) = current else { return [] }
    let stale = try store.staleRuns(spec: name, profile: profile, planned: plan).filter { $0.reason != .unplanned }
    var out: [LeftOutCell] = []
    for (cell, runs) in Dictionary(grouping: stale, by: \.cell).sorted(by: { (plan.cellIndex[$0.key] ?? .max, $0.key) < (plan.cellIndex[$1.key] ?? .max, $1.key) }) {
        guard let r = try store.db.query("SELECT variant, method, task, model, k FROM runs WHERE spec=? AND profile=? AND id=?",
                                         [.text(name), .text(profile), .int(runs[0].id)]).first else { continue }
        out.append(LeftOutCell(cell: cell, variant: r["variant"]?.text ?? "", method: r["method"]?.text ?? "", task: r["task"]?.text ?? "",
                               model: r["model"]?.text ?? "", k: r["k"]?.int,
                               runsByStatus: Dictionary(grouping: runs, by: \.status).mapValues(\.count),
                               reasons: Set(runs.map(\.reason.rawValue)).sorted()))
    }
    return out
}

/// `csv` (`ResultsExport.csv` with `profile`) with one `left_out` row for each of `leftOut` that
/// has no row (none of its runs remains): metric `stale_runs`, n its stale runs, no scores.
func csvAddingLeftOut(_ csv: String, _ leftOut: [LeftOutCell], shown: Set<String>, profile: String) -> String {
    var out = csv
    for c in leftOut where !shown.contains(c.cell) {
        out += [c.cell, c.variant, c.method, c.task, c.model].map(ResultsExport.csvField).joined(separator: ",")
        out += ",\(c.k.map(String.init) ?? "full"),left_out,stale_runs,\(c.runs),,,,,,,\(ResultsExport.csvField(profile)),\(profile == "smoke"),\n"
    }
    return out
}

/// `json` (`ResultsExport.json`) with `left_out`: each of `leftOut` with its stale runs by status,
/// their reasons, and whether the cell still has counted runs (`in_results`).
func jsonAddingLeftOut(_ json: String, _ leftOut: [LeftOutCell], shown: Set<String>) throws -> String {
    guard !leftOut.isEmpty, var obj = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else { return json }
    obj["left_out"] = leftOut.map { c -> [String: Any] in
        ["cell": c.cell, "variant": c.variant, "method": c.method, "task": c.task, "model": c.model, "k": c.k.map { $0 as Any } ?? NSNull(),
         "stale_runs_by_status": c.runsByStatus, "reasons": c.reasons, "in_results": shown.contains(c.cell)]
    }
    return String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .prettyPrinted]), as: UTF8.self) + "\n"
}

/// Counted runs of `spec` in `profile` (finished, not superseded, planned now when `plan` is given)
/// whose stored identity says they read a data file that differs from its pin in `lockPath`, one
/// line each ("cell seed N: file (sha256 …, pinned …)"). Such runs were made with
/// `--allow-unpinned` on edited data: the gate fails on them and reads name them, with or without a
/// data directory (the stored hashes are compared with the lock, not with the files). Empty
/// without a lock, and for rows stored without an identity.
func unpinnedDataRuns(_ store: ResultsStore, spec: String, profile: String, plan: PlannedRuns?,
                      lockPath: String = ProjectRoot.resolve("Baselines/data.lock")) throws -> [String] {
    guard store.schemaVersion >= 2, FileManager.default.fileExists(atPath: lockPath) else { return [] }
    let lock = try DataFiles.Lock.load(path: lockPath)
    let sample = store.schemaVersion >= 4 ? "IFNULL(sample_seed, seed)" : "seed"
    var lines: [String] = []
    for r in try store.db.query("SELECT cell, seed, \(sample) AS sample_seed, status, config_json, identity_json FROM runs WHERE spec=? AND profile=? AND status IN ('done','evaluated','diverged') ORDER BY id",
                                [.text(spec), .text(profile)]) where plan?.staleReason(row: r) == nil {
        let data = PlannedRuns.inputParts(identityJSON: r["identity_json"]?.text).filter { $0.key.hasPrefix("data.") }
        for value in data.values.sorted() {
            guard let colon = value.lastIndex(of: ":") else { continue }
            let rel = String(value[..<colon]), sha = String(value[value.index(after: colon)...])
            if let pinned = lock.entries[rel], pinned != sha {
                lines.append("\(r["cell"]?.text ?? "") seed \(r["seed"]?.int ?? 0): \(rel) (sha256 \(sha.prefix(12))…, pinned \(pinned.prefix(12))… in \(ProjectRoot.display(lockPath)))")
            }
        }
    }
    return lines
}

/// The store's cells of `spec` in `profile`, counting only the rows its spec file plans now
/// (`ResultsStore.cellResults(planned:)`); the rows left out are named in one note on stderr.
/// `current`: `currentPlan`'s answer (nil: every current row counts).
func plannedCells(_ store: ResultsStore, spec: String, profile: String, dataDir: String?,
                  current: (name: String, plan: PlannedRuns)?, sayMixedNumerics: Bool = true) throws -> [CellResult] {
    // Seeds of one cell run under other kernels or thread counts (merged shards) are said by every
    // read (only `results` said it; its Markdown says it in the output instead), from the cells
    // read, so the note and the tables' note count the same runs (incomplete ones are not).
    func say(_ cells: [CellResult]) -> [CellResult] {
        if sayMixedNumerics, let note = mixedNumericsNote(mixedNumerics(of: cells)) { stderr("note: " + note) }
        if sayMixedNumerics, let note = mixedEvalSetsNote(cells) { stderr("warning: " + note) }
        return cells
    }
    // Evaluated adapters no longer at their stored path are counted, not compared: said. Without a
    // spec file those changed at the path are left out here too (a plan's read names them among
    // its stale runs).
    func sayAdapters(_ spec: String, changed: Bool) throws {
        let adapters = try store.changedAdapterRuns(spec: spec, profile: profile)
        for (missing, what) in [(false, "left out: their adapter files have other contents at the stored path now; evaluate them again"),
                                (true, "counted, not compared: their adapter is not at the stored path (moved or deleted?)")] where missing || changed {
            let runs = adapters.filter { $0.missing == missing }
            guard !runs.isEmpty else { continue }
            stderr("note: \(runs.count) evaluated run\(runs.count == 1 ? "" : "s") of \(spec) [\(profile)] "
                + "(e.g. " + runs.prefix(3).map { "\($0.cell) seed \($0.seed)" }.joined(separator: "; ") + ") \(what)")
        }
    }
    guard let (name, plan) = current else {
        try sayAdapters(spec, changed: true)
        return say(try store.cellResults(spec: spec, profile: profile, dataDir: dataDir))
    }
    try sayAdapters(name, changed: false)
    if let note = staleRunsNote(try store.staleRuns(spec: name, profile: profile, planned: plan), spec: name, profile: profile, given: spec) { stderr(note) }
    let cells = try store.cellResults(spec: name, profile: profile, dataDir: dataDir, planned: plan)
    let unpinned = try unpinnedDataRuns(store, spec: name, profile: profile, plan: plan)
    if !unpinned.isEmpty {
        stderr("warning: \(unpinned.count) counted runs of spec \(name) [\(profile)] read data that differs from its pin (swept with --allow-unpinned; the gate fails on them): "
            + unpinned.prefix(6).joined(separator: "; ") + (unpinned.count > 6 ? "; …" : ""))
    }
    // Said only of numbers taken from this store: with no cell here a read falls back to the
    // committed export, whose numbers the note (24 of 24 runs "have no finished result") misstated.
    if !cells.isEmpty, let note = unfinishedRunsNote(plan: plan, cells: cells, spec: name, profile: profile, given: spec) { stderr(note) }
    if let note = adoptedRunsNote(spec: name, profile: profile, cells: cells) { stderr(note) }
    return say(cells)
}

/// The runs of the cells read that a sweep adopted (copied from a finished run of the same
/// identity under another spec, profile or variant: `runs.adopted_from`, schema v8, carried by
/// `CellResult.runAdoptedFrom` into exports), or nil when none: numbers that were not trained in
/// their own cells are said where they are read, from the store or from an export.
func adoptedRunsNote(spec: String, profile: String, cells: [CellResult]) -> String? {
    let rows = cells.flatMap { c in (c.runAdoptedFrom ?? [:]).sorted { $0.key < $1.key }.map { (key: $0.key, from: $0.value) } }
    guard !rows.isEmpty else { return nil }
    let shown = rows.prefix(4).map { r -> String in
        guard let (cell, rep) = PlannedRuns.run(ofKey: r.key) else { return "\(r.key) ← \(r.from)" }
        return "\(cell) seed \(rep.seed)" + (rep.sampleSeed == rep.seed ? "" : " (sample \(rep.sampleSeed))") + " ← \(r.from)"
    }
    return "note: \(rows.count) run\(rows.count == 1 ? "" : "s") of spec \(spec) [\(profile)] read here \(rows.count == 1 ? "was" : "were") adopted by a sweep, not trained in \(rows.count == 1 ? "its own cell" : "their own cells"): "
        + "copied from finished runs of identical settings, data, weights and task (runs.adopted_from): " + shown.joined(separator: "; ") + (rows.count > shown.count ? "; …" : "")
}

/// Cell → the numerics setups its counted runs mix (`CellResult.mixedNumerics`), for `mixedNumericsNote`.
func mixedNumerics(of cells: [CellResult]) -> [String: [String]] {
    Dictionary(cells.compactMap { c in c.mixedNumerics.map { (c.cell, $0) } }, uniquingKeysWith: { a, _ in a })
}

/// One line naming the cells whose counted runs ran under different numerics
/// (`ResultsStore.mixedNumerics`), with one cell's setups, or nil when there are none.
func mixedNumericsNote(_ mixed: [String: [String]]) -> String? {
    guard let first = mixed.keys.sorted().first else { return nil }
    return "Mixed numerics: \(mixed.count) cell\(mixed.count == 1 ? "" : "s") (e.g. \(first): \(mixed[first]!.joined(separator: " | "))) "
        + "averaged runs of different GEMM kernels (or kc), OpenBLAS builds or thread counts, which change bits; rerun them on one setup to compare seeds bit for bit."
}

/// One line naming the cells whose runs scored different validation sets (`CellResult.mixedEvalSets`),
/// nil when there are none: their means average scores of different examples.
func mixedEvalSetsNote(_ cells: [CellResult]) -> String? {
    let mixed = cells.filter { $0.mixedEvalSets != nil }
    guard let first = mixed.first else { return nil }
    return "Mixed evaluation sets: \(mixed.count) cell\(mixed.count == 1 ? "" : "s") (e.g. \(first.cell): \(first.mixedEvalSets!.joined(separator: " | "))) "
        + "average runs that scored different validation sets (another eval_limit, template set or half); its mean is not one set's score, and `compare` does not pair it. Evaluate every run on the same set (`eval --eval-limit`, `--templates`)."
}

/// The runs the spec plans that have no finished row among `cells` (pending, running, failed,
/// diverged, incomplete or never run), or nil when every planned run finished: the means are over
/// the finished ones, which a shard not merged yet or a seed added without a sweep once left
/// unsaid (`n=1` for a 2-seed spec, exit 0). Searched cells whose point is not chosen are skipped.
func unfinishedRunsNote(plan: PlannedRuns, cells: [CellResult], spec: String, profile: String, given: String) -> String? {
    var finished = Set<String>()
    for c in cells { for r in c.replicates { finished.insert(PlannedRuns.key(cell: c.cell, seed: r.seed, sampleSeed: r.sampleSeed)) } }
    let lacking = plan.configHashes.keys.filter { !finished.contains($0) }.sorted()
    guard !lacking.isEmpty else { return nil }
    let shown = lacking.prefix(6).map { k -> String in
        guard let (cell, r) = PlannedRuns.run(ofKey: k) else { return k }
        return "\(cell) seed \(r.seed)\(r.seed == r.sampleSeed ? "" : " (sample \(r.sampleSeed))")"
    }
    return "note: \(lacking.count) of the \(plan.configHashes.count) runs spec \(spec) [\(profile)] plans have no finished result here (pending, failed, diverged or not run): "
        + shown.joined(separator: "; ") + (lacking.count > shown.count ? "; …" : "")
        + ". Means are over the finished runs (n in each cell); `promptrepro sweep \(given) --profile \(profile)` runs the rest."
}

/// Cells of a spec/profile: the store's when it holds runs of them (those its spec plans now:
/// `plannedCells`), else the committed export `<resultsDir>/<spec>-<profile>.cells.json`; nil
/// when neither has them, or when the store's rows of the spec are all stale (as `compare`, the
/// older export does not stand in for them; the note on stderr names them). The source is the path
/// read (relative to the checkout where it lies inside it), `fromStore` whether it is the store;
/// `leftOut` the store's stale runs left out (`leftOutLine`), for the output itself.
func resolveCells(spec given: String, profile: String, store: ResultsStore?, db: String, resultsDir: String,
                  dataDir: String? = nil) throws -> (cells: [CellResult], source: String, leftOut: String?, fromStore: Bool)? {
    // `given`: a spec name or a spec file's path; stores and exports know the spec by its name.
    let spec = given.hasSuffix(".yaml") ? (try? ExperimentSpec.load(given, specsDir: ProjectRoot.resolve("Baselines/specs")))?.name ?? given : given
    if let store {
        let current = try currentPlan(spec: given, profile: profile, store: store, dataDir: dataDir)
        let cells = try plannedCells(store, spec: given, profile: profile, dataDir: dataDir, current: current)
        // Named relative to the checkout where it lies inside it (the default store is an
        // absolute path, which made every table's footer depend on the machine).
        if !cells.isEmpty { return (cells, ProjectRoot.display(db), try leftOutLine(store, current: current, profile: profile, given: given), true) }
        if try store.hasCurrentRuns(spec: spec, profile: profile) { return nil }
    }
    let path = "\(resultsDir)/\(spec)-\(profile).cells.json"
    guard FileManager.default.fileExists(atPath: path) else { return nil }
    // Named relative to the checkout where it lies there: the committed tables' footers stay
    // the same from any working directory and machine.
    let read = try currentExportCellsReporting(try readCellsExport(path, spec: spec, profile: profile), spec: given, profile: profile, path: path, dataDir: dataDir)
    return (read.cells, ProjectRoot.display(path), read.leftOut, false)
}

/// The cells of the export at `path` (`promptrepro export`'s `.cells.json`).
/// - Throws: `CommandFailure` naming the file and what does not decode, with the command that
///   writes it again.
func readCellsExport(_ path: String, spec: String, profile: String) throws -> [CellResult] {
    do { return try JSONDecoder().decode([CellResult].self, from: Data(contentsOf: URL(fileURLWithPath: path))) } catch {
        throw CommandFailure("\(path): not a cells export (\(decodingProblem(error))); regenerate it with `promptrepro export \(spec) --profile \(profile)`")
    }
}

/// The cells of an export (read from `path`) that the spec's current plan still has with the
/// configs they ran (`ExportedCells.current`); the others are named in a note on stderr. All of
/// them when the spec cannot be planned here (its own note says so elsewhere).
func currentExportCells(_ cells: [CellResult], spec given: String, profile: String, path: String, dataDir: String? = nil) throws -> [CellResult] {
    try currentExportCellsReporting(cells, spec: given, profile: profile, path: path, dataDir: dataDir).cells
}

/// `currentExportCells`, with the line a table built from them ends with when cells that ran were
/// left out (stale, or a search the export's grid points no longer decide), as `leftOutLine` says
/// it for a store: only stderr said it, and the table showed those cells as — like cells never run.
/// With `dataDir`, runs whose data files or few-shot manifests have changed since they ran are
/// left out too (exports made before `runInputs` was kept are not compared).
func currentExportCellsReporting(_ cells: [CellResult], spec given: String, profile: String, path: String, dataDir: String? = nil) throws
    -> (cells: [CellResult], leftOut: String?) {
    // A spec file that does not load or plan fails the read, as a store read does; a spec without
    // this profile keeps the export whole (the export is of a profile the spec no longer has).
    guard let s = try specForReading(given), s.profiles[profile] != nil else { return (cells, nil) }
    let plan: PlannedRuns
    // Searched variants as the export's own grid-point cells choose them (`exportChoice`).
    do { plan = try s.plannedRuns(profile: profile, store: nil, dataDir: dataDir, manifestDir: ProjectRoot.resolve("Baselines/manifests"), exported: cells) } catch {
        throw CommandFailure("\(error)\n(spec \(s.name) [\(profile)] cannot be planned, so the cells of \(ProjectRoot.display(path)) cannot be told current or stale)")
    }
    let (kept, stale, unplanned, seedsLeft, undecided, inputs, adapters, changed) = ExportedCells.current(cells, plan: plan)
    let redo = "`promptrepro sweep \(given) --profile \(profile)` and `promptrepro export` bring them back"
    func list(_ l: [String]) -> String { l.prefix(6).joined(separator: ", ") + (l.count > 6 ? ", …" : "") }
    if !undecided.isEmpty {
        stderr("note: \(undecided.count) searched cells of \(ProjectRoot.display(path)) are left out: the export's grid points do not decide their search under spec \(s.name) [\(profile)] as it is now (a grid point run with other settings, unfinished, failed or incomplete, or every point diverged): "
            + list(undecided) + "; " + redo)
    }
    if !stale.isEmpty {
        stderr("note: \(stale.count) cells of \(ProjectRoot.display(path)) ran with other settings than spec \(s.name) [\(profile)] plans now (edited since the export) and are left out: "
            + list(stale) + "; " + redo)
    }
    if !inputs.isEmpty {
        stderr("note: \(inputs.count) cells of \(ProjectRoot.display(path)) ran on a data file or few-shot manifest that has changed here since (data directory \(dataDir ?? "?")) and are left out: "
            + list(inputs) + "; " + redo)
    }
    if !adapters.isEmpty {
        stderr("note: \(adapters.count) cells of \(ProjectRoot.display(path)) hold \(StaleRun.Reason.evaluatedInPlannedCell.rawValue) and are left out: "
            + list(adapters) + "; " + StaleRun.Reason.evaluatedInPlannedCell.remedy(sweep: "`promptrepro sweep \(given) --profile \(profile)`"))
    }
    if !changed.isEmpty {
        stderr("note: \(changed.count) cells of \(ProjectRoot.display(path)) hold runs of adapters whose files, the validation file they were scored on, or their task file (definition or template) have changed since, and are left out: "
            + list(changed) + "; " + StaleRun.Reason.adapterChanged.remedy(sweep: "") + ", then `promptrepro export`")
    }
    if !unplanned.isEmpty {
        stderr("note: \(unplanned.count) cells of \(ProjectRoot.display(path)) are no longer planned by spec \(s.name) [\(profile)] and are left out: " + list(unplanned))
    }
    if seedsLeft > 0 {
        stderr("note: \(seedsLeft) runs of \(ProjectRoot.display(path)) are of seeds spec \(s.name) [\(profile)] no longer plans; their cells' statistics leave them out")
    }
    if let note = adoptedRunsNote(spec: s.name, profile: profile, cells: kept) { stderr(note) }
    let out = stale + inputs + adapters + changed + undecided
    guard let first = out.first else { return (kept, nil) }
    let why = [stale.isEmpty ? nil : "ran under settings, task files or inputs that spec \(s.name) no longer plans (edited since the export)",
               inputs.isEmpty ? nil : "ran on data files or few-shot manifests that have changed here since",
               adapters.isEmpty ? nil : "are adapters evaluated into cells the spec trains",
               changed.isEmpty ? nil : "are adapters whose files or validation data have changed since",
               undecided.isEmpty ? nil : "are searches that the export's grid points no longer decide"].compactMap { $0 }
    return (kept, "Left out: \(out.count) cell\(out.count == 1 ? "" : "s") of \(ProjectRoot.display(path)) (e.g. \(first)) "
        + why.joined(separator: ", or ") + "; those cells show — where our result would be. " + redo + ".")
}

/// A `spec:` of a table or figure file (`file`) that names no spec file is that file's mistake, not
/// runs to sweep: the spec loader's error (with its suggestion), naming `file`.
func requireSpec(_ spec: String, of file: String) throws {
    guard !FileManager.default.fileExists(atPath: ProjectRoot.resolve("Baselines/specs/\(spec).yaml")) else { return }
    do { _ = try ExperimentSpec.load(spec, specsDir: ProjectRoot.resolve("Baselines/specs")) } catch { throw CommandFailure("\(file): spec: \(error)") }
}

/// The one line `report` and `figures` print for an output they keep because its spec has no data.
func missingSource(spec: String, profile: String, db: String, resultsDir: String, kept: String) -> String {
    // `kept`: a file, or "DIR/NAME.*" for its formats; "kept" only of what exists.
    let fm = FileManager.default
    let exists = kept.hasSuffix(".*")
        ? ((try? fm.contentsOfDirectory(atPath: (kept as NSString).deletingLastPathComponent)) ?? [])
            .contains { $0.hasPrefix(String((kept as NSString).lastPathComponent.dropLast(1))) }
        : fm.fileExists(atPath: kept)
    return "missing: no counted runs of spec \(spec) [\(profile)] in \(db) and no \(resultsDir)/\(spec)-\(profile).cells.json in use; "
        + (exists ? "kept \(kept)" : "\(kept) not written")
        + " — run `promptrepro sweep \(spec) --profile \(profile)` (and `promptrepro export \(spec) --profile \(profile)` to commit it)"
}

/// `resolveCells` from a store path; no cells (and the export path) when neither source has them.
func loadCells(spec: String, profile: String, db: String, resultsDir: String) throws -> ([CellResult], String) {
    let store = FileManager.default.fileExists(atPath: db) ? try ResultsStore.forReading(path: db) : nil
    let data = try? DataFiles.directory(nil, environmentDir: Environment.dataDir, defaultDir: ProjectRoot.resolve("data"))
    return try resolveCells(spec: spec, profile: profile, store: store, db: db, resultsDir: resultsDir, dataDir: data).map { ($0.cells, $0.source) }
        ?? ([], "\(resultsDir)/\(spec)-\(profile).cells.json")
}

struct FiguresCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "figures", abstract: "Render the paper figures (Baselines/figures/*.yaml) with gnuplot into Reports/figures (PNG + SVG).",
        discussion: "Data sources as for `report`: a figure whose spec has neither runs in the store nor an export is not redrawn; exits 1.")
    @Argument(help: "Figures (default: all).") var figures: [String] = []
    @OptionGroup var selection: StoreSelection
    var db: String { selection.db }
    var profile: String { selection.profile }
    @Option(name: .customLong("out-dir"), help: "Output directory (default: Reports/figures in the checkout).") var outDirGiven: String?
    var outDir: String { outDirGiven ?? ProjectRoot.resolve("Reports/figures") }
    @Option(name: .customLong("results-dir"), help: "Exported results used when the store has no runs of a spec (default: Baselines/results in the checkout).") var resultsDirGiven: String?
    var resultsDir: String { resultsDirGiven ?? ProjectRoot.resolve("Baselines/results") }
    @Option(name: .customLong("figures-dir"), help: "Figure specs (default: Baselines/figures in the checkout).") var figuresDirGiven: String?
    var figuresDir: String { figuresDirGiven ?? ProjectRoot.resolve("Baselines/figures") }

    func run() throws {
        // The figure specs here, by number (fig3 … fig14): every one by default, and the list an
        // unknown name is told.
        func known() throws -> [String] {
            try FileManager.default.contentsOfDirectory(atPath: figuresDir).filter { $0.hasSuffix(".yaml") }.map { String($0.dropLast(5)) }
                .sorted { (Int($0.dropFirst(3)) ?? 0, $0) < (Int($1.dropFirst(3)) ?? 0, $1) }
        }
        let names = figures.isEmpty ? try known() : figures
        let store = FileManager.default.fileExists(atPath: db) ? try ResultsStore.forReading(path: db) : nil
        var missing = 0
        // Each item on its own: a failure is that item's error ("not written", exit 1), and the others are still written.
        for name in names {
            func one() throws {
                // A figure name with no file: the known ones (as `report` names tables).
                guard FileManager.default.fileExists(atPath: "\(figuresDir)/\(name).yaml") else {
                    let listed = (try? known()) ?? []
                    throw StoreError("unknown figure '\(name)'\(didYouMean(name, listed)); known (\(figuresDir)): \(listed.joined(separator: ", "))")
                }
                let f = try FigureSpec.load("\(figuresDir)/\(name).yaml")
                try requireSpec(f.spec, of: "\(figuresDir)/\(name).yaml")
                guard let found = try resolveCells(spec: f.spec, profile: profile, store: store, db: db, resultsDir: resultsDir,
                                                   dataDir: try? DataFiles.directory(nil, environmentDir: Environment.dataDir, defaultDir: ProjectRoot.resolve("data"))) else {
                    stderr(missingSource(spec: f.spec, profile: profile, db: db, resultsDir: resultsDir, kept: "\(outDir)/\(name).*"))
                    missing += 1
                    return
                }
                let (cells, source, _, fromStore) = found
                let spec = try? ExperimentSpec.load(f.spec, specsDir: ProjectRoot.resolve("Baselines/specs"))
                let tasks = spec?.tasks ?? []
                // A series, reference, model or panel naming nothing of the spec would be drawn empty.
                if let spec {
                    let variants = Set((spec.variants.map(\.name) + cells.map(\.variant)).flatMap { [$0, Figures.baseVariant($0)] })
                    let problems = f.problems(variants: variants.sorted(), models: spec.models, tasks: spec.tasks)
                    if !problems.isEmpty { throw CommandFailure("\(figuresDir)/\(name).yaml: " + problems.joined(separator: "; ")) }
                }
                // The cells the spec plans (an x without a cell is a gap in the line), and what the
                // profile runs instead of the paper's setting (as the tables' setting note).
                let choose: ExperimentSpec.SearchChoice? = spec.flatMap { sp in fromStore ? store?.searchChoice(spec: sp, profile: profile) : sp.exportChoice(cells, profile: profile) }
                let planned = ((try? spec?.expand(profile: profile, choose: choose)) ?? nil ?? [])
                    .map { PlannedCell(variant: $0.variant, task: $0.task, model: $0.model, k: $0.k) }
                let out = try Figures.render(f, cells: cells, tasks: tasks, profile: profile, outDir: outDir, planned: Array(Set(planned)),
                                             setting: spec.flatMap { figureSetting(spec: $0, profile: profile, model: f.model) })
                // A figure of one model column draws only that column's cells: say when it has none
                // (the smoke profile maps no t5-large), instead of counting the spec's other cells.
                if let model = f.model {
                    let drawn = cells.filter { $0.model == model }.count
                    stderr("wrote \(out.joined(separator: ", ")) (\(drawn) of \(cells.count) cells from \(source) are of model \(model))")
                    if drawn == 0 { stderr("warning: \(name): every panel is empty: no cells of model column \(model) in profile \(profile)") }
                } else {
                    stderr("wrote \(out.joined(separator: ", ")) (\(cells.count) cells from \(source))")
                }
            }
            do { try one() } catch {
                stderr("error: \(name): \(error); not written")
                missing += 1
            }
        }
        if missing > 0 { throw ExitCode(1) }
    }
}

/// Why a read found no runs of `spec` in `profile`: the store's runs of it are all left out (the
/// note before says why), or it has none, with the specs and profiles it does have.
func noRunsMessage(_ store: ResultsStore, spec: String, profile: String, db: String) throws -> String {
    if try store.hasCurrentRuns(spec: spec, profile: profile) {
        return "no counted runs of spec \(spec) [\(profile)] in \(db) (its stored runs are left out: see the note above)"
    }
    let have = try store.specProfiles()
    return "no runs of spec \(spec) [\(profile)] in \(db) (have: \(have.isEmpty ? "none" : have.joined(separator: ", ")))"
}

/// A figure's line on what its profile runs instead of the paper's setting ("t5-small stands in for
/// t5-large; k = 32"); nil under the smoke profile (its title says it reproduces nothing) and where
/// the profile maps no model to a stand-in and sets no k of its own.
func figureSetting(spec: ExperimentSpec, profile: String, model: String?) -> String? {
    guard profile != "smoke", let prof = spec.profiles[profile] else { return nil }
    var parts: [String] = []
    for m in model.map({ [$0] }) ?? spec.models {
        if let mapped = prof.models?[m], mapped != m { parts.append("\(mapped) stands in for \(m)") }
    }
    if let ks = prof.k { parts.append("k = " + ks.map { $0.map(String.init) ?? "full" }.joined(separator: ", ")) }
    return parts.isEmpty ? nil : parts.joined(separator: "; ")
}

/// Under a table, how a profile's runs differ from the papers': the profile's description, the
/// model columns a smaller model stands in for, the few-shot size and `eval_limit` (smoke tables
/// too, beside their disclaimer); nil when the profile runs the sections' own models on full data.
/// A cpu-profile table once read as like-for-like ("T5-Base" rows run on t5-small, 32-shot,
/// against the papers' full-data numbers).
func settingNote(spec: ExperimentSpec, profile: String, layout: TableLayout) -> String? {
    guard let prof = spec.profiles[profile] else { return nil }
    var parts: [String] = []
    for sec in layout.sections {
        if let m = prof.models?[sec.model], m != sec.model { parts.append("the \(sec.label) rows run \(m)") }
    }
    let ks = (prof.k ?? spec.k).compactMap { $0 }
    if !ks.isEmpty { parts.append("k = \(ks.map(String.init).joined(separator: ", ")) training examples") }
    if let limit = (prof.train["eval_limit"] ?? spec.train["eval_limit"]).flatMap({ Int("\($0)") }) {
        // A val-half run scores the first rows of its report half, not of the split.
        // (A search's grid points carry its select_on in their train settings, and its chosen
        // point's runs select as the points did: a train-dev search adds no val-half rows.)
        let valHalf = ([prof.train, spec.train] + spec.variants.map(\.train)).contains { "\($0["select_on"] ?? "")" == "val-half" }
        // MultiRC's prefix ends at its last whole question (`Example.prefixOfWholeGroups`).
        let multirc = layout.columns.contains { $0.key == "multirc" }
        parts.append("scored on the first \(limit) validation examples of each task (eval_limit"
            + (multirc ? "; MultiRC: up to the last whole question within them" : "")
            + (valHalf ? "; rows selecting on val-half: the first \(limit) of the split's report half" : "") + ")")
    }
    guard !parts.isEmpty else { return nil }
    let described = prof.description.isEmpty ? "" : " (\(prof.description.trimmingCharacters(in: CharacterSet(charactersIn: ". "))))"
    return "Setting of profile \(profile)\(described): " + parts.joined(separator: "; ")
        + (layout.hasPublished ? ". The published values are the papers' own runs (their models and training data), so Δ compares different settings." : ".")
}
