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
