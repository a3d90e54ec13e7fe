// Dropout sites of one forward pass. In training every site draws its mask from
// key.derive(site), sites numbered in call order, so a (seed, step) pair fixes every mask.
import Tensor

public final class DropoutContext {
    public let key: RNGKey?
    public let p: Float
    private var site: UInt64 = 0

    /// Eval mode: no dropout anywhere.
    public static var eval: DropoutContext { DropoutContext(key: nil, p: 0) }

    /// Training mode with rate `p` and a per-step key (e.g. RNGKey(seed).derive("dropout").derive(step)).
    public init(key: RNGKey?, p: Float) {
        self.key = key
        self.p = p
    }

    public var training: Bool { key != nil && p > 0 }

    public func nextKey() -> RNGKey? {
        defer { site += 1 }
        return training ? key!.derive(site) : nil
    }

    public func apply(_ x: Tensor) -> Tensor {
        let k = nextKey()
        return training ? dropout(x, p: p, key: k) : x
    }

    public func attention(scale: Float = 1, causal: Bool = false, queryOffset: Int = 0) -> AttentionOptions {
        let k = nextKey()
        return AttentionOptions(scale: scale, causal: causal, queryOffset: queryOffset, dropout: training ? p : 0, key: k)
    }
}

/// An additive update on a linear layer's output (LoRA): y = x·Wᵀ + delta(x).
public protocol LinearAdapter: AnyObject {
    func delta(_ x: Tensor, drop: DropoutContext) throws -> Tensor
}
