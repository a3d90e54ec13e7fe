// Markdown (and LaTeX) tables that mirror the papers' tables: same rows, columns, order and headers,
// the trainable-parameter column from our own counts, published value beside our mean ± std over
// seeds and Δ. Cells from the smoke profile or with fewer than 3 seeds are marked. Layouts are data
// (Baselines/tables/NAME.yaml); one TableGrid per table is written as Markdown and as LaTeX.
import Foundation
import Support
import Store
import Tasks
import Yams

/// One paper table: Baselines/tables/NAME.yaml (keys in snake_case).
public struct TableLayout: Decodable {
    public struct Section: Decodable {
        public var model: String, label: String  // spec model name → heading
        public init(model: String, label: String) { (self.model, self.label) = (model, label) }
    }
    public struct Row: Decodable {
        public var variant: String, label: String, publishedMethod: String
        enum CodingKeys: String, CodingKey { case variant, label, publishedMethod = "published" }
        public init(variant: String, label: String, publishedMethod: String) { (self.variant, self.label, self.publishedMethod) = (variant, label, publishedMethod) }
    }
    /// Whether any row has published values to show (a study layout marks every row
    /// `published: none`: its cells are ours alone, without "— /" and Δ framing).
    public var hasPublished: Bool { rows.contains { $0.publishedMethod != "none" } }

    public struct Column: Decodable {
        public var key: String, label: String, metric: String?
        /// The published CSV's `column` this column is compared with (default: the task). Two
        /// columns of one task (two metrics) need distinct ones, or "none" for no published value.
        public var publishedColumn: String?
        enum CodingKeys: String, CodingKey { case key = "task", label, metric, publishedColumn = "published_column" }
        public init(key: String, label: String, metric: String?, publishedColumn: String? = nil) {
            (self.key, self.label, self.metric, self.publishedColumn) = (key, label, metric, publishedColumn)
        }
        /// The stored score this column shows (`metric`, default accuracy).
        public var scoreName: String { metric ?? "accuracy" }
        /// The published column compared with, nil for none.
        public var publishedKey: String? { publishedColumn == "none" ? nil : publishedColumn ?? key }
    }
    public enum Kind: String, Decodable { case score, std }

    public var name: String            // Reports/<name>.md
    public var title: String           // names the paper and its table: "DPT Table 1 — …"
    public var spec: String
    public var publishedTable: String  // "Table 1"
    public var paper: String           // paper id in Baselines/published
    public var sections: [Section]
    public var rows: [Row]
    public var columns: [Column]
    public var average: Bool
    public var kind: Kind
    public var paramsColumn: Bool

    enum CodingKeys: String, CodingKey {
        case name = "table", title, spec, publishedTable = "published_table", paper, sections, rows, columns, average, kind, paramsColumn = "params_column"
    }

    public init(name: String, title: String, spec: String, publishedTable: String, paper: String, sections: [Section],
                rows: [Row], columns: [Column], average: Bool, kind: Kind, paramsColumn: Bool) {
        (self.name, self.title, self.spec, self.publishedTable, self.paper) = (name, title, spec, publishedTable, paper)
        (self.sections, self.rows, self.columns, self.average, self.kind, self.paramsColumn) = (sections, rows, columns, average, kind, paramsColumn)
    }

    static let keys: [String: Set<String>] = [
        "": ["table", "title", "spec", "published_table", "paper", "sections", "rows", "columns", "average", "kind", "params_column"],
        "sections": ["model", "label"], "rows": ["variant", "label", "published"], "columns": ["task", "label", "metric", "published_column"]]

    /// Reads and checks a layout. Errors name the file and the key: an unknown key (a typo such as
    /// `metrc` once left a column showing accuracy under an F1 header), a task that is not registered,
    /// a metric its task does not score, two columns compared with one published column.
    public static func load(_ path: String) throws -> TableLayout {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw StoreError("\(path): cannot read") }
        try refuseUnknownKeys(path, text: text, keys: keys, kind: "a layout")
        let l: TableLayout
        do { l = try YAMLDecoder().decode(TableLayout.self, from: text) } catch { throw StoreError("\(path): invalid table layout: \(yamlDecodingProblem(error))") }
        if let dup = YAMLKeys.firstDuplicate(in: text) { throw StoreError("\(path): \(dup)") }
        let file = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        guard l.name == file else { throw StoreError("\(path): table '\(l.name)' must match the file name '\(file)'") }
        for (key, empty) in [("sections", l.sections.isEmpty), ("rows", l.rows.isEmpty), ("columns", l.columns.isEmpty)] where empty {
            throw StoreError("\(path): '\(key)' is empty")
        }
        var published: [String: Int] = [:]
        for (i, c) in l.columns.enumerated() {
            guard TaskRegistry.names.contains(c.key) else {
                throw StoreError("\(path): columns[\(i)]: unknown task '\(c.key)'\(didYouMean(c.key, TaskRegistry.names))")
            }
            let scores = try TaskRegistry.definition(c.key).metrics.map(\.name)
            guard scores.contains(c.scoreName) else {
                throw StoreError("\(path): columns[\(i)] (\(c.label)): task \(c.key) scores \(scores.joined(separator: ", ")), not '\(c.scoreName)'"
                    + (c.metric == nil ? " (the default when `metric` is left out)" : didYouMean(c.scoreName, scores)))
            }
            if let p = c.publishedKey {
                if let j = published[p] {
                    throw StoreError("\(path): columns[\(j)] and columns[\(i)] are both compared with published column '\(p)'; give one a `published_column` (or `published_column: none`)")
                }
                published[p] = i
            }
        }
        return l
    }

    /// What in the layout names nothing of its spec (a model column or a task the spec does not
    /// have): such a cell would print "—" as if it had not run. One line each; empty when all match.
    public func problems(models: [String], tasks: [String]) -> [String] {
        var out: [String] = []
        for (i, s) in sections.enumerated() where !models.contains(s.model) {
            out.append("sections[\(i)]: spec \(spec) has no model column '\(s.model)'\(didYouMean(s.model, models))")
        }
        for (i, c) in columns.enumerated() where !tasks.contains(c.key) {
            out.append("columns[\(i)]: spec \(spec) has no task '\(c.key)'\(didYouMean(c.key, tasks))")
        }
        return out
    }

    /// Warnings: rows whose variant is neither the spec's nor has runs (a typo, or a PEFT adapter
    /// variant not evaluated yet: its row prints "—"), and published references that match nothing
    /// in `published` (every such published value prints "—"). One line each.
    public func warnings(variants: [String], published: [PublishedValue]) -> [String] {
        var out: [String] = []
        for (i, r) in rows.enumerated() where !variants.contains(r.variant) {
            out.append("rows[\(i)]: spec \(spec) has no variant '\(r.variant)' and no runs of it\(didYouMean(r.variant, variants)): its row shows —")
        }
        // Rows that all say `published: none` (a study no paper publishes) expect no published values.
        if rows.allSatisfy({ $0.publishedMethod == "none" }) { return out }
        let mine = published.filter { $0.paper == paper && $0.table == publishedTable }
        guard !mine.isEmpty else {
            let tables = Set(published.filter { $0.paper == paper }.map(\.table)).sorted()
            return out + ["paper \(paper) has no published values in '\(publishedTable)' (has: \(tables.joined(separator: ", "))): every published value shows —"]
        }
        let methods = Set(mine.map(\.method)), cols = Set(mine.map(\.column))
        for (i, r) in rows.enumerated() where r.publishedMethod != "none" && !methods.contains(r.publishedMethod) {
            out.append("rows[\(i)]: no published method '\(r.publishedMethod)' in \(paper) \(publishedTable)\(didYouMean(r.publishedMethod, methods.sorted()))")
        }
        for (i, c) in columns.enumerated() {
            if let k = c.publishedKey, !cols.contains(k) {
                out.append("columns[\(i)]: no published column '\(k)' in \(paper) \(publishedTable)\(didYouMean(k, cols.sorted()))")
            }
        }
        return out
    }
}

public enum PaperTables {
    public static let defaultDirectory = "Baselines/tables"

    /// Every layout in `directory`, ordered by paper id then name (DPT's tables, then LoPT's).
    /// `skippingBroken`: files that do not load are left out instead of failing the whole list.
    public static func layouts(directory: String = defaultDirectory, skippingBroken: Bool = false) throws -> [TableLayout] {
        try names(directory: directory).compactMap { skippingBroken ? try? layout($0, directory: directory) : try layout($0, directory: directory) }
            .sorted { ($0.paper, $0.name) < ($1.paper, $1.name) }
    }

    /// The layout `directory/NAME.yaml`, read alone: a broken file of another table does not stop it.
    public static func layout(_ name: String, directory: String = defaultDirectory) throws -> TableLayout {
        let path = "\(directory)/\(name).yaml"
        guard FileManager.default.fileExists(atPath: path) else {
            let known = try names(directory: directory)
            throw StoreError("unknown table '\(name)'\(didYouMean(name, known)); known (\(directory)): \(known.joined(separator: ", "))")
        }
        return try TableLayout.load(path)
    }

    /// The layout names of `directory` (its YAML files), sorted.
    public static func names(directory: String = defaultDirectory) throws -> [String] {
        guard let files = try? FileManager.default.contentsOfDirectory(atPath: directory) else {
            throw StoreError("\(directory): cannot list table layouts (run from the repository root or pass --tables-dir)")
        }
        return files.filter { $0.hasSuffix(".yaml") }.map { String($0.dropLast(5)) }.sorted()
    }

    static func f2(_ x: Double) -> String { String(format: "%.2f", x) }

    /// The stored metric a published unit names ("acc %" → accuracy, "F1a %" → f1a, "F1 %" → f1;
    /// a trailing "*" marks a value the paper prints with a "∗" it does not explain, DPT Table 1's
    /// larger fine-tuning rows), nil for units that name none (std, printed).
    static func unitMetric(_ unit: String) -> String? {
        let u = unit.hasSuffix("*") ? String(unit.dropLast()) : unit
        switch u.trimmingCharacters(in: .whitespaces) {
        case "acc %": return "accuracy"
        case "F1a %": return "f1a"
        case "F1 %": return "f1"
        default: return nil
        }
    }

    /// The note naming the subset data files (relative to the data directory) that a table's runs
    /// read, per column: `files(task)` gives the files of the column's runs, of which those the task
    /// lists after its official file (`TaskDefinition.Files`) are subsets. Nil when there are none.
    public static func subsetNote(_ layout: TableLayout, files: (String) -> Set<String>) -> String? {
        var subsets: [String] = []
        for col in layout.columns {
            guard let def = try? TaskRegistry.definition(col.key) else { continue }
            let found = files(col.key).sorted().compactMap { f -> String? in
                def.files.train.dropFirst().contains(f) ? "train \(f)" : def.files.validation.dropFirst().contains(f) ? "validation \(f)" : nil
            }
            if !found.isEmpty { subsets.append("\(col.label) (\(found.joined(separator: ", ")))") }
        }
        guard !subsets.isEmpty else { return nil }
        return "Subset data: these columns' runs read files that hold only part of the official split (the full files are not"
            + " available here; shared/data/SOURCES.md): " + subsets.joined(separator: "; ")
            + ". A train subset is what their few-shot samples are drawn from, a validation subset what they are scored on; the published values use the full splits."
    }

    /// `x` as a table prints it: rounded to two decimals (`f2`), the number a Δ to a published value
    /// starts from.
    static func printed(_ x: Double) -> Double { Double(f2(x)) ?? x }

    /// ours − published as the cell prints it: from our value rounded as shown (two decimals), so
    /// the Δ is the difference of the two printed numbers (from the unrounded mean it could differ
    /// from it by 0.01), signed, never "-0.00".
    public static func signedDelta(_ ours: Double, _ published: Double) -> String {
        let d = printed(ours) - published
        let text = f2(d)
        return text.hasPrefix("-") && Double(text) == 0 ? "+0.00" : (d >= 0 || Double(text) == 0 ? "+" : "") + text
    }

    /// Our trainable count for a row in a section: the paper-formula count stored with the runs of
    /// the row's cells (`CellResult.paperParams`), else `paperParams[variant][column]`, the count the
    /// caller computed from the spec (`ExperimentSpec.paperParameterCounts`) for rows without runs;
    /// "—" with neither. When the two disagree the stored count wins: it is what the runs trained
    /// (a searched variant runs its chosen grid point's settings, which the spec's variant does not
    /// name). Cells of one row that stored different counts print as "min–max".
    static func ourParams(_ cells: [CellResult], _ layout: TableLayout, variant: String, column: String,
                          paperParams: [String: [String: Int]]) -> String {
        let tasks = Set(layout.columns.map(\.key))
        let stored = Set(cells.filter { $0.variant == variant && $0.model == column && tasks.contains($0.task) }.compactMap(\.paperParams))
        func range(_ s: Set<Int>) -> String? {
            guard let lo = s.min(), let hi = s.max() else { return nil }
            return lo == hi ? lo.formatted() : "\(lo.formatted())–\(hi.formatted())"
        }
        if let r = range(stored) { return r }
        if let p = paperParams[variant]?[column] { return p.formatted() }
        // A variant outside the spec's methods (an adapter stored by `eval --db`): the count its
        // runs recorded, the adapter's tensors (it showed "—").
        return range(Set(cells.filter { $0.variant == variant && $0.model == column && tasks.contains($0.task) }.compactMap(\.trainableParams))) ?? "—"
    }

    /// The table as a grid of cells, built once from the cells of (spec, profile), the published values
    /// and our parameter counts (stored with the cells' runs, else `paperParams`: variant → model
    /// column → count, see `ourParams`); `markdown` and `latex` are two renderings of it.
    /// `references`: per column task, the reference scores (`ReferenceRows`) for the "Majority class"
    /// and "Uniform chance" rows of a score table; nil: no reference rows, [:]: rows of "—" (no data).
    public static func grid(_ layout: TableLayout, cells: [CellResult], published: [PublishedValue], profile: String,
                            paperParams: [String: [String: Int]] = [:], references: [String: [ReferenceScore]]? = nil) -> TableGrid {
        let pub = published.filter { $0.paper == layout.paper && $0.table == layout.publishedTable }
        func pubValue(_ model: String, _ label: String, _ method: String, _ col: String) -> PublishedValue? {
            for m in [label, model] {
                if let v = pub.first(where: { $0.model.lowercased() == m.lowercased() && $0.method == method && $0.column == col }) { return v }
            }
            return nil
        }
        let smoke = profile == "smoke"
        // A table that prints the change in parameters against a baseline instead of the count
        // (LoPT Table 3, "Δ # Params": against PT with a fixed n = 10, its caption says) shows that next to our count: it once showed "—" for
        // the paper, as if nothing were printed.
        let paperColumn = layout.paramsColumn && !pub.contains { $0.column == "params" } && pub.contains { $0.column == "delta_params" }
            ? "delta_params" : "params"
        var header = ["Model"] + (layout.paramsColumn
            ? [paperColumn == "params" ? "# Trainable Params (paper / ours)" : "Δ # Params vs PT (paper) / # Trainable Params (ours)"] : [])
        header += layout.columns.map(\.label) + (layout.average ? ["Avg."] : [])
        var rows: [TableGrid.Row] = []
        var anyInvalid = false, subsetAverage = false
        var avgMismatch: [String] = []
        var mixedNumerics: [String: [String]] = [:]  // shown cell → the setups its runs mix
        // Marks the paper's own table carries on a row's label, kept on ours: "∗" where the row's
        // values have a unit ending in "*" (rows the paper stars), "ᶜ" where their source says the
        // paper cites them from other work ("(cited: …)"), whose protocol and configuration are that work's.
        var starred = false
        var cited: [String: Set<String>] = [:]  // cited work → row labels
        var rowMarks = ""
        func marked(_ v: PublishedValue) -> String {
            if v.unit.hasSuffix("*"), !rowMarks.contains("∗") { rowMarks += "∗"; starred = true }
            if let r = v.source.range(of: "(cited: ") {
                let work = v.source[r.upperBound...].prefix { $0 != ")" }
                if !rowMarks.contains("ᶜ") { rowMarks += "ᶜ" }
                cited[String(work), default: []].insert(layout.rows.first { $0.publishedMethod == v.method }?.label ?? v.method)
            }
            return v.value
        }
        var otherMetric: [String: String] = [:]  // column label → "metric shown vs paper's unit"
        for section in layout.sections {
            let (column, label) = (section.model, section.label)
            rows.append(.section(label))
            for row in layout.rows {
                var line = [TableGrid.Cell(text: row.label, kind: .label)]
                rowMarks = ""
                if layout.paramsColumn {
                    let p = pubValue(column, label, row.publishedMethod, paperColumn).map(marked) ?? "—"
                    line.append(.init(text: "\(p) / \(ourParams(cells, layout, variant: row.variant, column: column, paperParams: paperParams))", kind: .params))
                }
                var ourMeans: [Double] = [], shownPublished: [Double?] = [], fewSeeds = false, anyFailed = false, rowOtherMetric = false
                for col in layout.columns {
                    let p = col.publishedKey.flatMap { pubValue(column, label, row.publishedMethod, $0) }
                    shownPublished.append(p?.number)
                    // A published value of another metric (the paper's accuracy beside our macro-F1)
                    // gets no Δ: the difference would compare two measures.
                    let sameMetric = layout.kind != .score || p.map { unitMetric($0.unit).map { $0 == col.scoreName } ?? true } ?? true
                    if !sameMetric, let p {
                        otherMetric[col.label] = "\(col.label) shows \(col.scoreName), the paper's values are \(p.unit)"
                        rowOtherMetric = true
                    }
                    let matching = cells.filter { $0.variant == row.variant && $0.task == col.key && $0.model == column }
                    if matching.count == 1, let setups = matching[0].mixedNumerics { mixedNumerics[matching[0].cell] = setups }
                    var text = p.map(marked) ?? "—"
                    // Ours alone where the layout publishes nothing; else "published / ours".
                    let sep = layout.hasPublished ? " / " : ""
                    if !layout.hasPublished { text = "" }
                    // A paper's table has one few-shot size; cells of several k are not one number.
                    guard matching.count < 2 else {
                        let ks = matching.map { $0.k.map(String.init) ?? "full" }.joined(separator: ", ")
                        line.append(.init(text: text + sep + "✗ k \(ks): the spec plans several k, the table shows one", kind: .score))
                        continue
                    }
                    let cell = matching.first
                    if let stat = cell.flatMap({ $0.best[col.scoreName] }), stat.n > 0 {
                        let ours = layout.kind == .std ? (stat.sampleStd ?? .nan) : stat.mean
                        // Avg. averages what the cells show: the means, or in a std table the stds.
                        if !ours.isNaN { ourMeans.append(ours) }
                        // Fewer than 3 training seeds, counted as seeds, not runs: a crossed cell of
                        // 2 samples × 2 seeds has 4 runs and 2 seeds (it showed no ‡).
                        let few = min(stat.n, Set(cell?.seeds ?? []).count) < 3
                        if few { fewSeeds = true }
                        if cell?.failureMarker != nil { anyFailed = true }
                        // One seed: the mean alone (‡ marks it), no "± 0.00".
                        var o = layout.kind == .std ? (ours.isNaN ? "n/a" : f2(ours)) : "\(f2(stat.mean))" + (stat.sampleStd.map { " ± \(f2($0))" } ?? "")
                        if smoke { o += "†" }
                        if few { o += "‡" }
                        if let pv = p?.number, !ours.isNaN, sameMetric { o += " (Δ \(signedDelta(ours, pv)))" }
                        text += sep + o + (cell?.failureMarker.map { " \($0)" } ?? "")
                        if let inv = cell?.invalidFraction?["best"], inv.n > 0, inv.mean > 0 {
                            text += " [\(percent(inv.mean)) invalid]"
                            anyInvalid = true
                        }
                    } else {
                        text += sep + (cell?.failureMarker ?? "—")
                    }
                    line.append(.init(text: text, kind: .score))
                }
                if layout.average {
                    // The paper's Avg. covers its row's tasks; over other columns (a layout with a
                    // subset of them) it is the mean of the published values shown, marked §.
                    let paperTasks = Set(pub.filter { ($0.model.lowercased() == label.lowercased() || $0.model.lowercased() == column.lowercased())
                                                       && $0.method == row.publishedMethod && !["params", "avg", "delta_params"].contains($0.column) }.map(\.column))
                    let shownTasks = Set(layout.columns.compactMap(\.publishedKey))
                    var p = pubValue(column, label, row.publishedMethod, "avg").map(marked) ?? "—"
                    // A printed Avg. that is neither the rounded nor the truncated mean of the
                    // paper's own cells is shown as printed, marked ¶ (Baselines/published/NOTES.md).
                    if let avg = pubValue(column, label, row.publishedMethod, "avg"), let printed = avg.number, paperTasks == shownTasks,
                       shownPublished.count == layout.columns.count, !shownPublished.contains(where: { $0 == nil }) {
                        let mean = shownPublished.compactMap { $0 }.reduce(0, +) / Double(shownPublished.count)
                        // At the printed precision (two decimals in DPT, one in LoPT).
                        let scale = pow(10, Double(avg.value.split(separator: ".").dropFirst().first?.count ?? 0))
                        if abs((mean * scale).rounded() / scale - printed) > 1e-9 && abs((mean * scale + 1e-9).rounded(.down) / scale - printed) > 1e-9 {
                            p += "¶"
                            avgMismatch.append("\(label) \(row.label): \(avg.value) printed, \(String(format: "%.4f", mean)) the mean of its cells")
                        }
                    }
                    if rowOtherMetric {
                        p = "—"  // the paper's average is of other measures than ours
                    } else if !paperTasks.isEmpty && paperTasks != shownTasks {
                        let vals = shownPublished.compactMap { $0 }
                        p = "—"
                        if vals.count == layout.columns.count && !vals.isEmpty {
                            p = f2(vals.reduce(0, +) / Double(vals.count)) + "§"
                            subsetAverage = true
                        }
                    }
                    // The average carries the markers of the cells it averages: ‡ when one has fewer
                    // than 3 seeds, ✗ when one leaves failed runs out.
                    let ours = ourMeans.count == layout.columns.count
                        ? f2(ourMeans.reduce(0, +) / Double(ourMeans.count)) + (smoke ? "†" : "") + (fewSeeds ? "‡" : "") + (anyFailed ? " ✗" : "") : "—"
                    line.append(.init(text: layout.hasPublished ? "\(p) / \(ours)" : ours, kind: .average))
                }
                line[0].text += rowMarks
                rows.append(.cells(line))
            }
        }
        var notes: [String] = []
        if starred {
            notes.append("∗ rows the paper marks so, without saying why (NOTES.md beside the published CSVs).")
        }
        if !cited.isEmpty {
            notes.append("ᶜ rows whose published values the paper cites from other work, run under that work's protocol, data and configuration"
                + " (its parameter counts too): " + cited.keys.sorted().map { "\(cited[$0]!.sorted().joined(separator: ", ")) from \($0)" }.joined(separator: "; ")
                + "; Δ compares our run with that work's.")
        }
        // Runs that read a subset file of an official split (a file the task lists after its official
        // one, shared/data/SOURCES.md) are not the paper's setting, whatever k is.
        if let note = subsetNote(layout, files: { task in
            Set(cells.filter { c in c.task == task && layout.rows.contains { $0.variant == c.variant } }.flatMap { $0.dataFiles ?? [] })
        }) { notes.append(note) }
        if !avgMismatch.isEmpty {
            notes.append("¶ the paper's printed Avg. is neither the rounded nor the truncated mean of its own cells: "
                + avgMismatch.joined(separator: "; ") + " (NOTES.md beside the published CSVs); the table shows it as printed.")
        }
        if subsetAverage {
            notes.append("§ published Avg.: the mean of the published values in this table's columns; the paper's Avg. covers all of its tasks.")
        }
        if !otherMetric.isEmpty {
            notes.append("No Δ, and no published Avg., where a column's metric is not the one the paper reports: "
                + otherMetric.keys.sorted().map { otherMetric[$0]! }.joined(separator: "; ") + ".")
        }
        if anyInvalid {
            notes.append("[k% invalid]: mean over seeds of the share of the best epoch's validation outputs that name no label"
                + " (none of the verbaliser's targets; ReCoRD: no entity of the passage; WSC: empty once determiners are dropped);"
                + " the metric scores them as wrong.")
        }
        // Every row whose runs use a protocol variant says which, and what the other rows follow.
        let variants = layout.rows.compactMap { row -> String? in
            let labels = Set(cells.filter { $0.variant == row.variant }.compactMap(\.protocolLabel)).sorted()
            return labels.isEmpty ? nil : "\(row.label) — \(labels.joined(separator: " / "))"
        }
        if !variants.isEmpty {
            // Neither paper states these choices (a review found them credited to the papers):
            // DPT's released code selects the best epoch on the reported validation split and
            // generates greedily, but draws its samples with a seed fixed at 42.
            notes.append("Protocol: rows not listed here run the harness's default protocol: one seed draws the few-shot sample and the training"
                + " (DPT's released code fixes its sample seed at 42); the best epoch is selected on the validation split that is reported and labels"
                + " are read from greedy generation, as DPT's released code does. Neither paper states these choices. "
                + variants.joined(separator: "; ") + ".")
        }
        if let note = metricVariantNote(layout) { notes.append(note) }
        // Said in the table itself (it went to stderr only, so a committed table built from a
        // merged store, or from its export, never carried it).
        if let first = mixedNumerics.keys.sorted().first {
            notes.append("Mixed numerics: \(mixedNumerics.count) cell\(mixedNumerics.count == 1 ? "" : "s") average runs of different GEMM kernels (or kc), OpenBLAS builds or thread counts, which change bits"
                + " (e.g. \(first): \(mixedNumerics[first]!.joined(separator: " | "))); rerun them on one setup to compare seeds bit for bit.")
        }
        if let references, layout.kind == .score {
            let (refRows, note) = referenceRows(layout, references: references)
            rows += refRows
            notes.append(note)
        }
        return TableGrid(header: header, rows: rows, notes: notes)
    }

    /// For each column whose task also stores a paper-code variant of the column's metric
    /// (`MetricEntry.variantOf`: ReCoRD's F1 per answer row, WSC's label-1 rows), what the column
    /// reports and what the variant is stored as; nil when no column has one.
    static func metricVariantNote(_ layout: TableLayout) -> String? {
        var parts: [String] = []
        for col in layout.columns {
            guard let def = try? TaskRegistry.definition(col.key),
                  let shown = def.metrics.first(where: { $0.name == col.scoreName }), let entry = try? shown.entry else { continue }
            let variants = def.metrics.compactMap { m -> String? in
                guard let e = try? m.entry, e.variantOf == shown.metric else { return nil }
                return "\(m.name) — \(e.summary)"
            }
            if variants.isEmpty { continue }
            parts.append("\(col.label) \(shown.name) — \(entry.summary); stored beside it: \(variants.joined(separator: "; "))")
        }
        return parts.isEmpty ? nil : "Columns whose metric has a paper-code variant (results lists both): " + parts.joined(separator: ". ") + "."
    }

    /// "12%", with "<1%" and ">99%" so a share that is not 0 or 100 never prints as one.
    public static func percent(_ fraction: Double) -> String {
        let p = 100 * fraction
        if p > 0 && p < 1 { return "<1%" }
        if p > 99 && p < 100 { return ">99%" }
        return String(format: "%.0f%%", p)
    }

    /// The "Majority class" and "Uniform chance" rows and the note that defines them.
    static func referenceRows(_ layout: TableLayout, references: [String: [ReferenceScore]]) -> ([TableGrid.Row], String) {
        var rows: [TableGrid.Row] = [.section("Reference (zero skill)")]
        for (label, pick) in [("Majority class", { (r: ReferenceScore) in r.majority }),
                              ("Uniform chance (exact expectation)", { (r: ReferenceScore) in r.uniform })] {
            var line = [TableGrid.Cell(text: label, kind: .label)]
            if layout.paramsColumn { line.append(.init(text: "—", kind: .params)) }
            var values: [Double] = []
            for col in layout.columns {
                let refs = references[col.key] ?? []
                let vals = refs.map { pick($0)?[col.scoreName] }
                if refs.count == 1, let v = vals[0] { values.append(v) }
                let text = refs.count == 1 ? (vals[0].map(f2) ?? "—")
                    : refs.isEmpty ? "—" : zip(refs, vals).map { "\($1.map(f2) ?? "—") (n=\($0.examples))" }.joined(separator: " / ")
                line.append(.init(text: text, kind: .score))
            }
            if layout.average {
                line.append(.init(text: values.count == layout.columns.count ? f2(values.reduce(0, +) / Double(values.count)) : "—", kind: .average))
            }
            rows.append(.cells(line))
        }
        var note = "Reference rows: Majority class predicts the most frequent label of the scored validation examples"
            + " (ties: the task's first label) for every example and scores it with the task's metric (ReCoRD: —, no label is shared"
            + " across queries); Uniform chance is the exact expected score when each prediction is drawn uniformly from the labels"
            + " (ReCoRD: from the passage's entities; WSC: the referent or not)."
        let scored = layout.columns.compactMap { col -> String? in
            guard let refs = references[col.key], !refs.isEmpty else { return nil }
            return "\(col.label) " + refs.map { r in
                (r.valHalf ? "\(r.examples) of the val-half report half of \(r.splitSize)"
                    : r.examples == r.splitSize ? "all \(r.splitSize)" : "first \(r.examples) of \(r.splitSize)")
                    + (r.subsetFile.map { " in the subset file \($0), not the official split" } ?? "")
            }.joined(separator: " / ")
        }
        if references.isEmpty {
            note += " No validation data was found, so the rows are empty: run `make fetch-data` or pass --data-dir."
        } else {
            note += " Scored on the validation examples the table's runs scored: \(scored.joined(separator: ", "))."
            if layout.columns.contains(where: { (references[$0.key]?.count ?? 0) > 1 }) {
                note += " A column with several values: its runs scored different subsets (n = examples)."
            }
        }
        return (rows, note)
    }

    /// Renders `layout` from the store's cells of (spec, profile) and the published values.
    public static func markdown(_ layout: TableLayout, cells: [CellResult], published: [PublishedValue], profile: String,
                                paperParams: [String: [String: Int]] = [:]) -> String {
        markdown(layout, grid: grid(layout, cells: cells, published: published, profile: profile, paperParams: paperParams), profile: profile)
    }

    public static func markdown(_ layout: TableLayout, grid: TableGrid, profile: String) -> String {
        var out = "# \(layout.title)\n\n"
        out += legend(layout, profile: profile, bold: { "**\($0)**" }, code: { "`\($0)`" }).map { $0 + "\n" }.joined() + "\n"
        func md(_ s: String) -> String { s.replacingOccurrences(of: "|", with: "\\|") }
        let n = grid.header.count
        out += "|" + grid.header.map { " \(md($0)) |" }.joined() + "\n|" + String(repeating: "---|", count: n) + "\n"
        for row in grid.rows {
            switch row {
            case .section(let label): out += "| **\(md(label))** |" + String(repeating: " |", count: n - 1) + "\n"
            case .cells(let cells): out += "|" + cells.map { " \(md($0.text)) |" }.joined() + "\n"
            }
        }
        for note in grid.notes { out += "\n\(note)\n" }
        return out
    }

    /// The lines under a table's title that say what its cells are: the profile (smoke: a pipeline
    /// test that reproduces nothing), the cell format and the markers, and for a std table what
    /// "ours" is. Markdown and LaTeX print the same words (`bold` and `code` mark them up).
    static func legend(_ layout: TableLayout, profile: String, bold: (String) -> String, code: (String) -> String) -> [String] {
        let smoke = profile == "smoke"
        var first = "Profile: \(bold(profile))\(smoke ? " — embedded random-weight backbone; our numbers test the pipeline and \(bold("reproduce nothing"))" : "")."
        first += !layout.hasPublished
            ? " Each cell: ours as mean ± sample std over seeds of the best-epoch validation score (no paper publishes these rows)."
            : layout.kind == .std
            ? " Each cell: published value / ours, each the standard deviation over seeds of the best-epoch validation score, (Δ = ours − published)."
            : " Each cell: published value / ours as mean ± sample std over seeds of the best-epoch validation score, (Δ = ours − published)."
        first += " † smoke profile; ‡ fewer than 3 seeds; — no counted run in this profile (not run, or left out as stale: see the notes);"
        first += " ✗ failed k/n: k of the cell's n runs failed (or diverged) and are left out of the mean."
        var lines = [first]
        // The paper's second header row names each column's measure; ours names the stored metric.
        lines.append("Metric per column (stored name): " + layout.columns.map { "\($0.label) \(code($0.scoreName))" }.joined(separator: ", ") + ".")
        if layout.paramsColumn {
            lines.append("Our parameter count is the method's on the column's model (its formula on that architecture, METHODS.md section 3, as the runs store it), whichever model a profile runs in the column (a smoke or stand-in run trains fewer: \(code("promptrepro results --efficiency")) lists what each run trained).")
        }
        if layout.kind == .std {
            lines.append("Ours here is the sample standard deviation (n − 1) over seeds; the population value is in \(code("promptrepro results --format csv")) (from a store) and in the committed export's JSON (`*_pop_std`).")
        }
        return lines
    }

    /// The same table as LaTeX (booktabs), published / ours per cell.
    public static func latex(_ layout: TableLayout, cells: [CellResult], published: [PublishedValue], profile: String,
                             paperParams: [String: [String: Int]] = [:]) -> String {
        latex(layout, grid: grid(layout, cells: cells, published: published, profile: profile, paperParams: paperParams), profile: profile)
    }

    public static func latex(_ layout: TableLayout, grid: TableGrid, profile: String) -> String {
        let n = grid.header.count
        // A folded or multi-line title stays inside the comment (its second line was typeset).
        let title = layout.title.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
        var out = "% \(title) — profile \(profile)\n"
        out += "% Needs \\usepackage{booktabs}. The tabular is the argument of \\promptreprotable (identity by default), so it\n"
        out += "% scales alone while the notes below stay text: \\newcommand{\\promptreprotable}[1]{\\noindent\\resizebox{\\textwidth}{!}{#1}}\n"
        out += "% (graphicx) before \\input of this file.\n"
        out += "\\providecommand{\\promptreprotable}[1]{#1}\n"
        out += "\\promptreprotable{\\begin{tabular}{l" + String(repeating: "c", count: n - 1) + "}\n\\toprule\n"
        out += grid.header.map(latexText).joined(separator: " & ") + " \\\\\n\\midrule\n"
        for row in grid.rows {
            switch row {
            case .section(let label): out += "\\multicolumn{\(n)}{l}{\\textbf{\(latexText(label))}} \\\\\n"
            case .cells(let cells): out += cells.map { latexText($0.text) }.joined(separator: " & ") + " \\\\\n"
            }
        }
        out += "\\bottomrule\n\\end{tabular}}\n"
        // The legend the Markdown prints under its title (the smoke disclaimer, the markers), then the notes,
        // each its own paragraph (\\sloppy: long paths in \\texttt overran the line).
        let legendLines = legend(layout, profile: profile, bold: { "\u{1}\($0)\u{2}" }, code: { "\u{3}\($0)\u{4}" }).map {
            latexText($0).replacingOccurrences(of: "\u{1}", with: "\\textbf{").replacingOccurrences(of: "\u{2}", with: "}")
                .replacingOccurrences(of: "\u{3}", with: "\\texttt{").replacingOccurrences(of: "\u{4}", with: "}")
        }
        for line in legendLines { out += "{\\footnotesize\\sloppy\\noindent \(line)\\par}\n" }
        for note in grid.notes { out += "{\\footnotesize\\sloppy\\noindent \(latexText(note))\\par}\n" }
        return out
    }

    /// Plain text as LaTeX: the ten specials escaped, then the table's symbols as math or dashes;
    /// Markdown's `code` spans (when the backticks pair up) as \texttt, and "--" kept two hyphens
    /// (an option such as --data-dir, not an en dash).
    public static func latexText(_ s: String) -> String {
        var out = ""
        let codeSpans = s.filter { $0 == "`" }.count % 2 == 0
        var inCode = false, openQuote = true
        let chars = Array(s)
        for (i, ch) in chars.enumerated() {
            let before: Character? = i > 0 ? chars[i - 1] : nil
            var piece = ""
            defer {
                // TeX ligatures across two pieces: "-" + "-" (an en dash), "!" or "?" + "`" (¡, ¿),
                // "'" + "''" or "`" + "``" (a double quote read first: ”’ for ’”).
                if let last = out.last, let first = piece.first,
                   (last == "-" && first == "-") || ("!?".contains(last) && first == "`") || (last == first && (last == "'" || last == "`")) {
                    out += "{}"
                }
                out += piece
            }
            switch ch {
            case "`" where codeSpans: piece += inCode ? "}" : "\\texttt{"; inCode.toggle()
            case "-" where i + 1 < chars.count && chars[i + 1] == "-": piece += "-{}"
            // A minus sign before a number ("Δ -3.21", "(-0.5", "[-1, 2]", "x=-3", "-.5"), as the
            // legend's $-$; a hyphen between letters or digits ("t5-small", "1-3") stays one.
            case "-" where !inCode && i + 1 < chars.count
                && (chars[i + 1].isNumber || (chars[i + 1] == "." && i + 2 < chars.count && chars[i + 2].isNumber))
                && (before == nil || " ([{=/,:;".contains(before!)):
                piece += "$-$"
            case "\\": piece += "\\textbackslash{}"
            case "&", "%", "$", "#", "_", "{", "}": piece += "\\\(ch)"
            case "~": piece += "\\textasciitilde{}"
            case "^": piece += "\\textasciicircum{}"
            // OT1 typesets "|" as an em dash and '"' as a closing quote on both sides.
            case "|": piece += "\\textbar{}"
            case "\"" where inCode: piece += "\\char`\\\"{}"  // the typewriter font's straight quote
            case "\"": piece += openQuote ? "``" : "''"; openQuote.toggle()
            case "<", ">": piece += "$\(ch)$"
            default:
                if ch.isASCII { piece.append(ch) }
                else if let math = latexMath[ch] { piece += "$\(math)$" }
                else if let text = latexTextSymbols[ch] { piece += text }
                else if let accented = latexAccented(ch) { piece += accented }
                // Anything else may stop pdflatex under its defaults (OT1, utf8: "Unicode character
                // ≥ (U+2265) not set up for use with LaTeX", "\\DJ unavailable in encoding OT1"):
                // named by its code points, not lost.
                else { piece += ch.unicodeScalars.map { String(format: "[U+%04X]", $0.value) }.joined() }
            }
        }
        return out
    }

    /// A letter with one accent, precomposed or not ("é", "e\u{301}"), as LaTeX's accent command
    /// on its ASCII base ("\\'{e}"), which the default OT1 encoding prints; nil for anything else
    /// (an ogonek needs T1, two accents no such command).
    static func latexAccented(_ ch: Character) -> String? {
        let scalars = Array(String(ch).decomposedStringWithCanonicalMapping.unicodeScalars)
        guard scalars.count == 2, scalars[0].isASCII, scalars[0].properties.isAlphabetic,
              let accent = latexAccents[scalars[1].value] else { return nil }
        // An accent over i or j takes the dotless letter (\\'{\\i}), as LaTeX prints "í".
        let base = scalars[0] == "i" ? "\\i" : scalars[0] == "j" ? "\\j" : String(scalars[0])
        return "\\\(accent){\(base)}"
    }

    /// Combining accent (code point) → LaTeX accent command name, those OT1 has.
    static let latexAccents: [UInt32: String] = [
        0x300: "`", 0x301: "'", 0x302: "^", 0x303: "~", 0x304: "=", 0x306: "u", 0x307: ".", 0x308: "\"",
        0x30A: "r", 0x30B: "H", 0x30C: "v", 0x327: "c",
    ]

    /// Letters and signs with a text command in LaTeX's defaults.
    static let latexTextSymbols: [Character: String] = [
        "—": "---", "–": "--", "§": "\\S{}", "¶": "\\P{}", "“": "``", "”": "''", "‘": "`", "’": "'",
        "ß": "\\ss{}", "æ": "\\ae{}", "Æ": "\\AE{}", "œ": "\\oe{}", "Œ": "\\OE{}", "ø": "\\o{}", "Ø": "\\O{}",
        "ł": "\\l{}", "Ł": "\\L{}", "ı": "\\i{}", "å": "\\aa{}", "Å": "\\AA{}", "•": "\\textbullet{}", "…": "\\ldots{}",
        "©": "\\copyright{}", "£": "\\pounds{}", "¡": "\\textexclamdown{}", "¿": "\\textquestiondown{}", "\u{A0}": "~", "µ": "$\\mu$", "°": "$^\\circ$",
        "÷": "$\\div$", "¬": "$\\neg$", "€": "\\texteuro{}", "½": "$\\frac12$", "¼": "$\\frac14$", "¾": "$\\frac34$",
        "®": "\\textregistered{}", "ª": "\\textordfeminine{}", "º": "\\textordmasculine{}", "¢": "\\textcent{}", "¥": "\\textyen{}",
    ]

    /// Symbols written as math in LaTeX (without the dollars).
    static let latexMath: [Character: String] = [
        "±": "\\pm", "Δ": "\\Delta", "†": "^\\dagger", "‡": "^\\ddagger", "✗": "\\times", "−": "-", "∗": "^*", "ᶜ": "^{c}",
        "≥": "\\geq", "≤": "\\leq", "≠": "\\neq", "≈": "\\approx", "∞": "\\infty", "×": "\\times", "→": "\\rightarrow",
        "←": "\\leftarrow", "·": "\\cdot", "√": "\\surd", "✓": "\\surd", "∈": "\\in", "∑": "\\sum", "Σ": "\\Sigma",
        "α": "\\alpha", "β": "\\beta", "γ": "\\gamma", "δ": "\\delta", "ε": "\\epsilon", "η": "\\eta", "θ": "\\theta",
        "λ": "\\lambda", "μ": "\\mu", "σ": "\\sigma", "τ": "\\tau", "ρ": "\\rho", "π": "\\pi", "φ": "\\phi",
        "ω": "\\omega", "²": "^2", "³": "^3", "⁻": "^-", "¹": "^1",
    ]
}

/// One paper table as rows of cells, before it is written as Markdown or LaTeX.
public struct TableGrid: Equatable {
    public enum Kind: Equatable { case label, params, score, average }
    public struct Cell: Equatable {
        public var text: String
        public var kind: Kind
    }
    public enum Row: Equatable {
        case section(String)  // a model heading spanning the table
        case cells([Cell])
    }
    public var header: [String]
    public var rows: [Row]
    /// Footnotes printed under the table (the reference rows' definition, the invalid-output marker).
    public var notes: [String] = []
}

/// Refuses a YAML mapping's keys outside `keys[""]` and, for each list `keys` names, an entry that
/// is not a mapping or has a key outside that list's set. Errors name the file, the entry
/// (`rows[2]`), the key, a near name and the keys allowed (`kind` says whose: "a layout").
/// Text that is not a YAML mapping is left to the decoder's error.
func refuseUnknownKeys(_ path: String, text: String, keys: [String: Set<String>], kind: String) throws {
    guard let raw = (try? Yams.load(yaml: text)) as? [String: Any], let top = keys[""] else { return }
    for key in raw.keys.sorted() where !top.contains(key) {
        throw StoreError("\(path): unknown key '\(key)'\(didYouMean(key, Array(top))); \(kind) has \(top.sorted().joined(separator: ", "))")
    }
    for (list, allowed) in keys.sorted(by: { $0.key < $1.key }) where !list.isEmpty {
        for (i, item) in ((raw[list] as? [Any]) ?? []).enumerated() {
            guard let d = item as? [String: Any] else { throw StoreError("\(path): \(list)[\(i)] is not a mapping") }
            for key in d.keys.sorted() where !allowed.contains(key) {
                throw StoreError("\(path): \(list)[\(i)]: unknown key '\(key)'\(didYouMean(key, Array(allowed))); an entry has \(allowed.sorted().joined(separator: ", "))")
            }
        }
    }
}
