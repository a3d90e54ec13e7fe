// The reference rows of every task table (issue #20 item 5): what a majority-class predictor and
// uniform random labels score on the validation examples the table's runs scored (ReferenceScores
// in Tasks says how). The examples are the runs': their template set and the prefix they scored
// (`eval_limit`; under `--select-on val-half`, of the report half), from the cells (store or
// export), else from the spec's expansion for the profile,
// else the full split with the DPT templates. A column whose runs scored different subsets gets one
// value per subset (template sets that score the same examples the same count once).
import Foundation
import Store
import Tasks
import Training

/// The validation examples a column's runs scored: a template set and a prefix (nil: the whole
/// split) of the split's rows, or of the val-half protocol's report half (`valHalf`).
public struct EvalSubset: Hashable, Comparable {
    public var templates: TemplateSet
    public var limit: Int?
    public var valHalf: Bool
    public init(templates: TemplateSet, limit: Int?, valHalf: Bool = false) {
        (self.templates, self.limit, self.valHalf) = (templates, limit, valHalf)
    }
    public static func < (a: EvalSubset, b: EvalSubset) -> Bool {
        (a.limit ?? .max, a.templates.rawValue, a.valHalf ? 1 : 0) < (b.limit ?? .max, b.templates.rawValue, b.valHalf ? 1 : 0)
    }

    /// These examples of `all`, the split's evaluation examples (one per row, in file order), as the trainer picks them.
    public func examples(_ all: [Example]) -> [Example] {
        let rows = valHalf ? FewShotSampler.validationHalves(groups: all.map(\.group)).report.map { all[$0] } : all
        return limit.map { Example.prefixOfWholeGroups(rows, limit: $0) } ?? rows
    }
}

/// Reference scores of one column on one subset (every metric of the task; nil: no such predictor).
public struct ReferenceScore: Equatable {
    public var examples: Int        // validation examples scored
    public var splitSize: Int       // examples in the validation split
    public var valHalf: Bool        // drawn from the val-half protocol's report half
    public var majority: [String: Double]?
    public var uniform: [String: Double]?
    /// The validation file read when it is a subset of the official split (relative to the data
    /// directory; `TaskData.isSubset`), else nil.
    public var subsetFile: String?
    public init(examples: Int, splitSize: Int, valHalf: Bool = false, majority: [String: Double]?, uniform: [String: Double]?,
                subsetFile: String? = nil) {
        (self.examples, self.splitSize, self.valHalf, self.majority, self.uniform) = (examples, splitSize, valHalf, majority, uniform)
        self.subsetFile = subsetFile
    }
}

public enum ReferenceRows {
    /// Per column task, the subsets its runs scored (see the file comment for the fall-backs).
    /// `planned`: the runs of the table's spec in the profile (`ExperimentSpec.expand`); [] without one.
    public static func subsets(_ layout: TableLayout, cells: [CellResult], planned: [RunSpec]) -> [String: [EvalSubset]] {
        let variants = Set(layout.rows.map(\.variant)), models = Set(layout.sections.map(\.model))
        var out: [String: [EvalSubset]] = [:]
        for task in Set(layout.columns.map(\.key)) {
            var found = Set<EvalSubset>()
            for c in cells where c.task == task && variants.contains(c.variant) && models.contains(c.model) && !c.seeds.isEmpty {
                if let t = c.templates.flatMap(TemplateSet.init(rawValue:)), let n = c.evalExamples {
                    found.insert(EvalSubset(templates: t, limit: n, valHalf: c.evalHalf == true))
                } else if let r = planned.first(where: { $0.task == task && $0.variant == c.variant && $0.model == c.model }) {
                    found.insert(subset(r.config))
                }
            }
            if found.isEmpty, let r = planned.first(where: { $0.task == task && variants.contains($0.variant) }) {
                found.insert(subset(r.config))
            }
            out[task] = found.isEmpty ? [EvalSubset(templates: .dpt, limit: nil)] : found.sorted()
        }
        return out
    }

    static func subset(_ c: TrainConfig) -> EvalSubset {
        EvalSubset(templates: c.templates, limit: c.evalLimit, valHalf: c.selectOn == .valHalf)
    }

    /// Reference scores per column task and subset, reading the validation splits under `dataDir`;
    /// a task whose split cannot be read is left out (its cells print "—").
    public static func compute(_ subsets: [String: [EvalSubset]], dataDir: String?) -> [String: [ReferenceScore]] {
        guard let dataDir else { return [:] }
        var out: [String: [ReferenceScore]] = [:]
        for (task, list) in subsets {
            guard let def = try? TaskRegistry.definition(task), let val = try? DataLoader.load(def, split: .validation, dataDir: dataDir) else { continue }
            var scores: [ReferenceScore] = []
            var seen = Set<EvalSubset>()  // a limit at or above the split's size is the whole split
            for s in list {
                guard let all = try? Templates.examples(val, set: s.templates, training: false) else { continue }
                let ex = s.examples(all)
                guard seen.insert(EvalSubset(templates: s.templates, limit: ex.count, valHalf: s.valHalf)).inserted else { continue }
                let score = ReferenceScore(examples: ex.count, splitSize: all.count, valHalf: s.valHalf,
                                           majority: try? ReferenceScores.majority(def, set: s.templates, examples: ex),
                                           uniform: try? ReferenceScores.uniform(def, set: s.templates, examples: ex),
                                           subsetFile: val.isSubset ? val.relativePath : nil)
                if !scores.contains(score) { scores.append(score) }  // template sets that name the same labels agree
            }
            if !scores.isEmpty { out[task] = scores }
        }
        return out
    }
}
