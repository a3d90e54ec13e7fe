// Finding checkpoints: a directory, or a hub id resolved offline in the local Hugging Face cache.
import Foundation
import Support
import Tensor

public struct ModelNotFound: Error, CustomStringConvertible {
    public let spec: String
    public let looked: [String]
    public var description: String {
        var s = "model '\(spec)' not found. Looked in:\n"
        for l in looked { s += "  - \(l)\n" }
        // An embedded name is generated, never downloaded: the names there are.
        if spec.hasPrefix("embedded:") {
            let embedded = EmbeddedBackbones.names.map { "embedded:\($0)" }
            s += "---> HINT: the embedded smoke backbones are \(embedded.joined(separator: ", "))\(didYouMean(spec, embedded))."
            return s
        }
        // A path is no hub id: downloading it means nothing.
        if Self.isPath(spec) {
            s += "---> HINT: \(spec) is a path: give a directory holding config.json + model.safetensors (and the tokenizer's files)."
            return s
        }
        s += """
        ---> HINT: pass a directory holding config.json + model.safetensors, or download the checkpoint
             once on a machine with network access (e.g. `huggingface-cli download \(spec)`) and copy
             its cache folder into the hub cache searched above (HF_HUB_CACHE, else HF_HOME/hub, else
             ~/.cache/huggingface/hub), or set HF_HUB_CACHE to where it is.
        """
        return s
    }

    /// Whether a model spec is a file-system path (absolute, ./, ../ or ~), never a hub id.
    public static func isPath(_ spec: String) -> Bool { spec.hasPrefix("/") || spec.hasPrefix("./") || spec.hasPrefix("../") || spec.hasPrefix("~") }
}

public enum ModelFiles {
    /// The environment model lookup reads (HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME, HOME,
    /// PROMPTREPRO_MODEL_DIR); the CLI sets it from the process environment, libraries never read it.
    nonisolated(unsafe) public static var environment: [String: String] = [:]

    /// The hub cache huggingface_hub reads, and only it: HF_HUB_CACHE, else HUGGINGFACE_HUB_CACHE,
    /// else HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub
    /// (`huggingface_hub.constants`). Each variable replaces the later ones: a checkpoint in
    /// ~/.cache while HF_HUB_CACHE names another directory is not found by transformers, and was
    /// loaded here (a stale copy, where the user had pointed the cache elsewhere).
    public static func cacheRoot(environment env: [String: String] = ModelFiles.environment) -> String {
        let home = env["HOME"] ?? NSHomeDirectory()
        // huggingface_hub expands `~` and `$VAR` in HF_HOME and HF_HUB_CACHE (expanduser, expandvars).
        func expanded(_ p: String) -> String {
            var p = p
            if p == "~" || p.hasPrefix("~/") { p = home + p.dropFirst() }
            var out = "", i = p.startIndex
            while i < p.endIndex {
                guard p[i] == "$" else { out.append(p[i]); i = p.index(after: i); continue }
                var j = p.index(after: i), name = ""
                let braced = j < p.endIndex && p[j] == "{"
                if braced { j = p.index(after: j) }
                while j < p.endIndex, p[j].isLetter || p[j].isNumber || p[j] == "_" { name.append(p[j]); j = p.index(after: j) }
                if braced { guard j < p.endIndex, p[j] == "}" else { out.append(p[i]); i = p.index(after: i); continue }; j = p.index(after: j) }
                // An unset variable stays as written, as os.path.expandvars leaves it.
                if !name.isEmpty, let v = env[name] { out += v } else { out += p[i..<j] }
                i = j
            }
            return out
        }
        if let c = env["HF_HUB_CACHE"] ?? env["HUGGINGFACE_HUB_CACHE"] { return expanded(c) }
        let hf = env["HF_HOME"].map(expanded) ?? ((env["XDG_CACHE_HOME"] ?? (home as NSString).appendingPathComponent(".cache")) as NSString).appendingPathComponent("huggingface")
        return (hf as NSString).appendingPathComponent("hub")
    }

    /// The caches `cacheRoot` would read under fewer variables (HF_HOME/hub, the XDG and home
    /// defaults), other than the one it reads: named when a checkpoint is found only there.
    static func otherCacheRoots(environment env: [String: String]) -> [String] {
        let root = cacheRoot(environment: env)
        var lesser = env
        var roots: [String] = []
        for key in ["HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"] {
            lesser[key] = nil
            let r = cacheRoot(environment: lesser)
            if r != root && !roots.contains(r) { roots.append(r) }
        }
        return roots
    }

    /// A directory path (holding config.json) or a hub id such as `t5-small`, `google/flan-t5-base`.
    public static func resolve(_ spec: String, environment env: [String: String] = ModelFiles.environment) throws -> String {
        let fm = FileManager.default
        var looked: [String] = []
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: spec, isDirectory: &isDir), isDir.boolValue {
            let cfg = (spec as NSString).appendingPathComponent("config.json")
            if fm.fileExists(atPath: cfg) { return spec }
            looked.append("\(spec) (a directory, but " + (danglingLinkTarget(cfg).map { "its config.json is " + danglingLinkProblem($0) } ?? "it has no config.json") + ")")
        } else {
            looked.append("\(spec) (no such directory)")
        }
        if let base = env["PROMPTREPRO_MODEL_DIR"] {
            var why = ""
            for name in [spec, (spec as NSString).lastPathComponent] {
                let d = (base as NSString).appendingPathComponent(name)
                if fm.fileExists(atPath: (d as NSString).appendingPathComponent("config.json")) { return d }
                if why.isEmpty, let target = danglingLinkTarget((d as NSString).appendingPathComponent("config.json")) {
                    why = "; \(d)/config.json is " + danglingLinkProblem(target)
                }
            }
            looked.append("\(base)/\(spec) (PROMPTREPRO_MODEL_DIR\(why))")
        }
        // A path (absolute, ./, ../ or ~) is no hub id: the hub caches are not searched for it.
        if ModelNotFound.isPath(spec) { throw ModelNotFound(spec: spec, looked: looked) }
        let folder = "models--" + spec.replacingOccurrences(of: "/", with: "--")
        do {
            let root = cacheRoot(environment: env)
            let repo = (root as NSString).appendingPathComponent(folder)
            let snaps = (repo as NSString).appendingPathComponent("snapshots")
            guard fm.fileExists(atPath: repo) else {
                let elsewhere = otherCacheRoots(environment: env).map { ($0 as NSString).appendingPathComponent(folder) }.filter { fm.fileExists(atPath: $0) }
                looked.append("\(snaps)/<revision>/config.json" + (elsewhere.isEmpty ? "" : " (a copy is in \(elsewhere.joined(separator: ", ")), "
                    + "which is not searched while HF_HUB_CACHE/HF_HOME/XDG_CACHE_HOME point here, as transformers does not: pass one of its snapshots/<revision> directories, or point the variable there)"))
                throw ModelNotFound(spec: spec, looked: looked)
            }
            // transformers (offline) reads the snapshot that refs/main names and nothing else: a
            // missing or incomplete one is an error, never a silent switch to another revision.
            let refPath = (repo as NSString).appendingPathComponent("refs/main")
            if let ref = try? String(contentsOfFile: refPath, encoding: .utf8) {
                let rev = ref.trimmingCharacters(in: .whitespacesAndNewlines)
                let snap = (snaps as NSString).appendingPathComponent(rev)
                if fm.fileExists(atPath: (snap as NSString).appendingPathComponent("config.json")) { return snap }
                let link = danglingLinkTarget((snap as NSString).appendingPathComponent("config.json")).map { " (it is " + danglingLinkProblem($0) + ")" } ?? ""
                throw ModelNotFound(spec: spec, looked: looked + ["\(refPath) names revision \(rev), but \(snap)/config.json does not exist\(link) "
                    + "(an incomplete download? other revisions are not used in its place: pass a snapshot directory to use one)"])
            }
            // No refs/main (a download by revision): one snapshot is unambiguous; several are not.
            let revs = ((try? fm.contentsOfDirectory(atPath: snaps)) ?? []).sorted()
                .filter { fm.fileExists(atPath: (snaps as NSString).appendingPathComponent("\($0)/config.json")) }
            if revs.count == 1 { return (snaps as NSString).appendingPathComponent(revs[0]) }
            // Snapshots whose config.json is a dangling link were passed over without a word.
            let broken = ((try? fm.contentsOfDirectory(atPath: snaps)) ?? []).sorted()
                .filter { danglingLinkTarget((snaps as NSString).appendingPathComponent("\($0)/config.json")) != nil }
            if revs.count > 1 {
                throw ModelNotFound(spec: spec, looked: looked + ["\(repo) has no refs/main and \(revs.count) snapshots (\(revs.joined(separator: ", "))): "
                    + "which is main is unknown; pass the snapshot directory, e.g. \(snaps)/\(revs[0])"])
            }
            looked.append("\(snaps)/<revision>/config.json" + (broken.isEmpty ? "" : " (snapshot\(broken.count == 1 ? "" : "s") \(broken.joined(separator: ", ")): "
                + "config.json is a link to a blob that does not exist: an incomplete or deleted download)"))
        }
        throw ModelNotFound(spec: spec, looked: looked)
    }

    /// Opens model.safetensors, or the shards listed in model.safetensors.index.json.
    public static func openWeights(directory dir: String) throws -> WeightStore {
        let fm = FileManager.default
        let single = (dir as NSString).appendingPathComponent("model.safetensors")
        if fm.fileExists(atPath: single) { return WeightStore(files: [try SafeTensorsFile(path: single)]) }
        let index = (dir as NSString).appendingPathComponent("model.safetensors.index.json")
        if fm.fileExists(atPath: index) {
            guard let data = fm.contents(atPath: index),
                  let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let map = obj["weight_map"] as? [String: String] else {
                throw SafeTensorsError(path: index, detail: "missing or malformed 'weight_map'")
            }
            let shards = Set(map.values).sorted()
            let files = try shards.map { shard in
                let path = (dir as NSString).appendingPathComponent(shard)
                if let target = danglingLinkTarget(path) { throw SafeTensorsError(path: path, detail: "a shard weight_map names; " + danglingLinkProblem(target)) }
                return try SafeTensorsFile(path: path)
            }
            // Every tensor where the index says it is (a wrong entry otherwise surfaced as a tensor
            // "missing" from the first shard, naming neither the index nor the shard).
            let byShard = Dictionary(uniqueKeysWithValues: zip(shards, files))
            for (name, shard) in map.sorted(by: { $0.key < $1.key }) where byShard[shard]?.entries[name] == nil {
                let holders = zip(shards, files).filter { $0.1.entries[name] != nil }.map(\.0)
                throw SafeTensorsError(path: index, detail: "weight_map puts '\(name)' in \(shard), which does not hold it"
                    + (holders.isEmpty ? " (no shard does)" : " (it is in \(holders.joined(separator: ", ")))"))
            }
            // A tensor is read from the shard the index names (a copy in another shard is not
            // read); one the index does not list is refused when two shards hold it (which one
            // transformers would take depends on its version's loading order).
            let store = WeightStore(files: files)
            for (name, shard) in map { store.location[name] = byShard[shard] }
            for name in store.names where map[name] == nil {
                let holders = zip(shards, files).filter { $0.1.entries[name] != nil }.map(\.0)
                if holders.count > 1 {
                    throw SafeTensorsError(path: index, detail: "'\(name)' is in \(holders.joined(separator: " and ")) and weight_map does not say which to read")
                }
            }
            return store
        }
        var hint = ""
        // A link whose target is gone (an HF cache snapshot whose blob was deleted or never
        // finished downloading): fileExists follows the link and says "no such file".
        for name in ["model.safetensors", "model.safetensors.index.json"] {
            let path = (dir as NSString).appendingPathComponent(name)
            if let target = danglingLinkTarget(path) { throw SafeTensorsError(path: path, detail: danglingLinkProblem(target)) }
        }
        if fm.fileExists(atPath: (dir as NSString).appendingPathComponent("pytorch_model.bin")) {
            hint = " (pytorch_model.bin found: convert it once with safetensors' `convert` or transformers' save_pretrained(safe_serialization=True))"
        }
        throw SafeTensorsError(path: single, detail: "no model.safetensors or model.safetensors.index.json in \(dir)\(hint)")
    }
}

/// Weights of a checkpoint across one or more safetensors files.
public final class WeightStore {
    public let files: [SafeTensorsFile]
    var location: [String: SafeTensorsFile] = [:]

    init(files: [SafeTensorsFile]) {
        self.files = files
        for f in files { for n in f.entries.keys { location[n] = f } }
    }

    public var names: Set<String> { Set(location.keys) }
    public func has(_ name: String) -> Bool { location[name] != nil }
    public func shape(_ name: String) -> [Int]? { location[name]?.entries[name]?.shape }

    /// Whether `head` is stored with other values than `embedding` (a different shape counts as
    /// different; false when either is not stored): transformers' test (`torch.equal` of the two
    /// loaded tensors, modeling_utils `tie_weights`) for keeping a stored head of a model whose
    /// config ties it to the embedding as its own weight. Values are compared after conversion to
    /// fp32, as loaded, by value as `torch.equal` compares (0 equals −0, a NaN equals nothing). Errors: a tensor that cannot be read.
    public func storedHeadDiffers(_ head: String, from embedding: String) throws -> Bool {
        guard let hs = shape(head), let es = shape(embedding) else { return false }
        guard hs == es else { return true }
        let h = try load(head, shape: hs), e = try load(embedding, shape: es)
        for i in 0..<h.count where h.data[i] != e.data[i] { return true }  // torch.equal: 0 == −0, NaN ≠ NaN
        return false
    }

    /// Throws, naming every one, when some of `expected` are absent (a name also counts as present
    /// when one of its `aliases` is stored). Stored tensors that nothing reads are never dropped
    /// silently: each non-empty one that `ignoring` does not name as a known buffer gets a warning
    /// on stderr. `tiedHead` (head, embedding) names a stored head that the model ties to the
    /// embedding because its values equal the embedding's (`storedHeadDiffers`): no warning.
    public func require(_ expected: [String], aliases: [String: [String]] = [:], ignoring: (String) -> Bool = { _ in false },
                        tiedHead: (head: String, embedding: String)? = nil, hint: ([String]) -> String = { _ in "" }) throws {
        let missing = expected.filter { !has($0) && !(aliases[$0] ?? []).contains(where: has) }
        if !missing.isEmpty {
            throw SafeTensorsError(path: files.first?.path ?? "?",
                                   detail: "missing \(missing.count) tensor(s)\(hint(missing)): \(missing.prefix(12).joined(separator: ", "))\(missing.count > 12 ? ", …" : "")")
        }
        let read = Set(expected).union(aliases.values.joined())
        let unused = names.subtracting(read).filter { n in
            !ignoring(n) && (location[n]?.entries[n].map { $0.end > $0.begin } ?? false)
        }.sorted()
        var notes: [String] = []
        for n in unused {
            if let t = tiedHead, n == t.head {
                continue  // equal to the embedding it is tied to (the caller checked)
            } else {
                notes.append("'\(n)' is stored but not part of the architecture in config.json; it is not used")
            }
        }
        for note in notes.prefix(8) {
            FileHandle.standardError.write(Data("warning: \(files.first?.path ?? "?"): tensor \(note)\n".utf8))
        }
        if notes.count > 8 {
            FileHandle.standardError.write(Data("warning: \(files.first?.path ?? "?"): \(notes.count - 8) more unused tensors\n".utf8))
        }
    }

    /// Loads `name` and checks its shape; the error names the file, tensor and both shapes.
    public func load(_ name: String, shape: [Int]) throws -> Tensor {
        guard let f = location[name] else {
            throw SafeTensorsError(path: files.first?.path ?? "?", detail: "missing tensor '\(name)'")
        }
        let t = try f.tensor(name)
        guard t.shape == shape else {
            throw SafeTensorsError(path: f.path, detail: "tensor '\(name)' has shape \(t.shape), expected \(shape) from config.json")
        }
        t.name = name
        return t
    }
}

/// Builds a model's parameters from its (name, shape) table: each tensor from `tensor`, named,
/// in table order, and indexed by name.
func materialize(_ shapes: [(String, [Int])], _ tensor: (String, [Int]) throws -> Tensor) throws
    -> (list: [(name: String, tensor: Tensor)], byName: [String: Tensor]) {
    var list: [(name: String, tensor: Tensor)] = []
    var byName: [String: Tensor] = [:]
    for (name, shape) in shapes {
        let t = try tensor(name, shape)
        t.name = name
        list.append((name, t))
        byName[name] = t
    }
    return (list, byName)
}
