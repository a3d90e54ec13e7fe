// fp32 dense tensors, row-major (C order). A tensor owns its buffer, or borrows one from a
// `base` object (a view of another tensor, or a memory-mapped file) that it keeps alive.
import Foundation
import Support

public enum TensorError: Error, CustomStringConvertible, Equatable {
    case shapeMismatch(op: String, detail: String)
    case invalidArgument(op: String, detail: String)

    public var description: String {
        switch self {
        case .shapeMismatch(let op, let d): return "\(op): shape mismatch: \(d)"
        case .invalidArgument(let op, let d): return "\(op): invalid argument: \(d)"
        }
    }
}

@inline(__always)
func shapeString(_ s: [Int]) -> String { "[" + s.map(String.init).joined(separator: ", ") + "]" }

/// Large tensors are allocated and freed every step. glibc serves them with fresh mmap()s whose
/// pages the kernel must zero on first touch (15 % of a training step when profiled). Keeping them
/// on the heap (no trimming below 2 GiB) lets freed buffers be reused warm. M_MMAP_THRESHOLD
/// accepts at most 32 MiB on 64-bit glibc, and buffers above it (the kept attention probabilities
/// of a PT step: 32 MB per layer in t5-small, 49 MB in t5-base) were still mapped and zeroed every
/// step, 4 % of the step with the AVX-512 GEMM; so mmap is off altogether (M_MMAP_MAX 0: t5-base
/// PT step 3.17 → 3.04 s, the same peak RSS on every bench workload).
let configureAllocator: Void = {
    #if os(Linux)
    _ = glibcMallopt(-4, 0)             // M_MMAP_MAX
    _ = glibcMallopt(-3, 32 << 20)      // M_MMAP_THRESHOLD (moot with M_MMAP_MAX 0; kept if the call above fails)
    _ = glibcMallopt(-1, Int32.max)     // M_TRIM_THRESHOLD
    _ = glibcMallopt(-2, 64 << 20)      // M_TOP_PAD
    #endif
}()

#if os(Linux)
/// glibc's mallopt (malloc.h is not part of the Glibc module map).
@_silgen_name("mallopt")
func glibcMallopt(_ param: Int32, _ value: Int32) -> Int32

/// glibc's malloc_trim.
@_silgen_name("malloc_trim")
func glibcMallocTrim(_ pad: Int) -> Int32
#endif

/// The heap's free memory, given back to the operating system between inference calls.
///
/// With mmap off (`configureAllocator`) every buffer lives on the heap, and a heap never shrinks
/// below its trim threshold: the buffers one inference call frees stay resident, and when the next
/// call's same-sized buffers land in a different order, the heap can grow past them (t5-base,
/// batch 32 × 356: a second generate call raised the peak RSS from 997 to 1030 MiB, the size of
/// one [B, L, d] tensor). Training steps keep their pages warm (no trim while a tape records); an
/// evaluation or generation pays the page faults of its activations once per call (in `perf` of
/// a t5-small evaluation forward: 0.2 → 0.4 % of samples in the kernel's fault paths).
public enum HeapMemory {
    /// glibc `malloc_trim(0)`: releases the top of every arena and each whole free page inside it
    /// (MADV_DONTNEED). Nothing else on other platforms.
    public static func releaseFree() {
        StepMappings.drop()
        #if os(Linux)
        _ = glibcMallocTrim(0)
        #endif
    }

    /// `releaseFree()` unless a tape is recording: what an entry point that serves both training
    /// and inference (a model's forward) calls, so training steps keep their warm pages.
    public static func releaseFreeUnlessRecording() {
        if !Tape.isRecording { releaseFree() }
    }
}

/// A tensor's gradient slot, separate from its data: backward closures hold the box of every input
/// whose gradient they write, and hold the input tensor itself only when they need its values, so
/// activations are released as soon as nothing needs them.
public final class GradBox {
    public let shape: [Int]
    public var requiresGrad: Bool
    public var grad: Tensor?
    /// Set once the node that produced this (non-leaf) tensor has run in backward: its gradient
    /// has been consumed, so a later write into it would be lost. `buffer()` refuses such a write.
    var closed = false
    /// The rows of the gradient backward needs, nil for all (`Tensor.gradientRows`).
    var gradientRows: GradientRows?

    init(shape: [Int], requiresGrad: Bool) {
        self.shape = shape
        self.requiresGrad = requiresGrad
    }

    /// The gradient buffer, allocated (zeroed) on first use.
    ///
    /// Traps when the tensor is an op output whose node already ran in backward: the gradient
    /// would never reach its inputs (the class of fault where deferred work wrote into an
    /// activation's gradient after the nodes upstream had run and GPT-2 prompts got none).
    @inline(__always)
    public func buffer() -> UnsafeMutablePointer<Float> {
        if closed { lateGradientWrite(shape) }
        if let g = grad { return g.data }
        let g = Tensor(zeros: shape)
        grad = g
        return g.data
    }
}

extension GradBox {
    /// The gradient buffer for a product that can overwrite it: (buffer, true) when there was no
    /// gradient yet — fresh, uninitialised storage the caller must write in full with beta = 0 —
    /// or (the existing gradient, false) to accumulate into with beta = 1. For a GEMM the two give
    /// the same bits: its accumulators start at +0 and so never hold −0, and x + (+0) = x for
    /// every x ≠ −0; the fresh buffer saves zeroing it and reading it back. Traps like `buffer()`.
    @inline(__always)
    func bufferForProduct() -> (UnsafeMutablePointer<Float>, fresh: Bool) {
        if closed { lateGradientWrite(shape) }
        if let g = grad { return (g.data, false) }
        let g = Tensor(uninitialized: shape)
        grad = g
        return (g.data, true)
    }
}

@inline(never)
func lateGradientWrite(_ shape: [Int]) -> Never {
    preconditionFailure("gradient written into an op output \(shapeString(shape)) after its node ran in backward: it could not reach the inputs (only stored weights may take deferred gradient work)")
}

public final class Tensor: CustomStringConvertible {
    public let shape: [Int]
    public let count: Int
    public let data: UnsafeMutablePointer<Float>
    /// Owner of `data` when borrowed; nil when this tensor allocated it.
    let base: AnyObject?
    /// Gradient slot (shared by backward closures without retaining the data).
    public let box: GradBox
    /// Leaves (parameters, prompts) that want gradients, and every op output computed from one
    /// while a tape records.
    public var requiresGrad: Bool {
        get { box.requiresGrad }
        set { box.requiresGrad = newValue }
    }
    /// Accumulated gradient, same shape; allocated on first use.
    public var grad: Tensor? {
        get { box.grad }
        set { box.grad = newValue }
    }
    /// True for tensors not produced by a recorded op (parameters, inputs).
    public internal(set) var isLeaf = true
    public var name: String = ""
    /// How backward can get this activation's values without the tape keeping the tensor (read by
    /// `linear`; see Rematerialization.swift): a norm's output, which holds its recipe weakly (the
    /// norm's node holds it, so the output does not keep the norm's input alive after backward), or
    /// a compacted activation (`keepCompactForBackward`), which holds its own.
    public internal(set) var rematerialization: Rematerialization? {
        get { ownRematerialization ?? lentRematerialization }
        set { ownRematerialization = newValue; lentRematerialization = nil }
    }
    var ownRematerialization: Rematerialization?
    weak var lentRematerialization: Rematerialization?

    public init(zeros shape: [Int], requiresGrad: Bool = false) {
        _ = configureAllocator
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in shape \(shapeString(shape))")
        self.shape = shape
        self.count = shape.reduce(1, *)
        self.data = .allocate(capacity: max(count, 1))
        self.data.initialize(repeating: 0, count: max(count, 1))
        self.base = nil
        self.box = GradBox(shape: shape, requiresGrad: requiresGrad)
    }

    /// Uninitialised storage, for op outputs that are fully written.
    init(uninitialized shape: [Int]) {
        _ = configureAllocator
        self.shape = shape
        self.count = shape.reduce(1, *)
        self.data = .allocate(capacity: max(count, 1))
        self.base = nil
        self.box = GradBox(shape: shape, requiresGrad: false)
    }

    public convenience init(shape: [Int], values: [Float], requiresGrad: Bool = false) {
        let n = shape.reduce(1, *)
        precondition(n == values.count, "Tensor(shape: \(shapeString(shape))) needs \(n) values, got \(values.count)")
        self.init(uninitialized: shape)
        values.withUnsafeBufferPointer { self.data.update(from: $0.baseAddress!, count: n) }
        self.requiresGrad = requiresGrad
    }

    public convenience init(scalar: Float) { self.init(shape: [], values: [scalar]) }

    /// A tensor over memory owned by `owner` (kept alive as long as this tensor lives).
    public init(shape: [Int], borrowing data: UnsafeMutablePointer<Float>, owner: AnyObject) {
        self.shape = shape
        self.count = shape.reduce(1, *)
        self.data = data
        self.base = owner
        self.box = GradBox(shape: shape, requiresGrad: false)
    }

    deinit { if base == nil { data.deallocate() } }

    public var rank: Int { shape.count }
    public var array: [Float] { Array(UnsafeBufferPointer(start: data, count: count)) }
    public var scalar: Float { data[0] }
    public var description: String { "Tensor\(shapeString(shape))\(name.isEmpty ? "" : " '\(name)'")" }

    public subscript(i: Int) -> Float {
        get { data[i] }
        set { data[i] = newValue }
    }

    /// The gradient buffer, allocated (zeroed) on first use.
    @inline(__always)
    public func gradBuffer() -> UnsafeMutablePointer<Float> { box.buffer() }

    public func zeroGrad() { grad = nil }

    /// A copy that does not require gradients.
    public func detached() -> Tensor {
        let t = Tensor(uninitialized: shape)
        t.data.update(from: data, count: count)
        return t
    }

    public func copy(from other: Tensor) {
        precondition(other.count == count, "copy: \(other) into \(self)")
        data.update(from: other.data, count: count)
    }

    public func fill(_ v: Float) { data.update(repeating: v, count: count) }

    /// Same storage and shape, separate gradient slot (for closures that need an output's values).
    func detachedView() -> Tensor { Tensor(shape: shape, borrowing: data, owner: self) }

    /// Same storage, new shape (no gradient link; use `reshape` inside a graph).
    public func view(_ newShape: [Int]) -> Tensor {
        precondition(newShape.reduce(1, *) == count, "view \(shapeString(shape)) as \(shapeString(newShape))")
        return Tensor(shape: newShape, borrowing: data, owner: self)
    }

    public static func uniform(_ shape: [Int], lo: Float, hi: Float, key: RNGKey, requiresGrad: Bool = false) -> Tensor {
        Tensor(shape: shape, values: key.uniformArray(shape.reduce(1, *), lo: lo, hi: hi), requiresGrad: requiresGrad)
    }

    /// Filled in place (a large random init never holds a second copy of its values), split over
    /// the threads at even element offsets: every value depends only on its index
    /// (`RNGKey.fillNormal`), so the tensor equals `key.normalArray(count)` bit for bit whatever
    /// the thread count.
    public static func normal(_ shape: [Int], mean: Float = 0, std: Float = 1, key: RNGKey, requiresGrad: Bool = false) -> Tensor {
        let t = Tensor(uninitialized: shape)
        let count = t.count, data = t.data
        // One Box–Muller pair (a log, a sine, a cosine) costs ~100 ns.
        Parallel.forRange((count + 1) / 2, costPerItem: 256) { pairs in
            let start = pairs.lowerBound * 2, end = min(count, pairs.upperBound * 2)
            key.fillNormal(data + start, count: end - start, mean: mean, std: std, offset: start)
        }
        t.requiresGrad = requiresGrad
        return t
    }
}
