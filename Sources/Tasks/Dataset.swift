// Readers (official SuperGLUE jsonl, GLUE SST-2 tsv, AG News csv) producing Hugging Face-style
// rows, and template rendering into text-to-text examples. Errors name the file and line.
import Foundation
import Support

public enum Split: String, Sendable { case train, validation }

/// Official row id: an integer, or MultiRC {paragraph, question, answer} / ReCoRD {passage, query}.
public enum RowID: Hashable, CustomStringConvertible, Sendable {
    case index(Int)
    case multirc(paragraph: Int, question: Int, answer: Int)
    case record(passage: Int, query: Int)

    public init?(json: Any) {
        if let n = json as? Int { self = .index(n); return }
        guard let o = json as? [String: Any] else { return nil }
        if let p = o["paragraph"] as? Int, let q = o["question"] as? Int, let a = o["answer"] as? Int {
            self = .multirc(paragraph: p, question: q, answer: a)
        } else if let p = o["passage"] as? Int, let q = o["query"] as? Int {
            self = .record(passage: p, query: q)
        } else { return nil }
    }

    public var json: Any {
        switch self {
        case .index(let i): return i
        case .multirc(let p, let q, let a): return ["paragraph": p, "question": q, "answer": a]
        case .record(let p, let q): return ["passage": p, "query": q]
        }
    }

    public var description: String {
        switch self {
        case .index(let i): return "\(i)"
        case .multirc(let p, let q, let a): return "{paragraph \(p), question \(q), answer \(a)}"
        case .record(let p, let q): return "{passage \(p), query \(q)}"
        }
    }
}

/// One HF-style row: field name → value (strings, numbers, bools, string lists).
public struct Row {
    public var id: RowID
    public var fields: [String: Any]
    public var line: Int  // 1-based line in the source file
}

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
    /// Reads `split` of `task` under `dataDir`, taking the first file of the definition's list that exists.
    public static func load(_ def: TaskDefinition, split: Split, dataDir: String) throws -> TaskData {
        let candidates = split == .train ? def.files.train : def.files.validation
        let fm = FileManager.default
        guard let rel = candidates.first(where: { fm.fileExists(atPath: (dataDir as NSString).appendingPathComponent($0)) }) else {
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
        let text = String(decoding: data, as: UTF8.self)
        let rows: [Row]
        switch def.reader {
        case "superglue": rows = try readSuperGLUE(text, path: path)
        case "superglue_multirc": rows = try readMultiRC(text, path: path)
        case "superglue_record": rows = try readReCoRD(text, path: path)
        case "glue_tsv": rows = try readTSV(text, path: path)
        case "agnews_csv": rows = try readAGNews(text, path: path)
        default: throw TaskError(file: "Registry/\(def.task).yaml", detail: "unknown reader '\(def.reader)'")
        }
        return TaskData(definition: def, split: split, path: path, relativePath: rel, sha256: SHA256.hex(data), isSubset: isSubset, rows: rows)
    }

    static func jsonLines(_ text: String, path: String) throws -> [(Int, [String: Any])] {
        var out: [(Int, [String: Any])] = []
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let l = line.trimmingCharacters(in: .whitespaces)
            if l.isEmpty { continue }
            guard let obj = try? JSONSerialization.jsonObject(with: Data(l.utf8)) as? [String: Any] else {
                throw TaskError(file: path, detail: "line \(i + 1): not a JSON object")
            }
            out.append((i + 1, obj))
        }
        return out
    }

    static func readSuperGLUE(_ text: String, path: String) throws -> [Row] {
        try jsonLines(text, path: path).map { line, obj in
            guard let idx = obj["idx"] as? Int else { throw TaskError(file: path, detail: "line \(line): missing integer 'idx'") }
            var f = obj
            if let t = obj["target"] as? [String: Any] { for (k, v) in t { f[k] = v } }  // WSC spans
            return Row(id: .index(idx), fields: f, line: line)
        }
    }

    static func readMultiRC(_ text: String, path: String) throws -> [Row] {
        var rows: [Row] = []
        for (line, obj) in try jsonLines(text, path: path) {
            guard let pIdx = obj["idx"] as? Int, let passage = obj["passage"] as? [String: Any],
                  let ptext = passage["text"] as? String, let qs = passage["questions"] as? [[String: Any]] else {
                throw TaskError(file: path, detail: "line \(line): expected {idx, passage: {text, questions}}")
            }
            for q in qs {
                guard let qIdx = q["idx"] as? Int, let qtext = q["question"] as? String, let answers = q["answers"] as? [[String: Any]] else {
                    throw TaskError(file: path, detail: "line \(line): malformed question")
                }
                for a in answers {
                    guard let aIdx = a["idx"] as? Int, let atext = a["text"] as? String else {
                        throw TaskError(file: path, detail: "line \(line): malformed answer in question \(qIdx)")
                    }
                    var f: [String: Any] = ["paragraph": ptext, "question": qtext, "answer": atext]
                    if let l = a["label"] { f["label"] = l }
                    rows.append(Row(id: .multirc(paragraph: pIdx, question: qIdx, answer: aIdx), fields: f, line: line))
                }
            }
        }
        return rows
    }

    static func readReCoRD(_ text: String, path: String) throws -> [Row] {
        var rows: [Row] = []
        for (line, obj) in try jsonLines(text, path: path) {
            guard let pIdx = obj["idx"] as? Int, let passage = obj["passage"] as? [String: Any],
                  let ptext = passage["text"] as? String, let qas = obj["qas"] as? [[String: Any]] else {
                throw TaskError(file: path, detail: "line \(line): expected {idx, passage: {text, entities}, qas}")
            }
            let chars = Array(ptext.utf16)
            var entities = Set<String>()
            for e in (passage["entities"] as? [[String: Any]]) ?? [] {
                guard let s = e["start"] as? Int, let en = e["end"] as? Int, s >= 0, en < chars.count, s <= en else {
                    throw TaskError(file: path, detail: "line \(line): entity span outside the passage")
                }
                entities.insert(String(utf16CodeUnits: Array(chars[s...en]), count: en - s + 1))
            }
            for qa in qas {
                guard let qIdx = qa["idx"] as? Int, let query = qa["query"] as? String else {
                    throw TaskError(file: path, detail: "line \(line): malformed query")
                }
                let answers = Set(((qa["answers"] as? [[String: Any]]) ?? []).compactMap { $0["text"] as? String }).sorted()
                rows.append(Row(id: .record(passage: pIdx, query: qIdx),
                                fields: ["passage": ptext, "query": query, "entities": entities.sorted(), "answers": answers], line: line))
            }
        }
        return rows
    }

    static func readTSV(_ text: String, path: String) throws -> [Row] {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        while lines.last == "" { lines.removeLast() }
        guard let header = lines.first?.split(separator: "\t").map(String.init), header.contains("sentence"), header.contains("label") else {
            throw TaskError(file: path, detail: "line 1: expected a header with 'sentence' and 'label' columns")
        }
        var rows: [Row] = []
        for (i, l) in lines.dropFirst().enumerated() {
            let cols = l.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard cols.count == header.count else {
                throw TaskError(file: path, detail: "line \(i + 2): \(cols.count) columns, header has \(header.count)")
            }
            var f: [String: Any] = [:]
            for (h, c) in zip(header, cols) { f[h] = c }
            f["sentence"] = (f["sentence"] as! String).trimmingCharacters(in: .whitespaces)
            guard let lab = Int(f["label"] as! String) else { throw TaskError(file: path, detail: "line \(i + 2): label '\(f["label"]!)' is not an integer") }
            f["label"] = lab
            rows.append(Row(id: .index(i), fields: f, line: i + 2))
        }
        return rows
    }

    static func readAGNews(_ text: String, path: String) throws -> [Row] {
        var rows: [Row] = []
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: true).enumerated() {
            let cols = try csvFields(String(line), path: path, line: i + 1)
            guard cols.count == 3, let lab = Int(cols[0]), (1...4).contains(lab) else {
                throw TaskError(file: path, detail: "line \(i + 1): expected \"class(1-4)\",\"title\",\"description\"")
            }
            rows.append(Row(id: .index(i), fields: ["label": lab, "title": cols[1], "description": cols[2],
                                                    "text": cols[1] + " " + cols[2]], line: i + 1))
        }
        return rows
    }

    /// RFC 4180 fields of one line ("" escapes a quote).
    static func csvFields(_ line: String, path: String, line n: Int) throws -> [String] {
        var out: [String] = [], cur = "", quoted = false, wasQuoted = false
        let chars = Array(line)
        var i = 0
        while i < chars.count {
            let c = chars[i]
            if quoted {
                if c == "\"" {
                    if i + 1 < chars.count && chars[i + 1] == "\"" { cur.append("\""); i += 1 } else { quoted = false }
                } else { cur.append(c) }
            } else if c == "\"" && cur.isEmpty && !wasQuoted {
                quoted = true
                wasQuoted = true
            } else if c == "," {
                out.append(cur); cur = ""; wasQuoted = false
            } else { cur.append(c) }
            i += 1
        }
        if quoted { throw TaskError(file: path, detail: "line \(n): unterminated quoted field") }
        out.append(cur)
        return out
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
        guard let re = try? NSRegularExpression(pattern: "^((?:\\S+\\s){\(index)})(\(pronoun))") else { return text }
        return re.stringByReplacingMatches(in: text, range: NSRange(text.startIndex..., in: text), withTemplate: "$1* $2 *")
    }

    /// T5/DePT WSC style: `* noun *` around span1 and `# pronoun #` around span2 (by word index).
    static func dePTMark(_ text: String, _ f: [String: Any]) -> String {
        var words = text.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        guard let i1 = f["span1_index"] as? Int, let i2 = f["span2_index"] as? Int,
              let s1 = f["span1_text"] as? String, let s2 = f["span2_text"] as? String,
              i1 < words.count, i2 < words.count else { return text }
        let n1 = s1.split(separator: " ").count, n2 = s2.split(separator: " ").count
        let marks = [(i1, n1, "*"), (i2, n2, "#")].sorted { $0.0 > $1.0 }
        for (i, n, m) in marks where i + n <= words.count {
            words.insert(m, at: i + n)
            words.insert(m, at: i)
        }
        return words.joined(separator: " ")
    }

    static func render(_ template: String, _ values: [String: String], task: String) throws -> String {
        var out = ""
        var i = template.startIndex
        while i < template.endIndex {
            if template[i] == "{", let close = template[i...].firstIndex(of: "}") {
                let name = String(template[template.index(after: i)..<close])
                guard let v = values[name] else {
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
        case let n as NSNumber: return String(describing: type(of: v!)).contains("Boolean") ? (n.boolValue ? "true" : "false") : "\(n)"
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
            for (k, x) in row.fields { v[k] = string(x) }
            if pre.contains("multirc_markup") { for k in ["paragraph", "question", "answer"] { v[k] = removeMarkup(v[k] ?? "") } }
            if pre.contains("record_passage") { v["passage"] = recordPassage(v["passage"] ?? "") }
            var labelIndex: Int?
            if let labels = def.labels, let raw = row.fields["label"] {
                guard let lv = LabelValue(json: raw), let li = labels.firstIndex(of: lv) else {
                    throw TaskError(file: data.path, detail: "line \(row.line): label \(raw) is not one of \(labels)")
                }
                labelIndex = li
                v["label_index"] = "\(li)"
                if let words = tpl.words {
                    guard li < words.count else { throw TaskError(file: "Registry/\(def.task).yaml", detail: "\(set.rawValue).words has no entry for label \(li)") }
                    v["label_word"] = words[li]
                }
            }
            if pre.contains("wsc_mark_pronoun") {
                let idx = row.fields["span2_index"] as? Int ?? 0
                v["marked_text"] = wscMark(v["text"] ?? "", index: idx, pronoun: v["span2_text"] ?? "")
                v["dept_text"] = dePTMark(v["text"] ?? "", row.fields)
                if training && def.trainFilter == "label_true" && labelIndex != 1 { continue }
            }
            let answers = (row.fields["answers"] as? [String]) ?? []
            v["answers_joined"] = answers.joined(separator: "; ")
            var targets: [String]
            if def.reader == "superglue_record" {
                targets = training ? (answers.isEmpty ? ["<unk>"] : answers) : [answers.first ?? "<unk>"]
            } else {
                targets = [""]
            }
            let source = try render(tpl.source, v, task: def.task)
            for t in targets {
                var vv = v
                vv["answer"] = def.reader == "superglue_record" ? t : v["answer"]
                let target = try render(tpl.target, vv, task: def.task)
                var group: String?
                if case .multirc(let p, let q, _) = row.id { group = "\(p)-\(q)" }
                out.append(Example(id: row.id, row: r, source: source, target: target,
                                   answers: def.reader == "superglue_record" ? answers : [target],
                                   label: labelIndex, group: group, referent: v["span1_text"]))
            }
        }
        return out
    }
}
