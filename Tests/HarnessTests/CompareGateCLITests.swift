import Foundation
import Store
import TestSupport
import XCTest

/// `compare` on a real sweep: the per-example paired bootstrap over stored best-epoch predictions,
/// the spec / profile / backbone header with the smoke disclaimer, `--spec PATH` as `sweep` takes
/// it, and a gate that fails once a run is missing.
final class CompareGateCLITests: XCTestCase {
    func testCompareOnASweepUsesStoredPredictionsAndGatesOnMissingRuns() throws {
        let data = try sharedData()
        let dir = tempDir("cmpcli")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try miniSpec.write(toFile: "\(dir)/mini.yaml", atomically: true, encoding: .utf8)
        let db = "\(dir)/s.sqlite"
        XCTAssertEqual(try runCLI(["sweep", "\(dir)/mini.yaml", "--profile", "smoke", "--workers", "2", "--db", db, "--data-dir", data,
                                   "--checkpoints", "\(dir)/ck"]).terminationStatus, 0)
        func compare(_ extra: [String]) throws -> (Int32, String) {
            try runStdout(["compare", "--spec", "\(dir)/mini.yaml", "--method", "dpt", "--baseline", "pt", "--db", db, "--data-dir", data] + extra)
        }
        let (status, text) = try compare(["--max-regression", "100"])
        XCTAssertEqual(status, 0, text)
        XCTAssertTrue(text.contains("paired bootstrap over 16 examples × 2 seeds"), text)
        XCTAssertTrue(text.contains("profile **smoke**") && text.contains("t5-small = embedded:t5-tiny") && text.contains("reproduce nothing"), text)
        // Every verdict agrees with its printed interval.
        for line in text.split(separator: "\n") where line.hasPrefix("| cb") || line.hasPrefix("| rte") {
            let cols = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            let ci = cols[5].dropFirst().prefix { $0 != "]" }.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
            XCTAssertEqual(ci.count, 2, line.description)
            let verdict = cols[9]
            XCTAssertEqual(verdict, ci[0] > 0 ? "win" : (ci[1] < 0 ? "loss" : "tie"), line.description)
        }
        // Results for other tools: lm-eval-shaped JSON per variant and column, PEFT method_comparison JSON per run.
        XCTAssertEqual(try runCLI(["export", "mini", "--db", db, "--format", "lm-eval", "--out", "\(dir)/lm"]).terminationStatus, 0)
        let lm = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/lm/results_dpt_t5-small.json"))) as! [String: Any]
        XCTAssertEqual(Set(lm.keys), ["results", "versions", "n-samples", "config"])
        XCTAssertNotNil((lm["results"] as? [String: Any])?["cb"].flatMap { ($0 as? [String: Any])?["accuracy,none"] })
        XCTAssertEqual(((lm["n-samples"] as? [String: Any])?["rte"] as? [String: Any])?["effective"] as? Int, 16)
        XCTAssertEqual(try runCLI(["export", "mini", "--db", db, "--format", "peft-bench", "--out", "\(dir)/pb"]).terminationStatus, 0)
        let runs = try FileManager.default.contentsOfDirectory(atPath: "\(dir)/pb")
        XCTAssertEqual(runs.count, 8)
        let one = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/pb/\(runs.sorted()[0])"))) as! [String: Any]
        XCTAssertEqual(Set(one.keys), ["run_info", "train_info", "meta_info"])
        XCTAssertEqual((one["train_info"] as? [String: Any])?["status"] as? String, "done")
        // One PT seed fails: the gate lists it and fails; --allow-missing gates on the rest.
        let s = try ResultsStore(path: db)
        try s.db.query("UPDATE runs SET status='failed', error='test' WHERE variant='pt' AND task='rte' AND seed=2")
        let (failed, ftext) = try compare(["--max-regression", "100"])
        XCTAssertEqual(failed, 1)
        XCTAssertTrue(ftext.contains("baseline 'pt' rte: seed 2 missing (1 failed)"), ftext)
        XCTAssertEqual(try compare(["--max-regression", "100", "--allow-missing"]).0, 0)
    }
}
