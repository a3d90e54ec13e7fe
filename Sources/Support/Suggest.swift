// Suggestions for mistyped names in errors.

/// " (did you mean 'x'?)" for the closest candidate by optimal-string-alignment distance
/// (insertions, deletions, substitutions, adjacent transpositions), or "" when none is close.
public func didYouMean(_ s: String, _ candidates: [String]) -> String {
    func dist(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var d = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { d[i][0] = i }
        for j in 0...b.count { d[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] { d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1) }
            }
        }
        return d[a.count][b.count]
    }
    guard let best = candidates.min(by: { dist(s, $0) < dist(s, $1) }), dist(s, best) <= max(2, s.count / 3) else { return "" }
    return " (did you mean '\(best)'?)"
}
