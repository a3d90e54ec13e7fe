// Activations that backward reads but forward need not keep, because they are cheap to compute
// again, bit for bit, from tensors the tape keeps anyway.
//
// The case it serves: a norm's output y feeds linear layers whose weights train (full
// fine-tuning). Their weight gradients dW = gᵀ·y read y, so the tape used to keep one [rows, d]
// buffer per norm on top of the norm's input x, which the norm's own backward keeps. A norm now
// attaches a `Rematerialization` to y (its input, weight and per-row statistics, not y itself);
// `linear` keeps that instead of y when it needs y only for dW, and backward computes y again
// (one pass over x, no GEMM) when the first of its nodes runs, sharing it with the others until
// the last has run. t5-base FT at batch 8 × 256: two [8·256, 768] buffers per encoder layer fewer.
//
// The same recipe keeps a sparse activation compact (`keepCompactForBackward`): T5's FFN hidden
// state after ReLU and dropout is about 55 % zeros at random initialisation, and only the output
// projection's dW reads it; backward keeps its nonzero values and a bitmap and expands them for dW.
import CGemm
import Foundation

/// A recipe for an activation's values: computed on first demand in backward, shared by the
/// nodes holding a `Use` of it, released when the last has taken it or been dropped.
/// The recipe must give the forward's values bit for bit (the same expression per element).
public final class Rematerialization {
    private let recompute: () -> Tensor
    private var value: Tensor?
    private var uses = 0
    /// Parameters the recipe reads (a norm's weight and bias). A node that holds a `Use` lists them
    /// among its inputs, so that a fused optimizer step (`Tape.backward(onFinalGradient:)`) updates
    /// them only after that node's work, deferred work included, has read them.
    public let sources: [Tensor]
    /// Times the values were computed again (for tests).
    public private(set) var recomputations = 0

    /// `recompute` returns a fresh tensor holding the activation's values; `sources` lists the
    /// parameters it reads.
    public init(sources: [Tensor] = [], recompute: @escaping () -> Tensor) {
        self.sources = sources
        self.recompute = recompute
    }

    /// One node's claim on the values: `take()` them once in backward. A claim dropped untaken (its
    /// node skipped for want of a gradient, or the tape reset) is given up when it is freed.
    final class Use {
        private let recipe: Rematerialization
        private var open = true
        fileprivate init(_ recipe: Rematerialization) { self.recipe = recipe }
        func take() -> Tensor {
            precondition(open, "a rematerialized activation taken twice by one node")
            open = false
            return recipe.take()
        }
        deinit { if open { recipe.release() } }
    }

    /// A claim for a node that reads the values in backward.
    func register() -> Use {
        uses += 1
        return Use(self)
    }

    private func take() -> Tensor {
        let v: Tensor
        if let value { v = value } else { v = recompute(); recomputations += 1 }
        uses -= 1
        value = uses > 0 ? v : nil
        return v
    }

    private func release() {
        uses -= 1
        if uses == 0 { value = nil }
    }
}

/// A mostly-zero activation's nonzero values and their bitmap (CGemm's compact.c); deallocated
/// with the recipe that holds it.
private final class CompactFloats {
    let bits: UnsafeMutablePointer<UInt64>
    let values: UnsafeMutablePointer<Float>
    let count: Int
    /// The length of the mapping that holds `values` (`StepMappings`).
    let mappedLength: Int
    /// Prefix offsets into `values`, one per chunk of `chunkWords` bitmap words.
    let offsets: [Int]
    static let chunkWords = 256  // 16,384 elements per parallel chunk

    init(bits: UnsafeMutablePointer<UInt64>, values: UnsafeMutablePointer<Float>, mappedLength: Int, count: Int, offsets: [Int]) {
        self.bits = bits
        self.values = values
        self.mappedLength = mappedLength
        self.count = count
        self.offsets = offsets
    }
    deinit {
        bits.deallocate()
        StepMappings.release(values, length: mappedLength)
    }
}

/// Anonymous mappings for buffers that live from a training step's forward to its backward
/// (`keepCompactForBackward`), kept for the next step instead of unmapped. A mapping given back
/// each step had to be faulted in again the next: about 11 K page faults per t5-small FT step and
/// 30 K per t5-base step (90 % of the step's faults), at about 14 µs each on a KVM guest whose
/// freed pages the host reclaims (3 % of a t5-base FT step in `clear_page_erms`,
/// docs/performance.md). A request takes a kept mapping of at least its size and at most 1/8
/// more; a new mapping is made 1/16 larger than asked, so that the next step's slightly different
/// count of nonzero values still fits. Pages past what a step writes are never touched, so the
/// slack costs no resident memory. `drop()` unmaps what is kept (`HeapMemory.releaseFree()` calls
/// it, so inference starts without them); at most `limit` mappings are kept.
enum StepMappings {
    private nonisolated(unsafe) static var kept: [(pointer: UnsafeMutableRawPointer, length: Int)] = []
    private static let lock = NSLock()
    static let limit = 64
    /// Requests served from a kept mapping in this process (for tests).
    nonisolated(unsafe) static var reused = 0
    /// How many mappings are kept now (for tests).
    static var keptCount: Int { lock.lock(); defer { lock.unlock() }; return kept.count }

    /// A read-write mapping of at least `bytes` (zero-filled when new; a reused one holds the
    /// previous user's values), nil when the system has no memory for a new one.
    static func take(bytes: Int) -> (pointer: UnsafeMutableRawPointer, length: Int)? {
        lock.lock()
        let fit = kept.indices.filter { kept[$0].length >= bytes && kept[$0].length <= bytes + bytes / 8 }
            .min { kept[$0].length < kept[$1].length }
        if let fit {
            let m = kept.remove(at: fit)
            reused += 1
            lock.unlock()
            return m
        }
        lock.unlock()
        let length = (bytes + bytes / 16 + 4095) / 4096 * 4096
        guard let p = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), p != MAP_FAILED else { return nil }
        return (p, length)
    }

    /// Gives back a mapping `take(bytes:)` returned (its pointer and length): kept for a later request.
    static func release(_ p: UnsafeMutableRawPointer, length: Int) {
        lock.lock()
        defer { lock.unlock() }
        kept.append((p, length))
        if kept.count > limit { let old = kept.removeFirst(); munmap(old.pointer, old.length) }
    }

    /// Unmaps every kept mapping.
    static func drop() {
        lock.lock()
        defer { lock.unlock() }
        for m in kept { munmap(m.pointer, m.length) }
        kept.removeAll()
    }
}

extension Tensor {
    /// The size (elements) below which `keepCompactForBackward` does nothing.
    nonisolated(unsafe) public static var compactMinimumElements = 65_536
    /// Activations `keepCompactForBackward` has compacted in this process (for tests).
    nonisolated(unsafe) public internal(set) static var compactedActivations = 0

    /// Makes backward keep this activation as its nonzero values and a bitmap (1/32 of the floats)
    /// instead of whole, when at most `maxDensity` of its elements are nonzero: for a linear
    /// layer's input that a ReLU (and dropout) made sparse, whose values only the weight gradient
    /// reads. Zero means the bit pattern +0.0 (−0.0 and NaN are kept), so the values expanded in
    /// backward are these bit for bit. Returns whether it did; does nothing (false) below
    /// `compactMinimumElements`, outside a recording tape and inside a checkpointed block (whose
    /// values are not kept anyway). Cost: one pass over the values to count, one to gather, one in
    /// backward to expand. The values live in their own anonymous mapping, not on the heap, where
    /// the dense buffers freed after them left holes that kept half of the saving resident (t5-base
    /// FT step: 68 of 140 MB); when backward is done with them the mapping is kept for the next
    /// step's compact values (`StepMappings`) until `HeapMemory.releaseFree()` unmaps it.
    @discardableResult
    public func keepCompactForBackward(maxDensity: Double = 0.75) -> Bool {
        guard count >= Tensor.compactMinimumElements, Tape.isRecording, !Tape.isCheckpointing else { return false }
        let n = count, words = (n + 63) / 64, chunkWords = CompactFloats.chunkWords
        let chunks = (words + chunkWords - 1) / chunkWords, chunkElements = chunkWords * 64
        // body(chunk, its first element, its length) for every chunk, split over the threads.
        let eachChunk = { (body: @escaping (Int, Int, Int) -> Void) in
            Parallel.forRange(chunks, costPerItem: chunkElements) { r in
                for c in r { body(c, c * chunkElements, min(chunkElements, n - c * chunkElements)) }
            }
        }
        let bits = UnsafeMutablePointer<UInt64>.allocate(capacity: words)
        let counts = UnsafeMutablePointer<Int>.allocate(capacity: chunks)
        defer { counts.deallocate() }
        let px = data
        eachChunk { c, e0, len in counts[c] = pr_compact_bitmap(px + e0, len, bits + c * chunkWords) }
        var offsets = [Int](repeating: 0, count: chunks + 1)
        for c in 0..<chunks { offsets[c + 1] = offsets[c] + counts[c] }
        let total = offsets[chunks]
        guard Double(total) <= maxDensity * Double(n) else {
            bits.deallocate()
            return false
        }
        guard let mapped = StepMappings.take(bytes: max(total, 1) * 4) else {
            bits.deallocate()  // no memory for the compact copy: keep the activation whole
            return false
        }
        let values = mapped.pointer.assumingMemoryBound(to: Float.self)
        offsets.withUnsafeBufferPointer { off in
            let po = off.baseAddress!
            eachChunk { c, e0, len in pr_compact_gather(px + e0, len, bits + c * chunkWords, values + po[c]) }
        }
        Tensor.compactedActivations += 1
        let kept = CompactFloats(bits: bits, values: values, mappedLength: mapped.length, count: total, offsets: offsets)
        let shape = self.shape
        ownRematerialization = Rematerialization {
            let t = Tensor(uninitialized: shape)
            let pt = t.data
            kept.offsets.withUnsafeBufferPointer { off in
                let po = off.baseAddress!
                eachChunk { c, e0, len in pr_compact_expand(kept.values + po[c], len, kept.bits + c * chunkWords, pt + e0) }
            }
            return t
        }
        return true
    }
}
