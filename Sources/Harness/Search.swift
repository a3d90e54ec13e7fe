// Hyper-parameter search with honest selection (issue #20): a spec's `search:` expands into one
// variant per grid point, trained on the search seeds with `select_on` train-dev or val-half; the
// point with the highest mean selection score (the selection metric on the dev set at each run's
// best epoch, `run_metrics.selection_score`) then runs on every seed under the method's name (on
// the search seeds the sweep adopts its grid point's finished runs, the same identity).
// Nothing of the reported split enters the choice.
import Foundation
import Store
import Support
import Tasks

/// One finished search: the point chosen for a (task, model column, k) and what it cost.
public struct SearchSummary: Sendable {
    public var variant: String
    public var task: String
    public var model: String
    public var k: Int?
    public var chosen: String?
    /// Mean selection score per grid point (nil: not finished, or no run; −∞: a run diverged).
    public var scores: [(point: String, mean: Double?)]
    public var runs: Int
    /// Σ over the search's runs of (training + evaluation seconds × threads) / 3600.
    public var cpuHours: Double
    /// `cpuHours` for a table: four decimals, or three significant digits below 0.001 (a smoke
    /// search printed 0.0000).
    public var cpuHoursText: String { cpuHours > 0 && cpuHours < 0.001 ? String(format: "%.3g", cpuHours) : String(format: "%.4f", cpuHours) }
    /// Whether every search run the spec plans has finished (a nil `chosen` then means every point diverged).
    public var finished: Bool = true
}

extension ResultsStore {
    /// The grid point chosen among `points` for (task, column, k), or nil while any of their runs
    /// is not finished. A point's score is the mean over its finished runs of `selection_score`
    /// (diverged runs count as −∞, so a point that diverges is never chosen over one that trains;
    /// a failed run, which a sweep retries, leaves the search unfinished; when every point diverged
    /// nothing is chosen); ties go to the first point in grid order: the grid's keys in name order, each
    /// key's values as the spec lists them (`ExperimentSpec.parseSearch`).
    /// Only the search runs `spec` plans now count (its search seeds, each point's config): rows
    /// of a search seed taken out, or of a point run with other settings (a spec edited since),
    /// once chose the point, and the final runs were planned from them.
    public func searchChoice(spec: ExperimentSpec, profile: String) -> ExperimentSpec.SearchChoice {
        let plan = Self.searchPlan(spec, profile: profile)
        return { points, task, column, k in
            try self.searchScores(spec: spec.name, profile: profile, points: points, task: task, column: column, k: k, plan: plan).chosen
        }
    }

    /// The search-point runs `spec` plans in `profile` (they do not depend on any choice); nil
    /// when the spec has no search or the profile cannot be expanded.
    static func searchPlan(_ spec: ExperimentSpec, profile: String) -> PlannedRuns? {
        guard spec.hasSearch else { return nil }
        let pointNames = Set(spec.variants.filter { $0.searchFor != nil }.map(\.name))
        guard let runs = try? spec.expand(profile: profile, choose: { _, _, _, _ in nil }) else { return nil }
        let points = runs.filter { pointNames.contains($0.variant) }
        var plan = PlannedRuns(runs: points)
        // The task file's parts too: a search run under an edited task file does not choose.
        for r in points {
            plan.taskParts[PlannedRuns.key(cell: r.cell, seed: r.seed, sampleSeed: r.replicate.sampleSeed)] = try? RunIdentity.plannedParts(r)
        }
        return plan
    }

    func searchScores(spec: String, profile: String, points: [String], task: String, column: String, k: Int?, plan: PlannedRuns?) throws
        -> (chosen: String?, scores: [(String, Double?)], runs: Int, cpuHours: Double, finished: Bool) {
        var scores: [(String, Double?)] = []
        var finished = true, runs = 0, cpu = 0.0
        for point in points {
            let cell = RunSpec.cellName(variant: point, task: task, model: column, k: k)
            var rows = try db.query("""
                SELECT r.id, r.cell, r.seed, r.sample_seed, r.config_json, r.identity_json, r.status, r.threads, m.value AS score,
                       (SELECT SUM(seconds) FROM epochs e WHERE e.run_id = r.id) AS seconds
                FROM runs r LEFT JOIN run_metrics m ON m.run_id = r.id AND m.name = 'selection_score'
                WHERE r.spec=? AND r.profile=? AND r.cell=? AND r.status != 'superseded'
                ORDER BY r.seed, IFNULL(r.sample_seed, r.seed), r.id
                """, [.text(spec), .text(profile), .text(cell)])
            if let plan {
                rows = rows.filter { plan.staleReason(row: $0) == nil }
                // Every planned run of the point must have finished (a search seed added since).
                // A failed run (an error, which the next sweep phase retries) leaves the search
                // open: counted as −∞ it let the search choose, and the retried run could change
                // the choice after the final runs were planned at the old point.
                let have = Set(rows.filter { ["done", "diverged"].contains($0["status"]?.text ?? "") }.map {
                    PlannedRuns.key(cell: cell, seed: $0["seed"]!.int!, sampleSeed: $0["sample_seed"]?.int ?? $0["seed"]!.int!) })
                if plan.configHashes.keys.contains(where: { $0.hasPrefix(cell + "#") && !have.contains($0) }) { finished = false }
            }
            if rows.isEmpty || rows.contains(where: { !["done", "diverged"].contains($0["status"]?.text ?? "") }) { finished = false }
            runs += rows.count
            for r in rows { cpu += (r["seconds"]?.double ?? 0) * Double(r["threads"]?.int ?? 1) / 3600 }
            // Summed in seed order (rows read in a fixed order), so a store merged in another order
            // gives the same means and breaks a tie the same way. Runs not finished yet (pending,
            // running) are no score: the point shows none until they are, never "diverged".
            let ended = rows.filter { ["done", "diverged"].contains($0["status"]?.text ?? "") }
            let vals = ended.map { r -> Double in r["status"]?.text == "done" ? (r["score"]?.double ?? -.infinity) : -.infinity }
            let open = ended.count < rows.count
            scores.append((point, vals.isEmpty || open ? nil : vals.reduce(0, +) / Double(vals.count)))
        }
        guard finished else { return (nil, scores, runs, cpu, false) }
        return (chosenPoint(scores.compactMap { p, m in m.map { (p, $0) } }), scores, runs, cpu, true)
    }

    /// Every search of `spec` in `profile`, per (variant, task, model column, k), finished or not.
    public func searchSummaries(_ s: ExperimentSpec, profile: String) throws -> [SearchSummary] {
        guard s.hasSearch else { return [] }
        let plan = Self.searchPlan(s, profile: profile)
        let p = s.profiles[profile]
        let columns = p?.models.map { m in s.models.filter { m[$0] != nil } } ?? s.models
        var out: [SearchSummary] = []
        for v in s.variants {
            guard let points = v.searchPoints else { continue }
            for task in s.tasks {
                for column in columns {
                    for k in p?.k ?? s.k {
                        let r = try searchScores(spec: s.name, profile: profile, points: points, task: task, column: column, k: k, plan: plan)
                        out.append(SearchSummary(variant: v.name, task: task, model: column, k: k, chosen: r.chosen,
                                                 scores: r.scores.map { (point: $0.0, mean: $0.1) }, runs: r.runs, cpuHours: r.cpuHours,
                                                 finished: r.finished))
                    }
                }
            }
        }
        return out
    }
}

/// A finished search's choice from its points' mean selection scores, in grid order: the point
/// with the highest mean, ties to the earlier one; nil when every point is −∞ (every point
/// diverged: nothing to choose, where the first point was chosen and ran on every seed). The one
/// rule of a store's search (`ResultsStore.searchScores`) and of an export's (`exportChoice`).
func chosenPoint(_ means: [(String, Double)]) -> String? {
    var best: (String, Double)? = nil
    for (p, m) in means where best == nil || m > best!.1 { best = (p, m) }
    guard let best, best.1 > -.infinity else { return nil }
    return best.0
}

extension ResultsExport {
    /// `json` (a `results --format json` or export document) with the spec's searches added under
    /// "searches": per (variant, task, model, k) the chosen point (null while undecided), each
    /// point's mean selection score (null: not finished; "diverged": −∞), the number of
    /// search runs and their CPU-hours. Only Markdown said what was searched and what it cost.
    public static func addingSearches(_ json: String, _ searches: [SearchSummary]) throws -> String {
        guard !searches.isEmpty, var obj = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else { return json }
        obj["searches"] = searches.map { s -> [String: Any] in
            ["variant": s.variant, "task": s.task, "model": s.model, "k": s.k.map { $0 as Any } ?? NSNull(),
             "chosen": s.chosen.map { $0 as Any } ?? NSNull(), "runs": s.runs, "cpu_hours": s.cpuHours,
             "points": s.scores.map { p -> [String: Any] in
                 ["point": p.point, "mean_selection_score": p.mean.map { $0.isFinite ? $0 as Any : "diverged" as Any } ?? NSNull()]
             }]
        }
        return String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .prettyPrinted]), as: UTF8.self) + "\n"
    }

    /// The searches `addingSearches` wrote into `json` (an export's `.json`), read back; [] when
    /// it has none or is not such a document. A reader of the committed export (a table built
    /// without the store) states them as one built from the store does.
    public static func searches(inJSON json: Data) -> [SearchSummary] {
        guard let obj = try? JSONSerialization.jsonObject(with: json) as? [String: Any], let list = obj["searches"] as? [[String: Any]] else { return [] }
        return list.compactMap { o in
            guard let v = o["variant"] as? String, let t = o["task"] as? String, let m = o["model"] as? String else { return nil }
            let points = (o["points"] as? [[String: Any]] ?? []).map { p -> (point: String, mean: Double?) in
                (p["point"] as? String ?? "", p["mean_selection_score"] as? Double ?? ((p["mean_selection_score"] as? String) == "diverged" ? -.infinity : nil))
            }
            return SearchSummary(variant: v, task: t, model: m, k: o["k"] as? Int, chosen: o["chosen"] as? String, scores: points,
                                 runs: o["runs"] as? Int ?? 0, cpuHours: o["cpu_hours"] as? Double ?? 0)
        }
    }

    /// The hyper-parameter searches of a spec: per (variant, task, model, k) the chosen point, each
    /// point's mean dev score, and the search's cost (runs, CPU-hours = Σ seconds × threads).
    public static func searchMarkdown(_ searches: [SearchSummary]) -> String {
        guard !searches.isEmpty else { return "" }
        var out = "\nHyper-parameter search (selected on the dev split its `select_on` names, train-dev or val-half, never on the reported one; the chosen point runs on every seed under the method's name, its grid point's finished runs adopted on the search seeds; ties go to the first point in grid order, keys by name):\n\n"
        out += "| variant | task | model | k | chosen | mean dev score per point | search runs | CPU-hours |\n|---|---|---|---|---|---|---|---|\n"
        for s in searches {
            let pts = s.scores.map { "\($0.point): " + ($0.mean.map { $0.isFinite ? String(format: "%.2f", $0) : "diverged" } ?? "— (not finished)") }
            let allDiverged = s.finished && !s.scores.isEmpty && s.scores.allSatisfy { $0.mean == -.infinity }
            out += "| \(s.variant) | \(s.task) | \(s.model) | \(s.k.map(String.init) ?? "full") | \(s.chosen ?? (allDiverged ? "none: every point diverged" : "(not finished)")) | "
            out += mdCell(pts.joined(separator: "; ")) + " | \(s.runs) | " + s.cpuHoursText + " |\n"
        }
        return out
    }
}

extension ExperimentSpec {
    /// The runs this spec plans in `profile` now, in the form `ResultsStore.cellResults(planned:)`
    /// reads: searched variants as far as `store`'s finished searches have chosen them. Throws as
    /// `expand` does (a profile the spec lacks).
    /// With `store` and `dataDir`, the plan also holds each run's input parts as they are now
    /// (`PlannedRuns.inputParts`: the data files under `dataDir`, the manifest under
    /// `manifestDir`, the checkpoint), so that reads leave out rows run on other inputs; a data
    /// file or checkpoint not found here is not compared.
    public func plannedRuns(profile: String, store: ResultsStore?, dataDir: String? = nil,
                            manifestDir: String = "Baselines/manifests", exported: [CellResult]? = nil) throws -> PlannedRuns {
        let choose = store?.searchChoice(spec: self, profile: profile) ?? exported.map { exportChoice($0, profile: profile) }
        let runs = try expand(profile: profile, choose: choose)
        var plan = PlannedRuns(runs: runs, undecidedCells: try undecidedSearchCells(profile: profile, choose: choose))
        plan.evaluatedTaskCheck = RunIdentity.evaluatedTaskChanged
        // The task file's parts of each run's identity, so that reads leave out rows run under an
        // edited task file (labels, metrics, templates) until a sweep reruns them.
        var parts: [String: [String: String]] = [:]
        for r in runs {
            let id = "\(r.task)#\(r.config.templates.rawValue)#\(r.config.selectOn?.rawValue ?? "")"
            if parts[id] == nil {
                parts[id] = try RunIdentity.canonicalTaskParts(TaskRegistry.definition(r.task), templates: r.config.templates, selectOn: r.config.selectOn)
            }
            var planned = parts[id]!
            for (k, v) in RunIdentity.ruleParts(r.config) { planned[k] = PlannedRuns.canonical(v) }
            plan.taskParts[PlannedRuns.key(cell: r.cell, seed: r.seed, sampleSeed: r.replicate.sampleSeed)] = planned
        }
        if let dataDir {
            // A file that cannot be hashed here (unreadable, a dangling link) leaves that run's
            // inputs uncompared; it never drops the plan (whose config and task parts still count).
            // Without a store (a read of an export) files are hashed without its cache, and
            // checkpoints are not hashed (gigabytes a read; "missing" parts are not compared).
            var weights: [String: String?] = [:]
            let fileHash: (String) throws -> String = { path in
                if let store { return try store.fileHash(path) }
                guard let h = FileHashes.shared.sha256(path) else { throw StoreError("\(path): cannot be read") }
                return h
            }
            for r in runs {
                let hashed = try? RunIdentity.compute(r, dataDir: dataDir, manifestDir: manifestDir, fileHash: fileHash) { dir in
                    guard let store else { return "missing: checkpoints are not hashed reading an export" }
                    if let w = weights[dir] { if let w { return w } else { throw StoreError("\(dir): weights not hashable") } }
                    let w = try? store.weightsHash(directory: dir)
                    weights[dir] = w
                    guard let w else { throw StoreError("\(dir): weights not hashable") }
                    return w
                }
                guard let hashed else { continue }
                // Reading an export, checkpoints are not hashed, nor their config and tokenizer
                // files compared (a re-saved tokenizer.json in another machine's HF snapshot left
                // out every cell): data files and manifests only.
                let parts = PlannedRuns.inputParts(identityJSON: hashed.json).filter { !$0.value.hasPrefix("missing") && (store != nil || $0.key != "model_files") }
                plan.inputParts[PlannedRuns.key(cell: r.cell, seed: r.seed, sampleSeed: r.replicate.sampleSeed)] = parts
                if let v = parts["data.validation"] { plan.validationData[r.task] = v }
                let model = parts.filter { ["weights", "model_files"].contains($0.key) }
                if !model.isEmpty { plan.modelData[r.model] = (r.modelSpec, model) }
            }
        } else {
            // No data directory: the few-shot manifests are the checkout's, so they are compared
            // still (a review's gate passed on runs of an edited manifest without --data-dir), in
            // store and export reads alike.
            for r in runs {
                guard let name = r.config.manifestFileName else { continue }
                let path = "\(manifestDir)/\(name)"
                let value = FileManager.default.fileExists(atPath: path) ? (store.map { try? $0.fileHash(path) } ?? FileHashes.shared.sha256(path)) : "drawn"
                if let value { plan.inputParts[PlannedRuns.key(cell: r.cell, seed: r.seed, sampleSeed: r.replicate.sampleSeed)] = ["manifest": value] }
            }
        }
        return plan
    }

    /// A search's choice from an export's cells (no store), by the rule of `ResultsStore.searchScores`
    /// as far as an export can apply it: a point counts only when every run the spec plans for it
    /// now is in the cell and done with the config the point plans (scored by its `selection_score`,
    /// −∞ without one) or diverged (−∞), summed in seed order; a failed, unfinished or incomplete
    /// run, or one the export lacks, leaves the search undecided (nil), as does every point −∞.
    /// An export keeps no task-file or input parts, and no config of a diverged run: those are
    /// not compared here (a store read compares them). So an export read under an edited spec (another
    /// grid, another setting of the entry, another `select_on`) chooses only from points run as
    /// the spec plans them, and the searched cell is read against that choice (it was kept whole,
    /// its old numbers under the new settings).
    public func exportChoice(_ cells: [CellResult], profile: String) -> SearchChoice {
        let plan = ResultsStore.searchPlan(self, profile: profile)
        let byCell = Dictionary(cells.map { ($0.cell, $0) }, uniquingKeysWith: { a, _ in a })
        return { points, task, column, k in
            guard let plan else { return nil }
            var means: [(String, Double)] = []
            for point in points {
                let cell = RunSpec.cellName(variant: point, task: task, model: column, k: k)
                let keys = plan.configHashes.keys.filter { $0.hasPrefix(cell + "#") }.sorted { a, b in
                    let (x, y) = (PlannedRuns.run(ofKey: a)?.replicate, PlannedRuns.run(ofKey: b)?.replicate)
                    return (x?.seed ?? 0, x?.sampleSeed ?? 0) < (y?.seed ?? 0, y?.sampleSeed ?? 0)
                }
                guard !keys.isEmpty, let c = byCell[cell], let statuses = c.runStatuses else { return nil }
                let scored = Dictionary(zip(c.replicates.map { PlannedRuns.key(cell: cell, seed: $0.seed, sampleSeed: $0.sampleSeed) },
                                            c.extras?["selection_score"]?.values ?? []), uniquingKeysWith: { a, _ in a })
                var sum = 0.0
                for key in keys {
                    switch statuses[key] {
                    case "done"?:
                        guard c.runConfigs?[key] == plan.configHashes[key] else { return nil }
                        sum += scored[key] ?? -.infinity
                    case "diverged"?: sum += -.infinity
                    // Failed (retried by a sweep), pending, running, not in the export, or
                    // "incomplete" (finished without its task's scores: the export keeps neither
                    // its config nor its selection score, so the store's rule cannot be applied).
                    default: return nil
                    }
                }
                means.append((point, sum / Double(keys.count)))
            }
            return chosenPoint(means)
        }
    }

    /// The cells of searched variants that `choose` has no point for yet (their search is not
    /// finished): `expand` leaves them out, though the spec plans them.
    public func undecidedSearchCells(profile: String, choose: SearchChoice?) throws -> Set<String> {
        guard hasSearch else { return [] }
        let p = try self.profile(profile)
        var out: Set<String> = []
        for variant in variants {
            guard let points = variant.searchPoints else { continue }
            for task in tasks {
                for column in columns(p) {
                    for k in p.k ?? self.k where try choose?(points, task, column, k) == nil {
                        out.insert(RunSpec.cellName(variant: variant.name, task: task, model: column, k: k))
                    }
                }
            }
        }
        return out
    }
}

/// One line on the stored runs a read leaves out because the spec does not plan them as stored
/// (`ResultsStore.staleRuns`): runs of cells, k values or seeds taken out of the spec (kept; they
/// count again if the spec lists them again), and runs of an edited spec, with the sweep that
/// reruns them (`given`: the spec as the user named it, a name or a path; default `spec`); nil
/// when none.
public func staleRunsNote(_ stale: [StaleRun], spec: String, profile: String, given: String? = nil) -> String? {
    guard !stale.isEmpty else { return nil }
    var parts: [String] = []
    for reason in StaleRun.Reason.allCases {
        let these = stale.filter { $0.reason == reason }
        guard let first = these.first else { continue }
        let what = reason.remedy(sweep: "`promptrepro sweep \(given ?? spec) --profile \(profile)`")
        parts.append("\(these.count) \(reason.rawValue) (e.g. \(first.cell) seed \(first.seed), \(first.status); \(what))")
    }
    return "note: \(stale.count) stored run\(stale.count == 1 ? "" : "s") of spec \(spec) [\(profile)] left out: " + parts.joined(separator: "; ")
}
