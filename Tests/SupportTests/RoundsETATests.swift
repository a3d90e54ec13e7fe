import Support
import XCTest

/// `RoundsETA`, the time left that `bench` and `bench-e2e` print after every round. Every expected
/// value is worked by hand from the plan and the seconds given.
final class RoundsETATests: XCTestCase {
    /// Plan: a, a, b, b (family x), then c, c (family y).
    /// - Nothing timed: every round untimed: "unknown".
    /// - a took 10 s: a's second round 10, b's two rounds from family x's mean (10) 20; c's two
    ///   untimed: 30 s, "> 30s (2 rounds not yet timed)".
    /// - a's second took 20 s: a's mean 15, so b's rounds 15 each: 30 s, still 2 untimed.
    /// - b took 40 s: b's second round 40 (its own mean now): 40 s; c untimed.
    /// - b took 80 s: nothing of x left, c untimed and nothing else: "unknown".
    /// - c took 75 s: its second 75 s: "1m15s"; then "0s".
    func testTheTimeLeftComesFromTheRoundsTimedAndSaysWhatIsUntimed() {
        let x = ["a", "a", "b", "b"].map { RoundsETA.Round(group: $0, family: "x") }
        let y = ["c", "c"].map { RoundsETA.Round(group: $0, family: "y") }
        var eta = RoundsETA(plan: x + y)
        XCTAssertEqual(eta.text, "unknown")
        eta.finish(wallSeconds: 10)
        XCTAssertEqual(eta.estimate.seconds, 30)
        XCTAssertEqual(eta.estimate.untimed, 2)
        XCTAssertEqual(eta.text, "> 30s (2 rounds not yet timed)")
        XCTAssertTrue(eta.progress.hasPrefix("1 of 6 rounds done, "), eta.progress)
        XCTAssertTrue(eta.progress.hasSuffix(" elapsed, ETA > 30s (2 rounds not yet timed)"), eta.progress)
        eta.finish(wallSeconds: 20)
        XCTAssertEqual(eta.estimate.seconds, 30)
        eta.finish(wallSeconds: 40)
        XCTAssertEqual(eta.estimate.seconds, 40)
        XCTAssertEqual(eta.text, "> 40s (2 rounds not yet timed)")
        eta.finish(wallSeconds: 80)
        XCTAssertEqual(eta.text, "unknown")
        eta.finish(wallSeconds: 75)
        XCTAssertEqual(eta.estimate.untimed, 0)
        XCTAssertEqual(eta.text, "1m15s")
        eta.finish(wallSeconds: 1)
        XCTAssertEqual(eta.text, "0s")
        XCTAssertTrue(eta.progress.hasPrefix("6 of 6 rounds done, "), eta.progress)
    }

    /// A group not yet timed takes the mean of its family's groups, each group counted once
    /// whatever its number of rounds: a timed 10 and 20 (mean 15), b 60 → a third group c of the
    /// same family is estimated at (15 + 60) / 2 = 37.5 s a round, two rounds 75 s. One untimed
    /// round is named in the singular, with the plan's noun.
    func testAnUntimedGroupTakesItsFamilysMeanOfGroupMeans() {
        let plan = ["a", "a", "b", "c", "c"].map { RoundsETA.Round(group: $0, family: "x") } + [RoundsETA.Round(group: "d", family: "y")]
        var eta = RoundsETA(plan: plan, noun: "run")
        for s in [10.0, 20, 60] { eta.finish(wallSeconds: s) }
        XCTAssertEqual(eta.estimate.seconds, 75)
        XCTAssertEqual(eta.text, "> 1m15s (1 run not yet timed)")
    }

    func testDurationsReadAsSecondsMinutesAndHours() {
        XCTAssertEqual(formatDuration(44.6), "45s")
        XCTAssertEqual(formatDuration(125), "2m5s")
        XCTAssertEqual(formatDuration(3725), "1h2m")
    }
}
