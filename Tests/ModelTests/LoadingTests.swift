import Foundation
import Models
import Support
import Tensor
import TestSupport
import XCTest

final class LoadingTests: XCTestCase {
    var tmp = ""

    override func setUp() {
        tmp = NSTemporaryDirectory() + "promptrepro-load-\(getpid())-\(UUID().uuidString.prefix(8))"
        try? FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: tmp) }

    func writeRaw(_ name: String, header: String, data: [UInt8]) -> String {
        var bytes = [UInt8]()
        var n = UInt64(header.utf8.count).littleEndian
        withUnsafeBytes(of: &n) { bytes += $0 }
        bytes += Array(header.utf8) + data
        let path = "\(tmp)/\(name)"
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
        return path
    }

    func expectError(_ path: String, _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try SafeTensorsFile(path: path), file: file, line: line) { e in
            let s = "\(e)"
            XCTAssertTrue(s.contains(path) && s.contains(fragment), "error '\(s)' should name the file and '\(fragment)'", file: file, line: line)
        }
    }

    /// A writer killed between creating its temporary file and renaming it leaves `path.tmp-PID-*`.
    /// The next write of `path` removes it once PID is gone, also when PID is a zombie (a killed worker
    /// whose parent died too, under an init that does not reap: the CI flake of stop 47), and keeps
    /// the temporary of a writer that still runs.
    /// A temporary named with a live process's PID but last written an hour before that process
    /// started is a reused PID's, and goes too.
    func testWriteRemovesTemporariesOfDeadAndZombieWriters() throws {
        #if !os(Linux)
        throw XCTSkip("zombies are told from /proc (Linux)")
        #endif
        let path = "\(tmp)/adapter.safetensors"
        let live = try UnreapedChild(["/bin/sleep", "600"]), zombie = try UnreapedChild(["/bin/true"]), gone = try UnreapedChild(["/bin/true"])
        defer { live.reap(); zombie.reap() }
        XCTAssertTrue(zombie.waitUntilZombie())
        XCTAssertTrue(gone.waitUntilZombie())
        gone.reap()
        let names = [live, zombie, gone].map { "adapter.safetensors.tmp-\($0.pid)-be496238" }
        for n in names { FileManager.default.createFile(atPath: "\(tmp)/\(n)", contents: Data()) }
        let reused = "adapter.safetensors.tmp-\(live.pid)-01d"
        FileManager.default.createFile(atPath: "\(tmp)/\(reused)", contents: Data())
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: -3600)], ofItemAtPath: "\(tmp)/\(reused)")
        FileManager.default.createFile(atPath: "\(tmp)/other.safetensors.tmp-\(gone.pid)-1", contents: Data())  // another file's
        // Tagged with a host: this host's dead writer goes; another host's (whose PIDs mean nothing
        // here) stays until it is a day old. Names of neither form stay.
        let foreign = temporaryHostTag == "0000beef" ? "0000bee5" : "0000beef"
        let ours = "adapter.safetensors.tmp-\(gone.pid)-a1-\(temporaryHostTag)"
        let theirsFresh = "adapter.safetensors.tmp-\(gone.pid)-a2-\(foreign)", theirsOld = "adapter.safetensors.tmp-\(live.pid)-a3-\(foreign)"
        let odd = ["adapter.safetensors.tmp-0-1", "adapter.safetensors.tmp-+\(gone.pid)-1", "adapter.safetensors.tmp-\(gone.pid)",
                   "adapter.safetensors.tmp-\(gone.pid)-XYZ", "adapter.safetensors.tmp-\(gone.pid)-1-\(foreign)-2"]
        for n in [ours, theirsFresh, theirsOld] + odd { FileManager.default.createFile(atPath: "\(tmp)/\(n)", contents: Data()) }
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: -2 * 86400)], ofItemAtPath: "\(tmp)/\(theirsOld)")
        try SafeTensorsFile.write(["w": Tensor(shape: [2], values: [1, 2])], to: path)
        let left = Set(try FileManager.default.contentsOfDirectory(atPath: tmp))
        XCTAssertEqual(left, Set(["adapter.safetensors", names[0], "other.safetensors.tmp-\(gone.pid)-1", theirsFresh] + odd))
    }

    func testCorruptSafetensorsHeadersGiveClearErrors() {
        let f32x2 = [UInt8](repeating: 0, count: 8)
        expectError(writeRaw("short", header: "", data: []).replacingOccurrences(of: "", with: ""), "header length")
        let p0 = "\(tmp)/tiny"
        FileManager.default.createFile(atPath: p0, contents: Data([1, 2, 3]))
        expectError(p0, "truncated")
        // Header length lies (larger than the file).
        var lie = [UInt8](repeating: 0, count: 16)
        lie[0] = 0xFF; lie[1] = 0xFF
        let p1 = "\(tmp)/lie"
        FileManager.default.createFile(atPath: p1, contents: Data(lie))
        expectError(p1, "impossible")
        expectError(writeRaw("badjson", header: "{\"a\": ", data: f32x2), "not valid JSON")
        expectError(writeRaw("outside", header: #"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, data: f32x2), "outside the 8-byte data buffer")
        expectError(writeRaw("bytes", header: #"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: f32x2), "needs 12 bytes")
        expectError(writeRaw("dtype", header: #"{"w":{"dtype":"Q9","shape":[2],"data_offsets":[0,8]}}"#, data: f32x2), "unknown dtype")
        expectError(writeRaw("shape", header: #"{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, data: f32x2), "non-negative")
        expectError(writeRaw("overlap", header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: f32x2), "overlap")
        // A directory (an adapter folder passed for its .safetensors file) said "mmap failed (No such device)".
        expectError(tmp, "is a directory, not a .safetensors file")
    }

    /// The safetensors reference library's rules (safetensors 0.8 `read_metadata` + `validate`),
    /// each accepted and refused case, independent of the header's key order.
    func testSafetensorsValidationFollowsTheReferenceRules() throws {
        func accepts(_ name: String, _ header: String, _ data: Int, file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertNoThrow(try SafeTensorsFile(path: writeRaw(name, header: header, data: [UInt8](repeating: 0, count: data))),
                             name, file: file, line: line)
        }
        // The issue's case: an empty range [0, 0] at the start of another tensor's range, in both key orders.
        accepts("empty-first", #"{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, 4)
        accepts("empty-second", #"{"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}"#, 4)
        accepts("empty-end", #"{"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"z":{"dtype":"F16","shape":[3,0],"data_offsets":[4,4]}}"#, 4)
        accepts("empty-only", #"{"z":{"dtype":"F32","shape":[2,0],"data_offsets":[0,0]}}"#, 0)
        accepts("no-tensors", #"{"__metadata__":{"format":"pt"}}"#, 0)
        // null metadata is none (safetensors 0.8.0's safe_open reads it; the reference's field is an Option).
        accepts("null-metadata", #"{"__metadata__":null,"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, 8)
        accepts("extra-key", #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"note":"x"}}"#, 4)
        accepts("f4-whole-bytes", #"{"w":{"dtype":"F4","shape":[2,2],"data_offsets":[0,2]},"v":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}"#, 6)
        accepts("scalar", #"{"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}"#, 4)
        let f32x2 = [UInt8](repeating: 0, count: 8)
        expectError(writeRaw("gap", header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: f32x2), "leaves bytes 0..<4 unused")
        expectError(writeRaw("trailing", header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: f32x2), "trailing bytes")
        expectError(writeRaw("same-range", header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: f32x2), "overlaps")
        expectError(writeRaw("empty-inside", header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}}"#, data: f32x2), "'e'")
        expectError(writeRaw("reversed", header: #"{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}"#, data: f32x2), "'a'")
        expectError(writeRaw("meta-number", header: #"{"__metadata__":{"epoch":3},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: f32x2), "not a string")
        expectError(writeRaw("meta-list", header: #"{"__metadata__":["x"],"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: f32x2), "__metadata__ is not an object")
        expectError(writeRaw("float-offset", header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8.0]}}"#, data: f32x2), "non-negative integers")
        expectError(writeRaw("f4-half-byte", header: #"{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}"#, data: [0, 0]), "whole number of bytes")
        var big = [UInt8](repeating: 0, count: 16)
        big[3] = 0x10  // 268,435,456 > 100,000,000
        let pBig = "\(tmp)/huge-header"
        FileManager.default.createFile(atPath: pBig, contents: Data(big))
        expectError(pBig, "100,000,000")
        var bad = [UInt8]()
        var n = UInt64(4).littleEndian
        withUnsafeBytes(of: &n) { bad += $0 }
        bad += [0x7B, 0xFF, 0xFE, 0x7D]  // "{", two bytes that are not UTF-8, "}"
        let pBad = "\(tmp)/not-utf8"
        FileManager.default.createFile(atPath: pBad, contents: Data(bad))
        expectError(pBad, "UTF-8")
    }

    func testHalfPrecisionConversion() throws {
        // F16: 1.0 = 0x3C00, -2.5 = 0xC100, 2^-24 (subnormal) = 0x0001; BF16: 1.5 = 0x3FC0.
        let data: [UInt8] = [0x00, 0x3C, 0x00, 0xC1, 0x01, 0x00, 0xC0, 0x3F]
        let p = writeRaw("half", header: #"{"h":{"dtype":"F16","shape":[3],"data_offsets":[0,6]},"b":{"dtype":"BF16","shape":[1],"data_offsets":[6,8]}}"#, data: data)
        let f = try SafeTensorsFile(path: p)
        XCTAssertEqual(try f.tensor("h").array, [1.0, -2.5, Float(sign: .plus, exponent: -24, significand: 1)])
        XCTAssertEqual(try f.tensor("b").array, [1.5])
        XCTAssertThrowsError(try f.tensor("missing")) { XCTAssertTrue("\($0)".contains("missing")) }
    }

    func testWriteReadRoundTripAndCopyOnWrite() throws {
        let t = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
        let p = "\(tmp)/rt.safetensors"
        try SafeTensorsFile.write(["x": t], to: p, metadata: ["k": "v"])
        let before = try SHA256.hex(file: p)
        let f = try SafeTensorsFile(path: p)
        XCTAssertEqual(f.metadata["k"], "v")
        let x = try f.tensor("x")
        XCTAssertEqual(x.array, t.array)
        x[0] = 42  // a training update must never reach the file
        XCTAssertEqual(try SHA256.hex(file: p), before)
    }

    func testMissingAndMisshapenWeightsNameTheTensors() throws {
        let cfg = EmbeddedBackbones.t5Tiny
        let model = try T5Model.random(config: cfg, key: RNGKey(seed: 1))
        var tensors = Dictionary(uniqueKeysWithValues: model.parameters.map { ($0.name, $0.tensor) })
        let dir = "\(tmp)/t5"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try JSONEncoder().encode(cfg).write(to: URL(fileURLWithPath: "\(dir)/config.json"))
        tensors.removeValue(forKey: "encoder.block.1.layer.1.DenseReluDense.wo.weight")
        try SafeTensorsFile.write(tensors, to: "\(dir)/model.safetensors")
        XCTAssertThrowsError(try T5Model.load(directory: dir)) { e in
            XCTAssertTrue("\(e)".contains("encoder.block.1.layer.1.DenseReluDense.wo.weight"), "\(e)")
        }
        tensors["encoder.block.1.layer.1.DenseReluDense.wo.weight"] = Tensor(zeros: [3, 3])
        try SafeTensorsFile.write(tensors, to: "\(dir)/model.safetensors")
        XCTAssertThrowsError(try T5Model.load(directory: dir)) { e in
            XCTAssertTrue("\(e)".contains("[3, 3]") && "\(e)".contains("expected [64, 256]"), "\(e)")
        }
    }

    /// T5 files storing the encoder's or decoder's embedding apart from `shared.weight`: equal
    /// copies load as one table (every saved T5); a copy of other values is refused, since
    /// transformers 4 ties it to `shared.weight` and transformers 5 keeps it apart (a review's file
    /// loaded with `shared.weight` everywhere: loss 4.690 where transformers 5 gives 4.985).
    func testT5EmbeddingCopiesMustAgree() throws {
        let cfg = EmbeddedBackbones.t5Tiny
        let model = try T5Model.random(config: cfg, key: RNGKey(seed: 3))
        let base = Dictionary(uniqueKeysWithValues: model.parameters.map { ($0.name, $0.tensor) })
        let shared = try XCTUnwrap(base["shared.weight"])
        let dir = "\(tmp)/t5copies"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try JSONEncoder().encode(cfg).write(to: URL(fileURLWithPath: "\(dir)/config.json"))
        var equal = base
        equal["encoder.embed_tokens.weight"] = Tensor(shape: shared.shape, values: shared.array)
        equal["decoder.embed_tokens.weight"] = Tensor(shape: shared.shape, values: shared.array)
        try SafeTensorsFile.write(equal, to: "\(dir)/model.safetensors")
        let ids: [Int32] = [5, 6, 7, 1]
        let reference = try model.forward(inputIds: ids, attentionMask: [1, 1, 1, 1], labels: [8, 1], batch: 1).loss.array
        XCTAssertEqual(try T5Model.load(directory: dir).forward(inputIds: ids, attentionMask: [1, 1, 1, 1], labels: [8, 1], batch: 1).loss.array, reference)
        var values = shared.array
        values[0] += 0.5
        for (copy, drop) in [("encoder.embed_tokens.weight", false), ("decoder.embed_tokens.weight", false), ("decoder.embed_tokens.weight", true)] {
            var t = equal
            t[copy] = Tensor(shape: shared.shape, values: values)
            if drop { t["shared.weight"] = nil }  // no shared.weight: the encoder's copy and the decoder's disagree
            try SafeTensorsFile.write(t, to: "\(dir)/model.safetensors")
            XCTAssertThrowsError(try T5Model.load(directory: dir), copy) { e in
                XCTAssertTrue("\(e)".contains("\(dir)/model.safetensors") && "\(e)".contains("'\(copy)' holds other values than '\(drop ? "encoder.embed_tokens.weight" : "shared.weight")'")
                              && "\(e)".contains("transformers 5"), "\(e)")
            }
        }
    }

    /// config.json as transformers reads it: the generic names of `attribute_map` (`hidden_size`,
    /// `num_attention_heads`, …) stand for the model's own fields; both with different values are
    /// refused; `eos_token_id` may be a one-id list (several are refused for T5's decode).
    func testConfigAttributeMapAndEosLists() throws {
        func parse(_ json: String) throws -> ModelConfig { try ModelConfig.parse(Data(json.utf8), path: "cfg.json") }
        let gpt2 = #""vocab_size": 10, "n_embd": 8, "n_layer": 1, "n_head": 2, "n_positions": 16, "model_type": "gpt2""#
        let generic = #""vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 16, "model_type": "gpt2""#
        guard case .gpt2(let a) = try parse("{\(gpt2)}"), case .gpt2(let b) = try parse("{\(generic)}") else { return XCTFail("not GPT-2") }
        XCTAssertEqual(a, b)
        guard case .gpt2(let listed) = try parse("{\(gpt2), \"eos_token_id\": [9, 3]}") else { return XCTFail("not GPT-2") }
        XCTAssertEqual(listed.eosTokenId, 9)
        XCTAssertThrowsError(try parse("{\(gpt2), \"hidden_size\": 16}")) { e in
            XCTAssertTrue("\(e)".contains("'hidden_size' (16) and 'n_embd' (8) name the same setting"), "\(e)")
        }
        XCTAssertNoThrow(try parse("{\(gpt2), \"hidden_size\": 8}"), "the same value twice")
        let t5 = #""vocab_size": 10, "d_model": 8, "d_kv": 4, "d_ff": 16, "num_layers": 1, "num_heads": 2, "model_type": "t5""#
        let t5Generic = #""vocab_size": 10, "hidden_size": 8, "head_dim": 4, "d_ff": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "model_type": "t5""#
        guard case .t5(let c) = try parse("{\(t5)}"), case .t5(let d) = try parse("{\(t5Generic)}") else { return XCTFail("not T5") }
        XCTAssertEqual([c.dModel, c.dKv, c.numLayers, c.numHeads], [d.dModel, d.dKv, d.numLayers, d.numHeads])
        // As transformers 5.24 builds it: num_decoder_layers comes from T5Config's default num_layers
        // (6; MT5Config's 8) before the num_hidden_layers alias is applied (a review checked
        // from_pretrained: 1 encoder block, 6 decoder blocks).
        XCTAssertEqual(c.decoderLayers, 1)
        XCTAssertEqual(d.decoderLayers, 6)
        guard case .t5(let m) = try parse("{\(t5Generic.replacingOccurrences(of: "\"t5\"", with: "\"mt5\""))}") else { return XCTFail("not T5") }
        XCTAssertEqual(m.decoderLayers, 8)
        guard case .t5(let e) = try parse("{\(t5Generic), \"num_decoder_layers\": 1}") else { return XCTFail("not T5") }
        XCTAssertEqual(e.decoderLayers, 1)
        guard case .t5(let one) = try parse("{\(t5), \"eos_token_id\": [1]}") else { return XCTFail("not T5") }
        XCTAssertEqual(one.eosTokenId, 1)
        XCTAssertThrowsError(try parse("{\(t5), \"eos_token_id\": [1, 2]}")) { e in
            XCTAssertTrue("\(e)".contains("'eos_token_id' lists 2 ids") && "\(e)".contains("cfg.json"), "\(e)")
        }
        XCTAssertThrowsError(try parse("{\(t5), \"eos_token_id\": [\"x\"]}")) { e in
            XCTAssertTrue("\(e)".contains("must be an integer or a list of integers"), "\(e)")
        }
    }

    /// Config fields that change the computation are honoured (parity fixtures) or refused by name.
    func testMathChangingConfigFieldsAreRefusedByName() throws {
        func refuse(_ json: String, _ field: String, file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertThrowsError(try ModelConfig.parse(Data(json.utf8), path: "cfg.json"), file: file, line: line) { e in
                XCTAssertTrue("\(e)".contains("'\(field)'"), "\(e)", file: file, line: line)
            }
        }
        let gpt2 = #""vocab_size": 10, "n_embd": 8, "n_layer": 1, "n_head": 2, "n_positions": 16, "model_type": "gpt2""#
        refuse("{\(gpt2), \"add_cross_attention\": true}", "add_cross_attention")
        refuse("{\(gpt2), \"activation_function\": \"swish\"}", "activation_function")
        refuse("{\(gpt2), \"layer_norm_epsilon\": 0}", "layer_norm_epsilon")
        XCTAssertNoThrow(try ModelConfig.parse(Data("{\(gpt2), \"reorder_and_upcast_attn\": true, \"scale_attn_by_inverse_layer_idx\": true}".utf8), path: "c"))
        let t5 = #""vocab_size": 10, "d_model": 8, "d_kv": 4, "d_ff": 16, "num_layers": 1, "num_heads": 2, "model_type": "t5""#
        refuse("{\(t5), \"feed_forward_proj\": \"relu\", \"is_gated_act\": true}", "is_gated_act")
        refuse("{\(t5), \"feed_forward_proj\": \"gated-gelu\", \"dense_act_fn\": \"relu\"}", "dense_act_fn")
        refuse("{\(t5), \"feed_forward_proj\": \"swiglu\"}", "feed_forward_proj")
        // The decoder's logarithmic buckets need max_distance > num_buckets/2 (8 buckets: 4); at 3
        // and 4 transformers raises IndexError on labels past the exact range, and the bucket index
        // went negative here. 5 is the smallest accepted; the encoder's num_buckets/4 rule is inside.
        refuse("{\(t5), \"relative_attention_num_buckets\": 8, \"relative_attention_max_distance\": 3}", "relative_attention_max_distance")
        refuse("{\(t5), \"relative_attention_num_buckets\": 8, \"relative_attention_max_distance\": 4}", "relative_attention_max_distance")
        XCTAssertNoThrow(try ModelConfig.parse(Data("{\(t5), \"relative_attention_num_buckets\": 8, \"relative_attention_max_distance\": 5}".utf8), path: "c"))
        // Fewer than 4 buckets leave the encoder's exact range (num_buckets/4) empty: its logarithm
        // divided 0 by 0 (transformers raises ZeroDivisionError); odd counts run as transformers's.
        refuse("{\(t5), \"relative_attention_num_buckets\": 2}", "relative_attention_num_buckets")
        refuse("{\(t5), \"relative_attention_num_buckets\": 3}", "relative_attention_num_buckets")
        XCTAssertNoThrow(try ModelConfig.parse(Data("{\(t5), \"relative_attention_num_buckets\": 5, \"relative_attention_max_distance\": 9}".utf8), path: "c"))
        // An mT5 config without feed_forward_proj takes MT5Config's gated-gelu, not T5Config's
        // relu; without tie_word_embeddings it ties, as MT5Config 5.24 does.
        if case .t5(let m) = try ModelConfig.parse(Data(#"{"vocab_size": 10, "d_model": 8, "d_kv": 4, "d_ff": 16, "num_layers": 1, "num_heads": 2, "model_type": "mt5"}"#.utf8), path: "c") {
            XCTAssertEqual(m.projection, "gated-gelu")
            XCTAssertTrue(m.isGated)
            XCTAssertTrue(m.tied)
        } else { XCTFail("not a T5 config") }
        for ok in ["gelu", "gelu_new", "gated-relu", "gated-gelu_new", "silu", "gated-silu"] {
            XCTAssertNoThrow(try ModelConfig.parse(Data("{\(t5), \"feed_forward_proj\": \"\(ok)\"}".utf8), path: "c"), ok)
        }
        // flan-t5's own config.json states both derived fields consistently.
        XCTAssertNoThrow(try ModelConfig.parse(Data("{\(t5), \"feed_forward_proj\": \"gated-gelu\", \"is_gated_act\": true, \"dense_act_fn\": \"gelu_new\"}".utf8), path: "c"))
    }

    func testMalformedConfigNamesField() throws {
        let p = "\(tmp)/config.json"
        func check(_ json: String, _ fragment: String, file: StaticString = #filePath, line: UInt = #line) throws {
            try json.write(toFile: p, atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try ModelConfig.load(path: p), file: file, line: line) { e in
                XCTAssertTrue("\(e)".contains(p) && "\(e)".contains(fragment), "\(e)", file: file, line: line)
            }
        }
        try check("{\"model_type\": \"t5\", \"d_model\": 8", "malformed JSON")
        try check("{\"model_type\": \"t5\", \"vocab_size\": 10, \"d_model\": 8, \"d_kv\": 2, \"d_ff\": 4, \"num_layers\": 1}", "num_heads")
        try check("{\"model_type\": \"t5\", \"vocab_size\": 10, \"d_model\": \"8\", \"d_kv\": 2, \"d_ff\": 4, \"num_layers\": 1, \"num_heads\": 2}", "d_model")
        try check("{\"model_type\": \"t5\", \"vocab_size\": 10, \"d_model\": 8, \"d_kv\": 2, \"d_ff\": 4, \"num_layers\": 1, \"num_heads\": 2, \"feed_forward_proj\": \"swish\"}", "feed_forward_proj")
        try check("{\"model_type\": \"bert\"}", "model_type")
        try check("{\"model_type\": \"gpt2\", \"vocab_size\": 10, \"n_embd\": 9, \"n_layer\": 1, \"n_head\": 2, \"n_positions\": 8}", "n_head")
    }

    func testHubIdResolutionInCache() throws {
        let snap = "\(tmp)/hub/models--google--flan-t5-base/snapshots/abc123"
        try FileManager.default.createDirectory(atPath: snap, withIntermediateDirectories: true)
        try "{}".write(toFile: "\(snap)/config.json", atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: "\(tmp)/hub/models--google--flan-t5-base/refs", withIntermediateDirectories: true)
        try "abc123".write(toFile: "\(tmp)/hub/models--google--flan-t5-base/refs/main", atomically: true, encoding: .utf8)
        XCTAssertEqual(try ModelFiles.resolve("google/flan-t5-base", environment: ["HF_HUB_CACHE": "\(tmp)/hub", "HOME": tmp]), snap)
        XCTAssertEqual(try ModelFiles.resolve("google/flan-t5-base", environment: ["HF_HOME": tmp, "HOME": "/nonexistent"]), snap)
        XCTAssertThrowsError(try ModelFiles.resolve("t5-large", environment: ["HF_HUB_CACHE": "\(tmp)/hub", "HOME": tmp])) { e in
            let s = "\(e)"
            XCTAssertTrue(s.contains("\(tmp)/hub/models--t5-large") && s.contains("HINT"), s)
        }
        // One cache, as huggingface_hub reads it: HF_HUB_CACHE replaces HF_HOME and the home
        // default (a copy in ~/.cache was loaded while HF_HUB_CACHE pointed elsewhere, where
        // transformers finds nothing); the copy is named in the error.
        try FileManager.default.createDirectory(atPath: "\(tmp)/elsewhere", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: "\(tmp)/xdg/huggingface", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: "\(tmp)/xdg/huggingface/hub", withDestinationPath: "\(tmp)/hub")
        for env in [["HF_HUB_CACHE": "\(tmp)/elsewhere", "XDG_CACHE_HOME": "\(tmp)/xdg"], ["HF_HOME": "\(tmp)/elsewhere", "XDG_CACHE_HOME": "\(tmp)/xdg"]] {
            XCTAssertThrowsError(try ModelFiles.resolve("google/flan-t5-base", environment: env), "\(env)") { e in
                XCTAssertTrue("\(e)".contains("a copy is in \(tmp)/xdg/huggingface/hub/models--google--flan-t5-base") && "\(e)".contains("not searched"), "\(e)")
            }
        }
        XCTAssertEqual(try ModelFiles.resolve("google/flan-t5-base", environment: ["XDG_CACHE_HOME": "\(tmp)/xdg", "HOME": "/nonexistent"]),
                       "\(tmp)/xdg/huggingface/hub/models--google--flan-t5-base/snapshots/abc123")
        XCTAssertEqual(ModelFiles.cacheRoot(environment: ["HF_HOME": "/h", "XDG_CACHE_HOME": "/x", "HOME": "/u"]), "/h/hub")
        XCTAssertEqual(ModelFiles.cacheRoot(environment: ["HUGGINGFACE_HUB_CACHE": "/old", "HF_HOME": "/h"]), "/old")
        XCTAssertEqual(ModelFiles.cacheRoot(environment: ["HOME": "/u"]), "/u/.cache/huggingface/hub")
        // `~` and `$VAR` expand as huggingface_hub's expanduser/expandvars do; an unset variable stays.
        XCTAssertEqual(ModelFiles.cacheRoot(environment: ["HF_HOME": "~/hfx", "HOME": "/u"]), "/u/hfx/hub")
        XCTAssertEqual(ModelFiles.cacheRoot(environment: ["HF_HUB_CACHE": "$SCRATCH/hub-${USER}x", "SCRATCH": "/s", "USER": "me", "HOME": "/u"]), "/s/hub-mex")
        XCTAssertEqual(ModelFiles.cacheRoot(environment: ["HF_HUB_CACHE": "$NOPE/hub", "HOME": "/u"]), "$NOPE/hub")
        // refs/main decides, as in transformers: a revision it names that is missing or incomplete is
        // an error, not a switch to another snapshot (which once loaded other weights without a word).
        let repo = "\(tmp)/hub/models--google--flan-t5-base"
        let env = ["HF_HUB_CACHE": "\(tmp)/hub", "HOME": tmp]
        try FileManager.default.createDirectory(atPath: "\(repo)/snapshots/zzz999", withIntermediateDirectories: true)
        try "zzz999".write(toFile: "\(repo)/refs/main", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ModelFiles.resolve("google/flan-t5-base", environment: env)) { e in
            XCTAssertTrue("\(e)".contains("refs/main names revision zzz999") && "\(e)".contains("zzz999/config.json does not exist"), "\(e)")
        }
        // Without refs/main one complete snapshot is taken; two are ambiguous.
        try FileManager.default.removeItem(atPath: "\(repo)/refs/main")
        XCTAssertEqual(try ModelFiles.resolve("google/flan-t5-base", environment: env), snap)
        try "{}".write(toFile: "\(repo)/snapshots/zzz999/config.json", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ModelFiles.resolve("google/flan-t5-base", environment: env)) { e in
            XCTAssertTrue("\(e)".contains("no refs/main and 2 snapshots (abc123, zzz999)"), "\(e)")
        }
        // A snapshot's config.json that is a link to a missing blob is named as such: under
        // refs/main, and without it (such a snapshot was passed over without a word), and in
        // PROMPTREPRO_MODEL_DIR.
        let other = "\(tmp)/hub/models--org--linked/snapshots/r1"
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: "\(other)/config.json", withDestinationPath: "../../blobs/gone")
        XCTAssertThrowsError(try ModelFiles.resolve("org/linked", environment: env)) { e in
            XCTAssertTrue("\(e)".contains("(snapshot r1: config.json is a link to a blob that does not exist"), "\(e)")
        }
        try FileManager.default.createDirectory(atPath: "\(tmp)/hub/models--org--linked/refs", withIntermediateDirectories: true)
        try "r1".write(toFile: "\(tmp)/hub/models--org--linked/refs/main", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ModelFiles.resolve("org/linked", environment: env)) { e in
            XCTAssertTrue("\(e)".contains("r1/config.json does not exist (it is a link to ../../blobs/gone, which does not exist"), "\(e)")
        }
        try FileManager.default.createDirectory(atPath: "\(tmp)/models/linked", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: "\(tmp)/models/linked/config.json", withDestinationPath: "/nonexistent/blob")
        XCTAssertThrowsError(try ModelFiles.resolve("linked", environment: ["PROMPTREPRO_MODEL_DIR": "\(tmp)/models", "HOME": tmp])) { e in
            XCTAssertTrue("\(e)".contains("(PROMPTREPRO_MODEL_DIR; \(tmp)/models/linked/config.json is a link to /nonexistent/blob, which does not exist"), "\(e)")
        }
    }

    /// A sharded checkpoint whose index puts a tensor in a shard that lacks it is refused naming the
    /// index, the tensor and the shard (it once blamed the first shard for a "missing" tensor).
    func testShardIndexMustMatchTheShards() throws {
        let dir = "\(tmp)/shards"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try SafeTensorsFile.write(["a": Tensor(zeros: [2]), "c": Tensor(zeros: [1])], to: "\(dir)/model-00001-of-00002.safetensors")
        try SafeTensorsFile.write(["b": Tensor(zeros: [3])], to: "\(dir)/model-00002-of-00002.safetensors")
        func index(_ map: [String: String]) throws {
            try JSONSerialization.data(withJSONObject: ["metadata": [:], "weight_map": map]).write(to: URL(fileURLWithPath: "\(dir)/model.safetensors.index.json"))
        }
        try index(["a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors", "c": "model-00001-of-00002.safetensors"])
        XCTAssertEqual(try ModelFiles.openWeights(directory: dir).files.count, 2)
        try index(["a": "model-00002-of-00002.safetensors", "b": "model-00002-of-00002.safetensors", "c": "model-00001-of-00002.safetensors"])
        XCTAssertThrowsError(try ModelFiles.openWeights(directory: dir)) { e in
            let s = "\(e)"
            XCTAssertTrue(s.contains("model.safetensors.index.json") && s.contains("puts 'a' in model-00002-of-00002.safetensors")
                          && s.contains("it is in model-00001-of-00002.safetensors"), s)
        }
        // A tensor in both shards is read from the one the index names (the shard sorting last
        // was read whatever the index said); one the index does not list is refused.
        try SafeTensorsFile.write(["b": Tensor(shape: [3], values: [1, 2, 3]), "c": Tensor(zeros: [1])], to: "\(dir)/model-00001-of-00002.safetensors")
        try SafeTensorsFile.write(["b": Tensor(shape: [3], values: [7, 8, 9])], to: "\(dir)/model-00002-of-00002.safetensors")
        try index(["b": "model-00001-of-00002.safetensors", "c": "model-00001-of-00002.safetensors"])
        XCTAssertEqual(try ModelFiles.openWeights(directory: dir).load("b", shape: [3]).array, [1, 2, 3])
        try index(["b": "model-00002-of-00002.safetensors", "c": "model-00001-of-00002.safetensors"])
        XCTAssertEqual(try ModelFiles.openWeights(directory: dir).load("b", shape: [3]).array, [7, 8, 9])
        try index(["c": "model-00001-of-00002.safetensors", "d": "model-00002-of-00002.safetensors"])
        try SafeTensorsFile.write(["b": Tensor(shape: [3], values: [7, 8, 9]), "d": Tensor(zeros: [1])], to: "\(dir)/model-00002-of-00002.safetensors")
        XCTAssertThrowsError(try ModelFiles.openWeights(directory: dir)) { e in
            XCTAssertTrue("\(e)".contains("'b' is in model-00001-of-00002.safetensors and model-00002-of-00002.safetensors and weight_map does not say which"), "\(e)")
        }
        // An HF cache snapshot whose blob is gone: the link is named as one (it read "no
        // model.safetensors … in DIR", while the file is listed there).
        let snap = "\(dir)/snapshot"
        try FileManager.default.createDirectory(atPath: snap, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: "\(snap)/model.safetensors", withDestinationPath: "../../blobs/0123abcd")
        XCTAssertThrowsError(try ModelFiles.openWeights(directory: snap)) { e in
            XCTAssertTrue("\(e)".contains("\(snap)/model.safetensors") && "\(e)".contains("a link to ../../blobs/0123abcd, which does not exist"), "\(e)")
        }
        // Every file of a snapshot is such a link: config.json, the tokenizer's, a shard.
        try FileManager.default.createSymbolicLink(atPath: "\(snap)/config.json", withDestinationPath: "../../blobs/c0ffee")
        XCTAssertThrowsError(try ModelFiles.resolve(snap, environment: [:])) { e in
            XCTAssertTrue("\(e)".contains("its config.json is a link to ../../blobs/c0ffee, which does not exist"), "\(e)")
        }
        // A dangling file the load would not read (merges.txt beside a good tokenizer.json) is no error.
        let tok = "\(dir)/tok"
        try FileManager.default.createDirectory(atPath: tok, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: try XCTUnwrap(sharedItem("models/gpt2-tokenizer/tokenizer.json")), toPath: "\(tok)/tokenizer.json")
        try FileManager.default.createSymbolicLink(atPath: "\(tok)/merges.txt", withDestinationPath: "/nonexistent/blob")
        XCTAssertEqual(try Tokenizers.load(directory: tok).encode("hello world"), [31373, 995])
        // A ByT5 tokenizer reads no tokenizer file: a dangling tokenizer.json beside it is no error.
        let byt5 = "\(dir)/byt5"
        try FileManager.default.createDirectory(atPath: byt5, withIntermediateDirectories: true)
        try #"{"tokenizer_class": "ByT5Tokenizer"}"#.write(toFile: "\(byt5)/tokenizer_config.json", atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: "\(byt5)/tokenizer.json", withDestinationPath: "/nonexistent/blob")
        XCTAssertEqual(try Tokenizers.load(directory: byt5).kind, ByteTokenizer().kind)
        try FileManager.default.createSymbolicLink(atPath: "\(snap)/tokenizer.json", withDestinationPath: "../../blobs/70ce")
        XCTAssertThrowsError(try Tokenizers.load(directory: snap)) { e in
            XCTAssertTrue("\(e)".contains("\(snap)/tokenizer.json") && "\(e)".contains("a link to ../../blobs/70ce, which does not exist"), "\(e)")
        }
        let sharded = "\(dir)/sharded"
        try FileManager.default.createDirectory(atPath: sharded, withIntermediateDirectories: true)
        try JSONSerialization.data(withJSONObject: ["weight_map": ["a": "model-00001-of-00001.safetensors"]]).write(to: URL(fileURLWithPath: "\(sharded)/model.safetensors.index.json"))
        try FileManager.default.createSymbolicLink(atPath: "\(sharded)/model-00001-of-00001.safetensors", withDestinationPath: "../../blobs/5ead")
        XCTAssertThrowsError(try ModelFiles.openWeights(directory: sharded)) { e in
            XCTAssertTrue("\(e)".contains("model-00001-of-00001.safetensors") && "\(e)".contains("a shard weight_map names; a link to ../../blobs/5ead"), "\(e)")
        }
    }

    /// Parameter totals from architecture configs alone (METHODS §5).
    func testArchitectureParameterTotals() {
        XCTAssertEqual(ModelConfig.t5(Architectures.t5Small).parameterCount, 60_506_624)
        XCTAssertEqual(ModelConfig.t5(Architectures.t5Base).parameterCount, 222_903_552)
        XCTAssertEqual(ModelConfig.t5(Architectures.t5Large).parameterCount, 737_668_096)
        XCTAssertEqual(ModelConfig.t5(Architectures.flanT5Base).parameterCount, 247_577_856)
        XCTAssertEqual(ModelConfig.gpt2(Architectures.gpt2Large).parameterCount, 774_030_080)
    }

    /// Hub gpt2 files have no `transformer.` prefix and carry attn.bias buffers: both load.
    func testGPT2WithoutPrefixAndWithBuffers() throws {
        let cfg = GPT2Config(vocabSize: 20, nEmbd: 8, nLayer: 1, nHead: 2, nPositions: 16)
        let m = try GPT2Model.random(config: cfg, key: RNGKey(seed: 2))
        var t: [String: Tensor] = [:]
        for (n, x) in m.parameters { t[String(n.dropFirst("transformer.".count))] = x }
        t["h.0.attn.bias"] = Tensor(zeros: [1, 1, 16, 16])
        let dir = "\(tmp)/g"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try JSONEncoder().encode(cfg).write(to: URL(fileURLWithPath: "\(dir)/config.json"))
        try SafeTensorsFile.write(t, to: "\(dir)/model.safetensors")
        let loaded = try GPT2Model.load(directory: dir)
        XCTAssertEqual(loaded.prefix, "")
        let a = try m.forward(inputIds: [1, 2, 3], attentionMask: [1, 1, 1], labels: [1, 2, 3], batch: 1)
        let b = try loaded.forward(inputIds: [1, 2, 3], attentionMask: [1, 1, 1], labels: [1, 2, 3], batch: 1)
        XCTAssertEqual(a.logits.array, b.logits.array)
    }

    /// Generating an embedded backbone removes the temporary directory a killed writer left
    /// (a reaped child's PID), and keeps a live writer's.
    func testEmbeddedWriteRemovesDeadWritersDirectories() throws {
        #if !os(Linux)
        throw XCTSkip("liveness is read from /proc (Linux)")
        #endif
        let dir = "\(tmp)/t5-tiny-v9"
        let gone = try UnreapedChild(["/bin/true"]), live = try UnreapedChild(["/bin/sleep", "600"])
        defer { live.reap() }
        XCTAssertTrue(gone.waitUntilZombie())
        gone.reap()
        for pid in [gone.pid, live.pid] {
            let t = "\(dir).tmp-\(pid)-1f"
            try FileManager.default.createDirectory(atPath: t, withIntermediateDirectories: true)
            FileManager.default.createFile(atPath: "\(t)/model.safetensors", contents: Data([1, 2, 3]))
        }
        try EmbeddedBackbones.write("t5-tiny", to: dir)
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: tmp)), ["t5-tiny-v9", "t5-tiny-v9.tmp-\(live.pid)-1f"])
    }

    /// The embedded backbone is a pure function of its seed: generating it twice gives identical files.
    func testEmbeddedBackboneIsDeterministic() throws {
        for name in EmbeddedBackbones.names {
            try EmbeddedBackbones.write(name, to: "\(tmp)/\(name)-a")
            try EmbeddedBackbones.write(name, to: "\(tmp)/\(name)-b")
            for f in ["model.safetensors", "config.json", "tokenizer_config.json"] {
                XCTAssertEqual(try SHA256.hex(file: "\(tmp)/\(name)-a/\(f)"), try SHA256.hex(file: "\(tmp)/\(name)-b/\(f)"), "\(name)/\(f)")
            }
            XCTAssertTrue(try Tokenizers.load(directory: "\(tmp)/\(name)-a") is ByteTokenizer)
        }
        let t5 = try T5Model.load(directory: "\(tmp)/t5-tiny-a")
        let tok = try Tokenizers.load(directory: "\(tmp)/t5-tiny-a")
        let ids = tok.encode("premise: it rains")
        let out = try t5.forward(inputIds: ids, attentionMask: [Float](repeating: 1, count: ids.count),
                                 labels: tok.encode("0"), batch: 1)
        XCTAssertTrue(out.loss.scalar.isFinite)
    }

    /// A mistyped embedded name lists the embedded backbones (it suggested downloading
    /// "embedded:t5-small" from the hub).
    func testAnUnknownEmbeddedNameListsTheEmbeddedOnes() {
        XCTAssertThrowsError(try ModelFiles.locate("embedded:t5-small")) { e in
            let text = "\(e)"
            XCTAssertTrue(text.contains("the embedded smoke backbones are embedded:t5-tiny, embedded:gpt2-tiny") && !text.contains("huggingface-cli"), text)
        }
        XCTAssertThrowsError(try ModelFiles.locate("embedded:t5-tin")) { e in
            XCTAssertTrue("\(e)".contains("did you mean 'embedded:t5-tiny'"), "\(e)")
        }
    }

    /// A checkpoint or artifact that cannot be written says why in words, naming the file (a full
    /// disk printed "Error Domain=NSCocoaErrorDomain Code=640 …" into the run's error).
    func testWriteFailuresAreSaidInWords() throws {
        let dir = tempDir("writefail")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: "\(dir)/file", contents: Data())
        XCTAssertThrowsError(try SafeTensorsFile.write(["w": Tensor(shape: [2], values: [1, 2])], to: "\(dir)/file/ck.safetensors")) { e in
            let text = "\(e)"
            XCTAssertTrue(text.contains("\(dir)/file/ck.safetensors: cannot write (Not a directory)") && !text.contains("NSCocoaErrorDomain"), text)
        }
        XCTAssertEqual(fileWriteProblem(CocoaError(.fileWriteOutOfSpace)), "the disk is full; free space and rerun")
        XCTAssertEqual(fileWriteProblem(CocoaError(.fileWriteVolumeReadOnly)), "a read-only file system")
        XCTAssertEqual(fileWriteProblem(NSError(domain: NSCocoaErrorDomain, code: 512, userInfo: [NSUnderlyingErrorKey: NSError(domain: NSPOSIXErrorDomain, code: Int(EIO))])),
                       "Input/output error")
    }
}
