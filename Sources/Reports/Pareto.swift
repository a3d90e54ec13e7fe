// Pareto figure (issue #20 item 7, after PEFT's method_comparison reports): per task, the
// selection metric at the best epoch (mean over seeds) against trainable parameters (log x) and
// against training seconds (train_seconds: optimizer steps, evaluation excluded), one point per
// cell; the Pareto front — cells no other cell beats with a higher score at no more cost — is
// drawn as a line. Data from `CellResult.extras` (run_metrics); cells without it are left out.
import Foundation
import Store
import Tasks

public enum Pareto {
    public struct Point: Equatable, Sendable {
        public var x: Double      // cost: lower is better
        public var y: Double      // score: higher is better
        public var label: String
        public init(x: Double, y: Double, label: String) { self.x = x; self.y = y; self.label = label }
    }

    /// The two cost axes: run_metrics name, axis label, log scale.
    static let axes: [(name: String, label: String, log: Bool)] = [
        ("trainable_params", "trainable parameters", true), ("train_seconds", "training seconds (mean over seeds)", false),
    ]

    /// Indices of the non-dominated points, by ascending cost (ties: higher score first). A point is
    /// dominated when another has cost ≤ its cost and score ≥ its score, one of the two strictly;
    /// equal points are both on the front.
    public static func front(_ pts: [Point]) -> [Int] {
        let on = pts.indices.filter { i in
            !pts.indices.contains { j in
                pts[j].x <= pts[i].x && pts[j].y >= pts[i].y && (pts[j].x < pts[i].x || pts[j].y > pts[i].y)
            }
        }
        return on.sorted { (pts[$0].x, -pts[$0].y) < (pts[$1].x, -pts[$1].y) }
    }

    /// One point per cell of `task` with a best-epoch selection score and the cost `measure`
    /// (trainable_params falls back to the runs' stored count). Labels name the variant, and the
    /// model and k when the task's cells differ in them.
    public static func points(_ cells: [CellResult], task: String, measure: String) -> [Point] {
        let mine = cells.filter { $0.task == task }
        let models = Set(mine.map(\.model)).count > 1, ks = Set(mine.map(\.k)).count > 1
        guard let metric = try? TaskRegistry.definition(task).selectionMetric else { return [] }
        return mine.compactMap { c in
            guard let s = c.best[metric], s.n > 0,
                  let x = c.extras?[measure]?.mean ?? (measure == "trainable_params" ? c.trainableParams.map(Double.init) : nil)
            else { return nil }
            let label = c.variant + (models ? " \(c.model)" : "") + (ks ? " k=\(c.k.map(String.init) ?? "full")" : "")
            return Point(x: x, y: s.mean, label: label)
        }
    }

    /// Writes pareto-SPEC.{dat,gp,png,svg} under `outDir` (rows: tasks; columns: the two cost
    /// axes); returns the image paths.
    public static func render(spec: String, cells: [CellResult], profile: String, outDir: String,
                              gnuplot: String = "gnuplot") throws -> [String] {
        try FileManager.default.createDirectory(atPath: outDir, withIntermediateDirectories: true)
        let name = "pareto-\(spec)"
        var tasks: [String] = []
        for c in cells where !tasks.contains(c.task) { tasks.append(c.task) }
        var data = "# \(name): best-epoch score (mean over seeds) against cost — profile \(profile)\n", plots = ""
        var index = 0
        for task in tasks {
            let metric = (try? TaskRegistry.definition(task).selectionMetric) ?? "score"
            for axis in axes {
                // log x: a cell with no trainable parameters (evaluation only) has no place on the axis
                let pts = points(cells, task: task, measure: axis.name).filter { !axis.log || $0.x > 0 }
                let on = front(pts)
                data += "# task \(task) x \(axis.name): x score label\n"
                for p in pts { data += "\(p.x) \(p.y) \"\(p.label.replacingOccurrences(of: "\"", with: "'"))\"\n" }
                if pts.isEmpty { data += "NaN NaN \"\"\n" }
                data += "\n\n# task \(task) x \(axis.name): Pareto front\n"
                for i in on { data += "\(pts[i].x) \(pts[i].y)\n" }
                if on.isEmpty { data += "NaN NaN\n" }
                data += "\n\n"
                plots += "set title \(Gnuplot.quoted(task))\nset xlabel \(Gnuplot.quoted(axis.label))\nset ylabel \(Gnuplot.quoted("\(metric) (best epoch)"))\n"
                // Linear axes (training seconds) rotate their tick labels: "0.0565 0.057 0.0575 …"
                // ran into each other in a half-width panel.
                plots += axis.log ? "set logscale x\nset xtics norotate center\n" : "unset logscale x\nset xtics rotate by 30 right\n"
                if pts.isEmpty {
                    plots += "set label 1 'no efficiency data (runs recorded before run_metrics)' at graph 0.5,0.5 center\n"
                    plots += "plot [1:10] [0:1] 1/0 notitle\nunset label 1\n"
                } else {
                    plots += "plot '\(name).dat' index \(index) using 1:2 with points pt 7 title 'cells', \\\n"
                    plots += "     '' index \(index) using 1:2:3 with labels offset 0.6,0.6 left font ',7' notitle, \\\n"
                    plots += "     '' index \(index + 1) using 1:2 with steps lw 2 title 'Pareto front'\n"
                }
                index += 2
            }
        }
        let rows = max(1, tasks.count)
        let note = profile == "smoke" ? "profile smoke: embedded random-weight backbone, reproduces nothing" : "profile \(profile)"
        var body = "set multiplot layout \(rows),2 title " + Gnuplot.quoted(lines: ["Score against cost, spec \(spec)", note]) + "\n"
        body += "set key top left\nset grid\nset offsets graph 0.05, graph 0.2, graph 0.1, graph 0.1\n"
        if tasks.isEmpty { body += "set label 1 'no cells' at graph 0.5,0.5 center\nplot [1:10] [0:1] 1/0 notitle\n" }
        body += plots + "unset multiplot\n"
        try Gnuplot.render(name: name, data: data, body: body, width: 900, height: 320 * rows + 60, outDir: outDir,
                           generator: "promptrepro report --pareto \(spec)", gnuplot: gnuplot)
        return ["\(outDir)/\(name).png", "\(outDir)/\(name).svg"]
    }
}
