import Foundation
import Methods
import Models
import Tensor
import TestSupport
import XCTest

/// Every fixture directory under shared/parity (any that holds case.json), compared with the
/// tolerances of FORMAT.md: loss/logits/encoder state abs 1e-4 + rel 1e-4; gradients abs 1e-4 +
/// rel 1e-3; logits_shape and generated_ids exact (generated rows right-padded with 0).
final class ParityTests: XCTestCase {
    func compare(_ name: String, _ key: String, _ actual: [Double]?, _ expected: [Double], abs: Double, rel: Double) {
        guard let actual else { XCTFail("\(name): missing \(key)"); return }
        guard actual.count == expected.count else { XCTFail("\(name): \(key) length \(actual.count) ≠ \(expected.count)"); return }
        var worst = 0.0, worstAt = 0
        for i in 0..<expected.count {
            let a = actual[i], e = expected[i]
            if !a.isFinite { XCTFail("\(name): \(key)[\(i)] is \(a)"); return }
            let err = Swift.abs(a - e)
            if err > worst { worst = err; worstAt = i }
            if err > abs + rel * Swift.abs(e) {
                XCTFail("\(name): \(key)[\(i)] = \(a), expected \(e) (|diff| \(err))")
                return
            }
        }
        print("parity \(name) \(key): max |diff| = \(String(format: "%.3g", worst)) at \(worstAt) (\(expected.count) values)")
    }

    func testAllParityFixtures() throws {
        try runFixtures(in: (try sharedDir() as NSString).appendingPathComponent("parity"), atLeast: 3)
    }

    /// Cases made by scripts/make_parity_case.py with PyTorch 2.15 + transformers 5.24 (each
    /// expected.json records its generator's arguments and versions in `info`) on shapes and config flags the shared fixtures do not cover: 1 encoder / 3 decoder
    /// layers, 8 buckets with max distance 12 on 30–40 tokens, batch 1 and 3, GPT-2 with a prompt
    /// and 4 heads, T5 with the non-gated erf-GELU FFN; GPT-2 with an untied `lm_head` and
    /// `scale_attn_by_inverse_layer_idx` (gpt2-untied-inverse-scale), GPT-2 with
    /// `scale_attn_weights: false`, erf GELU, `layer_norm_epsilon` 1e-3 and unprefixed tensor names
    /// (gpt2-unscaled-gelu-unprefixed), T5 v1.1 with `layer_norm_epsilon` 1e-3 (t5-v11-eps); and the
    /// LM head as transformers 5 reads it back from the file (`--store-head`, `--model-type mt5`):
    /// mT5 with a tied config and its own head (mt5-tied-config-own-head: that head, unscaled) or
    /// none (mt5-tied-no-head: `shared`, unscaled), T5 v1.0 with its own head (scaled), T5 v1.1
    /// without one (t5-untied-config-no-head: `shared`, unscaled), GPT-2 with a tied config and its
    /// own head; SiLU FFNs (t5-gated-silu-odd-buckets: gated, 7 buckets; t5-silu-5-buckets: plain,
    /// 5 buckets with max distance 9 on 20–33 tokens; gpt2-silu), which were refused, as were odd
    /// bucket counts, though transformers runs them.
    func testExtraParityFixtures() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Resources/parity-extra").path
        try runFixtures(in: dir, atLeast: 15)
    }

    func runFixtures(in root: String, atLeast: Int) throws {
        let dirs = try FileManager.default.contentsOfDirectory(atPath: root).sorted().filter {
            FileManager.default.fileExists(atPath: "\(root)/\($0)/case.json")
        }
        XCTAssertGreaterThanOrEqual(dirs.count, atLeast, "expected parity fixtures in \(root)")
        for name in dirs {
            let dir = "\(root)/\(name)"
            let c = try ParityCase.load(path: "\(dir)/case.json")
            let exp = try readJSON("\(dir)/expected.json") as! [String: Any]
            // T5: both cross-attention forms (projected K/V as transformers, and absorbed) against the same reference.
            var isT5 = false
            if case .t5 = try ModelConfig.load(path: "\(dir)/model/config.json") { isT5 = true }
            // Every GEMM kernel this CPU can run (OpenBLAS, and PromptRepro's AVX-512 and AVX2 ones where present).
            for kernel in BLAS.availableKernels {
                for mode in isT5 ? [T5Model.CrossAttentionMode.projected, .absorbed] : [.auto] {
                    let name = isT5 ? "\(name) [\(mode), \(kernel)]" : "\(name) [\(kernel)]"
                    let got = try BLAS.withKernel(kernel) {
                        try ParityRunner.run(modelDirectory: "\(dir)/model", case: c, crossAttention: mode)
                    }
                    try check(name, got, exp)
                }
            }
        }
    }

    func check(_ name: String, _ got: [String: Any], _ exp: [String: Any]) throws {
        if let l = exp["loss"] as? Double {
            compare(name, "loss", (got["loss"] as? Double).map { [$0] }, [l], abs: 1e-4, rel: 1e-4)
        }
        XCTAssertEqual(got["logits_shape"] as? [Int], (exp["logits_shape"] as? [Any])?.compactMap { ($0 as? Int) }, "\(name): logits_shape")
        compare(name, "logits", doubles(got["logits"]), doubles(exp["logits"])!, abs: 1e-4, rel: 1e-4)
        if let e = doubles(exp["encoder_last_hidden_state"]) {
            compare(name, "encoder_last_hidden_state", doubles(got["encoder_last_hidden_state"]), e, abs: 1e-4, rel: 1e-4)
        }
        if let e = doubles(exp["prompt_grad"]) {
            compare(name, "prompt_grad", doubles(got["prompt_grad"]), e, abs: 1e-4, rel: 1e-3)
        }
        if let wg = exp["weight_grads"] as? [String: Any] {
            let g = got["weight_grads"] as? [String: [Double]] ?? [:]
            for (n, v) in wg { compare(name, "weight_grads[\(n)]", g[n], doubles(v)!, abs: 1e-4, rel: 1e-3) }
        }
        if let e = exp["generated_ids"] as? [[Int]] {
            let p = paddedToCommonWidth(got["generated_ids"] as? [[Int]] ?? [], e)
            XCTAssertEqual(p.actual, p.expected, "\(name): generated_ids")
        }
    }

    /// weight_grads may name tied aliases: they report the gradient of the tensor they share.
    func testWeightGradAliases() throws {
        let dir = (try sharedDir() as NSString).appendingPathComponent("parity")
        var c = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/t5-v10-small-a/case.json"))) as! [String: Any]
        c["weight_grads"] = ["shared.weight", "encoder.embed_tokens.weight", "lm_head.weight"]
        let t5 = try ParityRunner.run(modelDirectory: "\(dir)/t5-v10-small-a/model",
                                      case: try JSONDecoder().decode(ParityCase.self, from: JSONSerialization.data(withJSONObject: c)))
        let g = t5["weight_grads"] as! [String: [Double]]
        XCTAssertEqual(g["encoder.embed_tokens.weight"], g["shared.weight"])
        XCTAssertEqual(g["lm_head.weight"], g["shared.weight"])
        var c2 = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/gpt2-prompt-a/case.json"))) as! [String: Any]
        c2["weight_grads"] = ["transformer.wte.weight", "wte.weight", "lm_head.weight"]
        let gpt = try ParityRunner.run(modelDirectory: "\(dir)/gpt2-prompt-a/model",
                                       case: try JSONDecoder().decode(ParityCase.self, from: JSONSerialization.data(withJSONObject: c2)))
        let g2 = gpt["weight_grads"] as! [String: [Double]]
        XCTAssertEqual(g2["wte.weight"], g2["transformer.wte.weight"])
        XCTAssertEqual(g2["lm_head.weight"], g2["transformer.wte.weight"])
    }

    func testRelativePositionBuckets() throws {
        let path = (try sharedDir() as NSString).appendingPathComponent("parity/t5-relative-buckets.json")
        let obj = try readJSON(path) as! [String: Any]
        let rps = doubles(obj["relative_position"])!.map { Int($0) }
        let enc = doubles(obj["bidirectional_encoder"])!.map { Int($0) }
        let dec = doubles(obj["unidirectional_decoder"])!.map { Int($0) }
        let nb = obj["num_buckets"] as! Int, md = obj["max_distance"] as! Int
        XCTAssertEqual(rps.count, 601)
        for (i, rp) in rps.enumerated() {
            XCTAssertEqual(T5Model.relativeBucket(rp, bidirectional: true, numBuckets: nb, maxDistance: md), enc[i], "encoder rp \(rp)")
            XCTAssertEqual(T5Model.relativeBucket(rp, bidirectional: false, numBuckets: nb, maxDistance: md), dec[i], "decoder rp \(rp)")
        }
    }

    /// Hand-worked buckets from the HF formula (32 buckets, max distance 128).
    func testRelativeBucketHandValues() {
        // Encoder: 16 per side, exact below 8: rp = 3 → 16 + 3; rp = −3 → 3.
        XCTAssertEqual(T5Model.relativeBucket(3, bidirectional: true, numBuckets: 32, maxDistance: 128), 19)
        XCTAssertEqual(T5Model.relativeBucket(-3, bidirectional: true, numBuckets: 32, maxDistance: 128), 3)
        // |rp| = 20: 8 + int(log(20/8)/log(128/8)·8) = 8 + int(2.644) = 10.
        XCTAssertEqual(T5Model.relativeBucket(-20, bidirectional: true, numBuckets: 32, maxDistance: 128), 10)
        // Saturation at and beyond max distance.
        XCTAssertEqual(T5Model.relativeBucket(500, bidirectional: true, numBuckets: 32, maxDistance: 128), 31)
        // Decoder: future keys → 0; past 40: 16 + int(log(40/16)/log(8)·16) = 16 + int(7.05) = 23.
        XCTAssertEqual(T5Model.relativeBucket(5, bidirectional: false, numBuckets: 32, maxDistance: 128), 0)
        XCTAssertEqual(T5Model.relativeBucket(-40, bidirectional: false, numBuckets: 32, maxDistance: 128), 23)
        XCTAssertEqual(T5Model.relativeBucket(-1000, bidirectional: false, numBuckets: 32, maxDistance: 128), 31)
    }
}
