import ArgumentParser
import Foundation
import Methods
import Models
import Support
import Tensor

struct GlobalOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Threads for OpenBLAS and the core (default: PROMPTREPRO_THREADS or the CPUs this process may use).", transform: threadCount)
    var threads: Int?

    func apply() { Parallel.configure(threads: threads) }
}

/// A thread or worker count option: a positive integer (0 and negatives ran one thread while the
/// record said 0 or -5).
func positiveCount(_ text: String) throws -> Int {
    guard let n = Int(text), n > 0 else { throw ValidationError("'\(text)' is not a positive integer") }
    guard n <= 65_536 else { throw ValidationError("'\(text)': at most 65536") }
    return n
}

/// A `--threads` value: a positive integer up to `Parallel.maxThreads` (256, the thread pool's
/// size; a count of 2⁶⁰ overflowed the work split and stored a run as diverged).
func threadCount(_ text: String) throws -> Int {
    guard let n = Int(text), n > 0 else { throw ValidationError("'\(text)' is not a positive integer") }
    guard n <= Parallel.maxThreads else { throw ValidationError("'\(text)' threads: at most \(Parallel.maxThreads) (the thread pool's size)") }
    return n
}

/// Writes `obj` as JSON to `path` (stdout when nil). Errors: a non-finite number (JSON has none:
/// a NaN weight or input gives NaN logits), naming its key path, before anything is written.
func writeJSON(_ obj: Any, to path: String?) throws {
    if let key = nonFiniteKey(obj, at: "") {
        throw CommandFailure("the output's '\(key)' is not a finite number (NaN or ±inf; JSON has no value for it): a weight or input of the model may be NaN or inf")
    }
    let data = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])
    if let path {
        try data.write(to: URL(fileURLWithPath: path), options: .atomic)
    } else {
        FileHandle.standardOutput.write(data)
        FileHandle.standardOutput.write(Data("\n".utf8))
    }
}

/// The key path of the first non-finite Float or Double in a JSON-like value (dictionaries in key
/// order, arrays as `key[i]`), nil when every number is finite.
func nonFiniteKey(_ v: Any, at path: String) -> String? {
    switch v {
    case let f as Float: return f.isFinite ? nil : path
    case let d as Double: return d.isFinite ? nil : path
    case let a as [Float]: return a.firstIndex { !$0.isFinite }.map { "\(path)[\($0)]" }
    case let a as [Double]: return a.firstIndex { !$0.isFinite }.map { "\(path)[\($0)]" }
    case let a as [Any]:
        for (i, x) in a.enumerated() { if let k = nonFiniteKey(x, at: "\(path)[\(i)]") { return k } }
        return nil
    case let o as [String: Any]:
        for k in o.keys.sorted() { if let p = nonFiniteKey(o[k]!, at: path.isEmpty ? k : "\(path).\(k)") { return p } }
        return nil
    default: return nil
    }
}

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Architecture, dtype and total parameters of a model.",
        discussion: """
        MODEL is a checkpoint directory, a hub id found in the local Hugging Face cache, or embedded:t5-tiny /
        embedded:gpt2-tiny. Known hub ids (t5-small/base/large, google/flan-t5-base, gpt2, gpt2-medium, gpt2-large)
        are described from their architecture config alone when no weights are available.
        """)
    @Option(name: .long, help: "Model directory, hub id or embedded:NAME.") var model: String?
    @Option(name: .long, help: "A config.json to describe instead of a model.") var config: String?

    func run() throws {
        var out: [String: Any] = [:]
        var cfg: ModelConfig
        var headDiffers: Bool?  // the model runs a head of its own (T5Model.storedHeadDiffers, GPT2Model.untiedHead; nil: config only)
        if let config {
            cfg = try ModelConfig.load(path: config)
            out["source"] = config
            out["dtype"] = "n/a (config only)"
        } else if let model {
            do {
                let dir = try ModelFiles.locate(model)
                cfg = try ModelConfig.load(path: (dir as NSString).appendingPathComponent("config.json"))
                out["source"] = dir
                let store = try ModelFiles.openWeights(directory: dir)
                var dtypes = Set<String>()
                // Of the tensors that hold data: an empty one (a 0 dimension) holds no values in any dtype.
                for f in store.files { for e in f.entries.values where !e.shape.contains(0) { dtypes.insert(e.dtype) } }
                out["dtype"] = dtypes.sorted().joined(separator: ",")
                out["stored_tensors"] = store.names.count
                switch cfg {
                case .t5:
                    try T5Model.checkEmbeddingCopies(in: store)
                    headDiffers = try T5Model.storedHeadDiffers(in: store)
                case .gpt2(let g): headDiffers = try GPT2Model.untiedHead(g, in: store)
                }
                if model.hasPrefix("embedded:") { out["profile"] = "smoke (random weights; never a reproduction)" }
            } catch let e as ModelNotFound {
                guard let known = Architectures.known[model] else { throw e }
                cfg = known
                out["source"] = "architecture config of \(model) (weights not found locally)"
                out["dtype"] = "n/a (no weights)"
            }
        } else {
            throw ValidationError("give --model or --config")
        }
        for (k, v) in cfg.summary { out[k] = v }
        // Count what the loader uses: a stored head of other values than the embedding unties the
        // model whatever config.json says (T5Model.headLayout, GPT2Model.load).
        if let headDiffers {
            switch cfg {
            case .t5(let c):
                out["total_params"] = T5Model.parameterCount(c, storedHeadDiffers: headDiffers)
                let layout = T5Model.headLayout(c, storedHeadDiffers: headDiffers)
                out["variant"] = "\(c.isGated ? "gated-" : "")\(c.activation) FFN, " + (layout.untied ? "untied lm_head" : "tied head")
                    + (layout.scale ? ", d^-0.5 output rescale" : "")
            case .gpt2(let g):
                out["total_params"] = GPT2Model.parameterShapes(g, untiedHead: headDiffers).reduce(0) { $0 + $1.1.reduce(1, *) }
                out["head"] = headDiffers ? "untied lm_head" : "tied to wte"
            }
        }
        try writeJSON(out, to: nil)
    }
}

struct Forward: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a parity case (shared/parity/FORMAT.md) and write loss, logits, gradients and decode.")
    @Option(help: "Model directory (config.json + model.safetensors), hub id or embedded:NAME.") var model: String
    @Option(name: .customLong("case"), help: "case.json in the parity format.") var casePath: String
    @Option(help: "Where to write the result JSON (default: stdout).") var out: String?
    @Option(help: "A PEFT adapter directory (adapter_config.json + adapter_model.safetensors) applied as PEFT does.") var adapter: String?
    @Option(help: "peft (any supported type) or dept (require DePT's PROMPT_TUNING_LORA).") var adapterFormat: String = "peft"
    @OptionGroup var global: GlobalOptions

    func run() throws {
        global.apply()
        let dir = try ModelFiles.locate(model)
        let c = try ParityCase.load(path: casePath)
        if let adapter { try checkAdapterFormat(adapterFormat, directory: adapter) }
        if adapter != nil && c.prompt != nil { throw CommandFailure("\(casePath): give the soft prompt either in the case or through --adapter, not both") }
        try writeJSON(try ParityRunner.run(modelDirectory: dir, case: c, adapter: adapter), to: out)
    }
}

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Tokenize texts; input is a JSON list of strings or an object with \"texts\"; output {\"ids\": [[…]]}.")
    @Option(help: "Directory with tokenizer.json, spiece.model or vocab.json + merges.txt (or `byte`).") var tokenizer: String
    @Option(help: "JSON file with the texts.") var texts: String
    @Option(help: "Where to write {\"ids\": …} (default: stdout).") var out: String?
    @Flag(help: "Also decode the ids (skip special tokens) into \"decoded\".") var decode = false

    func run() throws {
        let tok = try Tokenizers.load(directory: tokenizer.hasPrefix("embedded:") ? try ModelFiles.locate(tokenizer) : tokenizer)
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: texts)) } catch {
            throw CommandFailure("\(texts): cannot read (\(error.localizedDescription))")
        }
        // What is wrong, named: not UTF-8 (a lone surrogate escape decodes to none), not JSON, or
        // JSON of another shape (each gave the same "expected a list" line).
        guard String(data: data, encoding: .utf8) != nil else {
            throw CommandFailure("\(texts): not valid UTF-8 text")
        }
        let obj: Any
        do { obj = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) } catch {
            let surrogate = hasLoneSurrogateEscape(String(decoding: data, as: UTF8.self))
            throw CommandFailure("\(texts): not valid JSON (" + (data.isEmpty ? "empty file" : surrogate
                ? "a lone surrogate escape (\\uD800–\\uDFFF without its other half) names no character" : error.localizedDescription) + ")")
        }
        /// The JSON kind of a parsed value, for messages.
        func kind(_ v: Any) -> String {
            if v is NSNull { return "null" }
            if let n = v as? NSNumber { return String(cString: n.objCType) == "c" || "\(type(of: n))".contains("Boolean") ? "a boolean" : "a number" }
            return v is String ? "a string" : v is [Any] ? "a list" : v is [String: Any] ? "an object" : "another value"
        }
        let items = (obj as? [Any]) ?? ((obj as? [String: Any])?["texts"] as? [Any])
        guard let items else {
            throw CommandFailure("\(texts): expected a JSON list of strings or {\"texts\": [...]}, found \(obj is [String: Any] ? "an object without a \"texts\" list" : kind(obj))")
        }
        if let bad = items.firstIndex(where: { !($0 is String) }) {
            throw CommandFailure("\(texts): text \(bad) is not a string (\(kind(items[bad])))")
        }
        let list = items.map { $0 as! String }
        let ids = list.map { tok.encode($0).map(Int.init) }
        var result: [String: Any] = ["ids": ids]
        if decode { result["decoded"] = ids.map { tok.decode($0.map(Int32.init), skipSpecialTokens: true) } }
        try writeJSON(result, to: out)
    }
}

struct ExportEmbedded: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export-embedded", abstract: "Write the embedded smoke backbones in Hugging Face format (make fixtures).")
    @Option(help: "Output directory.") var out: String = "fixtures/embedded"

    func run() throws {
        for name in EmbeddedBackbones.names {
            try EmbeddedBackbones.write(name, to: "\(out)/\(name)")
            print("wrote \(out)/\(name)")
        }
    }
}

/// `--db` and `--profile`: which results store, and which profile's runs in it. Shared by every
/// command that reads stored runs (results, report, figures, export, compare, steps, loss-curves).
struct StoreSelection: ParsableArguments {
    @Option(name: .customLong("db"), help: "SQLite results store (default: \(defaultDB) in the checkout, from any working directory).") var dbGiven: String?
    var db: String { dbGiven ?? ProjectRoot.resolve(defaultDB) }
    @Option(help: "Profile whose runs are read: smoke (embedded backbone), cpu (HF-cache checkpoints, few-shot), paper.")
    var profile: String = "smoke"
}

/// Whether JSON text holds a `\uD800`–`\uDFFF` escape that is not half of a pair (a high one
/// followed at once by a low one): one that JSON parsers refuse, as no character. Escapes after an
/// escaped backslash (`\\ud800`, the text "\ud800") do not count.
func hasLoneSurrogateEscape(_ text: String) -> Bool {
    let s = Array(text.utf8)
    func escape(at i: Int) -> UInt32? {  // the \uXXXX value starting at i, if any
        guard i + 5 < s.count, s[i] == UInt8(ascii: "\\"), s[i + 1] == UInt8(ascii: "u") else { return nil }
        return UInt32(String(decoding: s[(i + 2)..<(i + 6)], as: UTF8.self), radix: 16)
    }
    var i = 0
    while i < s.count {
        guard s[i] == UInt8(ascii: "\\") else { i += 1; continue }
        guard let v = escape(at: i) else { i += 2; continue }  // another escape (\\, \", …): skip both bytes
        if (0xDC00...0xDFFF).contains(v) { return true }
        if (0xD800...0xDBFF).contains(v) {
            guard let w = escape(at: i + 6), (0xDC00...0xDFFF).contains(w) else { return true }
            i += 12
            continue
        }
        i += 6
    }
    return false
}

