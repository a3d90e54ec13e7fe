// AVX-512 SGEMM, BLIS-style: B is packed in KC×NC blocks of NR-column panels, A in MC×KC blocks
// of MR-row panels (the caller passes MC, KC and NC: Sources/Tensor/GEMMBlocking.swift), and a
// 12×32 register-tile kernel (24 zmm accumulators, two B vectors per k, A values broadcast) runs
// over each pair of panels. Rows and columns past the matrix edge are packed as zeros and the edge
// tiles store with masks, so any m, n, k and leading dimension work.
//
// Why it exists: OpenBLAS 0.3.21 is pinned to its Haswell (AVX2) kernel on machines whose
// processor it does not know; on such a machine with 512-bit FMA units this kernel does about
// twice the FLOPs per cycle.
#include "CGemm.h"
#include <stdlib.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#if defined(PR_SWIFT_HASWELL) && defined(__x86_64__)
#include <stdio.h>
#include <unistd.h>
/* The Swift code was compiled for the Haswell ISA on its build host (Package.swift). A binary
   copied to a CPU without those instructions (a login node's build on an older node, a VM's
   generic CPU model) died with SIGILL and no word; this runs before any Swift code and names
   what is missing. */
#include <stdlib.h>
#include <string.h>
__attribute__((constructor)) static void pr_check_build_isa(void) {
    __builtin_cpu_init();
    /* PROMPTREPRO_TEST_PRETEND_CPU_LACKS=avx2,fma: treat those as missing (the test of this
       message; no CPU here lacks them). */
    const char *pretend = getenv("PROMPTREPRO_TEST_PRETEND_CPU_LACKS");
    #define PR_HAS(f) (__builtin_cpu_supports(f) && !(pretend && strstr(pretend, f)))
    /* -target-cpu haswell also enables BMI1, LZCNT and POPCNT. */
    static const char *const needed[] = {"avx2", "fma", "bmi2", "f16c", "movbe", "bmi", "lzcnt", "popcnt"};
    const char *missing[8];
    int n = 0;
    if (!PR_HAS("avx2")) missing[n++] = needed[0];
    if (!PR_HAS("fma")) missing[n++] = needed[1];
    if (!PR_HAS("bmi2")) missing[n++] = needed[2];
    if (!PR_HAS("f16c")) missing[n++] = needed[3];
    if (!PR_HAS("movbe")) missing[n++] = needed[4];
    if (!PR_HAS("bmi")) missing[n++] = needed[5];
    if (!PR_HAS("lzcnt")) missing[n++] = needed[6];
    if (!PR_HAS("popcnt")) missing[n++] = needed[7];
    #undef PR_HAS
    if (n == 0) return;
    fprintf(stderr, "error: this promptrepro was built for x86-64 Haswell (AVX2, FMA, BMI1/2, F16C, MOVBE, LZCNT, POPCNT) and this CPU lacks");
    for (int i = 0; i < n; i++) fprintf(stderr, " %s", missing[i]);
    fprintf(stderr, ": rebuild on this machine (`make build`), or with PROMPTREPRO_PORTABLE=1 for any x86-64 CPU\n");
    _exit(70);
}
#endif

#define MR PR_AVX512_MR  /* 12 */
#define NR PR_AVX512_NR  /* 32 */

#define AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,fma")))
#define GEMM_TARGET AVX512
#define TRANSPOSE_B transpose16   /* pack_b_block's 16×16 register transpose (below) */
#define TRANSPOSE_B_WIDTH 16
#define PACK_B_ROW_GROUPS_OUTER   /* pack_b_block's panels packed 16 source rows at a time (gemm_common.h) */
#define PACK_A_PANEL16 pack_a_panel16  /* pack_a_block's full panels 16 values of p at a time (below) */

int pr_gemm_avx512_available(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
        && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

#if defined(__x86_64__)
#include "gemm_common.h"
#include "avx512_tile.h"

// o[c] = column c of the 16×16 block whose row i is r[i] (r is overwritten).
AVX512 static inline void transpose16_regs(__m512 r[16], __m512 o[16]) {
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
        r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
        r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
        r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
    }
    // r[4q + s] now holds, in each 128-bit lane L, column 4L + s of rows 4q..4q+3.
    for (int s = 0; s < 4; s++) {
        __m512 a0 = _mm512_shuffle_f32x4(r[s], r[4 + s], 0x88);      // lanes 0,2 of rows 0-3 | 0,2 of rows 4-7
        __m512 a1 = _mm512_shuffle_f32x4(r[s], r[4 + s], 0xdd);      // lanes 1,3
        __m512 b0 = _mm512_shuffle_f32x4(r[8 + s], r[12 + s], 0x88);
        __m512 b1 = _mm512_shuffle_f32x4(r[8 + s], r[12 + s], 0xdd);
        o[s] = _mm512_shuffle_f32x4(a0, b0, 0x88);                     // lane 0 of all rows: column s
        o[8 + s] = _mm512_shuffle_f32x4(a0, b0, 0xdd);                 // lane 2: column 8 + s
        o[4 + s] = _mm512_shuffle_f32x4(a1, b1, 0x88);                 // lane 1: column 4 + s
        o[12 + s] = _mm512_shuffle_f32x4(a1, b1, 0xdd);                // lane 3: column 12 + s
    }
}

// dst[r*ldd + c] = src[c*lds + r] for a 16×16 block.
AVX512 static inline void transpose16(const float *src, long lds, float *dst, long ldd) {
    __m512 r[16], o[16];
    for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + i * lds);
    transpose16_regs(r, o);
    for (int c = 0; c < 16; c++) _mm512_storeu_ps(dst + c * ldd, o[c]);
}

// A full MR = 12-row panel of A (not transposed) over 16 values of p: dst[p*12 + i] =
// src[i*lda + p] for i < 12, p < 16 (pack_a_block's layout), as a 16×16 transpose with four zero
// rows and masked 12-lane stores; it only moves data, so the packed panel is the scalar loop's.
AVX512 static void pack_a_panel16(const float *src, long lda, float *dst) {
    __m512 r[16], o[16];
    for (int i = 0; i < 12; i++) r[i] = _mm512_loadu_ps(src + i * lda);
    for (int i = 12; i < 16; i++) r[i] = _mm512_setzero_ps();
    transpose16_regs(r, o);
    for (int p = 0; p < 16; p++) _mm512_mask_storeu_ps(dst + p * 12, 0x0FFF, o[p]);
}

GEMM_TARGET static inline void copy_b_row(const float *src, float *dst, long nr) {
    _mm512_store_ps(dst, _mm512_maskz_loadu_ps(lanes(nr), src));
    _mm512_store_ps(dst + 16, _mm512_maskz_loadu_ps(lanes(nr - 16), src + 16));
}

// C tile (mr×nr of it valid) = alpha · A·Bp + beta · C (beta == 0: C not read). A's element
// (i, p) is at a[i*rs + p*cs]: a packed panel (rs 1, cs MR) or the caller's matrix read in place.
AVX512 static inline __attribute__((always_inline)) void kernel_strided_rows(
        long kc, const float *restrict a, long rs, long cs, const float *restrict bp, float *c, long ldc,
        long mr, long nr, float alpha, float beta, const int R, const float *pfb, long pfn) {
    // The C tile is read (beta ≠ 0) or written only after the k loop: start fetching its lines now
    // so the misses overlap the FMAs (the C block mc×nc is larger than L2).
#pragma clang loop unroll(full)
    for (int i = 0; i < MR; i++) {
        if (i < mr) { _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0); _mm_prefetch((const char *)(c + i * ldc + NR - 1), _MM_HINT_T0); }
    }
    __m512 c0[MR], c1[MR];
#pragma clang loop unroll(full)
    for (int i = 0; i < R; i++) { c0[i] = _mm512_setzero_ps(); c1[i] = _mm512_setzero_ps(); }
    for (long p = 0; p < kc; p++) {
        if (2 * p < pfn) {  // lines 2p and 2p + 1 of pfb (see GEMM_DRIVER)
            _mm_prefetch((const char *)(pfb + p * NR), _MM_HINT_T0);
            _mm_prefetch((const char *)(pfb + p * NR + 16), _MM_HINT_T0);
        }
        __m512 b0 = _mm512_load_ps(bp);
        __m512 b1 = _mm512_load_ps(bp + 16);
#pragma clang loop unroll(full)
        for (int i = 0; i < R; i++) {
            __m512 av = _mm512_set1_ps(a[i * rs]);
            c0[i] = _mm512_fmadd_ps(av, b0, c0[i]);
            c1[i] = _mm512_fmadd_ps(av, b1, c1[i]);
        }
        a += cs;
        bp += NR;
    }
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    __mmask16 m0 = lanes(nr), m1 = lanes(nr - 16);
#pragma clang loop unroll(full)
    for (int i = 0; i < MR; i++) {
        if (i < mr) store_tile_row(c + i * ldc, c0[i], c1[i], va, vb, beta, m0, m1);
    }
}

ROW_EXACT_TILE

GEMM_DRIVER(pr_sgemm_avx512, 2 * NR)

#else
void pr_sgemm_avx512(int transA, int transB, long m, long n, long k, float alpha,
                     const float *a, long lda, const float *b, long ldb,
                     float beta, float *c, long ldc, long MC, long KC, long NC) { abort(); }
void pr_sgemm_avx512_packed(int transA, long m, long n, long k, float alpha, const float *a, long lda,
                   const float *packed, float beta, float *c, long ldc, long MC, long KC, long NC) { abort(); }
long pr_sgemm_avx512_packed_size(long n, long k) { abort(); }
void pr_sgemm_avx512_pack_b(int transB, long n, long k, const float *b, long ldb, long KC, float *out) { abort(); }
void pr_sgemm_avx512_pack_b_cols(int transB, long n, long k, const float *b, long ldb, long KC, long j0, long j1, float *out) { abort(); }
#endif
