// SentencePiece Unigram as Hugging Face `tokenizers` runs it for T5:
//   added tokens split out of the raw text → Precompiled normalizer (nmt_nfkc char map, applied
//   per grapheme as tokenizers does) → WhitespaceSplit + Metaspace ("▁" prefix) → Viterbi over
//   piece scores (unknown chars: min score − 10, consecutive unknowns fused) → template (`</s>`).
import Foundation

/// SentencePiece's precompiled char map: [u32 trie size][darts-clone double array][NUL-separated
/// replacement strings]. `transform` returns the replacement for the shortest key that is a prefix.
struct PrecompiledCharsMap {
    let units: [UInt32]
    let normalized: [UInt8]

    init(_ blob: [UInt8], path: String) throws {
        guard blob.count >= 4 else { throw TokenizerError(path: path, detail: "precompiled_charsmap is truncated") }
        let size = Int(UInt32(blob[0]) | UInt32(blob[1]) << 8 | UInt32(blob[2]) << 16 | UInt32(blob[3]) << 24)
        guard size % 4 == 0, 4 + size <= blob.count else {
            throw TokenizerError(path: path, detail: "precompiled_charsmap trie size \(size) exceeds its \(blob.count)-byte blob")
        }
        var u: [UInt32] = []
        u.reserveCapacity(size / 4)
        var i = 4
        while i < 4 + size {
            u.append(UInt32(blob[i]) | UInt32(blob[i + 1]) << 8 | UInt32(blob[i + 2]) << 16 | UInt32(blob[i + 3]) << 24)
            i += 4
        }
        units = u
        normalized = Array(blob[(4 + size)...])
    }

    /// darts-clone common prefix search: values of every key that is a prefix of `key`.
    func firstPrefixValue(_ key: ArraySlice<UInt8>) -> Int? {
        guard !units.isEmpty else { return nil }
        func offset(_ u: UInt32) -> Int { Int((u >> 10) << ((u & (1 << 9)) >> 6)) }
        var pos = offset(units[0])
        for c in key {
            if c == 0 { return nil }
            pos ^= Int(c)
            guard pos < units.count else { return nil }
            let unit = units[pos]
            if unit & ((1 << 31) | 0xFF) != UInt32(c) { return nil }
            pos ^= offset(unit)
            guard pos < units.count else { return nil }
            if (unit >> 8) & 1 == 1 { return Int(units[pos] & ((1 << 31) - 1)) }
        }
        return nil
    }

    func transform(_ chunk: ArraySlice<UInt8>) -> [UInt8]? {
        guard let start = firstPrefixValue(chunk), start < normalized.count else { return nil }
        var end = start
        while end < normalized.count && normalized[end] != 0 { end += 1 }
        return Array(normalized[start..<end])
    }

    /// tokenizers' `Precompiled::normalize_string`.
    func normalize(_ s: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count)
        for g in s {
            let bytes = Array(String(g).utf8)
            if bytes.count < 6, let r = transform(bytes[...]) {
                out += r
                continue
            }
            for scalar in String(g).unicodeScalars {
                let part = Array(String(scalar).utf8)
                if let r = transform(part[...]) { out += r } else { out += part }
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

public final class UnigramTokenizer: TextTokenizer {
    let pieces: [String]
    let scores: [Double]
    let pieceId: [String: Int32]
    let unkId: Int32
    let minScore: Double
    let fuseUnk: Bool
    let charsMap: PrecompiledCharsMap?
    /// Further normalizer steps after the char map (tokenizers `Replace`): (pattern, content).
    var replacements: [(NSRegularExpression, String)] = []
    let whitespaceSplit: Bool
    /// Metaspace options: prepend "▁" always / only to text at offset 0 ("first") / never; split on "▁".
    var prependScheme = "always"
    var metaspaceSplit = true
    let replacement = "▁"
    var added = AddedTokens()
    let suffix: [Int32]          // template specials appended (T5: [</s>])
    let cleanUp: Bool
    // Byte trie over pieces: (node << 8 | byte) → child; terminal node → piece id.
    var trie: [Int: Int] = [:]
    var terminal: [Int: Int32] = [:]
    var nodeCount = 1
    /// Ids per word, keyed by its UTF-8 bytes (canonically equivalent words are different keys).
    var cache: [[UInt8]: [Int32]] = [:]

    public var vocabSize: Int { max(pieces.count, Int((added.byContent.values.max() ?? 0) + 1)) }
    public var padId: Int32 { pieceId["<pad>"] ?? 0 }
    public var eosId: Int32? { pieceId["</s>"] ?? added.byContent["</s>"] }
    public var kind: String { "unigram" }

    init(pieces: [String], scores: [Double], unkId: Int32, fuseUnk: Bool, charsMap: PrecompiledCharsMap?,
         whitespaceSplit: Bool, suffix: [Int32], cleanUp: Bool) {
        self.pieces = pieces
        self.scores = scores
        var ids: [String: Int32] = [:]
        for (i, p) in pieces.enumerated() where ids[p] == nil { ids[p] = Int32(i) }
        pieceId = ids
        self.unkId = unkId
        self.minScore = scores.min() ?? 0
        self.fuseUnk = fuseUnk
        self.charsMap = charsMap
        self.whitespaceSplit = whitespaceSplit
        self.suffix = suffix
        self.cleanUp = cleanUp
        for (i, p) in pieces.enumerated() {
            var node = 0
            for b in p.utf8 {
                let k = node << 8 | Int(b)
                if let c = trie[k] { node = c } else { trie[k] = nodeCount; node = nodeCount; nodeCount += 1 }
            }
            if terminal[node] == nil { terminal[node] = Int32(i) }
        }
    }

    /// From a tokenizer.json object (model.type "Unigram").
    /// `exactScores`: the vocabulary's scores decoded exactly (`Tokenizers.fromJSON`), used
    /// instead of the object's numbers when they are one per piece.
    convenience init(tokenizerJSON obj: [String: Any], path: String, cleanUp: Bool, exactScores: [Double]? = nil) throws {
        let model = obj["model"] as! [String: Any]
        guard let vocab = model["vocab"] as? [[Any]] else { throw TokenizerError(path: path, detail: "model.vocab must be [[piece, score]]") }
        var pieces: [String] = [], scores: [Double] = []
        for (i, e) in vocab.enumerated() {
            guard e.count == 2, let p = e[0] as? String, let s = (e[1] as? NSNumber)?.doubleValue else {
                throw TokenizerError(path: path, detail: "model.vocab[\(i)] must be [string, number]")
            }
            pieces.append(p)
            scores.append(s)
        }
        if let exactScores, exactScores.count == scores.count { scores = exactScores }
        if (model["byte_fallback"] as? Bool) == true {
            throw TokenizerError(path: path, detail: "model.byte_fallback true is not supported")
        }
        guard let unk = model["unk_id"] as? Int else { throw TokenizerError(path: path, detail: "model.unk_id missing") }
        // Normalizer: Precompiled, possibly inside a Sequence.
        var charsMap: PrecompiledCharsMap?
        var replacements: [(NSRegularExpression, String)] = []
        func readNormalizer(_ n: [String: Any]) throws {
            switch n["type"] as? String {
            case "Precompiled":
                guard charsMap == nil, replacements.isEmpty else {
                    throw TokenizerError(path: path, detail: "normalizer: Precompiled must come first and once")
                }
                guard let b64 = n["precompiled_charsmap"] as? String, let data = Data(base64Encoded: b64) else {
                    throw TokenizerError(path: path, detail: "normalizer.precompiled_charsmap is not base64")
                }
                charsMap = try PrecompiledCharsMap(Array(data), path: path)
            case "Replace":
                let pat = n["pattern"] as? [String: Any]
                let content = n["content"] as? String ?? ""
                if let re = pat?["Regex"] as? String {
                    guard let r = try? NSRegularExpression(pattern: re) else {
                        throw TokenizerError(path: path, detail: "normalizer Replace: invalid regex '\(re)'")
                    }
                    replacements.append((r, content))
                } else if let lit = pat?["String"] as? String, !lit.isEmpty {
                    replacements.append((try NSRegularExpression(pattern: NSRegularExpression.escapedPattern(for: lit)), content))
                } else {
                    throw TokenizerError(path: path, detail: "normalizer Replace needs pattern.String or pattern.Regex")
                }
            case "Sequence":
                for x in (n["normalizers"] as? [[String: Any]]) ?? [] { try readNormalizer(x) }
            case let t:
                throw TokenizerError(path: path, detail: "normalizer type '\(t ?? "?")' is not supported for Unigram")
            }
        }
        if let n = obj["normalizer"] as? [String: Any] { try readNormalizer(n) }
        // Pre-tokenizer: WhitespaceSplit + Metaspace, or Metaspace alone (spaces become ▁).
        var wsSplit = false
        var prepend = "always", split = true
        if let pt = obj["pre_tokenizer"] as? [String: Any] {
            let list = (pt["type"] as? String) == "Sequence" ? ((pt["pretokenizers"] as? [[String: Any]]) ?? []) : [pt]
            for x in list {
                switch x["type"] as? String {
                case "WhitespaceSplit": wsSplit = true
                case "Metaspace":
                    if let r = x["replacement"] as? String, r != "▁" {
                        throw TokenizerError(path: path, detail: "pre_tokenizer Metaspace replacement '\(r)' is not supported (only ▁)")
                    }
                    if let scheme = x["prepend_scheme"] as? String {
                        guard ["always", "first", "never"].contains(scheme) else {
                            throw TokenizerError(path: path, detail: "pre_tokenizer Metaspace prepend_scheme '\(scheme)' is unknown")
                        }
                        prepend = scheme
                    } else if let add = x["add_prefix_space"] as? Bool {
                        prepend = add ? "always" : "never"
                    }
                    split = (x["split"] as? Bool) ?? true
                case let t: throw TokenizerError(path: path, detail: "pre_tokenizer type '\(t ?? "?")' is not supported for Unigram")
                }
            }
        }
        var addedTokens = AddedTokens()
        for t in (obj["added_tokens"] as? [[String: Any]]) ?? [] {
            if let c = t["content"] as? String, let id = t["id"] as? Int {
                addedTokens.add(c, id: try tokenID(id, path: path, "added_tokens '\(c)'"), special: (t["special"] as? Bool) ?? false)
            }
        }
        let suffix = try templateSuffix(obj["post_processor"] as? [String: Any], path: path)
        guard unk < pieces.count else { throw TokenizerError(path: path, detail: "model.unk_id \(unk) is outside the \(pieces.count)-piece vocabulary") }
        self.init(pieces: pieces, scores: scores, unkId: try tokenID(unk, path: path, "model.unk_id"), fuseUnk: (model["fuse_unk"] as? Bool) ?? true,
                  charsMap: charsMap, whitespaceSplit: wsSplit, suffix: suffix, cleanUp: cleanUp)
        added = addedTokens
        self.replacements = replacements
        prependScheme = prepend
        metaspaceSplit = split
    }

    /// From a SentencePiece `spiece.model` (protobuf ModelProto), as transformers' T5Tokenizer
    /// sets it up: pieces, 100 `<extra_id_N>` sentinels after them, `</s>` appended.
    convenience init(spieceModel path: String, cleanUp: Bool) throws {
        guard let data = FileManager.default.contents(atPath: path) else { throw TokenizerError(path: path, detail: "cannot read") }
        let proto = try SentencePieceProto(Array(data), path: path)
        var pieces = proto.pieces.map(\.piece)
        let scores = proto.pieces.map { Double($0.score) }
        let unk = proto.pieces.firstIndex { $0.type == 2 } ?? 2
        let base = pieces.count
        var addedTokens = AddedTokens()
        for (i, p) in proto.pieces.enumerated() where p.type == 2 || p.type == 3 {
            addedTokens.add(p.piece, id: Int32(i), special: true)
        }
        for n in 0..<100 {
            let id = Int32(base + 99 - n)
            addedTokens.add("<extra_id_\(n)>", id: id, special: true)
        }
        pieces += (0..<100).map { "<extra_id_\(99 - $0)>" }
        let eos = proto.pieces.firstIndex { $0.piece == "</s>" }.map { [Int32($0)] } ?? []
        self.init(pieces: pieces, scores: scores + [Double](repeating: 0, count: 100), unkId: Int32(unk), fuseUnk: true,
                  charsMap: proto.charsMap.isEmpty ? nil : try PrecompiledCharsMap(proto.charsMap, path: path),
                  whitespaceSplit: true, suffix: eos, cleanUp: cleanUp)
        added = addedTokens
    }

    public func encode(_ text: String) -> [Int32] {
        var ids: [Int32] = []
        for (i, piece) in added.split(text).enumerated() {
            switch piece {
            case .token(let id): ids.append(id)
            case .text(let s): ids += encodePlain(s, atStart: i == 0)
            }
        }
        return ids + suffix
    }

    /// Normalize → pre-tokenize → Viterbi for one segment without added tokens; `atStart` when
    /// the segment begins the input (offset 0, for Metaspace's "first" scheme).
    func encodePlain(_ s: String, atStart: Bool = true) -> [Int32] {
        var normalized = charsMap?.normalize(s) ?? s
        for (re, content) in replacements {
            normalized = re.stringByReplacingMatches(in: normalized, range: NSRange(normalized.startIndex..., in: normalized),
                                                     withTemplate: NSRegularExpression.escapedTemplate(for: content))
        }
        var ids: [Int32] = []
        for word in preTokenize(normalized, atStart: atStart) {
            let key = Array(word.utf8)
            if let c = cache[key] { ids += c; continue }
            let w = viterbi(word)
            if cache.count < 100_000 { cache[key] = w }
            ids += w
        }
        return ids
    }

    /// WhitespaceSplit (optional) then Metaspace, on Unicode scalars as tokenizers (Rust `char`s)
    /// runs them: a whitespace scalar separates words even where Swift joins it with the marks after
    /// it into one Character (" \u{301}": the space and an acute accent), which split on Characters
    /// kept the space inside the word and lost its "▁".
    func preTokenize(_ s: String, atStart: Bool) -> [String] {
        var words: [String] = []
        if whitespaceSplit {
            // WhitespaceSplit first: a word is at offset 0 only if the text has no leading whitespace.
            let leading = s.unicodeScalars.first.map { $0.properties.isWhitespace } ?? false
            var i = 0, cur = String.UnicodeScalarView()
            func flush() {
                if !cur.isEmpty { words += metaspace(String(cur), atOffsetZero: atStart && i == 0 && !leading); i += 1 }
                cur = String.UnicodeScalarView()
            }
            for u in s.unicodeScalars {
                if u.properties.isWhitespace { flush() } else { cur.append(u) }
            }
            flush()
        } else {
            words = metaspace(s, atOffsetZero: atStart)
        }
        return words
    }

    /// tokenizers' Metaspace: spaces → ▁, prepend ▁ per the scheme (unless already there), and
    /// split before every ▁ when `split`; scalar by scalar (see `preTokenize`).
    func metaspace(_ w: String, atOffsetZero: Bool) -> [String] {
        if w.isEmpty { return [] }
        let mark: Unicode.Scalar = "▁"
        var t = String.UnicodeScalarView()
        for u in w.unicodeScalars { t.append(u == " " ? mark : u) }
        let prepend = prependScheme == "always" || (prependScheme == "first" && atOffsetZero)
        if prepend && t.first != mark { t.insert(mark, at: t.startIndex) }
        let s = String(t)
        guard metaspaceSplit else { return s.isEmpty ? [] : [s] }
        var out: [String] = []
        var cur = ""
        for ch in s.unicodeScalars {
            if ch == "▁" && !cur.isEmpty { out.append(cur); cur = "" }
            cur.unicodeScalars.append(ch)
        }
        if !cur.isEmpty { out.append(cur) }
        return out
    }

    /// SentencePiece's optimized Viterbi over UTF-8 bytes (ties keep the earlier candidate).
    func viterbi(_ word: String) -> [Int32] {
        let bytes = Array(word.utf8)
        let n = bytes.count
        if n == 0 { return [] }
        var bestScore = [Double](repeating: 0, count: n + 1)
        var bestStart = [Int](repeating: -1, count: n + 1)
        var bestId = [Int32](repeating: 0, count: n + 1)
        let unkScore = minScore - 10
        var start = 0
        while start < n {
            let base = bestScore[start]
            let charLen = utf8Length(bytes[start])
            var hasSingle = false
            var node = 0, pos = start
            while pos < n, let child = trie[node << 8 | Int(bytes[pos])] {
                node = child
                pos += 1
                if let id = terminal[node] {
                    let cand = scores[Int(id)] + base
                    if bestStart[pos] < 0 || cand > bestScore[pos] {
                        bestScore[pos] = cand
                        bestStart[pos] = start
                        bestId[pos] = id
                    }
                    if pos - start == charLen { hasSingle = true }
                }
            }
            let end = min(n, start + charLen)
            if !hasSingle {
                let cand = unkScore + base
                if bestStart[end] < 0 || cand > bestScore[end] {
                    bestScore[end] = cand
                    bestStart[end] = start
                    bestId[end] = unkId
                }
            }
            start = end
        }
        var out: [Int32] = []
        var end = n
        while end > 0 {
            let id = bestId[end]
            if !(fuseUnk && id == unkId && out.last == unkId) { out.append(id) }
            end = bestStart[end]
        }
        return out.reversed()
    }

    public func decode(_ ids: [Int32], skipSpecialTokens: Bool) -> String {
        var s = ""
        for id in ids {
            if skipSpecialTokens && added.special.contains(id) { continue }
            if let t = added.byId[id], Int(id) >= pieces.count || added.special.contains(id) {
                s += t
            } else if id >= 0 && Int(id) < pieces.count {
                s += pieces[Int(id)]
            }
        }
        var text = s.replacingOccurrences(of: replacement, with: " ")
        if text.hasPrefix(" ") { text.removeFirst() }
        return cleanUp ? cleanUpTokenization(text) : text
    }
}

@inline(__always)
func utf8Length(_ b: UInt8) -> Int {
    if b < 0x80 { return 1 }
    if b >> 5 == 0b110 { return 2 }
    if b >> 4 == 0b1110 { return 3 }
    if b >> 3 == 0b11110 { return 4 }
    return 1
}

/// Special-token ids a TemplateProcessing `single` template puts after `$A` (and rejects ones before).
func templateSuffix(_ pp: [String: Any]?, path: String) throws -> [Int32] {
    guard let pp, (pp["type"] as? String) == "TemplateProcessing" else { return [] }
    let specials = (pp["special_tokens"] as? [String: [String: Any]]) ?? [:]
    var out: [Int32] = []
    var seenSequence = false
    for item in (pp["single"] as? [[String: Any]]) ?? [] {
        if item["Sequence"] != nil { seenSequence = true; continue }
        if let st = item["SpecialToken"] as? [String: Any], let name = st["id"] as? String {
            guard let ids = specials[name]?["ids"] as? [Int] else {
                throw TokenizerError(path: path, detail: "post_processor special token '\(name)' has no ids")
            }
            if !seenSequence { throw TokenizerError(path: path, detail: "post_processor prefix tokens are not supported") }
            out += try ids.map { try tokenID($0, path: path, "post_processor special token '\(name)'") }
        }
    }
    return out
}

/// Minimal protobuf reader for SentencePiece's ModelProto (pieces and the normalizer's charsmap).
struct SentencePieceProto {
    struct Piece { var piece = "", score: Float = 0, type = 1 }
    var pieces: [Piece] = []
    var charsMap: [UInt8] = []

    init(_ b: [UInt8], path: String) throws {
        func fail(_ d: String) -> TokenizerError { TokenizerError(path: path, detail: "spiece.model: \(d)") }
        func varint(_ i: inout Int, _ end: Int) throws -> UInt64 {
            var v: UInt64 = 0, shift: UInt64 = 0
            while true {
                guard i < end, shift < 64 else { throw fail("truncated varint at byte \(i)") }
                let c = b[i]; i += 1
                v |= UInt64(c & 0x7F) << shift
                if c & 0x80 == 0 { return v }
                shift += 7
            }
        }
        func fields(_ start: Int, _ end: Int, _ f: (Int, Int, Int, UInt64) throws -> Void) throws {
            var i = start
            while i < end {
                let key = try varint(&i, end)
                let field = Int(key >> 3), wire = Int(key & 7)
                switch wire {
                case 0: try f(field, wire, i, try varint(&i, end))
                case 1: guard i + 8 <= end else { throw fail("truncated at byte \(i)") }; try f(field, wire, i, 0); i += 8
                case 2:
                    let len = Int(try varint(&i, end))
                    guard len >= 0, i + len <= end else { throw fail("field \(field) length \(len) overruns at byte \(i)") }
                    try f(field, wire, i, UInt64(len)); i += len
                case 5: guard i + 4 <= end else { throw fail("truncated at byte \(i)") }; try f(field, wire, i, 0); i += 4
                default: throw fail("unsupported wire type \(wire) at byte \(i)")
                }
            }
        }
        var ps: [Piece] = []
        var cm: [UInt8] = []
        try fields(0, b.count) { field, wire, at, v in
            if field == 1 && wire == 2 {
                var p = Piece()
                try fields(at, at + Int(v)) { f2, w2, at2, v2 in
                    if f2 == 1 && w2 == 2 { p.piece = String(decoding: b[at2..<(at2 + Int(v2))], as: UTF8.self) }
                    if f2 == 2 && w2 == 5 { p.score = Float(bitPattern: UInt32(b[at2]) | UInt32(b[at2 + 1]) << 8 | UInt32(b[at2 + 2]) << 16 | UInt32(b[at2 + 3]) << 24) }
                    if f2 == 3 && w2 == 0 { p.type = Int(v2) }
                }
                ps.append(p)
            } else if field == 3 && wire == 2 {
                try fields(at, at + Int(v)) { f2, w2, at2, v2 in
                    if f2 == 2 && w2 == 2 { cm = Array(b[at2..<(at2 + Int(v2))]) }
                }
            }
        }
        guard !ps.isEmpty else { throw fail("no pieces found (not a SentencePiece model)") }
        pieces = ps
        charsMap = cm
    }
}
