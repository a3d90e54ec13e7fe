import Support
import XCTest

/// /proc/stat's aggregate `cpu` line (proc(5)): user nice system idle iowait irq softirq steal guest
/// guest_nice. Expected values worked by hand from the lines below.
final class HostStealTests: XCTestCase {
    let before = """
        cpu  100 5 50 800 10 0 5 30 40 0
        cpu0 50 5 25 400 5 0 2 15 20 0
        intr 12345
        """
    let after = """
        cpu  300 5 90 1300 10 0 15 280 40 0
        cpu0 150 5 45 650 5 0 7 140 20 0
        """

    func testStealAndTotalLeaveOutTheGuestFields() throws {
        // total = 100 + 5 + 50 + 800 + 10 + 0 + 5 + 30 = 1000 (guest's 40 is already in user).
        XCTAssertEqual(MachineCPUTicks.parse(before), MachineCPUTicks(steal: 30, total: 1000))
        XCTAssertEqual(MachineCPUTicks.parse(after), MachineCPUTicks(steal: 280, total: 2000))
    }

    func testShareIsStolenTicksOverAllTicksInBetween() throws {
        let a = try XCTUnwrap(MachineCPUTicks.parse(before)), b = try XCTUnwrap(MachineCPUTicks.parse(after))
        // (280 − 30) / (2000 − 1000)
        XCTAssertEqual(try XCTUnwrap(b.stealShare(since: a)), 0.25, accuracy: 1e-12)
        XCTAssertNil(a.stealShare(since: a), "no tick passed")
        XCTAssertNil(a.stealShare(since: b), "counters going backwards")
    }

    func testOldKernelsWithoutStealAndMalformedText() {
        XCTAssertEqual(MachineCPUTicks.parse("cpu  10 0 10 80 0 0 0\n"), MachineCPUTicks(steal: 0, total: 100))
        XCTAssertNil(MachineCPUTicks.parse("cpu0 10 0 10 80 0 0 0 5\n"), "a per-CPU line is not the aggregate")
        XCTAssertNil(MachineCPUTicks.parse("cpu  10 x 10 80\n"))
        XCTAssertNil(MachineCPUTicks.parse("cpu  10 0 10\n"))
        XCTAssertNil(MachineCPUTicks.parse(""))
    }

    func testThisMachineReadsWhereThereIsAProcStat() throws {
        guard FileManager.default.fileExists(atPath: "/proc/stat") else { throw XCTSkip("no /proc/stat") }
        let a = try XCTUnwrap(MachineCPUTicks.read())
        XCTAssertGreaterThan(a.total, 0)
        XCTAssertLessThanOrEqual(a.steal, a.total)
    }
}

final class StealSummaryTests: XCTestCase {
    func testSummaryCountsTheContendedRunsAndSaysSo() {
        // Sorted: 0, 0.01, 0.049, 0.05, 0.2517 → median 0.049, max 0.252; 0.05 and 0.2517 are ≥ 5 %.
        let s = stealSummary([0.05, 0, 0.2517, 0.01, 0.049])
        XCTAssertEqual(s["median"] as? Double, 0.049)
        XCTAssertEqual(s["max"] as? Double, 0.252)
        XCTAssertEqual(s["children"] as? Int, 5)
        XCTAssertEqual(s["children_at_least_5_percent"] as? Int, 2)
        XCTAssertEqual(s["note"] as? String,
                       "steal: the hypervisor took ≥ 5 % of this machine's CPU time during 2 of 5 timed runs (up to 25 %): those times measure the host's contention as well as the code")
    }

    func testQuietHostHasNoNoteAndEvenCountsTakeTheMiddleMean() {
        let s = stealSummary([0.01, 0.03, 0, 0.02])
        XCTAssertEqual(s["median"] as? Double, 0.015)
        XCTAssertEqual(s["children_at_least_5_percent"] as? Int, 0)
        XCTAssertNil(s["note"])
        XCTAssertNil(stealSummary([])["median"])
    }
}
