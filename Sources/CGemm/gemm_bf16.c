// Opt-in bf16 GEMM for evaluation on CPUs with AVX512-BF16 (Sources/Tensor/BF16Products.swift):
// C = alpha · A · op(B) + beta · C with A and op(B) rounded to bfloat16 (round to nearest even,
// by VCVTNE2PS2BF16) and the products summed in fp32 by VDPBF16PS, which adds two products
// a[2q]·b[2q] + a[2q+1]·b[2q+1] into each fp32 lane per instruction: twice the multiply-adds of an
// fp32 FMA of the same width. Both instructions treat denormal inputs as zero and flush denormal
// results (they ignore MXCSR), so values below 2^-126 in magnitude count as 0.
//
// Layout: a "unit" is a uint32 holding two bf16 values, the one for even p in its low half. op(B)
// is packed whole once per product (pr_bf16_pack_b_cols; threads may pack disjoint column panels):
// panels of NR = 32 columns, each holding its units (q, j) at (panel·kq + q)·32 + j, kq = ⌈k/2⌉
// (an odd k's last unit has a zero high half). A is packed per MR-row panel and k block: unit
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
#include <immintrin.h>
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

long pr_bf16_packed_b_units(long n, long k) {
    return (n + BNR - 1) / BNR * BNR * ((k + 1) / 2);
}

#if defined(__x86_64__)
#include "avx512_tile.h"
#define BF16 __attribute__((target("avx512f,avx512vl,avx512bw,avx512bf16")))

static inline long min_l(long a, long b) { return a < b ? a : b; }

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

BF16 void pr_bf16_pack_b_cols(int transB, long n, long k, const float *b, long ldb, long j0, long j1, unsigned int *out) {
    if (j0 < 0 || j0 % BNR) abort();
    if (j1 > n) j1 = n;
    long kq = (k + 1) / 2;
    for (long jp = j0; jp < j1; jp += BNR) {
        uint32_t *panel = out + (jp / BNR) * kq * BNR;
        long nr = min_l(BNR, n - jp);
        if (transB) {
            // Column j of op(B) is row j of B, contiguous in p: 16 units per conversion, written
            // to their rows of the panel one by one.
            uint32_t tmp[16] __attribute__((aligned(64)));
            for (long j = 0; j < BNR; j++) {
                if (j >= nr) {
                    for (long q = 0; q < kq; q++) panel[q * BNR + j] = 0;
                    continue;
                }
                const float *row = b + (jp + j) * ldb;
                for (long q0 = 0; q0 < kq; q0 += 16) {
                    _mm512_store_si512((void *)tmp, units_of_row(row + 2 * q0, k - 2 * q0));
                    long qn = min_l(16, kq - q0);
                    for (long u = 0; u < qn; u++) panel[(q0 + u) * BNR + j] = tmp[u];
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
    long kq = (k + 1) / 2;
    if (kq == 0) {
        for (long i = 0; i < m; i++)
            for (long j = 0; j < n; j++) c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j];
        return;
    }
    if (MC < BMR || KC < 1 || NC < BNR) abort();
    NC = NC / BNR * BNR;  // blocks start on the packed panels' columns
    long kcMax = min_l(KC, kq), mcMax = min_l((MC + BMR - 1) / BMR * BMR, (m + BMR - 1) / BMR * BMR);
    if (bf16_pack_a_units < kcMax * mcMax) {
        free(bf16_pack_a);
        bf16_pack_a = aligned_alloc(64, (size_t)((kcMax * mcMax * 4 + 63) / 64 * 64));
        bf16_pack_a_units = bf16_pack_a ? kcMax * mcMax : 0;
        if (!bf16_pack_a) abort();
    }
    uint32_t *ap = bf16_pack_a;
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
                        const uint32_t *bb = packed + ((j / BNR) * kq + pc) * BNR;
                        kernel_bf16(kcq, ap + ir * kcq, bb, c + (ic + ir) * ldc + j, ldc, mr, min_l(BNR, n - j), alpha, bet);
                    }
                }
            }
        }
    }
}

#else
void pr_bf16_pack_b_cols(int transB, long n, long k, const float *b, long ldb, long j0, long j1, unsigned int *out) { abort(); }
void pr_sgemm_bf16_packed(long m, long n, long k, float alpha, const float *a, long lda, const unsigned int *packed,
                          float beta, float *c, long ldc, long MC, long KC, long NC) { abort(); }
#endif
