// Progress of a fixed plan of timed rounds (`bench`, `bench-e2e`): the time left, estimated from
// the rounds already timed.
import Foundation

/// The time left of a fixed plan of rounds run in order, from the wall seconds of the rounds done.
///
/// A round's `group` is the same work every time (`bench`: one model shape and workload; each
/// round runs ours, PyTorch's and the variants once), its `family` the work an untimed group is
/// estimated from (`bench`: the shape). A remaining round is estimated as the mean of its group's
/// timed rounds; a group not yet timed as the mean of its family's timed groups (each group's mean,
/// groups in name order); a round whose family has no timed group is counted as untimed, and the
/// estimate is then a lower bound ("> 5m10s (10 rounds not yet timed)"). Like `SweepETA` for
/// sweeps, it never guesses a time for work of a kind it has not seen.
public struct RoundsETA: Sendable {
    public struct Round: Hashable, Sendable {
        public var group: String
        public var family: String
        public init(group: String, family: String) {
            self.group = group
            self.family = family
        }
    }

    /// Every round of the run, in the order they run.
    public let plan: [Round]
    /// What a round is called in the progress text ("round"; `bench-e2e`: "run").
    public let noun: String
    /// How many rounds of `plan` are done (the first `done`).
    public private(set) var done = 0
    /// Wall seconds of the rounds done, per group.
    public private(set) var seconds: [String: [Double]] = [:]
    private let started = Date()

    public init(plan: [Round], noun: String = "round") {
        self.plan = plan
        self.noun = noun
    }

    /// Records the next round of the plan as done, after `wallSeconds`.
    /// - Precondition: a round of the plan is left.
    public mutating func finish(wallSeconds: Double) {
        precondition(done < plan.count, "RoundsETA: every round of the plan is done")
        seconds[plan[done].group, default: []].append(wallSeconds)
        done += 1
    }

    /// Seconds left for the rounds whose time can be estimated, and how many cannot.
    public var estimate: (seconds: Double, untimed: Int) {
        func mean(_ v: [Double]) -> Double { v.reduce(0, +) / Double(v.count) }
        var total = 0.0, untimed = 0
        for round in plan[done...] {
            if let own = seconds[round.group], !own.isEmpty {
                total += mean(own)
                continue
            }
            let family = Set(plan.filter { $0.family == round.family }.map(\.group)).sorted()
                .compactMap { seconds[$0].flatMap { $0.isEmpty ? nil : mean($0) } }
            if family.isEmpty { untimed += 1 } else { total += mean(family) }
        }
        return (total, untimed)
    }

    /// "5m10s", "> 5m10s (10 rounds not yet timed)", "unknown" (no remaining round can be
    /// estimated) or "0s" (all done); `noun` names the rounds.
    public var text: String {
        let left = plan.count - done
        if left == 0 { return "0s" }
        let (s, untimed) = estimate
        if untimed == left { return "unknown" }
        return untimed > 0 ? "> \(formatDuration(s)) (\(untimed) \(noun)\(untimed == 1 ? "" : "s") not yet timed)" : formatDuration(s)
    }

    /// "7 of 25 rounds done, 6m2s elapsed, ETA 17m10s": the progress line's tail after a round.
    public var progress: String {
        "\(done) of \(plan.count) \(noun)s done, \(formatDuration(Date().timeIntervalSince(started))) elapsed, ETA \(text)"
    }
}

/// A duration in seconds as "45s", "12m30s" or "1h5m" (rounded to the second; hours without
/// their seconds).
public func formatDuration(_ s: Double) -> String {
    let t = Int(s.rounded())
    return t >= 3600 ? "\(t / 3600)h\(t % 3600 / 60)m" : (t >= 60 ? "\(t / 60)m\(t % 60)s" : "\(t)s")
}
