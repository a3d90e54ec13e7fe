// What the two SGEMM kernels (gemm.c: AVX-512, gemm_avx2.c: AVX2) share: the per-thread packing
// buffers, packing of A into MR-row panels, the loop nest over MC×KC blocks of A and KC×NC blocks
// of B, and the row-exact tile dispatch. Included by each kernel file after it defines
// MR, NR and its target attribute GEMM_TARGET; the file then defines kernel_strided_rows, expands
// ROW_EXACT_TILE (which defines the micro-kernels kernel, kernel_rows and kernel_cols), copy_b_row and
// the square transpose named by TRANSPOSE_B (TRANSPOSE_B_WIDTH floats on a side), which
// pack_b_block below uses, and expands GEMM_DRIVER(name, direct_limit). Not a public header.
#include <stdlib.h>

#ifndef SPREAD_PREFETCH_SWEEPS
#define SPREAD_PREFETCH_SWEEPS 1000000000L  /* off: the first sweep prefetches the next panel */
#endif

static inline long min_l(long a, long b) { return a < b ? a : b; }

// Per-thread packing buffers, grown on demand and kept (callers are the core's worker threads).
static _Thread_local float *pack_a = NULL, *pack_b = NULL;
static _Thread_local long pack_a_size = 0, pack_b_size = 0;

static float *ensure(float **buf, long *size, long need) {
    if (*size < need) {
        free(*buf);
        *buf = aligned_alloc(64, (size_t)((need * 4 + 63) / 64 * 64));
        *size = *buf ? need : 0;
    }
    return *buf;
}

#ifdef PACK_A_PANEL16
// A kernel file may define PACK_A_PANEL16 (MR must be 12): a full panel's elements (i, p0 + p),
// p < 16, written as the loop below writes them.
_Static_assert(MR == 12, "PACK_A_PANEL16 packs 12-row panels");
GEMM_TARGET static void PACK_A_PANEL16(const float *src, long lda, float *dst);
#endif
#ifdef PACK_A_PANEL8
// Or PACK_A_PANEL8 (MR must be 6): the same for p < 8, writing only dst[0 ..< 8·MR].
_Static_assert(MR == 6, "PACK_A_PANEL8 packs 6-row panels");
GEMM_TARGET static void PACK_A_PANEL8(const float *src, long lda, float *dst);
#endif

// op(A)[ic.., pc..] (mc×kc) into panels of MR rows: panel r holds element (i, p) at p*MR + i.
static void pack_a_block(int transA, const float *a, long lda, long ic, long pc, long mc, long kc, float *ap) {
    if (transA) {
        // op(A)'s column p is A's row pc + p (a weight gradient's Aᵀ, rows lda floats apart).
        // Eight panels at a time, row by row: each row's 8·MR values (whole cache lines) are copied
        // out to the eight panels while the row eight ahead is prefetched. Panel by panel (MR
        // floats from each of kc rows) stalled on every row's first load; a row's mc values at
        // once scatter over mc/MR panels. Only data moves: the panels are those of Aᵀ written out.
        enum { G = 8 };
        for (long ir0 = 0; ir0 < mc; ir0 += G * MR)
        for (long p = 0; p < kc; p++) {
            const float *src = a + (pc + p) * lda + ic;
            long hi = min_l(mc, ir0 + G * MR);
            if (p + 8 < kc)  // the row eight ahead: its lines arrive while these are dealt out
                for (long j = ir0; j < hi; j += 16) __builtin_prefetch(src + 8 * lda + j);
            for (long ir = ir0; ir < hi; ir += MR) {
                long mr = min_l(MR, mc - ir);
                float *d = ap + ir * kc + p * MR;
                if (mr == MR) {
                    __builtin_memcpy(d, src + ir, MR * sizeof(float));
                } else {
                    long i = 0;
                    for (; i < mr; i++) d[i] = src[ir + i];
                    for (; i < MR; i++) d[i] = 0;
                }
            }
        }
        return;
    }
    for (long ir = 0; ir < mc; ir += MR) {
        long mr = min_l(MR, mc - ir);
        float *dst = ap + ir * kc;
        const float *src = a + (ic + ir) * lda + pc;
        if (mr == MR) {
            long p = 0;
#ifdef PACK_A_PANEL16
            for (; p + 16 <= kc; p += 16) PACK_A_PANEL16(src + p, lda, dst + p * MR);
#endif
#ifdef PACK_A_PANEL8
            for (; p + 8 <= kc; p += 8) PACK_A_PANEL8(src + p, lda, dst + p * MR);
#endif
            for (; p < kc; p++) {
                float *d = dst + p * MR;
#pragma clang loop unroll(full)
                for (int i = 0; i < MR; i++) d[i] = src[i * lda + p];
            }
        } else {
            for (long p = 0; p < kc; p++) {
                float *d = dst + p * MR;
                for (long i = 0; i < MR; i++) d[i] = i < mr ? src[i * lda + p] : 0;
            }
        }
    }
}


// The kernel file's copy of one row's NR columns of B into a packed panel row: src[0 ..< nr]
// to dst[0 ..< nr], zeros in dst[nr ..< NR].
GEMM_TARGET static inline void copy_b_row(const float *src, float *dst, long nr);

// op(B) = B (not transposed), [pc.., jc..] (kc×nc) into panels of NR columns (pack_b_block's
// layout: element (p, j) at p*NR + j of its panel). Row p of B holds the block's row p. Eight
// panels at a time, row by row: each row's 8·NR values are copied out to the eight panels while
// the row eight ahead is prefetched (panel by panel, NR floats from each of kc rows ldb apart,
// stalled on every row's load).
GEMM_TARGET static void pack_b_rows(const float *b, long ldb, long pc, long jc, long kc, long nc, float *bp) {
    enum { G = 8 };
    for (long jr0 = 0; jr0 < nc; jr0 += G * NR) {
        long hi = min_l(nc, jr0 + G * NR);
        for (long p = 0; p < kc; p++) {
            const float *src = b + (pc + p) * ldb + jc;
            if (p + 8 < kc)
                for (long j = jr0; j < hi; j += 16) __builtin_prefetch(src + 8 * ldb + j);
            for (long jr = jr0; jr < hi; jr += NR) copy_b_row(src + jr, bp + jr * kc + p * NR, min_l(NR, nc - jr));
        }
    }
}

// The kernel file's square register transpose, TRANSPOSE_B_WIDTH (TB) floats on a side:
// dst[r·ldd + c] = src[c·lds + r] for r, c < TB.
#define TB TRANSPOSE_B_WIDTH
_Static_assert(NR % TB == 0, "a B panel is a whole number of transposed blocks wide");
GEMM_TARGET static inline void TRANSPOSE_B(const float *src, long lds, float *dst, long ldd);

// One TB×TB block of a transposed B's panel: rows j0.. of the panel's source (src, rows ldb
// apart), values p0.. of them, into the panel dst (element (p, j) at p*NR + j); full blocks are
// transposed in registers, a ragged one (pl < TB values, or past column nr) element by element,
// zeros past column nr.
GEMM_TARGET static inline void pack_b_transposed_block(const float *src, long ldb, float *dst, long p0, long pl, long j0, long nr) {
    if (pl == TB && j0 + TB <= nr) {
        TRANSPOSE_B(src + j0 * ldb + p0, ldb, dst + p0 * NR + j0, NR);
    } else {
        for (long p = p0; p < p0 + pl; p++)
            for (long j = j0; j < j0 + TB; j++) dst[p * NR + j] = j < nr ? src[j * ldb + p] : 0;
    }
}

// op(B)[pc.., jc..] (kc×nc) into panels of NR columns: panel holds element (p, j) at p*NR + j.
// B not transposed: pack_b_rows. Transposed: column j of op(B) is row j of B, contiguous in p;
// the panel is TB×TB blocks (pack_b_transposed_block). Only data moves, each element once, so the
// order of the blocks never changes the panel. A kernel file that defines PACK_B_ROW_GROUPS_OUTER
// packs a panel one group of TB source rows at a time over all of kc (TB read streams), the
// others p block by p block across the panel's NR rows (NR streams): with NR = 32 rows read side
// by side the transposed packing of AMD Zen 4 (family 25 model 17, 2026-12-07, a C harness of
// this loop, one thread) moved 1.3–1.45× fewer bytes per second than with the 16 of one group
// (W of 2048 × 512, 512 × 2048, 2048 × 2048 and 32128 × 512, kc 384, nc 160: 24–29 against
// 32–42 GB/s from L3, 8.2 against 11.4–12.0 GB/s from memory). The AVX2 kernel's 16-row panels
// measured mixed there (0.9–1.3×) and keep the p-outer order.
GEMM_TARGET static void pack_b_block(int transB, const float *b, long ldb, long pc, long jc, long kc, long nc, float *bp) {
    if (!transB) {
        pack_b_rows(b, ldb, pc, jc, kc, nc, bp);
        return;
    }
    for (long jr = 0; jr < nc; jr += NR) {
        long nr = min_l(NR, nc - jr);
        float *dst = bp + jr * kc;
        const float *src = b + (jc + jr) * ldb + pc;
#ifdef PACK_B_ROW_GROUPS_OUTER
        for (long j0 = 0; j0 < NR; j0 += TB)
            for (long p0 = 0; p0 < kc; p0 += TB) pack_b_transposed_block(src, ldb, dst, p0, min_l(TB, kc - p0), j0, nr);
#else
        for (long p0 = 0; p0 < kc; p0 += TB)
            for (long j0 = 0; j0 < NR; j0 += TB) pack_b_transposed_block(src, ldb, dst, p0, min_l(TB, kc - p0), j0, nr);
#endif
    }
}
#undef TB

// kernel_strided: the register tile with only its first mr rows computed, by calling the kernel
// file's kernel_strided_rows(..., R) with R = mr as a constant (one specialised copy per row count
// below MR). Every element is the same chain of FMAs in the same order whatever the number of
// rows, so the bits do not depend on mr, while a product with one row (a decoding step's attention:
// one query per batch row and head) does 1/MR of the FMAs. Expanded once per kernel file, after its
// kernel_strided_rows; it also defines the three micro-kernels on top of kernel_strided.
#define ROW_CASE(R) case R: if (R < MR) { kernel_strided_rows(kc, a, rs, cs, bp, c, ldc, mr, nr, alpha, beta, R < MR ? R : MR, pfb, pfn); return; } break;
#define ROW_EXACT_TILE \
_Static_assert(MR <= 12, "ROW_EXACT_TILE specialises row counts 1..11"); \
GEMM_TARGET static inline __attribute__((always_inline)) void kernel_strided( \
        long kc, const float *restrict a, long rs, long cs, const float *restrict bp, float *c, long ldc, \
        long mr, long nr, float alpha, float beta, const float *pfb, long pfn) { \
    switch (mr >= MR ? MR : mr) { \
    ROW_CASE(1) ROW_CASE(2) ROW_CASE(3) ROW_CASE(4) ROW_CASE(5) ROW_CASE(6) \
    ROW_CASE(7) ROW_CASE(8) ROW_CASE(9) ROW_CASE(10) ROW_CASE(11) \
    default: break; \
    } \
    kernel_strided_rows(kc, a, rs, cs, bp, c, ldc, mr, nr, alpha, beta, MR, pfb, pfn); \
} \
/* The micro-kernels GEMM_DRIVER calls: a packed MR-row panel of A (kernel), or A read in place \
   by rows (kernel_rows: row stride lda) or by columns (kernel_cols: transposed A). */ \
GEMM_TARGET static void kernel(long kc, const float *restrict ap, const float *restrict bp, float *c, long ldc, \
                               long mr, long nr, float alpha, float beta, const float *pfb, long pfn) { \
    kernel_strided(kc, ap, 1, MR, bp, c, ldc, mr, nr, alpha, beta, pfb, pfn); \
} \
GEMM_TARGET static void kernel_rows(long kc, const float *restrict a, long lda, const float *restrict bp, float *c, \
                                    long ldc, long nr, float alpha, float beta) { \
    kernel_strided(kc, a, lda, 1, bp, c, ldc, MR, nr, alpha, beta, NULL, 0); \
} \
GEMM_TARGET static void kernel_cols(long kc, const float *restrict a, long lda, const float *restrict bp, float *c, \
                                    long ldc, long nr, float alpha, float beta) { \
    kernel_strided(kc, a, 1, lda, bp, c, ldc, MR, nr, alpha, beta, NULL, 0); \
}

// The loop nest: ic → pc → jc → ir → jr. A's MC×KC block is packed once per (ic, pc) and its
// MR×KC micro-panels (the broadcast side of the register tile, 18 KB for 12 × 384) stay in L1 while
// the kernel sweeps the KC×NC block of B, packed per (ic, pc, jc) and sized to stay in L2 (the
// vector side, streamed). It is BLIS's order with the roles of A and B swapped, because this tile
// broadcasts A and loads vectors of B (BLIS's Skylake-X tile does the reverse). Narrow products
// (n ≤ DIRECT_LIMIT) read A in place instead, only a ragged last panel packed. C is scaled by beta
// on the first k block only, and each element of C is the same chain of operations whatever MC,
// NC and the loop order: acc over one k block in order, then alpha·acc + bet·C, blocks in k order.
// A prepacked B (a frozen weight) comes from memory, not from a packing pass just run: with few
// rows of A (a decoding step's LM head, 56 × 32128 × 512: 66 MB of B per step) each block's first
// row-panel sweep (ir = 0) waited on its loads. That sweep prefetches the next panel of B (across
// jc blocks too) while it computes the current one, so the stream overlaps the FMAs; the later
// sweeps find the block in L2. A kernel file may define SPREAD_PREFETCH_SWEEPS: a block of at least
// that many row-panel sweeps instead prefetches the whole next block of B (the packed copy is one
// contiguous run of blocks), spread evenly over all its kernel calls, so the stream is read at the
// pace of the FMAs rather than all during the first sweep (the first sweep of a 56-row product is
// a tenth of its FMAs but all of its reads; measured on AMD Zen 3: gemm_avx2.c). Only prefetches (`pfb`,
// `pfn` lines of 64 bytes from it): no value or order changes.
// `prepacked` (NULL: pack B here) is op(B) packed whole by NAME_pack_b: block pc of it starts at
// prepacked + pc·npad (npad = n rounded up to NR) and its panels are those pack_b_block would
// write, so both paths run the same kernel calls on the same values and give the same bits.
// Expanded once per kernel file: NAME (packs B on the fly), NAME_packed (reads a packed B),
// NAME_pack_b (packs op(B) whole), NAME_pack_b_cols (the panels of some columns of it, so threads
// can share the packing) and NAME_packed_size (floats the packed B takes).
#define GEMM_DRIVER(NAME, DIRECT_LIMIT) \
GEMM_TARGET static void NAME##_nest(int transA, int transB, long m, long n, long k, float alpha, \
                      const float *a, long lda, const float *b, long ldb, const float *prepacked, \
                      float beta, float *c, long ldc, long MC, long KC, long NC) { \
    if (m <= 0 || n <= 0) return; \
    if (k <= 0) { \
        for (long i = 0; i < m; i++) \
            for (long j = 0; j < n; j++) c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j]; \
        return; \
    } \
    if (MC < MR || KC < 1 || NC < NR) abort(); \
    if (prepacked) NC = NC / NR * NR; /* blocks must start on the packed panels' columns (NC never changes bits) */ \
    /* Packing writes whole panels (a block's ragged edge padded with zeros), so the buffers hold \
       NC and MC rounded up to the tile. */ \
    long ncMax = min_l((NC + NR - 1) / NR * NR, (n + NR - 1) / NR * NR), kcMax = min_l(KC, k); \
    long mcMax = min_l((MC + MR - 1) / MR * MR, (m + MR - 1) / MR * MR); \
    long npad = (n + NR - 1) / NR * NR; \
    /* Narrow products (per-head attention, n = 64) do only 2n FLOPs per element of A, so packing A \
       would cost about as much as the product: the kernel reads full MR-row panels of A in place. */ \
    int direct = n <= (DIRECT_LIMIT); \
    float *bp = prepacked ? NULL : ensure(&pack_b, &pack_b_size, kcMax * ncMax); \
    float *ap = ensure(&pack_a, &pack_a_size, direct ? kcMax * MR : kcMax * mcMax); \
    if ((!prepacked && !bp) || !ap) abort(); \
    for (long ic = 0; ic < m; ic += MC) { \
        long mc = min_l(MC, m - ic); \
        for (long pc = 0; pc < k; pc += KC) { \
            long kc = min_l(KC, k - pc); \
            float bet = pc == 0 ? beta : 1.0f; \
            if (!direct) pack_a_block(transA, a, lda, ic, pc, mc, kc, ap); \
            else if (mc % MR) pack_a_block(transA, a, lda, ic + mc / MR * MR, pc, mc % MR, kc, ap); /* ragged last panel */ \
            for (long jc = 0; jc < n; jc += NC) { \
                long nc = min_l(NC, n - jc); \
                const float *bb; \
                if (prepacked) bb = prepacked + pc * npad + jc * kc; \
                else { pack_b_block(transB, b, ldb, pc, jc, kc, nc, bp); bb = bp; } \
                /* Spread prefetching: the next block (up to this one's size, not past the packed \
                   copy's end) in `per` lines per kernel call, call s taking lines s·per onwards. */ \
                long panels = (nc + NR - 1) / NR, sweeps = (mc + MR - 1) / MR, per = 0, nlines = 0; \
                const float *nxt = NULL; \
                if (prepacked && !direct && sweeps >= SPREAD_PREFETCH_SWEEPS) { \
                    nxt = bb + panels * NR * kc; \
                    long left = (long)(prepacked + k * npad - nxt), want = panels * NR * kc; \
                    nlines = (left < want ? left : want) / 16; \
                    if (nlines > 0) per = (nlines + sweeps * panels - 1) / (sweeps * panels); \
                } \
                for (long ir = 0; ir < mc; ir += MR) { \
                    long mr = min_l(MR, mc - ir); \
                    float *crow = c + (ic + ir) * ldc + jc; \
                    for (long jr = 0; jr < nc; jr += NR) { \
                        long nr = min_l(NR, nc - jr); \
                        float *ct = crow + jr; \
                        if (!direct) { \
                            const float *pf = NULL; \
                            long pn = 0; \
                            if (per > 0) { \
                                long s0 = ((ir / MR) * panels + jr / NR) * per; \
                                if (s0 < nlines) { pf = nxt + s0 * 16; pn = min_l(per, nlines - s0); } \
                            } else if (!nxt && ir == 0 && prepacked && jc + jr + NR < n) { \
                                pf = bb + (jr + NR) * kc; \
                                pn = kc * NR / 16; \
                            } \
                            kernel(kc, ap + ir * kc, bb + jr * kc, ct, ldc, mr, nr, alpha, bet, pf, pn); \
                        } else if (mr < MR) { \
                            kernel(kc, ap, bb + jr * kc, ct, ldc, mr, nr, alpha, bet, NULL, 0); \
                        } else if (!transA) { \
                            kernel_rows(kc, a + (ic + ir) * lda + pc, lda, bb + jr * kc, ct, ldc, nr, alpha, bet); \
                        } else { \
                            kernel_cols(kc, a + pc * lda + ic + ir, lda, bb + jr * kc, ct, ldc, nr, alpha, bet); \
                        } \
                    } \
                } \
            } \
        } \
    } \
} \
GEMM_TARGET void NAME(int transA, int transB, long m, long n, long k, float alpha, \
                      const float *a, long lda, const float *b, long ldb, \
                      float beta, float *c, long ldc, long MC, long KC, long NC) { \
    NAME##_nest(transA, transB, m, n, k, alpha, a, lda, b, ldb, NULL, beta, c, ldc, MC, KC, NC); \
} \
GEMM_TARGET void NAME##_packed(int transA, long m, long n, long k, float alpha, const float *a, long lda, \
                               const float *packed, float beta, float *c, long ldc, long MC, long KC, long NC) { \
    NAME##_nest(transA, 0, m, n, k, alpha, a, lda, NULL, 0, packed, beta, c, ldc, MC, KC, NC); \
} \
long NAME##_packed_size(long n, long k) { return (n + NR - 1) / NR * NR * (k > 0 ? k : 0); } \
GEMM_TARGET void NAME##_pack_b_cols(int transB, long n, long k, const float *b, long ldb, long KC, long j0, long j1, \
                                    float *out) { \
    long npad = (n + NR - 1) / NR * NR; \
    if (KC < 1 || j0 < 0 || j0 % NR) abort(); \
    if (j1 > n) j1 = n; \
    if (j1 <= j0) return; \
    for (long pc = 0; pc < k; pc += KC) { \
        long kc = min_l(KC, k - pc); \
        pack_b_block(transB, b, ldb, pc, j0, kc, j1 - j0, out + pc * npad + j0 * kc); \
    } \
} \
GEMM_TARGET void NAME##_pack_b(int transB, long n, long k, const float *b, long ldb, long KC, float *out) { \
    NAME##_pack_b_cols(transB, n, k, b, ldb, KC, 0, n, out); \
}
