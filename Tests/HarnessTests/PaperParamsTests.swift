import Foundation
import Harness
import Methods
import Models
import Store
import TestSupport
import XCTest

final class PaperParamsTests: XCTestCase {
    /// Every trained run stores its paper-formula trainable count (run metric `paper_params`) for its
    /// model column's architecture, also on the smoke profile's stand-in backbone: on T5-Small
    /// (d_model 512) DPT n=100 r=10 has 100·10 + 10·512 = 6,120 and PT n=100 has 100·512 = 51,200
    /// (DPT Table 1 prints 6K and 51K: Baselines/published/dpt-table1.csv). The backbone's own
    /// count stays in `trainable_params`; the cell exposes the stored count, and the spec's counts
    /// agree with it.
    func testTrainedRunStoresThePaperFormulaCount() throws {
        let data = try sharedData()
        let dir = tempDir("paper-params")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let yaml = """
        spec: pp
        title: paper-formula counts
        paper: dpt
        methods:
          - {name: dpt, method: dpt, n: 100, r: 10}
          - {name: pt, method: pt, n: 100}
        tasks: [cb]
        models: [t5-small]
        seeds: [1]
        k: [8]
        profiles:
          smoke:
            models: {t5-small: "embedded:t5-tiny"}
            train: {epochs: 1, batch_size: 4, eval_limit: 8, eval_batch_size: 8, decode_max_tokens: 3, max_source_length: 96}
        """
        try yaml.write(toFile: "\(dir)/pp.yaml", atomically: true, encoding: .utf8)
        let p = try runCLI(["sweep", "\(dir)/pp.yaml", "--profile", "smoke", "--workers", "1", "--db", "\(dir)/pp.sqlite",
                            "--data-dir", data, "--checkpoints", "\(dir)/ck"])
        XCTAssertEqual(p.terminationStatus, 0)
        let s = try ResultsStore(path: "\(dir)/pp.sqlite")
        var stored: [String: Double] = [:], trainable: [String: Int] = [:]
        for r in try s.db.query("""
            SELECT r.variant, r.trainable_params, m.value FROM runs r JOIN run_metrics m ON m.run_id = r.id AND m.name = 'paper_params'
            WHERE r.status = 'done'
            """) {
            stored[r["variant"]!.text!] = r["value"]!.double!
            trainable[r["variant"]!.text!] = r["trainable_params"]!.int!
        }
        XCTAssertEqual(stored, ["dpt": 6_120, "pt": 51_200])
        XCTAssertNotEqual(trainable["pt"], 51_200, "the embedded backbone is narrower than T5-Small")
        let small = try XCTUnwrap(Architectures.known["t5-small"])
        let spec = try ExperimentSpec.load("\(dir)/pp.yaml")
        for run in try spec.expand(profile: "smoke") {
            XCTAssertEqual(stored[run.variant], Double(try MethodRegistry.parameterCount(run.config.method, architecture: small)))
        }
        XCTAssertEqual(Dictionary(uniqueKeysWithValues: try s.cellResults(spec: "pp", profile: "smoke").map { ($0.variant, $0.paperParams) }),
                       ["dpt": 6_120, "pt": 51_200])
        XCTAssertEqual(spec.paperParameterCounts(), ["dpt": ["t5-small": 6_120], "pt": ["t5-small": 51_200]])
    }
}
