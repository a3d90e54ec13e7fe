// Frozen GEMM operands packed once. While a `FrozenOperands` scope runs, tensors registered with it
// are promised not to change (a model's weights during greedy decoding, the encoder states every
// decoding step attends to). The own kernels (avx512, avx2) pack a B operand that lies inside one
// of them the second time a product uses it (same pointer, transpose flag, k, n and ldb), keep the
// packed copy, and read it in place from then on instead of packing B again at every product. The
// packed path runs the same kernel calls on the same values as packing on the fly
// (Sources/CGemm/gemm_common.h), so results are bit-identical; OpenBLAS products are untouched.
//
// Why: at a decoding step the products have few rows (batch rows, or heads × one query), so packing
// B costs about as much as the product. Greedy decoding of 56 CB rows to 128 tokens on t5-small
// spent about a third of its time re-packing the same weights and encoder states
// (docs/performance.md, "End to end").
import CGemm
import Foundation

/// A scope in which registered tensors stay constant, so GEMMs may reuse packed copies of them.
/// Use `FrozenOperands.scope(_:packs:_:)`; scopes nest (an inner scope adds its tensors to the running
/// one and removes them when it ends). Thread-safe: products on several threads share the cache.
public final class FrozenOperands: @unchecked Sendable {
    /// The running scope, if any (read by `BLAS.sgemm` and `BLAS.sgemmSerial` on every thread).
    nonisolated(unsafe) static var current: FrozenOperands?

    /// false: scopes register their tensors but make no packed copies, so every product packs B on
    /// the fly (the CLI's PROMPTREPRO_PACK_FROZEN=0; benchmarks and the bit-identity tests compare
    /// both). Registration stays because it also picks the kernel (`BLAS.usesOwnKernel`: a
    /// few-row product with a frozen B runs the own kernel), so the switch never changes a bit.
    nonisolated(unsafe) public static var isEnabled = true

    /// Whether this scope makes packed copies (false: its tensors count as frozen for the kernel
    /// choice, and every product packs on the fly).
    public let packs: Bool

    struct Region { let start: UInt; let end: UInt; let tensor: Tensor }
    struct Key: Hashable { let address: UInt; let transB: Bool; let k: Int; let n: Int; let ldb: Int; let kernel: GEMMKernel; let kc: Int }
    /// A packed copy, in pages mapped for it alone: freeing it returns them to the system at once.
    /// From the heap (where `configureAllocator` sends every block, Tensor.swift) the copies of one
    /// layer after another, made and freed between the activations, left holes the heap could not
    /// reuse: the streamed encoder's peak RSS grew by ≈ 40 MB. The price is fresh (zeroed) pages at
    /// each packing, once per scope and weight.
    final class Packed {
        let data: UnsafeMutablePointer<Float>
        let floats: Int
        private let bytes: Int
        init(floats: Int) {
            self.floats = floats
            bytes = max(floats, 16) * 4
            guard let p = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), p != MAP_FAILED else {
                fatalError("mmap of \(bytes) bytes for a packed GEMM operand failed (errno \(errno))")
            }
            data = p.bindMemory(to: Float.self, capacity: floats)
        }
        deinit { munmap(data, bytes) }
    }

    private let lock = NSLock()
    private var regions: [Region] = []          // sorted by start, disjoint
    private var packed: [Key: Packed] = [:]
    private var seen: Set<Key> = []
    private var packedFloats = 0
    /// Packed copies stop being made past this many floats: 1.5 × the registered tensors plus 4 Mi
    /// (padding of small operands), at most `maxPackedBytes`; products beyond it pack on the fly as
    /// without a scope (same bits, only slower).
    private var budgetFloats: Int {
        min(regions.reduce(0) { $0 + $1.tensor.count } * 3 / 2 + (1 << 22), Self.maxPackedBytes / 4)
    }

    /// Upper bound on the memory of a scope's packed copies (default 1 GiB), so that a large
    /// evaluation batch on a large model does not double its memory for speed.
    nonisolated(unsafe) public static var maxPackedBytes = 1 << 30

    private init(packs: Bool) { self.packs = packs }

    /// Runs `body` with `tensors` registered as constant for its duration. The scope holds them, so
    /// their memory cannot be reused by another tensor while it runs; packed copies are freed when
    /// the outermost scope ends (or when `release` drops their tensor).
    /// Errors: rethrows `body`'s. The caller promises that nothing writes the tensors inside `body`.
    /// `packs` false (or `isEnabled` false) registers the tensors without making packed copies: the
    /// kernel choice stays that of a packing scope, so results are the same bits either way. An
    /// inner scope joins the running one and keeps its `packs`.
    public static func scope<T>(_ tensors: [Tensor], packs: Bool = true, _ body: (FrozenOperands) throws -> T) rethrows -> T {
        if let running = current {
            let added = tensors.filter { running.add($0) }
            defer { for t in added { running.release(t) } }
            return try body(running)
        }
        let s = FrozenOperands(packs: packs && isEnabled)
        for t in tensors { s.add(t) }
        current = s
        defer { current = nil }
        return try body(s)
    }

    /// Registers `t` (no effect if its memory is already registered). Returns whether it was added.
    @discardableResult
    public func add(_ t: Tensor) -> Bool {
        let start = UInt(bitPattern: t.data), end = start + UInt(max(t.count, 1) * 4)
        lock.lock(); defer { lock.unlock() }
        if regions.contains(where: { $0.start < end && start < $0.end }) { return false }
        let i = regions.firstIndex { $0.start > start } ?? regions.endIndex
        regions.insert(Region(start: start, end: end, tensor: t), at: i)
        return true
    }

    /// Unregisters `t` and frees the packed copies made from its memory (call before the tensor
    /// may change or go away while the scope still runs).
    public func release(_ t: Tensor) {
        let start = UInt(bitPattern: t.data)
        lock.lock(); defer { lock.unlock() }
        guard let i = regions.firstIndex(where: { $0.start == start && $0.tensor === t }) else { return }
        let r = regions.remove(at: i)
        for (key, p) in packed where key.address >= r.start && key.address < r.end {
            packedFloats -= p.floats
            packed[key] = nil
        }
        seen = seen.filter { $0.address < r.start || $0.address >= r.end }
    }

    /// Floats held in packed copies now (for tests and memory accounting).
    public var packedCount: Int { lock.lock(); defer { lock.unlock() }; return packedFloats }

    private static let statsLock = NSLock()
    nonisolated(unsafe) private static var packedProducts = 0
    /// Products this process ran from a packed frozen operand so far (tests check that a path uses them).
    public static var productsFromPacked: Int { statsLock.lock(); defer { statsLock.unlock() }; return packedProducts }
    static func countPackedProduct() { statsLock.lock(); packedProducts += 1; statsLock.unlock() }

    /// Whether op(B) (k×n; n×k when `transB`, leading dimension `ldb`) lies inside a registered
    /// tensor, so that the own kernels will read a packed copy of it from its second use on.
    func holds(_ b: UnsafePointer<Float>, transB: Bool, k: Int, n: Int, ldb: Int) -> Bool {
        lock.lock(); defer { lock.unlock() }
        return inRegion(b, transB: transB, k: k, n: n, ldb: ldb)
    }

    /// Whether op(B)'s memory [b, b + extent) lies in one registered region, by binary search over
    /// the sorted starts. Call with `lock` held.
    private func inRegion(_ b: UnsafePointer<Float>, transB: Bool, k: Int, n: Int, ldb: Int) -> Bool {
        let address = UInt(bitPattern: b)
        let extent = UInt(((transB ? (n - 1) * ldb + k : (k - 1) * ldb + n)) * 4)
        var lo = 0, hi = regions.count
        while lo < hi { let mid = (lo + hi) / 2; if regions[mid].start <= address { lo = mid + 1 } else { hi = mid } }
        return lo > 0 && address + extent <= regions[lo - 1].end
    }

    /// The packed op(B) for this product when B lies inside a registered tensor and was used before;
    /// nil: pack on the fly. Packs (outside the lock) on the second use.
    func packedB(_ b: UnsafePointer<Float>, transB: Bool, k: Int, n: Int, ldb: Int, kernel: GEMMKernel, kc: Int) -> UnsafePointer<Float>? {
        guard packs else { return nil }
        let key = Key(address: UInt(bitPattern: b), transB: transB, k: k, n: n, ldb: ldb, kernel: kernel, kc: kc)
        let need: Int
        lock.lock()
        // The region test first: most products' B, activations, lie in none and need no hashing.
        guard inRegion(b, transB: transB, k: k, n: n, ldb: ldb) else { lock.unlock(); return nil }
        if let p = packed[key] { lock.unlock(); return UnsafePointer(p.data) }
        if seen.insert(key).inserted { lock.unlock(); return nil }   // first use: not worth packing yet
        need = kernel.packedFloats(n: n, k: k)
        guard packedFloats + need <= budgetFloats else { lock.unlock(); return nil }
        lock.unlock()

        let p = Packed(floats: need)
        if kernel == .avx512 {
            pr_sgemm_avx512_pack_b(transB ? 1 : 0, n, k, b, ldb, kc, p.data)
        } else {
            pr_sgemm_avx2_pack_b(transB ? 1 : 0, n, k, b, ldb, kc, p.data)
        }
        lock.lock(); defer { lock.unlock() }
        if let other = packed[key] { return UnsafePointer(other.data) }   // another thread packed it meanwhile
        packed[key] = p
        packedFloats += need
        return UnsafePointer(p.data)
    }
}
