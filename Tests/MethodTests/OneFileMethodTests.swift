import Foundation
import Methods
import Models
import Support
import Tensor
import TestSupport
import Training
import XCTest

// A method written as a contributor would: one type (this file) and one line to register it.
// P = g · P0 with a trainable prompt table P0 (n × d) and a trainable scalar gate g: nothing in
// PromptRepro knows about it until `MethodRegistry.register(GatedPrompt.self)`.
final class GatedPrompt: TuningMethod {
    static let name = "gated-pt"
    static var defaults: MethodConfig { var c = MethodConfig.base(name); c.n = 8; return c }  // the default preset is dpt-paper
    static let configKeys = ["n"]
    let config: MethodConfig
    let prompt: Tensor, gate: Tensor
    var trainable: [TrainableTensor] {
        [TrainableTensor(name: "prompt", tensor: prompt, group: .main), TrainableTensor(name: "gate", tensor: gate, group: .main)]
    }

    init(config c: MethodConfig, backbone: Backbone, key: RNGKey) throws {
        config = c
        prompt = Tensor.uniform([c.n, backbone.dModel], lo: -0.5, hi: 0.5, key: key.derive("prompt"), requiresGrad: true)
        gate = Tensor(shape: [1], values: [1], requiresGrad: true)  // unnamed: the trainer names them from `trainable`
    }

    func injection(drop: DropoutContext) throws -> Injection { Injection(prompt: try mul(prompt, gate)) }  // (n, d) · (1)

    static func parameterCount(_ c: MethodConfig, architecture: ModelConfig) throws -> Int { c.n * architecture.dModel + 1 }
}

/// docs/adding-a-method.md is written from this test.
final class OneFileMethodTests: XCTestCase {
    func testAMethodDefinedOutsideTheModuleRegistersWithOneLineAndTrains() throws {
        if !MethodRegistry.names.contains(GatedPrompt.name) { try MethodRegistry.register(GatedPrompt.self) }  // the one line
        XCTAssertThrowsError(try MethodRegistry.register(GatedPrompt.self))  // names are unique
        XCTAssertEqual(try MethodConfig.defaults("gated-pt").n, 8)
        XCTAssertEqual(TrainConfig.defaultProtocol(for: "gated-pt"), "dpt-paper")
        var c = try TrainConfig.preset(TrainConfig.defaultProtocol(for: "gated-pt"), method: try MethodConfig.defaults("gated-pt"), task: "cb",
                                       model: "embedded:t5-tiny", k: 8, seed: 1)
        c.epochs = 2; c.batchSize = 8; c.evalLimit = 4; c.decodeMaxTokens = 2
        let t = Trainer(config: c, dataDir: try sharedData(), manifestDir: "\(repoRoot)/Baselines/manifests")
        t.lockPath = "\(repoRoot)/Baselines/data.lock"
        let r = try t.run()
        XCTAssertEqual(r.status, .done)
        XCTAssertEqual(r.trainableParams, 8 * 64 + 1)
        let steps = try XCTUnwrap(r.steps)
        XCTAssertTrue(steps.allSatisfy { ($0.gradNorms["gate"] ?? 0) > 0 && ($0.gradNorms["prompt"] ?? 0) > 0 })
        // Interrupted and resumed, it gives the uninterrupted run's numbers: the optimizer's moments
        // travel in the checkpoint under the tensors' names (unnamed, they were keyed by object
        // identity and restarted from zero on resume).
        let ck = NSTemporaryDirectory() + "gated-\(getpid()).safetensors"
        defer { try? FileManager.default.removeItem(atPath: ck) }
        let first = Trainer(config: c, dataDir: try sharedData(), manifestDir: "\(repoRoot)/Baselines/manifests", checkpoint: ck)
        first.lockPath = t.lockPath
        first.interruptAfterEpoch = 1
        XCTAssertEqual(try first.run().status, .interrupted)
        // The moments are stored under the tensors' names: another process (a resumed sweep
        // worker) finds them. Keyed by object identity they matched only where this process
        // happened to reuse the addresses.
        let stored = Set(try SafeTensorsFile(path: ck).names.filter { $0.hasPrefix("opt.") && $0 != "opt.step" }.map { $0.split(separator: ".")[1] })
        XCTAssertEqual(stored, ["prompt", "gate"])
        let resumed = Trainer(config: c, dataDir: try sharedData(), manifestDir: "\(repoRoot)/Baselines/manifests", checkpoint: ck)
        resumed.lockPath = t.lockPath
        let rr = try resumed.run()
        XCTAssertEqual(rr.history.map(\.trainLoss), r.history.map(\.trainLoss))
        XCTAssertEqual(rr.steps?.map(\.loss), r.steps?.map(\.loss))
    }
}

/// docs/specs.md lists the methods a spec's `method` takes by hand: it must name every method
/// this module registers, and only registered ones (a method added without its line there, or a
/// line left after a rename, is caught here).
final class SpecsDocMethodListTests: XCTestCase {
    func testSpecsDocListsEveryBuiltInMethod() throws {
        let doc = try String(contentsOfFile: "\(repoRoot)/docs/specs.md", encoding: .utf8)
        let start = try XCTUnwrap(doc.range(of: "`method` is one of"), "docs/specs.md no longer has its method list")
        let end = try XCTUnwrap(doc.range(of: "(METHODS.md", range: start.upperBound..<doc.endIndex))
        let listed = Set(doc[start.upperBound..<end.lowerBound].split(separator: "`").enumerated().filter { $0.offset % 2 == 1 }.map { String($0.element) })
        let builtIn = Set(MethodRegistry.types.filter { String(reflecting: $0).hasPrefix("Methods.") }.map { $0.name })
        XCTAssertEqual(builtIn.count, 9)
        XCTAssertEqual(listed, builtIn)
    }
}

