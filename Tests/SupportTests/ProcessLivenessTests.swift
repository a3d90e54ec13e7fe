import Foundation
import Support
import TestSupport
import XCTest

/// `ProcessLiveness` on real processes: a running child, the same child as a zombie (exited, not
/// reaped), after reaping, the command-line guard against PID reuse, and the start time read from
/// /proc (Linux only: elsewhere there is no /proc to read a zombie's state from).
final class ProcessLivenessTests: XCTestCase {
    override func setUpWithError() throws {
        #if !os(Linux)
        throw XCTSkip("ProcessLiveness reads /proc (Linux)")
        #endif
    }

    func testRunningZombieAndReapedChildren() throws {
        let sleeper = try UnreapedChild(["/bin/sleep", "600"])
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

    /// The start time of a child spawned now is now (within the boot time's whole second), also for
    /// a program whose name holds a space and a parenthesis (/proc/PID/stat's name field); a process
    /// that started after a file was written does not count as that file's writer.
    func testStartTimeAndReusedPIDs() throws {
        let dir = NSTemporaryDirectory() + "liveness-\(getpid())-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let odd = "\(dir)/sl) eep"
        try FileManager.default.createSymbolicLink(atPath: odd, withDestinationPath: "/bin/sleep")
        let before = Date()
        let child = try UnreapedChild([odd, "600"])
        defer { child.reap() }
        let start = try XCTUnwrap(ProcessLiveness.startTime(child.pid))
        XCTAssertEqual(start.timeIntervalSince(before), 0, accuracy: 1.5, "start \(start), spawned at \(before)")
        XCTAssertTrue(ProcessLiveness.isAlive(child.pid))
        XCTAssertTrue(ProcessLiveness.isAlive(child.pid, startedBefore: Date()))
        XCTAssertFalse(ProcessLiveness.isAlive(child.pid, startedBefore: before.addingTimeInterval(-3600)),
                       "a file last written an hour before the process started was not written by it")
        XCTAssertNil(ProcessLiveness.startTime(0))
    }
}
