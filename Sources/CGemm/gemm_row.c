// One-row products (m = 1, B not transposed) without packing: c[j] = alpha · Σ_p a_p · b[p·ldb + j]
// + beta · c[j], with exactly the floating-point operations the own kernels (gemm.c, gemm_avx2.c)
// perform for such a product — per element, over each block of KC values of p in order, a chain
// of fused multiply-adds from zero, then alpha · acc stored (beta = 0) or fma(beta, c, alpha · acc),
// later blocks fma(1, c, alpha · acc) — so the result is bit-identical to theirs for the same KC.
// Reads B's rows in place: a decoding step's attention (one query per batch row and head) and the
// absorbed cross-attention's per-head products spend no time packing B for a single row of A.
//
// Columns go in chunks of 64, each chunk's sums in registers. A ragged chunk (the last one of a
// width that is not a multiple of 64: a decoding step's self-attention scores over the steps so
// far) takes as many 8-lane accumulators as it needs, the last one read and stored under a mask,
// so it too keeps its sums in registers. (The portable form below kept a ragged chunk's sums in a
// stack array, loaded and stored again at every p: 19 % of this function's samples in a t5-small
// decode of 128 steps, AMD Zen 3.) Lanes past the width compute on zeros and are never stored.
#include "CGemm.h"
#include <math.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define ROW_TARGET __attribute__((target("avx2,fma")))

// Mask of the first `count` of 8 lanes (all when count ≥ 8), for maskload/maskstore.
ROW_TARGET static inline __m256i row_lanes(long count) {
    int n = (int)(count > 8 ? 8 : count);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// c[0 ..< w] for one KC block of p (rows pc ..< pc + kc of B), w in ((V − 1)·8, V·8]; V and
// `masked` (w < V·8) are constants in each expansion, so the accumulators stay in registers.
ROW_TARGET static inline __attribute__((always_inline)) void row_chunk(
        int transA, long w, long pc, long kc, float alpha, float bet, const float *a, long lda,
        const float *b, long ldb, float *c, const int V, const int masked) {
    __m256 acc[8];
    const __m256i last = row_lanes(w - (V - 1) * 8);
#pragma clang loop unroll(full)
    for (int v = 0; v < V; v++) acc[v] = _mm256_setzero_ps();
    for (long p = pc; p < pc + kc; p++) {
        const __m256 ap = _mm256_set1_ps(transA ? a[p * lda] : a[p]);
        const float *row = b + p * ldb;
#pragma clang loop unroll(full)
        for (int v = 0; v < V; v++) {
            const __m256 bv = (masked && v == V - 1) ? _mm256_maskload_ps(row + 8 * v, last) : _mm256_loadu_ps(row + 8 * v);
            acc[v] = _mm256_fmadd_ps(ap, bv, acc[v]);
        }
    }
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(bet);
#pragma clang loop unroll(full)
    for (int v = 0; v < V; v++) {
        __m256 r = _mm256_mul_ps(va, acc[v]);
        if (masked && v == V - 1) {
            if (bet != 0) r = _mm256_fmadd_ps(vb, _mm256_maskload_ps(c + 8 * v, last), r);
            _mm256_maskstore_ps(c + 8 * v, last, r);
        } else {
            if (bet != 0) r = _mm256_fmadd_ps(vb, _mm256_loadu_ps(c + 8 * v), r);
            _mm256_storeu_ps(c + 8 * v, r);
        }
    }
}

#define ROW_CHUNK(V) case V: row_chunk(transA, w, pc, kc, alpha, bet, a, lda, b + j0, ldb, c + j0, V, 1); break;
#else
#define ROW_TARGET
#endif

ROW_TARGET void pr_sgemm_row(int transA, long n, long k, float alpha, const float *a, long lda,
                             const float *b, long ldb, float beta, float *c, long KC) {
    enum { W = 64 };
    if (n <= 0) return;
    if (k <= 0) {
        for (long j = 0; j < n; j++) c[j] = beta == 0 ? 0 : beta * c[j];
        return;
    }
#if defined(__x86_64__)
    for (long j0 = 0; j0 < n; j0 += W) {
        long w = n - j0 < W ? n - j0 : W;
        for (long pc = 0; pc < k; pc += KC) {
            long kc = k - pc < KC ? k - pc : KC;
            float bet = pc == 0 ? beta : 1.0f;
            if (w == W) {
                row_chunk(transA, w, pc, kc, alpha, bet, a, lda, b + j0, ldb, c + j0, 8, 0);
            } else {
                switch ((w + 7) / 8) {
                ROW_CHUNK(1) ROW_CHUNK(2) ROW_CHUNK(3) ROW_CHUNK(4) ROW_CHUNK(5) ROW_CHUNK(6) ROW_CHUNK(7) ROW_CHUNK(8)
                }
            }
        }
    }
#else
    float acc[W];
    for (long j0 = 0; j0 < n; j0 += W) {
        long w = n - j0 < W ? n - j0 : W;
        for (long pc = 0; pc < k; pc += KC) {
            long kc = k - pc < KC ? k - pc : KC;
            for (int jj = 0; jj < W; jj++) acc[jj] = 0;
            for (long p = pc; p < pc + kc; p++) {
                float ap = transA ? a[p * lda] : a[p];
                const float *row = b + p * ldb + j0;
                for (long jj = 0; jj < w; jj++) acc[jj] = fmaf(ap, row[jj], acc[jj]);
            }
            float bet = pc == 0 ? beta : 1.0f;
            float *cj = c + j0;
            for (long jj = 0; jj < w; jj++) {
                float r = alpha * acc[jj];
                cj[jj] = bet == 0 ? r : fmaf(bet, cj[jj], r);
            }
        }
    }
#endif
}
