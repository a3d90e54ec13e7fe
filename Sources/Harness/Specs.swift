// Experiment specs as data (Baselines/specs/*.yaml): methods (with overrides and `vary` grids),
// tasks, model columns, seeds, few-shot sizes, and per-profile settings. Expanding a spec for a
// profile gives one RunSpec per (variant, task, model, k, seed).
import Foundation
import Methods
import Models
import Store
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
        /// A point of a hyper-parameter search: the name of the variant it searches for.
        public var searchFor: String? = nil
        /// A searched variant: its grid points (variant names); its runs are expanded only once a
        /// `SearchChoice` names the winning point, with that point's settings.
        public var searchPoints: [String]? = nil
        /// Seeds of a search point's runs (nil: the spec's).
        public var seeds: [Int]? = nil
    }
    /// A hyper-parameter search of one method entry (`search:` in the spec).
    public struct Search {
        public var grid: [(key: String, values: [Any])]
        public var selectOn: SelectionSplit
        public var seeds: [Int]?
    }
    public struct Profile {
        public var models: [String: String]?  // model column → model spec; nil: every column as itself
        public var k: [Int?]?
        public var seeds: [Int]?
        public var sampleSeeds: [Int]?
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
    /// Few-shot sample seeds crossed with `seeds` (nil: one seed drives both, the papers' protocol).
    public var sampleSeeds: [Int]?
    public var k: [Int?]
    public var protocolName: String?
    public var train: [String: Any]
    public var profiles: [String: Profile]

    public static let profileNames = ["smoke", "cpu", "paper"]

    /// The file `load` reads for `nameOrPath`: a path ending in .yaml as given, else specsDir/NAME.yaml.
    public static func path(of nameOrPath: String, specsDir: String = "Baselines/specs") -> String {
        nameOrPath.hasSuffix(".yaml") ? nameOrPath : "\(specsDir)/\(nameOrPath).yaml"
    }

    /// Loads Baselines/specs/NAME.yaml (or a path).
    public static func load(_ nameOrPath: String, specsDir: String = "Baselines/specs") throws -> ExperimentSpec {
        let path = path(of: nameOrPath, specsDir: specsDir)
        let bytes = FileManager.default.contents(atPath: path)
        if let bytes, String(data: bytes, encoding: .utf8) == nil { throw SpecError(path, "not UTF-8 text") }
        guard let text = bytes.flatMap({ String(data: $0, encoding: .utf8) }) else {
            let known = ((try? FileManager.default.contentsOfDirectory(atPath: specsDir)) ?? []).filter { $0.hasSuffix(".yaml") }
                .map { String($0.dropLast(5)) }.sorted()
            throw SpecError(path, "no such spec\(didYouMean(nameOrPath, known)); known: \(known.joined(separator: ", "))")
        }
        let any: Any?
        do { any = try Yams.load(yaml: text) } catch { throw SpecError(path, "invalid YAML: \(error)") }
        if let dup = YAMLKeys.firstDuplicate(in: text) { throw SpecError(path, dup) }
        guard let o = any as? [String: Any] else { throw SpecError(path, "top level must be a mapping") }
        return try parse(o, path: path)
    }

    static let topKeys = ["spec", "title", "paper", "methods", "tasks", "models", "seeds", "sample_seeds", "k", "protocol", "train", "profiles", "notes"]

    static func parse(_ o: [String: Any], path: String) throws -> ExperimentSpec {
        for key in o.keys.sorted() where !topKeys.contains(key) {
            throw SpecError(path, "unknown key '\(key)'\(didYouMean(key, topKeys))")
        }
        func strings(_ k: String) throws -> [String] {
            guard let a = o[k] as? [Any], !a.isEmpty else { throw SpecError(path, "'\(k)' must be a non-empty list") }
            return try a.map { v in
                guard v is String || v is NSNumber else { throw SpecError(path, "'\(k)' entries must be scalars, got \(v)") }
                return "\(v)"
            }.uniqueList(path: path, at: k)
        }
        guard let name = o["spec"] as? String else { throw SpecError(path, "missing 'spec' (the spec's name)") }
        var variants: [Variant] = []
        guard let ms = o["methods"] as? [Any], !ms.isEmpty else { throw SpecError(path, "'methods' must be a non-empty list") }
        for (i, m) in ms.enumerated() {
            guard let d = m as? [String: Any], let method = d["method"] as? String else {
                throw SpecError(path, "methods[\(i)] needs 'method'")
            }
            do { _ = try MethodRegistry.type(method) } catch { throw SpecError(path, "methods[\(i)].method: \(error)") }
            if let n = d["name"], !(n is String) { throw SpecError(path, "methods[\(i)].name must be a string, got \(n)") }
            let base = (d["name"] as? String) ?? method
            // "|" separates a cell's parts (variant|task|model|kK) and "#" a run key's: a name
            // holding one made two cells share a key, and every sweep superseded the other's runs;
            // "@" names a search's grid points.
            if let bad = base.first(where: RunSpec.reservedInVariant.contains) {
                throw SpecError(path, "methods[\(i)].name '\(base)': '\(bad)' is reserved (\(bad == "@" ? "a search names its grid points NAME@KEY=value" : "it separates the parts of a cell's name")); choose a name without |, # or @")
            }
            var over: [String: Any] = [:]
            if let t = d["train"], !(t is [String: Any] || t is NSNull) {
                throw SpecError(path, "methods[\(i)].train must be a mapping of training settings (e.g. `train: {lr: 0.3}`), got \(t)")
            }
            var train: [String: Any] = (d["train"] as? [String: Any]) ?? [:]
            for (k, v) in d.sorted(by: { $0.key < $1.key }) where !["name", "method", "vary", "train", "search"].contains(k) {
                guard MethodConfig.keys.contains(k) else {
                    // Suggest only keys this method reads ('rr' on pt suggested 'r', which pt refuses next).
                    let reads = (try? MethodRegistry.type(method))?.configKeys ?? MethodConfig.keys
                    throw SpecError(path, "methods[\(i)]: unknown method key '\(k)'\(didYouMean(k, reads)) (method \(method) reads "
                        + (reads.isEmpty ? "no method keys" : reads.joined(separator: ", ")) + "; training settings go under 'train')")
                }
                over[k] = v
            }
            try checkTrainKeys(train, path: path, at: "methods[\(i)].train")
            if let sv = d["search"] {
                guard d["vary"] == nil else { throw SpecError(path, "methods[\(i)]: 'vary' and 'search' cannot be combined") }
                let search = try parseSearch(sv, path: path, at: "methods[\(i)].search")
                // A grid key also set on the entry was silently replaced by each point's value (as
                // `vary` refuses it).
                for key in Set(search.points.flatMap { $0.map(\.0) }).sorted() where over[key] != nil || train[key] != nil {
                    throw SpecError(path, "methods[\(i)]: '\(key)' is set both on the entry and in search.grid (the grid's values replace it): set it in one place")
                }
                var names: [String] = []
                for point in search.points {
                    var o2 = over, t2 = train
                    t2["select_on"] = search.selectOn.rawValue
                    for (key, v) in point { if MethodConfig.keys.contains(key) { o2[key] = v } else { t2[key] = v } }
                    let name = "\(base)@" + point.map { "\($0.0)=\($0.1)" }.joined(separator: ",")
                    names.append(name)
                    variants.append(Variant(name: name, method: method, overrides: o2, train: t2, searchFor: base, seeds: search.seeds))
                }
                variants.append(Variant(name: base, method: method, overrides: over, train: train, searchPoints: names))
            } else if let vary = d["vary"] as? [String: Any] {
                guard vary.count == 1, let (key, vals) = vary.first, let list = vals as? [Any] else {
                    throw SpecError(path, "methods[\(i)].vary must map one key to a list")
                }
                // An empty list planned no variant: the method silently left the grid.
                guard !list.isEmpty else { throw SpecError(path, "methods[\(i)].vary.\(key) must be a non-empty list") }
                // The same key set beside `vary` was silently replaced by each listed value.
                if over[key] != nil || train[key] != nil {
                    throw SpecError(path, "methods[\(i)]: '\(key)' is set both inline and in vary (vary's values replace it): set it in one place")
                }
                for v in list {
                    var o2 = over
                    var t2 = train
                    if let why = notASetting[key] { throw SpecError(path, "methods[\(i)].vary: '\(key)' \(why)") }
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
        // Variant names key the cells and the store's rows: two variants of one name would share
        // (and supersede) each other's runs, and one method would silently never run.
        var seen: Set<String> = []
        for v in variants where !seen.insert(v.name).inserted {
            throw SpecError(path, "two methods give the variant name '\(v.name)': give each entry its own `name:`")
        }
        let tasks = try strings("tasks")
        for t in tasks { do { _ = try TaskRegistry.definition(t) } catch { throw SpecError(path, "tasks: \(error)") } }
        for m in try strings("models") where m.contains(where: RunSpec.reservedInColumn.contains) {
            throw SpecError(path, "models: '\(m)': '|' and '#' are reserved (they separate the parts of a cell's name and run key); name the column without them (a profile's `models:` maps it to any checkpoint path)")
        }
        // The preset every layer starts from, checked here (it was reported as a `--protocol` flag).
        if let pn = o["protocol"], !(pn is NSNull) {  // empty (YAML null): each method's own, as unset
            guard let name = pn as? String, name == "auto" || TrainConfig.protocols.contains(name) else {
                throw SpecError(path, "protocol: unknown preset '\(pn)'\(didYouMean("\(pn)", TrainConfig.protocols)); known: auto, \(TrainConfig.protocols.joined(separator: ", "))")
            }
        }
        let seeds = try strings("seeds").map { s -> Int in
            guard let v = Int(s) else { throw SpecError(path, "seed '\(s)' is not an integer") }
            guard v >= 0 else { throw SpecError(path, "'seeds': \(v) must be ≥ 0") }
            return v
        }
            .uniqueList(path: path, at: "seeds")  // as integers: 1 and "01" are one seed
        let ks = try kList(o["k"] ?? [NSNull()], path: path)
        let sampleSeeds = try o["sample_seeds"].map { try intList($0, path: path, at: "sample_seeds") }
        if let t = o["train"], !(t is [String: Any] || t is NSNull) { throw SpecError(path, "'train' must be a mapping of training settings, got \(t)") }
        let train = (o["train"] as? [String: Any]) ?? [:]
        try checkTrainKeys(train, path: path, at: "train")
        var profiles: [String: Profile] = [:]
        if let ps = o["profiles"], !(ps is [String: Any] || ps is NSNull) { throw SpecError(path, "'profiles' must map profile names to settings, got \(ps)") }
        for (pname, pv) in ((o["profiles"] as? [String: Any]) ?? [:]).sorted(by: { $0.key < $1.key }) {
            guard profileNames.contains(pname) else { throw SpecError(path, "unknown profile '\(pname)'\(didYouMean(pname, profileNames))") }
            guard pv is NSNull || pv is [String: Any] else {
                throw SpecError(path, "profiles.\(pname) must be a mapping (models, k, seeds, sample_seeds, train, description), got \(pv)")
            }
            let p = (pv as? [String: Any]) ?? [:]
            if let t = p["train"], !(t is [String: Any] || t is NSNull) { throw SpecError(path, "profiles.\(pname).train must be a mapping of training settings, got \(t)") }
            for key in p.keys.sorted() where !["models", "k", "seeds", "sample_seeds", "train", "description"].contains(key) {
                throw SpecError(path, "profiles.\(pname): unknown key '\(key)'")
            }
            let pt = (p["train"] as? [String: Any]) ?? [:]
            try checkTrainKeys(pt, path: path, at: "profiles.\(pname).train")
            // Every model column a profile maps must be one of the spec's (a misspelt one would
            // silently drop the column), and it must map at least one.
            var columns: [String: String]? = nil
            if let m = p["models"] {
                guard let d = m as? [String: Any], !d.isEmpty else {
                    throw SpecError(path, "profiles.\(pname).models must map model columns to checkpoints, e.g. {t5-small: \"embedded:t5-tiny\"}")
                }
                let specModels = try strings("models")
                for key in d.keys.sorted() where !specModels.contains(key) {
                    throw SpecError(path, "profiles.\(pname).models: '\(key)' is not a model column of the spec\(didYouMean(key, specModels)) (models: \(specModels.joined(separator: ", ")))")
                }
                columns = d.mapValues { "\($0)" }
            }
            // No profile but smoke may run the embedded random-weight backbone (`expand` says why),
            // refused on loading for every profile (it was refused only when that profile ran).
            if pname != "smoke" {
                let runs = try columns ?? Dictionary(try strings("models").map { ($0, $0) }, uniquingKeysWith: { a, _ in a })
                if let (column, model) = runs.sorted(by: { $0.key < $1.key }).first(where: { $0.value.hasPrefix("embedded:") }) {
                    throw SpecError(path, "profiles.\(pname) runs model column \(column) on \(model), the embedded random-weight backbone; only the smoke profile may (its results reproduce nothing and are labelled so); map the column to a checkpoint")
                }
            }
            profiles[pname] = Profile(models: columns,
                                      k: try p["k"].map { try kList($0, path: path) },
                                      seeds: try p["seeds"].map { try intList($0, path: path, at: "profiles.\(pname).seeds") },
                                      sampleSeeds: try p["sample_seeds"].map { try intList($0, path: path, at: "profiles.\(pname).sample_seeds") }, train: pt,
                                      description: (p["description"] as? String) ?? "")
        }
        return ExperimentSpec(name: name, path: path, title: (o["title"] as? String) ?? name, paper: (o["paper"] as? String) ?? "",
                              variants: variants, tasks: tasks, models: try strings("models"), seeds: seeds, sampleSeeds: sampleSeeds, k: ks,
                              protocolName: o["protocol"] as? String, train: train, profiles: profiles)
    }

    static func kList(_ v: Any, path: String) throws -> [Int?] {
        let list = (v as? [Any]) ?? [v]
        guard !list.isEmpty else { throw SpecError(path, "'k' must list at least one few-shot size (null: the full training split)") }
        return try list.map { x in
            if x is NSNull || "\(x)" == "null" || "\(x)" == "full" { return nil }
            guard let i = Int("\(x)") else { throw SpecError(path, "k value '\(x)' must be an integer or null (full split)") }
            return i
        }.uniqueList(path: path, at: "k")
    }

    static func intList(_ v: Any, path: String, at: String) throws -> [Int] {
        guard let list = v as? [Any], !list.isEmpty else { throw SpecError(path, "'\(at)' must be a non-empty list of integers") }
        return try list.map { x in
            guard let i = Int("\(x)") else { throw SpecError(path, "'\(at)': '\(x)' is not an integer") }
            guard i >= 0 else { throw SpecError(path, "'\(at)': \(i) must be ≥ 0") }
            return i
        }.uniqueList(path: path, at: at)
    }

    /// `search: {grid: {KEY: [values…], …}, select_on: train-dev|val-half, seeds: [..]}`: the grid
    /// points (every combination, keys in name order) with honest selection.
    static func parseSearch(_ v: Any, path: String, at: String) throws -> (points: [[(String, Any)]], selectOn: SelectionSplit, seeds: [Int]?) {
        guard let d = v as? [String: Any] else { throw SpecError(path, "\(at) must be a mapping with 'grid' and 'select_on'") }
        for key in d.keys.sorted() where !["grid", "select_on", "seeds"].contains(key) {
            throw SpecError(path, "\(at): unknown key '\(key)'\(didYouMean(key, ["grid", "select_on", "seeds"]))")
        }
        guard let grid = d["grid"] as? [String: Any], !grid.isEmpty else { throw SpecError(path, "\(at).grid must map keys to lists of values") }
        guard let so = d["select_on"] as? String, let sel = SelectionSplit(rawValue: so) else {
            throw SpecError(path, "\(at).select_on must be train-dev or val-half (a search selected on the reported split would report its own maximum)")
        }
        guard sel != .validation else {
            throw SpecError(path, "\(at).select_on: validation is the split that is reported; choose train-dev or val-half")
        }
        var points: [[(String, Any)]] = [[]]
        for key in grid.keys.sorted() {
            guard MethodConfig.keys.contains(key) || TrainConfig.keys.contains(key) else {
                throw SpecError(path, "\(at).grid: unknown key '\(key)'\(didYouMean(key, MethodConfig.keys + TrainConfig.keys))")
            }
            guard !["select_on", "selection_metric", "seed", "sample_seed", "task", "model", "k", "protocol"].contains(key) else {
                throw SpecError(path, "\(at).grid: '\(key)' is not a hyper-parameter")
            }
            // Settings of the evaluation protocol: points scored on other dev rows, templates or
            // decoding rules have dev scores that are not comparable, and the choice would also fix
            // how the final runs are evaluated.
            if let why = evaluationKeys[key] { throw SpecError(path, "\(at).grid: '\(key)' \(why), not a hyper-parameter to search") }
            guard let values = grid[key] as? [Any], !values.isEmpty else { throw SpecError(path, "\(at).grid.\(key) must be a non-empty list") }
            // Two values that read as one ("0.0001" and "1e-4") would be one point twice.
            var seenValues: Set<String> = []
            for v in values {
                let canonical = (v as? NSNumber).map { "\($0.doubleValue)" } ?? "\(v)"
                guard seenValues.insert(canonical).inserted else {
                    throw SpecError(path, "\(at).grid.\(key) lists the value \(v) twice (as numbers): each grid value once")
                }
            }
            points = points.flatMap { p in values.map { p + [(key, $0)] } }
        }
        return (points, sel, try d["seeds"].map { try intList($0, path: path, at: "\(at).seeds") })
    }

    /// Keys of how runs are evaluated, which a search's grid may not vary (why, for the error).
    static let evaluationKeys = [
        "eval_limit": "sets how many validation rows are scored",
        "eval_mode": "sets how predictions are made (generation or ranking)",
        "k_dev": "sets the size of the train-dev selection split",
        "sampler": "sets how the few-shot sample is drawn",
        "templates": "sets the templates the targets and scores use",
        "decode_max_tokens": "sets how far predictions are decoded",
        "decode_stop": "sets where predictions stop decoding",
        "eval_every": "sets which epochs are evaluated (and so can be selected)",
    ]

    static func checkTrainKeys(_ d: [String: Any], path: String, at: String) throws {
        for k in d.keys.sorted() {
            guard TrainConfig.keys.contains(k) else { throw SpecError(path, "\(at): unknown training key '\(k)'\(didYouMean(k, TrainConfig.keys))") }
            if let why = notASetting[k] { throw SpecError(path, "\(at): '\(k)' \(why)") }
        }
    }

    /// Config keys a `train:` layer (or `vary`) cannot set, and where they come from instead: the
    /// expansion sets them per run, so a value here would be ignored.
    static let notASetting = [
        "protocol": "is the spec's: set it at the top level (`protocol: NAME`, or `auto`: each method's own), it picks the preset every layer starts from",
        "model": "comes from the spec's 'models' (a profile's 'models' maps each column to a checkpoint)",
        "k": "comes from the spec's 'k' list (or a profile's)",
        "seed": "comes from the spec's 'seeds' list (or a profile's)",
        "sample_seed": "comes from the spec's 'sample_seeds' list (or a profile's; one value fixes the few-shot sample across the training seeds)",
    ]

    /// For a searched variant: the grid point (variant name) chosen for (task, model column, k), or
    /// nil while that search's runs are not all finished (see `ResultsStore.searchChoice`).
    public typealias SearchChoice = (_ points: [String], _ task: String, _ column: String, _ k: Int?) throws -> String?

    /// Whether some variant is chosen by a hyper-parameter search.
    public var hasSearch: Bool { variants.contains { $0.searchPoints != nil } }

    /// The search's grid points (variant names `NAME@KEY=value`), each with the searched variant
    /// it belongs to: rows a reader must not take for methods (results' csv and json, export).
    public var gridPointOwners: [String: String] {
        Dictionary(variants.compactMap { v in v.searchFor.map { (v.name, $0) } }, uniquingKeysWith: { a, _ in a })
    }

    /// Without a spec file (runs of a spec kept elsewhere), the grid points among `variants` by
    /// their names: `NAME@KEY=value[,KEY=value…]`, as a search names them (`NAME` the owner).
    public static func gridPointOwners(byName variants: [String]) -> [String: String] {
        var out: [String: String] = [:]
        for v in variants {
            guard let at = v.firstIndex(of: "@"), at != v.startIndex else { continue }
            let rest = v[v.index(after: at)...]
            let pairs = rest.split(separator: ",", omittingEmptySubsequences: false)
            let isPoint = !pairs.isEmpty && pairs.allSatisfy { pair in
                guard let eq = pair.firstIndex(of: "="), eq != pair.startIndex else { return false }
                return pair[..<eq].allSatisfy { $0 == "_" || $0.isLetter || $0.isNumber }
            }
            if isPoint { out[v] = String(v[..<at]) }
        }
        return out
    }

    /// Every run of this spec in `profile`. A searched variant's runs appear only where `choose`
    /// names its winning grid point (they run with that point's settings, under the variant's own
    /// name, on every seed); search points run on the search's seeds (default: the first seed).
    public func expand(profile: String, choose: SearchChoice? = nil) throws -> [RunSpec] {
        let p = try self.profile(profile)
        var out: [RunSpec] = []
        let columns = self.columns(p)
        let profileSeeds = p.seeds ?? seeds
        let crossed: [Int?] = (p.sampleSeeds ?? sampleSeeds).map { $0.map(Optional.some) } ?? [nil]
        // A profile's `train` is applied after a method's (a profile shrinks every run), so a key
        // both set, to other values, would silently run the profile's: the variant (a `vary` or
        // search point among them) would train as its baseline and compare equal to it.
        for variant in variants {
            if variant.train["lr_secondary"] != nil, !(try MethodRegistry.type(variant.method)).hasSecondaryGroup {
                throw SpecError(path, "variant \(variant.name) sets lr_secondary, which method \(variant.method) does not read (only DePT trains a secondary group, its A and B); the setting would change only the run's identity")
            }
            for (key, value) in variant.train.sorted(by: { $0.key < $1.key }) where !(variant.searchFor != nil && key == "select_on") {
                if let other = p.train[key], "\(other)" != "\(value)" {
                    throw SpecError(path, "variant \(variant.name) sets \(key): \(value) in its train settings, but profiles.\(profile).train sets \(key): \(other), which would override it for every run of this profile; set it in one place (a profile's settings apply to every variant)")
                }
            }
        }
        // The embedded backbone has random weights: its runs test the pipeline and are labelled
        // smoke by the profile's name (tables, figures, exports), so no other profile may run it.
        if profile != "smoke", let column = columns.first(where: { (p.models?[$0] ?? $0).hasPrefix("embedded:") }) {
            throw SpecError(path, "profiles.\(profile) runs model column \(column) on \(p.models?[column] ?? column), the embedded random-weight backbone; only the smoke profile may (its results reproduce nothing and are labelled so); map the column to a checkpoint or run --profile smoke")
        }
        for variant in variants {
            for task in tasks {
                for column in columns {
                    let modelSpec = p.models?[column] ?? column
                    for k in p.k ?? self.k {
                        var settings = variant
                        if let points = variant.searchPoints {
                            guard let chosen = try choose?(points, task, column, k),
                                  let point = variants.first(where: { $0.name == chosen }) else { continue }
                            settings = point
                        }
                        let runSeeds = variant.searchFor != nil ? (variant.seeds ?? Array(profileSeeds.prefix(1))) : profileSeeds
                        for sampleSeed in crossed {
                            for seed in runSeeds {
                                let mc = try methodConfig(settings)
                                // `auto`: each method's own preset, as `train` picks it (on GPT-2, LoPT's for prompt methods).
                                var c = protocolName == "auto" || protocolName == nil
                                    ? try TrainConfig.defaultPreset(method: mc, task: task, model: modelSpec, k: k, seed: seed, gpt2: ModelFiles.isGPT2(modelSpec))
                                    : try TrainConfig.preset(protocolName!, method: mc, task: task, model: modelSpec, k: k, seed: seed)
                                for (layer, at) in [(train, "train"), (settings.train, "variant \(settings.name)'s train"), (p.train, "profiles.\(profile).train")] {
                                    c = try merge(c, layer, what: at)
                                }
                                // A search point selects on the search's split whatever a later layer says
                                // (a search never selects on the reported split).
                                if settings.searchFor != nil, let sel = settings.train["select_on"] {
                                    c = try merge(c, ["select_on": sel], what: "training settings")
                                }
                                c.method = mc
                                // A preset's or the spec's lr_secondary is not read by a method without
                                // a secondary group: dropped, so it gives no identity of its own.
                                if !(try MethodRegistry.type(variant.method)).hasSecondaryGroup { c.lrSecondary = nil }
                                c.task = task; c.model = modelSpec; c.k = k; c.seed = seed
                                if let sampleSeed { c.sampleSeed = sampleSeed }
                                if !c.problems.isEmpty {
                                    throw SpecError(path, "\(variant.name) on \(task) [\(profile)]: " + c.problems.joined(separator: "; "))
                                }
                                if let problem = try c.taskProblem() { throw SpecError(path, "\(variant.name) on \(task) [\(profile)]: " + problem) }
                                // As `train` refuses it before training: each such run failed at its start.
                                if let mode = c.evalMode, mode != .generate, ModelFiles.isGPT2(modelSpec) {
                                    throw SpecError(path, "\(variant.name) on \(task) [\(profile)], model column \(column) (\(modelSpec)): eval_mode \(mode.rawValue): GPT-2 runs already score the label words (rank classification over the verbaliser); leave eval_mode unset for GPT-2 columns")
                                }
                                if let problem = mc.settingsProblem() { throw SpecError(path, "\(variant.name): " + problem) }
                                c.selectionMetric = try c.normalizedSelectionMetric()
                                let cell = RunSpec.cellName(variant: variant.name, task: task, model: column, k: k)
                                out.append(RunSpec(spec: name, profile: profile, cell: cell, variant: variant.name, method: variant.method,
                                                   task: task, model: column, modelSpec: modelSpec, k: k, seed: seed,
                                                   sampleSeed: c.sampleSeed, config: c))
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    /// The settings of `name` (the paper profile needs none); throws when the spec lacks it.
    func profile(_ name: String) throws -> Profile {
        guard let p = profiles[name] ?? (name == "paper" ? Profile(models: nil, k: nil, seeds: nil, train: [:], description: "") : nil) else {
            // The example maps the spec's first column to the embedded backbone of its kind (smoke),
            // or names the entry to add (another profile maps columns to checkpoints).
            let column = models.first ?? "t5-small"
            let example = name == "smoke"
                ? "e.g. `profiles: {smoke: {models: {\(column): \"embedded:\(ModelFiles.isGPT2(column) ? "gpt2-tiny" : "t5-tiny")\"}}}`"
                : "a `\(name):` entry under `profiles:` (its models, k, seeds and train settings)"
            throw SpecError(path, profiles.isEmpty
                ? "profile '\(name)' is not defined: the spec has no profiles; add \(example) (docs/specs.md)"
                : "profile '\(name)' is not defined (have: \(profiles.keys.sorted().joined(separator: ", ")))")
        }
        return p
    }

    /// The model columns a profile runs: those its `models` maps, or every column.
    public func columns(_ p: Profile) -> [String] { p.models.map { m in models.filter { m[$0] != nil } } ?? models }

    /// A variant's method config: its method's defaults with the variant's overrides (a searched
    /// variant: the overrides of its method entry, without a grid point's).
    public func methodConfig(_ variant: Variant) throws -> MethodConfig {
        try merge(try MethodConfig.defaults(variant.method), variant.overrides, what: "method \(variant.name)").resolvingDefaultInit()
    }

    /// Paper-formula trainable counts (`MethodRegistry.parameterCount`) per variant name and model
    /// column, for the columns whose architecture is known (`Architectures.known`); what a table
    /// prints as ours for a row without runs. A run stores its own (`RunSpec.paperParameterCount`).
    public func paperParameterCounts() -> [String: [String: Int]] {
        var out: [String: [String: Int]] = [:]
        for v in variants {
            guard let mc = try? methodConfig(v) else { continue }
            for column in models {
                if let arch = Architectures.known[column], let n = try? MethodRegistry.parameterCount(mc, architecture: arch) {
                    out[v.name, default: [:]][column] = n
                }
            }
        }
        return out
    }

    /// The values of each closed training setting, by its type's name as the decoder names it in
    /// "Cannot initialize TYPE from invalid String value …" (a refused value lists them).
    static let closedValues: [String: [String]] = {
        func values<E: CaseIterable & RawRepresentable>(_: E.Type) -> (String, [String]) where E.RawValue == String {
            ("\(E.self)", E.allCases.map(\.rawValue))
        }
        return Dictionary([values(SamplerKind.self), values(SelectionSplit.self), values(EvalMode.self), values(DecodeStop.self),
                           values(TemplateSet.self), values(OptimizerKind.self), values(Schedule.self)], uniquingKeysWith: { a, _ in a })
    }()

    /// Overrides fields of a Codable value through its JSON form (keys as in the file).
    func merge<T: Codable>(_ value: T, _ over: [String: Any], what: String) throws -> T {
        if over.isEmpty { return value }
        var obj = try JSONSerialization.jsonObject(with: JSONEncoder().encode(value)) as! [String: Any]
        for (k, v) in over {
            if k == "protocol" { continue }
            obj[k] = v is NSNull || "\(v)" == "null" ? nil : v
        }
        // A non-finite number (`.nan`, `.inf`) is no setting JSON can hold.
        for (k, v) in over.sorted(by: { $0.key < $1.key }) {
            if let d = v as? Double, !d.isFinite { throw SpecError(path, "\(what): '\(k)': \(v) is not a finite number") }
        }
        do { return try JSONDecoder().decode(T.self, from: JSONSerialization.data(withJSONObject: obj)) } catch {
            // The key and the value as written (`epochs: two`, `eval_mode: rnk`), not the decoder's dump.
            let context: DecodingError.Context? = switch error {
            case DecodingError.typeMismatch(_, let c), DecodingError.dataCorrupted(let c), DecodingError.valueNotFound(_, let c): c
            default: nil
            }
            if let key = context?.codingPath.first?.stringValue, let v = over[key] {
                let detail = context.map { c -> String in
                    guard c.debugDescription.hasPrefix("Cannot initialize") else { return " (\(decodingProblem(error)))" }
                    // "Cannot initialize EvalMode from invalid String value rnk": name the values.
                    let type = c.debugDescription.dropFirst("Cannot initialize ".count).prefix { $0 != " " }
                    return Self.closedValues[String(type)].map { " (one of: \($0.joined(separator: ", ")))" } ?? " (not one of its values)"
                } ?? ""
                throw SpecError(path, "\(what): '\(key)': \(v) is not a valid value\(detail)")
            }
            throw SpecError(path, "\(what): \(decodingProblem(error))")
        }
    }
}

extension RunSpec {
    /// This run's paper-formula trainable count, stored as the run metric `paper_params`: its
    /// method's formula (`MethodRegistry.parameterCount`) on the architecture of its model column,
    /// the paper's checkpoint — a stand-in backbone (the smoke profile's embedded one) counts as the
    /// column it stands in for; the backbone's own count is `trainable_params`. A column of no known
    /// architecture uses the run's model (`directory`'s config.json). nil when neither is known or
    /// the method has no formula.
    public func paperParameterCount(directory: String?) -> Int? {
        let arch = Architectures.known[model]
            ?? directory.flatMap { try? ModelConfig.load(path: ($0 as NSString).appendingPathComponent("config.json")) }
        return arch.flatMap { try? MethodRegistry.parameterCount(config.method, architecture: $0) }
    }
}

extension Array where Element: Hashable {
    /// The list itself, refused when an entry repeats: a spec's seeds, tasks, models or k listed
    /// twice would plan (and count as present) runs that are one run.
    func uniqueList(path: String, at: String) throws -> [Element] {
        var seen = Set<Element>()
        for x in self where !seen.insert(x).inserted {
            let text = String(describing: x)  // k's entries are Int? (nil: the full split)
            let shown = text == "nil" ? "null" : text.hasPrefix("Optional(") ? String(text.dropFirst(9).dropLast()) : text
            throw SpecError(path, "'\(at)' lists \(shown) more than once")
        }
        return self
    }
}
