import Foundation
import Harness
import Reports
import Store
import TestSupport
import Training
import XCTest

/// The per-step log from the store: its CSV / JSON Lines export and the loss-curve band.
final class LossCurvesTests: XCTestCase {
    func testStepLogExportAndBandByHand() throws {
        let dir = tempDir("steps")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let s = try ResultsStore(path: "\(dir)/s.sqlite")
        let runs = try ExperimentSpec.load("\(repoRoot)/Baselines/specs/table1.yaml").expand(profile: "cpu").filter { $0.variant == "dpt" && $0.task == "cb" && $0.model == "t5-small" }
        try s.insertPending(Array(runs.prefix(2)))
        var losses: [[Double]] = [[3, 2, 1.5], [5, 3, 0.5]]
        while let c = try s.claim(worker: "t", pid: getpid()) {
            var r = TrainResult(config: c.spec.config, status: .done, divergedAtStep: nil, bestEpoch: 1, best: ["accuracy": 50], last: ["accuracy": 50],
                                history: [], trainableParams: 1, trainExamples: 1, evalExamples: 1, dataFiles: [:], manifest: nil, smoke: false, predictions: [])
            let l = losses.removeFirst()
            r.steps = l.enumerated().map { StepRecord(step: $0.offset + 1, epoch: 1, loss: $0.element, lr: [0.3], gradNorm: 1, gradNorms: ["A": 1],
                                                      paramNorms: ["A": 2], seconds: 0.5) }
            try s.complete(c.id, result: r)
        }
        let rows = try LossCurves.rows(s, spec: "table1", profile: "cpu")
        XCTAssertEqual(rows.count, 6)
        let band = LossCurves.band(rows)
        XCTAssertEqual(band.map(\.0), [1, 2, 3])
        XCTAssertEqual(band.map(\.1), [4, 2.5, 1.0])   // means of (3, 5), (2, 3), (1.5, 0.5)
        XCTAssertEqual(band.map(\.2), [3, 2, 0.5])
        XCTAssertEqual(band.map(\.3), [5, 3, 1.5])
        let csv = LossCurves.csv(rows).split(separator: "\n")
        XCTAssertEqual(csv.first, "cell,seed,step,epoch,loss,grad_norm,lr,seconds")
        XCTAssertEqual(csv.count, 7)
        XCTAssertTrue(csv[1].hasPrefix("\"dpt|cb|t5-small|k32\",1,1,1,3.0,1.0,0.3"), String(csv[1]))
        XCTAssertEqual(try LossCurves.jsonl(rows).split(separator: "\n").count, 6)
        let pngs = try LossCurves.render(rows, spec: "table1", profile: "cpu", outDir: "\(dir)/lc")
        XCTAssertEqual(pngs, ["\(dir)/lc/dpt_cb_t5-small_k32.png"])
        XCTAssertTrue(FileManager.default.fileExists(atPath: pngs[0]))
    }
}
