// Figures: each is one spec (Baselines/figures/NAME.yaml) naming its data query (experiment spec,
// x field, series, reference lines, panels, statistic) and its plot. Rendering writes NAME.dat and
// NAME.gp and runs gnuplot twice: pngcairo and SVG, fixed fonts and sizes, no timestamps.
import Foundation
import Store
import Support
import Tasks
import Yams

public struct FigureSpec: Decodable {
    public struct Series: Decodable { public var variant: String; public var label: String }
    public var figure: String
    public var label: String         // the paper and its figure: "DPT Figure 3"
    public var title: String
    public var spec: String
    public var query: String         // score | probe
    public var x: String             // k | r | n | epoch
    public var series: [Series]
    public var references: [Series]?
    public var panels: [String]      // task names, or "avg" (mean over the spec's tasks)
    public var model: String?
    public var stat: String?         // mean (default) | minmax
    public var xlabel: String
    public var ylabel: String
    public var logx: Bool?

    static let keys: Set<String> = ["figure", "label", "title", "spec", "query", "x", "series", "references", "panels", "model", "stat",
                                    "xlabel", "ylabel", "logx"]
    /// The keys of a `series` or `references` entry.
    static let entryKeys: Set<String> = ["variant", "label"]

    /// Reads and checks a figure spec; errors name the file and the key (an unknown key, or a
    /// `query`, `x`, `stat` or panel outside what is drawn, once plotted plain means or nothing
    /// without a word).
    public static func load(_ path: String) throws -> FigureSpec {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw StoreError("\(path): cannot read") }
        try refuseUnknownKeys(path, text: text, keys: ["": keys, "series": entryKeys, "references": entryKeys], kind: "a figure")
        let f: FigureSpec
        do { f = try YAMLDecoder().decode(FigureSpec.self, from: text) } catch { throw StoreError("\(path): invalid figure spec: \(yamlDecodingProblem(error))") }
        if let dup = YAMLKeys.firstDuplicate(in: text) { throw StoreError("\(path): \(dup)") }
        let file = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        guard f.figure == file else { throw StoreError("\(path): figure '\(f.figure)' must match the file name '\(file)'") }
        for (key, value, allowed) in [("query", f.query, ["score", "probe"]), ("x", f.x, ["k", "r", "n", "epoch"]), ("stat", f.stat ?? "mean", ["mean", "minmax"])] {
            guard allowed.contains(value) else { throw StoreError("\(path): \(key) '\(value)'\(didYouMean(value, allowed)); one of \(allowed.joined(separator: ", "))") }
        }
        // A probe figure draws the probe's per-epoch counts: an x, statistic, log axis or reference
        // line of a score figure was ignored without a word (epochs drawn on a log axis).
        if f.query == "probe" {
            var wrong: [String] = []
            if f.x != "epoch" { wrong.append("x '\(f.x)' (a probe is drawn per epoch: x epoch)") }
            if f.stat == "minmax" { wrong.append("stat minmax (a probe's counts are drawn as their mean over seeds)") }
            if f.logx == true { wrong.append("logx") }
            if !(f.references ?? []).isEmpty { wrong.append("references") }
            if !wrong.isEmpty { throw StoreError("\(path): query probe does not draw " + wrong.joined(separator: ", ")) }
        } else if f.x == "epoch" {
            throw StoreError("\(path): x 'epoch' is the probe's axis (query: probe); a score figure plots k, r or n")
        }
        for (i, p) in f.panels.enumerated() where p != "avg" && !TaskRegistry.names.contains(p) {
            throw StoreError("\(path): panels[\(i)]: unknown task '\(p)'\(didYouMean(p, TaskRegistry.names)) (or avg)")
        }
        // An empty list drew nothing and divided by zero columns when laid out.
        if f.panels.isEmpty { throw StoreError("\(path): panels must list at least one task (or avg)") }
        return f
    }

    /// What names nothing of its spec (a series or reference variant, the model column, a panel's
    /// task): such a series or panel would be drawn empty. One line each; empty when all match.
    public func problems(variants: [String], models: [String], tasks: [String]) -> [String] {
        var out: [String] = []
        for (i, s) in series.enumerated() where !variants.contains(s.variant) {
            out.append("series[\(i)]: spec \(spec) has no variant '\(s.variant)'\(didYouMean(s.variant, variants))")
        }
        for (i, s) in (references ?? []).enumerated() where !variants.contains(s.variant) {
            out.append("references[\(i)]: spec \(spec) has no variant '\(s.variant)'\(didYouMean(s.variant, variants))")
        }
        if let model, !models.contains(model) { out.append("model: spec \(spec) has no model column '\(model)'\(didYouMean(model, models))") }
        for (i, p) in panels.enumerated() where p != "avg" && !tasks.contains(p) {
            out.append("panels[\(i)]: spec \(spec) has no task '\(p)'\(didYouMean(p, tasks))")
        }
        return out
    }
}

/// A cell a spec plans (from its expansion; `Reports` reads no spec): where a figure's line
/// must break when the cell has no result.
public struct PlannedCell: Hashable, Sendable {
    public var variant, task, model: String
    public var k: Int?
    public init(variant: String, task: String, model: String, k: Int?) { (self.variant, self.task, self.model, self.k) = (variant, task, model, k) }
    /// Its x on a figure's axis, as `Figures.xValue` reads a cell's.
    func x(_ key: String) -> Double? {
        Figures.xValue(CellResult(cell: "", variant: variant, method: "", task: task, model: model, k: k, seeds: [], statuses: [:],
                                  trainableParams: nil, best: [:], last: [:], divergedSeeds: [], probe: nil), key, defaults: [:]) ?? (key == "k" ? nil : 0)
    }
}

public enum Figures {
    /// One plotted value: x, the mean and min–max over seeds, the seeds it averages (`n`; for "avg"
    /// the fewest of its tasks) and whether some of the cell's runs failed and are left out.
    struct Point {
        var x: Double; var mean: Double; var lo: Double; var hi: Double; var n = 0; var failed = false
        /// Every output of every seed named no label (the tables' "[100% invalid]"): the score is 0 by
        /// the metric's rule, not a measured level (for "avg": every task's cell).
        var allInvalid = false
    }

    /// x of a cell: k from the cell; r or n from a "-r10" / "-n20" variant suffix, else from `defaults`.
    static func xValue(_ c: CellResult, _ key: String, defaults: [String: Double]) -> Double? {
        if key == "k" { return c.k.map(Double.init) }
        if let r = c.variant.range(of: "-\(key)", options: .backwards), let v = Double(c.variant[r.upperBound...]) { return v }
        return defaults[key]
    }

    public static func baseVariant(_ v: String) -> String {
        if let r = v.range(of: #"-[a-z]+\d+$"#, options: .regularExpression) { return String(v[..<r.lowerBound]) }
        return v
    }

    /// Whether a cell's variant belongs to the series or reference named `name`: the spec method
    /// whose `vary` made it (`dpt-bottleneck` for `dpt-bottleneck-r10`), or that one point by its
    /// full name (a reference `pt-length-n100`: PT at the series' prompt length; it matched nothing
    /// and the key said "no runs").
    static func belongs(_ cellVariant: String, to name: String) -> Bool { cellVariant == name || baseVariant(cellVariant) == name }

    /// A series' points in one panel, sorted by x. An x where the series has a cell of the panel's
    /// task without a score (its runs failed or diverged), or for "avg" where some task of the spec
    /// has none, is a gap (a NaN point, written as a break in the line): the line never joins its
    /// neighbours across it, and "avg" is never the mean of fewer tasks.
    /// - Throws: `StoreError` when two cells of the series give the same point (the same task and
    ///   x from different model columns or few-shot sizes: the figure names no `model`, or x is not
    ///   k while the spec plans several k); one of them was silently dropped before.
    static func points(_ f: FigureSpec, cells: [CellResult], variant: String, panel: String, tasks: [String],
                       planned: [PlannedCell] = [], reference: Bool = false) throws -> [Point] {
        let mine = cells.filter { belongs($0.variant, to: variant) && (f.model == nil || $0.model == f.model!) }
        // A series' x comes from its variants' names ("-r10"); a variant without one was drawn at
        // x = 0 without a word. A reference without it is a level line (its x is not drawn).
        if !reference, f.x != "k", let c = mine.first(where: { xValue($0, f.x, defaults: [:]) == nil }) {
            throw StoreError("figure \(f.figure): series \(variant): variant \(c.variant) has no '-\(f.x)<value>' suffix, and x \(f.x) is read from the variant names (a spec method with `vary: {\(f.x): [...]}` makes them; a single setting belongs in `references`)")
        }
        var byX: [Double: [String: Stat]] = [:]
        var failedAt: [Double: Bool] = [:]
        var cellAt: [Double: [String: CellResult]] = [:]
        /// Whether every seed's every best-epoch output of the cell named no label.
        func allInvalid(_ c: CellResult?) -> Bool {
            guard let inv = c?.invalidFraction?["best"], inv.n > 0 else { return false }
            return inv.min >= 1 - 1e-9
        }
        for c in mine {
            guard let x = xValue(c, f.x, defaults: [:]) ?? (f.x == "k" ? nil : 0) else { continue }
            if let other = cellAt[x]?[c.task] {
                let what = other.model != c.model ? "model columns \(other.model) and \(c.model) (name one with `model:`)"
                    : other.k != c.k ? "k = \(other.k.map(String.init) ?? "full") and k = \(c.k.map(String.init) ?? "full") (plot x: k, or a spec with one k)"
                    : "variants \(other.variant) and \(c.variant) differ in a setting that is not the x axis \(f.x) (plot x by the setting their names vary)"
                throw StoreError("figure \(f.figure): cells \(other.cell) and \(c.cell) are both series \(variant), task \(c.task) at \(f.x) = \(fmt(x)): \(what)")
            }
            cellAt[x, default: [:]][c.task] = c
            guard let metric = try? TaskRegistry.definition(c.task).selectionMetric, let st = c.best[metric], st.n > 0 else { continue }
            byX[x, default: [:]][c.task] = st
            if c.failureMarker != nil && (panel == "avg" || panel == c.task) { failedAt[x] = true }
        }
        var out: [Point] = []
        let gap = { (x: Double) in Point(x: x, mean: .nan, lo: .nan, hi: .nan) }
        // An x the spec plans for this series and panel but no cell of the panel has (never run,
        // or an export's cell left out as stale) is a gap too: the line joined its neighbours
        // across it (a per-task panel's x counted as present when another task had a cell there).
        let plannedX = Set(planned.filter { p in belongs(p.variant, to: variant) && (f.model == nil || p.model == f.model!)
                                              && (panel == "avg" || p.task == panel) }
                                  .compactMap { p in p.x(f.x) })
        let presentX = Set(cellAt.filter { panel == "avg" || $0.value[panel] != nil }.keys)
        for x in plannedX.subtracting(presentX) { out.append(gap(x)) }
        for x in cellAt.keys {
            let stats = byX[x] ?? [:]
            if panel == "avg" {
                let present = tasks.compactMap { stats[$0] }
                guard present.count == tasks.count else { out.append(gap(x)); continue }
                let m = present.map(\.mean).reduce(0, +) / Double(present.count)
                out.append(Point(x: x, mean: m, lo: m, hi: m, n: present.map(\.n).min() ?? 0, failed: failedAt[x] ?? false,
                                 allInvalid: tasks.allSatisfy { allInvalid(cellAt[x]?[$0]) }))
            } else if let st = stats[panel] {
                out.append(Point(x: x, mean: st.mean, lo: st.min, hi: st.max, n: st.n, failed: failedAt[x] ?? false,
                                 allInvalid: allInvalid(cellAt[x]?[panel])))
            } else if cellAt[x]?[panel] != nil {
                out.append(gap(x))
            }
        }
        return out.sorted { $0.x < $1.x }
    }

    static func fmt(_ x: Double) -> String { x == x.rounded() ? String(Int(x)) : String(x) }

    /// Writes NAME.dat, NAME.gp, NAME.png, NAME.svg under `outDir`; returns the image paths.
    /// `planned`: the cells the spec plans (an x without a cell is a gap); `setting`: what the
    /// profile runs instead of the paper's setting (a stand-in model, k), a line of the title.
    public static func render(_ f: FigureSpec, cells: [CellResult], tasks: [String], profile: String, outDir: String,
                              planned: [PlannedCell] = [], setting: String? = nil, gnuplot: String = "gnuplot") throws -> [String] {
        try FileManager.default.createDirectory(atPath: outDir, withIntermediateDirectories: true)
        var data = "# \(f.figure): \(f.title) — profile \(profile)\n"
        var index = 0
        var plots: [String] = []
        let minmax = f.stat == "minmax"
        var seedCounts: [Int] = [], failedPoints = 0, maxEpoch = 0, invalidPoints = 0, drawnPoints = 0
        var xs: Set<Double> = []
        let named = f.series.map(\.variant) + (f.references ?? []).map(\.variant)
        /// Whether the figure draws cell `c`'s variant and model column (its task aside).
        func drawsVariant(_ c: CellResult) -> Bool {
            (f.model == nil || c.model == f.model!) && (f.query == "probe" ? c.method == "probe" : named.contains { belongs(c.variant, to: $0) })
        }
        /// Why a series or reference has no scored point in a panel: cells whose runs failed, or none.
        func failedOrMissing(_ variant: String, _ panel: String) -> String {
            cells.contains { belongs($0.variant, to: variant) && (f.model == nil || $0.model == f.model!)
                             && (panel == "avg" || $0.task == panel) && $0.failureMarker != nil } ? "runs failed" : "no runs"
        }
        for panel in f.panels {
            var parts: [String] = []
            var hasPoints = false
            var panelYs: [Double] = []
            if f.query == "probe" {
                let c = cells.first { $0.method == "probe" && $0.task == panel && (f.model == nil || $0.model == f.model!) }
                for (label, key) in [("positive Σ entries", 0), ("negative Σ entries", 1), ("rank(P)", 2)] {
                    let pts = c?.probe ?? []
                    data += "# panel \(panel) series \(label)\n"
                    for p in pts {
                        let y = [p.positive, p.negative, p.rank][key]
                        data += "\(p.epoch) \(y)\n"; maxEpoch = max(maxEpoch, p.epoch)
                        panelYs.append(Double(y))
                    }
                    if let c, !pts.isEmpty { seedCounts.append(c.seeds.count) }
                    hasPoints = hasPoints || !pts.isEmpty
                    if pts.isEmpty { data += "NaN NaN\n" }
                    data += "\n\n"
                    parts.append("'\(f.figure).dat' index \(index) using 1:2 with linespoints lc \(key + 1) title \(Gnuplot.quoted(label))")
                    index += 1
                }
            } else {
                // Colours follow each series' and reference's place in the figure file, not its place
                // in a panel's plot: a series missing from one panel shifted the others' colours there.
                for (si, s) in f.series.enumerated() {
                    let pts = try points(f, cells: cells, variant: s.variant, panel: panel, tasks: tasks, planned: planned)
                    data += "# panel \(panel) series \(s.label): x mean min max n (seeds) failed (1: failed runs left out)\n"  // a blank line within: a gap
                    var written = 0, lastBlank = false
                    for p in pts {
                        if p.mean.isNaN {  // one blank line breaks gnuplot's line (two would end the block)
                            if written > 0 && !lastBlank { data += "\n"; lastBlank = true }
                        } else {
                            data += "\(p.x) \(p.mean) \(p.lo) \(p.hi) \(p.n) \(p.failed ? 1 : 0)\n"
                            written += 1
                            drawnPoints += 1
                            if p.allInvalid { invalidPoints += 1 }
                            xs.insert(p.x)
                            panelYs.append(contentsOf: minmax ? [p.mean, p.lo, p.hi] : [p.mean])
                            lastBlank = false
                            seedCounts.append(p.n)
                            if p.failed { failedPoints += 1 }
                        }
                    }
                    hasPoints = hasPoints || written > 0
                    if written == 0 { data += "NaN NaN NaN NaN 0 0\n" }
                    data += "\n\n"
                    // A series without a scored point says why in the key (it vanished): its runs
                    // failed, or it has none (not run, or an export's cells left out as stale).
                    let title = written == 0 ? "\(s.label): \(failedOrMissing(s.variant, panel))" : s.label
                    parts.append("'\(f.figure).dat' index \(index) using 1:2\(minmax ? ":3:4 with yerrorlines" : " with linespoints") lc \(si + 1) title \(Gnuplot.quoted(title))")
                    index += 1
                }
                for (ri, r) in (f.references ?? []).enumerated() {
                    let lc = f.series.count + ri + 1
                    // A reference with one point (a method without the x, e.g. PT in an r sweep) is a
                    // level line; with several (PT at each k) a dashed line through them, as the
                    // first point's level misstated the others.
                    // A point whose runs failed is a gap in the line, as in a series (a failed
                    // reference drawn at another x's level misstated it).
                    let pts = try points(f, cells: cells, variant: r.variant, panel: panel, tasks: tasks, planned: planned, reference: true)
                    for p in pts where !p.mean.isNaN {
                        seedCounts.append(p.n); if p.failed { failedPoints += 1 }
                        drawnPoints += 1; if p.allInvalid { invalidPoints += 1 }
                        panelYs.append(p.mean)
                    }
                    if pts.allSatisfy({ $0.mean.isNaN }) {
                        // Nothing scored: the key says why instead of the line vanishing without a word.
                        parts.append("1/0 with lines dashtype 2 lc \(lc) title \(Gnuplot.quoted("\(r.label): \(failedOrMissing(r.variant, panel))"))")
                    } else if pts.count == 1, !pts[0].mean.isNaN {
                        parts.append("\(pts[0].mean) with lines dashtype 2 lc \(lc) title \(Gnuplot.quoted(r.label))")
                    } else if pts.contains(where: { !$0.mean.isNaN }) && pts.count > 1 {
                        data += "# panel \(panel) reference \(r.label): x mean\n"
                        var lastBlank = true
                        for p in pts {
                            if p.mean.isNaN {
                                if !lastBlank { data += "\n"; lastBlank = true }
                            } else {
                                data += "\(p.x) \(p.mean)\n"
                                lastBlank = false
                            }
                        }
                        data += "\n\n"
                        // linespoints: a point between gaps (or the one scored point) stays visible.
                        parts.append("'\(f.figure).dat' index \(index) using 1:2 with linespoints dashtype 2 lc \(lc) title \(Gnuplot.quoted(r.label))")
                        index += 1
                    }
                }
            }
            var p = "set title \(Gnuplot.quoted(panel == "avg" ? "average over tasks" : panel))\n"
            if hasPoints {
                // Every drawn value equal (a smoke run's zeros): gnuplot warned of an empty y range
                // and drew −1…1 (negative scores); the range is then the value to value + 1, with a
                // twentieth below so that the line stays off the frame (value − 1 when negative).
                if let lo = panelYs.min(), let hi = panelYs.max(), lo == hi {
                    p += "set yrange [\(lo >= 0 ? lo - 0.05 : lo - 1):\(hi + 1)]\n"
                } else {
                    p += "set autoscale y\n"
                }
                p += "unset label 1\nplot " + parts.joined(separator: ", \\\n     ") + "\n"
            } else {  // nothing to draw: an empty frame that says why
                let panelCells = cells.filter { c in (c.task == panel || panel == "avg") && drawsVariant(c) }
                let why = panelCells.isEmpty ? "no runs" : "no finished runs (\(panelCells.compactMap(\.failureMarker).first ?? "none scored"))"
                p += "set label 1 \(Gnuplot.quoted("\(why) of spec \(f.spec)\(f.model.map { ", model \($0)," } ?? "") in profile \(profile)")) at graph 0.5,0.5 center\n"
                p += "plot [1:10] [0:1] 1/0 notitle\n"
            }
            plots.append(p)
        }
        // Up to 3 panels a row, four as 2 × 2 (3 columns left two of six slots empty).
        let cols = f.panels.count == 4 ? 2 : min(3, f.panels.count), rows = (f.panels.count + cols - 1) / cols
        let (w, h) = (max(640, 420 * cols), 340 * rows + 60)
        var note = profile == "smoke" ? "profile smoke: embedded random-weight backbone, reproduces nothing" : "profile \(profile)"
        if let setting { note += "; " + setting }
        var noteLines: [String] = []
        // Tasks whose drawn runs read a subset of the official split (the tables' "Subset data"
        // note): an average over tasks (fig4's avg panel) mixes them in.
        // The cells the figure draws: its panels' tasks (every task of an average panel), its
        // series' and references' variants, its model column.
        let panelTasks = Set(f.panels.flatMap { $0 == "avg" ? tasks : [$0] })
        let drawnCells = cells.filter { c in panelTasks.contains(c.task) && drawsVariant(c) }
        let subsetTasks = Set(drawnCells.map(\.task)).sorted().filter { task in
            guard let def = try? TaskRegistry.definition(task) else { return false }
            let subsets = Set(def.files.train.dropFirst() + def.files.validation.dropFirst())
            return drawnCells.contains { $0.task == task && ($0.dataFiles ?? []).contains(where: subsets.contains) }
        }
        if !subsetTasks.isEmpty { noteLines.append("subset data (part of the official split; SOURCES.md): " + subsetTasks.joined(separator: ", ")) }
        // The seeds behind the points (the tables' ‡ and ✗): one seed draws min-max bars of zero width.
        if let lo = seedCounts.min(), let hi = seedCounts.max() {
            noteLines.append("\(lo == hi ? "\(lo)" : "\(lo)-\(hi)") seed\(hi == 1 ? "" : "s") per point\(lo < 3 ? " (fewer than 3)" : "")"
                + (failedPoints > 0 ? "; \(failedPoints) point\(failedPoints == 1 ? "" : "s") leave out failed runs" : ""))
        }
        // Points whose every output named no label (the tables' "[100% invalid]") are drawn at the
        // metric's 0 like any score; the title says how many (they read as measured zeros).
        if invalidPoints > 0 {
            noteLines.append("\(invalidPoints) of \(drawnPoints) points: every output named no label (100% invalid, scored 0)")
        }
        var body = "set multiplot layout \(rows),\(cols) title " + Gnuplot.quoted(lines: [f.title, note] + noteLines) + "\n"
        body += "set xlabel \(Gnuplot.quoted(f.xlabel))\nset ylabel \(Gnuplot.quoted(f.ylabel))\nset key \(f.query == "probe" ? "center right" : "bottom right")\nset grid\n"
        body += "set offsets graph 0.05, graph 0.05, graph 0.1, graph 0.1\n"
        // Whole epochs only: '%.0f' alone relabelled gnuplot's half-epoch ticks (0 1 2 2 2 3 4 4 4).
        if f.x == "epoch" { body += "set format x '%.0f'\nset xtics \(max(1, (maxEpoch + 9) / 10))\n" }
        // A few whole-number x values (k, n, r): ticks at those values (gnuplot's own put n 6 and
        // 10 among 6.5, 7, 7.5, …).
        else if !xs.isEmpty, xs.count <= 12, xs.allSatisfy({ $0 == $0.rounded() && abs($0) < 1e12 }) {
            body += "set xtics (" + xs.sorted().map { fmt($0) }.joined(separator: ", ") + ")\n"
        }
        if f.logx == true { body += "set logscale x\n" }
        body += plots.joined() + "unset multiplot\n"
        try Gnuplot.render(name: f.figure, data: data, body: body, width: w, height: h, outDir: outDir,
                           generator: "promptrepro figures", gnuplot: gnuplot)
        return ["\(outDir)/\(f.figure).png", "\(outDir)/\(f.figure).svg"]
    }
}

/// Writes NAME.dat and NAME.gp (the plot `body` twice: pngcairo, then SVG, fixed fonts and sizes)
/// under `outDir` and runs gnuplot there; errors name the script and say how to install gnuplot.
enum Gnuplot {
    /// `text` as a gnuplot single-quoted string: a quote inside is doubled (gnuplot's rule), and
    /// nothing else is special there (a label "P'T" ended the string and broke the script).
    static func quoted(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: "'", with: "''") + "'"
    }

    /// `lines` as one gnuplot double-quoted string, joined by its "\n" escape: a backslash, double
    /// quote or backquote inside a line is escaped (gnuplot runs `…` in double quotes as a shell
    /// command: a figure title could run one), a newline inside one becomes a space.
    static func quoted(lines: [String]) -> String {
        "\"" + lines.map { $0.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "`", with: "\\`").replacingOccurrences(of: "\n", with: " ") }.joined(separator: "\\n") + "\""
    }

    /// Renders in a scratch directory inside `outDir` and renames the four files into place only
    /// when gnuplot succeeded and wrote all of them: a failing script had already opened NAME.png,
    /// truncating a committed image to 0 bytes while the SVG stayed stale. A failed render changes
    /// nothing under `outDir` (the renames, on one file system, do not fail in practice; one that
    /// did would leave the files before it renamed).
    static func render(name: String, data: String, body: String, width: Int, height: Int, outDir: String, generator: String,
                       gnuplot: String = "gnuplot") throws {
        var script = "# generated by \(generator) — data in \(name).dat\n"
        script += "set terminal pngcairo size \(width),\(height) font 'DejaVu Sans,10' noenhanced\nset output '\(name).png'\n" + body
        script += "set terminal svg size \(width),\(height) font 'DejaVu Sans,10' noenhanced\nset output '\(name).svg'\n" + body
        let fm = FileManager.default
        let scratch = "\(outDir)/.render-\(name)-\(getpid())"
        try? fm.removeItem(atPath: scratch)
        try fm.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? fm.removeItem(atPath: scratch) }
        try data.write(toFile: "\(scratch)/\(name).dat", atomically: true, encoding: .utf8)
        try script.write(toFile: "\(scratch)/\(name).gp", atomically: true, encoding: .utf8)
        let proc = Process()
        proc.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        proc.arguments = [gnuplot, "\(name).gp"]
        proc.currentDirectoryURL = URL(fileURLWithPath: scratch)
        let err = Pipe()
        proc.standardError = err
        do { try proc.run() } catch { throw StoreError("cannot run gnuplot (install gnuplot-nox: `make deps`): \(error)") }
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        proc.waitUntilExit()
        guard proc.terminationStatus == 0 else {
            throw StoreError("\(outDir)/\(name).gp: gnuplot failed (nothing under \(outDir) changed): \(message)")
        }
        // Every file checked before any is moved: all four land, or none.
        for ext in ["dat", "gp", "png", "svg"] where !fm.fileExists(atPath: "\(scratch)/\(name).\(ext)") {
            throw StoreError("\(outDir)/\(name).gp: \(gnuplot) exited 0 but wrote no \(name).\(ext); nothing under \(outDir) changed")
        }
        for ext in ["dat", "gp", "png", "svg"] {
            // rename(2) replaces the old file in one step (Foundation's replaceItemAt failed here).
            guard rename("\(scratch)/\(name).\(ext)", "\(outDir)/\(name).\(ext)") == 0 else {
                throw StoreError("\(outDir)/\(name).\(ext): cannot move the rendered file into place: \(String(cString: strerror(errno)))")
            }
        }
    }
}
