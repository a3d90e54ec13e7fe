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
    /// Decode flags under rank scoring, or on GPT-2 (which ranks the verbaliser's words), decode
    /// nothing: refused by name, by `train` and by `eval` (they were accepted and changed no number
    /// but the run's identity). Under generate on T5 they are taken (exit 0 above).
    func testDecodeFlagsUnderRankScoringAreRefused() throws {
        let dir = tempDir("decoderank")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = try sharedData()
        // An adapter trained to score by rank: `eval` takes its eval mode from the run's config.
        let (trc, terr) = try runCLIText(["train", "--method", "pt", "--task", "cb", "--model", "embedded:t5-tiny", "--k", "8", "--max-steps", "0",
                                          "--threads", "1", "--eval-limit", "2", "--eval-mode", "rank", "--data-dir", data, "--save-adapter", "\(dir)/adapter"], stdout: false)
        XCTAssertEqual(trc, 0, terr)
        for (args, fragment) in [(["train", "--method", "pt", "--task", "cb", "--eval-mode", "rank", "--decode-max-tokens", "5"],
                                  "--decode-max-tokens 5: the eval mode is rank, which scores the label targets without decoding; drop it"),
                                 (["train", "--method", "pt", "--task", "cb", "--eval-mode", "rank-mean", "--decode-stop", "eos", "--decode-max-tokens", "auto"],
                                  "--decode-max-tokens auto and --decode-stop eos: the eval mode is rank-mean"),
                                 (["eval", "--model", "embedded:t5-tiny", "--adapter", "\(dir)/adapter", "--task", "cb", "--decode-stop", "eos", "--data-dir", data],
                                  "--decode-stop eos: the eval mode is rank"),
                                 // GPT-2 ranks the verbaliser's words: nothing is decoded either.
                                 (["train", "--method", "pt", "--task", "sst2", "--model", "embedded:gpt2-tiny", "--decode-max-tokens", "5"],
                                  "--decode-max-tokens 5: GPT-2 runs rank the verbaliser's words and decode nothing; drop it")] {
            let (rc, err) = try runCLIText(args, stdout: false)
            XCTAssertNotEqual(rc, 0, "\(args)")
            XCTAssertTrue(err.contains(fragment), "\(args): \(err)")
        }
    }
}
