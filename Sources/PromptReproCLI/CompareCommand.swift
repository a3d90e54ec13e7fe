import ArgumentParser
import Foundation
import Harness
import Reports
import Store
import Support
import Tasks
import Training

struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Compare a method (a spec variant) with a baseline per task: seed-paired statistics, Holm-adjusted intervals, a CI gate.",
        discussion: """
        Cells whose two sides (or one side's seeds) ran under different numerics (GEMM kernel, OpenBLAS build,
        thread count) are named "Mixed numerics" in the header: their differences include that rounding.
        Stored baseline: a paired bootstrap that resamples both the seeds both sides finished and the validation
        examples (best-epoch predictions from the store), with the paired t-test over the seeds beside it (the
        larger p and the hull of both intervals), or the paired t-test alone when no predictions are stored
        (committed exports). p-values are Holm-adjusted across tasks; each interval is printed at its Holm
        level; win/loss when it excludes 0 and the Holm-adjusted p is at most 0.05 (the same up to about 50 tested
        cells with 2000 resamples; beyond, the interval is the resamples' range). --against published prints Δ only (no spread, no test).
        Gate (--max-regression X, non-inferiority): exit 1 unless every expected task and seed is present on both
        sides (or --allow-missing), the new method diverged on none of them (also with --allow-missing), and every
        task's interval lies above −X.
        """)
    @Option(help: "Variant name of the new method in the spec (e.g. dpt, dpt-r5, or a new method's variant).") var method: String
    @Option(help: "Spec holding both: a name in Baselines/specs or a path (as `sweep` accepts).") var spec: String = "table1"
    @Option(help: "stored (runs of --baseline) or published (the paper's numbers).") var against: String = "stored"
    @Option(help: "Baseline variant (stored) or published row (pt, respt, dpt, ft, …).") var baseline: String = "pt"
    @OptionGroup var selection: StoreSelection
    var db: String { selection.db }
    var profile: String { selection.profile }
    @Option(name: .customLong("results-dir"), help: "Exported results (default: Baselines/results in the checkout).") var resultsDirGiven: String?
    /// `--results-dir` (relative to the working directory), else Baselines/results in the checkout.
    var resultsDir: String { resultsDirGiven ?? ProjectRoot.resolve("Baselines/results") }
    @Option(help: "Data directory for the per-example test (default: PROMPTREPRO_DATA or data/).") var dataDir: String?
    @Option(parsing: .unconditional, help: "Gate: largest allowed regression in points (non-inferiority margin).") var maxRegression: Double?
    @Flag(help: "Gate on the runs that exist, listing the missing ones instead of failing on them.") var allowMissing = false
    @Option(name: .customLong("tables-dir"), help: "Table layouts for --against published (default: Baselines/tables in the checkout), as `report --tables-dir`.") var tablesDirGiven: String?
    @Option(help: "Published table for --against published: its name (\"Table 1\") or a layout's (Baselines/tables; default: the table of the layout that shows --spec; required when no layout shows it).") var table: String?

    func run() throws {
        guard ["stored", "published"].contains(against) else { throw ValidationError("--against must be stored or published") }
        if let m = maxRegression, !(m.isFinite && m >= 0) {
            throw ValidationError("--max-regression \(m): the margin must be a finite number of points ≥ 0")
        }
        if against == "stored" && method == baseline {
            throw ValidationError("--method and --baseline are both \(method): a variant compared with its own runs differs by 0 on every seed, and a gate on it passes whatever the runs score")
        }
        if against == "published" && maxRegression != nil {
            throw ValidationError("--max-regression needs stored baseline runs: published numbers have no spread to build an interval from")
        }
        let specsDir = ProjectRoot.resolve("Baselines/specs")
        let s: ExperimentSpec
        do { s = try ExperimentSpec.load(spec, specsDir: specsDir) } catch {
            // A name without a spec file (`eval --db` without --spec stores under "adapters"):
            // `results` reads every stored run of it, but a comparison needs the plan of what each
            // side is expected to have (the gate fails on missing runs), which only a spec gives.
            guard !spec.hasSuffix(".yaml"), !FileManager.default.fileExists(atPath: ExperimentSpec.path(of: spec, specsDir: specsDir)) else { throw error }
            throw CommandFailure("\(error)\n(compare pairs runs against what a spec plans for each side; runs stored under a name without a spec file, "
                + "as `eval --db` without --spec stores under 'adapters', are listed by `promptrepro results \(spec)`; to compare an adapter, evaluate it into the spec "
                + "whose runs it is compared with: eval --db DB --spec SPEC --variant NAME)")
        }
        // A search's grid point is not a method to compare or gate on: it runs on the search seeds
        // only, and picking the best point by its reported scores is the selection the search
        // exists to avoid (a point passed the gate on one seed).
        for (flag, name) in [("--method", method)] + (against == "stored" ? [("--baseline", baseline)] : []) {
            if let owner = s.variants.first(where: { $0.name == name })?.searchFor {
                throw ValidationError("\(flag) \(name) is a grid point of the search for '\(owner)': compare '\(owner)' (its chosen point, rerun on every seed)")
            }
        }
        let published = against == "published" ? try Published.load(directory: ProjectRoot.resolve("Baselines/published")) : nil
        // The published table: a layout's name stands for its table; by default the table of the
        // layout that shows this spec (comparing another spec with DPT Table 1 by default misled).
        var publishedTable = table ?? ""
        var settingNotes: [String] = []
        if let published {
            // As `report` reads them: a broken layout is skipped (report names it when it is asked for).
            let layouts = try PaperTables.layouts(directory: tablesDirGiven ?? ProjectRoot.resolve(PaperTables.defaultDirectory), skippingBroken: true)
            let known = Set(published.filter { $0.paper == s.paper }.map(\.table)).sorted()
            // A spec of a paper without published numbers (paper: study, one's own): nothing to
            // compare against, said as such (the message blamed a --table no one passed).
            guard !known.isEmpty else {
                let papers = Set(published.map(\.paper)).sorted()
                throw ValidationError("--against published: spec \(s.name) is of paper \(s.paper), which has no published values in Baselines/published (papers there: \(papers.joined(separator: ", "))); compare against a stored baseline (--baseline)")
            }
            // The layout that decides: the one named by --table, else the one that shows this spec.
            let layout = table.flatMap { t in layouts.first { $0.name == t } } ?? (table == nil ? layouts.first { $0.spec == s.name && $0.kind == .score } : nil)
            if let layout {
                guard layout.paper == s.paper else {
                    throw ValidationError("--table \(layout.name): a layout of paper \(layout.paper); spec \(s.name) is of paper \(s.paper) (published tables: \(known.joined(separator: ", ")))")
                }
                publishedTable = layout.publishedTable
            } else if table == nil {
                throw ValidationError("no layout in \(tablesDirGiven ?? "Baselines/tables") shows spec \(s.name): pass --table (published tables of paper \(s.paper): \(known.joined(separator: ", ")))")
            }
            // Published standard deviations are not scores to compare a mean with.
            if let std = layouts.first(where: { $0.paper == s.paper && $0.publishedTable == publishedTable && $0.kind == .std }) {
                throw ValidationError("--table \(table ?? publishedTable): \(publishedTable) publishes standard deviations over seeds (layout \(std.name)), not scores")
            }
            guard known.contains(publishedTable) else {
                throw ValidationError("--table \(table ?? publishedTable): paper \(s.paper) has no published values in '\(publishedTable)'; known: \(known.joined(separator: ", "))")
            }
            if !published.contains(where: { $0.paper == s.paper && $0.table == publishedTable && $0.method == baseline }) {
                let rows = Set(published.filter { $0.paper == s.paper && $0.table == publishedTable }.map(\.method)).sorted()
                throw ValidationError("--baseline \(baseline): \(publishedTable) publishes no row of that name\(didYouMean(baseline, rows)); its rows: \(rows.joined(separator: ", "))")
            }
            settingNotes = publishedSettingNotes(spec: s, layouts: layouts.filter { $0.paper == s.paper && $0.publishedTable == publishedTable && $0.kind == .score })
            // Outside the smoke profile (which says it reproduces nothing) the runs' setting, as the
            // tables state it: the models standing in for the paper's and k.
            if profile != "smoke", let layout = layout ?? layouts.first(where: { $0.paper == s.paper && $0.publishedTable == publishedTable && $0.kind == .score }),
               let note = settingNote(spec: s, profile: profile, layout: layout) {
                settingNotes.insert(note, at: 0)
            }
        }
        // The gate judges runs of a store; the committed export stands in for reading only (a
        // misspelt --db once gated the committed numbers).
        if maxRegression != nil && !FileManager.default.fileExists(atPath: db) {
            throw CommandFailure("--db \(db): no such store; the gate (--max-regression) needs the store holding the runs to judge")
        }
        let store = FileManager.default.fileExists(atPath: db) ? try ResultsStore.forReading(path: db) : nil
        // An explicit --data-dir must exist (a typo once skipped the input check and the examples silently).
        let data = dataDir != nil ? try DataFiles.directory(dataDir, environmentDir: Environment.dataDir)
            : try? DataFiles.directory(nil, environmentDir: Environment.dataDir, defaultDir: ProjectRoot.resolve("data"))
        if data == nil && maxRegression != nil {
            stderr("note: no data directory found (--data-dir, PROMPTREPRO_DATA or data/): the gate compares neither the runs' data files and checkpoints with those they ran on (their few-shot manifests, the checkout's, it does) nor examples (paired t over seeds only)")
        }
        // Only the runs the spec plans now count (a cell, k or seed taken out of it, or a spec edited
        // since its sweep, leaves its old rows out: the gate then finds them missing).
        let plan = try store.map { try s.plannedRuns(profile: profile, store: $0, dataDir: data, manifestDir: ProjectRoot.resolve("Baselines/manifests")) }
        var cells = try store.map { try plannedCells($0, spec: spec, profile: profile, dataDir: data, current: plan.map { (s.name, $0) }) } ?? []
        var source = db
        // The committed export stands in only for a store without any current row of the spec: a
        // store whose rows are all stale is compared as it is (everything missing), not replaced.
        let storeHasSpec = try store?.hasCurrentRuns(spec: s.name, profile: profile) ?? false
        // Never for the gate: a store that holds no run of the spec (a sweep whose model was
        // missing, shards whose workers never ran, another spec's store) has every run missing,
        // and the gate once passed on the committed numbers instead.
        if cells.isEmpty && !storeHasSpec && maxRegression == nil {
            let path = "\(resultsDir)/\(s.name)-\(profile).cells.json"
            guard FileManager.default.fileExists(atPath: path) else {
                throw CommandFailure("no runs of spec \(s.name) [\(profile)] in \(db) and no committed export \(path): run `promptrepro sweep \(spec) --profile \(profile)`")
            }
            // Read as report reads it (a bare DecodingError named no file).
            cells = try currentExportCells(try readCellsExport(path, spec: s.name, profile: profile), spec: spec, profile: profile, path: path, dataDir: data)
            source = ProjectRoot.display(path)  // as report and figures name it
        }
        // What the spec expects, per cell (task, model column, k), for both sides.
        // Searched variants as the source decides them: the store's search runs, or, read from an
        // export, its grid-point cells (the store's choice of nothing left the expected runs empty).
        let expanded = try s.expand(profile: profile, choose: source == db ? store?.searchChoice(spec: s, profile: profile) : s.exportChoice(cells, profile: profile))
        // A variant the spec plans but has no counted runs of is reported missing (the gate fails);
        // one it does not plan either is a wrong name.
        // The stored baseline likewise: a misspelt one compared nothing, and the gate passed.
        // Grid points are not offered (they cannot be compared; see above).
        let points = Set(s.variants.filter { $0.searchFor != nil }.map(\.name))
        let known = Array(Set(cells.map(\.variant) + expanded.map(\.variant)).subtracting(points)).sorted()
        guard known.contains(method) else {
            throw CommandFailure("no runs of variant '\(method)' in spec \(s.name) [\(profile)] (\(source)); have: \(known.joined(separator: ", "))"
                + (spec == "table1" && !CommandLine.arguments.contains("--spec") ? " (--spec defaults to table1: pass --spec YOUR_SPEC)" : ""))
        }
        if against == "stored" && !known.contains(baseline) {
            throw CommandFailure("--baseline \(baseline): no runs of that variant in spec \(s.name) [\(profile)] (\(source))\(didYouMean(baseline, known)); have: \(known.joined(separator: ", "))")
        }
        func expected(_ variant: String) -> [CompareCell: [Replicate]] {
            var e: [CompareCell: Set<Replicate>] = [:]
            for r in expanded where r.variant == variant {
                e[CompareCell(task: r.task, model: r.model, k: r.k), default: []].insert(Replicate(seed: r.seed, sampleSeed: r.sampleSeed))
            }
            return e.mapValues { $0.sorted() }
        }
        // A side the spec does not plan (an adapter stored by `eval --db`) is expected where the
        // other side is: the spec's cells and seeds of it, or, when neither side is planned, every
        // cell and seed either side has. It expected nothing, so an adapter scored on one task
        // and two seeds passed the gate as "every expected run present".
        // A variant of the spec counts as planned even while its search is undecided (no runs yet).
        let planned = Set(expanded.map(\.variant)).union(s.variants.map(\.name))
        func stored(_ variants: [String]) -> [CompareCell: [Replicate]] {
            var e: [CompareCell: Set<Replicate>] = [:]
            for c in cells where variants.contains(c.variant) {
                e[CompareCell(task: c.task, model: c.model, k: c.k), default: []].formUnion(c.replicates)
            }
            return e.mapValues { $0.sorted() }
        }
        func expectedOf(_ side: String, other: String?) -> [CompareCell: [Replicate]] {
            if planned.contains(side) { return expected(side) }
            guard let other else { return [:] }
            return planned.contains(other) ? expected(other) : stored([side, other])
        }
        let otherSide = against == "stored" ? baseline : nil
        let expectedNew = expectedOf(method, other: otherSide)
        // A side the spec does not plan is never swept: its runs are missing because no one
        // evaluated and stored them (`eval --db`), not "not run, or left out as stale".
        func missingOf(_ side: String, expected: [CompareCell: [Replicate]], label: String) -> [(line: String, runs: Int)] {
            planned.contains(side) ? Compare.missingRuns(expected: expected, cells: cells, variant: side, label: label)
                : Compare.missingRuns(expected: expected, cells: cells, variant: side, label: label, notRun: "not evaluated into this store (eval --db)")
        }
        var absent = missingOf(method, expected: expectedNew, label: "new")
        if against == "stored" {
            let lacking = missingOf(baseline, expected: expectedOf(baseline, other: method), label: "baseline")
            absent += lacking
            // A new cell the spec does not expect the baseline at (an evaluated adapter's) is missing too.
            absent += Compare.unpairedRuns(cells: cells, newVariant: method, baselineVariant: baseline)
                .filter { u in !lacking.contains { $0.line.hasPrefix(String(u.line.prefix { $0 != ":" })) } }
        }
        let missing = absent.map(\.line)
        var backbones = Set(expanded.filter { $0.variant == method }.map { "\($0.model) = \($0.modelSpec)" }).sorted()
        if backbones.isEmpty, let store {  // a variant outside the spec (an evaluated adapter): what its runs loaded
            backbones = Set(try store.db.query("SELECT DISTINCT model, model_spec FROM runs WHERE spec=? AND profile=? AND variant=?",
                                               [.text(s.name), .text(profile), .text(method)]).map { "\($0["model"]?.text ?? "") = \($0["model_spec"]?.text ?? "")" }).sorted()
        }
        let smoke = profile == "smoke" || expanded.contains { $0.modelSpec.hasPrefix("embedded:") }
        var header = "Spec `\(s.name)` (\(s.path)), profile **\(profile)**, backbone \(backbones.joined(separator: ", ")); runs from \(source)."
        if smoke { header += "\n\n> Smoke profile: random-weight embedded backbone. These numbers test the pipeline and reproduce nothing." }
        for note in settingNotes { header += "\n\n> " + note }
        for note in settingNotes { stderr("note: " + note) }
        // Each side's settings as the spec writes them (a changed hyper-parameter showed nowhere in
        // the comparison), beside the presets and the spec's shared `train`.
        for side in [method] + (against == "stored" ? [baseline] : []) {
            guard let v = s.variants.first(where: { $0.name == side }) else { continue }
            func kv(_ d: [String: Any]) -> String { d.keys.sorted().map { "\($0): \(d[$0]!)" }.joined(separator: ", ") }
            header += "\n\nSettings of \(side) in the spec: method \(v.method)" + (v.overrides.isEmpty ? "" : " {\(kv(v.overrides))}")
                + (v.train.isEmpty ? "" : "; train {\(kv(v.train))}") + " (the rest from the method's preset, the spec's and the profile's `train`)."
        }
        // Runs no plan counts (a non-finite stored score, one adapter under several seeds) are out
        // of the means (`cellResults`), so out of the settings compared and the pairs too.
        let unusable = try store.map { try $0.unusableRuns(spec: s.name, profile: profile) } ?? [:]
        // What each side's settings resolved to (its preset under `protocol: auto`, the spec's and
        // the profile's `train`): LoPT's Adafactor against PT's AdamW showed nowhere.
        let resolvedSides = [method] + (against == "stored" ? [baseline] : [])
        let resolved = Dictionary(uniqueKeysWithValues: resolvedSides.map { side in
            (side, Compare.resolvedSettings(expanded.filter { $0.variant == side }.map(\.config))) })
        for side in resolvedSides where !(resolved[side] ?? []).isEmpty {
            header += "\n\nResolved settings of \(side): " + resolved[side]!.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + "."
        }
        if resolvedSides.count == 2 {
            func byCell(_ side: String) -> [String: TrainConfig] {
                var out: [String: TrainConfig] = [:]
                for r in expanded where r.variant == side {
                    let key = CompareCell(task: r.task, model: r.model, k: r.k).description
                    if out[key] == nil { out[key] = r.config }
                }
                return out
            }
            // A side outside the spec (adapters stored by `eval --db`): the settings its runs were
            // scored with, compared on what changes scoring (a generate-mode adapter against a
            // rank-mode baseline was gated without a word).
            func evaluatedByCell(_ side: String) throws -> [String: TrainConfig] {
                guard let store, source == db else { return [:] }
                var out: [String: TrainConfig] = [:]
                let sample = store.schemaVersion >= 4 ? "IFNULL(sample_seed, seed)" : "seed"
                // The runs the reads count (`plan` and `unusableRuns`), as the table's numbers are.
                for r in try store.db.query("SELECT id, cell, seed, \(sample) AS sample_seed, status, task, model, k, config_json, \(store.identityColumn) FROM runs WHERE spec=? AND profile=? AND variant=? AND status='evaluated' ORDER BY seed, id",
                                            [.text(s.name), .text(profile), .text(side)])
                where plan?.staleReason(row: r) == nil && unusable[r["id"]!.int!] == nil {
                    guard let task = r["task"]?.text, let model = r["model"]?.text, let json = r["config_json"]?.text,
                          let c = try? JSONDecoder().decode(TrainConfig.self, from: Data(json.utf8)) else { continue }
                    let key = CompareCell(task: task, model: model, k: r["k"]?.int).description
                    if out[key] == nil { out[key] = c }
                }
                return out
            }
            let (plannedNew, plannedBase) = (byCell(method), byCell(baseline))
            let evaluated = plannedNew.isEmpty || plannedBase.isEmpty
            let differing = Compare.differingSettings(new: plannedNew.isEmpty ? try evaluatedByCell(method) : plannedNew,
                                                      baseline: plannedBase.isEmpty ? try evaluatedByCell(baseline) : plannedBase,
                                                      only: evaluated ? Compare.evaluationSettingKeys : nil)
            if !differing.isEmpty {
                let line = evaluated
                    ? "\(method) and \(baseline) are scored with different settings (\(differing.joined(separator: "; "))): the comparison is of the adapters and how they are scored together."
                    : "\(method) and \(baseline) train with different settings (\(differing.joined(separator: "; "))): the comparison is of method and settings together."
                header += "\n\n> " + line
                stderr("note: " + line)
            }
        }
        // Numerics across the sides: a pair of cells whose runs ran under other kernels, OpenBLAS
        // builds or thread counts (a baseline swept on another host, a merged shard) differs by
        // rounding too; only a cell mixing setups within one side was named before.
        if against == "stored" {
            var differ: [String] = []
            for c in cells where c.variant == method {
                guard let b = cells.first(where: { $0.variant == baseline && $0.task == c.task && $0.model == c.model && $0.k == c.k }),
                      let mine = c.runNumerics, let theirs = b.runNumerics, !mine.isEmpty, !theirs.isEmpty else { continue }
                let (x, y) = (Trainer.distinctNumerics(Array(mine.values)), Trainer.distinctNumerics(Array(theirs.values)))
                if Trainer.distinctNumerics(x + y).count > 1 {
                    differ.append("\(CompareCell(task: c.task, model: c.model, k: c.k)): \(method) under \(x.joined(separator: " | ")); \(baseline) under \(y.joined(separator: " | "))")
                }
            }
            if let first = differ.first {
                let line = "Mixed numerics: \(method) and \(baseline) ran under different numerics setups in \(differ.count) cell\(differ.count == 1 ? "" : "s") (e.g. \(first)):"
                    + " their differences include the GEMM kernel's or thread count's rounding, not only the methods."
                header += "\n\n> " + line
                stderr("note: " + line)
            }
        }
        // Each side's protocol: a difference in selection rule or prediction rule is part of what is compared.
        for side in [method] + (against == "stored" ? [baseline] : []) {
            let labels = Set(cells.filter { $0.variant == side }.map { $0.protocolLabel ?? "default protocol" }).sorted()
            if !labels.isEmpty { header += "\n\nProtocol of \(side): \(labels.joined(separator: " / "))." }
        }
        // Evaluated adapters have one score, of the weights given (a PromptRepro adapter holds its
        // run's last epoch), where trained runs report their best epoch: beside each other the
        // difference includes epoch selection (a LoPT adapter's 45.31 read as 4.69 below PT's
        // selected 50.00, its own run's best).
        if against == "stored" {
            let evaluated = [method, baseline].filter { side in cells.contains { $0.variant == side && ($0.statuses["evaluated"] ?? 0) > 0 } }
            let trained = [method, baseline].filter { side in cells.contains { $0.variant == side && ($0.statuses["done"] ?? 0) > 0 } }
            if evaluated.count == 1, trained.contains(where: { $0 != evaluated[0] }) {
                let line = "\(evaluated[0]) holds evaluated adapters, each scored once on the weights given (an adapter PromptRepro saved holds its run's last epoch), "
                    + "while \(trained.first { $0 != evaluated[0] }!)'s trained runs report their best epoch: the difference includes that epoch selection, not only the methods."
                header += "\n\n> " + line
                stderr("note: " + line)
            }
        }

        var exampleCache: [String: [Example]] = [:]
        func examples(_ task: String, _ set: TemplateSet, _ half: Bool) -> [Example]? {
            let key = "\(task)/\(set.rawValue)/\(half)"
            if let e = exampleCache[key] { return e }
            guard let data, let def = try? TaskRegistry.definition(task), let val = try? DataLoader.load(def, split: .validation, dataDir: data),
                  let ex = try? Templates.examples(val, set: set, training: false,
                                                   rows: half ? FewShotSampler.validationHalves(val).report : nil) else { return nil }
            exampleCache[key] = ex
            return ex
        }
        var withoutPredictions: [(variant: String, cell: CompareCell, run: Replicate)] = []  // runs without stored predictions
        func runs(_ variant: String, _ cell: CompareCell) throws -> [PairedRun] {
            guard let store, source == db else {
                return cells.filter { $0.variant == variant && $0.task == cell.task && $0.model == cell.model && $0.k == cell.k }.flatMap(\.replicates)
                    .map { PairedRun(seed: $0.seed, sampleSeed: $0.sampleSeed, predictions: nil, templates: .dpt) }
            }
            return try store.db.query("""
                SELECT id, cell, seed, IFNULL(sample_seed, seed) AS sample_seed, status, config_json, \(store.identityColumn) FROM runs
                WHERE spec=? AND profile=? AND variant=? AND task=? AND model=? AND k IS ? AND status IN ('done','evaluated') ORDER BY seed
                """, [.text(s.name), .text(profile), .text(variant), .text(cell.task), .text(cell.model), cell.k.map { .int($0) } ?? .null])
                .filter { plan?.staleReason(row: $0) == nil && unusable[$0["id"]!.int!] == nil }.map { r in
                let cfg = try JSONDecoder().decode(TrainConfig.self, from: Data((r["config_json"]?.text ?? "{}").utf8))
                let preds = try store.predictions(run: r["id"]!.int!, kind: "best")
                if preds.isEmpty { withoutPredictions.append((variant, cell, Replicate(seed: r["seed"]!.int!, sampleSeed: r["sample_seed"]?.int))) }
                let manifest = PlannedRuns.inputParts(identityJSON: r["identity_json"]?.text)["manifest"]
                return PairedRun(seed: r["seed"]!.int!, sampleSeed: cfg.sampleSeed, predictions: preds.isEmpty ? nil : preds,
                                 templates: cfg.templates, reportsHalf: cfg.selectOn == .valHalf,
                                 sample: FewShotSample(sampler: cfg.sampler ?? .uniform, manifest: manifest.flatMap { $0.count == 64 ? $0 : nil }))
            }
        }
        let rows = try Compare.rows(cells: cells, newVariant: method, baselineVariant: baseline, published: published, paper: s.paper,
                                    table: publishedTable, runs: runs, examples: examples)
        if published != nil {
            // A task the published table has no value of the baseline row for is named, not dropped.
            let shown = Set(rows.map { "\($0.task)|\($0.model)|\($0.k.map(String.init) ?? "")" })
            let left = cells.filter { $0.variant == method && !($0.best.isEmpty) && !shown.contains("\($0.task)|\($0.model)|\($0.k.map(String.init) ?? "")") }
                .map { "\($0.task) (\($0.model)\($0.k.map { ", k=\($0)" } ?? ""))" }
            if !left.isEmpty {
                let line = "Not compared: \(publishedTable) of \(s.paper) publishes no \(baseline) value for " + Array(Set(left)).sorted().joined(separator: ", ") + "."
                header += "\n\n> " + line
                stderr("note: " + line)
            }
        }
        // Only where the other side has the seed: an unpaired run changes no test.
        let paired = withoutPredictions.filter { w in
            let other = w.variant == method ? baseline : method
            return cells.contains { $0.variant == other && $0.task == w.cell.task && $0.model == w.cell.model && $0.k == w.cell.k && $0.replicates.contains(w.run) }
        }.map { "\($0.cell.task) seed \($0.run.seed)\($0.run.sampleSeed != $0.run.seed ? " sample \($0.run.sampleSeed)" : "") (\($0.variant))" }
        if !paired.isEmpty {
            let list = Array(Set(paired)).sorted()
            let line = "\(list.count) compared run\(list.count == 1 ? " has" : "s have") no stored predictions (\(list.prefix(6).joined(separator: ", "))\(list.count > 6 ? ", …" : "")): "
                + "their tasks are tested by the paired t over seeds alone, without the bootstrap over examples."
            header += "\n\n> " + line
            stderr("note: " + line)
        }
        guard !rows.isEmpty || !missing.isEmpty else { throw CommandFailure("nothing to compare: no task has both \(method) and \(baseline)") }
        // Compared runs trained on data that differs from its pin (a sweep with --allow-unpinned) are
        // not the spec's protocol: listed, and the gate fails on them, --allow-missing or not.
        let sides = [method] + (against == "stored" ? [baseline] : [])
        let unpinned = try store.map { try unpinnedDataRuns($0, spec: s.name, profile: profile, plan: plan) }?
            .filter { line in sides.contains { line.hasPrefix("\($0)|") } } ?? []
        let (text, passed) = Compare.markdown(rows, new: method, baseline: baseline, against: against, header: header, missing: missing,
                                              missingRuns: absent.reduce(0) { $0 + $1.runs }, diverged: Compare.diverged(expected: expectedNew, cells: cells, variant: method), unpinned: unpinned,
                                              maxRegression: maxRegression, allowMissing: allowMissing)
        print(text, terminator: "")
        if !passed { throw ExitCode(1) }
    }
}

extension CompareCommand {
    /// Notes where the published `--baseline` row is the paper's run of the same method as
    /// `--method` with other settings (n, r, m, s): a layout of the table maps a spec variant to
    /// that published row, and its method config differs from ours in those fields (e.g. our
    /// r = 5 DPT against the paper's r = 10, our 100-token Residual PT against Table 4's 10
    /// tokens). A different method (a new method against published DPT) is the intended
    /// comparison and gets no note.
    func publishedSettingNotes(spec s: ExperimentSpec, layouts: [TableLayout]) -> [String] {
        guard let ours = s.variants.first(where: { $0.name == method }), let mine = try? s.methodConfig(ours) else { return [] }
        var notes: [String] = []
        for layout in layouts {
            for row in layout.rows where row.publishedMethod == baseline {
                guard let theirSpec = try? ExperimentSpec.load(layout.spec, specsDir: ProjectRoot.resolve("Baselines/specs")),
                      let theirs = theirSpec.variants.first(where: { $0.name == row.variant }), let paper = try? theirSpec.methodConfig(theirs),
                      paper.method == mine.method else { continue }
                let fields: [(String, Int, Int)] = [("n", paper.n, mine.n), ("r", paper.r, mine.r), ("m", paper.m, mine.m), ("s", paper.s, mine.s)]
                let differ = fields.filter { $0.1 != $0.2 }
                guard !differ.isEmpty else { continue }
                let text = "published '\(baseline)' of \(layout.publishedTable) is \(paper.method) with " + differ.map { "\($0.0) \($0.1)" }.joined(separator: ", ")
                    + " (layout \(layout.name), variant '\(row.variant)' of spec \(theirSpec.name)); '\(method)' here has " + differ.map { "\($0.0) \($0.2)" }.joined(separator: ", ")
                    + ": the Δ compares different settings of the method"
                if !notes.contains(text) { notes.append(text) }
            }
        }
        return notes
    }
}
