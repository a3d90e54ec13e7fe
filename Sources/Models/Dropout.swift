// Dropout sites of one forward pass. In training every site draws its mask from
// key.derive(site), sites numbered in call order, so a (seed, step) pair fixes every mask.
import Support
import Tensor

public final class DropoutContext {
    public let key: RNGKey?
    public let p: Float
    private var site: UInt64 = 0

    /// Eval mode: no dropout anywhere.
    public static var eval: DropoutContext { DropoutContext(key: nil, p: 0) }

    /// Training mode with the backbone's rate `p` and a per-step key (e.g.
    /// RNGKey(seed).derive("dropout").derive(step)). A training step with the backbone's dropout
    /// off passes p 0 and still a key: a method's own dropout (LoRA's `lora_dropout`) applies in
    /// training whatever the backbone's rate, as PEFT's `nn.Dropout` inside the adapter does.
    public init(key: RNGKey?, p: Float) {
        self.key = key
        self.p = p
    }

    /// Whether the backbone's dropout sites apply (a training step with p > 0).
    public var training: Bool { key != nil && p > 0 }

    /// Whether this is a training step (a key), for dropout a method owns with its own rate.
    public var isTrainingStep: Bool { key != nil }

    /// The next site's key (nil in eval). Sites are numbered in call order whether or not they
    /// apply, so a site's mask does not depend on whether earlier sites drew one.
    public func nextKey() -> RNGKey? {
        defer { site += 1 }
        return key?.derive(site)
    }

    /// The next site's number (for `replaying`).
    public var position: UInt64 { site }

    /// Runs `body` drawing sites from `mark` on, then continues after the later of where `body`
    /// stopped and where this context was: a checkpointed block run again in backward draws the
    /// same masks as in forward and leaves the context where it was.
    public func replaying<T>(from mark: UInt64, _ body: () throws -> T) rethrows -> T {
        let saved = site
        site = mark
        defer { site = max(saved, site) }
        return try body()
    }

    /// Dropout of the next site (x itself when not training). `overwrite`: the result takes x's
    /// storage; only for an x no one reads afterwards (see `dropout`).
    public func apply(_ x: Tensor, overwrite: Bool = false) -> Tensor {
        let k = nextKey()
        return training ? dropout(x, p: p, key: k, overwrite: overwrite) : x
    }

    /// ReLU, then the dropout of the next site, as one op (`reluDropout`: the bits of `relu` then
    /// `apply`); ReLU alone when not training. `overwrite` as in `apply`, for x and the ReLU output.
    public func applyAfterReLU(_ x: Tensor, overwrite: Bool = false) -> Tensor {
        let k = nextKey()
        return training ? reluDropout(x, p: p, key: k, overwrite: overwrite) : relu(x, overwrite: overwrite)
    }

    public func attention(scale: Float = 1, causal: Bool = false, queryOffset: Int = 0) -> AttentionOptions {
        let k = nextKey()
        return AttentionOptions(scale: scale, causal: causal, queryOffset: queryOffset, dropout: training ? p : 0, key: training ? k : nil)
    }
}

/// An additive update on a linear layer's output (LoRA): y = x·Wᵀ + delta(x).
public protocol LinearAdapter: AnyObject {
    func delta(_ x: Tensor, drop: DropoutContext) throws -> Tensor
}
