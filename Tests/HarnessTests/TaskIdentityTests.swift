import Foundation
import Harness
@testable import Store
import Methods
import Support
import Tasks
import Training
import TestSupport
import XCTest

/// A task file edited without a version bump (labels reordered, which inverts every gold label;
/// metrics changed) left its stored runs counted as done: the run identity held the template but
/// not the rest of the task file, and reads compared configs only. The identity now has a `task`
/// part, reads leave out rows whose stored task parts differ from the file's, and rows stored
/// before the part existed keep matching when nothing else changed.
final class TaskIdentityTests: XCTestCase {
    func json(_ o: [String: Any]) -> String { String(decoding: try! JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]), as: UTF8.self) }

    func testReadsLeaveOutRowsOfAnEditedTaskFile() throws {
        let def = try TaskRegistry.definition("cb")
        var parts = try RunIdentity.taskParts(def, templates: .dpt)
        var plan = PlannedRuns([(key: PlannedRuns.key(cell: "c", seed: 1, sampleSeed: 1), configHash: PlannedRuns.configHash(try cfg()))])
        plan.taskParts[PlannedRuns.key(cell: "c", seed: 1, sampleSeed: 1)] = try RunIdentity.canonicalTaskParts(def, templates: .dpt)
        let config = try cfg().json
        func reason(_ p: [String: Any]) -> StaleRun.Reason? {
            plan.staleReason(cell: "c", seed: 1, sampleSeed: 1, configJSON: config, status: "done", identityJSON: json(p.merging(["weights": "w"]) { a, _ in a }))
        }
        XCTAssertNil(reason(parts), "the same task file")
        var task = parts["task"] as! [String: Any]
        task["labels"] = (task["labels"] as! [String]).reversed() as [String]
        parts["task"] = task
        XCTAssertEqual(reason(parts), .taskChanged, "labels reordered")
        parts = try RunIdentity.taskParts(def, templates: .dpt)
        parts["task"] = nil
        XCTAssertNil(reason(parts), "a row stored before the task part: compared on the others")
        var tpl = parts["template"] as! [String: Any]
        tpl["source"] = "premise: {premise}"
        parts["template"] = tpl
        XCTAssertEqual(reason(parts), .taskChanged, "template edited")
        XCTAssertNil(plan.staleReason(cell: "c", seed: 1, sampleSeed: 1, configJSON: config, status: "done", identityJSON: nil), "no identity stored")
        // The read's note names them, with the sweep that reruns them.
        let note = staleRunsNote([StaleRun(id: 1, cell: "c", seed: 1, status: "done", reason: .taskChanged)], spec: "s", profile: "smoke") ?? ""
        XCTAssertTrue(note.contains("1 run with another task definition") && note.contains("promptrepro sweep s --profile smoke"), note)
    }

    func testRowsStoredBeforeTheTaskPartKeepTheirRun() throws {
        let parts: [String: Any] = try RunIdentity.taskParts(TaskRegistry.definition("cb"), templates: .dpt).merging(["weights": "w", "config": "{}"]) { a, _ in a }
        let newJSON = json(parts)
        var legacy = parts
        legacy["task"] = nil
        let legacyJSON = json(legacy)
        let row: [String: SQLiteDB.Value] = ["identity": .text(sha256Hex(legacyJSON)), "identity_json": .text(legacyJSON)]
        XCTAssertEqual(ResultsStore.legacyIdentityMatch(stored: row, newJSON: newJSON), newJSON)
        // Another part changed as well: a rerun.
        var moved = legacy
        moved["weights"] = "w2"
        let movedJSON = json(moved)
        XCTAssertNil(ResultsStore.legacyIdentityMatch(stored: ["identity": .text(sha256Hex(movedJSON)), "identity_json": .text(movedJSON)], newJSON: newJSON))
        // A row that has the task part is compared whole (no legacy match).
        XCTAssertNil(ResultsStore.legacyIdentityMatch(stored: ["identity": .text(sha256Hex(newJSON)), "identity_json": .text(newJSON)], newJSON: newJSON))
    }

    func cfg() throws -> TrainConfig {
        try TrainConfig.preset("dpt-paper", method: try MethodConfig.defaults("pt"), task: "cb", model: "embedded:t5-tiny", k: 8, seed: 1)
    }
}
