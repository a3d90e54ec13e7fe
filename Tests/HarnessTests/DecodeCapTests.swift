import Foundation
import TestSupport
import XCTest

/// A numeric decode cap below the longest label target with its </s> can cut a longer output into
/// a label ("0 0 0…" read as "0", METHODS.md §4.3) and score it: such a run says so on stderr and
/// records the length the cap needed. CB's targets under the dpt templates are "0", "1", "2": one
/// token and </s>, so a cap of 1 is short and a cap of 2 or `auto` is not.
final class DecodeCapTests: XCTestCase {
    func testACapBelowTheLabelTargetsIsNamedAndRecorded() throws {
        let dir = tempDir("decodecap")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = try sharedData()
        for (cap, short) in [("1", true), ("2", false), ("auto", false)] {
            let out = "\(dir)/\(cap).json"
            let (rc, err) = try runCLIText(["train", "--method", "pt", "--task", "cb", "--model", "embedded:t5-tiny", "--k", "8", "--epochs", "1",
                                            "--threads", "1", "--eval-limit", "8", "--decode-max-tokens", cap, "--data-dir", data, "--out", out], stdout: false)
            XCTAssertEqual(rc, 0, err)
            XCTAssertEqual(err.contains("warning: decode_max_tokens 1 is below the longest label target of cb under templates dpt (2 tokens with </s>)"), short, err)
            let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out))) as? [String: Any]
            let extras = json?["extras"] as? [String: Any]
            XCTAssertEqual(extras?["decode_cap_below_label_tokens"] as? Double, short ? 2 : nil, cap)
        }
    }
}
