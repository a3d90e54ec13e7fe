import Foundation
import Reports
import Store
import XCTest

/// The lm-eval export's pieces against what lm-eval 0.4.13 and Python write (expected values from
/// Python 3.11: `json.dumps(…, indent=2, sort_keys=True, ensure_ascii=False)`, lm_eval.utils's
/// `sanitize_model_name` regex, `datetime.isoformat().replace(":", "-")`).
final class LMEvalFormatTests: XCTestCase {
    /// Whole-number floats keep their ".0" (JSONSerialization wrote 0 for a 0.0 score, and
    /// lm-eval's make_table formats floats only), exponents and NaN as Python writes them,
    /// escapes as Python's (\b, \f, \u0001), non-ASCII text as is.
    func testJSONIsWhatPythonWrites() {
        let object: [String: Any] = ["b": [1, 0.0, 1e-05, Double.nan, 0.2708, 1e16, -0.0] as [Any], "a": true, "c": NSNull(),
                                     "s": "x\"y\n\u{08}\u{01}é", "e": [String: Any](), "f": [Any]()]
        let python = """
        {
          "a": true,
          "b": [
            1,
            0.0,
            1e-05,
            NaN,
            0.2708,
            1e+16,
            -0.0
          ],
          "c": null,
          "e": {},
          "f": [],
          "s": "x\\"y\\n\\b\\u0001é"
        }
        """
        XCTAssertEqual(ToolFormats.pythonJSON(object), python)
    }

    /// lm-eval's folder names: runs of its special characters become one "__".
    func testModelNamesAreSanitizedAsLMEvalDoes() {
        XCTAssertEqual(ToolFormats.lmEvalSanitized("embedded:t5-tiny"), "embedded__t5-tiny")
        XCTAssertEqual(ToolFormats.lmEvalSanitized("pts@lr=3.0/t5-small/k8"), "pts@lr=3.0__t5-small__k8")
        XCTAssertEqual(ToolFormats.lmEvalSanitized("a:/b[c]"), "a__b__c__")
        XCTAssertEqual(ToolFormats.lmEvalModelName(spec: "table1", profile: "cpu", variant: "dpt", model: "t5-base", k: nil), "table1/cpu/dpt/t5-base/kfull")
        XCTAssertEqual(ToolFormats.lmEvalTaskName("rte"), "promptrepro_rte")
    }

    /// The date in a results file's name, which lm-eval's readers order by (the text after its
    /// last "_"): 1796688000.5 is 2026-12-08 00:00:00.5 UTC.
    func testDateIDIsLMEvalsIsoformat() {
        XCTAssertEqual(ToolFormats.lmEvalDateID(Date(timeIntervalSince1970: 1796688000.5)), "2026-12-08T00-00-00.500000")
    }

    /// A cell of each k goes into its own file: the k a file holds is its `config.k`, its tasks
    /// named promptrepro_<task> with their scores as fractions and the settings the runs used.
    func testOneFilePerKWithItsSettings() throws {
        func cell(k: Int, accuracy: [Double]) -> CellResult {
            CellResult(cell: "pt|cb|t5-small|k\(k)", variant: "pt", method: "pt", task: "cb", model: "t5-small", k: k, seeds: Array(1...accuracy.count),
                       statuses: ["done": accuracy.count], trainableParams: nil, best: ["accuracy": Stat(accuracy)], last: [:], divergedSeeds: [], probe: nil)
        }
        let cells = [cell(k: 8, accuracy: [50, 60]), cell(k: 16, accuracy: [75, 75])]
        let settings = ToolFormats.LMEvalSettings(limit: 16, batchSize: 32, outputType: ["cb": "multiple_choice"])
        let j = ToolFormats.lmEval(cells: cells, variant: "pt", model: "t5-small", spec: "s", profile: "smoke", versions: ["cb": 3], samples: ["cb": 16],
                                   originals: ["cb": 56], modelSpec: "embedded:t5-tiny", k: 16, settings: settings)
        let r = try XCTUnwrap((j["results"] as? [String: Any])?["promptrepro_cb"] as? [String: Any])
        XCTAssertEqual(r["accuracy,none"] as? Double, 0.75)
        XCTAssertEqual(r["accuracy_stderr,none"] as? Double, 0, "two equal seeds")
        XCTAssertEqual((j["config"] as? [String: Any])?["k"] as? Int, 16)
        XCTAssertEqual((j["config"] as? [String: Any])?["limit"] as? Int, 16)
        XCTAssertEqual((j["config"] as? [String: Any])?["batch_size"] as? Int, 32)
        XCTAssertEqual(((j["configs"] as? [String: Any])?["promptrepro_cb"] as? [String: Any])?["output_type"] as? String, "multiple_choice")
        XCTAssertEqual((j["versions"] as? [String: Double])?["promptrepro_cb"], 3.0)
        XCTAssertEqual(((j["n-samples"] as? [String: Any])?["promptrepro_cb"] as? [String: Int]), ["original": 56, "effective": 16])
        let k8 = ToolFormats.lmEval(cells: cells, variant: "pt", model: "t5-small", spec: "s", profile: "smoke", versions: [:], samples: [:],
                                    modelSpec: "embedded:t5-tiny", k: 8)
        let r8 = try XCTUnwrap((k8["results"] as? [String: Any])?["promptrepro_cb"] as? [String: Any])
        XCTAssertEqual(r8["accuracy,none"] as? Double, 0.55)
        // SEM over the two seeds: sample std 7.0711 / √2 = 5 points.
        XCTAssertEqual(try XCTUnwrap(r8["accuracy_stderr,none"] as? Double), 0.05, accuracy: 1e-12)
        XCTAssertEqual(k8["model_name_sanitized"] as? String, "s__smoke__pt__t5-small__k8", "spec and profile in the name: two exports in one folder do not share it")
        let text = ToolFormats.pythonJSON(k8)
        XCTAssertNotNil(text.range(of: #""versions": \{\n    "promptrepro_cb": \d+\.0\n"#, options: .regularExpression), "the registry's version as a float: \(text)")
    }

    /// An earlier export's files of the same spec and profile go, in lm-eval's layout and the flat
    /// one before it; another spec's files and other files stay; emptied folders go.
    func testEarlierExportFilesAreReplaced() throws {
        let dir = NSTemporaryDirectory() + "lmeval-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fm = FileManager.default
        func write(_ path: String, spec: String, profile: String = "smoke", model: String = "promptrepro") throws {
            try fm.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try #"{"config": {"model": "\#(model)", "spec": "\#(spec)", "profile": "\#(profile)"}}"#.write(toFile: path, atomically: true, encoding: .utf8)
        }
        try write("\(dir)/results_pt_t5-small.json", spec: "s")
        try write("\(dir)/pt__t5-small__k16/results_2026-12-01T00-00-00.000000.json", spec: "s")
        try write("\(dir)/pt__t5-small__k8/results_2026-12-01T00-00-00.000000.json", spec: "s")
        try write("\(dir)/pt__t5-small__k8/results_2026-11-01T00-00-00.000000.json", spec: "other")
        try write("\(dir)/hf__gpt2/results_2026-11-01T00-00-00.000000.json", spec: "s", model: "hf")
        try write("\(dir)/pt__t5-small__k4/results_2026-11-01T00-00-00.000000.json", spec: "s", profile: "cpu")
        try "not json".write(toFile: "\(dir)/results_notes.json", atomically: true, encoding: .utf8)
        XCTAssertEqual(try LMEvalExportFiles.removeEarlier(in: dir, spec: "s", profile: "smoke"), 3)
        XCTAssertEqual(try fm.contentsOfDirectory(atPath: dir).sorted(), ["hf__gpt2", "pt__t5-small__k4", "pt__t5-small__k8", "results_notes.json"])
        XCTAssertEqual(try fm.contentsOfDirectory(atPath: "\(dir)/pt__t5-small__k8"), ["results_2026-11-01T00-00-00.000000.json"])
        XCTAssertEqual(try LMEvalExportFiles.removeEarlier(in: "\(dir)/none", spec: "s", profile: "smoke"), 0)
    }
}
