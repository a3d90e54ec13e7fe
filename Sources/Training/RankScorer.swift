// Rank classification for T5 (issue #20, `--eval-mode rank`): each candidate target is scored by
// its token log-likelihood under teacher forcing, as T0 (Sanh et al. 2022, §"rank classification")
// and lm-eval-harness's `loglikelihood` requests for multiple-choice tasks do; the prediction is
// the argmax. Candidates are tokenized as training targets are (T5: with the closing </s>), so the
// score of "0" is log p("0", </s> | x): a candidate that is a prefix of another does not win for free.
import Foundation
import Models
import Tensor

public enum RankScorer {
    /// Largest decoder logits block (pairs × tokens × vocabulary floats) scored at once: 2^25
    /// floats = 128 MiB.
    static let maxLogitFloats = 1 << 25

    /// Log-likelihoods of every candidate of every row.
    /// - Parameters:
    ///   - encoder: encoder states (B, S, d) of the prompted inputs (`T5Model.encode`).
    ///   - encoderMask: their key mask (B, S).
    ///   - candidates: for each row b < B, its candidates' token ids (each ending with EOS when the
    ///     tokenizer appends it), at least one per row.
    ///   - mean: divide each sum by the candidate's token count (length-normalised ranking).
    /// - Returns: [b][j] = Σ_t log softmax(logits_t)[y_t] over the candidate's tokens (natural log,
    ///   accumulated in Double), or that sum / token count when `mean`.
    /// - Throws: on an empty candidate list or a shape mismatch.
    public static func logLikelihoods(_ m: T5Model, encoder: Tensor, encoderMask: Tensor, candidates: [[[Int32]]],
                                      mean: Bool) throws -> [[Double]] {
        let B = encoder.shape[0], S = encoder.shape[1], d = encoder.shape[2], V = m.config.vocabSize
        guard candidates.count == B, encoderMask.shape == [B, S] else {
            throw TensorError.shapeMismatch(op: "rank scoring", detail: "\(candidates.count) candidate lists for encoder \(encoder.shape), mask \(encoderMask.shape)")
        }
        if let b = candidates.firstIndex(where: { $0.isEmpty || $0.contains(where: \.isEmpty) }) {
            throw TensorError.invalidArgument(op: "rank scoring", detail: "row \(b) has no candidate or an empty one")
        }
        let pairs = candidates.enumerated().flatMap { b, cs in cs.indices.map { (b, $0) } }
        var out = candidates.map { [Double](repeating: 0, count: $0.count) }
        var start = 0
        while start < pairs.count {
            // As many pairs as fit the logits budget (at least one).
            var end = start, T = 0
            while end < pairs.count {
                let t = max(T, candidates[pairs[end].0][pairs[end].1].count)
                if end > start && (end - start + 1) * t * V > maxLogitFloats { break }
                T = t
                end += 1
            }
            let P = end - start
            let enc = Tensor(zeros: [P, S, d]), mask = Tensor(zeros: [P, S])
            var labels = [Int32](repeating: ignoreIndex, count: P * T)
            for (p, (b, j)) in pairs[start..<end].enumerated() {
                (enc.data + p * S * d).update(from: encoder.data + b * S * d, count: S * d)
                (mask.data + p * S).update(from: encoderMask.data + b * S, count: S)
                for (t, y) in candidates[b][j].enumerated() { labels[p * T + t] = y }
            }
            let logits = try m.decode(ids: m.shiftRight(labels, batch: P), batch: P, encoder: enc, encoderMask: mask, drop: .eval)  // (P, T, V)
            let Vl = logits.shape[2]
            for (p, (b, j)) in pairs[start..<end].enumerated() {
                var sum = 0.0
                let n = candidates[b][j].count
                for t in 0..<n {
                    let row = logits.data + (p * T + t) * Vl
                    var mx = row[0]
                    for v in 1..<Vl where row[v] > mx { mx = row[v] }
                    var z = 0.0
                    for v in 0..<Vl { z += exp(Double(row[v] - mx)) }
                    sum += Double(row[Int(labels[p * T + t])] - mx) - log(z)
                }
                out[b][j] = mean ? sum / Double(n) : sum
            }
            start = end
        }
        return out
    }
}
