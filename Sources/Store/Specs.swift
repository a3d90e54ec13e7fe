// Experiment specs as data (Baselines/specs/*.yaml): methods (with overrides and `vary` grids),
// tasks, model columns, seeds, few-shot sizes, and per-profile settings. Expanding a spec for a
// profile gives one RunSpec per (variant, task, model, k, seed).
import Foundation
import Methods
import Support
import Tasks
import Training
import Yams

public struct SpecError: Error, CustomStringConvertible {
    public let description: String
    init(_ path: String, _ d: String) { description = "\(path): \(d)" }
}

public struct ExperimentSpec {
    public struct Variant {
        public var name: String
        public var method: String
        public var overrides: [String: Any]   // MethodConfig fields
        public var train: [String: Any]       // TrainConfig fields for this variant only
    }
    public struct Profile {
        public var models: [String: String]?  // model column → model spec; nil: every column as itself
        public var k: [Int?]?
        public var seeds: [Int]?
        public var train: [String: Any]
        public var description: String
    }

    public var name: String
    public var path: String
    public var title: String
    public var paper: String
    public var variants: [Variant]
    public var tasks: [String]
    public var models: [String]
    public var seeds: [Int]
    public var k: [Int?]
    public var protocolName: String?
    public var train: [String: Any]
    public var profiles: [String: Profile]

    public static let profileNames = ["smoke", "cpu", "paper"]

    /// Loads Baselines/specs/NAME.yaml (or a path).
    public static func load(_ nameOrPath: String, specsDir: String = "Baselines/specs") throws -> ExperimentSpec {
        let path = nameOrPath.hasSuffix(".yaml") ? nameOrPath : "\(specsDir)/\(nameOrPath).yaml"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            let known = ((try? FileManager.default.contentsOfDirectory(atPath: specsDir)) ?? []).filter { $0.hasSuffix(".yaml") }
                .map { String($0.dropLast(5)) }.sorted()
            throw SpecError(path, "no such spec\(didYouMean(nameOrPath, known)); known: \(known.joined(separator: ", "))")
        }
        let any: Any?
        do { any = try Yams.load(yaml: text) } catch { throw SpecError(path, "invalid YAML: \(error)") }
        guard let o = any as? [String: Any] else { throw SpecError(path, "top level must be a mapping") }
        return try parse(o, path: path)
    }

    static let topKeys = ["spec", "title", "paper", "methods", "tasks", "models", "seeds", "k", "protocol", "train", "profiles", "notes"]

    static func parse(_ o: [String: Any], path: String) throws -> ExperimentSpec {
        for key in o.keys.sorted() where !topKeys.contains(key) {
            throw SpecError(path, "unknown key '\(key)'\(didYouMean(key, topKeys))")
        }
        func strings(_ k: String) throws -> [String] {
            guard let a = o[k] as? [Any] else { throw SpecError(path, "'\(k)' must be a list") }
            return try a.map { v in
                guard v is String || v is NSNumber else { throw SpecError(path, "'\(k)' entries must be scalars, got \(v)") }
                return "\(v)"
            }
        }
        guard let name = o["spec"] as? String else { throw SpecError(path, "missing 'spec' (the spec's name)") }
        var variants: [Variant] = []
        guard let ms = o["methods"] as? [Any] else { throw SpecError(path, "'methods' must be a list") }
        for (i, m) in ms.enumerated() {
            guard let d = m as? [String: Any], let method = d["method"] as? String else {
                throw SpecError(path, "methods[\(i)] needs 'method'")
            }
            _ = try MethodRegistry.type(method)
            let base = (d["name"] as? String) ?? method
            var over: [String: Any] = [:]
            var train: [String: Any] = (d["train"] as? [String: Any]) ?? [:]
            for (k, v) in d.sorted(by: { $0.key < $1.key }) where !["name", "method", "vary", "train"].contains(k) {
                guard MethodConfig.keys.contains(k) else {
                    throw SpecError(path, "methods[\(i)]: unknown method key '\(k)'\(didYouMean(k, MethodConfig.keys)) (training settings go under 'train')")
                }
                over[k] = v
            }
            try checkTrainKeys(train, path: path, at: "methods[\(i)].train")
            if let vary = d["vary"] as? [String: Any] {
                guard vary.count == 1, let (key, vals) = vary.first, let list = vals as? [Any] else {
                    throw SpecError(path, "methods[\(i)].vary must map one key to a list")
                }
                for v in list {
                    var o2 = over
                    var t2 = train
                    if MethodConfig.keys.contains(key) { o2[key] = v } else if TrainConfig.keys.contains(key) { t2[key] = v } else {
                        throw SpecError(path, "methods[\(i)].vary: unknown key '\(key)'")
                    }
                    variants.append(Variant(name: "\(base)-\(key)\(v)", method: method, overrides: o2, train: t2))
                }
            } else {
                variants.append(Variant(name: base, method: method, overrides: over, train: train))
            }
            train = [:]
        }
        let tasks = try strings("tasks")
        for t in tasks { _ = try TaskRegistry.definition(t) }
        let seeds = try strings("seeds").map { s -> Int in guard let v = Int(s) else { throw SpecError(path, "seed '\(s)' is not an integer") }; return v }
        let ks = try kList(o["k"] ?? [NSNull()], path: path)
        let train = (o["train"] as? [String: Any]) ?? [:]
        try checkTrainKeys(train, path: path, at: "train")
        var profiles: [String: Profile] = [:]
        for (pname, pv) in ((o["profiles"] as? [String: Any]) ?? [:]).sorted(by: { $0.key < $1.key }) {
            guard profileNames.contains(pname) else { throw SpecError(path, "unknown profile '\(pname)'\(didYouMean(pname, profileNames))") }
            let p = (pv as? [String: Any]) ?? [:]
            for key in p.keys.sorted() where !["models", "k", "seeds", "train", "description"].contains(key) {
                throw SpecError(path, "profiles.\(pname): unknown key '\(key)'")
            }
            let pt = (p["train"] as? [String: Any]) ?? [:]
            try checkTrainKeys(pt, path: path, at: "profiles.\(pname).train")
            profiles[pname] = Profile(models: (p["models"] as? [String: Any])?.mapValues { "\($0)" },
                                      k: try p["k"].map { try kList($0, path: path) },
                                      seeds: (p["seeds"] as? [Any])?.compactMap { Int("\($0)") }, train: pt,
                                      description: (p["description"] as? String) ?? "")
        }
        return ExperimentSpec(name: name, path: path, title: (o["title"] as? String) ?? name, paper: (o["paper"] as? String) ?? "",
                              variants: variants, tasks: tasks, models: try strings("models"), seeds: seeds, k: ks,
                              protocolName: o["protocol"] as? String, train: train, profiles: profiles)
    }

    static func kList(_ v: Any, path: String) throws -> [Int?] {
        let list = (v as? [Any]) ?? [v]
        return try list.map { x in
            if x is NSNull || "\(x)" == "null" || "\(x)" == "full" { return nil }
            guard let i = Int("\(x)") else { throw SpecError(path, "k value '\(x)' must be an integer or null (full split)") }
            return i
        }
    }

    static func checkTrainKeys(_ d: [String: Any], path: String, at: String) throws {
        for k in d.keys.sorted() where !TrainConfig.keys.contains(k) {
            throw SpecError(path, "\(at): unknown training key '\(k)'\(didYouMean(k, TrainConfig.keys))")
        }
    }

    /// Every run of this spec in `profile`.
    public func expand(profile: String) throws -> [RunSpec] {
        guard let p = profiles[profile] ?? (profile == "paper" ? Profile(models: nil, k: nil, seeds: nil, train: [:], description: "") : nil) else {
            throw SpecError(path, "profile '\(profile)' is not defined (have: \(profiles.keys.sorted().joined(separator: ", ")))")
        }
        var out: [RunSpec] = []
        let columns = p.models.map { m in models.filter { m[$0] != nil } } ?? models
        for variant in variants {
            for task in tasks {
                for column in columns {
                    let modelSpec = p.models?[column] ?? column
                    for k in p.k ?? self.k {
                        for seed in p.seeds ?? seeds {
                            var mc = try MethodConfig.defaults(variant.method)
                            mc = try merge(mc, variant.overrides, what: "method \(variant.name)")
                            let proto = protocolName == "auto" || protocolName == nil ? TrainConfig.defaultProtocol(for: variant.method) : protocolName!
                            var c = try TrainConfig.preset(proto, method: mc, task: task, model: modelSpec, k: k, seed: seed)
                            for layer in [train, variant.train, p.train] { c = try merge(c, layer, what: "training settings") }
                            c.method = mc
                            c.task = task; c.model = modelSpec; c.k = k; c.seed = seed
                            let cell = "\(variant.name)|\(task)|\(column)|k\(k.map(String.init) ?? "full")"
                            out.append(RunSpec(spec: name, profile: profile, cell: cell, variant: variant.name, method: variant.method,
                                               task: task, model: column, modelSpec: modelSpec, k: k, seed: seed, config: c))
                        }
                    }
                }
            }
        }
        return out
    }

    /// Overrides fields of a Codable value through its JSON form (keys as in the file).
    func merge<T: Codable>(_ value: T, _ over: [String: Any], what: String) throws -> T {
        if over.isEmpty { return value }
        var obj = try JSONSerialization.jsonObject(with: JSONEncoder().encode(value)) as! [String: Any]
        for (k, v) in over {
            if k == "protocol" { continue }
            obj[k] = v is NSNull || "\(v)" == "null" ? nil : v
        }
        do { return try JSONDecoder().decode(T.self, from: JSONSerialization.data(withJSONObject: obj)) } catch {
            throw SpecError(path, "\(what): an override has the wrong type (\(error))")
        }
    }
}
