// Opt-in bf16 matrix products for evaluation (issue #21: "an opt-in bf16 GEMM for evaluation on
// hosts with AVX512-BF16, as a separately labelled mode that never enters the default numbers").
// Inside `BF16Products.with { … }` the products of an evaluation (no tape recording) round both
// operands to bfloat16 and sum in fp32 (CGemm's gemm_bf16.c: VDPBF16PS on AVX512-BF16, or the AMX
// tile unit's TDPBF16PS where the CPU has AMX-BF16); everything else (norms, softmax, residual
// adds, the loss) stays fp32. Off by default; nothing in training, the stored runs or `make
// bench`'s default rows uses it.
import CGemm
import Foundation

public enum BF16Products {
    /// AVX-512 F/VL/BW and AVX512-BF16 present and enabled by the OS.
    public static let available = pr_gemm_bf16_available() != 0

    /// The two kernels, named by the cpuinfo flag each needs. Their bits differ (each pairs and
    /// sums the products in its own order), so a result names the kernel it came from.
    public enum Kernel: String, CaseIterable, Sendable {
        /// VDPBF16PS in a 12 × 32 register tile (gemm_bf16.c's `kernel_bf16`).
        case avx512BF16 = "avx512_bf16"
        /// TDPBF16PS on the AMX tile unit, 32 × 32 blocks of C (`kernel_amx`): on Intel Sapphire
        /// Rapids and later, where VDPBF16PS runs no faster than fp32 FMAs.
        case amxBF16 = "amx_bf16"
    }

    /// AMX-TILE and AMX-BF16 present and the tile state granted by Linux (asked once).
    public static let amxAvailable = available && pr_gemm_amx_available() != 0

    /// Kernels this CPU runs.
    public static var availableKernels: [Kernel] { (available ? [.avx512BF16] : []) + (amxAvailable ? [.amxBF16] : []) }

    /// The kernel `with` uses unless told: `PROMPTREPRO_BF16_KERNEL` (avx512_bf16 or amx_bf16)
    /// when set to one this CPU runs, else AMX where available, else VDPBF16PS.
    public static let defaultKernel: Kernel = {
        if let name = ProcessInfo.processInfo.environment["PROMPTREPRO_BF16_KERNEL"], let k = Kernel(rawValue: name),
           availableKernels.contains(k) { return k }
        return amxAvailable ? .amxBF16 : .avx512BF16
    }()

    nonisolated(unsafe) private static var active: Kernel = .avx512BF16

    /// The kernel the products run on now (inside `with`), else the default.
    public static var kernel: Kernel { depth > 0 ? active : defaultKernel }

    nonisolated(unsafe) private static var depth = 0
    nonisolated(unsafe) private static var count = 0
    private static let lock = NSLock(), countLock = NSLock()

    /// Whether products run in bf16 now (inside `with`).
    public static var isActive: Bool { depth > 0 }

    /// Products that ran in bf16 in this process so far (for tests and the bench's record).
    public static var products: Int { countLock.lock(); defer { countLock.unlock() }; return count }

    /// Runs `body` with the qualifying products (`applies`) in bf16 on `kernel` (nil: the
    /// enclosing `with`'s, else `defaultKernel`). Nests. Not thread-safe to enter from several
    /// threads at once (call it around a whole evaluation).
    /// - Throws: `TensorError.invalidArgument` when this CPU lacks AVX512-BF16 (`available`) or
    ///   the kernel asked for (AMX needs amx_tile and amx_bf16, and Linux ≥ 5.16).
    public static func with<T>(kernel: Kernel? = nil, _ body: () throws -> T) throws -> T {
        guard available else {
            throw TensorError.invalidArgument(op: "bf16 products", detail: "this CPU has no AVX512-BF16 (flags avx512f, avx512vl, avx512bw, avx512_bf16 in /proc/cpuinfo); run in fp32")
        }
        let chosen = kernel ?? (depth > 0 ? active : defaultKernel)
        guard availableKernels.contains(chosen) else {
            throw TensorError.invalidArgument(op: "bf16 products", detail: "kernel \(chosen.rawValue) does not run on this CPU (it runs: \(availableKernels.map(\.rawValue).joined(separator: ", ")))")
        }
        let saved = active
        active = chosen
        depth += 1
        defer {
            depth -= 1
            active = saved
        }
        return try body()
    }

    /// Whether a product of this form runs in bf16: inside `with`, while no tape records or runs
    /// backward (training and gradients stay fp32), A not transposed, at least 16 rows (op(B) is
    /// converted once per product, which fewer rows would not repay) and k ≥ 2.
    @inline(__always)
    static func applies(transA: Bool, m: Int, k: Int) -> Bool {
        depth > 0 && !transA && m >= 16 && k >= 2 && !Tape.isRecording && Tape.running == nil
    }

    /// M, K and N blocking of a bf16 kernel, KC in units of two k values. VDPBF16PS: the fp32
    /// AVX-512 kernel's numbers, so an A panel (12 × KC units) takes its L1 share and a B block
    /// (KC × NC units) its L2 share. AMX: KC 256 units on every host (an A panel of 32 rows, 32 KiB,
    /// fits the 48 KiB L1d of every AMX CPU; a fixed KC keeps the bits the same on all of them) and
    /// NC giving the B block the fp32 kernel's L2 bytes.
    static func blocking(_ kernel: Kernel) -> (mc: Int, kc: Int, nc: Int) {
        let b = BLAS.blockings[.avx512]
        let mc = b?.mc ?? 4092, kc = b?.kc ?? 384, nc = b?.nc ?? 160
        switch kernel {
        case .avx512BF16: return (mc, kc, max(32, nc / 32 * 32))
        case .amxBF16: return (max(32, mc / 32 * 32), 256, max(32, kc * nc / 256 / 32 * 32))
        }
    }

    /// Rows `spans` of C = alpha · A · op(B) + beta · C in bf16 (A m×k row-major, lda; B stored
    /// n×k when `transB`, else k×n): op(B) is converted and packed once, the threads taking
    /// disjoint column panels, then each span's rows are split over the threads (serially inside
    /// `Parallel.units`). FLOPs counted as the spans' products.
    static func run(spans: [Range<Int>], transB: Bool, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
                    b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        let units = pr_bf16_packed_b_units(n, k)
        // The packed op(B) goes into one buffer kept for the rest of the process once bf16 ran
        // (grown to the largest, the LM head's: 33 MB in t5-small, 49 MB in t5-base), not a heap
        // block per product: blocks of that size freed between the activations left holes that
        // raised t5-base evaluation's peak RSS by 180 MB. A product that finds the buffer held by
        // another thread (per-head attention products run on every thread at once) or that
        // cannot grow it takes a heap block of its own.
        let locked = lock.try()
        let shared = locked ? ensureBuffer(units) : nil
        let own: UnsafeMutableRawPointer? = shared == nil ? aligned_alloc(64, (units * 4 + 63) / 64 * 64) : nil
        defer {
            if locked { lock.unlock() }
            free(own)
        }
        guard let packed = shared ?? own?.bindMemory(to: UInt32.self, capacity: units) else {
            fatalError("bf16 products: no memory for a packed operand of \(units * 4) bytes")
        }
        let serial = Parallel.insideUnits || Parallel.threads <= 1
        let panels = (n + 31) / 32
        if serial {
            pr_bf16_pack_b_cols(transB ? 1 : 0, n, k, b, ldb, 0, n, packed)
        } else {
            Parallel.forRange(panels, costPerItem: k * 32) { r in
                pr_bf16_pack_b_cols(transB ? 1 : 0, n, k, b, ldb, r.lowerBound * 32, r.upperBound * 32, packed)
            }
        }
        let kern = active, bl = blocking(kern)
        let product = kern == .amxBF16 ? pr_sgemm_bf16_amx_packed : pr_sgemm_bf16_packed
        for span in spans where !span.isEmpty {
            pr_flops_add(Int64(2 * span.count * n * k))
            let a0 = a + span.lowerBound * lda, c0 = c + span.lowerBound * ldc
            if serial {
                product(span.count, n, k, alpha, a0, lda, packed, beta, c0, ldc, bl.mc, bl.kc, bl.nc)
            } else {
                Parallel.forRangeGuided(span.count, quantum: kern == .amxBF16 ? 16 : 12, minQuanta: 2) { rows in
                    product(rows.count, n, k, alpha, a0 + rows.lowerBound * lda, lda, packed, beta,
                            c0 + rows.lowerBound * ldc, ldc, bl.mc, bl.kc, bl.nc)
                }
            }
        }
        countLock.lock()
        count += 1
        countLock.unlock()
    }

    nonisolated(unsafe) private static var buffer: UnsafeMutablePointer<UInt32>?
    nonisolated(unsafe) private static var capacity = 0

    /// The shared buffer with room for `units` (caller holds `lock`), nil when it cannot grow.
    private static func ensureBuffer(_ units: Int) -> UnsafeMutablePointer<UInt32>? {
        if capacity < units {
            free(buffer)
            buffer = aligned_alloc(64, (units * 4 + 63) / 64 * 64)?.bindMemory(to: UInt32.self, capacity: units)
            capacity = buffer == nil ? 0 : units
        }
        return buffer
    }
}
