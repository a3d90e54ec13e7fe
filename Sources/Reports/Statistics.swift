// Seed-level statistics for `compare`: Welch's t-test (two-sided p from the Student t CDF via the
// regularised incomplete beta function) and a percentile bootstrap CI of the difference of means
// with a fixed Philox seed.
import Support
import Foundation

public enum Statistics {
    public static func mean(_ x: [Double]) -> Double { x.reduce(0, +) / Double(x.count) }

    public static func sampleVariance(_ x: [Double]) -> Double {
        guard x.count > 1 else { return 0 }
        let m = mean(x)
        return x.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(x.count - 1)
    }

    public struct Welch: Equatable {
        public var t: Double
        public var df: Double
        public var p: Double
    }

    /// Welch's unequal-variance t-test of mean(a) − mean(b); nil when either side has < 2 values
    /// or both variances are 0.
    public static func welch(_ a: [Double], _ b: [Double]) -> Welch? {
        guard a.count >= 2, b.count >= 2 else { return nil }
        let va = sampleVariance(a) / Double(a.count), vb = sampleVariance(b) / Double(b.count)
        guard va + vb > 0 else { return nil }
        let t = (mean(a) - mean(b)) / (va + vb).squareRoot()
        let df = (va + vb) * (va + vb) / (va * va / Double(a.count - 1) + vb * vb / Double(b.count - 1))
        return Welch(t: t, df: df, p: twoSidedP(t: t, df: df))
    }

    /// One-sample t-test of mean(a) against a fixed value (e.g. a published mean without a std).
    public static func oneSample(_ a: [Double], against mu: Double) -> Welch? {
        guard a.count >= 2 else { return nil }
        let se = (sampleVariance(a) / Double(a.count)).squareRoot()
        guard se > 0 else { return nil }
        let t = (mean(a) - mu) / se
        let df = Double(a.count - 1)
        return Welch(t: t, df: df, p: twoSidedP(t: t, df: df))
    }

    /// The `prob` quantile (0.5 < prob < 1) of Student's t with `df` degrees of freedom, by bisection
    /// on `twoSidedP` (monotone in t): the t with P(|T| ≥ t) = 2(1 − prob). Hand-checked values:
    /// df 2 → 4.3027 (97.5 %), df 4 → 2.7764.
    public static func studentQuantile(_ prob: Double, df: Double) -> Double {
        let target = 2 * (1 - prob)
        var lo = 0.0, hi = 1.0
        while twoSidedP(t: hi, df: df) > target && hi < 1e12 { hi *= 2 }
        for _ in 0..<200 {
            let mid = (lo + hi) / 2
            if twoSidedP(t: mid, df: df) > target { lo = mid } else { hi = mid }
        }
        return (lo + hi) / 2
    }

    /// P(|T| ≥ |t|) for Student's t with `df` degrees of freedom = I_{df/(df+t²)}(df/2, 1/2).
    public static func twoSidedP(t: Double, df: Double) -> Double {
        regularizedIncompleteBeta(df / (df + t * t), df / 2, 0.5)
    }

    /// I_x(a, b) by Lentz's continued fraction (Numerical Recipes `betacf`), symmetric form for x > (a+1)/(a+b+2).
    public static func regularizedIncompleteBeta(_ x: Double, _ a: Double, _ b: Double) -> Double {
        if x <= 0 { return 0 }
        if x >= 1 { return 1 }
        let lnBeta = lgamma(a + b) - lgamma(a) - lgamma(b)
        let front = exp(lnBeta + a * log(x) + b * log(1 - x))
        if x > (a + 1) / (a + b + 2) { return 1 - regularizedIncompleteBeta(1 - x, b, a) }
        let tiny = 1e-300
        var c = 1.0, d = 1 - (a + b) * x / (a + 1)
        if abs(d) < tiny { d = tiny }
        d = 1 / d
        var f = d
        for m in 1...300 {
            let m2 = Double(2 * m)
            var num = Double(m) * (b - Double(m)) * x / ((a + m2 - 1) * (a + m2))
            d = 1 + num * d; if abs(d) < tiny { d = tiny }
            c = 1 + num / c; if abs(c) < tiny { c = tiny }
            d = 1 / d
            f *= d * c
            num = -(a + Double(m)) * (a + b + Double(m)) * x / ((a + m2) * (a + m2 + 1))
            d = 1 + num * d; if abs(d) < tiny { d = tiny }
            c = 1 + num / c; if abs(c) < tiny { c = tiny }
            d = 1 / d
            let delta = d * c
            f *= delta
            if abs(delta - 1) < 1e-15 { break }
        }
        return front * f / a
    }

    /// Percentile bootstrap (B resamples, Philox key `seed`) of mean(a*) − mean(b*), or of
    /// mean(a*) − constant when `b` is empty.
    public static func bootstrapCI(_ a: [Double], _ b: [Double], constant: Double = 0, resamples: Int = 10_000,
                                   level: Double = 0.95, seed: UInt64 = 20_241_123) -> (Double, Double) {
        guard !a.isEmpty else { return (.nan, .nan) }
        var s = PhiloxStream(RNGKey(seed: seed).derive("bootstrap"))
        var diffs: [Double] = []
        diffs.reserveCapacity(resamples)
        for _ in 0..<resamples {
            var sa = 0.0
            for _ in a.indices { sa += a[s.nextInt(below: a.count)] }
            var d = sa / Double(a.count)
            if b.isEmpty { d -= constant } else {
                var sb = 0.0
                for _ in b.indices { sb += b[s.nextInt(below: b.count)] }
                d -= sb / Double(b.count)
            }
            diffs.append(d)
        }
        diffs.sort()
        let lo = Int((1 - level) / 2 * Double(resamples)), hi = Int((1 + level) / 2 * Double(resamples)) - 1
        return (diffs[max(0, lo)], diffs[min(resamples - 1, hi)])
    }
}
