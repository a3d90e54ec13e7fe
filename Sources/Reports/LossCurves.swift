// Loss curves from the per-step training log (store table `steps`): one figure per cell, the mean
// training loss over seeds at each optimizer step with the min–max band of the seeds, rendered
// with gnuplot (PNG + SVG) like the paper figures; and the step log as CSV / JSON Lines.
import Foundation
import Store

public struct StepRow: Sendable {
    public var cell: String, seed: Int, step: Int, epoch: Int, loss: Double, gradNorm: Double, seconds: Double, lr: String
}

public enum LossCurves {
    /// Every logged step of the current (not superseded) finished runs of a spec/profile, ordered by
    /// cell, seed, step; with `planned`, of the runs that count for the spec's current plan only
    /// (`PlannedRuns.staleReason`).
    public static func rows(_ store: ResultsStore, spec: String, profile: String, planned: PlannedRuns? = nil) throws -> [StepRow] {
        let counted = try planned.map { plan in
            Set(try store.db.query("SELECT id, cell, seed, IFNULL(sample_seed, seed) AS sample_seed, status, config_json, \(store.identityColumn) FROM runs WHERE spec=? AND profile=? AND status IN ('done','diverged')",
                                   [.text(spec), .text(profile)]).filter { plan.staleReason(row: $0) == nil }.map { $0["id"]!.int! })
        }
        return try store.db.query("""
            SELECT runs.id, runs.cell, runs.seed, steps.step, steps.epoch, steps.loss, steps.grad_norm, steps.seconds, steps.lr_json
            FROM steps JOIN runs ON runs.id = steps.run_id
            WHERE runs.spec=? AND runs.profile=? AND runs.status IN ('done','diverged') ORDER BY runs.cell, runs.seed, steps.step
            """, [.text(spec), .text(profile)]).filter { counted?.contains($0["id"]!.int!) ?? true }.map { r in
            StepRow(cell: r["cell"]!.text!, seed: r["seed"]!.int!, step: r["step"]!.int!, epoch: r["epoch"]!.int!, loss: r["loss"]!.double!,
                    gradNorm: r["grad_norm"]!.double!, seconds: r["seconds"]!.double!, lr: r["lr_json"]?.text ?? "[]")
        }
    }

    /// CSV with a header row (pandas.read_csv reads it as is); `lr` is the first group's rate.
    public static func csv(_ rows: [StepRow]) -> String {
        var s = "cell,seed,step,epoch,loss,grad_norm,lr,seconds\n"
        for r in rows {
            let lr = (try? JSONSerialization.jsonObject(with: Data(r.lr.utf8)) as? [Double])?.first ?? .nan
            s += "\"\(r.cell.replacingOccurrences(of: "\"", with: "\"\""))\",\(r.seed),\(r.step),\(r.epoch),\(r.loss),\(r.gradNorm),\(lr),\(r.seconds)\n"
        }
        return s
    }

    /// JSON Lines, one object per step (pandas.read_json(lines=True)).
    public static func jsonl(_ rows: [StepRow]) throws -> String {
        try rows.map { r in
            let lr = (try? JSONSerialization.jsonObject(with: Data(r.lr.utf8))) ?? []
            let o: [String: Any] = ["cell": r.cell, "seed": r.seed, "step": r.step, "epoch": r.epoch, "loss": r.loss,
                                    "grad_norm": r.gradNorm, "lr": lr, "seconds": r.seconds]
            return String(decoding: try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]), as: UTF8.self)
        }.joined(separator: "\n") + (rows.isEmpty ? "" : "\n")
    }

    /// Per step: (step, mean, min, max) of the loss over the seeds that logged that step.
    public static func band(_ rows: [StepRow]) -> [(Int, Double, Double, Double)] {
        var by: [Int: [Double]] = [:]
        for r in rows { by[r.step, default: []].append(r.loss) }
        return by.keys.sorted().map { s in
            let v = by[s]!
            return (s, v.reduce(0, +) / Double(v.count), v.min()!, v.max()!)
        }
    }

    /// Writes `<outDir>/<cell>.{dat,gp,png,svg}` per cell (cell names with `|` become `_`); returns the PNGs.
    public static func render(_ rows: [StepRow], spec: String, profile: String, outDir: String, gnuplot: String = "gnuplot") throws -> [String] {
        try FileManager.default.createDirectory(atPath: outDir, withIntermediateDirectories: true)
        var out: [String] = []
        var byCell: [String: [StepRow]] = [:]
        for r in rows { byCell[r.cell, default: []].append(r) }
        for cell in byCell.keys.sorted() {
            let name = cell.replacingOccurrences(of: "|", with: "_")
            let cellRows = byCell[cell]!
            let seeds = Set(cellRows.map(\.seed)).count
            var data = "# \(spec) [\(profile)] \(cell): step mean min max over \(seeds) seed(s)\n"
            for (s, m, lo, hi) in band(cellRows) { data += "\(s) \(m) \(lo) \(hi)\n" }
            let note = profile == "smoke" ? "profile smoke: embedded random-weight backbone, reproduces nothing" : "profile \(profile)"
            var body = "set title " + Gnuplot.quoted(lines: ["\(cell) — training loss, mean and min–max over \(seeds) seed\(seeds == 1 ? "" : "s")", note]) + "\n"
            body += "set xlabel 'optimizer step'\nset ylabel 'training loss'\nset grid\nset key top right\n"
            body += "plot '\(name).dat' using 1:3:4 with filledcurves fillcolor rgb '#c8d8f0' title 'min–max over seeds', "
            body += "'' using 1:2 with lines linewidth 2 linecolor rgb '#1f4e9c' title 'mean'\n"
            try Gnuplot.render(name: name, data: data, body: body, width: 640, height: 420, outDir: outDir,
                               generator: "promptrepro loss-curves", gnuplot: gnuplot)
            out.append("\(outDir)/\(name).png")
        }
        return out
    }
}
