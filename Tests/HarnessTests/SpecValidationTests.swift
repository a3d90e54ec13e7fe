import Foundation
import Harness
import TestSupport
import XCTest

/// A spec setting that would be ignored or could not run is refused with the file and the key,
/// before anything is stored: a misspelt model column, a malformed profile seed list, per-run
/// keys (protocol, model, k, seed) in a `train:` layer or `vary`, and values out of range.
final class SpecValidationTests: XCTestCase {
    func expectSpecError(_ edit: (String) -> String, _ fragments: [String], expand: Bool = false,
                         file: StaticString = #filePath, line: UInt = #line) throws {
        let dir = tempDir("specval")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = "\(dir)/s.yaml"
        try edit(miniSpec).write(toFile: path, atomically: true, encoding: .utf8)
        do {
            let s = try ExperimentSpec.load(path)
            if expand { _ = try s.expand(profile: "smoke") }
            XCTFail("accepted:\n\(edit(miniSpec))", file: file, line: line)
        } catch {
            let text = "\(error)"
            for f in [path] + fragments { XCTAssertTrue(text.contains(f), "'\(f)' not in: \(text)", file: file, line: line) }
        }
    }

    func testSettingsThatWouldBeIgnoredOrCannotRunAreRefused() throws {
        // The unedited spec loads and expands (8 runs), so each case below fails on its edit alone.
        let dir = tempDir("specok")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try miniSpec.write(toFile: "\(dir)/ok.yaml", atomically: true, encoding: .utf8)
        XCTAssertEqual(try ExperimentSpec.load("\(dir)/ok.yaml").expand(profile: "smoke").count, 8)

        try expectSpecError({ $0.replacingOccurrences(of: "{t5-small: \"embedded:t5-tiny\"}", with: "{t5-smal: \"embedded:t5-tiny\"}") },
                            ["profiles.smoke.models: 't5-smal' is not a model column", "did you mean 't5-small'"])
        try expectSpecError({ $0.replacingOccurrences(of: "{t5-small: \"embedded:t5-tiny\"}", with: "{}") }, ["profiles.smoke.models must map"])
        try expectSpecError({ $0.replacingOccurrences(of: "  smoke:\n", with: "  smoke:\n    seeds: [1, 2x, 3]\n") },
                            ["profiles.smoke.seeds", "'2x' is not an integer"])
        try expectSpecError({ $0.replacingOccurrences(of: "{name: pt, method: pt, n: 8}", with: "{name: pt, method: pt, n: 8, train: {protocol: lopt-paper}}") },
                            ["methods[1].train: 'protocol' is the spec's"])
        try expectSpecError({ $0.replacingOccurrences(of: "train: {epochs: 4,", with: "train: {seed: 3, epochs: 4,") },
                            ["profiles.smoke.train: 'seed' comes from the spec's 'seeds'"])
        try expectSpecError({ $0.replacingOccurrences(of: "{name: pt, method: pt, n: 8}", with: "{name: pt, method: pt, n: 8, vary: {k: [8, 16]}}") },
                            ["methods[1].vary: 'k' comes from the spec's 'k' list"])
        try expectSpecError({ $0.replacingOccurrences(of: "batch_size: 4", with: "batch_size: 0") },
                            ["dpt on cb [smoke]", "batch_size must be ≥ 1, got 0"], expand: true)
        try expectSpecError({ $0.replacingOccurrences(of: "epochs: 4", with: "epochs: 0") }, ["epochs must be ≥ 1, got 0"], expand: true)
        try expectSpecError({ $0.replacingOccurrences(of: "decode_max_tokens: 3", with: "decode_max_tokens: 0") },
                            ["decode_max_tokens must be ≥ 1 or auto, got 0"], expand: true)
    }

    /// `train` refuses the same values by their flag names, before it loads anything.
    func testTrainRefusesOutOfRangeFlags() throws {
        for (flag, value, message) in [("--batch-size", "0", "--batch-size must be ≥ 1, got 0"), ("--epochs", "0", "--epochs must be ≥ 1, got 0"),
                                       ("--warmup-ratio", "1.5", "--warmup-ratio must be in [0, 1], got 1.5")] {
            let (status, err) = try runCapture(["train", "--method", "pt", "--task", "cb", "--k", "8", flag, value])
            XCTAssertNotEqual(status, 0, flag)
            XCTAssertTrue(err.contains(message), "\(flag): \(err)")
        }
    }
}
