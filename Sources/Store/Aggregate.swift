// Mean and standard deviation over seeds per cell. Both estimators are kept: the sample standard
// deviation (n − 1 denominator, what numpy.std(ddof=1) / pandas give) and the population one
// (n denominator, numpy.std default) — DPT Table 3 does not say which it used.
import Foundation

public struct Stat: Codable, Equatable, Sendable {
    public var n: Int
    public var mean: Double
    public var sampleStd: Double?      // nil when n < 2
    public var populationStd: Double
    public var min: Double
    public var max: Double
    public var values: [Double]

    public init(_ v: [Double]) {
        n = v.count
        let m = v.isEmpty ? Double.nan : v.reduce(0, +) / Double(v.count)
        mean = m
        let ss = v.reduce(0) { $0 + ($1 - m) * ($1 - m) }
        sampleStd = v.count > 1 ? (ss / Double(v.count - 1)).squareRoot() : nil
        populationStd = v.isEmpty ? .nan : (ss / Double(v.count)).squareRoot()
        min = v.min() ?? .nan
        max = v.max() ?? .nan
        values = v
    }
}

public struct CellResult: Codable, Sendable {
    public var cell: String
    public var variant: String
    public var method: String
    public var task: String
    public var model: String
    public var k: Int?
    public var seeds: [Int]
    public var statuses: [String: Int]
    public var trainableParams: Int?
    public var best: [String: Stat]
    public var last: [String: Stat]
    public var divergedSeeds: [Int]
    /// Rank-probe runs: per epoch, means over seeds of (positive, negative) Σ entries and rank(P).
    public var probe: [ProbePoint]?

    public init(cell: String, variant: String, method: String, task: String, model: String, k: Int?, seeds: [Int], statuses: [String: Int],
                trainableParams: Int?, best: [String: Stat], last: [String: Stat], divergedSeeds: [Int], probe: [ProbePoint]?) {
        self.cell = cell; self.variant = variant; self.method = method; self.task = task; self.model = model; self.k = k
        self.seeds = seeds; self.statuses = statuses; self.trainableParams = trainableParams; self.best = best; self.last = last
        self.divergedSeeds = divergedSeeds; self.probe = probe
    }
}

extension CellResult {
    /// "✗ failed 2/3" (", diverged 1/3"): how many of the cell's runs ended without a score, or nil
    /// when none did. Tables show it instead of (or beside) the mean, so a failed cell never reads as
    /// "not run".
    public var failureMarker: String? {
        let total = statuses.values.reduce(0, +)
        let parts = [("failed", statuses["failed"] ?? 0), ("diverged", statuses["diverged"] ?? 0)]
            .filter { $0.1 > 0 }.map { "\($0.0) \($0.1)/\(total)" }
        return parts.isEmpty ? nil : "✗ " + parts.joined(separator: ", ")
    }
}

public struct ProbePoint: Codable, Equatable, Sendable {
    public var epoch: Int
    public var positive: Double
    public var negative: Double
    public var rank: Double
}

extension ResultsStore {
    /// Per-cell statistics of finished runs (done; diverged runs are listed, not averaged).
    public func cellResults(spec: String, profile: String) throws -> [CellResult] {
        let runs = try db.query("SELECT id, cell, variant, method, task, model, k, seed, status, trainable_params FROM runs WHERE spec=? AND profile=? AND status != 'superseded' ORDER BY id",
                                [.text(spec), .text(profile)])
        var order: [String] = []
        var byCell: [String: CellResult] = [:]
        var values: [String: [String: [String: [(Int, Double)]]]] = [:]  // cell → kind → metric → (seed, value)
        for r in runs {
            let cell = r["cell"]!.text!
            if byCell[cell] == nil {
                order.append(cell)
                byCell[cell] = CellResult(cell: cell, variant: r["variant"]!.text!, method: r["method"]!.text!, task: r["task"]!.text!,
                                          model: r["model"]!.text!, k: r["k"]?.int, seeds: [], statuses: [:], trainableParams: nil,
                                          best: [:], last: [:], divergedSeeds: [], probe: nil)
            }
            let status = r["status"]!.text!
            byCell[cell]!.statuses[status, default: 0] += 1
            if status == "diverged" { byCell[cell]!.divergedSeeds.append(r["seed"]!.int!) }
            guard status == "done" || status == "evaluated" else { continue }
            byCell[cell]!.seeds.append(r["seed"]!.int!)
            byCell[cell]!.trainableParams = r["trainable_params"]?.int
            if r["method"]?.text == "probe" {
                var pts = byCell[cell]!.probe ?? []
                let n = Double(byCell[cell]!.seeds.count)
                for e in try db.query("SELECT epoch, probe_positive, probe_negative, probe_rank FROM epochs WHERE run_id=? ORDER BY epoch", [.int(r["id"]!.int!)]) {
                    guard let ep = e["epoch"]?.int, let p = e["probe_positive"]?.double, let q = e["probe_negative"]?.double, let k = e["probe_rank"]?.double else { continue }
                    if let i = pts.firstIndex(where: { $0.epoch == ep }) {  // running mean over seeds
                        pts[i].positive += (p - pts[i].positive) / n; pts[i].negative += (q - pts[i].negative) / n; pts[i].rank += (k - pts[i].rank) / n
                    } else { pts.append(ProbePoint(epoch: ep, positive: p, negative: q, rank: k)) }
                }
                byCell[cell]!.probe = pts
            }
            for s in try db.query("SELECT kind, metric, value FROM scores WHERE run_id=?", [.int(r["id"]!.int!)]) {
                values[cell, default: [:]][s["kind"]!.text!, default: [:]][s["metric"]!.text!, default: []].append((r["seed"]!.int!, s["value"]!.double!))
            }
        }
        return order.map { cell in
            var c = byCell[cell]!
            c.best = (values[cell]?["best"] ?? [:]).mapValues { Stat($0.sorted { $0.0 < $1.0 }.map(\.1)) }
            c.last = (values[cell]?["last"] ?? [:]).mapValues { Stat($0.sorted { $0.0 < $1.0 }.map(\.1)) }
            return c
        }
    }
}
