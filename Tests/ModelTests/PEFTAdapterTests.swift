import Foundation
import Models
import Tensor
import XCTest

/// PEFT adapters in: `forward --adapter` against PEFT's own forward and generate (fixtures from
/// scripts/peft_interop.py with peft 0.21.2: PROMPT_TUNING on T5 with one and two transformer
/// submodules and on GPT-2; LORA on T5 (q,v), on T5 with rslora over every linear, and on GPT-2's
/// Conv1D c_attn / c_proj), and adapter keys that match no module refused by name.
final class PEFTAdapterTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Resources/peft").path

    func doubles(_ v: Any?) -> [Double] { (v as? [Any])?.compactMap { ($0 as? NSNumber)?.doubleValue } ?? [] }

    func testAdaptersMatchPEFT() throws {
        let fm = FileManager.default
        let cases = try fm.contentsOfDirectory(atPath: Self.root).filter { fm.fileExists(atPath: "\(Self.root)/\($0)/case.json") }.sorted()
        XCTAssertGreaterThanOrEqual(cases.count, 7)
        for name in cases {
            let dir = "\(Self.root)/\(name)"
            let raw = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/case.json"))) as! [String: Any]
            let c = try ParityCase.load(path: "\(dir)/case.json")
            if let fragment = raw["expect_error"] as? String {
                XCTAssertThrowsError(try ParityRunner.run(modelDirectory: "\(dir)/model", case: c, adapter: "\(dir)/adapter"), name) { e in
                    XCTAssertTrue("\(e)".contains(fragment) && "\(e)".contains("match no module"), "\(e)")
                }
                continue
            }
            let exp = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/expected.json"))) as! [String: Any]
            let got = try ParityRunner.run(modelDirectory: "\(dir)/model", case: c, adapter: "\(dir)/adapter")
            let el = (exp["loss"] as! NSNumber).doubleValue, gl = got["loss"] as! Double
            XCTAssertEqual(gl, el, accuracy: 1e-4 + 1e-4 * abs(el), "\(name) loss")
            XCTAssertEqual(got["logits_shape"] as? [Int], (exp["logits_shape"] as? [Any])?.compactMap { $0 as? Int }, "\(name) shape")
            let a = doubles(got["logits"]), e = doubles(exp["logits"])
            XCTAssertEqual(a.count, e.count, name)
            var worst = 0.0
            for (x, y) in zip(a, e) { worst = max(worst, abs(x - y) / (1e-4 + 1e-4 * abs(y))) }
            XCTAssertLessThanOrEqual(worst, 1, "\(name) logits")
            if let g = exp["generated_ids"] as? [[Int]] {
                XCTAssertEqual((got["generated_ids"] as? [[Int]])?.map { Array($0.prefix(g.first?.count ?? 0)) }, g, "\(name) generate")
            }
            print(String(format: "peft %@: loss %.6f vs %.6f, logits worst/tolerance %.3f", name, gl, el, worst))
        }
    }

    /// A pickled adapter is refused with the way out; an unsupported PEFT type is refused by name.
    func testUnsupportedAdaptersAreRefused() throws {
        let dir = NSTemporaryDirectory() + "peft-bad-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try #"{"peft_type": "LORA", "r": 4, "lora_alpha": 8}"#.write(toFile: "\(dir)/adapter_config.json", atomically: true, encoding: .utf8)
        FileManager.default.createFile(atPath: "\(dir)/adapter_model.bin", contents: Data([0x80, 0x02]))
        XCTAssertThrowsError(try PEFTAdapter.load(directory: dir, parameters: [], dModel: 8, isT5: true)) { XCTAssertTrue("\($0)".contains("safe_serialization=True"), "\($0)") }
        try #"{"peft_type": "IA3"}"#.write(toFile: "\(dir)/adapter_config.json", atomically: true, encoding: .utf8)
        try SafeTensorsFile.write(["x": Tensor(zeros: [1])], to: "\(dir)/adapter_model.safetensors")
        XCTAssertThrowsError(try PEFTAdapter.load(directory: dir, parameters: [], dModel: 8, isT5: true)) { XCTAssertTrue("\($0)".contains("'IA3'"), "\($0)") }
    }
}
