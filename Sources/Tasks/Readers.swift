// Readers for the official formats (SuperGLUE jsonl, GLUE SST-2 tsv, AG News csv) producing
// Hugging Face-style rows. Foundation only, so the libFuzzer target in fuzz/ compiles this file
// directly. Every error names the file and the line.
import Foundation
#if canImport(Support)
import Support  // the fuzz target compiles this file with Support/PyText.swift instead
#endif

public struct TaskError: Error, CustomStringConvertible {
    public let file: String
    public let detail: String
    public init(file: String, detail: String) {
        self.file = file
        self.detail = detail
    }
    public var description: String { "\(file): \(detail)" }
}

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

public enum Readers {
    /// Parses one JSON object per line. Foundation's parser takes a trailing comma (`{"a": 1, }`),
    /// which Python's json refuses: such a line is refused too. (A null is refused where a
    /// template reads it: `Templates.examples`.)
    public static func jsonLines(_ text: String, path: String) throws -> [(Int, [String: Any])] {
        var out: [(Int, [String: Any])] = []
        for (i, line) in pyLines(text).enumerated() {
            let l = line.trimmingCharacters(in: .whitespaces)
            if l.isEmpty { continue }
            guard let obj = try? JSONSerialization.jsonObject(with: Data(l.utf8)) as? [String: Any] else {
                throw TaskError(file: path, detail: "line \(i + 1): not a JSON object")
            }
            if let at = trailingCommaOffset(l) {
                throw TaskError(file: path, detail: "line \(i + 1): not valid JSON (a comma before a closing bracket at character \(at + 1))")
            }
            out.append((i + 1, obj))
        }
        return out
    }

    /// The UTF-8 offset of a comma that is followed (after whitespace) by `}` or `]` outside a
    /// string, or nil.
    static func trailingCommaOffset(_ s: String) -> Int? {
        let b = Array(s.utf8)
        var inString = false, escaped = false
        for (i, c) in b.enumerated() {
            if inString {
                if escaped { escaped = false } else if c == UInt8(ascii: "\\") { escaped = true } else if c == UInt8(ascii: "\"") { inString = false }
                continue
            }
            if c == UInt8(ascii: "\"") { inString = true; continue }
            guard c == UInt8(ascii: ",") else { continue }
            var j = i + 1
            while j < b.count, [0x20, 0x09, 0x0A, 0x0D].contains(b[j]) { j += 1 }
            if j < b.count, b[j] == UInt8(ascii: "}") || b[j] == UInt8(ascii: "]") { return i }
        }
        return nil
    }

    /// "line L, byte B" of the first byte sequence of `data` that is not UTF-8.
    public static func invalidUTF8Location(_ data: Data) -> String {
        let bytes = [UInt8](data)
        var line = 1, lineStart = 0, i = 0
        while i < bytes.count {
            let c = bytes[i]
            let n = c < 0x80 ? 1 : c >> 5 == 0b110 ? 2 : c >> 4 == 0b1110 ? 3 : c >> 3 == 0b11110 ? 4 : 0
            if n == 0 || i + n > bytes.count || String(bytes: bytes[i..<(i + n)], encoding: .utf8) == nil {
                return "line \(line), byte \(i - lineStart + 1) (0x\(String(c, radix: 16)))"
            }
            if c == 0x0A { line += 1; lineStart = i + 1 }
            i += n
        }
        return "line \(line)"
    }

    /// Whether a JSON value is a bool (on Linux an NSNumber whose class names a Boolean).
    public static func isBool(_ v: Any?) -> Bool {
        guard let v, v is NSNumber else { return false }
        return String(describing: type(of: v)).contains("Boolean")
    }

    /// A JSON value as JSON text, for messages: true/false for bools (which print as 1/0),
    /// strings quoted.
    public static func jsonText(_ v: Any) -> String {
        if isBool(v), let n = v as? NSNumber { return n.boolValue ? "true" : "false" }
        if let s = v as? String { return "\"\(s)\"" }
        if v is NSNull { return "null" }
        return "\(v)"
    }

    public static func superGLUE(_ text: String, path: String) throws -> [Row] {
        try jsonLines(text, path: path).map { line, obj in
            guard let idx = obj["idx"] as? Int else { throw TaskError(file: path, detail: "line \(line): missing integer 'idx'") }
            var f = obj
            if let t = obj["target"] as? [String: Any] {  // WSC spans
                if let key = t.keys.sorted().first(where: { t[$0] is NSNull }) {
                    throw TaskError(file: path, detail: "line \(line): field 'target.\(key)' is null")
                }
                for (k, v) in t { f[k] = v }
            }
            return Row(id: .index(idx), fields: f, line: line)
        }
    }

    public static func multiRC(_ text: String, path: String) throws -> [Row] {
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

    public static func reCoRD(_ text: String, path: String) throws -> [Row] {
        var rows: [Row] = []
        for (line, obj) in try jsonLines(text, path: path) {
            guard let pIdx = obj["idx"] as? Int, let passage = obj["passage"] as? [String: Any],
                  let ptext = passage["text"] as? String, let qas = obj["qas"] as? [[String: Any]] else {
                throw TaskError(file: path, detail: "line \(line): expected {idx, passage: {text, entities}, qas}")
            }
            // Spans count code points, inclusive end (the official loaders take text[start:end + 1] of a Python str).
            let scalars = Array(ptext.unicodeScalars)
            var entities: [String] = []
            guard let ents = passage["entities"] as? [[String: Any]] else {
                throw TaskError(file: path, detail: "line \(line): passage has no 'entities' list")
            }
            for e in ents {
                for key in ["start", "end"] where !(e[key] is Int) || isBool(e[key]) {
                    throw TaskError(file: path, detail: "line \(line): entity '\(key)' is \(e[key].map(jsonText) ?? "missing"), not an integer code point offset")
                }
                guard let s = e["start"] as? Int, let en = e["end"] as? Int, s >= 0, en < scalars.count, s <= en else {
                    throw TaskError(file: path, detail: "line \(line): entity span \(e["start"] ?? "?")...\(e["end"] ?? "?") outside the passage of \(scalars.count) code points")
                }
                var v = String.UnicodeScalarView()
                v.append(contentsOf: scalars[s...en])
                entities.append(String(v))
            }
            // HF's super_glue loader: sorted(set(...)) of Python strs, by code points (`pySortedUnique`).
            entities = pySortedUnique(entities)
            for qa in qas {
                guard let qIdx = qa["idx"] as? Int, let query = qa["query"] as? String else {
                    throw TaskError(file: path, detail: "line \(line): malformed query")
                }
                guard let answerList = qa["answers"] as? [[String: Any]] else {
                    throw TaskError(file: path, detail: "line \(line): query \(qIdx) has no 'answers' list")
                }
                let answers = pySortedUnique(answerList.compactMap { $0["text"] as? String })
                rows.append(Row(id: .record(passage: pIdx, query: qIdx),
                                fields: ["passage": ptext, "query": query, "entities": entities, "answers": answers], line: line))
            }
        }
        return rows
    }

    public static func tsv(_ text: String, path: String) throws -> [Row] {
        var lines = pyLines(text)
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
            // The sentence as the file has it: GLUE's SST-2 sentences end with a space, which HF's
            // glue/sst2 (PEZ, LoPT) keeps; the stripped "journey ." + ". It was" became GPT-2's rare
            // "Ġ.." token where "journey . " gives "Ġ. Ġ." (every dev row's ids differed).
            guard let lab = Int(f["label"] as! String) else { throw TaskError(file: path, detail: "line \(i + 2): label '\(f["label"]!)' is not an integer") }
            f["label"] = lab
            rows.append(Row(id: .index(i), fields: f, line: i + 2))
        }
        return rows
    }

    public static func agNews(_ text: String, path: String) throws -> [Row] {
        var rows: [Row] = []
        for (i, line) in pyLines(text).enumerated() where !line.isEmpty {
            let cols = try csvFields(line, path: path, line: i + 1)
            guard cols.count == 3, let lab = Int(cols[0]), (1...4).contains(lab) else {
                throw TaskError(file: path, detail: "line \(i + 1): expected \"class(1-4)\",\"title\",\"description\"")
            }
            rows.append(Row(id: .index(i), fields: ["label": lab, "title": cols[1], "description": cols[2],
                                                    "text": cols[1] + " " + cols[2]], line: i + 1))
        }
        return rows
    }

    /// The fields of one line as Hugging Face's ag_news loader reads a well-formed line: Python's
    /// `csv.reader` with `quotechar='"'`, `delimiter=','` and `skipinitialspace=True` ("" escapes a
    /// quote; spaces right after a delimiter, or at the line's start, are skipped before a field).
    /// Read scalar by scalar, as Python reads code points: a quote followed by a combining mark is
    /// one Swift Character, which read as characters was no quote at all (the field kept its
    /// quotes). Unlike Python, a quoted field is not continued over a line break, and a quote left
    /// open at the line's end is refused (Python's lenient reader ends the field there).
    public static func csvFields(_ line: String, path: String, line n: Int) throws -> [String] {
        var out: [String] = [], cur = String.UnicodeScalarView(), quoted = false, started = false
        let chars = Array(line.unicodeScalars)
        var i = 0
        while i < chars.count {
            let c = chars[i]
            if quoted {
                if c == "\"" {
                    if i + 1 < chars.count && chars[i + 1] == "\"" { cur.append("\""); i += 1 } else { quoted = false }
                } else { cur.append(c) }
            } else if c == " " && !started {
                // skipinitialspace: a space before the field's first character
            } else if c == "\"" && !started {
                quoted = true
                started = true
            } else if c == "," {
                out.append(String(cur)); cur = String.UnicodeScalarView(); started = false
            } else { cur.append(c); started = true }
            i += 1
        }
        if quoted { throw TaskError(file: path, detail: "line \(n): unterminated quoted field") }
        out.append(String(cur))
        return out
    }
}
