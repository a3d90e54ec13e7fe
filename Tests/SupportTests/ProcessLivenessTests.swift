import Foundation
import Support
import TestSupport
import XCTest

/// `ProcessLiveness.isAlive` on real processes: a running child, the same child as a zombie (exited,
/// not reaped), after reaping, and the command-line guard against PID reuse.
final class ProcessLivenessTests: XCTestCase {
    func testRunningZombieAndReapedChildren() throws {
        let sleeper = try UnreapedChild(["/bin/sleep", "30"])
        defer { sleeper.reap() }
        XCTAssertTrue(ProcessLiveness.isAlive(sleeper.pid))
        XCTAssertTrue(ProcessLiveness.isAlive(sleeper.pid, commandContains: "sleep"))
        XCTAssertFalse(ProcessLiveness.isAlive(sleeper.pid, commandContains: "promptrepro"), "a PID reused by another program")

        let quick = try UnreapedChild(["/bin/true"])
        defer { quick.reap() }
        XCTAssertTrue(quick.waitUntilZombie(), "the child never became a zombie")
        XCTAssertEqual(kill(quick.pid, 0), 0, "kill(pid, 0) still finds a zombie: the case this guards against")
        XCTAssertFalse(ProcessLiveness.isAlive(quick.pid), "a zombie is not alive")
        quick.reap()
        XCTAssertFalse(ProcessLiveness.isAlive(quick.pid))

        XCTAssertTrue(ProcessLiveness.isAlive(getpid()))
        XCTAssertFalse(ProcessLiveness.isAlive(0))
        XCTAssertFalse(ProcessLiveness.isAlive(-1))
    }
}
