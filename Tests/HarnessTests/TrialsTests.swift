import Foundation
import Methods
import Models
import Tasks
import Tensor
import TestSupport
import XCTest

/// Every real-world failing case in shared/trials (see its README), with the right answers
/// established there independently (transformers' own forward, the official metrics by hand).
final class TrialsTests: XCTestCase {
    func trials() throws -> String {
        guard let dir = sharedItem("trials") else { throw XCTSkip("no shared/trials") }
        return dir
    }

    func doubles(_ v: Any?) -> [Double]? {
        if let d = v as? [Double] { return d }
        if let a = v as? [Any] { return a.compactMap { ($0 as? NSNumber)?.doubleValue } }
        if let n = v as? NSNumber { return [n.doubleValue] }
        return nil
    }

    /// FORMAT.md tolerances: loss/logits abs 1e-4 + rel 1e-4, gradients abs 1e-4 + rel 1e-3.
    func compare(_ label: String, _ got: [String: Any], _ exp: [String: Any]) {
        func close(_ key: String, _ a: [Double]?, _ e: [Double]?, rel: Double) {
            guard let e else { return }
            guard let a, a.count == e.count else { XCTFail("\(label): \(key) missing or of another length"); return }
            let bad = zip(a, e).enumerated().first { !(abs($1.0 - $1.1) <= 1e-4 + rel * abs($1.1)) }
            XCTAssertNil(bad, "\(label): \(key)[\(bad?.offset ?? 0)] = \(bad?.element.0 ?? 0), expected \(bad?.element.1 ?? 0)")
        }
        close("loss", doubles(got["loss"]), doubles(exp["loss"]), rel: 1e-4)
        close("logits", doubles(got["logits"]), doubles(exp["logits"]), rel: 1e-4)
        close("encoder_last_hidden_state", doubles(got["encoder_last_hidden_state"]), doubles(exp["encoder_last_hidden_state"]), rel: 1e-4)
        close("prompt_grad", doubles(got["prompt_grad"]), doubles(exp["prompt_grad"]), rel: 1e-3)
        let gw = got["weight_grads"] as? [String: [Double]] ?? [:]
        for (n, v) in (exp["weight_grads"] as? [String: Any] ?? [:]).sorted(by: { $0.key < $1.key }) {
            close("weight_grads[\(n)]", gw[n], doubles(v), rel: 1e-3)
        }
        if let e = exp["generated_ids"] as? [[Int]] {
            let p = paddedToCommonWidth(got["generated_ids"] as? [[Int]] ?? [], e)
            XCTAssertEqual(p.actual, p.expected, "\(label): generated_ids")
        }
    }

    func json(_ path: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
    }

    /// safetensors files with zero-element tensors (empty ranges next to real ones) load in every
    /// process and give the parity model's numbers; 6 fresh processes per model, since Swift seeds
    /// dictionary order per process.
    func testSafetensorsEmptyTensors() throws {
        let root = "\(try trials())/safetensors-empty-tensors"
        let parity = URL(fileURLWithPath: root).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("parity/t5-v10-small-a").path
        let c = try ParityCase.load(path: "\(parity)/case.json")
        let exp = try json("\(parity)/expected.json")
        for m in ["empty_1d", "empty_2d", "empty_many", "empty_after_every_tensor"] {
            compare(m, try ParityRunner.run(modelDirectory: "\(root)/\(m)", case: c), exp)
            for _ in 0..<6 {
                let (status, out) = try runStdout(["info", "--model", "\(root)/\(m)"])
                XCTAssertEqual(status, 0, "\(m): refused in a fresh process")
                // Every parameter is F32; empty_many's F16 tensor 'zzz' [3, 0] holds no value (it read "F16,F32").
                XCTAssertTrue(out.contains(#""dtype" : "F32""#) || out.contains(#""dtype":"F32""#), "\(m): \(out)")
            }
        }
    }

    /// GPT-2 with tie_word_embeddings false and its own lm_head.weight: the stored head is used.
    func testGPT2UntiedHead() throws {
        let root = "\(try trials())/gpt2-untied-head"
        let parity = URL(fileURLWithPath: root).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("parity/gpt2-prompt-a").path
        let got = try ParityRunner.run(modelDirectory: "\(root)/model", case: try ParityCase.load(path: "\(parity)/case.json"))
        let exp = try json("\(root)/expected.json")
        compare("gpt2-untied-head", got, exp)
        XCTAssertEqual(got["loss"] as? Double ?? 0, 16.451578, accuracy: 1e-3)
    }

    func score(_ task: String, _ preds: String, _ set: TemplateSet, dataDir: String) throws -> [String: Double] {
        let def = try TaskRegistry.definition(task)
        let data = try DataLoader.load(def, split: .validation, dataDir: dataDir)
        return try Metrics.scoreFile(def, data: data, predictionsPath: preds, set: set)
    }

    func assertScores(_ label: String, _ got: [String: Double], _ exp: Any?) {
        let e = exp as! [String: Double]
        for (k, v) in e { XCTAssertEqual(got[k] ?? -1, v, accuracy: 0.01, "\(label): \(k)") }
    }

    /// Predictions in ResPT's label words and DePT's label indices score as the same decisions in DPT's.
    func testMetricsFollowLabelWords() throws {
        let root = "\(try trials())/metrics-label-words"
        let exp = try json("\(root)/expected.json")
        let data = try sharedData()
        assertScores("multirc-respt", try score("multirc", "\(root)/multirc-respt.jsonl", .respt, dataDir: data), exp["multirc-respt"])
        assertScores("cb-respt", try score("cb", "\(root)/cb-respt.jsonl", .respt, dataDir: data), exp["cb-respt"])
        assertScores("wsc-dept", try score("wsc", "\(root)/wsc-dept.jsonl", .dept, dataDir: data), exp["wsc-dept"])
    }

    /// ReCoRD answers with Unicode whitespace normalise as the official SQuAD script does.
    func testReCoRDUnicodeWhitespace() throws {
        let root = "\(try trials())/record-unicode-whitespace"
        let exp = try json("\(root)/expected.json")
        assertScores("gold-nbsp", try score("record", "\(root)/predictions.jsonl", .dpt, dataDir: "\(root)/data"), exp["gold-nbsp"])
        assertScores("prediction-spaces", try score("record", "\(root)/predictions-unicode-spaces.jsonl", .dpt, dataDir: try sharedData()),
                     exp["prediction-spaces"])
    }
}

/// `info` counts the parameters the loader uses: a T5 v1.1 file whose config says
/// `tie_word_embeddings: true` (transformers 5 writes that with `scale_decoder_outputs`) but that
/// stores its own `lm_head.weight` is run untied, and counted so.
final class InfoCountTests: XCTestCase {
    func testInfoCountsAStoredHeadAsTheLoaderUsesIt() throws {
        let src = URL(fileURLWithPath: repoRoot).appendingPathComponent("Tests/MethodTests/Resources/trajectories/models/t5-v11").path
        let dir = tempDir("info")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.copyItem(atPath: "\(src)/model.safetensors", toPath: "\(dir)/model.safetensors")
        var cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(src)/config.json"))) as! [String: Any]
        cfg["tie_word_embeddings"] = true
        cfg["scale_decoder_outputs"] = false
        try JSONSerialization.data(withJSONObject: cfg).write(to: URL(fileURLWithPath: "\(dir)/config.json"))
        let model = try T5Model.load(directory: dir)
        XCTAssertNotNil(model.lmHead, "the stored head is used")
        let loaded = model.parameters.reduce(0) { $0 + $1.tensor.count }
        let (_, text) = try runStdout(["info", "--model", dir])
        let info = try JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: Any]
        XCTAssertEqual(info["total_params"] as? Int, loaded)
        XCTAssertTrue((info["variant"] as? String ?? "").contains("untied lm_head"), "\(info)")
    }
}

/// `forward` on a checkpoint with a NaN weight: JSON has no NaN, so the output cannot be written;
/// the error names the output key instead of JSONSerialization's "Invalid number value".
final class NonFiniteOutputTests: XCTestCase {
    func testForwardNamesANonFiniteOutput() throws {
        let src = URL(fileURLWithPath: repoRoot).appendingPathComponent("Tests/ModelTests/Resources/parity-extra/t5-extra-b").path
        let dir = tempDir("nan-weight")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: "\(dir)/model", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "\(src)/model/config.json", toPath: "\(dir)/model/config.json")
        let file = try SafeTensorsFile(path: "\(src)/model/model.safetensors")
        var tensors: [String: Tensor] = [:]
        for name in file.entries.keys { tensors[name] = try file.tensor(name) }
        tensors["encoder.final_layer_norm.weight"]!.data[0] = .nan
        try SafeTensorsFile.write(tensors, to: "\(dir)/model/model.safetensors")
        let (status, text) = try runCLIText(["forward", "--model", "\(dir)/model", "--case", "\(src)/case.json", "--threads", "1"], stdout: false)
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(text.contains("is not a finite number") && text.contains("'encoder_last_hidden_state"), text)
    }
}
