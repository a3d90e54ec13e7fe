// `compare` / the CI gate: a new method (a spec variant) against a baseline variant's stored runs,
// or against the papers' published numbers, task by task.
//
// Statistics (stored baseline). Every method of a spec trains on the same few-shot sample per seed,
// so comparisons are paired by seed. Primary: a paired two-level bootstrap over the seed pairs both
// sides finished and the validation examples (`pairedBootstrap`): each of B resamples draws the seed
// pairs and the example indices with replacement, the same indices for both methods and every drawn
// pair; Δ* = mean over the drawn pairs of metric(new) − metric(baseline) on the resample, with the
// task's selection metric recomputed from the best epoch's stored predictions. Two-sided
// p = 2·(1 + the count of Δ* on the smaller side of 0) / (B + 1) (`bootstrapP`). With two or more
// seed pairs the paired t over the seeds is computed too, and the row reports the larger p and the
// hull of both intervals: drawing 3–5 seeds cannot place Δ* below 0 when every seed's difference
// has the same sign, so the bootstrap alone stays sure of widely scattered seeds. Without stored predictions (committed
// exports) or validation data: a paired t-test over the seeds (n ≥ 2). p-values are Holm-adjusted
// across tasks, and each task's interval is printed at the Holm level of its rank (1 − 0.05/(m −
// rank + 1), frozen at the first rank that is not rejected), so "win"/"loss" holds exactly when the
// printed interval excludes 0.
//
// Gate (`--max-regression X`): non-inferiority. It passes only when every task of the spec has
// every expected seed on both sides (unless `--allow-missing`) and, for every task, the lower end
// of the printed interval of Δ is ≥ −X (we are confident the new method loses at most X points);
// for a metric whose registry entry is lower-is-better, the upper end is ≤ X and win/loss swap.
import Foundation
import Models
import Store
import Support
import Tasks
import Training

public struct ComparisonRow {
    public var task: String
    public var model: String
    /// The few-shot size of the cell compared (nil: the spec sets none).
    public var k: Int? = nil
    public var metric: String
    public var new: [Double]           // per common seed (stored) or every seed (published)
    public var baseline: [Double]      // per common seed; [] against published
    public var seeds: [Replicate]
    public var baselineMean: Double
    public var delta: Double
    public var method: String          // "paired bootstrap over N examples × S seeds" | "paired t over S seeds" | "none"
    public var p: Double?
    public var pHolm: Double?
    public var ci: (Double, Double)?
    public var level: Double?          // confidence level of `ci`
    public var verdict: String         // win | tie | loss | — (no test)
    /// The metric's direction (registry): with lower-is-better a negative Δ is the improvement.
    public var higherIsBetter = true
    /// Mean over seeds of the best epoch's invalid-output fraction (0–1), new and baseline side.
    public var invalidNew: Double?
    public var invalidBaseline: Double?
    /// The metric's majority-class and uniform-chance scores on the examples the new side scored.
    public var majority: Double?
    public var chance: Double?
    /// A crossed design's complete grid of paired differences (every training seed on every
    /// few-shot sample, two or more of each): the t runs on `CrossedDifferences`' variance of the
    /// mean. nil: one run per sample (the pairs are independent), or a grid with holes
    /// (`marginalDifferences`).
    public var crossed: CrossedDifferences?
    /// A crossed design with holes (a run missing on a side): the paired t over the pairs, over
    /// the samples' mean differences and over the seeds' mean differences, each taken as
    /// independent; the row reports the largest p and the hull of their intervals (no one of them
    /// is right for an incomplete grid; each leaves out one source of spread). nil otherwise.
    public var marginalDifferences: [[Double]]?

    public init(task: String, model: String, metric: String, new: [Double], baseline: [Double], seeds: [Replicate], baselineMean: Double,
                delta: Double, method: String, p: Double?, pHolm: Double?, ci: (Double, Double)?, level: Double?, verdict: String) {
        self.task = task; self.model = model; self.metric = metric; self.new = new; self.baseline = baseline; self.seeds = seeds
        self.baselineMean = baselineMean; self.delta = delta; self.method = method; self.p = p; self.pHolm = pHolm; self.ci = ci
        self.level = level; self.verdict = verdict
    }
}

extension ComparisonRow {
    /// Why the row measures nothing, nil where it does: no output of either side names a label
    /// (100 % invalid on both: both score 0 alike, and a Δ of 0 with a zero-width interval read
    /// as a tie and passed the gate), or, where the invalid shares are not stored (older rows;
    /// ReCoRD read without its data), every run of both sides scores 0 on a higher-is-better
    /// metric (`published`: against published numbers, which are never all 0, not judged so).
    public func nothingToJudge(new: String, baseline: String, published: Bool) -> String? {
        if let inv = invalidNew, inv >= 1, (invalidBaseline ?? 0) >= 1 {
            return "no output of \(new) or \(baseline) names a label (100% invalid on both sides)"
        }
        if higherIsBetter, invalidNew == nil || invalidBaseline == nil, !published,
           !self.new.isEmpty, !self.baseline.isEmpty, (self.new + self.baseline).allSatisfy({ $0 == 0 }) {
            return "every run of \(new) and \(baseline) scores 0 and their invalid shares are not stored"
        }
        return nil
    }
}

/// A cell of the comparison: task, model column and few-shot size. Runs pair only within one.
public struct CompareCell: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var task: String
    public var model: String
    public var k: Int?
    public init(task: String, model: String, k: Int?) { self.task = task; self.model = model; self.k = k }
    public static func < (a: CompareCell, b: CompareCell) -> Bool { (a.task, a.model, a.k ?? -1) < (b.task, b.model, b.k ?? -1) }
    /// "cb t5-small k=16".
    public var description: String { "\(task) \(model)\(k.map { " k=\($0)" } ?? "")" }
}

/// What the gate found missing, one line each.
public struct MissingRuns {
    public var lines: [String] = []
    public var isEmpty: Bool { lines.isEmpty }
}

/// A run's identity for pairing: its seed and sample seed (runs pair when both agree, so the two
/// methods saw the same few-shot sample), its best-epoch predictions (nil when not stored) and the
/// template set its targets use.
public struct PairedRun {
    public var replicate: Replicate
    public var seed: Int { replicate.seed }
    public var predictions: [String]?
    public var templates: TemplateSet
    /// Which validation rows the run reported on (val-half: the second half only).
    public var reportsHalf: Bool
    /// The few-shot sample the run trained on beyond its (sample) seed; nil where nothing is known (an export).
    public var sample: FewShotSample?
    public init(seed: Int, sampleSeed: Int? = nil, predictions: [String]?, templates: TemplateSet, reportsHalf: Bool = false, sample: FewShotSample? = nil) {
        self.replicate = Replicate(seed: seed, sampleSeed: sampleSeed); self.predictions = predictions; self.templates = templates
        self.reportsHalf = reportsHalf; self.sample = sample
    }
}

/// Which few-shot sample a run trained on beyond its (sample) seed: its sampler and the sha256 of
/// the manifest it read (nil: not known, a drawn sample or one its identity does not name).
public struct FewShotSample: Equatable, Sendable {
    public var sampler: SamplerKind
    public var manifest: String?
    public init(sampler: SamplerKind, manifest: String?) { self.sampler = sampler; self.manifest = manifest }

    /// Whether two runs trained on other samples: another sampler, or two known, different manifests.
    public func differs(from o: FewShotSample) -> Bool {
        sampler != o.sampler || (manifest != nil && o.manifest != nil && manifest != o.manifest)
    }
}

public enum Compare {
    public static let alpha = 0.05

    /// Holm step-down: adjusted p-values (monotone) and, per task, the level of its interval.
    public static func holm(_ p: [Double?]) -> (adjusted: [Double?], levels: [Double?]) {
        let idx = p.indices.filter { p[$0] != nil }.sorted { p[$0]! < p[$1]! || (p[$0]! == p[$1]! && $0 < $1) }
        let m = idx.count
        var adjusted = [Double?](repeating: nil, count: p.count), levels = [Double?](repeating: nil, count: p.count)
        var running = 0.0, stopped: Double? = nil
        var tieLevel: (p: Double, level: Double)? = nil
        for (rank, i) in idx.enumerated() {
            let a = alpha / Double(m - rank)
            running = max(running, min(1, Double(m - rank) * p[i]!))
            adjusted[i] = running
            if stopped == nil && !(p[i]! < a) { stopped = a }
            // Equal p-values share the level of the first of them (the strictest), so no interval's
            // level depends on the order of the rows.
            if let t = tieLevel, t.p == p[i]! { levels[i] = t.level; continue }
            levels[i] = 1 - (stopped ?? a)
            tieLevel = (p[i]!, levels[i]!)
        }
        return (adjusted, levels)
    }

    /// Whether every seed's difference is the same number up to rounding (spread ≤ 1e-9 × max(1, |mean|)):
    /// 10 more correct rows of CB's 56 on each seed is 17.857142857142854 on some seeds and
    /// 17.85714285714286 on others, whose standard error of ~1e-15 made a t of ~1e16.
    public static func equalDifferences(_ d: [Double]) -> Bool {
        guard let lo = d.min(), let hi = d.max() else { return false }
        return hi - lo <= 1e-9 * max(1, abs(Statistics.mean(d)))
    }

    /// Paired t-test over seeds (d = new − baseline): two-sided p and the interval at `level`.
    /// Every seed's difference the same non-zero value (`equalDifferences`): p 0 and the interval
    /// [d, d] (scipy's `ttest_rel` limit, t = ±inf); all zero: p 1, [0, 0].
    public static func pairedT(_ d: [Double], level: Double) -> (p: Double, ci: (Double, Double))? {
        guard d.count >= 2 else { return nil }
        let n = Double(d.count), m = Statistics.mean(d), se = (Statistics.sampleVariance(d) / n).squareRoot()
        guard !equalDifferences(d) else { return abs(m) <= 1e-9 ? (1, (0, 0)) : (0, (m, m)) }
        let t = m / se, df = n - 1
        let q = Statistics.studentQuantile(1 - (1 - level) / 2, df: df)
        return (Statistics.twoSidedP(t: t, df: df), (m - q * se, m + q * se))
    }

    /// A row's t test: `crossed`'s two-way variance of the mean when the row has one, else the
    /// paired t over its seed pairs. nil with fewer than two pairs.
    static func rowT(_ row: ComparisonRow, level: Double) -> (p: Double, ci: (Double, Double))? {
        if let c = row.crossed { return c.test(level: level) }
        if let sets = row.marginalDifferences { return largestPAndHull(sets.compactMap { pairedT($0, level: level) }) }
        return pairedT(zip(row.new, row.baseline).map { $0 - $1 }, level: level)
    }

    /// Several tests of one Δ taken together: the largest p and the hull of the intervals; nil for none.
    static func largestPAndHull(_ tests: [(p: Double, ci: (Double, Double))]) -> (p: Double, ci: (Double, Double))? {
        guard let first = tests.first else { return nil }
        return tests.dropFirst().reduce(first) { acc, t in (max(acc.p, t.p), (min(acc.ci.0, t.ci.0), max(acc.ci.1, t.ci.1))) }
    }

    /// Per-example sufficient statistics of the stored metric `metric` (summed over a resample,
    /// then turned into the metric by its registry entry's `value`): means (accuracy, ReCoRD em/f1)
    /// are one number per example, weighted means (s, w), F1 (tp, fp, fn) per class under the
    /// metric's invalid-output rule. nil for a metric over question groups (MultiRC EM) or one that
    /// needs label targets the set lacks.
    static func perExample(_ def: TaskDefinition, set: TemplateSet, metric: String, examples: [Example], predictions: [String]) throws -> [[Double]]? {
        guard let spec = def.metrics.first(where: { $0.name == metric }), let entry = try? Metrics.entry(def, spec, set: set),
              entry.aggregation != .groupAllCorrect else { return nil }
        let rows = try Metrics.rows(def, set: set, examples: examples, predictions: predictions)
        if entry.aggregation == .weightedMean { return rows.map { let s = entry.stats($0); return [s[1] * s[0], s[1]] } }
        return rows.map(entry.stats)
    }

    /// Paired two-level bootstrap over seeds and examples; returns the resampled Δ* (sorted).
    /// `new[s][i]` / `baseline[s][i]`: seed pair s's per-example statistics on example i (the same
    /// examples for every pair). Each resample draws S seed pairs with replacement and n example
    /// indices with replacement (the same indices for both methods and every drawn pair), and
    /// Δ* = mean over the drawn pairs of metric(new) − metric(baseline) on those examples. Drawing
    /// the seeds as well carries the spread between training runs into the interval: resampling
    /// examples alone (Koehn 2004) treats the trained models as fixed, and per-seed differences of
    /// −14, +72 and 0 points read as a certain win (p 0.0000, where a paired t over the seeds gives
    /// 0.54). With one pair only the examples vary. Seeds and examples are crossed (every run scores
    /// every example), so both factors are drawn independently: the two-way ("pigeonhole")
    /// bootstrap of Owen 2007.
    /// `grid` (a crossed design: `grid[i][j]` the index into `new` of sample i's pair for training
    /// seed j, every cell present): each resample draws the samples and the seeds independently,
    /// each with replacement, and takes every drawn sample's pair for every drawn seed (the
    /// "pigeonhole" bootstrap of a crossed design, Owen 2007, which errs on the wide side), since a
    /// training seed fixes the initialisation on every sample and a sample the rows under every
    /// seed. nil: the seed pairs are independent (one run per sample), drawn as above.
    public static func pairedBootstrap(new: [[[Double]]], baseline: [[[Double]]], metric: MetricEntry, resamples: Int = 2000,
                                       seed: UInt64 = 20_241_123, grid: [[Int]]? = nil) -> [Double] {
        let n = new.first?.count ?? 0, pairs = min(new.count, baseline.count)
        var s = PhiloxStream(RNGKey(seed: seed).derive("paired-bootstrap"))
        var out: [Double] = []
        out.reserveCapacity(resamples)
        let width = new.first?.first?.count ?? 1
        var idx = [Int](repeating: 0, count: n), drawn = [Int](repeating: 0, count: pairs)
        var rows: [Int] = [], cols: [Int] = []
        for _ in 0..<resamples {
            if let grid {
                let a = grid.count, b = grid[0].count
                rows = (0..<a).map { _ in s.nextInt(below: a) }
                cols = (0..<b).map { _ in s.nextInt(below: b) }
                drawn.removeAll(keepingCapacity: true)
                for r in rows { for c in cols { drawn.append(grid[r][c]) } }
            } else {
                for j in 0..<pairs { drawn[j] = pairs == 1 ? 0 : s.nextInt(below: pairs) }
            }
            for i in 0..<n { idx[i] = s.nextInt(below: n) }
            var d = 0.0
            for j in drawn {
                let a = new[j], b = baseline[j]
                var sa = [Double](repeating: 0, count: width), sb = sa
                for i in idx { for w in 0..<width { sa[w] += a[i][w]; sb[w] += b[i][w] } }
                d += (metric.value(sa, count: n) ?? .nan) - (metric.value(sb, count: n) ?? .nan)
            }
            out.append(d / Double(drawn.count))
        }
        return out.sorted()
    }

    /// Two-sided bootstrap p-value of Δ = 0 from the sorted resamples: 2 · (1 + the count on the
    /// smaller side of 0, ties counted on both) / (B + 1), at most 1: the Monte Carlo p-value of
    /// Davison & Hinkley 1997, ch. 4, never 0, a value B resamples cannot resolve.
    /// The percentile interval of sorted resamples `boot` (B of them) at `level`: the r-th
    /// smallest and the r-th largest, r = ⌊(B + 1)(1 − level)/2⌋ (Davison & Hinkley 1997, §5.2.2),
    /// or the extremes when r < 1 (B too small for the level: with B = 2000 from about 50
    /// Holm-tested cells on). The convention of `bootstrapP`'s +1 rule: for r ≥ 1 the interval
    /// excludes 0 exactly when that p is at most 1 − level (an order statistic one further in, the old
    /// ⌊B(1 − level)/2⌋-th from 0, excluded 0 at p = 0.051 against 0.05 and called a win).
    public static func bootstrapInterval(_ boot: [Double], level: Double) -> (Double, Double) {
        let r = Int((Double(boot.count + 1) * (1 - level) / 2).rounded(.down))
        guard r >= 1 else { return (boot.first!, boot.last!) }
        return (boot[r - 1], boot[boot.count - r])
    }

    public static func bootstrapP(_ boot: [Double]) -> Double {
        let below = Double(boot.filter { $0 <= 0 }.count), above = Double(boot.filter { $0 >= 0 }.count)
        return min(1, 2 * (1 + min(below, above)) / Double(boot.count + 1))
    }

    /// Rows for every cell (task, model, k) where both sides have runs; statistics as described at
    /// the top of the file. `runs(variant, cell)` gives a variant's finished runs of that cell (for
    /// pairing and predictions); `examples(task, set, half)` the validation examples (half: the reported half of
/// `select_on: val-half`), nil when the data is not there.
    public static func rows(cells: [CellResult], newVariant: String, baselineVariant: String, published: [PublishedValue]?,
                            paper: String, table: String, runs: (String, CompareCell) throws -> [PairedRun],
                            examples: (String, TemplateSet, Bool) -> [Example]?) throws -> [ComparisonRow] {
        var out: [ComparisonRow] = []
        var boots: [[Double]?] = []  // per row: the bootstrap distribution, when one was drawn
        for c in cells where c.variant == newVariant {
            let def = try TaskRegistry.definition(c.task)
            let metric = def.selectionMetric
            let higherIsBetter = try def.selectionEntry.higherIsBetter
            guard let newStat = c.best[metric], !newStat.values.isEmpty else { continue }
            if let published {
                let modelLabel = ["t5-small": "T5-Small", "t5-base": "T5-Base", "t5-large": "T5-Large", "gpt2-large": "GPT-2 large"][c.model] ?? c.model
                guard let v = published.first(where: { $0.paper == paper && $0.table == table && $0.method == baselineVariant
                    && ($0.model == modelLabel || $0.model == c.model) && $0.column == c.task })?.number else { continue }
                var row = ComparisonRow(task: c.task, model: c.model, metric: metric, new: newStat.values, baseline: [], seeds: c.replicates,
                                        // Δ of the printed numbers, as the tables give it (published values have two decimals).
                                        baselineMean: v, delta: PaperTables.printed(newStat.mean) - v,
                                        method: "none (published value: no spread to test)",
                                        p: nil, pHolm: nil, ci: nil, level: nil, verdict: "—")
                row.higherIsBetter = higherIsBetter
                row.k = c.k
                zeroSkill(&row, c, nil, def: def, examples: examples)
                out.append(row)
                boots.append(nil)
                continue
            }
            guard let b = cells.first(where: { $0.variant == baselineVariant && $0.task == c.task && $0.model == c.model && $0.k == c.k }),
                  b.best[metric] != nil else { continue }
            let key = CompareCell(task: c.task, model: c.model, k: c.k)
            let newRuns = try runs(newVariant, key), baseRuns = try runs(baselineVariant, key)
            let common = Set(newRuns.map(\.replicate)).intersection(baseRuns.map(\.replicate)).sorted()
            func perSeed(_ cell: CellResult) -> [Replicate: Double] {
                Dictionary(uniqueKeysWithValues: zip(cell.replicates, cell.best[metric]?.values ?? []))
            }
            let nv = perSeed(c), bv = perSeed(b)
            let pairs = common.filter { nv[$0] != nil && bv[$0] != nil }
            let newVals = pairs.map { nv[$0]! }, baseVals = pairs.map { bv[$0]! }
            var row = ComparisonRow(task: c.task, model: c.model, metric: metric, new: newVals, baseline: baseVals, seeds: pairs,
                                    baselineMean: baseVals.isEmpty ? .nan : Statistics.mean(baseVals),
                                    delta: pairs.isEmpty ? .nan : Statistics.mean(newVals) - Statistics.mean(baseVals),
                                    method: "none", p: nil, pHolm: nil, ci: nil, level: nil, verdict: "—")
            row.higherIsBetter = higherIsBetter
            row.k = c.k
            zeroSkill(&row, c, b, def: def, examples: examples)
            // A crossed design (every training seed on every few-shot sample, two or more of
            // each): a seed's initialisation and a sample's rows are each shared by several pairs,
            // so the t and the bootstrap treat both as random factors (`CrossedDifferences`). A
            // grid with holes takes the largest p of the t over pairs, sample means and seed means.
            let grid = CrossedDifferences.grid(pairs)
            if let grid { row.crossed = CrossedDifferences(grid.map { $0.map { newVals[$0] - baseVals[$0] } }) }
            let sharesSamples = Set(pairs.map(\.sampleSeed)).count < pairs.count, sharesSeeds = Set(pairs.map(\.seed)).count < pairs.count
            let holed = grid == nil && sharesSamples && sharesSeeds && pairs.count > 1
            if holed {
                func means(_ key: (Replicate) -> Int) -> [Double] {
                    Dictionary(grouping: pairs.indices, by: { key(pairs[$0]) }).sorted { $0.key < $1.key }
                        .map { Statistics.mean($0.value.map { newVals[$0] - baseVals[$0] }) }
                }
                row.marginalDifferences = [zip(newVals, baseVals).map { $0 - $1 }, means(\.sampleSeed), means(\.seed)].filter { $0.count >= 2 }
            }
            let holeNote = holed
                ? " (a crossed design with missing runs: the largest p and the hull of the paired t over the pairs, the samples' means and the seeds' means)" : ""
            let oneSampleNote = Set(pairs.map(\.sampleSeed)).count == 1 && pairs.count > 1 && pairs.contains { $0.sampleSeed != $0.seed }
                ? " (every seed on one few-shot sample: the interval is conditional on that sample)" : ""
            let design = row.crossed.map { " on \($0.samples) few-shot samples × \($0.seeds) training seeds (both resampled, crossed) and a two-way t (Satterthwaite df \(String(format: "%.1f", $0.df)))" }
            let nr = Dictionary(newRuns.map { ($0.replicate, $0) }, uniquingKeysWith: { a, _ in a })
            let br = Dictionary(baseRuns.map { ($0.replicate, $0) }, uniquingKeysWith: { a, _ in a })
            // Scores of different validation examples (val-half's report half against the whole
            // split, or other evaluation limits) are not paired: Δ only, no test (a paired t over
            // such seeds once called a win at p 0.0000 between one set of predictions scored on
            // both example sets).
            let halves = pairs.contains { rep in
                guard let n = nr[rep], let b = br[rep] else { return false }
                return n.reportsHalf != b.reportsHalf
            }
                || (c.evalHalf ?? false) != (b.evalHalf ?? false)
            // Runs within one side that scored different sets (an adapter evaluated without the
            // spec's eval_limit beside runs with it): that side's mean mixes example sets, and its
            // `evalExamples` is nil, which skipped the check below (paired t, gate passed).
            if let (side, sets) = [(newVariant, c.mixedEvalSets), (baselineVariant, b.mixedEvalSets)].first(where: { $0.1 != nil }).map({ ($0.0, $0.1!) }) {
                row.method = "none: the runs of \(side) scored different validation sets (\(sets.joined(separator: " / "))), not paired"
                out.append(row)
                boots.append(nil)
                continue
            }
            if halves || (c.evalExamples != nil && b.evalExamples != nil && c.evalExamples != b.evalExamples) {
                row.method = "none: the two sides scored different validation examples (" + (halves ? "val-half's report half against the whole split" : "\(c.evalExamples!) against \(b.evalExamples!) examples") + "), not paired"
                out.append(row)
                boots.append(nil)
                continue
            }
            // Runs of one seed trained on different few-shot samples (another sampler, another
            // manifest) are not the paired comparison "same sample, two methods": Δ only, no test.
            // (A manifest not known, drawn or not hashed, is compared by sampler only.)
            if let rep = pairs.first(where: { rep in
                guard let n = nr[rep]?.sample, let b = br[rep]?.sample else { return false }
                return n.differs(from: b)
            }), let n = nr[rep]?.sample, let b = br[rep]?.sample {
                let what = n.sampler != b.sampler ? "sampler \(n.sampler.rawValue) against \(b.sampler.rawValue)" : "other manifests"
                row.method = "none: the two sides trained on different few-shot samples (\(what), seed \(rep.seed)), not paired"
                out.append(row)
                boots.append(nil)
                continue
            }
            // Paired bootstrap over examples when every paired run has its best-epoch predictions.
            var boot: [Double]? = nil
            // Predictions stored but no validation data here to score them example by example:
            // the t alone, said in the row (the test changed with the machine, in silence).
            var noData = ""
            if !pairs.isEmpty, pairs.allSatisfy({ nr[$0]?.predictions != nil && br[$0]?.predictions != nil }),
               let spec = def.metrics.first(where: { $0.name == metric }), let entry = try? Metrics.entry(def, spec, set: nr[pairs[0]]!.templates),
               entry.aggregation != .groupAllCorrect,  // MultiRC EM has no per-example statistics: data would not change it
               examples(c.task, nr[pairs[0]]!.templates, nr[pairs[0]]!.reportsHalf) == nil {
                noData = " (predictions stored, but no \(c.task) validation data here to resample examples: pass --data-dir; the interval differs with it)"
            }
            if !pairs.isEmpty, pairs.allSatisfy({ nr[$0]?.predictions != nil && br[$0]?.predictions != nil }) {
                var a: [[[Double]]] = [], z: [[[Double]]] = []
                var ok = true
                for s in pairs {
                    // Runs with an evaluation limit scored a prefix of the validation split.
                    guard nr[s]!.reportsHalf == br[s]!.reportsHalf,
                          let fullN = examples(c.task, nr[s]!.templates, nr[s]!.reportsHalf),
                          let fullB = examples(c.task, br[s]!.templates, br[s]!.reportsHalf),
                          fullN.count >= nr[s]!.predictions!.count, fullB.count >= br[s]!.predictions!.count,
                          nr[s]!.predictions!.count == br[s]!.predictions!.count else { ok = false; break }
                    let exN = Array(fullN.prefix(nr[s]!.predictions!.count)), exB = Array(fullB.prefix(br[s]!.predictions!.count))
                    guard
                          let pa = try perExample(def, set: nr[s]!.templates, metric: metric, examples: exN, predictions: nr[s]!.predictions!),
                          let pb = try perExample(def, set: br[s]!.templates, metric: metric, examples: exB, predictions: br[s]!.predictions!) else { ok = false; break }
                    // Every pair on the same examples: the resamples index all pairs with one set of indices.
                    guard a.isEmpty || (pa.count == a[0].count && pb.count == a[0].count) else { ok = false; break }
                    a.append(pa); z.append(pb)
                }
                if ok, let entry = try? def.metrics.first(where: { $0.name == metric })?.entry {
                    boot = pairedBootstrap(new: a, baseline: z, metric: entry, grid: grid)
                    row.method = "paired bootstrap over \(a[0].count) examples × \(pairs.count) seed\(pairs.count == 1 ? "" : "s")"
                        + (design ?? (pairs.count > 1 ? " (both resampled) and paired t" : "")) + oneSampleNote + holeNote
                }
            }
            if let boot {
                // With a few seeds, drawing them with replacement cannot put Δ* below 0 when every
                // seed's difference has the same sign, however far apart they are (+30, +2, +2 read
                // as a certain win): the paired t over the seeds is taken as well, and the larger p
                // (and below, the hull of both intervals) is what is reported.
                row.p = max(bootstrapP(boot), pairs.count >= 2 ? rowT(row, level: 0.95)?.p ?? 0 : 0)
                row.ci = (boot.first!, boot.last!)  // replaced by the Holm-level interval below
            } else if let t = rowT(row, level: 0.95) {
                let d = zip(newVals, baseVals).map { $0 - $1 }
                // Every seed the same non-zero difference: t is infinite (scipy's `ttest_rel` gives
                // p 0 and warns "Results may be unreliable"); said beside the row, not hidden.
                let degenerate = equalDifferences(d) && abs(Statistics.mean(d)) > 1e-9
                row.method = (row.crossed.map { "two-way t over \($0.samples) few-shot samples × \($0.seeds) training seeds (crossed random effects, Satterthwaite df \(String(format: "%.1f", $0.df)))" }
                              ?? (holed ? "paired t over \(pairs.count) seed pairs" : "paired t over \(pairs.count) seeds"))
                    + (degenerate ? " (every seed's difference equal: t infinite, interval [Δ, Δ]; per-example data would give a real interval)" : "")
                    + oneSampleNote + holeNote + noData
                row.p = t.p
            }
            out.append(row)
            boots.append(boot)
        }
        // Holm across tasks, and each interval at its Holm level.
        let (adj, levels) = holm(out.map(\.p))
        for i in out.indices {
            out[i].pHolm = adj[i]
            guard let level = levels[i] else { continue }
            out[i].level = level
            if let boot = boots[i] {
                out[i].ci = bootstrapInterval(boot, level: level)
                if out[i].seeds.count >= 2, let t = rowT(out[i], level: level) {
                    out[i].ci = (min(out[i].ci!.0, t.ci.0), max(out[i].ci!.1, t.ci.1))
                }
            } else if let t = rowT(out[i], level: level) {
                out[i].ci = t.ci
            }
            if let ci = out[i].ci {
                let (lo, hi) = out[i].higherIsBetter ? ci : (-ci.1, -ci.0)  // interval of the improvement
                // And Holm rejects (adjusted p ≤ α): the same where B covers the level; where it
                // does not (about 50 tasks and more at B = 2000) the interval is the resamples'
                // range, whose hull with the t interval could exclude 0 without a significant p.
                let rejected = (out[i].pHolm ?? 1) <= alpha
                out[i].verdict = rejected && lo > 0 ? "win" : (rejected && hi < 0 ? "loss" : "tie")
            }
        }
        return out
    }

    /// Fills a row's invalid-output shares (from the cells) and its reference scores (on the examples
    /// the new side's runs scored, when the cell says which and the data is there).
    /// The invalid shares are means over the row's seeds (`row.seeds`), as its scores are: over
    /// the paired seeds only when a seed of the cell is left out (the share of all seeds once stood
    /// beside the paired mean); nil when the cell's shares cannot be matched to its seeds.
    static func zeroSkill(_ row: inout ComparisonRow, _ new: CellResult, _ base: CellResult?, def: TaskDefinition,
                          examples: (String, TemplateSet, Bool) -> [Example]?) {
        func share(_ c: CellResult) -> Double? {
            guard let st = c.invalidFraction?["best"] else { return nil }
            let reps = c.replicates
            guard st.values.count == reps.count else { return Set(row.seeds) == Set(reps) ? st.mean : nil }
            let bySeed = Dictionary(zip(reps, st.values), uniquingKeysWith: { a, _ in a })
            let vals = row.seeds.compactMap { bySeed[$0] }
            return vals.count == row.seeds.count && !vals.isEmpty ? Statistics.mean(vals) : nil
        }
        row.invalidNew = share(new)
        row.invalidBaseline = base.flatMap(share)
        // `examples` gives the reported examples (the val-half report half when the runs used it); the runs scored a prefix.
        guard let set = new.templates.flatMap(TemplateSet.init(rawValue:)), let n = new.evalExamples,
              let all = examples(new.task, set, new.evalHalf == true) else { return }
        let ex = Array(all.prefix(n))
        row.majority = (try? ReferenceScores.majority(def, set: set, examples: ex))??[row.metric]
        row.chance = (try? ReferenceScores.uniform(def, set: set, examples: ex))??[row.metric]
    }

    /// Cells of the new variant with finished runs that the baseline has no cell for (same task,
    /// model and k), one line each: a variant outside the spec (an evaluated adapter) has no
    /// expected runs, so without these lines such a cell would drop out of the gate unseen.
    public static func unpaired(cells: [CellResult], newVariant: String, baselineVariant: String) -> [String] {
        unpairedRuns(cells: cells, newVariant: newVariant, baselineVariant: baselineVariant).map(\.line)
    }

    /// `unpaired`'s lines, each with the baseline runs it stands for (one per seed of the new cell).
    public static func unpairedRuns(cells: [CellResult], newVariant: String, baselineVariant: String) -> [(line: String, runs: Int)] {
        cells.filter { $0.variant == newVariant && !$0.seeds.isEmpty }.compactMap { c -> (line: String, runs: Int)? in
            let key = CompareCell(task: c.task, model: c.model, k: c.k)
            let paired = cells.contains { $0.variant == baselineVariant && CompareCell(task: $0.task, model: $0.model, k: $0.k) == key && !$0.seeds.isEmpty }
            return paired ? nil : ("baseline '\(baselineVariant)' \(key): no finished runs to pair with \(newVariant)'s (seeds \(c.seeds.map(String.init).joined(separator: ", ")))", c.seeds.count)
        }.sorted { $0.line < $1.line }
    }

    /// Cells and seeds the spec expects that either side lacks (with each run's status).
    public static func missing(expected: [CompareCell: [Replicate]], cells: [CellResult], variant: String, label: String) -> [String] {
        missingRuns(expected: expected, cells: cells, variant: variant, label: label).map(\.line)
    }

    /// `missing`'s lines, one per cell, each with the number of runs it names (the gate counts runs,
    /// not cells: a task missing on both sides of a 3-seed spec is 6 runs). `notRun`: why a run
    /// with no row is missing (a variant no sweep plans is "not evaluated", not "not run").
    public static func missingRuns(expected: [CompareCell: [Replicate]], cells: [CellResult], variant: String, label: String,
                                   notRun: String = "not run, or left out as stale") -> [(line: String, runs: Int)] {
        var lines: [(line: String, runs: Int)] = []
        for task in expected.keys.sorted() {
            let want = expected[task]!
            let have = cells.filter { $0.variant == variant && $0.task == task.task && $0.model == task.model && $0.k == task.k }
            let done = Set(have.flatMap(\.replicates))
            let lacking = want.filter { !done.contains($0) }
            guard !lacking.isEmpty else { continue }
            var statuses = have.flatMap { $0.statuses.filter { $0.key != "done" && $0.value > 0 }.map { "\($0.value) \($0.key)" } }.sorted()
            if statuses.isEmpty { statuses = [(have.isEmpty ? "no counted runs: " : "") + notRun] }
            // In a crossed design a seed has runs on several samples: name both seeds of each run.
            let crossed = want.contains { $0.sampleSeed != $0.seed }
            let names = lacking.map { crossed ? "\($0.seed) (sample \($0.sampleSeed))" : "\($0.seed)" }
            lines.append(("\(label) '\(variant)' \(task): seed\(lacking.count == 1 ? "" : "s") \(names.joined(separator: ", ")) missing (\(statuses.joined(separator: ", ")))", lacking.count))
        }
        return lines
    }

    /// The new variant's diverged runs on the cells the spec expects, one line per cell. A diverged
    /// run is the method's result (its loss went non-finite), not a run still to do: the gate fails
    /// on it with or without `--allow-missing` (which once passed a method that diverged on every
    /// seed of a task, that task simply left out).
    public static func diverged(expected: [CompareCell: [Replicate]], cells: [CellResult], variant: String) -> [String] {
        expected.keys.sorted().compactMap { key in
            let seeds = cells.filter { $0.variant == variant && CompareCell(task: $0.task, model: $0.model, k: $0.k) == key }
                .flatMap(\.divergedSeeds).filter { s in expected[key]!.contains { $0.seed == s } }.sorted()
            return seeds.isEmpty ? nil : "new '\(variant)' \(key): diverged on seed\(seeds.count == 1 ? "" : "s") \(seeds.map(String.init).joined(separator: ", "))"
        }
    }

    public static func markdown(_ rows: [ComparisonRow], new: String, baseline: String, against: String, header: String,
                                missing: [String], missingRuns: Int? = nil, diverged: [String] = [], unpinned: [String] = [], maxRegression: Double?,
                                allowMissing: Bool) -> (text: String, passed: Bool) {
        // `missing` has a line per cell; `missingRuns` the runs those lines name (one per line without it).
        let absent = missingRuns ?? missing.count
        let absentRuns = "\(absent) run\(absent == 1 ? "" : "s")"
        func ms(_ v: [Double]) -> String {
            v.isEmpty ? "—" : v.count == 1 ? String(format: "%.2f (n=1)", v[0])
                : String(format: "%.2f ± %.2f (n=%d)", Statistics.mean(v), Statistics.sampleVariance(v).squareRoot(), v.count)
        }
        func f(_ x: Double?, _ fmt: String) -> String { x.map { String(format: fmt, $0) } ?? "—" }
        func inv(_ f: Double?) -> String { f.map { $0 > 0 ? " [\(PaperTables.percent($0)) invalid]" : "" } ?? "" }
        var out = "# compare: \(new) vs \(baseline) (\(against))\n\n\(header)\n\n"
        // Rows name their model and k when the comparison has more than one of either.
        let cells = Set(rows.map { CompareCell(task: "", model: $0.model, k: $0.k) })
        func name(_ r: ComparisonRow) -> String {
            cells.count > 1 ? CompareCell(task: r.task, model: r.model, k: r.k).description : r.task
        }
        out += "| task | metric | \(new) | \(baseline) | Δ | interval of Δ (level) | p | p (Holm) | test | verdict | majority / chance |\n"
        out += "|---|---|---|---|---|---|---|---|---|---|---|\n"
        // Why each row measures nothing (nil: it measures something), for its verdict, the tally and the gate.
        let nothing = rows.map { $0.nothingToJudge(new: new, baseline: baseline, published: against == "published") }
        for (i, r) in rows.enumerated() {
            let b = against == "published" ? String(format: "%.2f (published)", r.baselineMean) : ms(r.baseline) + inv(r.invalidBaseline)
            let zero = "\(f(r.majority, "%.2f")) / \(f(r.chance, "%.2f"))"
            let ci = r.ci.map { String(format: "[%+.2f, %+.2f]", $0.0, $0.1) + (r.level.map { String(format: " (%.1f%%)", 100 * $0) } ?? "") } ?? "—"
            // A row that measures nothing is no tie (its interval is [0, 0]); the gate says the same.
            let verdict = nothing[i] == nil ? r.verdict : "none (nothing to judge)"
            out += "| \(name(r)) | \(r.metric) | \(ms(r.new))\(inv(r.invalidNew)) | \(b) | \(f(r.delta, "%+.2f")) | \(ci) | \(f(r.p, "%.4f")) | \(f(r.pHolm, "%.4f")) | \(r.method) | \(verdict) | \(zero) |\n"
        }
        out += "\n[k% invalid]: mean over seeds of the share of the best epoch's outputs that name no label. majority / chance: the"
        out += " metric's majority-class score and its exact expectation under uniform random labels, on the validation examples the"
        out += " \(new) runs scored (— without the data or for ReCoRD's majority).\n"
        let judged = rows.indices.filter { rows[$0].ci != nil && nothing[$0] == nil }.map { rows[$0] }
        let w = judged.filter { $0.verdict == "win" }.count, l = judged.filter { $0.verdict == "loss" }.count
        let tested = judged.count
        out += "\n**\(w) win / \(tested - w - l) tie / \(l) loss** over \(tested) tested task\(tested == 1 ? "" : "s")"
        out += " (win/loss: the interval, at the Holm level across tasks, excludes 0 and Holm rejects: adjusted p ≤ \(alpha))."
        // Few seeds make the t part of an interval wide by construction (one degree of freedom
        // with two seeds: its 97.5 % quantile is 12.7), past what a score difference can be.
        let twoSeed = rows.filter { $0.ci != nil && $0.crossed == nil && $0.seeds.count == 2 && $0.method.contains("paired t") }.map(name)
        let beyond = rows.filter { r in r.ci.map { $0.0 < -100 || $0.1 > 100 } ?? false }.map(name)
        if !twoSeed.isEmpty {
            out += "\n\nTwo seeds only (\(twoSeed.joined(separator: ", "))): the paired t-test has 1 degree of freedom (its two-sided t quantile is 12.71 at 95 %, 25.45 at 97.5 %, more at higher Holm levels), so its interval is wide and its p weak whatever the data; the harness's tables average three seeds (the DPT paper's runs; the LoPT paper states none)."
        }
        let fewDF = rows.filter { $0.ci != nil && ($0.crossed?.df ?? .infinity) < 2 }.map(name)
        if !fewDF.isEmpty {
            out += "\n\nCrossed samples × seeds with under 2 degrees of freedom (\(fewDF.joined(separator: ", "))): the two-way t's Satterthwaite df (in the row) is small when one of the few samples or seeds dominates the spread, so its interval is wide by construction; more samples and seeds narrow it."
        }
        // One seed pair: the interval resamples the evaluation examples of one training run each,
        // so it leaves out the seed-to-seed variance (the few-shot sample and the initialisation),
        // often the larger part: narrower than a two-seed row's, yet weaker evidence.
        let oneSeed = rows.filter { $0.ci != nil && $0.seeds.count == 1 }.map(name)
        if !oneSeed.isEmpty {
            out += "\n\nOne seed only (\(oneSeed.joined(separator: ", "))): the interval resamples the validation examples of one run per side; the variance between seeds (few-shot sample and initialisation) is not in it, so it is narrower than the evidence allows; the harness's tables average three seeds (the DPT paper's runs; the LoPT paper states none)."
        }
        if !beyond.isEmpty {
            out += "\n\nInterval past the metric's range (\(beyond.joined(separator: ", "))): a score difference lies in [−100, +100]; the interval's t part reaches beyond it with so few seeds (it is not clipped: read it as uninformative)."
        }
        if !missing.isEmpty {
            out += "\n\nMissing runs (\(absentRuns) in \(missing.count) cell\(missing.count == 1 ? "" : "s")):\n" + missing.map { "- \($0)" }.joined(separator: "\n")
        }
        if !diverged.isEmpty {
            out += "\n\nDiverged runs of \(new) (\(diverged.count) cell\(diverged.count == 1 ? "" : "s")):\n" + diverged.map { "- \($0)" }.joined(separator: "\n")
        }
        if !unpinned.isEmpty {
            out += "\n\nRuns that read data differing from its pin (\(unpinned.count); swept with --allow-unpinned):\n" + unpinned.map { "- \($0)" }.joined(separator: "\n")
        }
        var passed = true
        if let m = maxRegression {
            var reasons: [String] = []
            if !missing.isEmpty && !allowMissing { reasons.append("\(absentRuns) missing (use --allow-missing to gate on what exists)") }
            // Gating on what exists needs something to exist: with no task tested the gate once
            // passed (a spec edited and not re-swept, a misspelt baseline).
            if tested == 0 && rows.isEmpty { reasons.append("no task has runs of both sides to test") }
            reasons += diverged.map { "\($0) (a diverged run fails the gate, also with --allow-missing)" }
            // Runs on data other than the pinned files are not the spec's protocol, whatever they score.
            if !unpinned.isEmpty { reasons.append("\(unpinned.count) run\(unpinned.count == 1 ? "" : "s") read data that differs from its pin (listed above; fails the gate, also with --allow-missing)") }
            for (i, r) in rows.enumerated() {
                // Where neither side's outputs ever name a label both score 0 alike: Δ 0 with a
                // zero-width interval passed non-inferiority with nothing measured. (A baseline that
                // names labels against a new method that never does is judged by the interval.)
                // Also both sides scoring exactly 0 without stored invalid shares (`nothingToJudge`).
                if let why = nothing[i] {
                    reasons.append("\(name(r)): \(why), nothing to judge")
                    continue
                }
                guard let ci = r.ci else {
                    reasons.append("\(name(r)): no interval (" + (r.method.hasPrefix("none:") ? String(r.method.dropFirst(6))
                        : "\(r.seeds.count) paired seed\(r.seeds.count == 1 ? "" : "s"), no stored predictions") + ")")
                    continue
                }
                if r.higherIsBetter, ci.0 < -m { reasons.append(String(format: "%@: lower end %+.2f < −%g", name(r), ci.0, m)) }
                if !r.higherIsBetter, ci.1 > m { reasons.append(String(format: "%@: upper end %+.2f > %g (lower is better)", name(r), ci.1, m)) }
            }
            passed = reasons.isEmpty
            // Under --allow-missing the gate judges what exists: it says so, and how much is not there.
            let runs = allowMissing && !missing.isEmpty
                ? "\(absent) missing or failed run\(absent == 1 ? "" : "s") left out under --allow-missing (listed above), diverged runs failing it"
                : "every expected run present"
            out += "\n\nGate (non-inferiority, margin \(m) points: every task's interval must lie above −\(m), \(runs)): "
            let oneSeedCaveat = oneSeed.isEmpty ? "" : " (\(oneSeed.joined(separator: ", ")) on one seed: seed variance not measured, see above)"
            out += passed ? "passed\(oneSeedCaveat).\n" : "FAILED — " + reasons.joined(separator: "; ") + ".\(oneSeedCaveat)\n"
        } else {
            out += "\n"
        }
        return (out, passed)
    }
}

/// Python `str.strip()` of a prediction (as the metrics read it).
func pyStripped(_ s: String) -> String { pyStrip(s) }

extension Compare {
    /// One config's training settings as (key, value) pairs in a fixed order: preset, optimizer,
    /// lr (and DePT's second group's), weight decay, schedule and warm-up, clip norm, batch size,
    /// epochs or max steps, backbone dropout, source length and decode limit.
    public static func settings(_ c: TrainConfig) -> [(key: String, value: String)] {
        func g(_ x: Float) -> String { String(format: "%g", Double(x)) }
        let gpt2 = ModelFiles.isGPT2(c.model)
        return [
            ("preset", c.protocolName),
            ("optimizer", c.optimizer.rawValue),
            ("lr", g(c.lr) + (c.lrSecondary.map { " (second group \(g($0)))" } ?? "")),
            ("weight_decay", g(c.weightDecay)),
            ("schedule", c.schedule.rawValue + (c.schedule == .constant ? "" : c.warmupSteps.map { " (warm-up \($0) steps)" } ?? " (warm-up ratio \(g(c.warmupRatio)))")),
            ("clip_norm", c.clipNorm.map(g) ?? "none"),
            ("batch_size", String(c.batchSize)),
            ("epochs", String(c.epochs) + (c.maxSteps.map { " (max_steps \($0))" } ?? "")),
            ("dropout", c.backboneDropout ? g(c.dropoutRate) : "off"),
            ("max_source_length", String(c.maxSourceLength)),
            // GPT-2 ranks the verbaliser's words: it decodes nothing, whatever the config says.
            ("decode", gpt2 ? "none (GPT-2)" : c.decodeMaxTokens.map { "\($0)" } ?? String(c.maxTargetLength)),
            // The inputs and label words, and how outputs are scored and the best epoch chosen:
            // LoPT's templates against DPT's (ReCoRD without its prefix), or `templates: respt`
            // in a spec, changed every score and the header named none of it.
            ("templates", c.templates.rawValue),
            ("eval_mode", gpt2 ? "rank (GPT-2: the verbaliser's words)" : (c.evalMode ?? .generate).rawValue),
            ("select_on", (c.selectOn ?? .validation).rawValue),
            ("sampler", (c.sampler ?? .uniform).rawValue),
        ]
    }

    /// The keys of `settings` that change how a trained prompt is scored (its inputs, decoding and
    /// prediction rule), the ones an evaluated adapter's runs are compared on: its training
    /// settings are another program's.
    public static let evaluationSettingKeys: Set<String> = ["max_source_length", "decode", "templates", "eval_mode"]

    /// The training settings `configs` (one side's planned runs) resolved to, in `settings`' order;
    /// a key whose value differs between configs lists each value ("lr 0.3 | 0.5"). Empty for no configs.
    public static func resolvedSettings(_ configs: [TrainConfig]) -> [(key: String, value: String)] {
        guard let first = configs.first else { return [] }
        let all = configs.map(settings)
        return settings(first).indices.map { i in
            var seen: [String] = []
            for s in all where !seen.contains(s[i].value) { seen.append(s[i].value) }
            return (all[0][i].key, seen.joined(separator: " | "))
        }
    }

    /// The settings two sides train a cell with differently, compared cell by cell (a cell: task,
    /// model column and k) over the cells both sides plan, `preset` left out (two presets that
    /// resolve to the same values train alike): "optimizer adafactor vs adamw-torch" where every
    /// such cell differs alike, else "lr 0.3 vs 0.5 in 1 of 3 cells (wic)".
    /// (Comparing each side's summary missed a difference in one cell whose values the other side
    /// had elsewhere.)
    /// `only`: the keys compared (all but `preset` when nil).
    public static func differingSettings(new: [String: TrainConfig], baseline: [String: TrainConfig], only: Set<String>? = nil) -> [String] {
        let common = Set(new.keys).intersection(baseline.keys).sorted()
        guard let first = common.first else { return [] }
        let keys = settings(new[first]!).map(\.key).filter { $0 != "preset" && (only?.contains($0) ?? true) }
        // Each cell's settings once (`settings` reads a checkpoint's config.json to tell GPT-2).
        func table(_ side: [String: TrainConfig]) -> [String: [String: String]] {
            Dictionary(uniqueKeysWithValues: common.map { ($0, Dictionary(settings(side[$0]!).map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })) })
        }
        let newSettings = table(new), baseSettings = table(baseline)
        return keys.compactMap { key in
            var pairs: [(cell: String, a: String, b: String)] = []
            for cell in common {
                let a = newSettings[cell]![key]!, b = baseSettings[cell]![key]!
                if a != b { pairs.append((cell, a, b)) }
            }
            guard let p = pairs.first else { return nil }
            let alike = pairs.allSatisfy { $0.a == p.a && $0.b == p.b }
            let values = alike ? "\(p.a) vs \(p.b)" : pairs.prefix(3).map { "\($0.a) vs \($0.b) (\($0.cell))" }.joined(separator: ", ") + (pairs.count > 3 ? ", …" : "")
            return pairs.count == common.count && alike ? "\(key) \(values)"
                : "\(key) \(values) in \(pairs.count) of \(common.count) cells" + (alike ? " (" + pairs.prefix(3).map(\.cell).joined(separator: ", ") + (pairs.count > 3 ? ", …" : "") + ")" : "")
        }
    }
}

/// The paired differences of a crossed design, `d[i][j]` for few-shot sample i and training seed j
/// (a complete grid, A ≥ 2 samples × S ≥ 2 seeds), as a two-way random-effects model without
/// replication, d_ij = μ + a_i + b_j + e_ij: a training seed fixes the initialisation, shuffling
/// and dropout on every sample, and a sample the training rows under every seed, so neither the
/// A·S pairs (the seeds' spread counted once per sample) nor the A sample means (the seed effects
/// cancel out of their spread) are independent draws. Var(Δ) = σa²/A + σb²/S + σe²/(A·S), whose
/// unbiased ANOVA estimate is (MSA + MSB − MSE)/(A·S) (Searle, Casella & McCulloch 1992, §4;
/// MSA = S·Σ(d̄_i· − d̄)²/(A−1), MSB = A·Σ(d̄_·j − d̄)²/(S−1), MSE the residual on (A−1)(S−1) df).
/// The estimate used is (MSA + MSB)/(A·S), which leaves out −MSE (biased up by σe²/(A·S)): with
/// the negative term, Satterthwaite's df fell below 1 near where the estimate met the independent
/// pairs' (0.2 on a 2 × 2 grid) and the interval jumped from ±10⁵ to a "win" as noise grew. Its
/// Satterthwaite df, (MSA + MSB)²/(MSA²/(A−1) + MSB²/(S−1)), lies between min(A−1, S−1) and
/// A + S − 2 (min(A, S) − 1 when both mean squares are 0). The variance is never taken below the
/// independent pairs' s²/(A·S). With two samples MSA is often small by chance while MSB lifts the
/// df, and that t alone covered 90–93 % at 95 % in simulation; so `test` also takes the t over the
/// samples' means (MSA/(A·S) on A − 1 df) and over the seeds' means (MSB/(A·S) on S − 1 df) and
/// reports the largest p and the hull of the three intervals (95–98 % in the same simulations).
public struct CrossedDifferences: Equatable {
    public var samples: Int, seeds: Int
    public var mean: Double
    /// The variance of `mean` and its degrees of freedom (the two-way t's).
    public var variance: Double, df: Double
    /// The samples' and the seeds' mean differences (the marginal t's of `test`).
    public var sampleMeans: [Double], seedMeans: [Double]

    public init(_ d: [[Double]]) {
        let a = d.count, b = d[0].count, n = Double(a * b)
        let all = d.flatMap { $0 }
        let grand = Statistics.mean(all)
        let rowMeans = d.map(Statistics.mean), colMeans = (0..<b).map { j in Statistics.mean(d.map { $0[j] }) }
        let msa = Double(b) * rowMeans.reduce(0) { $0 + ($1 - grand) * ($1 - grand) } / Double(a - 1)
        let msb = Double(a) * colMeans.reduce(0) { $0 + ($1 - grand) * ($1 - grand) } / Double(b - 1)
        let den = msa * msa / Double(a - 1) + msb * msb / Double(b - 1)
        samples = a; seeds = b; mean = grand
        sampleMeans = rowMeans; seedMeans = colMeans
        variance = max((msa + msb) / n, Statistics.sampleVariance(all) / n)
        df = den > 0 ? (msa + msb) * (msa + msb) / den : Double(min(a, b) - 1)
    }

    /// Two-sided p of Δ = 0 and the interval at `level`: the largest p and the hull of the
    /// two-way t (Student's t on `df`) and the paired t over `sampleMeans` and over `seedMeans`. A
    /// zero variance with Δ ≠ 0 gives p 0 and [Δ, Δ] for that t, as `Compare.pairedT` does.
    public func test(level: Double) -> (p: Double, ci: (Double, Double)) {
        let se = variance.squareRoot()
        let twoWay: (p: Double, ci: (Double, Double))
        if se > 1e-12 {
            let q = Statistics.studentQuantile(1 - (1 - level) / 2, df: df)
            twoWay = (Statistics.twoSidedP(t: mean / se, df: df), (mean - q * se, mean + q * se))
        } else {
            twoWay = abs(mean) <= 1e-9 ? (1, (0, 0)) : (0, (mean, mean))
        }
        return Compare.largestPAndHull([twoWay] + [sampleMeans, seedMeans].compactMap { Compare.pairedT($0, level: level) })!
    }

    /// The complete grid of `pairs` (indices into it: `grid[i][j]`, sample i, seed j, both in
    /// ascending order), or nil unless every seed has a pair on every sample, with at least two
    /// samples and two seeds, and one pair per (sample, seed).
    public static func grid(_ pairs: [Replicate]) -> [[Int]]? {
        let samples = Set(pairs.map(\.sampleSeed)).sorted(), seeds = Set(pairs.map(\.seed)).sorted()
        guard samples.count >= 2, seeds.count >= 2, pairs.count == samples.count * seeds.count else { return nil }
        var at: [Replicate: Int] = [:]
        for (i, p) in pairs.enumerated() { at[p] = i }
        var out: [[Int]] = []
        for sm in samples {
            var row: [Int] = []
            for sd in seeds {
                guard let i = at[Replicate(seed: sd, sampleSeed: sm)] else { return nil }
                row.append(i)
            }
            out.append(row)
        }
        return out
    }
}
