// Readers (official SuperGLUE jsonl, GLUE SST-2 tsv, AG News csv) producing Hugging Face-style
// rows, and template rendering into text-to-text examples. Errors name the file and line.
import Foundation
import Support

public enum Split: String, Sendable { case train, validation }

/// A split read from disk, with the file and hash it came from.
public struct TaskData {
    public let definition: TaskDefinition
    public let split: Split
    public let path: String
    public let relativePath: String
    public let sha256: String
    /// True when only a subset file of the official split is present (see shared/data/SOURCES.md).
    public let isSubset: Bool
    public let rows: [Row]
}

/// A text-to-text example.
public struct Example {
    public let id: RowID
    public let row: Int            // index into TaskData.rows
    public var source: String
    public var target: String
    public var answers: [String]   // gold strings (ReCoRD: every answer; others: [target])
    public var label: Int?         // label index (WSC: 1 = the pronoun refers to span1)
    public var group: String?      // MultiRC question group
    public var referent: String?   // WSC span1_text
    /// ReCoRD: the passage's entities (distinct strings), the candidates an answer is drawn from.
    public var entities: [String]? = nil

    public init(id: RowID, row: Int, source: String, target: String, answers: [String], label: Int?, group: String?, referent: String?) {
        self.id = id
        self.row = row
        self.source = source
        self.target = target
        self.answers = answers
        self.label = label
        self.group = group
        self.referent = referent
    }
}

public enum DataLoader {
    /// The file `load` reads for `split` (relative to `dataDir`): the first of the definition's list
    /// that exists there; nil when none does.
    public static func file(_ def: TaskDefinition, split: Split, dataDir: String) -> String? {
        (split == .train ? def.files.train : def.files.validation)
            .first { FileManager.default.fileExists(atPath: (dataDir as NSString).appendingPathComponent($0)) }
    }

    /// Reads `split` of `task` under `dataDir`, taking the first file of the definition's list that exists.
    public static func load(_ def: TaskDefinition, split: Split, dataDir: String) throws -> TaskData {
        let candidates = split == .train ? def.files.train : def.files.validation
        let fm = FileManager.default
        guard let rel = file(def, split: split, dataDir: dataDir) else {
            throw TaskError(file: (dataDir as NSString).appendingPathComponent(candidates[0]),
                            detail: "\(def.task) \(split.rawValue) split not found (looked for \(candidates.joined(separator: ", "))). "
                                + "Run `make fetch-data` (official archives) or `make fetch-data SOURCE=<mirror>`, or pass --data-dir.")
        }
        let path = (dataDir as NSString).appendingPathComponent(rel)
        let isSubset = rel != candidates[0]
        if isSubset {
            FileHandle.standardError.write(Data("warning: \(def.task) \(split.rawValue): using \(rel), a subset of the official split (the full file \(candidates[0]) is missing)\n".utf8))
        }
        guard let data = fm.contents(atPath: path) else { throw TaskError(file: path, detail: "cannot read") }
        // Python's open(encoding="utf-8") and HF's loaders refuse invalid UTF-8; decoding it
        // leniently read a Latin-1 "caf\xe9" as "caf\u{FFFD}" without a word.
        guard let text = String(data: data, encoding: .utf8) else {
            throw TaskError(file: path, detail: Readers.invalidUTF8Location(data) + ": not valid UTF-8 (a file saved in another encoding? convert it to UTF-8)")
        }
        let rows: [Row]
        switch def.reader {
        case "superglue": rows = try Readers.superGLUE(text, path: path)
        case "superglue_multirc": rows = try Readers.multiRC(text, path: path)
        case "superglue_record": rows = try Readers.reCoRD(text, path: path)
        case "glue_tsv": rows = try Readers.tsv(text, path: path)
        case "agnews_csv": rows = try Readers.agNews(text, path: path)
        default: throw TaskError(file: "Registry/\(def.task).yaml", detail: "unknown reader '\(def.reader)'")
        }
        // A ReCoRD query scored without gold answers: the official metric's max() over them fails.
        if split == .validation && def.reader == "superglue_record",
           let r = rows.first(where: { ($0.fields["answers"] as? [String])?.isEmpty ?? true }) {
            throw TaskError(file: path, detail: "line \(r.line): query \(r.id) has no answers, which a validation query needs to be scored (the official metric fails on it)")
        }
        // A declared label that the validation split never has is a class the metrics still count
        // (macro-F1 averages its F1 of 0): most likely a wrong `labels:` list, so it is said.
        if split == .validation {
            let absent = absentLabels(def, rows: rows)
            if !absent.isEmpty {
                FileHandle.standardError.write(Data(("warning: \(def.task) validation: label\(absent.count == 1 ? "" : "s") "
                    + absent.map { "\($0.element) (index \($0.offset))" }.joined(separator: ", ")
                    + " of Registry/\(def.task).yaml never occur\(absent.count == 1 ? "s" : "") in \(rel); metrics that average over the classes (macro-F1) count \(absent.count == 1 ? "it" : "them") with F1 0\n").utf8))
            }
        }
        return TaskData(definition: def, split: split, path: path, relativePath: rel, sha256: SHA256.hex(data), isSubset: isSubset, rows: rows)
    }

    /// The declared labels (value, index) that no row of `rows` has; empty for a task without labels
    /// or rows without them (ReCoRD, a test split).
    public static func absentLabels(_ def: TaskDefinition, rows: [Row]) -> [(element: LabelValue, offset: Int)] {
        guard let labels = def.labels, rows.contains(where: { $0.fields["label"] != nil }) else { return [] }
        let seen = Set(rows.compactMap { $0.fields["label"].flatMap(LabelValue.init(json:)) })
        return labels.enumerated().filter { !seen.contains($0.element) }.map { ($0.element, $0.offset) }
    }

}

// MARK: templates

public enum Templates {
    /// DPT `remove_markup`: `<br>` → space, `<b>`/`</b>` removed.
    static func removeMarkup(_ s: String) -> String {
        s.replacingOccurrences(of: "<br>", with: " ").replacingOccurrences(of: "<b>", with: "").replacingOccurrences(of: "</b>", with: "")
    }

    /// DPT ReCoRD passage: `(\.|\?|\!|\"|\')\n@highlight\n` → `\1 `, then `\n@highlight\n` → `. `.
    static func recordPassage(_ s: String) -> String {
        let re = try! NSRegularExpression(pattern: "(\\.|\\?|\\!|\\\"|\\')\\n@highlight\\n")
        let t = re.stringByReplacingMatches(in: s, range: NSRange(s.startIndex..., in: s), withTemplate: "$1 ")
        return t.replacingOccurrences(of: "\n@highlight\n", with: ". ")
    }

    /// DPT WSC: `^((?:\S+\s){span2_index})(span2_text)` → `\1* \2 *` (span text unescaped, as in the code).
    static func wscMark(_ text: String, index: Int, pronoun: String) -> String {
        markSpan(text, index: index, span: pronoun, mark: "*")
    }

    /// T5's `_mark_span` (DPT's and DePT's code): `re.sub(r"^((?:\S+\s){N})(W)", r"\1M \2 M", text)`
    /// with N = `index`, W = `span` put into the pattern unescaped (a "." in "Mr. Bond" matches any
    /// character, as there) and M = `mark`. Case-sensitive; a span the pattern does not find at
    /// word `index` (other case, punctuation attached, a double space before it) leaves the text
    /// unchanged, as there. A span that is not a valid pattern (Python raises) leaves it unchanged too.
    static func markSpan(_ text: String, index: Int, span: String, mark: String) -> String {
        guard index >= 0, let re = try? NSRegularExpression(pattern: "^((?:\\S+\\s){\(index)})(\(span))") else { return text }
        let m = NSRegularExpression.escapedTemplate(for: mark)
        return re.stringByReplacingMatches(in: text, range: NSRange(text.startIndex..., in: text), withTemplate: "$1\(m) $2 \(m)")
    }

    /// DePT's WSC input (`SuperGLUEWSCFixed.preprocessor` in DePT's src/tasks.py, T5's `wsc`
    /// preprocessing): `* noun *` around span1 at word `span1_index`, then `# pronoun #` around
    /// span2 at `span2_index` + 2 when span1 comes first (the two marks the first step added,
    /// counted whether or not it marked anything, as there), each by `markSpan`.
    static func dePTMark(_ text: String, _ f: [String: Any]) -> String {
        guard let i1 = f["span1_index"] as? Int, let i2 = f["span2_index"] as? Int,
              let s1 = f["span1_text"] as? String, let s2 = f["span2_text"] as? String else { return text }
        let once = markSpan(text, index: i1, span: s1, mark: "*")
        return markSpan(once, index: i2 + (i1 < i2 ? 2 : 0), span: s2, mark: "#")
    }

    /// `template` with `{name}` replaced by `values[name]`. A field the row lacks is named with the
    /// data file and line it came from (`file`, `line`), and the task file whose template reads it.
    static func render(_ template: String, _ values: [String: String], task: String, set: String = "", file: String? = nil, line: Int? = nil,
                       nulls: Set<String> = []) throws -> String {
        var out = ""
        var i = template.startIndex
        while i < template.endIndex {
            if template[i] == "{", let close = template[i...].firstIndex(of: "}") {
                let name = String(template[template.index(after: i)..<close])
                guard let v = values[name] else {
                    if let file, let line {
                        if nulls.contains(name) {
                            throw TaskError(file: file, detail: "line \(line): field '\(name)' is null, and template set '\(set)' of Registry/\(task).yaml reads it")
                        }
                        throw TaskError(file: file, detail: "line \(line): no field '\(name)', which template set '\(set)' of Registry/\(task).yaml reads (the row has: \(values.keys.sorted().joined(separator: ", ")))")
                    }
                    throw TaskError(file: "Registry/\(task).yaml", detail: "template field '{\(name)}' is not available (have: \(values.keys.sorted().joined(separator: ", ")))")
                }
                out += v
                i = template.index(after: close)
            } else {
                out.append(template[i])
                i = template.index(after: i)
            }
        }
        return out
    }

    static func string(_ v: Any?) -> String {
        switch v {
        case let s as String: return s
        case let n as NSNumber: return Readers.isBool(n) ? (n.boolValue ? "true" : "false") : "\(n)"
        case let a as [String]: return a.joined(separator: ", ")
        case nil: return ""
        default: return "\(v!)"
        }
    }

    /// Examples of `data` with template set `set`. Training: WSC keeps label-1 rows (DPT) and
    /// ReCoRD gives one example per gold answer ("<unk>" when none); evaluation: one per row.
    public static func examples(_ data: TaskData, set: TemplateSet, training: Bool, rows: [Int]? = nil) throws -> [Example] {
        let def = data.definition
        let tpl = try def.template(set)
        let pre = Set(def.preprocess ?? [])
        var out: [Example] = []
        for r in rows ?? Array(data.rows.indices) {
            let row = data.rows[r]
            var v: [String: String] = [:]
            // A null is no value (it was rendered as the text "<null>"): a template that reads one
            // is refused by `render`, naming the field; fields nothing reads may be null.
            for (k, x) in row.fields where !(x is NSNull) { v[k] = string(x) }
            let nulls = Set(row.fields.filter { $0.value is NSNull }.map(\.key))
            if pre.contains("multirc_markup") { for k in ["paragraph", "question", "answer"] { v[k] = removeMarkup(v[k] ?? "") } }
            if pre.contains("record_passage") { v["passage"] = recordPassage(v["passage"] ?? "") }
            var labelIndex: Int?
            if let labels = def.labels, let raw = row.fields["label"] {
                guard let lv = LabelValue(json: raw), let li = labels.firstIndex(of: lv) else {
                    throw TaskError(file: data.path, detail: "line \(row.line): label \(Readers.jsonText(raw)) is not one of \(labels)")
                }
                labelIndex = li
                v["label_index"] = "\(li)"
                if let words = tpl.words {
                    guard li < words.count else { throw TaskError(file: "Registry/\(def.task).yaml", detail: "\(set.rawValue).words has no entry for label \(li)") }
                    v["label_word"] = words[li]
                }
            }
            if pre.contains("wsc_mark_pronoun") {
                // An index of another type ("27") left the pronoun unmarked without a word.
                for key in ["span1_index", "span2_index"] where !(row.fields[key] is Int) || Readers.isBool(row.fields[key]) {
                    throw TaskError(file: data.path, detail: "line \(row.line): '\(key)' is \(row.fields[key].map(Readers.jsonText) ?? "missing"), not an integer word index")
                }
                let idx = row.fields["span2_index"] as? Int ?? 0
                v["marked_text"] = wscMark(v["text"] ?? "", index: idx, pronoun: v["span2_text"] ?? "")
                v["dept_text"] = dePTMark(v["text"] ?? "", row.fields)
                if training && def.trainFilter == "label_true" && labelIndex != 1 { continue }
            }
            let answers = (row.fields["answers"] as? [String]) ?? []
            v["answers_joined"] = answers.joined(separator: "; ")
            var targets: [String]
            if def.reader == "superglue_record" {
                // One training row per gold answer where the target is the answer (DPT's code);
                // one per query where it is not ({answers_joined}: ResPT's "; "-joined target,
                // which was repeated for every answer).
                targets = training && tpl.target.contains("{answer}") ? (answers.isEmpty ? ["<unk>"] : answers) : [answers.first ?? "<unk>"]
            } else {
                targets = [""]
            }
            let source = try render(tpl.source, v, task: def.task, set: set.rawValue, file: data.path, line: row.line, nulls: nulls)
            for t in targets {
                var vv = v
                vv["answer"] = def.reader == "superglue_record" ? t : v["answer"]
                let target = try render(tpl.target, vv, task: def.task, set: set.rawValue, file: data.path, line: row.line, nulls: nulls)
                var group: String?
                if case .multirc(let p, let q, _) = row.id { group = "\(p)-\(q)" }
                var e = Example(id: row.id, row: r, source: source, target: target,
                                answers: def.reader == "superglue_record" ? answers : [target],
                                label: labelIndex, group: group, referent: v["span1_text"])
                if def.reader == "superglue_record" { e.entities = row.fields["entities"] as? [String] }
                out.append(e)
            }
        }
        return out
    }
}

extension Example {
    /// The first examples of `examples` up to `limit`, ending at a group's end (MultiRC: a
    /// question's answer rows, `Example.group`; an example without a group is its own): at least
    /// the first group whole, even past `limit`, so a half is never emptied. Without groups, the
    /// first `limit` examples.
    public static func prefixOfWholeGroups(_ examples: [Example], limit: Int) -> [Example] {
        guard limit < examples.count else { return examples }
        var end = limit
        if let g = examples[limit].group, examples[limit - 1].group == g {
            // The limit falls inside a group: back to its first row, or on past it when it is the first.
            while end > 0 && examples[end - 1].group == g { end -= 1 }
            if end == 0 { end = limit; while end < examples.count && examples[end].group == g { end += 1 } }
        }
        return Array(examples.prefix(end))
    }
}
