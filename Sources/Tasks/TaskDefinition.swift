// Task registry as data (house style §5): one YAML file per task under Registry/, decoded into
// `TaskDefinition`. Bump a task's `version` whenever a change can move a score.
import Foundation
import Support
import Yams

public enum TemplateSet: String, CaseIterable, Codable, Sendable {
    case dpt, dept, respt, lopt
}

/// A raw label value as it appears in the data (bool, int or string).
public enum LabelValue: Codable, Hashable, CustomStringConvertible, Sendable {
    case bool(Bool), int(Int), string(String)

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let b = try? c.decode(Bool.self) { self = .bool(b); return }
        if let i = try? c.decode(Int.self) { self = .int(i); return }
        self = .string(try c.decode(String.self))
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .bool(let b): try c.encode(b)
        case .int(let i): try c.encode(i)
        case .string(let s): try c.encode(s)
        }
    }

    /// From a JSON value (bools are NSNumbers on Linux: check the type first).
    init?(json v: Any) {
        if let s = v as? String { self = .string(s); return }
        if let n = v as? NSNumber {
            if Readers.isBool(v) { self = .bool(n.boolValue); return }
            // Integers only: 0.6 or 2^64 were truncated to another class (NSNumber.intValue).
            guard let i = Int(exactly: n.doubleValue), Double(i) == n.doubleValue, abs(n.doubleValue) < 9.0e15 else { return nil }
            self = .int(i)
            return
        }
        return nil
    }

    public var description: String {
        switch self {
        case .bool(let b): return "\(b)"
        case .int(let i): return "\(i)"
        case .string(let s): return s
        }
    }
}

public struct TemplateSpec: Codable, Sendable {
    public var source: String
    public var target: String
    /// Verbalizer words by label index, for `{label_word}` (ResPT word labels, LoPT/PEZ verbalizer).
    public var words: [String]?

    public init(source: String, target: String, words: [String]? = nil) {
        self.source = source; self.target = target; self.words = words
    }

    /// The target string of each label index when the target names the label (`{label_index}`:
    /// "0", "1", …; `{label_word}`: `words`), nil when the target is generated text (a WSC
    /// referent, ReCoRD answers). Metrics read predictions back into labels with this table.
    public func verbalizer(labels: [LabelValue]?) -> [String]? {
        guard let labels else { return nil }
        switch target {
        case "{label_index}": return labels.indices.map { "\($0)" }
        case "{label_word}": return words
        default: return nil
        }
    }

    /// The literal text of `source` after its last `{field}` (" It was about" in
    /// "{text} It was about"; empty when the source ends with a field). A decoder-only model scores
    /// the label right after it, so truncation keeps it (`GPT2Objective`).
    public var sourceTail: String {
        var tailStart = source.startIndex
        var i = source.startIndex
        while i < source.endIndex {
            if source[i] == "{", let close = source[i...].firstIndex(of: "}") {
                i = source.index(after: close)
                tailStart = i
            } else {
                i = source.index(after: i)
            }
        }
        return String(source[tailStart...])
    }
}

public struct TaskDefinition: Codable, Sendable {
    public struct Files: Codable, Sendable {
        public var train: [String]
        public var validation: [String]
        public var fewglue: String?
    }

    public var task: String
    public var version: Int
    public var reader: String
    public var preprocess: [String]?
    public var trainFilter: String?
    public var files: Files
    public var labels: [LabelValue]?
    public var templates: [String: TemplateSpec]
    /// The scores a run stores, by name, each computed by a `MetricRegistry` entry.
    public var metrics: [MetricSpec]
    /// The stored name (one of `metrics`) that picks the best epoch, in its entry's direction.
    public var selectionMetric: String

    enum CodingKeys: String, CodingKey, CaseIterable {
        case task, version, reader, preprocess, files, labels, templates, metrics
        case trainFilter = "train_filter", selectionMetric = "selection_metric"
    }

    /// The keys a task file may have, at its top level, under `files:` and in a template; a key
    /// outside them would be dropped without a word by the decoder (a misspelt `fewglu:`, or an
    /// input length that no run reads).
    static let keys: [String: [String]] = [
        "": CodingKeys.allCases.map(\.rawValue), "files": ["train", "validation", "fewglue"], "template": ["source", "target", "words"],
        "metric": ["name", "metric"], "templates": TemplateSet.allCases.map(\.rawValue)]

    /// The first key of `text` that a task file does not have (`keys`), as an error detail; nil when
    /// every key is known or the text is not a mapping (the decoder reports that).
    static func unknownKey(in text: String) -> String? {
        guard case .mapping(let top)? = try? Yams.compose(yaml: text) else { return nil }
        func check(_ m: Node.Mapping, _ scope: String, _ at: String) -> String? {
            for (key, _) in m {
                guard let k = key.scalar?.string, !keys[scope]!.contains(k) else { continue }
                let line = key.mark.map { "line \($0.line): " } ?? ""
                if ["max_source_length", "max_target_length"].contains(k) {
                    return line + "\(at)\(k): input lengths are the protocol's, not the task's (each preset sets them; a spec sets `\(k)` under `train:`, and `train`/`eval` take --\(k.replacingOccurrences(of: "_", with: "-"))); remove it"
                }
                if scope == "templates" {
                    return line + "unknown template set '\(k)'\(didYouMean(k, keys[scope]!)); template sets are \(keys[scope]!.joined(separator: ", "))"
                }
                return line + "unknown key '\(at)\(k)'\(didYouMean(k, keys[scope]!)); \(scope == "metric" ? "a metric entry" : "a task file") has \(keys[scope]!.joined(separator: ", "))"
            }
            return nil
        }
        if let e = check(top, "", "") { return e }
        if case .mapping(let files)? = top["files"], let e = check(files, "files", "files.") { return e }
        if case .sequence(let metrics)? = top["metrics"] {
            for (i, m) in metrics.enumerated() {
                if case .mapping(let entry) = m, let e = check(entry, "metric", "metrics[\(i)].") { return e }
            }
        }
        if case .mapping(let templates)? = top["templates"] {
            if let e = check(templates, "templates", "templates.") { return e }
            for (name, value) in templates {
                if case .mapping(let t) = value, let e = check(t, "template", "templates.\(name.scalar?.string ?? "?").") { return e }
            }
        }
        return nil
    }

    /// The stored metric names, in declaration order.
    public var metricNames: [String] { metrics.map(\.name) }

    /// Whether the task declares a metric computed by registry entry `id`.
    public func uses(_ id: String) -> Bool { metrics.contains { $0.metric == id } }

    /// The registry entry behind the selection metric (its direction picks the best epoch).
    public var selectionEntry: MetricEntry {
        get throws {
            guard let spec = metrics.first(where: { $0.name == selectionMetric }) else {
                throw TaskError(file: "Registry/\(task).yaml", detail: "selection_metric '\(selectionMetric)' is not one of metrics (\(metricNames.joined(separator: ", ")))")
            }
            return try spec.entry
        }
    }

    /// Checks every metric id against the registry and the selection metric against the names;
    /// errors name `file` and the closest id.
    public func validateMetrics(file: String) throws {
        for (i, m) in metrics.enumerated() {
            do { _ = try MetricRegistry.entry(m.metric, file: file) } catch let e as TaskError {
                throw TaskError(file: file, detail: "metrics[\(i)] ('\(m.name)'): \(e.detail)")
            }
        }
        if let dup = metricNames.first(where: { n in metricNames.filter { $0 == n }.count > 1 }) {
            throw TaskError(file: file, detail: "metric name '\(dup)' is declared twice; give one a different `name:`")
        }
        guard metricNames.contains(selectionMetric) else {
            throw TaskError(file: file, detail: "selection_metric '\(selectionMetric)' is not one of metrics (\(metricNames.joined(separator: ", ")))\(didYouMean(selectionMetric, metricNames))")
        }
        // A source that names the gold answer hands it to the model as input: every score would be
        // meaningless, and nothing else would say so.
        for name in templates.keys.sorted() {
            for field in ["label", "label_index", "label_word", "answers", "answers_joined"] where templates[name]!.source.contains("{\(field)}") {
                throw TaskError(file: file, detail: "templates.\(name).source uses {\(field)}: the gold answer would be part of the input (targets may use it, sources may not)")
            }
        }
    }

    public func template(_ set: TemplateSet) throws -> TemplateSpec {
        guard let t = templates[set.rawValue] else {
            throw TaskError(file: "Registry/\(task).yaml", detail: "no '\(set.rawValue)' template (have: \(templates.keys.sorted().joined(separator: ", ")))")
        }
        return t
    }
}

public enum TaskRegistry {
    /// The papers' tasks, in paper order (tables list them so).
    static let paperOrder = ["boolq", "cb", "copa", "multirc", "record", "rte", "wic", "wsc", "sst2", "agnews"]

    /// Every task of the registry folder (one YAML file each): the papers' tasks in paper order,
    /// then any other file's task by name. Adding a task is adding its YAML file.
    public static let names: [String] = {
        let dir = Bundle.module.url(forResource: "Registry", withExtension: nil)?.path
        let files = dir.flatMap { try? FileManager.default.contentsOfDirectory(atPath: $0) } ?? []
        let found = Set(files.filter { $0.hasSuffix(".yaml") }.map { String($0.dropLast(5)) })
        return paperOrder.filter { found.isEmpty || found.contains($0) } + found.subtracting(paperOrder).sorted()
    }()
    public static let superGLUE = ["boolq", "cb", "copa", "multirc", "record", "rte", "wic", "wsc"]

    nonisolated(unsafe) static var cache: [String: TaskDefinition] = [:]

    public static func definition(_ name: String) throws -> TaskDefinition {
        if let d = cache[name] { return d }
        guard names.contains(name) else {
            throw TaskError(file: "task '\(name)'", detail: "unknown task\(didYouMean(name, names)); known: \(names.joined(separator: ", "))"
                + " (the registry is built into the binary: a file added to Sources/Tasks/Registry needs `make build`)")
        }
        guard let url = Bundle.module.url(forResource: name, withExtension: "yaml", subdirectory: "Registry")
                ?? Bundle.module.url(forResource: name, withExtension: "yaml") else {
            throw TaskError(file: "Registry/\(name).yaml", detail: "missing from the Tasks resource bundle")
        }
        let text = try String(contentsOf: url, encoding: .utf8)
        let d = try decode(text, file: url.path)
        // The file's name is the task's name everywhere (specs, stores, manifests): `task:` must agree.
        guard d.task == name else { throw TaskError(file: "Registry/\(name).yaml", detail: "task '\(d.task)' must match the file name '\(name)'") }
        cache[name] = d
        return d
    }

    /// A task definition from YAML text, with its metrics checked against the registry.
    public static func decode(_ text: String, file: String) throws -> TaskDefinition {
        let d: TaskDefinition
        do {
            d = try YAMLDecoder().decode(TaskDefinition.self, from: text)
        } catch {
            throw TaskError(file: file, detail: "invalid task definition: \(error)")
        }
        if let dup = YAMLKeys.firstDuplicate(in: text) { throw TaskError(file: file, detail: dup) }
        if let unknown = TaskDefinition.unknownKey(in: text) { throw TaskError(file: file, detail: unknown) }
        try d.validateMetrics(file: file)
        return d
    }
}

