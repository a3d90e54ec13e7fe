// Python `str` whitespace semantics for code ported from Python reference scripts (SQuAD/ReCoRD
// normalisation, T5's WSC rule, DPT's `.strip()` of decoded predictions). Swift's
// `CharacterSet.whitespacesAndNewlines` differs from `str.isspace()` (it lacks U+001C–U+001F), and
// splitting on " \t\n\r" misses every other Unicode space, so ports use these instead.

/// `str.isspace()` for one scalar: U+0009–U+000D, U+001C–U+001F, U+0020, U+0085, U+00A0, U+1680,
/// U+2000–U+200A, U+2028, U+2029, U+202F, U+205F, U+3000 (Unicode White_Space plus the four
/// information separators; not U+200B). Source: CPython `_PyUnicode_IsWhitespace` (Objects/unicodetype_db.h).
@inline(__always)
public func pyIsSpace(_ u: Unicode.Scalar) -> Bool {
    switch u.value {
    case 0x09...0x0D, 0x1C...0x1F, 0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000: return true
    default: return false
    }
}

/// `s.strip()`: leading and trailing Python whitespace removed.
public func pyStrip(_ s: String) -> String {
    let u = s.unicodeScalars
    guard let first = u.firstIndex(where: { !pyIsSpace($0) }) else { return "" }
    let last = u.lastIndex(where: { !pyIsSpace($0) })!
    return String(u[first...last])
}

/// `s.split()`: runs of Python whitespace separate words; no empty words.
public func pySplit(_ s: String) -> [String] {
    var out: [String] = []
    var cur = String.UnicodeScalarView()
    for c in s.unicodeScalars {
        if pyIsSpace(c) {
            if !cur.isEmpty { out.append(String(cur)); cur = String.UnicodeScalarView() }
        } else {
            cur.append(c)
        }
    }
    if !cur.isEmpty { out.append(String(cur)) }
    return out
}

/// `s[start:end]` with Python's code-point indices (what SuperGLUE's span offsets count), or nil
/// when the range is outside the string.
public func pySlice(_ s: String, _ start: Int, _ end: Int) -> String? {
    let u = Array(s.unicodeScalars)
    guard start >= 0, start <= end, end <= u.count else { return nil }
    var v = String.UnicodeScalarView()
    v.append(contentsOf: u[start..<end])
    return String(v)
}

/// The lines of a text file as Python's text mode reads them (universal newlines: "\n", "\r\n"
/// and a lone "\r" each end a line, counted in Unicode scalars). Swift's `split(separator: "\n")`
/// works on grapheme clusters, where "\r\n" is one Character, so a file with Windows line endings
/// came back as one line. The last line is kept when the text does not end with a newline;
/// empty lines are kept (line numbers in errors stay right).
public func pyLines(_ text: String) -> [String] {
    // On the UTF-8 bytes: 0x0A and 0x0D occur in UTF-8 only as "\n" and "\r" themselves.
    var out: [String] = []
    var text = text
    text.withUTF8 { u in
        var start = 0, i = 0
        while i < u.count {
            let b = u[i]
            if b == 0x0A || b == 0x0D {
                out.append(String(decoding: UnsafeBufferPointer(rebasing: u[start..<i]), as: UTF8.self))
                if b == 0x0D && i + 1 < u.count && u[i + 1] == 0x0A { i += 1 }
                start = i + 1
            }
            i += 1
        }
        if start < u.count { out.append(String(decoding: UnsafeBufferPointer(rebasing: u[start..<u.count]), as: UTF8.self)) }
    }
    return out
}

/// `s.lower()` on code points: each scalar's full lowercase mapping (U+0130 → "i̇"), with Python's
/// one context rule, Final_Sigma: U+03A3 becomes ς (U+03C2) after a cased letter (case-ignorable
/// scalars skipped) when no cased letter follows (the same skipped), else σ. Swift's
/// `lowercased()` maps Σ to σ everywhere. Source: CPython Objects/unicodeobject.c
/// (`lower_ucs4`, `handle_capital_sigma`).
public func pyLower(_ u: [Unicode.Scalar]) -> [Unicode.Scalar] {
    var out: [Unicode.Scalar] = []
    out.reserveCapacity(u.count)
    for (i, c) in u.enumerated() {
        if c.value == 0x3A3 {
            var j = i - 1
            while j >= 0 && u[j].properties.isCaseIgnorable { j -= 1 }
            var final = j >= 0 && u[j].properties.isCased
            if final {
                var k = i + 1
                while k < u.count && u[k].properties.isCaseIgnorable { k += 1 }
                final = k == u.count || !u[k].properties.isCased
            }
            out.append(Unicode.Scalar(final ? 0x3C2 : 0x3C3)!)
        } else if c.isASCII {
            out.append(c.value >= 0x41 && c.value <= 0x5A ? Unicode.Scalar(c.value + 32)! : c)
        } else {
            out.append(contentsOf: c.properties.lowercaseMapping.unicodeScalars)
        }
    }
    return out
}

/// A word character of Python's `re` on str patterns (`\w`, hence `\b`): a letter (Lu, Ll, Lt, Lm,
/// Lo), a scalar with a numeric value (decimal, digit or numeric: ², ½, Ⅻ) or "_". Combining marks
/// and joiners are not word characters (ICU's `\b` counts them). Source: CPython
/// Modules/_sre/sre.c `SRE_UNI_IS_WORD` → `Py_UNICODE_ISALNUM`.
public func pyIsWordCharacter(_ c: Unicode.Scalar) -> Bool {
    if c.isASCII {
        let v = c.value
        return (v >= 0x30 && v <= 0x39) || (v >= 0x41 && v <= 0x5A) || (v >= 0x61 && v <= 0x7A) || v == 0x5F
    }
    switch c.properties.generalCategory {
    case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
    default: return c.properties.numericType != nil
    }
}

/// A word character of the `regex` module (`\w`, hence `\b`), which DPT's released code imports as
/// `re` (metrics.py: `import regex as re`): Unicode TR #18's word class, a scalar that is
/// Alphabetic, a mark (Mn, Mc, Me), a decimal digit (Nd), connector punctuation (Pc) or
/// Join_Control (U+200C, U+200D). Against `pyIsWordCharacter` (stdlib `re`): combining marks and
/// joiners are words here, numbers that are neither decimal digits nor letters (², ½: category No)
/// are not (Ⅻ, Nl, is Alphabetic: a word for both). Checked against the ranges
/// `scripts/regex_word_ranges.py` writes with regex 2026.12.2.
public func regexModuleIsWordCharacter(_ c: Unicode.Scalar) -> Bool {
    if c.isASCII {
        let v = c.value
        return (v >= 0x30 && v <= 0x39) || (v >= 0x41 && v <= 0x5A) || (v >= 0x61 && v <= 0x7A) || v == 0x5F
    }
    let p = c.properties
    if p.isAlphabetic || p.isJoinControl { return true }
    switch p.generalCategory {
    case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
    default: return false
    }
}

/// `sorted(set(strings))`: distinct by code points (Swift's `==` and `Set` treat canonically
/// equivalent strings, "é" and "e\u{301}", as one) and ordered by code points as Python orders str.
public func pySortedUnique(_ strings: [String]) -> [String] {
    var seen = Set<[Unicode.Scalar]>()
    var keep: [[Unicode.Scalar]] = []
    for s in strings {
        let u = Array(s.unicodeScalars)
        if seen.insert(u).inserted { keep.append(u) }
    }
    keep.sort { $0.lexicographicallyPrecedes($1) { $0.value < $1.value } }
    return keep.map { String(String.UnicodeScalarView($0)) }
}
