// The embedded smoke backbones: tiny random-weight T5 and GPT-2 over a byte vocabulary, generated
// by PromptRepro's own code from a fixed seed and written in Hugging Face format on first use.
// Results obtained with them are a smoke profile, never a reproduction.
import Support
import Foundation
import Tensor

public enum EmbeddedBackbones {
    /// Bump when the generator changes (the cache directory name carries it).
    public static let version = 1
    public static let seed: UInt64 = 20_240_101

    /// Byte vocabulary (ByT5 layout: pad 0, eos 1, unk 2, byte b → b + 3), rounded up to 264 rows.
    public static let t5Tiny: T5Config = {
        var c = T5Config(vocabSize: 264, dModel: 64, dKv: 16, dFf: 256, numLayers: 2, numDecoderLayers: 2, numHeads: 4)
        c.relativeAttentionNumBuckets = 32
        c.relativeAttentionMaxDistance = 128
        return c
    }()

    public static let gpt2Tiny: GPT2Config = {
        var c = GPT2Config(vocabSize: 264, nEmbd: 64, nLayer: 2, nHead: 4, nPositions: 512)
        c.eosTokenId = 1
        return c
    }()

    public static let names = ["t5-tiny", "gpt2-tiny"]

    /// Where generated backbones are cached (the CLI sets it from PROMPTREPRO_CACHE); nil: ~/.cache/promptrepro.
    nonisolated(unsafe) public static var cacheRoot: String?

    /// ~/.cache/promptrepro, with ~ from $HOME where it is set (Foundation's home directory is the
    /// password database's: a job whose HOME points elsewhere wrote to /nonexistent and failed).
    public static var defaultCacheRoot: String {
        let home = ProcessInfo.processInfo.environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        return (home as NSString).appendingPathComponent(".cache/promptrepro")
    }

    /// Directory of `embedded:NAME`: fixtures/embedded/NAME in the current checkout if present,
    /// else $PROMPTREPRO_CACHE (default ~/.cache/promptrepro)/embedded/NAME-vVERSION, generated once.
    public static func directory(_ name: String) throws -> String {
        guard names.contains(name) else {
            throw ModelNotFound(spec: "embedded:\(name)", looked: ["embedded backbones: \(names.joined(separator: ", "))"])
        }
        let local = "fixtures/embedded/\(name)"
        if FileManager.default.fileExists(atPath: "\(local)/model.safetensors") { return local }
        let cache = cacheRoot ?? defaultCacheRoot
        let dir = "\(cache)/embedded/\(name)-v\(version)"
        if FileManager.default.fileExists(atPath: "\(dir)/model.safetensors") {
            removeStaleTemporaries(for: dir)  // of writers killed after another had finished
        } else {
            do { try write(name, to: dir) } catch let e as ModelCacheError { throw e } catch {
                // A folder that cannot be made (a HOME without write access): which, and what to set.
                throw ModelCacheError(path: dir, detail: "cannot generate the embedded backbone \(name) there (\(error.localizedDescription)); set PROMPTREPRO_CACHE to a writable directory")
            }
        }
        return dir
    }

    /// Generates `name` into `dir` (config.json, model.safetensors, tokenizer_config.json). Safe
    /// under concurrent writers: each builds a private temporary directory and renames it into
    /// place; a process that loses the race keeps the winner's directory when its weights are
    /// byte-identical to its own (the generator is deterministic) and deletes its temporary copy.
    /// Temporary directories of writers killed before their rename are removed on the way out.
    public static func write(_ name: String, to dir: String) throws {
        let fm = FileManager.default
        let tmp = uniqueTemporaryPath(for: dir)
        try fm.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        defer {
            try? fm.removeItem(atPath: tmp)  // gone after a successful rename
            removeStaleTemporaries(for: dir)  // the temporary directories of killed writers
        }
        let key = RNGKey(seed: seed).derive(name)
        var tensors: [String: Tensor] = [:]
        let config: Any
        switch name {
        case "t5-tiny":
            let m = try T5Model.random(config: t5Tiny, key: key)
            for (n, t) in m.parameters { tensors[n] = t }
            config = try JSONSerialization.jsonObject(with: JSONEncoder().encode(t5Tiny))
        default:
            let m = try GPT2Model.random(config: gpt2Tiny, key: key)
            for (n, t) in m.parameters { tensors[n] = t }
            config = try JSONSerialization.jsonObject(with: JSONEncoder().encode(gpt2Tiny))
        }
        try SafeTensorsFile.write(tensors, to: "\(tmp)/model.safetensors",
                                  metadata: ["generator": "PromptRepro embedded backbone v\(version)", "seed": "\(seed)", "profile": "smoke"])
        let cfg = try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
        try cfg.write(to: URL(fileURLWithPath: "\(tmp)/config.json"))
        let tokCfg: [String: Any] = ["tokenizer_class": "ByT5Tokenizer", "add_eos_token": name == "t5-tiny",
                                     "note": "byte vocabulary: pad 0, eos 1, unk 2, byte b -> b + 3"]
        try JSONSerialization.data(withJSONObject: tokCfg, options: [.prettyPrinted, .sortedKeys])
            .write(to: URL(fileURLWithPath: "\(tmp)/tokenizer_config.json"))
        try fm.createDirectory(atPath: (dir as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        // rename(2) of a directory fails with EEXIST/ENOTEMPTY when `dir` exists: never replace it
        // (another process may be reading it). A `dir` without weights is debris of an older,
        // non-atomic writer: remove it and try once more.
        for attempt in 0..<2 {
            if rename(tmp, dir) == 0 { return }
            let err = errno
            guard err == EEXIST || err == ENOTEMPTY else {
                throw ModelCacheError(path: dir, detail: "cannot rename \(tmp) into place (\(String(cString: strerror(err))))")
            }
            let theirs = "\(dir)/model.safetensors"
            if fm.fileExists(atPath: theirs) {
                guard fm.contentsEqual(atPath: theirs, andPath: "\(tmp)/model.safetensors") else {
                    throw ModelCacheError(path: dir, detail: "holds weights that differ from embedded backbone \(name) v\(version); remove the directory to regenerate it")
                }
                return
            }
            if attempt == 0 { try? fm.removeItem(atPath: dir) }
        }
        throw ModelCacheError(path: dir, detail: "exists without model.safetensors and cannot be replaced; remove it")
    }
}

public struct ModelCacheError: Error, CustomStringConvertible {
    public let path: String
    public let detail: String
    public var description: String { "\(path): \(detail)" }
}

extension ModelFiles {
    /// `embedded:NAME`, a directory, or a hub id in the local HF cache.
    public static func locate(_ spec: String) throws -> String {
        if spec.hasPrefix("embedded:") { return try EmbeddedBackbones.directory(String(spec.dropFirst("embedded:".count))) }
        return try resolve(spec)
    }

    /// Whether `spec` names a GPT-2 checkpoint: its config.json's model_type when the checkpoint is
    /// here, else its name ("gpt2", "openai-community/gpt2-large", "embedded:gpt2-tiny"), so that a
    /// spec plans the same runs before and after its checkpoints are downloaded. Nothing is written.
    public static func isGPT2(_ spec: String) -> Bool {
        if !spec.hasPrefix("embedded:"), let dir = try? resolve(spec),
           let cfg = try? ModelConfig.load(path: (dir as NSString).appendingPathComponent("config.json")) {
            if case .gpt2 = cfg { return true }
            return false
        }
        return spec.lowercased().contains("gpt2")
    }
}
