// AVX2 + FMA SGEMM for x86-64 CPUs without AVX-512 (Intel Haswell and later client cores, AMD Zen
// 1-3): the scheme of gemm.c at half the vector width. B is packed in KC×NC blocks of 16-column
// panels, A in MC×KC blocks of 6-row panels, and a 6×16 register tile (12 ymm accumulators, two B
// vectors per k, A values broadcast; 15 of the 16 ymm registers) runs over each pair of panels.
// Rows and columns past the matrix edge are packed as zeros and the edge tiles store with masks.
// Compiled with per-function target attributes, so the file builds for baseline x86-64; call only
// when pr_gemm_avx2_available() says so.
//
// Why it exists: on AVX2-only hosts OpenBLAS (Debian's 0.3.21) may not know the CPU and run its
// generic SSE kernel, at a quarter of what the FMA units can do.
#include "CGemm.h"
#include <stdlib.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#define MR PR_AVX2_MR  /* 6 */
#define NR PR_AVX2_NR  /* 16 */

#define AVX2 __attribute__((target("avx2,fma")))
#define GEMM_TARGET AVX2
#define TRANSPOSE_B transpose8   /* pack_b_block's 8×8 register transpose (below) */
#define TRANSPOSE_B_WIDTH 8
#define PACK_A_PANEL8 pack_a_panel8  /* pack_a_block's full panels 8 values of p at a time (below) */
// A prepacked B's next block prefetched over all kernel calls of a block of at least 3 row-panel
// sweeps (gemm_common.h). AMD Zen 3, 2 threads, a t5-small decoding step's products over 56 rows
// (a C harness, interleaved rounds): 6-11 % faster at 16-128 rows, 10 % slower at 8 (2 sweeps).
#define SPREAD_PREFETCH_SWEEPS 3

int pr_gemm_avx2_available(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();  // the AVX check includes the OS saving ymm state (XGETBV)
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

#if defined(__x86_64__)
#include "gemm_common.h"

// Mask of the first `count` of 8 lanes (none when count ≤ 0, all when ≥ 8), for maskload/maskstore.
AVX2 static inline __m256i lanes8(long count) {
    int n = (int)(count < 0 ? 0 : count > 8 ? 8 : count);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// o[c] = column c of the 8×8 block whose row i is r[i] (r is overwritten).
AVX2 static inline void transpose8_regs(__m256 r[8], __m256 o[8]) {
    __m256 t[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        r[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
        r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    // r[4q + s] now holds, in 128-bit lane L, column 4L + s of rows 4q..4q+3.
    for (int s = 0; s < 4; s++) {
        o[s] = _mm256_permute2f128_ps(r[s], r[4 + s], 0x20);
        o[4 + s] = _mm256_permute2f128_ps(r[s], r[4 + s], 0x31);
    }
}

// dst[r*ldd + c] = src[c*lds + r] for an 8×8 block.
AVX2 static inline void transpose8(const float *src, long lds, float *dst, long ldd) {
    __m256 r[8], o[8];
    for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + i * lds);
    transpose8_regs(r, o);
    for (int c = 0; c < 8; c++) _mm256_storeu_ps(dst + c * ldd, o[c]);
}

// A full 6-row panel's elements (i, p), p < 8, from rows src + i·lda into dst[p·6 + i]: the rows
// transposed in registers (rows 6 and 7 zero). Column p is stored whole at dst + 6p, its two
// spare lanes overwritten by column p + 1; the last column is stored as 4 + 2 lanes, so nothing
// past dst[47] is written.
AVX2 static void pack_a_panel8(const float *src, long lda, float *dst) {
    __m256 r[8], o[8];
    for (int i = 0; i < 6; i++) r[i] = _mm256_loadu_ps(src + i * lda);
    r[6] = r[7] = _mm256_setzero_ps();
    transpose8_regs(r, o);
    for (int p = 0; p < 7; p++) _mm256_storeu_ps(dst + p * 6, o[p]);
    _mm_storeu_ps(dst + 42, _mm256_castps256_ps128(o[7]));
    _mm_storel_pi((__m64 *)(dst + 46), _mm256_extractf128_ps(o[7], 1));
}

GEMM_TARGET static inline void copy_b_row(const float *src, float *dst, long nr) {
    if (nr == NR) {
        _mm256_store_ps(dst, _mm256_loadu_ps(src));
        _mm256_store_ps(dst + 8, _mm256_loadu_ps(src + 8));
    } else {
        _mm256_store_ps(dst, _mm256_maskload_ps(src, lanes8(nr)));
        _mm256_store_ps(dst + 8, _mm256_maskload_ps(src + 8, lanes8(nr - 8)));
    }
}

// C tile (mr×nr of it valid) = alpha · A·Bp + beta · C (beta == 0: C not read). A's element
// (i, p) is at a[i*rs + p*cs]: a packed panel (rs 1, cs MR) or the caller's matrix read in place.
AVX2 static inline __attribute__((always_inline)) void kernel_strided_rows(
        long kc, const float *restrict a, long rs, long cs, const float *restrict bp, float *c, long ldc,
        long mr, long nr, float alpha, float beta, const int R, const float *pfb, long pfn) {
    // The C tile is read (beta ≠ 0) or written only after the k loop: start fetching its lines now
    // so the misses overlap the FMAs (with a large mc the C block is in L3, not L2).
#pragma clang loop unroll(full)
    for (int i = 0; i < MR; i++) {
        if (i < mr) { _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0); _mm_prefetch((const char *)(c + i * ldc + NR - 1), _MM_HINT_T0); }
    }
    __m256 c0[MR], c1[MR];
#pragma clang loop unroll(full)
    for (int i = 0; i < R; i++) { c0[i] = _mm256_setzero_ps(); c1[i] = _mm256_setzero_ps(); }
#pragma clang loop unroll_count(4)
    for (long p = 0; p < kc; p++) {
        if (p < pfn) _mm_prefetch((const char *)(pfb + p * NR), _MM_HINT_T0);  // line p of pfb (see GEMM_DRIVER)
        __m256 b0 = _mm256_load_ps(bp);
        __m256 b1 = _mm256_load_ps(bp + 8);
#pragma clang loop unroll(full)
        for (int i = 0; i < R; i++) {
            __m256 av = _mm256_broadcast_ss(a + i * rs);
            c0[i] = _mm256_fmadd_ps(av, b0, c0[i]);
            c1[i] = _mm256_fmadd_ps(av, b1, c1[i]);
        }
        a += cs;
        bp += NR;
    }
    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    if (nr == NR) {
#pragma clang loop unroll(full)
        for (int i = 0; i < MR; i++) {
            if (i < mr) {
                float *row = c + i * ldc;
                __m256 r0 = _mm256_mul_ps(va, c0[i]), r1 = _mm256_mul_ps(va, c1[i]);
                if (beta != 0) {
                    r0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(row), r0);
                    r1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(row + 8), r1);
                }
                _mm256_storeu_ps(row, r0);
                _mm256_storeu_ps(row + 8, r1);
            }
        }
    } else {
        __m256i m0 = lanes8(nr), m1 = lanes8(nr - 8);
#pragma clang loop unroll(full)
        for (int i = 0; i < MR; i++) {
            if (i < mr) {
                float *row = c + i * ldc;
                __m256 r0 = _mm256_mul_ps(va, c0[i]), r1 = _mm256_mul_ps(va, c1[i]);
                if (beta != 0) {
                    r0 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(row, m0), r0);
                    r1 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(row + 8, m1), r1);
                }
                _mm256_maskstore_ps(row, m0, r0);
                _mm256_maskstore_ps(row + 8, m1, r1);
            }
        }
    }
}

ROW_EXACT_TILE

GEMM_DRIVER(pr_sgemm_avx2, 4 * NR)

#else
void pr_sgemm_avx2(int transA, int transB, long m, long n, long k, float alpha,
                   const float *a, long lda, const float *b, long ldb,
                   float beta, float *c, long ldc, long MC, long KC, long NC) { abort(); }
void pr_sgemm_avx2_packed(int transA, long m, long n, long k, float alpha, const float *a, long lda,
                   const float *packed, float beta, float *c, long ldc, long MC, long KC, long NC) { abort(); }
long pr_sgemm_avx2_packed_size(long n, long k) { abort(); }
void pr_sgemm_avx2_pack_b(int transB, long n, long k, const float *b, long ldb, long KC, float *out) { abort(); }
void pr_sgemm_avx2_pack_b_cols(int transB, long n, long k, const float *b, long ldb, long KC, long j0, long j1, float *out) { abort(); }
#endif
