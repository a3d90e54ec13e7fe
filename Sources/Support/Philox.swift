// Philox-4x32-10 counter-based RNG (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
// SC'11; constants and known-answer vectors from Random123). Every random number in PromptRepro
// is a pure function of (seed, stream, counter): dropout masks, initialisation and sampling do
// not depend on thread scheduling.
//
// Layout: key = (lo32(seed), hi32(seed)); counter = (lo32(block), hi32(block), lo32(stream),
// hi32(stream)); block = element index / 4, lane = element index % 4.

import Foundation

public enum Philox {
    @usableFromInline static let m0: UInt32 = 0xD251_1F53, m1: UInt32 = 0xCD9E_8D57
    @usableFromInline static let w0: UInt32 = 0x9E37_79B9, w1: UInt32 = 0xBB67_AE85

    /// One Philox-4x32 block with `rounds` rounds (10 is the standard).
    @inline(__always)
    public static func block(
        _ c: (UInt32, UInt32, UInt32, UInt32), key: (UInt32, UInt32), rounds: Int = 10
    ) -> (UInt32, UInt32, UInt32, UInt32) {
        var (c0, c1, c2, c3) = c
        var (k0, k1) = key
        for r in 0..<rounds {
            if r > 0 { k0 &+= w0; k1 &+= w1 }
            let p0 = UInt64(m0) &* UInt64(c0), p1 = UInt64(m1) &* UInt64(c2)
            let hi0 = UInt32(truncatingIfNeeded: p0 >> 32), lo0 = UInt32(truncatingIfNeeded: p0)
            let hi1 = UInt32(truncatingIfNeeded: p1 >> 32), lo1 = UInt32(truncatingIfNeeded: p1)
            (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)
        }
        return (c0, c1, c2, c3)
    }
}

/// Eight Philox-4x32-10 blocks at once (counters base…base+7 of one stream), in SIMD lanes.
/// The 32×32→64 products are taken on even and odd lanes separately by viewing the eight 32-bit
/// lanes as four 64-bit ones (one vpmuludq each on AVX2), so no lane-wise widening is needed.
@inline(__always)
@inlinable
public func philox8(_ key: RNGKey, base: UInt64) -> (SIMD8<UInt32>, SIMD8<UInt32>, SIMD8<UInt32>, SIMD8<UInt32>) {
    // base is a multiple of 8, so base…base+7 share their high word.
    assert(base & 7 == 0, "philox8 needs a base that is a multiple of 8")
    var c0 = SIMD8<UInt32>(0, 1, 2, 3, 4, 5, 6, 7) &+ SIMD8<UInt32>(repeating: UInt32(truncatingIfNeeded: base))
    var c1 = SIMD8<UInt32>(repeating: UInt32(truncatingIfNeeded: base >> 32))
    var c2 = SIMD8<UInt32>(repeating: UInt32(truncatingIfNeeded: key.stream))
    var c3 = SIMD8<UInt32>(repeating: UInt32(truncatingIfNeeded: key.stream >> 32))
    var k0 = UInt32(truncatingIfNeeded: key.seed), k1 = UInt32(truncatingIfNeeded: key.seed >> 32)
    for r in 0..<10 {
        if r > 0 { k0 &+= Philox.w0; k1 &+= Philox.w1 }
        let (hi0, lo0) = mulHiLo8(c0, Philox.m0)
        let (hi1, lo1) = mulHiLo8(c2, Philox.m1)
        (c0, c1, c2, c3) = (hi1 ^ c1 ^ SIMD8(repeating: k0), lo1, hi0 ^ c3 ^ SIMD8(repeating: k1), lo0)
    }
    return (c0, c1, c2, c3)
}

/// (high, low) 32-bit halves of the lane-wise 64-bit products x·m (lane 2i is the low half of
/// 64-bit lane i: little-endian, as on every target Swift supports here).
@inline(__always)
@inlinable
public func mulHiLo8(_ x: SIMD8<UInt32>, _ m: UInt32) -> (SIMD8<UInt32>, SIMD8<UInt32>) {
    let w = unsafeBitCast(x, to: SIMD4<UInt64>.self)
    let low32 = SIMD4<UInt64>(repeating: 0xFFFF_FFFF), mm = SIMD4<UInt64>(repeating: UInt64(m))
    let even = (w & low32) &* mm      // products of lanes 0, 2, 4, 6
    let odd = (w &>> 32) &* mm         // products of lanes 1, 3, 5, 7
    let lo = (even & low32) | (odd &<< 32)
    let hi = (even &>> 32) | (odd & ~low32)
    return (unsafeBitCast(hi, to: SIMD8<UInt32>.self), unsafeBitCast(lo, to: SIMD8<UInt32>.self))
}

/// SplitMix64 finaliser, used only to derive stream ids from structured labels.
@inline(__always)
func mix64(_ x: UInt64) -> UInt64 {
    var z = x &+ 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

/// A (seed, stream) pair: an independent, addressable sequence of random numbers.
/// Derive sub-streams with `derive` (e.g. `key.derive(step).derive(tensorId)`).
public struct RNGKey: Hashable, Sendable, CustomStringConvertible {
    public var seed: UInt64
    public var stream: UInt64

    public init(seed: UInt64, stream: UInt64 = 0) {
        self.seed = seed
        self.stream = stream
    }

    /// A new stream keyed by this one and `label` (hash-mixed, order-sensitive).
    public func derive(_ label: UInt64) -> RNGKey {
        RNGKey(seed: seed, stream: mix64(stream ^ mix64(label &+ 0x632B_E59B_D9B4_E019)))
    }

    public func derive(_ label: String) -> RNGKey {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325  // FNV-1a 64
        for b in label.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        return derive(h)
    }

    public var description: String { "RNGKey(seed: \(seed), stream: \(stream))" }

    @inline(__always)
    public func block(_ index: UInt64) -> (UInt32, UInt32, UInt32, UInt32) {
        Philox.block(
            (UInt32(truncatingIfNeeded: index), UInt32(truncatingIfNeeded: index >> 32),
             UInt32(truncatingIfNeeded: stream), UInt32(truncatingIfNeeded: stream >> 32)),
            key: (UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32)))
    }

    /// The 32-bit word at element position `index` of this stream.
    @inline(__always)
    public func word(at index: Int) -> UInt32 {
        let b = block(UInt64(index) >> 2)
        switch index & 3 {
        case 0: return b.0
        case 1: return b.1
        case 2: return b.2
        default: return b.3
        }
    }

    /// Uniform in [0, 1) with 24 random bits.
    @inline(__always)
    public static func unit(_ w: UInt32) -> Float { Float(w >> 8) * (1.0 / 16_777_216.0) }

    /// Fills `out[0..<count]` with U[0,1) values of elements `offset ..< offset+count`.
    public func fillUniform(_ out: UnsafeMutablePointer<Float>, count: Int, offset: Int = 0) {
        var i = 0
        while i < count {
            let e = offset + i
            let b = block(UInt64(e) >> 2)
            let words = [b.0, b.1, b.2, b.3]
            var lane = e & 3
            while lane < 4 && i < count {
                out[i] = RNGKey.unit(words[lane])
                lane += 1
                i += 1
            }
        }
    }

    /// Uniform in [lo, hi).
    public func uniformArray(_ count: Int, lo: Float = 0, hi: Float = 1) -> [Float] {
        var a = [Float](repeating: 0, count: count)
        a.withUnsafeMutableBufferPointer { fillUniform($0.baseAddress!, count: count) }
        return a.map { lo + (hi - lo) * $0 }
    }

    /// Standard normal values by Box–Muller: elements 2j and 2j + 1 from words 0 and 1 of block j
    /// (the cosine and the sine half).
    public func normalArray(_ count: Int, mean: Float = 0, std: Float = 1) -> [Float] {
        var out = [Float](repeating: 0, count: count)
        out.withUnsafeMutableBufferPointer { fillNormal($0.baseAddress!, count: count, mean: mean, std: std) }
        return out
    }

    /// `normalArray` written into `out` (no temporary array): `out[i]` is element `offset + i` of
    /// the stream, so a range split at even offsets can be filled piece by piece (on several
    /// threads) with the same values. Elements 2j and 2j + 1 are the cosine and sine halves of one
    /// Box–Muller pair drawn from block j.
    /// - Precondition: `offset` is even (a pair is never split).
    public func fillNormal(_ out: UnsafeMutablePointer<Float>, count: Int, mean: Float = 0, std: Float = 1, offset: Int = 0) {
        precondition(offset >= 0 && offset % 2 == 0, "fillNormal: offset \(offset) must be even and ≥ 0")
        var i = 0
        while i < count {
            let b = block(UInt64((offset + i) / 2))
            let u1 = (Double(b.0) + 1) / 4_294_967_297.0  // (0, 1]
            let u2 = Double(b.1) / 4_294_967_296.0
            let r = (-2 * log(u1)).squareRoot()
            out[i] = mean + std * Float(r * cos(2 * Double.pi * u2))
            if i + 1 < count { out[i + 1] = mean + std * Float(r * sin(2 * Double.pi * u2)) }
            i += 2
        }
    }
}

/// Sequential draws from one stream: word 0, 1, 2, … Used for shuffles and sampling.
public struct PhiloxStream {
    public let key: RNGKey
    public private(set) var position: Int = 0

    public init(_ key: RNGKey) { self.key = key }

    public mutating func next() -> UInt32 {
        let w = key.word(at: position)
        position += 1
        return w
    }

    /// Uniform integer in 0..<bound without modulo bias (Lemire's method with rejection).
    public mutating func nextInt(below bound: Int) -> Int {
        precondition(bound > 0 && bound <= Int(UInt32.max), "bound \(bound) out of range")
        let b = UInt32(bound)
        var m = UInt64(next()) &* UInt64(b)
        var low = UInt32(truncatingIfNeeded: m)
        if low < b {
            let threshold = (0 &- b) % b
            while low < threshold {
                m = UInt64(next()) &* UInt64(b)
                low = UInt32(truncatingIfNeeded: m)
            }
        }
        return Int(m >> 32)
    }

    /// Fisher–Yates shuffle of 0..<n (i from n−1 down to 1, j uniform in 0...i).
    public mutating func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<n)
        if n < 2 { return p }
        for i in stride(from: n - 1, to: 0, by: -1) {
            let j = nextInt(below: i + 1)
            p.swapAt(i, j)
        }
        return p
    }
}
