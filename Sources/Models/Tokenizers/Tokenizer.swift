// Tokenizers that reproduce Hugging Face `tokenizers` ids: T5 SentencePiece Unigram
// (tokenizer.json or spiece.model), GPT-2 byte-level BPE (tokenizer.json or vocab.json +
// merges.txt), and a ByT5-style byte tokenizer for the embedded smoke backbone.
import Foundation
#if canImport(Support)
import Support  // the fuzz target compiles this file with Support/PyText.swift and Support/Links.swift instead
#endif

public struct TokenizerError: Error, CustomStringConvertible {
    public let path: String
    public let detail: String
    public var description: String { "\(path): \(detail)" }
}

public protocol TextTokenizer: AnyObject {
    /// Ids as `tokenizer(text)["input_ids"]` (special tokens in the text matched verbatim; T5 appends `</s>`).
    func encode(_ text: String) -> [Int32]
    /// Text of `ids`; with `skipSpecialTokens` the special ids (pad, eos, unk, sentinels…) are dropped.
    func decode(_ ids: [Int32], skipSpecialTokens: Bool) -> String
    var vocabSize: Int { get }
    var padId: Int32 { get }
    var eosId: Int32? { get }
    var kind: String { get }
}

/// A token id read from a file: 0 ≤ id < 2³⁰, else an error naming the file and the field.
func tokenID(_ v: Int, path: String, _ what: String) throws -> Int32 {
    guard v >= 0, v < 1 << 30 else { throw TokenizerError(path: path, detail: "\(what): id \(v) is out of range") }
    return Int32(v)
}

/// Special tokens found verbatim in raw text before normalization (leftmost, longest match).
struct AddedTokens {
    var byContent: [String: Int32] = [:]
    var byId: [Int32: String] = [:]
    var special: Set<Int32> = []
    var maxLength = 0

    mutating func add(_ content: String, id: Int32, special isSpecial: Bool) {
        byContent[content] = id
        byId[id] = content
        if isSpecial { special.insert(id) }
        maxLength = max(maxLength, content.unicodeScalars.count)
    }

    enum Piece { case text(String), token(Int32) }

    /// Splits `text` into plain segments and added-token ids.
    func split(_ text: String) -> [Piece] {
        if byContent.isEmpty || text.isEmpty { return [.text(text)] }
        let scalars = Array(text.unicodeScalars)
        var out: [Piece] = []
        var start = 0, i = 0
        let firsts = Set(byContent.keys.compactMap { $0.unicodeScalars.first })
        while i < scalars.count {
            if firsts.contains(scalars[i]) {
                var matched: (Int, Int32)? = nil
                var candidate = String.UnicodeScalarView()
                for j in i..<min(scalars.count, i + maxLength) {
                    candidate.append(scalars[j])
                    if let id = byContent[String(candidate)] { matched = (j + 1, id) }
                }
                if let (end, id) = matched {
                    if start < i { out.append(.text(String(String.UnicodeScalarView(scalars[start..<i])))) }
                    out.append(.token(id))
                    i = end
                    start = end
                    continue
                }
            }
            i += 1
        }
        if start < scalars.count { out.append(.text(String(String.UnicodeScalarView(scalars[start...])))) }
        return out
    }
}

public enum Tokenizers {
    /// The file `load(directory:)` reads the tokenizer from (the same order: a ByT5
    /// tokenizer_config.json, tokenizer.json, spiece.model, vocab.json), for messages; nil when none.
    public static func sourceFile(directory dir: String) -> String? {
        func p(_ f: String) -> String { (dir as NSString).appendingPathComponent(f) }
        if let data = FileManager.default.contents(atPath: p("tokenizer_config.json")),
           let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
           (obj["tokenizer_class"] as? String) == "ByT5Tokenizer" { return p("tokenizer_config.json") }
        return ["tokenizer.json", "spiece.model", "vocab.json"].map(p).first { FileManager.default.fileExists(atPath: $0) }
    }

    /// Loads the tokenizer in `dir`: tokenizer.json (Unigram or BPE), else spiece.model, else
    /// vocab.json + merges.txt; `byte` (or a config with "tokenizer_class": "ByT5Tokenizer") gives bytes.
    /// - Throws: `TokenizerError` naming the file: none found, a dangling link, a malformed file.
    public static func load(directory dir: String) throws -> TextTokenizer {
        if dir == "byte" { return ByteTokenizer() }
        let fm = FileManager.default
        func p(_ f: String) -> String { (dir as NSString).appendingPathComponent(f) }
        // A file this load would read that is a dangling link (an HF cache blob gone) read as "not
        // found" (and the next file in order was used): tokenizer_config.json, which every load
        // reads when present, and the first of the files below that is there or is such a link
        // (merges.txt with vocab.json). Files a load does not read are not checked.
        func refuseDangling(_ f: String) throws {
            if let target = danglingLinkTarget(p(f)) { throw TokenizerError(path: p(f), detail: danglingLinkProblem(target)) }
        }
        try refuseDangling("tokenizer_config.json")
        if let data = fm.contents(atPath: p("tokenizer_config.json")),
           let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
           (obj["tokenizer_class"] as? String) == "ByT5Tokenizer" {
            return ByteTokenizer(addEOS: (obj["add_eos_token"] as? Bool) ?? true)  // reads no other file
        }
        for f in ["tokenizer.json", "spiece.model", "vocab.json"] {
            try refuseDangling(f)
            if fm.fileExists(atPath: p(f)) {
                if f == "vocab.json" { try refuseDangling("merges.txt") }
                break
            }
        }
        if fm.fileExists(atPath: p("tokenizer.json")) {
            let path = p("tokenizer.json")
            guard let data = fm.contents(atPath: path) else { throw TokenizerError(path: path, detail: "cannot read") }
            let tok = try fromJSON(data, path: path, cleanUp: cleanUpSetting(dir))
            if tok is BPETokenizer { try BPETokenizer.checkConfig(dir) }
            return tok
        }
        if fm.fileExists(atPath: p("spiece.model")) {
            return try UnigramTokenizer(spieceModel: p("spiece.model"), cleanUp: cleanUpSetting(dir))
        }
        if fm.fileExists(atPath: p("vocab.json")) && fm.fileExists(atPath: p("merges.txt")) {
            try BPETokenizer.checkConfig(dir)
            return try BPETokenizer(vocabPath: p("vocab.json"), mergesPath: p("merges.txt"))
        }
        throw TokenizerError(path: dir, detail: "no tokenizer.json, spiece.model or vocab.json + merges.txt found")
    }

    /// A tokenizer from the bytes of a tokenizer.json (Unigram or BPE model); errors name `path`.
    public static func fromJSON(_ data: Data, path: String, cleanUp: Bool = true) throws -> TextTokenizer {
        let obj: [String: Any]
        do {
            guard let o = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw TokenizerError(path: path, detail: "not a JSON object")
            }
            obj = o
        } catch let e as TokenizerError { throw e } catch {
            throw TokenizerError(path: path, detail: "malformed JSON: \(error.localizedDescription)")
        }
        guard let model = obj["model"] as? [String: Any], let type = model["type"] as? String else {
            throw TokenizerError(path: path, detail: "missing 'model.type'")
        }
        switch type {
        case "Unigram":
            // The piece scores decide ties between segmentations; JSONSerialization reads numbers
            // imprecisely on this platform (12,718 of t5's 32,100 scores off by an ulp or more,
            // "lll" segmented [l][ll] instead of [ll][l]), JSONDecoder exactly (as Double("…")).
            let scores = try? JSONDecoder().decode(UnigramScores.self, from: data).model.vocab.map(\.score)
            return try UnigramTokenizer(tokenizerJSON: obj, path: path, cleanUp: cleanUp, exactScores: scores)
        case "BPE": return try BPETokenizer(tokenizerJSON: obj, path: path)
        default: throw TokenizerError(path: path, detail: "model.type '\(type)' is not supported (Unigram, BPE)")
        }
    }

    /// tokenizer.json's `model.vocab` scores, decoded exactly (see `fromJSON`).
    struct UnigramScores: Decodable {
        struct Model: Decodable { let vocab: [Entry] }
        struct Entry: Decodable {
            let score: Double
            init(from decoder: Decoder) throws {
                var c = try decoder.unkeyedContainer()
                _ = try c.decode(String.self)
                score = try c.decode(Double.self)
            }
        }
        let model: Model
    }

    /// transformers' `clean_up_tokenization_spaces` (true unless tokenizer_config.json says otherwise).
    /// The default is transformers 4's, which the papers' code ran (DPT pins 4.20.1, and its
    /// `batch_decode` cleaned up T5's output: "Hello , world ." → "Hello, world."); transformers 5
    /// defaults to false when tokenizer_config.json has no such key, as T5's has not. Predictions
    /// are decoded this way, so a generated answer with a space before punctuation is scored as the
    /// papers' code scored it. It applies to T5's (Unigram) tokenizers only: GPT-2's byte-level BPE
    /// decodes without clean-up whatever its tokenizer_config.json says, as transformers 5 does
    /// (4.x would clean up); no score reads GPT-2's decoded text (its tasks rank label words).
    static func cleanUpSetting(_ dir: String) -> Bool {
        let path = (dir as NSString).appendingPathComponent("tokenizer_config.json")
        guard let data = FileManager.default.contents(atPath: path),
              let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let v = obj["clean_up_tokenization_spaces"] as? Bool else { return true }
        return v
    }
}

/// transformers' `clean_up_tokenization`: removes spaces before punctuation and contractions.
func cleanUpTokenization(_ s: String) -> String {
    var t = s
    for (a, b) in [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                   (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")] {
        t = t.replacingOccurrences(of: a, with: b)
    }
    return t
}

/// ByT5-style bytes: id = byte + 3 (pad 0, eos 1, unk 2), `</s>` appended.
public final class ByteTokenizer: TextTokenizer {
    let addEOS: Bool
    public init(addEOS: Bool = true) { self.addEOS = addEOS }
    public var vocabSize: Int { 259 }
    public var padId: Int32 { 0 }
    public var eosId: Int32? { 1 }
    public var kind: String { "byte" }

    public func encode(_ text: String) -> [Int32] {
        var ids: [Int32] = []
        for piece in specials.split(text) {
            switch piece {
            case .token(let id): ids.append(id)
            case .text(let s): ids += s.utf8.map { Int32($0) + 3 }
            }
        }
        return addEOS ? ids + [1] : ids
    }

    let specials: AddedTokens = {
        var a = AddedTokens()
        a.add("<pad>", id: 0, special: true)
        a.add("</s>", id: 1, special: true)
        a.add("<unk>", id: 2, special: true)
        return a
    }()

    public func decode(_ ids: [Int32], skipSpecialTokens: Bool) -> String {
        var bytes: [UInt8] = []
        var out = ""
        for id in ids {
            if id >= 3 && id < 259 { bytes.append(UInt8(id - 3)); continue }
            if skipSpecialTokens { continue }
            out += String(decoding: bytes, as: UTF8.self)
            bytes = []
            out += ["<pad>", "</s>", "<unk>"][Int(max(0, min(id, 2)))]
        }
        return out + String(decoding: bytes, as: UTF8.self)
    }
}
