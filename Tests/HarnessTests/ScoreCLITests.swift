import Foundation
import TestSupport
import XCTest

/// `score` reads predictions through a template set's label table. A file written in another
/// set's words once scored 0 with exit 0 and nothing on stderr (AG News predictions in LoPT's
/// words under the default DPT set): without `--templates` that is now an error naming the set
/// that reads them, and with an explicit set a note says how many are no label.
final class ScoreCLITests: XCTestCase {
    func testPredictionsInAnotherSetsWordsAreNotScoredSilently() throws {
        let data = try sharedData()
        let lines = try String(contentsOfFile: "\(data)/sst2/dev.tsv", encoding: .utf8)
            .split(separator: "\n").dropFirst().map { String($0.split(separator: "\t").last!) }
        XCTAssertEqual(lines.count, 872)
        let words = ["0": "negative", "1": "positive"]
        let dir = NSTemporaryDirectory() + "score-cli-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // The gold label of every row, in LoPT's words; the first 100 rows' flipped.
        let preds = "\(dir)/sst2-words.jsonl"
        try lines.enumerated().map { i, l in
            let w = words[l]!
            let p = i < 100 ? (w == "negative" ? "positive" : "negative") : w
            return "{\"idx\": \(i), \"prediction\": \" \(p)\"}"
        }.joined(separator: "\n").write(toFile: preds, atomically: true, encoding: .utf8)

        let (status, err) = try runCapture(["score", "--task", "sst2", "--predictions", preds, "--data-dir", data])
        XCTAssertNotEqual(status, 0, "scored predictions that name no label of the default set")
        XCTAssertTrue(err.contains("872 of 872 predictions name no label"), err)
        XCTAssertTrue(err.contains("--templates respt") || err.contains("--templates lopt"), err)

        let (ok, out) = try runStdout(["score", "--task", "sst2", "--predictions", preds, "--data-dir", data, "--templates", "lopt"])
        XCTAssertEqual(ok, 0)
        let scores = try JSONSerialization.jsonObject(with: Data(out.utf8)) as! [String: Double]
        XCTAssertEqual(scores["accuracy"]!, 100 * 772 / 872.0, accuracy: 1e-9)  // 772 of 872 right by construction

        // An explicit set that reads none of them: scored (every row invalid), with a note.
        let (st2, err2) = try runCapture(["score", "--task", "sst2", "--predictions", preds, "--data-dir", data, "--templates", "dpt"])
        XCTAssertEqual(st2, 0)
        XCTAssertTrue(err2.contains("note: ") && err2.contains("--templates respt"), err2)
    }

    /// WSC's default set targets the referent (generated text), so there is no label table to
    /// check with: a file of DePT's "0"/"1" labels scored 63.46 silently. A file that another set
    /// reads entirely as its labels is refused without --templates.
    func testLabelFilesForAGeneratedTextSetAreNotScoredSilently() throws {
        let data = try sharedData()
        let dir = tempDir("score-wsc")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let rows = try String(contentsOfFile: "\(data)/superglue/wsc/val.jsonl", encoding: .utf8).split(separator: "\n")
            .map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        XCTAssertEqual(rows.count, 104)
        let preds = "\(dir)/wsc-labels.jsonl"
        try rows.map { "{\"idx\": \($0["idx"] as! Int), \"prediction\": \"\(($0["label"] as! Bool) ? 1 : 0)\"}" }
            .joined(separator: "\n").write(toFile: preds, atomically: true, encoding: .utf8)
        let (status, err) = try runCapture(["score", "--task", "wsc", "--predictions", preds, "--data-dir", data])
        XCTAssertNotEqual(status, 0, err)
        XCTAssertTrue(err.contains("every prediction is a label of wsc's template set 'dept'") && err.contains("--templates dept"), err)
        let (ok, out) = try runStdout(["score", "--task", "wsc", "--predictions", preds, "--data-dir", data, "--templates", "dept"])
        XCTAssertEqual(ok, 0)
        let scores = try JSONSerialization.jsonObject(with: Data(out.utf8)) as! [String: Double]
        XCTAssertEqual(scores["accuracy"], 100)  // every prediction is its row's gold label
    }
}
