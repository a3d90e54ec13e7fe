import Foundation
import Methods
import Tasks
import Training
import XCTest

final class TrainerTests: XCTestCase {
    func config(_ method: String, task: String = "cb", epochs: Int = 3, seed: Int = 1) throws -> TrainConfig {
        var mc = try MethodConfig.defaults(method)
        mc.n = 8; mc.r = 4
        var c = try TrainConfig.preset("dpt-paper", method: mc, task: task, model: "embedded:t5-tiny", k: 8, seed: seed)
        c.epochs = epochs; c.batchSize = 4; c.evalLimit = 12; c.decodeMaxTokens = 3; c.maxSourceLength = 96
        return c
    }

    func trainer(_ c: TrainConfig, checkpoint: String? = nil) throws -> Trainer {
        let t = Trainer(config: c, dataDir: try sharedData(), manifestDir: "\(repoRoot)/Baselines/manifests", checkpoint: checkpoint)
        t.lockPath = "\(repoRoot)/Baselines/data.lock"
        return t
    }

    /// Same seed and thread count → identical losses, scores and predictions.
    func testSameSeedIsBitIdentical() throws {
        let a = try trainer(try config("dpt")).run(), b = try trainer(try config("dpt")).run()
        XCTAssertEqual(a.history.map(\.trainLoss), b.history.map(\.trainLoss))
        XCTAssertEqual(a.history.map(\.metrics), b.history.map(\.metrics))
        XCTAssertEqual(a.predictions, b.predictions)
        let c = try trainer(try config("dpt", seed: 2)).run()
        XCTAssertNotEqual(a.history.map(\.trainLoss), c.history.map(\.trainLoss))
        XCTAssertEqual(a.status, "done")
        XCTAssertEqual(a.manifest, "\(repoRoot)/Baselines/manifests/cb-k8-s1.json")
    }

    /// A huge learning rate makes the loss non-finite: the run stops as diverged with its step.
    func testDivergenceIsDetected() throws {
        var c = try config("pt", epochs: 5)
        c.lr = 1e12
        c.schedule = .constant
        c.clipNorm = nil
        let r = try trainer(c).run()
        XCTAssertEqual(r.status, "diverged")
        XCTAssertNotNil(r.divergedAtStep)
    }

    /// Interrupted after epoch 2 (checkpoint written), then resumed: identical to an uninterrupted
    /// 4-epoch run (losses, scores, predictions). A checkpoint of another configuration is refused.
    func testCheckpointResumeIsExact() throws {
        let ck = NSTemporaryDirectory() + "ck-\(getpid())-\(UUID().uuidString.prefix(6)).safetensors"
        defer { try? FileManager.default.removeItem(atPath: ck) }
        let c = try config("respt", epochs: 4)
        let full = try trainer(c).run()
        let first = try trainer(c, checkpoint: ck)
        first.interruptAfterEpoch = 2
        let partial = try first.run()
        XCTAssertEqual(partial.status, "interrupted")
        XCTAssertEqual(partial.history.count, 2)
        let resumed = try trainer(c, checkpoint: ck).run()
        XCTAssertEqual(resumed.status, "done")
        XCTAssertEqual(resumed.history.map(\.trainLoss), full.history.map(\.trainLoss))
        XCTAssertEqual(resumed.history.map(\.metrics), full.history.map(\.metrics))
        XCTAssertEqual(resumed.predictions, full.predictions)
        var other = c
        other.lr = 0.1
        XCTAssertThrowsError(try trainer(other, checkpoint: ck).run()) { XCTAssertTrue("\($0)".contains("another configuration")) }
    }

    func testWSCTrainsOnLabelOneAndScoresAll() throws {
        var c = try config("dpt", task: "wsc", epochs: 1)
        c.evalLimit = nil
        c.decodeMaxTokens = 4
        let r = try trainer(c).run()
        XCTAssertEqual(r.trainExamples, 8)
        XCTAssertEqual(r.evalExamples, 104)
        XCTAssertNotNil(r.last["accuracy_label1"])
    }

    func testGPT2VerbalizerRun() throws {
        var mc = try MethodConfig.defaults("lopt1")
        mc.n = 4; mc.r = 2
        var c = try TrainConfig.preset("lopt-paper", method: mc, task: "sst2", model: "embedded:gpt2-tiny", k: 16, seed: 1)
        c.epochs = 2; c.evalLimit = 20
        let r = try trainer(c).run()
        XCTAssertEqual(r.status, "done")
        XCTAssertTrue(r.predictions!.allSatisfy { ["negative", "positive"].contains($0) })
    }
}
