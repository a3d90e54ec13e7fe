// Rank probe for DPT Figure 3 / Appendix Figure 9: P = U·ReLU(Σ)·Vᵀ with U ∈ R^{n×k}, V ∈ R^{d×k}
// (U[−0.5, 0.5]) and a trainable diagonal Σ ∈ R^k initialised positive (U[0.5, 1.5)); k = r.
// The trainer logs the positive/negative counts of Σ and rank(P) every epoch.
import Support
import Foundation
import Models
import Tensor

public final class RankProbe: TuningMethod, EpochDiagnostics {
    public static let name = "probe"
    public static let configKeys = ["n", "r", "init"]
    public static let initRules = ["uniform"]
    public let config: MethodConfig
    let u, sigma, v: Tensor
    public var trainable: [TrainableTensor] {
        [("U", u), ("sigma", sigma), ("V", v)].map { TrainableTensor(name: $0.0, tensor: $0.1, group: .main) }
    }

    public init(config c: MethodConfig, backbone: Backbone, key: RNGKey) throws {
        config = c
        try refuseTableInit(c, method: "probe", allowed: ["default"] + Self.initRules)
        u = trainableLeaf(Tensor.uniform([c.n, c.r], lo: -0.5, hi: 0.5, key: key.derive("U")), "U")
        sigma = trainableLeaf(Tensor.uniform([c.r], lo: 0.5, hi: 1.5, key: key.derive("sigma")), "sigma")
        v = trainableLeaf(Tensor.uniform([backbone.dModel, c.r], lo: -0.5, hi: 0.5, key: key.derive("V")), "V")
    }

    public func injection(drop: DropoutContext) throws -> Injection {
        let us = try mul(u, relu(sigma))                                               // (n, k) · diag
        return Injection(prompt: try matmul(us, v, transB: true))                      // (n, d)
    }

    /// (positive, negative) diagonal entries of Σ and the numerical rank of P.
    public func diagnostics() throws -> (positive: Int, negative: Int, rank: Int) {
        let pos = sigma.array.filter { $0 > 0 }.count, neg = sigma.array.filter { $0 < 0 }.count
        let p = try injection(drop: .eval).prompt!
        return (pos, neg, numericalRank(p))
    }

    /// `probe_positive`, `probe_negative` (entries of Σ above / below 0) and `probe_rank` (rank of P).
    public func epochMetrics() throws -> [String: Double] {
        let d = try diagnostics()
        return ["probe_positive": Double(d.positive), "probe_negative": Double(d.negative), "probe_rank": Double(d.rank)]
    }

    public static func parameterCount(_ c: MethodConfig, architecture: ModelConfig) throws -> Int {
        c.r * (c.n + architecture.dModel) + c.r
    }
}

/// Rank of an n×d matrix: eigenvalues of P·Pᵀ by cyclic Jacobi (Double), counted above
/// max(n, d)·ε·λ_max (the usual SVD tolerance, squared).
public func numericalRank(_ p: Tensor) -> Int {
    let (n, d) = (p.shape[0], p.shape[1])
    var g = [Double](repeating: 0, count: n * n)
    for i in 0..<n { for j in i..<n {
        var s = 0.0
        for k in 0..<d { s += Double(p.data[i * d + k]) * Double(p.data[j * d + k]) }
        g[i * n + j] = s; g[j * n + i] = s
    } }
    for _ in 0..<60 {
        var off = 0.0
        for i in 0..<n { for j in (i + 1)..<max(i + 1, n) { off += g[i * n + j] * g[i * n + j] } }
        if off < 1e-30 { break }
        for i in 0..<n {
            for j in (i + 1)..<max(i + 1, n) where abs(g[i * n + j]) > 1e-300 {
                let theta = (g[j * n + j] - g[i * n + i]) / (2 * g[i * n + j])
                let t = (theta >= 0 ? 1 : -1) / (abs(theta) + (theta * theta + 1).squareRoot())
                let c = 1 / (t * t + 1).squareRoot(), s = t * c
                for k in 0..<n {
                    let gki = g[k * n + i], gkj = g[k * n + j]
                    g[k * n + i] = c * gki - s * gkj
                    g[k * n + j] = s * gki + c * gkj
                }
                for k in 0..<n {
                    let gik = g[i * n + k], gjk = g[j * n + k]
                    g[i * n + k] = c * gik - s * gjk
                    g[j * n + k] = s * gik + c * gjk
                }
            }
        }
    }
    let eig = (0..<n).map { max(0, g[$0 * n + $0]) }
    guard let top = eig.max(), top > 0 else { return 0 }
    let sigmaTol = Double(max(n, d)) * Double(Float.ulpOfOne) * top.squareRoot()
    return eig.filter { $0.squareRoot() > sigmaTol }.count
}
