// GPT-2 byte-level BPE: `<|endoftext|>` split out first; pre-tokenizer regex
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// (hand-written matcher, same alternation order); bytes mapped through GPT-2's byte→unicode
// table; merges applied lowest rank first. No normalization, no prefix space, no BOS/EOS: a
// tokenizer.json or tokenizer_config.json that asks for any of them is refused (`checkSupported`).
import Foundation
#if canImport(Support)
import Support  // the fuzz target compiles this file with Support/PyText.swift instead
#endif

public final class BPETokenizer: TextTokenizer {
    let vocab: [String: Int32]
    let idToToken: [Int32: String]
    let ranks: [String: Int]        // "a b" → rank
    var added = AddedTokens()
    let byteToChar: [Character]
    let charToByte: [Character: UInt8]
    /// Ids per word, keyed by its UTF-8 bytes: Swift's String equality treats canonically
    /// equivalent texts ("\u{AC00}" and "\u{1100}\u{1161}") as one key, whose ids differ.
    var cache: [[UInt8]: [Int32]] = [:]

    public var vocabSize: Int { vocab.count }
    public var padId: Int32 { eosId ?? 0 }
    public var eosId: Int32? { vocab["<|endoftext|>"] }
    public var kind: String { "bpe" }

    init(vocab: [String: Int32], merges: [(String, String)]) {
        self.vocab = vocab
        var inv: [Int32: String] = [:]
        for (k, v) in vocab.sorted(by: { $0.key < $1.key }) where inv[v] == nil { inv[v] = k }  // duplicate ids: the first token by name
        idToToken = inv
        var r: [String: Int] = [:]
        for (i, m) in merges.enumerated() where r[m.0 + " " + m.1] == nil { r[m.0 + " " + m.1] = i }
        ranks = r
        // bytes_to_unicode: printable bytes map to themselves, the rest to 256, 257, …
        var table = [Character](repeating: " ", count: 256)
        var n = 0
        for b in 0..<256 {
            let printable = (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b)
            if printable { table[b] = Character(Unicode.Scalar(UInt32(b))!) } else {
                table[b] = Character(Unicode.Scalar(UInt32(256 + n))!)
                n += 1
            }
        }
        byteToChar = table
        var back: [Character: UInt8] = [:]
        for (b, c) in table.enumerated() { back[c] = UInt8(b) }
        charToByte = back
        if let eos = vocab["<|endoftext|>"] { added.add("<|endoftext|>", id: eos, special: true) }
    }

    /// Refuses the parts of a tokenizer.json that would make its ids differ from the plain
    /// GPT-2 pipeline this type implements (tokenizers' ByteLevel BPE: no normalizer, ByteLevel
    /// pre-tokenizer with the GPT-2 regex and no prefix space, nothing added after): a
    /// `Lowercase` normalizer, `add_prefix_space: true`, a `TemplateProcessing` post-processor
    /// (BOS/EOS), BPE dropout, subword affixes, byte fallback, `ignore_merges`, added tokens that
    /// strip whitespace. Each of them changed every input's ids without a word before.
    static func checkSupported(_ obj: [String: Any], path: String) throws {
        func fail(_ what: String) -> TokenizerError {
            TokenizerError(path: path, detail: "\(what) is not supported for byte-level BPE (GPT-2's tokenizer.json has none); its ids would differ from transformers'")
        }
        func flag(_ o: [String: Any], _ key: String) -> Bool { (o[key] as? Bool) ?? false }
        if let n = obj["normalizer"], !(n is NSNull) {
            throw fail("normalizer \((n as? [String: Any])?["type"] as? String ?? "\(n)")")
        }
        guard let pre = obj["pre_tokenizer"] as? [String: Any], pre["type"] as? String == "ByteLevel" else {
            let t = (obj["pre_tokenizer"] as? [String: Any])?["type"] as? String ?? "none"
            throw fail("pre_tokenizer \(t) (only ByteLevel)")
        }
        if flag(pre, "add_prefix_space") { throw fail("pre_tokenizer ByteLevel add_prefix_space true") }
        if let r = pre["use_regex"] as? Bool, !r { throw fail("pre_tokenizer ByteLevel use_regex false") }
        if let post = obj["post_processor"], !(post is NSNull), (post as? [String: Any])?["type"] as? String != "ByteLevel" {
            throw fail("post_processor \((post as? [String: Any])?["type"] as? String ?? "\(post)") (it adds tokens; only ByteLevel, which adds none)")
        }
        let model = obj["model"] as? [String: Any] ?? [:]
        if let d = model["dropout"], !(d is NSNull) { throw fail("model.dropout \(d) (BPE dropout)") }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let v = model[key] as? String, !v.isEmpty { throw fail("model.\(key) '\(v)'") }
        }
        for key in ["byte_fallback", "ignore_merges"] where flag(model, key) { throw fail("model.\(key) true") }
        for t in (obj["added_tokens"] as? [[String: Any]]) ?? [] {
            for key in ["lstrip", "rstrip", "single_word"] where flag(t, key) {
                throw fail("added token '\(t["content"] as? String ?? "?")' with \(key) true")
            }
        }
    }

    /// Refuses tokenizer_config.json settings of GPT-2's transformers classes that change the ids
    /// and that this type does not implement: `add_prefix_space` (a space before the text; the
    /// slow and fast classes differ on text that starts with one) and `add_bos_token` /
    /// `add_eos_token` (tokens added around the text).
    static func checkConfig(_ dir: String) throws {
        let path = (dir as NSString).appendingPathComponent("tokenizer_config.json")
        guard let data = FileManager.default.contents(atPath: path),
              let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return }
        for key in ["add_prefix_space", "add_bos_token", "add_eos_token"] where (obj[key] as? Bool) == true {
            throw TokenizerError(path: path, detail: "\(key) true is not supported for GPT-2's byte-level BPE (transformers would change every input's ids; PromptRepro encodes as with false)")
        }
    }

    convenience init(tokenizerJSON obj: [String: Any], path: String) throws {
        let model = obj["model"] as! [String: Any]
        guard let v = model["vocab"] as? [String: Any] else { throw TokenizerError(path: path, detail: "model.vocab must be an object") }
        var vocab: [String: Int32] = [:]
        for (k, x) in v.sorted(by: { $0.key < $1.key }) {
            guard let i = x as? Int else { throw TokenizerError(path: path, detail: "model.vocab['\(k)'] is not an integer") }
            vocab[k] = try tokenID(i, path: path, "model.vocab['\(k)']")
        }
        var merges: [(String, String)] = []
        for (i, m) in ((model["merges"] as? [Any]) ?? []).enumerated() {
            if let s = m as? String {
                let parts = s.split(separator: " ", maxSplits: 1).map(String.init)
                guard parts.count == 2 else { throw TokenizerError(path: path, detail: "model.merges[\(i)] '\(s)' is not 'a b'") }
                merges.append((parts[0], parts[1]))
            } else if let p = m as? [String], p.count == 2 {
                merges.append((p[0], p[1]))
            } else {
                throw TokenizerError(path: path, detail: "model.merges[\(i)] is neither 'a b' nor [a, b]")
            }
        }
        try BPETokenizer.checkSupported(obj, path: path)
        self.init(vocab: vocab, merges: merges)
        for t in (obj["added_tokens"] as? [[String: Any]]) ?? [] {
            if let c = t["content"] as? String, let id = t["id"] as? Int {
                added.add(c, id: try tokenID(id, path: path, "added_tokens '\(c)'"), special: (t["special"] as? Bool) ?? false)
            }
        }
    }

    convenience init(vocabPath: String, mergesPath: String) throws {
        guard let vd = FileManager.default.contents(atPath: vocabPath),
              let v = try? JSONSerialization.jsonObject(with: vd) as? [String: Int] else {
            throw TokenizerError(path: vocabPath, detail: "not a JSON object of token → id")
        }
        guard let text = try? String(contentsOfFile: mergesPath, encoding: .utf8) else {
            throw TokenizerError(path: mergesPath, detail: "cannot read as UTF-8")
        }
        var merges: [(String, String)] = []
        // Lines as Python's text mode reads them ("\r\n" too), parts split on the scalar U+0020 (a
        // Character-level split keeps a space followed by a combining mark inside a part).
        for (n, line) in pyLines(text).enumerated() {
            if line.hasPrefix("#version") || line.isEmpty { continue }
            let parts = line.unicodeScalars.split(separator: " ").map { String(String.UnicodeScalarView($0)) }
            guard parts.count == 2 else { throw TokenizerError(path: mergesPath, detail: "line \(n + 1): expected 'a b', got '\(line)'") }
            merges.append((parts[0], parts[1]))
        }
        self.init(vocab: try v.mapValues { try tokenID($0, path: vocabPath, "vocab entry") }, merges: merges)
    }

    public func encode(_ text: String) -> [Int32] {
        var ids: [Int32] = []
        for piece in added.split(text) {
            switch piece {
            case .token(let id): ids.append(id)
            case .text(let s):
                for word in BPETokenizer.preTokenize(s) { ids += bpe(word) }
            }
        }
        return ids
    }

    func bpe(_ word: String) -> [Int32] {
        let key = Array(word.utf8)
        if let c = cache[key] { return c }
        let ids = BPETokenizer.merge(word.utf8.map { String(byteToChar[Int($0)]) }, ranks: ranks).compactMap { vocab[$0] }
        if cache.count < 100_000 { cache[key] = ids }
        return ids
    }

    /// GPT-2's merge loop (OpenAI's encoder.py `bpe`: the lowest-ranked adjacent pair, every
    /// occurrence left to right, until no pair has a rank) in O(n log n): adjacent pairs sit in a
    /// min-heap by (rank, position) over a linked list of parts, as HF tokenizers' BPE does. The
    /// same parts as the quadratic loop (BPEMergeTests' reference): a pair made by a merge contains the
    /// merged token, whose merges all rank after the one that made it, so every occurrence of the
    /// current pair is merged, leftmost first, before any pair it creates (the quadratic loop took
    /// 68 s on one 200,000-letter word).
    static func merge(_ initial: [String], ranks: [String: Int]) -> [String] {
        var parts = initial
        let n = parts.count
        guard n > 1 else { return parts }
        var next = Array(1...n), prev = Array(-1..<(n - 1))  // next[n - 1] = n: none
        var alive = [Bool](repeating: true, count: n)
        var heap = PairHeap()
        func push(_ i: Int) {
            let j = next[i]
            guard i >= 0, j < n, let r = ranks[parts[i] + " " + parts[j]] else { return }
            heap.push((r, i, parts[i].utf8.count, parts[j].utf8.count))
        }
        for i in 0..<(n - 1) { push(i) }
        while let (_, i, leftLength, rightLength) = heap.pop() {
            // Stale entries: a side merged away or grown since the pair was pushed.
            guard alive[i], next[i] < n, parts[i].utf8.count == leftLength, parts[next[i]].utf8.count == rightLength else { continue }
            let j = next[i]
            parts[i] += parts[j]
            alive[j] = false
            next[i] = next[j]
            if next[j] < n { prev[next[j]] = i }
            if prev[i] >= 0 { push(prev[i]) }
            push(i)
        }
        var out: [String] = []
        var i = 0
        while i < n { out.append(parts[i]); i = next[i] }
        return out
    }

    static func isLetter(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    static func isNumber(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    static func isSpace(_ s: Unicode.Scalar) -> Bool { s.properties.isWhitespace }

    /// The GPT-2 pre-tokenizer regex, leftmost alternative first.
    static func preTokenize(_ text: String) -> [String] {
        let s = Array(text.unicodeScalars)
        var out: [String] = []
        var i = 0
        func emit(_ a: Int, _ b: Int) { out.append(String(String.UnicodeScalarView(s[a..<b]))) }
        while i < s.count {
            // 's 't 're 've 'm 'll 'd
            if s[i] == "'" {
                let rest = s.count - i
                if rest >= 3 {
                    let two = String(String.UnicodeScalarView(s[(i + 1)..<(i + 3)]))
                    if ["re", "ve", "ll"].contains(two) { emit(i, i + 3); i += 3; continue }
                }
                if rest >= 2, ["s", "t", "m", "d"].contains(String(s[i + 1])) { emit(i, i + 2); i += 2; continue }
            }
            // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`
            let j = s[i] == " " ? i + 1 : i
            if j < s.count {
                let classes: [(Unicode.Scalar) -> Bool] = [isLetter, isNumber, { !isSpace($0) && !isLetter($0) && !isNumber($0) }]
                var matched = false
                for cls in classes where cls(s[j]) {
                    var k = j
                    while k < s.count && cls(s[k]) { k += 1 }
                    emit(i, k)
                    i = k
                    matched = true
                    break
                }
                if matched { continue }
            }
            // `\s+(?!\S)` then `\s+`
            if isSpace(s[i]) {
                var k = i
                while k < s.count && isSpace(s[k]) { k += 1 }
                if k == s.count || k - i == 1 { emit(i, k); i = k } else { emit(i, k - 1); i = k - 1 }
                continue
            }
            emit(i, i + 1)  // unreachable for valid input; keeps progress
            i += 1
        }
        return out
    }

    public func decode(_ ids: [Int32], skipSpecialTokens: Bool) -> String {
        var bytes: [UInt8] = []
        for id in ids {
            if skipSpecialTokens && added.special.contains(id) { continue }
            guard let tok = idToToken[id] ?? added.byId[id] else { continue }
            if added.byId[id] != nil && idToToken[id] == nil { bytes += Array(tok.utf8); continue }
            for ch in tok { if let b = charToByte[ch] { bytes.append(b) } else { bytes += Array(String(ch).utf8) } }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// A binary min-heap of (rank, position, left length, right length), ordered by rank, then
/// position (the leftmost of equal ranks first).
struct PairHeap {
    typealias Entry = (rank: Int, at: Int, left: Int, right: Int)
    var items: [Entry] = []
    static func less(_ a: Entry, _ b: Entry) -> Bool { a.rank != b.rank ? a.rank < b.rank : a.at < b.at }
    mutating func push(_ e: Entry) {
        items.append(e)
        var c = items.count - 1
        while c > 0 {
            let p = (c - 1) / 2
            guard Self.less(items[c], items[p]) else { break }
            items.swapAt(c, p); c = p
        }
    }
    mutating func pop() -> Entry? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var p = 0
            while true {
                let l = 2 * p + 1, r = l + 1
                var m = p
                if l < items.count && Self.less(items[l], items[m]) { m = l }
                if r < items.count && Self.less(items[r], items[m]) { m = r }
                if m == p { break }
                items.swapAt(p, m); p = m
            }
        }
        return top
    }
}

