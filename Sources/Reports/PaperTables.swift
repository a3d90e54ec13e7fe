// Markdown (and LaTeX) tables that mirror the papers' tables: same rows, columns, order and headers,
// the trainable-parameter column from our own counts, published value beside our mean ± std over
// seeds and Δ. Cells from the smoke profile or with fewer than 3 seeds are marked.
import Foundation
import Methods
import Models
import Store
import Tasks

public struct TableLayout {
    public struct Row { public var variant: String; public var label: String; public var publishedMethod: String }
    public struct Column { public var key: String; public var label: String; public var metric: String? }
    public enum Kind { case score, std }

    public var name: String            // Reports/<name>.md
    public var title: String
    public var spec: String
    public var publishedTable: String  // "Table 1"
    public var paper: String
    public var sections: [(column: String, label: String)]
    public var rows: [Row]
    public var columns: [Column]
    public var average: Bool
    public var kind: Kind
    public var paramsColumn: Bool
}

public enum PaperTables {
    static let superglue: [TableLayout.Column] = [
        .init(key: "wsc", label: "WSC", metric: "accuracy"), .init(key: "wic", label: "WiC", metric: "accuracy"),
        .init(key: "boolq", label: "BoolQ", metric: "accuracy"), .init(key: "cb", label: "CB", metric: "accuracy"),
        .init(key: "copa", label: "COPA", metric: "accuracy"), .init(key: "multirc", label: "MultiRC", metric: "f1a"),
        .init(key: "record", label: "ReCoRD", metric: "f1"), .init(key: "rte", label: "RTE", metric: "accuracy"),
    ]
    static let t5Sections = [("t5-small", "T5-Small"), ("t5-base", "T5-Base"), ("t5-large", "T5-Large")]

    public static let layouts: [TableLayout] = [
        TableLayout(name: "table1", title: "DPT Table 1 — SuperGLUE validation (best epoch, mean over 3 seeds)", spec: "table1",
                    publishedTable: "Table 1", paper: "dpt", sections: t5Sections,
                    rows: [.init(variant: "ft", label: "Fine-Tuning", publishedMethod: "ft"), .init(variant: "pt", label: "Prompt Tuning", publishedMethod: "pt"),
                           .init(variant: "respt", label: "Residual PT", publishedMethod: "respt"), .init(variant: "dpt", label: "DPT (ours in the paper)", publishedMethod: "dpt")],
                    columns: superglue, average: true, kind: .score, paramsColumn: true),
        TableLayout(name: "table3", title: "DPT Table 3 — standard deviation over three runs", spec: "table1",
                    publishedTable: "Table 3", paper: "dpt", sections: t5Sections,
                    rows: [.init(variant: "pt", label: "PT", publishedMethod: "pt"), .init(variant: "respt", label: "Res PT", publishedMethod: "respt"),
                           .init(variant: "dpt", label: "DPT", publishedMethod: "dpt")],
                    columns: superglue, average: false, kind: .std, paramsColumn: false),
        TableLayout(name: "table4", title: "DPT Table 4 — Residual PT with 10 prompt tokens", spec: "table4",
                    publishedTable: "Table 4", paper: "dpt", sections: t5Sections,
                    rows: [.init(variant: "respt10", label: "Residual PT (n=10)", publishedMethod: "respt")],
                    columns: superglue, average: true, kind: .score, paramsColumn: true),
        TableLayout(name: "lopt-table1", title: "LoPT Table 1 — GPT-2 large, n = 10, r = 2", spec: "lopt-table1",
                    publishedTable: "Table 1", paper: "lopt", sections: [("gpt2-large", "GPT-2 large")],
                    rows: [.init(variant: "pt", label: "No LoPT", publishedMethod: "pt"), .init(variant: "lopt1", label: "LoPT-1", publishedMethod: "lopt1"),
                           .init(variant: "lopt2", label: "LoPT-2", publishedMethod: "lopt2")],
                    columns: [.init(key: "sst2", label: "SST-2", metric: "accuracy"), .init(key: "agnews", label: "AGNews", metric: "accuracy")],
                    average: false, kind: .score, paramsColumn: true),
        TableLayout(name: "lopt-table2", title: "LoPT Table 2 — T5-Base, SST-2 and SuperGLUE", spec: "lopt-table2",
                    publishedTable: "Table 2", paper: "lopt", sections: [("t5-base", "T5-Base")],
                    rows: [.init(variant: "ft", label: "Fine-tuning", publishedMethod: "ft"), .init(variant: "lora", label: "LoRA", publishedMethod: "lora"),
                           .init(variant: "pt", label: "PT", publishedMethod: "pt"), .init(variant: "dept", label: "DePT", publishedMethod: "dept"),
                           .init(variant: "lopt1", label: "LoPT-1", publishedMethod: "lopt1"), .init(variant: "lopt2", label: "LoPT-2", publishedMethod: "lopt2")],
                    columns: [.init(key: "sst2", label: "SST-2", metric: "accuracy"), .init(key: "boolq", label: "BoolQ", metric: "accuracy"),
                              .init(key: "rte", label: "RTE", metric: "accuracy"), .init(key: "wic", label: "WiC", metric: "accuracy"),
                              .init(key: "cb", label: "CB", metric: "accuracy")],
                    average: false, kind: .score, paramsColumn: true),
        TableLayout(name: "lopt-table3", title: "LoPT Table 3 — LoPT-1 ablation (SST-2, GPT-2 large)", spec: "lopt-table3",
                    publishedTable: "Table 3", paper: "lopt", sections: [("gpt2-large", "GPT-2 large")],
                    rows: [.init(variant: "pt", label: "n=10, no LoPT", publishedMethod: "pt-n10")]
                        + [10, 20, 30].flatMap { n in [1, 2, 5].map { r in .init(variant: "lopt1-n\(n)-r\(r)", label: "n=\(n), r=\(r)", publishedMethod: "lopt1-n\(n)-r\(r)") } },
                    columns: [.init(key: "sst2", label: "SST-2", metric: "accuracy")], average: false, kind: .score, paramsColumn: true),
    ]

    public static func layout(_ name: String) throws -> TableLayout {
        guard let l = layouts.first(where: { $0.name == name }) else {
            throw StoreError("unknown table '\(name)'; known: \(layouts.map(\.name).joined(separator: ", "))")
        }
        return l
    }

    static func f2(_ x: Double) -> String { String(format: "%.2f", x) }

    /// Our trainable count for a row from its spec variant and the section's architecture.
    static func ourParams(_ spec: ExperimentSpec?, variant: String, column: String) -> String {
        guard let spec, let v = spec.variants.first(where: { $0.name == variant }),
              var mc = try? MethodConfig.defaults(v.method), let arch = Architectures.known[column] else { return "—" }
        if let obj = try? JSONSerialization.jsonObject(with: JSONEncoder().encode(mc)) as? [String: Any] {
            var o = obj
            for (k, x) in v.overrides { o[k] = x }
            if let d = try? JSONSerialization.data(withJSONObject: o), let m2 = try? JSONDecoder().decode(MethodConfig.self, from: d) { mc = m2 }
        }
        guard let n = try? MethodRegistry.parameterCount(mc, architecture: arch) else { return "—" }
        return n.formatted()
    }

    /// Renders `layout` from the store's cells of (spec, profile) and the published values.
    public static func markdown(_ layout: TableLayout, cells: [CellResult], published: [PublishedValue], profile: String,
                                spec: ExperimentSpec?) -> String {
        let pub = published.filter { $0.paper == layout.paper && $0.table == layout.publishedTable }
        func pubValue(_ model: String, _ method: String, _ col: String) -> PublishedValue? {
            pub.first { $0.model.lowercased() == model.lowercased() && $0.method == method && $0.column == col }
        }
        var out = "# \(layout.title)\n\n"
        let smoke = profile == "smoke"
        out += "Profile: **\(profile)**\(smoke ? " — embedded random-weight backbone; our numbers test the pipeline and **reproduce nothing**" : "")."
        out += " Each cell: published value / ours as mean ± sample std over seeds of the best-epoch validation score, (Δ = ours − published)."
        out += " † smoke profile; ‡ fewer than 3 seeds; — not run in this profile.\n"
        if layout.kind == .std { out += "Ours here is the sample standard deviation (n − 1) over seeds; the population value is in `promptrepro results --format csv`.\n" }
        out += "\n"
        var header = "| Model |" + (layout.paramsColumn ? " # Trainable Params (paper / ours) |" : "")
        header += layout.columns.map { " \($0.label) |" }.joined() + (layout.average ? " Avg. |" : "")
        let ncols = 1 + (layout.paramsColumn ? 1 : 0) + layout.columns.count + (layout.average ? 1 : 0)
        out += header + "\n|" + String(repeating: "---|", count: ncols) + "\n"
        for (column, label) in layout.sections {
            out += "| **\(label)** |" + String(repeating: " |", count: ncols - 1) + "\n"
            for row in layout.rows {
                var line = "| \(row.label) |"
                if layout.paramsColumn {
                    let p = pubValue(label, row.publishedMethod, "params")?.value ?? pubValue(column, row.publishedMethod, "params")?.value ?? "—"
                    line += " \(p) / \(ourParams(spec, variant: row.variant, column: column)) |"
                }
                var ourMeans: [Double] = [], pubNums: [Double] = []
                for col in layout.columns {
                    let p = (pubValue(label, row.publishedMethod, col.key) ?? pubValue(column, row.publishedMethod, col.key))
                    let cell = cells.first { $0.variant == row.variant && $0.task == col.key && $0.model == column }
                    let stat = cell.flatMap { $0.best[col.metric ?? "accuracy"] }
                    var text = p?.value ?? "—"
                    if let stat, stat.n > 0 {
                        let ours = layout.kind == .std ? (stat.sampleStd ?? .nan) : stat.mean
                        ourMeans.append(stat.mean)
                        var o = layout.kind == .std ? (ours.isNaN ? "n/a" : f2(ours)) : "\(f2(stat.mean)) ± \(f2(stat.sampleStd ?? 0))"
                        if smoke { o += "†" }
                        if stat.n < 3 { o += "‡" }
                        if let pv = p?.number, !ours.isNaN { o += " (Δ \(ours - pv >= 0 ? "+" : "")\(f2(ours - pv)))" }
                        text += " / \(o)"
                    } else {
                        text += " / —"
                    }
                    if let pv = p?.number { pubNums.append(pv) }
                    if let d = cell?.divergedSeeds, !d.isEmpty { text += " [diverged: seeds \(d.map(String.init).joined(separator: ","))]" }
                    line += " \(text) |"
                }
                if layout.average {
                    let p = (pubValue(label, row.publishedMethod, "avg") ?? pubValue(column, row.publishedMethod, "avg"))?.value ?? "—"
                    let ours = ourMeans.count == layout.columns.count ? f2(ourMeans.reduce(0, +) / Double(ourMeans.count)) + (smoke ? "†" : "") : "—"
                    line += " \(p) / \(ours) |"
                }
                out += line + "\n"
            }
        }
        return out
    }

    /// The same table as LaTeX (booktabs), published / ours per cell.
    public static func latex(_ layout: TableLayout, cells: [CellResult], published: [PublishedValue], profile: String) -> String {
        let md = markdown(layout, cells: cells, published: published, profile: profile, spec: nil)
        var lines = md.split(separator: "\n").map(String.init).filter { $0.hasPrefix("|") && !$0.hasPrefix("|---") }
        guard !lines.isEmpty else { return "" }
        let header = lines.removeFirst()
        let n = header.split(separator: "|").count
        func esc(_ s: String) -> String {
            s.replacingOccurrences(of: "%", with: "\\%").replacingOccurrences(of: "±", with: "$\\pm$").replacingOccurrences(of: "Δ", with: "$\\Delta$")
                .replacingOccurrences(of: "†", with: "$^\\dagger$").replacingOccurrences(of: "‡", with: "$^\\ddagger$").replacingOccurrences(of: "**", with: "")
                .replacingOccurrences(of: "#", with: "\\#").replacingOccurrences(of: "_", with: "\\_")
        }
        func row(_ l: String) -> String { l.split(separator: "|", omittingEmptySubsequences: false).dropFirst().dropLast().map { esc($0.trimmingCharacters(in: .whitespaces)) }.joined(separator: " & ") }
        var out = "% \(layout.title) — profile \(profile)\n\\begin{tabular}{l" + String(repeating: "c", count: n - 1) + "}\n\\toprule\n"
        out += row(header) + " \\\\\n\\midrule\n"
        for l in lines { out += row(l) + " \\\\\n" }
        return out + "\\bottomrule\n\\end{tabular}\n"
    }
}
