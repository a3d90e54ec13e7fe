// Whether a partly decoded output can still be read back as a label. Greedy decoding stops a row
// once it cannot (docs/performance.md, "End to end"): every score is unchanged, because a
// prediction that names no label is scored the same however long it is (METHODS §4.4: invalid =
// wrong, or the opposite of the gold label for MultiRC F1a; `Metrics.rows` reads only the label).
import Foundation
import Support

/// The label strings of a verbaliser, and the test whether decoded text can still become one of them.
///
/// A prediction names label `L` when `pyStrip(decode(tokens))` is `L`'s code points (the metrics
/// compare as Python does); it can only do so when the two are canonically equivalent, which is
/// what this test rules out (so it stays sound for the stricter comparison). The test compares
/// *keys*: the text's canonical decomposition (NFD) with every Python whitespace scalar removed. For a decoder whose output is the concatenation of per-token
/// strings with some spaces deleted (SentencePiece's leading-space removal and transformers'
/// `clean_up_tokenization_spaces` delete only spaces before a starter; the byte decoders add
/// U+FFFD for an incomplete trailing byte sequence), the key of the final text starts with the key
/// of the decoded prefix without its last grapheme cluster, and `strip` and `==` leave keys
/// unchanged. So when that key is a prefix of no label's key, no continuation names a label: the
/// row's score is already decided.
public struct LabelReachability: Sendable {
    let keys: [[Unicode.Scalar]]

    /// `labels`: the verbaliser's strings (`TemplateSpec.verbalizer`), compared with stripped predictions.
    public init(labels: [String]) {
        keys = labels.map(Self.key)
    }

    /// NFD scalars of `s` without Python whitespace.
    static func key(_ s: String) -> [Unicode.Scalar] {
        (s as NSString).decomposedStringWithCanonicalMapping.unicodeScalars.filter { !pyIsSpace($0) }
    }

    /// Whether some continuation of the decoded text `text` (the decoder's output for the tokens so
    /// far, special tokens skipped) can still be read back as a label. False only when it provably cannot.
    public func canStillNameALabel(_ text: String) -> Bool {
        var t = text
        if !t.isEmpty { t.removeLast() }   // the last grapheme cluster can still change (combining marks, bytes)
        let k = Self.key(t)
        return keys.contains { $0.count >= k.count && $0.starts(with: k) }
    }
}
