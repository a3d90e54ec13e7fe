// Opt-in bf16 GEMM for evaluation on CPUs with AVX512-BF16 (Sources/Tensor/BF16Products.swift):
// C = alpha · A · op(B) + beta · C with A and op(B) rounded to bfloat16 (round to nearest even,
// by VCVTNE2PS2BF16) and the products summed in fp32 by VDPBF16PS, which adds two products
// a[2q]·b[2q] + a[2q+1]·b[2q+1] into each fp32 lane per instruction: twice the multiply-adds of an
// fp32 FMA of the same width. Both instructions treat denormal inputs as zero and flush denormal
// results (they ignore MXCSR), so values below 2^-126 in magnitude count as 0.
//
// Layout: a "unit" is a uint32 holding two bf16 values, the one for even p in its low half. op(B)
// is packed whole once per product (pr_bf16_pack_b_cols; threads may pack disjoint column panels):
// panels of NR = 32 columns, each holding its units (q, j) at (panel·kqp + q)·32 + j, kq = ⌈k/2⌉
// units (an odd k's last unit has a zero high half) padded with zero units to kqp, the next
// multiple of 16, so the AMX kernel below reads whole 16-unit tiles. A is packed per MR-row panel and k block: unit
// (i, q) at q·MR + i, rows past the matrix edge zero. The loop nest is the fp32 kernels' order
// (gemm_common.h: ic → pc → jc → ir → jr, B's KC×NC block in L2, A's MR×KC panel in L1), with KC
// counted in units. Each element of C is summed over k in blocks of KC units, each in order, then
// alpha·acc + beta·C on the first block and + C after, so the result does not depend on MC, NC or
// how a caller splits the rows among threads; it depends on KC.
#include "CGemm.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#if defined(__linux__)
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif
#endif

#define BMR 12
#define BNR 32

int pr_gemm_bf16_available(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
        && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512bf16");
#else
    return 0;
#endif
}

// Units per panel column: ⌈k/2⌉ rounded up to a multiple of 16.
static inline long panel_units(long k) { return ((k + 1) / 2 + 15) / 16 * 16; }

long pr_bf16_packed_b_units(long n, long k) {
    return (n + BNR - 1) / BNR * BNR * panel_units(k);
}

#if defined(__x86_64__)
#include "avx512_tile.h"
#define BF16 __attribute__((target("avx512f,avx512vl,avx512bw,avx512bf16")))

static inline long min_l(long a, long b) { return a < b ? a : b; }

// C = beta · C (beta == 0: C set to 0, not read): a product with k == 0.
static void scale_c(long m, long n, float beta, float *c, long ldc) {
    for (long i = 0; i < m; i++)
        for (long j = 0; j < n; j++) c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j];
}

// *buf (64-byte aligned, *have units) grown to at least `units` (contents not kept); aborts
// when out of memory. Each kernel keeps one such thread-local buffer for its packed A.
static uint32_t *grown_units(uint32_t **buf, long *have, long units) {
    if (*have < units) {
        free(*buf);
        *buf = aligned_alloc(64, (size_t)((units * 4 + 63) / 64 * 64));
        *have = *buf ? units : 0;
        if (!*buf) abort();
    }
    return *buf;
}

// The 16 units of x[2q0 ..< 2q0 + 32] (values at or past `len` floats read as 0): unit u holds
// x[2q0 + 2u] (low) and x[2q0 + 2u + 1] (high), which is the conversion's own element order.
BF16 static inline __m512i units_of_row(const float *x, long len) {
    __m512 lo = _mm512_maskz_loadu_ps(lanes(len), x);
    __m512 hi = _mm512_maskz_loadu_ps(lanes(len - 16), x + 16);
    return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
}

// The units pairing two rows element by element: unit j holds x[j] (low) and y[j] (high, 0 when
// y is NULL), for j < 16 (lanes at or past `len` zero).
BF16 static inline __m512i units_of_pair(const float *x, const float *y, long len) {
    __mmask16 m = lanes(len);
    __m512 yv = y ? _mm512_maskz_loadu_ps(m, y) : _mm512_setzero_ps();
    __m512i v = (__m512i)_mm512_cvtne2ps_pbh(yv, _mm512_maskz_loadu_ps(m, x));
    // v's 16-bit elements: x0..x15, y0..y15; interleave them to x0 y0 x1 y1 …
    const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                         23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    return _mm512_permutexvar_epi16(idx, v);
}

// Transposes the 16 × 16 matrix of uint32 whose row i is r[i], in place: afterwards r[j] holds
// element j of every old row (32-bit, then 64-bit unpacks within 128-bit lanes, then two rounds
// of 128-bit lane shuffles).
BF16 static inline void transpose16(__m512i r[16]) {
    __m512i t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);      // per lane: a0 b0 a1 b1
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);  // a2 b2 a3 b3
    }
    for (int i = 0; i < 4; i++) {  // r[4i + c], lane L: rows 4i ..< 4i + 4 at column 4L + c
        r[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        r[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        r[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        r[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    for (int c = 0; c < 4; c++) {
        __m512i x0 = _mm512_shuffle_i32x4(r[c], r[4 + c], 0x88), x1 = _mm512_shuffle_i32x4(r[c], r[4 + c], 0xDD);
        __m512i y0 = _mm512_shuffle_i32x4(r[8 + c], r[12 + c], 0x88), y1 = _mm512_shuffle_i32x4(r[8 + c], r[12 + c], 0xDD);
        t[c] = _mm512_shuffle_i32x4(x0, y0, 0x88);       // column c
        t[4 + c] = _mm512_shuffle_i32x4(x1, y1, 0x88);   // column 4 + c
        t[8 + c] = _mm512_shuffle_i32x4(x0, y0, 0xDD);   // column 8 + c
        t[12 + c] = _mm512_shuffle_i32x4(x1, y1, 0xDD);  // column 12 + c
    }
    for (int i = 0; i < 16; i++) r[i] = t[i];
}

BF16 void pr_bf16_pack_b_cols(int transB, long n, long k, const float *b, long ldb, long j0, long j1, unsigned int *out) {
    if (j0 < 0 || j0 % BNR) abort();
    if (j1 > n) j1 = n;
    long kq = (k + 1) / 2, kqp = panel_units(k);
    for (long jp = j0; jp < j1; jp += BNR) {
        uint32_t *panel = out + (jp / BNR) * kqp * BNR;
        memset(panel + kq * BNR, 0, (size_t)((kqp - kq) * BNR) * 4);
        long nr = min_l(BNR, n - jp);
        if (transB) {
            // Column j of op(B) is row j of B, contiguous in p: 16 columns at a time give 16
            // vectors of 16 units (q0 ..< q0 + 16 of one column each), transposed into the
            // panel's rows q0 ..< q0 + 16 (columns past nr zero).
            for (long h = 0; h < BNR; h += 16) {
                long cols = nr - h;
                for (long q0 = 0; q0 < kq; q0 += 16) {
                    __m512i r[16];
                    for (long j = 0; j < 16; j++)
                        r[j] = j < cols ? units_of_row(b + (jp + h + j) * ldb + 2 * q0, k - 2 * q0) : _mm512_setzero_si512();
                    transpose16(r);
                    for (long u = 0; u < 16; u++) _mm512_store_si512((void *)(panel + (q0 + u) * BNR + h), r[u]);
                }
            }
        } else {
            // Row p of op(B) is row p of B, contiguous in j: rows 2q and 2q + 1 interleaved.
            for (long q = 0; q < kq; q++) {
                const float *x = b + 2 * q * ldb + jp;
                const float *y = 2 * q + 1 < k ? x + ldb : NULL;
                for (long h = 0; h < BNR; h += 16)  // an odd k's last unit: high half 0
                    _mm512_storeu_si512((void *)(panel + q * BNR + h), units_of_pair(x + h, y ? y + h : NULL, nr - h));
            }
        }
    }
}

// A's rows ic ..< ic + mr (mr ≤ MR; A not transposed), units pc ..< pc + kcq, into a panel:
// unit (i, q) at q·MR + i; rows past mr zero.
BF16 static void pack_a_panel(const float *a, long lda, long k, long mr, long pc, long kcq, uint32_t *dst) {
    uint32_t tmp[16] __attribute__((aligned(64)));
    for (long i = 0; i < BMR; i++) {
        if (i >= mr) {
            for (long q = 0; q < kcq; q++) dst[q * BMR + i] = 0;
            continue;
        }
        const float *row = a + i * lda;
        for (long q0 = 0; q0 < kcq; q0 += 16) {
            long p = 2 * (pc + q0);
            _mm512_store_si512((void *)tmp, units_of_row(row + p, k - p));
            long qn = min_l(16, kcq - q0);
            for (long u = 0; u < qn; u++) dst[(q0 + u) * BMR + i] = tmp[u];
        }
    }
}

// C tile (mr × nr of it valid) = alpha · acc + bet · C (bet == 0: C not read), acc the sum over
// kcq units of A's panel `ap` and B's panel `bp`.
BF16 static void kernel_bf16(long kcq, const uint32_t *restrict ap, const uint32_t *restrict bp, float *c, long ldc,
                             long mr, long nr, float alpha, float bet) {
    __m512 c0[BMR], c1[BMR];
#pragma clang loop unroll(full)
    for (int i = 0; i < BMR; i++) { c0[i] = _mm512_setzero_ps(); c1[i] = _mm512_setzero_ps(); }
    for (long q = 0; q < kcq; q++) {
        __m512bh b0 = (__m512bh)_mm512_load_si512((const void *)bp);
        __m512bh b1 = (__m512bh)_mm512_load_si512((const void *)(bp + 16));
#pragma clang loop unroll(full)
        for (int i = 0; i < BMR; i++) {
            __m512bh av = (__m512bh)_mm512_set1_epi32((int)ap[i]);
            c0[i] = _mm512_dpbf16_ps(c0[i], av, b0);
            c1[i] = _mm512_dpbf16_ps(c1[i], av, b1);
        }
        ap += BMR;
        bp += BNR;
    }
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(bet);
    __mmask16 m0 = lanes(nr), m1 = lanes(nr - 16);
#pragma clang loop unroll(full)
    for (int i = 0; i < BMR; i++) {
        if (i < mr) store_tile_row(c + i * ldc, c0[i], c1[i], va, vb, bet, m0, m1);
    }
}

static _Thread_local uint32_t *bf16_pack_a = NULL;
static _Thread_local long bf16_pack_a_units = 0;

BF16 void pr_sgemm_bf16_packed(long m, long n, long k, float alpha, const float *a, long lda, const unsigned int *packed,
                               float beta, float *c, long ldc, long MC, long KC, long NC) {
    if (m <= 0 || n <= 0) return;
    long kq = (k + 1) / 2, kqp = panel_units(k);
    if (kq == 0) {
        scale_c(m, n, beta, c, ldc);
        return;
    }
    if (MC < BMR || KC < 1 || NC < BNR) abort();
    NC = NC / BNR * BNR;  // blocks start on the packed panels' columns
    long kcMax = min_l(KC, kq), mcMax = min_l((MC + BMR - 1) / BMR * BMR, (m + BMR - 1) / BMR * BMR);
    uint32_t *ap = grown_units(&bf16_pack_a, &bf16_pack_a_units, kcMax * mcMax);
    for (long ic = 0; ic < m; ic += MC) {
        long mc = min_l(MC, m - ic);
        for (long pc = 0; pc < kq; pc += KC) {
            long kcq = min_l(KC, kq - pc);
            float bet = pc == 0 ? beta : 1.0f;
            for (long ir = 0; ir < mc; ir += BMR)
                pack_a_panel(a + (ic + ir) * lda, lda, k, min_l(BMR, mc - ir), pc, kcq, ap + ir * kcq);
            for (long jc = 0; jc < n; jc += NC) {
                long nc = min_l(NC, n - jc);
                for (long ir = 0; ir < mc; ir += BMR) {
                    long mr = min_l(BMR, mc - ir);
                    for (long jr = 0; jr < nc; jr += BNR) {
                        long j = jc + jr;
                        const uint32_t *bb = packed + ((j / BNR) * kqp + pc) * BNR;
                        kernel_bf16(kcq, ap + ir * kcq, bb, c + (ic + ir) * ldc + j, ldc, mr, min_l(BNR, n - j), alpha, bet);
                    }
                }
            }
        }
    }
}

// ---- AMX (Intel Sapphire Rapids and later: AMX-TILE, AMX-BF16) ----------------------------------
// The same products on the tile unit: TDPBF16PS multiplies a 16 × 32 bf16 tile of A by a 32 × 16
// bf16 tile of op(B) (16 rows of 16 units, the packed panels' own layout, read with a 128-byte
// stride) and adds the pairs into a 16 × 16 fp32 tile in fp32 (Intel's SDM describes separate
// partial sums of the even and the odd products, combined before the add), denormals as 0 (as
// VDPBF16PS). One call computes a 32 × 32 block of C in
// four accumulator tiles (rows 0–15 and 16–31 by columns 0–15 and 16–31) from two A and two B
// tiles, over the k block's units in steps of 16; the block is then written back as the AVX-512
// kernel does (alpha · acc + beta · C on the first k block, + C after). Blocks of KC units (a
// multiple of 16), so the bits depend on KC only, as above, not on MC, NC or the row split; they
// differ from the VDPBF16PS kernel's, which pairs the products in another order.
#define AMR 32

int pr_gemm_amx_available(void) {
#if defined(__linux__)
    static _Atomic int state = -1;  // -1 not asked yet; a race asks twice and stores the same value
    int known = atomic_load(&state);
    if (known >= 0) return known;
    int ok = 0;
    unsigned int eax, ebx, ecx, edx;
    if (pr_gemm_bf16_available() && __get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)
        && (edx & (1u << 22)) && (edx & (1u << 24))) {  // AMX-BF16, AMX-TILE
        // Linux hands out the tile registers' state only on request (ARCH_REQ_XCOMP_PERM for
        // XFEATURE_XTILEDATA), once per process; a kernel before 5.16 refuses and AMX stays off.
        ok = syscall(SYS_arch_prctl, 0x1023, 18) == 0;
    }
    atomic_store(&state, ok);
    return ok;
#else
    return 0;  // other systems: no way asked for the tile state here
#endif
}

#define AMX __attribute__((target("amx-tile,amx-bf16,avx512f,avx512vl,avx512bw,avx512bf16")))

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} __attribute__((packed)) tile_config;

// A's rows (rows ≤ AMR; A not transposed), units pc ..< pc + kcq, into a panel of AMR rows of
// kcqp units (kcq rounded up to 16): unit (i, q) at i·kcqp + q, the units past kcq and the rows
// past `rows` zero.
AMX static void pack_a_rows(const float *a, long lda, long k, long rows, long pc, long kcq, long kcqp, uint32_t *dst) {
    for (long i = 0; i < AMR; i++) {
        uint32_t *d = dst + i * kcqp;
        if (i >= rows) {
            memset(d, 0, (size_t)kcqp * 4);
            continue;
        }
        const float *row = a + i * lda;
        for (long q0 = 0; q0 < kcqp; q0 += 16) {
            long p = 2 * (pc + q0);
            _mm512_store_si512((void *)(d + q0), units_of_row(row + p, min_l(k - p, 2 * (kcq - q0))));
        }
    }
}

// C rows (mr ≤ 32 of them valid) × 32 columns (nr valid) = alpha · acc + bet · C, acc the sum
// over kcqp units of the A panel `ap` (row stride kcqp units) and B's panel rows `bp`.
AMX static void kernel_amx(long kcqp, const uint32_t *ap, long mr, const uint32_t *bp, float *c, long ldc, long nr,
                           float alpha, float bet, float *scratch) {
    const long as = kcqp * 4, bs = BNR * 4;
    _tile_zero(0);
    _tile_zero(1);
    if (mr > 16) {
        _tile_zero(2);
        _tile_zero(3);
        for (long q = 0; q < kcqp; q += 16) {
            _tile_loadd(4, ap + q, as);
            _tile_loadd(6, bp + q * BNR, bs);
            _tile_loadd(7, bp + q * BNR + 16, bs);
            _tile_loadd(5, ap + 16 * kcqp + q, as);
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 4, 7);
            _tile_dpbf16ps(2, 5, 6);
            _tile_dpbf16ps(3, 5, 7);
        }
        _tile_stored(2, scratch + 16 * 32, 128);
        _tile_stored(3, scratch + 16 * 32 + 16, 128);
    } else {
        for (long q = 0; q < kcqp; q += 16) {
            _tile_loadd(4, ap + q, as);
            _tile_loadd(6, bp + q * BNR, bs);
            _tile_loadd(7, bp + q * BNR + 16, bs);
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 4, 7);
        }
    }
    _tile_stored(0, scratch, 128);
    _tile_stored(1, scratch + 16, 128);
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(bet);
    __mmask16 m0 = lanes(nr), m1 = lanes(nr - 16);
    for (long i = 0; i < mr; i++)
        store_tile_row(c + i * ldc, _mm512_load_ps(scratch + i * 32), _mm512_load_ps(scratch + i * 32 + 16), va, vb, bet, m0, m1);
}

static _Thread_local uint32_t *amx_pack_a = NULL;
static _Thread_local long amx_pack_a_units = 0;

AMX void pr_sgemm_bf16_amx_packed(long m, long n, long k, float alpha, const float *a, long lda, const unsigned int *packed,
                                  float beta, float *c, long ldc, long MC, long KC, long NC) {
    if (m <= 0 || n <= 0) return;
    long kq = (k + 1) / 2, kqp = panel_units(k);
    if (kq == 0) {
        scale_c(m, n, beta, c, ldc);
        return;
    }
    if (MC < AMR || KC < 16 || NC < BNR) abort();
    MC = MC / AMR * AMR;
    KC = KC / 16 * 16;
    NC = NC / BNR * BNR;
    long kcMax = min_l(KC, kqp), mcMax = min_l(MC, (m + AMR - 1) / AMR * AMR);
    uint32_t *ap = grown_units(&amx_pack_a, &amx_pack_a_units, kcMax * mcMax);
    tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {
        cfg.rows[t] = 16;
        cfg.colsb[t] = 64;
    }
    _tile_loadconfig(&cfg);
    float scratch[32 * 32] __attribute__((aligned(64)));
    for (long ic = 0; ic < m; ic += MC) {
        long mc = min_l(MC, m - ic);
        for (long pc = 0; pc < kq; pc += KC) {
            long kcq = min_l(KC, kq - pc), kcqp = (kcq + 15) / 16 * 16;
            float bet = pc == 0 ? beta : 1.0f;
            for (long ir = 0; ir < mc; ir += AMR)
                pack_a_rows(a + (ic + ir) * lda, lda, k, min_l(AMR, mc - ir), pc, kcq, kcqp, ap + ir * kcqp);
            for (long jc = 0; jc < n; jc += NC) {
                long nc = min_l(NC, n - jc);
                for (long ir = 0; ir < mc; ir += AMR) {
                    long mr = min_l(AMR, mc - ir);
                    for (long jr = 0; jr < nc; jr += BNR) {
                        long j = jc + jr;
                        const uint32_t *bb = packed + ((j / BNR) * kqp + pc) * BNR;
                        kernel_amx(kcqp, ap + ir * kcqp, mr, bb, c + (ic + ir) * ldc + j, ldc, min_l(BNR, n - j), alpha, bet, scratch);
                    }
                }
            }
        }
    }
    _tile_release();
}

#else
int pr_gemm_amx_available(void) { return 0; }
void pr_sgemm_bf16_amx_packed(long m, long n, long k, float alpha, const float *a, long lda, const unsigned int *packed,
                              float beta, float *c, long ldc, long MC, long KC, long NC) { abort(); }
void pr_bf16_pack_b_cols(int transB, long n, long k, const float *b, long ldb, long j0, long j1, unsigned int *out) { abort(); }
void pr_sgemm_bf16_packed(long m, long n, long k, float alpha, const float *a, long lda, const unsigned int *packed,
                          float beta, float *c, long ldc, long MC, long KC, long NC) { abort(); }
#endif
