// One-row products (m = 1, B not transposed) without packing: c[j] = alpha · Σ_p a_p · b[p·ldb + j]
// + beta · c[j], with exactly the floating-point operations the own kernels (gemm.c, gemm_avx2.c)
// perform for such a product — per element, over each block of KC values of p in order, a chain
// of fused multiply-adds from zero, then alpha · acc stored (beta = 0) or fma(beta, c, alpha · acc),
// later blocks fma(1, c, alpha · acc) — so the result is bit-identical to theirs for the same KC.
// Reads B's rows in place: a decoding step's attention (one query per batch row and head) and the
// absorbed cross-attention's per-head products spend no time packing B for a single row of A.
#include "CGemm.h"
#include <math.h>

#if defined(__x86_64__)
#define ROW_TARGET __attribute__((target("avx2,fma")))
#else
#define ROW_TARGET
#endif

ROW_TARGET void pr_sgemm_row(int transA, long n, long k, float alpha, const float *a, long lda,
                             const float *b, long ldb, float beta, float *c, long KC) {
    enum { W = 64 };
    float acc[W];
    if (n <= 0) return;
    if (k <= 0) {
        for (long j = 0; j < n; j++) c[j] = beta == 0 ? 0 : beta * c[j];
        return;
    }
    for (long j0 = 0; j0 < n; j0 += W) {
        long w = n - j0 < W ? n - j0 : W;
        for (long pc = 0; pc < k; pc += KC) {
            long kc = k - pc < KC ? k - pc : KC;
            for (int jj = 0; jj < W; jj++) acc[jj] = 0;
            if (w == W) {
                for (long p = pc; p < pc + kc; p++) {
                    float ap = transA ? a[p * lda] : a[p];
                    const float *row = b + p * ldb + j0;
                    for (int jj = 0; jj < W; jj++) acc[jj] = fmaf(ap, row[jj], acc[jj]);
                }
            } else {
                for (long p = pc; p < pc + kc; p++) {
                    float ap = transA ? a[p * lda] : a[p];
                    const float *row = b + p * ldb + j0;
                    for (long jj = 0; jj < w; jj++) acc[jj] = fmaf(ap, row[jj], acc[jj]);
                }
            }
            float bet = pc == 0 ? beta : 1.0f;
            float *cj = c + j0;
            for (long jj = 0; jj < w; jj++) {
                float r = alpha * acc[jj];
                cj[jj] = bet == 0 ? r : fmaf(bet, cj[jj], r);
            }
        }
    }
}
