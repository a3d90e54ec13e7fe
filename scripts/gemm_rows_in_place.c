// Harness for gemm_avx2.c's ROWS_IN_PLACE (scripts/gemm_rows_in_place.sh builds it): the AVX2
// kernel with a non-transposed A packed first (pr_avx2_rows_in_place 0) against A read in place
// (1, the default), in one process, the two alternating (order swapped every round), on
// 2 threads as the linear layers run them: op(B) = Wᵀ packed once (`pr_sgemm_avx2_pack_b`), each
// thread taking chunks of 96 rows (`pr_sgemm_avx2_packed`). Prints, per shape, each form's median
// GFLOP/s over ROUNDS rounds (after 2 warm-up rounds), the median and the range of the per-round
// ratio in place ÷ packed, and whether both forms gave the same bits.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void pr_flops_add(long long x) { (void)x; }
long pr_sgemm_avx2_packed_size(long n, long k);
void pr_sgemm_avx2_pack_b(int transB, long n, long k, const float *b, long ldb, long KC, float *out);
void pr_sgemm_avx2_packed(int transA, long m, long n, long k, float alpha, const float *a, long lda,
                          const float *packed, float beta, float *c, long ldc, long MC, long KC, long NC);
extern int pr_avx2_rows_in_place;

enum { MC = 4092, KC = 256, NC = 128, CHUNK = 96, ROUNDS = 30 };
typedef struct { long m, n, k; const float *a, *bp; float *c; } Job;

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

static void *run(void *p) {
    Job *j = p;
    for (long r = 0; r < j->m; r += CHUNK) {
        long rows = j->m - r < CHUNK ? j->m - r : CHUNK;
        pr_sgemm_avx2_packed(0, rows, j->n, j->k, 1.0f, j->a + r * j->k, j->k, j->bp, 0.0f, j->c + r * j->n, j->n, MC, KC, NC);
    }
    return NULL;
}

static double timed(long m, long n, long k, const float *a, const float *bp, float *c, int inPlace) {
    long half = m / 2;
    pr_avx2_rows_in_place = inPlace;
    Job j1 = {half, n, k, a, bp, c}, j2 = {m - half, n, k, a + half * k, bp, c + half * n};
    double t0 = now();
    pthread_t t;
    pthread_create(&t, NULL, run, &j2);
    run(&j1);
    pthread_join(t, NULL);
    return 2.0 * m * n * k / (now() - t0) / 1e9;
}

static int cmp(const void *x, const void *y) { double a = *(const double *)x, b = *(const double *)y; return (a > b) - (a < b); }
static double median(double *v, int n) { qsort(v, n, sizeof *v, cmp); return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2; }

int main(void) {
    const long shapes[][3] = {{2048, 512, 512}, {2048, 2048, 512}, {2048, 512, 2048}, {2048, 768, 768},
                              {2048, 3072, 768}, {2048, 768, 3072}, {11392, 512, 512}, {11392, 768, 768},
                              {56, 512, 512}, {56, 2048, 512}};
    printf("m x n x k (C = A·Bᵀ)  | GFLOP/s A packed | A in place | in place ÷ packed: median (min-max) | same bits\n");
    for (unsigned s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        long m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        float *a = aligned_alloc(64, m * k * 4), *b = aligned_alloc(64, n * k * 4);
        float *bp = aligned_alloc(64, (pr_sgemm_avx2_packed_size(n, k) * 4 + 63) / 64 * 64);
        float *c0 = aligned_alloc(64, m * n * 4), *c1 = aligned_alloc(64, m * n * 4);
        unsigned x = 12345;
        for (long i = 0; i < m * k; i++) { x = x * 1664525u + 1013904223u; a[i] = (float)(x >> 8) / 16777216.0f - 0.5f; }
        for (long i = 0; i < n * k; i++) { x = x * 1664525u + 1013904223u; b[i] = (float)(x >> 8) / 16777216.0f - 0.5f; }
        pr_sgemm_avx2_pack_b(1, n, k, b, k, KC, bp);
        double g[2][ROUNDS], ratio[ROUNDS];
        for (int round = -2; round < ROUNDS; round++) {
            double r[2];
            for (int i = 0; i < 2; i++) {
                int inPlace = (round & 1) ? 1 - i : i;
                r[inPlace] = timed(m, n, k, a, bp, inPlace ? c1 : c0, inPlace);
            }
            if (round < 0) continue;
            g[0][round] = r[0]; g[1][round] = r[1]; ratio[round] = r[1] / r[0];
        }
        double lo = ratio[0], hi = ratio[0];
        for (int i = 1; i < ROUNDS; i++) { lo = ratio[i] < lo ? ratio[i] : lo; hi = ratio[i] > hi ? ratio[i] : hi; }
        printf("%5ld x %4ld x %4ld      | %6.1f           | %6.1f     | %.3f (%.2f-%.2f)                  | %s\n", m, n, k,
               median(g[0], ROUNDS), median(g[1], ROUNDS), median(ratio, ROUNDS), lo, hi, memcmp(c0, c1, m * n * 4) == 0 ? "yes" : "NO");
        free(a); free(b); free(bp); free(c0); free(c1);
    }
    return 0;
}
