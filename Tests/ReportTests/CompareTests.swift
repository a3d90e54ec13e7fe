import Foundation
import Reports
import Store
import Tasks
import TestSupport
import XCTest

/// The statistics behind `compare` and its gate, against hand-worked values.
final class GateStatisticsTests: XCTestCase {
    func testStudentQuantileMatchesTables() {
        XCTAssertEqual(Statistics.studentQuantile(0.975, df: 2), 4.302653, accuracy: 1e-5)
        XCTAssertEqual(Statistics.studentQuantile(0.975, df: 4), 2.776445, accuracy: 1e-5)
        XCTAssertEqual(Statistics.studentQuantile(0.995, df: 10), 3.169273, accuracy: 1e-5)
    }

    /// d = (1, 2, 3): mean 2, se 1/√3, t = 2√3; with df 2 the two-sided p is 1 − |t|/√(t² + 2) = 0.074180
    /// and the 95 % interval 2 ± 4.302653/√3 = [−0.484138, 4.484138].
    func testPairedTByHand() throws {
        let r = try XCTUnwrap(Compare.pairedT([1, 2, 3], level: 0.95))
        XCTAssertEqual(r.p, 1 - 12.0.squareRoot() / 14.0.squareRoot(), accuracy: 1e-9)
        XCTAssertEqual(r.ci.0, 2 - 4.302653 / 3.0.squareRoot(), accuracy: 1e-5)
        XCTAssertEqual(r.ci.1, 2 + 4.302653 / 3.0.squareRoot(), accuracy: 1e-5)
        XCTAssertNil(Compare.pairedT([1], level: 0.95))
    }

    /// Two seeds give the paired t one degree of freedom: differences (+10, −30) have mean −10 and
    /// standard error 20 (sd √800 / √2), so the 95 % interval is −10 ± 12.706·20 = [−264.1, +244.1],
    /// past what a score difference can be. The comparison now says both (it printed the interval
    /// without a word); a three-seed row inside the range gets neither note.
    func testTwoSeedIntervalsAreNamed() throws {
        let two = try XCTUnwrap(Compare.pairedT([10, -30], level: 0.95))
        XCTAssertEqual(two.ci.0, -10 - 12.7062 * 20, accuracy: 1e-2)
        XCTAssertEqual(two.ci.1, -10 + 12.7062 * 20, accuracy: 1e-2)
        func row(_ task: String, _ seeds: Int, _ ci: (Double, Double)) -> ComparisonRow {
            ComparisonRow(task: task, model: "t5-base", metric: "accuracy", new: Array(repeating: 50, count: seeds), baseline: Array(repeating: 50, count: seeds),
                          seeds: (1...seeds).map { Replicate(seed: $0, sampleSeed: $0) }, baselineMean: 50, delta: -10,
                          method: "paired t over \(seeds) seeds", p: 0.5, pHolm: 0.5, ci: ci, level: 0.95, verdict: "tie")
        }
        let (text, _) = Compare.markdown([row("cb", 2, two.ci), row("rte", 3, (-5, 5))], new: "a", baseline: "b", against: "stored", header: "",
                                         missing: [], maxRegression: nil, allowMissing: false)
        XCTAssertTrue(text.contains("Two seeds only (cb): the paired t-test has 1 degree of freedom"), text)
        XCTAssertTrue(text.contains("Interval past the metric's range (cb)"), text)
        let (three, _) = Compare.markdown([row("rte", 3, (-5, 5))], new: "a", baseline: "b", against: "stored", header: "",
                                          missing: [], maxRegression: nil, allowMissing: false)
        XCTAssertFalse(three.contains("Two seeds only") || three.contains("past the metric's range"), three)
        XCTAssertFalse(three.contains("One seed only") || text.contains("One seed only"), three)
        // 12.71 is the 95 % quantile (one task, or Holm's last rank); 25.45 the 97.5 % one.
        XCTAssertTrue(text.contains("12.71 at 95 %, 25.45 at 97.5 %"), text)
        XCTAssertEqual(Statistics.studentQuantile(0.9875, df: 1), 25.4517, accuracy: 1e-3)
    }

    /// A one-seed row's interval (a bootstrap over one run's examples per side) leaves out the
    /// variance between seeds: it was printed narrower than a two-seed row's without a word and the
    /// gate passed on it silently. Now named under the table and in the gate's verdict.
    func testOneSeedRowsAreNamed() {
        var one = ComparisonRow(task: "cb", model: "t5-base", metric: "accuracy", new: [18.75], baseline: [56.25],
                                seeds: [Replicate(seed: 1, sampleSeed: 1)], baselineMean: 56.25, delta: -37.5,
                                method: "paired bootstrap over 16 examples × 1 seed", p: 0.24, pHolm: 0.24, ci: (-68.75, 0), level: 0.975, verdict: "tie")
        var (text, passed) = Compare.markdown([one], new: "a", baseline: "b", against: "stored", header: "",
                                              missing: [], maxRegression: 70, allowMissing: false)
        XCTAssertTrue(passed, text)
        XCTAssertTrue(text.contains("One seed only (cb): the interval resamples the validation examples of one run per side"), text)
        XCTAssertTrue(text.contains("passed (cb on one seed: seed variance not measured, see above)."), text)
        one.seeds = [Replicate(seed: 1, sampleSeed: 1), Replicate(seed: 2, sampleSeed: 2)]
        (text, passed) = Compare.markdown([one], new: "a", baseline: "b", against: "stored", header: "",
                                          missing: [], maxRegression: 70, allowMissing: false)
        XCTAssertFalse(text.contains("One seed only") || text.contains("on one seed"), text)
        // A failed verdict names them too.
        one.seeds = [Replicate(seed: 1, sampleSeed: 1)]
        (text, passed) = Compare.markdown([one], new: "a", baseline: "b", against: "stored", header: "",
                                          missing: [], maxRegression: 5, allowMissing: false)
        XCTAssertFalse(passed, text)
        XCTAssertTrue(text.contains("FAILED — ") && text.contains(". (cb on one seed: seed variance not measured, see above)"), text)
    }

    /// Holm on p = (0.01, 0.04, 0.03): ranks 0.01 → 3·0.01 = 0.03 (rejected at 0.05/3); 0.03 → 0.06
    /// (not rejected at 0.025: the step-down stops); 0.04 → max(0.06, 0.04). Intervals from the stop
    /// on keep the stopping rank's level, so they cannot exclude 0 while the adjusted p says tie.
    func testHolmByHand() {
        let (adj, levels) = Compare.holm([0.01, 0.04, 0.03, nil])
        XCTAssertEqual(adj[0]!, 0.03, accuracy: 1e-12)
        XCTAssertEqual(adj[1]!, 0.06, accuracy: 1e-12)
        XCTAssertEqual(adj[2]!, 0.06, accuracy: 1e-12)
        XCTAssertNil(adj[3])
        XCTAssertEqual(levels[0]!, 1 - 0.05 / 3, accuracy: 1e-12)
        XCTAssertEqual(levels[1]!, 0.975, accuracy: 1e-12)
        XCTAssertEqual(levels[2]!, 0.975, accuracy: 1e-12)
    }

    /// The interval and the p-value of the bootstrap follow one convention: with B = 2000
    /// resamples of which k are ≤ 0 (the rest > 0), p = 2(1 + k)/(B + 1), and the 95 % interval's
    /// lower end is the r-th smallest, r = ⌊2001 · 0.025⌋ = 50. k = 50: p = 102/2001 = 0.05097 > 0.05
    /// and the interval reaches 0 (the old ⌊0.025 · 2000⌋ + 1 = 51st value excluded it: a win at
    /// p 0.051); k = 49: p = 100/2001 = 0.04998 and the interval excludes 0.
    func testBootstrapIntervalFollowsThePValuesConvention() {
        for (k, excludes) in [(50, false), (49, true)] {
            let boot = [Double](repeating: -1, count: k) + [Double](repeating: 1, count: 2000 - k)
            XCTAssertEqual(Compare.bootstrapP(boot), 2 * Double(1 + k) / 2001, accuracy: 1e-12)
            let ci = Compare.bootstrapInterval(boot, level: 0.95)
            XCTAssertEqual(ci.0 > 0, excludes, "k = \(k): \(ci)")
            XCTAssertEqual(Compare.bootstrapP(boot) <= 0.05, excludes)
            XCTAssertEqual(ci.1, 1)
        }
        // Upper end: the r-th largest. Values 1…2000: r = 50 → [50, 1951].
        let ci = Compare.bootstrapInterval((1...2000).map(Double.init), level: 0.95)
        XCTAssertEqual(ci.0, 50)
        XCTAssertEqual(ci.1, 1951)
        // Too few resamples for the level: the extremes.
        XCTAssertEqual(Compare.bootstrapInterval([1, 2, 3], level: 0.95).0, 1)
    }

    /// Equal p-values get one interval level whatever the order of the rows: four tasks at the
    /// bootstrap's floor p = 2/2001 were printed at 99.2, 99.0, 98.8 and 98.3 %. Holm with m = 5
    /// (the four and one task at 0.5): the first of the tie is tested at 0.05/5, so all four
    /// intervals are at 1 − 0.01; the adjusted p-values are 5p for all four and 0.5 for the fifth
    /// (statsmodels `multipletests(method="holm")` by hand: max over the step-down of (m − rank)·p).
    func testHolmTiesShareOneLevel() {
        let p = 2.0 / 2001
        for order in [[p, p, p, p, 0.5], [0.5, p, p, p, p]] {
            let (adj, levels) = Compare.holm(order)
            for (i, v) in order.enumerated() where v == p {
                XCTAssertEqual(levels[i]!, 1 - 0.05 / 5, accuracy: 1e-12, "\(order)")
                XCTAssertEqual(adj[i]!, 5 * p, accuracy: 1e-12)
            }
            let big = order.firstIndex(of: 0.5)!
            XCTAssertEqual(adj[big]!, 0.5, accuracy: 1e-12)
            XCTAssertEqual(levels[big]!, 0.95, accuracy: 1e-12)
        }
    }

    /// The paired bootstrap of identical systems is exactly 0; of a system right on 10 more of 100
    /// examples it centres on +10 with an interval that excludes 0.
    func testPairedBootstrapByHand() {
        let base = (0..<100).map { [$0 % 2 == 0 ? 1.0 : 0] }
        let better = (0..<100).map { [$0 % 2 == 0 || $0 % 10 == 1 ? 1.0 : 0] }
        let accuracy = try! MetricRegistry.entry("accuracy")
        let same = Compare.pairedBootstrap(new: [base], baseline: [base], metric: accuracy, resamples: 500)
        XCTAssertTrue(same.allSatisfy { $0 == 0 })
        let d = Compare.pairedBootstrap(new: [better, better], baseline: [base, base], metric: accuracy, resamples: 2000)
        XCTAssertEqual(d[1000], 10, accuracy: 2.5)
        XCTAssertGreaterThan(d[49], 0)  // 2.5 % quantile above 0
    }

    /// Seed pairs are resampled as well as examples: one seed far better and two identical ones is
    /// no certain win. Resampling examples alone put every Δ* near +10 (the interval and p said
    /// win); with the seeds drawn, about (2/3)³ of the resamples hold only identical pairs (Δ* = 0).
    func testPairedBootstrapResamplesSeeds() {
        let base = (0..<100).map { [$0 % 2 == 0 ? 1.0 : 0] }
        let far = (0..<100).map { [$0 % 2 == 0 || $0 % 10 < 6 ? 1.0 : 0] }  // +30 points
        let accuracy = try! MetricRegistry.entry("accuracy")
        let d = Compare.pairedBootstrap(new: [far, base, base], baseline: [base, base, base], metric: accuracy, resamples: 2000)
        XCTAssertEqual(d[1000], 10, accuracy: 5)  // the median draws the far seed once
        XCTAssertEqual(d[49], 0, "the 2.5 % quantile is a resample without the far seed")
        let zeros = d.filter { $0 == 0 }.count
        XCTAssertEqual(Double(zeros) / 2000, 8.0 / 27, accuracy: 0.04)
        XCTAssertGreaterThan(Compare.bootstrapP(d), 0.5)
        // p never reads 0: all 2000 resamples above 0 give 2 / 2001.
        let sure = Compare.pairedBootstrap(new: [far, far], baseline: [base, base], metric: accuracy, resamples: 2000)
        XCTAssertGreaterThan(sure[0], 0)
        XCTAssertEqual(Compare.bootstrapP(sure), 2.0 / 2001, accuracy: 1e-15)
    }

    /// Missing runs of a crossed design name each run's seed and sample seed (a bare "seed 3" could
    /// not be told from the seed-3 runs on other samples), and a run not counted says "not run, or
    /// left out as stale" (a partly counted cell's stale seed has a row that reads leave out: it
    /// said "not run").
    func testMissingRunsOfACrossedDesignNameTheirSample() {
        let key = CompareCell(task: "cb", model: "t5-small", k: 8)
        let have = CellResult(cell: "new|cb", variant: "new", method: "new", task: "cb", model: "t5-small", k: 8, seeds: [3], statuses: ["done": 1],
                              trainableParams: nil, best: ["accuracy": Stat([1])], last: [:], divergedSeeds: [], probe: nil)
        var crossed = have
        crossed.sampleSeeds = [1]
        let lines = Compare.missing(expected: [key: [Replicate(seed: 3, sampleSeed: 1), Replicate(seed: 3, sampleSeed: 3)]], cells: [crossed], variant: "new", label: "new")
        XCTAssertEqual(lines, ["new 'new' cb t5-small k=8: seed 3 (sample 3) missing (not run, or left out as stale)"])
        let plain = Compare.missing(expected: [key: [Replicate(3), Replicate(4)]], cells: [have], variant: "new", label: "new")
        XCTAssertEqual(plain, ["new 'new' cb t5-small k=8: seed 4 missing (not run, or left out as stale)"])
    }

    /// Three seeds whose differences all have one sign but scatter widely (+30, +2, +2 points):
    /// drawing seeds cannot put Δ* below 0 then, and the bootstrap alone called it a sure win. The
    /// row takes the paired t over the seeds as well (the larger p, the hull of both intervals):
    /// t = 1.2 on 2 df, a tie.
    func testScatteredSeedsOfOneSignAreNoSureWin() throws {
        let def = try TaskRegistry.definition("rte")
        let ex = try Templates.examples(try DataLoader.load(def, split: .validation, dataDir: try sharedData()), set: .dpt, training: false)
        let n = 200
        let gold = ex.prefix(n).map(\.target)
        func preds(correct: Int) -> [String] { (0..<n).map { $0 < correct ? gold[$0] : "zzz" } }
        let base = preds(correct: 100), news = [preds(correct: 160), preds(correct: 104), preds(correct: 104)]  // +30, +2, +2
        func cell(_ v: String, _ values: [Double]) -> CellResult {
            CellResult(cell: "\(v)|rte", variant: v, method: v, task: "rte", model: "t5-small", k: 8, seeds: [1, 2, 3], statuses: ["done": 3],
                       trainableParams: nil, best: ["accuracy": Stat(values)], last: [:], divergedSeeds: [], probe: nil)
        }
        let cells = [cell("new", [80, 52, 52]), cell("pt", [50, 50, 50])]
        let rows = try Compare.rows(cells: cells, newVariant: "new", baselineVariant: "pt", published: nil, paper: "dpt", table: "table1",
                                    runs: { v, _ in (1...3).map { PairedRun(seed: $0, predictions: v == "new" ? news[$0 - 1] : base, templates: .dpt) } },
                                    examples: { _, _, _ in Array(ex.prefix(n)) })
        let r = try XCTUnwrap(rows.first)
        XCTAssertTrue(r.method.hasPrefix("paired bootstrap over 200 examples × 3 seeds (both resampled) and paired t"), r.method)
        XCTAssertEqual(r.delta, 34.0 / 3, accuracy: 1e-9)
        let t = try XCTUnwrap(Compare.pairedT([30, 2, 2], level: 0.95))
        XCTAssertEqual(r.p!, t.p, accuracy: 1e-12, "the paired t's p is the larger")
        XCTAssertGreaterThan(r.p!, 0.3)
        let ci = try XCTUnwrap(r.ci)
        XCTAssertLessThan(ci.0, 0)
        XCTAssertEqual(r.verdict, "tie")
        // The same stored predictions without the validation data here: the t alone, said in the
        // row (the test changed with the machine in silence).
        let noData = try Compare.rows(cells: cells, newVariant: "new", baselineVariant: "pt", published: nil, paper: "dpt", table: "table1",
                                      runs: { v, _ in (1...3).map { PairedRun(seed: $0, predictions: v == "new" ? news[$0 - 1] : base, templates: .dpt) } },
                                      examples: { _, _, _ in nil })
        XCTAssertTrue(noData.first?.method.hasPrefix("paired t over 3 seeds (predictions stored, but no rte validation data here") == true, noData.first?.method ?? "")
    }

    /// A crossed design (every training seed on every few-shot sample): a seed's initialisation
    /// and a sample's rows each recur across pairs, so the t runs on the two-way variance of the
    /// mean. The docs' "+30, +2, +2" seeds on 2 samples: differences [[30, 2, 2], [30, 2, 2]] (rows
    /// samples, columns seeds). By hand: Δ = 34/3; MSA = 0 (equal sample means), MSB = 2·(18⅔² +
    /// 2·9⅓²)/2 = 1568/3, MSE = 0, so Var = MSB/6 = 784/9 (se 28/3) on Satterthwaite df 2; t = 17/14,
    /// and on 2 df the two-sided p = 1 − t/√(2 + t²) = 1 − 17/√681 = 0.348559, the interval
    /// 34/3 ± 4.302653·28/3. A t over the sample means (the seed effects cancel out of their spread)
    /// had a zero-width interval and called this a win; over the 6 pairs as independent, p 0.113.
    func testCrossedSeedsAndSamplesAreBothRandom() throws {
        func cell(_ v: String, _ values: [Double]) -> CellResult {
            var c = CellResult(cell: "\(v)|rte", variant: v, method: v, task: "rte", model: "t5-small", k: 8, seeds: [1, 2, 3, 1, 2, 3], statuses: ["done": 6],
                               trainableParams: nil, best: ["accuracy": Stat(values)], last: [:], divergedSeeds: [], probe: nil)
            c.sampleSeeds = [1, 1, 1, 2, 2, 2]
            return c
        }
        let cells = [cell("new", [80, 52, 52, 80, 52, 52]), cell("pt", [50, 50, 50, 50, 50, 50])]
        let reps = zip([1, 2, 3, 1, 2, 3], [1, 1, 1, 2, 2, 2]).map { Replicate(seed: $0, sampleSeed: $1) }
        let rows = try Compare.rows(cells: cells, newVariant: "new", baselineVariant: "pt", published: nil, paper: "dpt", table: "table1",
                                    runs: { _, _ in reps.map { PairedRun(seed: $0.seed, sampleSeed: $0.sampleSeed, predictions: nil, templates: .dpt) } },
                                    examples: { _, _, _ in nil })
        let r = try XCTUnwrap(rows.first)
        XCTAssertEqual(r.delta, 34.0 / 3, accuracy: 1e-12)
        let c = try XCTUnwrap(r.crossed)
        XCTAssertEqual(c.variance, 784.0 / 9, accuracy: 1e-9)
        XCTAssertEqual(c.df, 2, accuracy: 1e-9)
        XCTAssertTrue(r.method.hasPrefix("two-way t over 2 few-shot samples × 3 training seeds"), r.method)
        XCTAssertEqual(r.p ?? .nan, 1 - 17 / 681.0.squareRoot(), accuracy: 1e-6)
        XCTAssertEqual(r.ci?.0 ?? .nan, 34.0 / 3 - 4.302653 * 28 / 3, accuracy: 1e-4)
        XCTAssertEqual(r.ci?.1 ?? .nan, 34.0 / 3 + 4.302653 * 28 / 3, accuracy: 1e-4)
        XCTAssertEqual(r.verdict, "tie")
        // The same runs with one pair missing (a hole in the grid): the largest p of the t over
        // the pairs, the samples' means and the seeds' means, and the row says so.
        var holed = cells
        for i in holed.indices { holed[i].seeds.removeLast(); holed[i].sampleSeeds!.removeLast(); holed[i].best["accuracy"] = Stat(Array(holed[i].best["accuracy"]!.values.dropLast())) }
        let holedRows = try Compare.rows(cells: holed, newVariant: "new", baselineVariant: "pt", published: nil, paper: "dpt", table: "table1",
                                         runs: { _, _ in reps.dropLast().map { PairedRun(seed: $0.seed, sampleSeed: $0.sampleSeed, predictions: nil, templates: .dpt) } },
                                         examples: { _, _, _ in nil })
        XCTAssertNil(holedRows.first?.crossed)
        XCTAssertTrue(holedRows.first?.method.contains("a crossed design with missing runs: the largest p and the hull of the paired t over the pairs, the samples' means and the seeds' means") == true,
                      holedRows.first?.method ?? "")
        // Differences [[30, 2, 2], [30, 2]]: the seeds' means (30, 2, 2) carry the spread, as in the
        // full grid (scipy's ttest_1samp: the pairs as independent p 0.127 on 4 df, the samples'
        // means (34/3, 16) p 0.108, the seeds' means p 0.349, which the row reports).
        XCTAssertEqual(holedRows.first?.p ?? .nan, 0.3485585845465547, accuracy: 1e-9)
        // One run per sample (the usual design, sample seed = seed) stays a t over the seed pairs.
        var plain = cells
        for i in plain.indices { plain[i].sampleSeeds = nil; plain[i].seeds = [1, 2, 3, 4, 5, 6] }
        let plainRows = try Compare.rows(cells: plain, newVariant: "new", baselineVariant: "pt", published: nil, paper: "dpt", table: "table1",
                                         runs: { _, _ in (1...6).map { PairedRun(seed: $0, predictions: nil, templates: .dpt) } },
                                         examples: { _, _, _ in nil })
        XCTAssertNil(plainRows.first?.crossed)
        XCTAssertTrue(plainRows.first?.method.hasPrefix("paired t over 6 seeds") == true, plainRows.first?.method ?? "")
    }

    /// `CrossedDifferences` by hand. [[10, 12], [−2, 0]]: Δ 5, row means 11 and −1 (MSA = 2·72 =
    /// 144), column means 4 and 6 (MSB = 2·2 = 4): Var = (144 + 4)/4 = 37 on Satterthwaite df
    /// 148²/(144² + 4²) = 21904/20752. [[1, 3], [3, 1]]: MSA = MSB = 0, so the independent pairs'
    /// s²/n = (4/3)/4 is kept, on min(A, S) − 1 = 1 df.
    /// Across the floor the interval changes continuously and never narrows as noise grows: 5 +
    /// [[1.5 + ε, 1.5 − ε], [−1.5 − ε, −1.5 + ε]] has MSA = 9, MSB = 0 (Var 9/4 on 1 df) while the
    /// pairs' s²/n = (9 + 4ε²)/12 is below it, up to ε = √4.5; at ε = 3 it is 45/12, on 1 df. (With
    /// −MSE in the estimate the df fell to 0.2 at ε = 1.06, an interval of ±781,679, and at
    /// ε = 1.07 the floor's 3 df gave [1.61, 8.39], a win.)
    func testCrossedDifferencesByHand() {
        let a = CrossedDifferences([[10, 12], [-2, 0]])
        XCTAssertEqual(a.mean, 5, accuracy: 1e-12)
        XCTAssertEqual(a.variance, 37, accuracy: 1e-12)
        XCTAssertEqual(a.df, 21904.0 / 20752, accuracy: 1e-12)
        let b = CrossedDifferences([[1, 3], [3, 1]])
        XCTAssertEqual(b.variance, 1.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(b.df, 1)
        var width = 0.0
        for e in [1.0, 1.06, 1.07, 2.0, 2.2, 3.0] {
            let c = CrossedDifferences([[6.5 + e, 6.5 - e], [3.5 - e, 3.5 + e]])
            XCTAssertEqual(c.df, 1, accuracy: 1e-12, "ε \(e)")
            XCTAssertEqual(c.variance, max(9.0 / 4, (9 + 4 * e * e) / 12), accuracy: 1e-12, "ε \(e)")
            let t = c.test(level: 0.95)
            XCTAssertGreaterThanOrEqual(t.ci.1 - t.ci.0, width - 1e-9, "ε \(e)")
            XCTAssertLessThan(t.ci.0, 0, "ε \(e): a tie at every ε")
            width = t.ci.1 - t.ci.0
        }
        XCTAssertEqual(width / 2, 12.7062047 * (45.0 / 12).squareRoot(), accuracy: 1e-4)
        // Two samples whose means differ little by chance while the seeds lift the df: the two-way
        // t alone (p 0.2974 on df 1.054) is narrower than the t over the samples' means (3.8, 1.4:
        // scipy's ttest_1samp p 0.30389), whose p the test reports.
        let d = CrossedDifferences([[4, 5, 4, 5, 4], [1, 2, 1, 2, 1]])
        XCTAssertEqual(d.variance, 2.31, accuracy: 1e-12)
        XCTAssertEqual(d.test(level: 0.95).p, 0.3038875086674431, accuracy: 1e-9)
        XCTAssertEqual(CrossedDifferences.grid([Replicate(seed: 1, sampleSeed: 1), Replicate(seed: 2, sampleSeed: 1), Replicate(seed: 1, sampleSeed: 2), Replicate(seed: 2, sampleSeed: 2)]),
                       [[0, 1], [2, 3]])
        XCTAssertNil(CrossedDifferences.grid([Replicate(seed: 1, sampleSeed: 1), Replicate(seed: 2, sampleSeed: 1), Replicate(seed: 1, sampleSeed: 2)]))
        XCTAssertNil(CrossedDifferences.grid([Replicate(1), Replicate(2), Replicate(3)]))
    }

    /// The crossed bootstrap draws samples and seeds independently and takes every drawn pair: with
    /// Δ +100 on every pair of seed 1 and −100 on every pair of seed 2 (on any examples), the two
    /// seeds drawn give Δ* +100, 0 or −100 only; drawing the 4 pairs as independent gives ±50 too.
    func testCrossedBootstrapDrawsSamplesAndSeeds() throws {
        let entry = try XCTUnwrap(try TaskRegistry.definition("rte").metrics.first { $0.name == "accuracy" }?.entry)
        let right = [[Double]](repeating: [1], count: 20), wrong = [[Double]](repeating: [0], count: 20)
        // Pairs in grid order: (sample 1, seed 1), (sample 1, seed 2), (sample 2, seed 1), (sample 2, seed 2).
        let new = [right, wrong, right, wrong], base = [wrong, right, wrong, right]
        let crossed = Compare.pairedBootstrap(new: new, baseline: base, metric: entry, resamples: 400, grid: [[0, 1], [2, 3]])
        XCTAssertEqual(Set(crossed.map { $0.rounded() }), [100, 0, -100])
        let independent = Compare.pairedBootstrap(new: new, baseline: base, metric: entry, resamples: 400)
        XCTAssertTrue(Set(independent.map { $0.rounded() }).isSuperset(of: [50, -50]), "\(Set(independent))")
    }

    /// A val-half run against a full-validation run scored different examples: Δ only, no test
    /// and no verdict, and the gate fails on the row (a paired t over the seeds called a win at p
    /// 0.0000 from one set of predictions scored on the two example sets). Likewise other
    /// evaluation limits.
    func testRunsOfDifferentValidationExamplesAreNotPaired() throws {
        func cell(_ v: String, _ values: [Double], half: Bool?, examples: Int?) -> CellResult {
            var c = CellResult(cell: "\(v)|rte", variant: v, method: v, task: "rte", model: "t5-small", k: 8, seeds: [1, 2, 3], statuses: ["done": 3],
                               trainableParams: nil, best: ["accuracy": Stat(values)], last: [:], divergedSeeds: [], probe: nil)
            c.evalHalf = half
            c.evalExamples = examples
            return c
        }
        for (newCell, why) in [(cell("new", [60, 62, 61], half: true, examples: 138), "val-half's report half against the whole split"),
                               (cell("new", [60, 62, 61], half: nil, examples: 100), "100 against 277 examples")] {
            let cells = [newCell, cell("pt", [50, 51, 52], half: nil, examples: 277)]
            let rows = try Compare.rows(cells: cells, newVariant: "new", baselineVariant: "pt", published: nil, paper: "dpt", table: "table1",
                                        runs: { v, _ in (1...3).map { PairedRun(seed: $0, predictions: nil, templates: .dpt, reportsHalf: v == "new" && newCell.evalHalf == true) } },
                                        examples: { _, _, _ in nil })
            let r = try XCTUnwrap(rows.first)
            XCTAssertEqual(r.delta, 10, accuracy: 1e-9)
            XCTAssertTrue(r.method.contains("scored different validation examples (\(why))"), r.method)
            XCTAssertNil(r.p)
            XCTAssertNil(r.ci)
            XCTAssertEqual(r.verdict, "—")
            let gate = Compare.markdown(rows, new: "new", baseline: "pt", against: "stored", header: "", missing: [], maxRegression: 5, allowMissing: false)
            XCTAssertFalse(gate.passed)
            XCTAssertTrue(gate.text.contains("rte: no interval (the two sides scored different validation examples"), gate.text)
        }
    }

    /// Runs of one seed trained on different few-shot samples (the balanced sampler against the
    /// uniform one, or another manifest) were paired and gated as "same sample, two methods": Δ
    /// only, no test, the gate fails. An unknown manifest ("?": drawn) is compared by sampler only.
    func testRunsOfDifferentFewShotSamplesAreNotPaired() throws {
        func cell(_ v: String, _ values: [Double]) -> CellResult {
            CellResult(cell: "\(v)|rte", variant: v, method: v, task: "rte", model: "t5-small", k: 8, seeds: [1, 2, 3], statuses: ["done": 3],
                       trainableParams: nil, best: ["accuracy": Stat(values)], last: [:], divergedSeeds: [], probe: nil)
        }
        let sha = String(repeating: "a", count: 64), other = String(repeating: "b", count: 64)
        let cells = [cell("new", [60, 62, 61]), cell("pt", [50, 51, 52])]
        func sample(_ sampler: SamplerKind, _ manifest: String?) -> FewShotSample { FewShotSample(sampler: sampler, manifest: manifest) }
        for (newSample, baseSample, why) in [(sample(.balanced, nil), sample(.uniform, sha), "sampler balanced against uniform"),
                                             (sample(.uniform, other), sample(.uniform, sha), "other manifests"),
                                             (sample(.uniform, nil), sample(.uniform, sha), nil), (sample(.uniform, sha), sample(.uniform, sha), nil)]
                as [(FewShotSample, FewShotSample, String?)] {
            let rows = try Compare.rows(cells: cells, newVariant: "new", baselineVariant: "pt", published: nil, paper: "dpt", table: "table1",
                                        runs: { v, _ in (1...3).map { PairedRun(seed: $0, predictions: nil, templates: .dpt, sample: v == "new" ? newSample : baseSample) } },
                                        examples: { _, _, _ in nil })
            let r = try XCTUnwrap(rows.first)
            XCTAssertEqual(r.delta, 10, accuracy: 1e-9)
            if let why {
                XCTAssertTrue(r.method.contains("trained on different few-shot samples (\(why), seed 1)"), r.method)
                XCTAssertNil(r.ci)
                let gate = Compare.markdown(rows, new: "new", baseline: "pt", against: "stored", header: "", missing: [], maxRegression: 5, allowMissing: false)
                XCTAssertFalse(gate.passed)
            } else {
                XCTAssertTrue(r.method.hasPrefix("paired t over 3 seeds"), r.method)
            }
        }
    }

    /// A row's invalid-output shares cover the seeds its means cover: with the baseline's seed 1
    /// failed, the new side's share is the mean over seeds 2 and 3 (0.3 and 0 → 0.15), not over
    /// all three (0.10) beside a mean of two.
    func testInvalidSharesCoverThePairedSeeds() throws {
        func cell(_ v: String, seeds: [Int], values: [Double], invalid: [Double]) -> CellResult {
            var c = CellResult(cell: "\(v)|cb", variant: v, method: v, task: "cb", model: "t5-small", k: 8, seeds: seeds, statuses: ["done": seeds.count],
                               trainableParams: nil, best: ["accuracy": Stat(values)], last: [:], divergedSeeds: [], probe: nil)
            c.invalidFraction = ["best": Stat(invalid)]
            return c
        }
        let cells = [cell("new", seeds: [1, 2, 3], values: [60, 70, 80], invalid: [0, 0.3, 0]), cell("pt", seeds: [2, 3], values: [50, 50], invalid: [0.5, 0.1])]
        let rows = try Compare.rows(cells: cells, newVariant: "new", baselineVariant: "pt", published: nil, paper: "dpt", table: "table1",
                                    runs: { v, _ in (v == "new" ? [1, 2, 3] : [2, 3]).map { PairedRun(seed: $0, predictions: nil, templates: .dpt) } },
                                    examples: { _, _, _ in nil })
        let r = try XCTUnwrap(rows.first)
        XCTAssertEqual(r.seeds, [Replicate(2), Replicate(3)])
        XCTAssertEqual(r.delta, 25, accuracy: 1e-12)
        XCTAssertEqual(r.invalidNew ?? .nan, 0.15, accuracy: 1e-12)
        XCTAssertEqual(r.invalidBaseline ?? .nan, 0.3, accuracy: 1e-12)
    }

    /// Against a published value, Δ is the difference of the printed numbers, as in the tables:
    /// 65.625 prints 65.62, so against DPT Table 1's fine-tuning WSC on T5-Small, 67.94, the Δ is
    /// −2.32 (the unrounded mean gave −2.315, printed −2.31).
    func testPublishedDeltaIsOfThePrintedMean() throws {
        let c = CellResult(cell: "new|wsc", variant: "new", method: "new", task: "wsc", model: "t5-small", k: 32, seeds: [1, 2], statuses: ["done": 2],
                           trainableParams: nil, best: ["accuracy": Stat([62.5, 68.75])], last: [:], divergedSeeds: [], probe: nil)
        let pubs = try Published.load(directory: "\(repoRoot)/Baselines/published")
        let rows = try Compare.rows(cells: [c], newVariant: "new", baselineVariant: "ft", published: pubs, paper: "dpt", table: "Table 1",
                                    runs: { _, _ in [] }, examples: { _, _, _ in nil })
        XCTAssertEqual(try XCTUnwrap(rows.first).baselineMean, 67.94)
        XCTAssertEqual(try XCTUnwrap(rows.first).delta, -2.32, accuracy: 1e-9)
    }

    /// A method that diverged on every seed of a task has no row there; with --allow-missing the
    /// gate passed on the other tasks. A diverged run of the new method fails the gate either way.
    func testGateFailsOnDivergedRunsAlsoWithAllowMissing() {
        func cell(_ v: String, _ t: String, seeds: [Int], diverged: [Int]) -> CellResult {
            CellResult(cell: "\(v)|\(t)", variant: v, method: v, task: t, model: "t5-small", k: 8, seeds: seeds,
                       statuses: ["done": seeds.count, "diverged": diverged.count].filter { $0.value > 0 }, trainableParams: nil,
                       best: ["accuracy": Stat(seeds.map { Double($0) })], last: [:], divergedSeeds: diverged, probe: nil)
        }
        let expected = [CompareCell(task: "cb", model: "t5-small", k: 8): [Replicate(1), 2, 3], CompareCell(task: "rte", model: "t5-small", k: 8): [1, 2, 3]]
        let cells = [cell("new", "cb", seeds: [1, 2, 3], diverged: []), cell("new", "rte", seeds: [], diverged: [1, 2, 3]),
                     cell("dpt", "cb", seeds: [1, 2, 3], diverged: []), cell("dpt", "rte", seeds: [1, 2, 3], diverged: [])]
        let diverged = Compare.diverged(expected: expected, cells: cells, variant: "new")
        XCTAssertEqual(diverged, ["new 'new' rte t5-small k=8: diverged on seeds 1, 2, 3"])
        XCTAssertEqual(Compare.diverged(expected: expected, cells: cells, variant: "dpt"), [])
        let missing = Compare.missing(expected: expected, cells: cells, variant: "new", label: "new")
        let row = ComparisonRow(task: "cb", model: "t5-small", metric: "accuracy", new: [1, 2, 3], baseline: [1, 2, 3], seeds: [1, 2, 3], baselineMean: 2,
                                delta: 0, method: "paired t", p: 1, pHolm: 1, ci: (-0.5, 0.5), level: 0.95, verdict: "tie")
        let gate = Compare.markdown([row], new: "new", baseline: "dpt", against: "stored", header: "", missing: missing, diverged: diverged,
                                    maxRegression: 2, allowMissing: true)
        XCTAssertFalse(gate.passed, gate.text)
        XCTAssertTrue(gate.text.contains("Diverged runs of new (1 cell)") && gate.text.contains("diverged on seeds 1, 2, 3 (a diverged run fails"), gate.text)
        XCTAssertTrue(Compare.markdown([row], new: "new", baseline: "dpt", against: "stored", header: "", missing: missing,
                                       maxRegression: 2, allowMissing: true).passed, "without diverged runs --allow-missing gates on what exists")
        // A new method none of whose outputs names a label scores 0 like a baseline that does the
        // same: Δ 0 in [0, 0] passed (a new user's smoke study under greedy decoding).
        var dead = ComparisonRow(task: "cb", model: "t5-small", metric: "accuracy", new: [0, 0, 0], baseline: [0, 0, 0], seeds: [1, 2, 3],
                                 baselineMean: 0, delta: 0, method: "paired t", p: 1, pHolm: 1, ci: (0, 0), level: 0.95, verdict: "tie")
        dead.invalidNew = 1
        dead.invalidBaseline = 1
        let deadGate = Compare.markdown([dead], new: "new", baseline: "dpt", against: "stored", header: "", missing: [], maxRegression: 1, allowMissing: false)
        XCTAssertFalse(deadGate.passed, deadGate.text)
        XCTAssertTrue(deadGate.text.contains("cb: no output of new or dpt names a label (100% invalid on both sides), nothing to judge"), deadGate.text)
        // Its table row and the tally say so too (the row read "tie" beside the gate's "nothing to judge").
        XCTAssertTrue(deadGate.text.contains("| none (nothing to judge) |") && !deadGate.text.contains("| tie |"), deadGate.text)
        XCTAssertTrue(deadGate.text.contains("**0 win / 0 tie / 0 loss** over 0 tested tasks"), deadGate.text)
        // A row with nothing to judge and a nonzero difference (ReCoRD's F1 overlaps even where no
        // output names an entity) is not counted as a win either (the tally read 1 win / −1 tie).
        var winning = dead
        winning.verdict = "win"
        let winningText = Compare.markdown([winning], new: "new", baseline: "dpt", against: "stored", header: "", missing: [], maxRegression: nil, allowMissing: false).text
        XCTAssertTrue(winningText.contains("**0 win / 0 tie / 0 loss** over 0 tested tasks"), winningText)
        for (n, b) in [(0.99, 1.0), (1.0, 0.5)] {  // something named a label: the interval judges
            (dead.invalidNew, dead.invalidBaseline) = (n, b)
            XCTAssertTrue(Compare.markdown([dead], new: "new", baseline: "dpt", against: "stored", header: "", missing: [], maxRegression: 1, allowMissing: false).passed)
        }
        // Rows without stored invalid shares (older runs, ReCoRD without its data): 0 on every
        // seed of both sides is the same nothing and fails; one nonzero score lets the interval judge.
        (dead.invalidNew, dead.invalidBaseline) = (nil, 1)
        let unknown = Compare.markdown([dead], new: "new", baseline: "dpt", against: "stored", header: "", missing: [], maxRegression: 1, allowMissing: false)
        XCTAssertFalse(unknown.passed, unknown.text)
        XCTAssertTrue(unknown.text.contains("cb: every run of new and dpt scores 0 and their invalid shares are not stored, nothing to judge"), unknown.text)
        dead.invalidBaseline = nil
        XCTAssertFalse(Compare.markdown([dead], new: "new", baseline: "dpt", against: "stored", header: "", missing: [], maxRegression: 1, allowMissing: false).passed)
        dead.baseline = [0, 0, 4]
        XCTAssertTrue(Compare.markdown([dead], new: "new", baseline: "dpt", against: "stored", header: "", missing: [], maxRegression: 1, allowMissing: false).passed)
        (dead.baseline, dead.invalidNew, dead.invalidBaseline) = ([0, 0, 0], 0.2, 0.3)  // stored shares below 1: a real 0 against 0
        XCTAssertTrue(Compare.markdown([dead], new: "new", baseline: "dpt", against: "stored", header: "", missing: [], maxRegression: 1, allowMissing: false).passed)
    }

    /// The case: NEW's WSC runs and one CB seed failed. The gate lists both and fails;
    /// with --allow-missing it gates on what exists.
    func testGateFailsOnMissingRuns() {
        func cell(_ v: String, _ t: String, seeds: [Int], statuses: [String: Int]) -> CellResult {
            CellResult(cell: "\(v)|\(t)", variant: v, method: v, task: t, model: "t5-small", k: 8, seeds: seeds, statuses: statuses,
                       trainableParams: nil, best: ["accuracy": Stat(seeds.map { Double($0) })], last: [:], divergedSeeds: [], probe: nil)
        }
        let cells = [cell("new", "cb", seeds: [1, 3], statuses: ["done": 2, "failed": 1]), cell("new", "wsc", seeds: [], statuses: ["failed": 3]),
                     cell("dpt", "cb", seeds: [1, 2, 3], statuses: ["done": 3]), cell("dpt", "wsc", seeds: [1, 2, 3], statuses: ["done": 3])]
        let missing = Compare.missing(expected: [CompareCell(task: "cb", model: "t5-small", k: 8): [1, 2, 3],
                                                 CompareCell(task: "wsc", model: "t5-small", k: 8): [1, 2, 3]],
                                      cells: cells, variant: "new", label: "new")
        XCTAssertEqual(missing.count, 2)
        XCTAssertTrue(missing[0].contains("cb") && missing[0].contains("seed 2") && missing[0].contains("1 failed"), missing[0])
        XCTAssertTrue(missing[1].contains("wsc") && missing[1].contains("seeds 1, 2, 3"), missing[1])
        let row = ComparisonRow(task: "cb", model: "t5-small", metric: "accuracy", new: [1, 3], baseline: [1, 3], seeds: [1, 3], baselineMean: 2,
                                delta: 0, method: "paired t", p: 1, pHolm: 1, ci: (-0.5, 0.5), level: 0.95, verdict: "tie")
        let failed = Compare.markdown([row], new: "new", baseline: "dpt", against: "stored", header: "", missing: missing, maxRegression: 2, allowMissing: false)
        XCTAssertFalse(failed.passed)
        XCTAssertTrue(failed.text.contains("FAILED") && failed.text.contains("wsc"), failed.text)
        XCTAssertTrue(Compare.markdown([row], new: "new", baseline: "dpt", against: "stored", header: "", missing: missing, maxRegression: 2,
                                       allowMissing: true).passed)
        // The gate reads the interval, not the mean: Δ = 0 but a lower end of −3 fails a margin of 2.
        var wide = row
        wide.ci = (-3, 3)
        XCTAssertFalse(Compare.markdown([wide], new: "new", baseline: "dpt", against: "stored", header: "", missing: [], maxRegression: 2,
                                        allowMissing: false).passed)
        // Lower-is-better metric (registry direction): a rise is the regression, so the upper end gates.
        var lower = row
        lower.higherIsBetter = false
        lower.ci = (-3, 1)
        XCTAssertTrue(Compare.markdown([lower], new: "new", baseline: "dpt", against: "stored", header: "", missing: [], maxRegression: 2,
                                       allowMissing: false).passed)
        lower.ci = (-1, 3)
        let g = Compare.markdown([lower], new: "new", baseline: "dpt", against: "stored", header: "", missing: [], maxRegression: 2, allowMissing: false)
        XCTAssertFalse(g.passed)
        XCTAssertTrue(g.text.contains("upper end +3.00 > 2 (lower is better)"), g.text)
    }

    /// An evaluated variant's cell the baseline has no runs at (same task, model and k) is listed,
    /// so the gate fails on it instead of dropping it.
    func testUnpairedNewCellsAreListed() {
        func cell(_ v: String, _ t: String, k: Int?, seeds: [Int]) -> CellResult {
            CellResult(cell: "\(v)|\(t)", variant: v, method: v, task: t, model: "t5-small", k: k, seeds: seeds, statuses: ["done": seeds.count],
                       trainableParams: nil, best: ["accuracy": Stat(seeds.map { Double($0) })], last: [:], divergedSeeds: [], probe: nil)
        }
        let cells = [cell("peft", "cb", k: 8, seeds: [1, 2]), cell("peft", "rte", k: nil, seeds: [1]), cell("peft", "wsc", k: 8, seeds: []),
                     cell("pt", "cb", k: 8, seeds: [1, 2]), cell("pt", "rte", k: 8, seeds: [1, 2])]
        XCTAssertEqual(Compare.unpaired(cells: cells, newVariant: "peft", baselineVariant: "pt"),
                       ["baseline 'pt' rte t5-small: no finished runs to pair with peft's (seeds 1)"])
    }
}
