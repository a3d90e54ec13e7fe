// AdamW's elementwise update on AVX2 (Sources/Training/Optimizers.swift, Optimizer.adam): the
// Swift eight-lane loop's operations in its order, so every updated weight and moment is the same
// bits (tested against it). Products and sums are separate roundings, never contracted to FMAs:
//   m = b1·m + c1·g ; v = b2·v + (c2·g)·g
//   torch form:        x = x·decay − (step·m) / (√v / rootBC2 + eps)
//   transformers form: y = x − (hfStep·m) / (√v + eps) ; x = y − hfDecay·y
// With `record`, the squares of g and of the new x summed in double per lane (lane l takes the
// elements j ≡ l mod 8 of the eight-wide part, in order), the lanes added 0…7 from −0, then the
// tail's squares one by one: the Swift loop's sums. Why C: in the Swift form SIMD8's squareRoot()
// compiles to eight scalar roots, each behind a branch to sqrtf for errno, and the loop reached
// about 20 GB/s in the t5-small FT step; this one streams the same data at 40–46 GB/s (Zen 3).
#pragma STDC FP_CONTRACT OFF
#include "CGemm.h"
#include <math.h>
#if defined(__x86_64__)
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma")))

AVX2 void pr_adamw_avx2(long n, float *x, const float *g, float *m, float *v, int torchForm,
                        const float k[10], int record, double *sumG, double *sumP) {
    const float b1 = k[0], b2 = k[1], c1 = k[2], c2 = k[3], e = k[4], decay = k[5], stepSize = k[6],
                rootBC2 = k[7], hfStep = k[8], hfDecay = k[9];
    const __m256 b1v = _mm256_set1_ps(b1), b2v = _mm256_set1_ps(b2), c1v = _mm256_set1_ps(c1),
                 c2v = _mm256_set1_ps(c2), ev = _mm256_set1_ps(e), decayV = _mm256_set1_ps(decay),
                 stepV = _mm256_set1_ps(stepSize), rootV = _mm256_set1_ps(rootBC2),
                 hfStepV = _mm256_set1_ps(hfStep), hfDecayV = _mm256_set1_ps(hfDecay);
    __m256d sg0 = _mm256_setzero_pd(), sg1 = _mm256_setzero_pd(), sp0 = _mm256_setzero_pd(), sp1 = _mm256_setzero_pd();
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 gi = _mm256_loadu_ps(g + i);
        const __m256 mi = _mm256_add_ps(_mm256_mul_ps(b1v, _mm256_loadu_ps(m + i)), _mm256_mul_ps(c1v, gi));
        const __m256 vi = _mm256_add_ps(_mm256_mul_ps(b2v, _mm256_loadu_ps(v + i)), _mm256_mul_ps(_mm256_mul_ps(c2v, gi), gi));
        _mm256_storeu_ps(m + i, mi);
        _mm256_storeu_ps(v + i, vi);
        __m256 xi;
        if (torchForm) {
            xi = _mm256_sub_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), decayV),
                               _mm256_div_ps(_mm256_mul_ps(stepV, mi), _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vi), rootV), ev)));
        } else {
            const __m256 yi = _mm256_sub_ps(_mm256_loadu_ps(x + i),
                                            _mm256_div_ps(_mm256_mul_ps(hfStepV, mi), _mm256_add_ps(_mm256_sqrt_ps(vi), ev)));
            xi = _mm256_sub_ps(yi, _mm256_mul_ps(hfDecayV, yi));
        }
        _mm256_storeu_ps(x + i, xi);
        if (record) {
            const __m256d g0 = _mm256_cvtps_pd(_mm256_castps256_ps128(gi)), g1 = _mm256_cvtps_pd(_mm256_extractf128_ps(gi, 1));
            const __m256d x0 = _mm256_cvtps_pd(_mm256_castps256_ps128(xi)), x1 = _mm256_cvtps_pd(_mm256_extractf128_ps(xi, 1));
            sg0 = _mm256_add_pd(sg0, _mm256_mul_pd(g0, g0));
            sg1 = _mm256_add_pd(sg1, _mm256_mul_pd(g1, g1));
            sp0 = _mm256_add_pd(sp0, _mm256_mul_pd(x0, x0));
            sp1 = _mm256_add_pd(sp1, _mm256_mul_pd(x1, x1));
        }
    }
    double sg = 0, sp = 0;
    if (record) {
        double lg[8], lp[8];
        _mm256_storeu_pd(lg, sg0); _mm256_storeu_pd(lg + 4, sg1);
        _mm256_storeu_pd(lp, sp0); _mm256_storeu_pd(lp + 4, sp1);
        sg = -0.0; sp = -0.0;
        for (int l = 0; l < 8; l++) { sg += lg[l]; sp += lp[l]; }
    }
    for (; i < n; i++) {
        const float gi = g[i];
        const float mi = b1 * m[i] + c1 * gi;
        const float vi = b2 * v[i] + c2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        if (torchForm) {
            x[i] = x[i] * decay - stepSize * mi / (sqrtf(vi) / rootBC2 + e);
        } else {
            const float yi = x[i] - hfStep * mi / (sqrtf(vi) + e);
            x[i] = yi - hfDecay * yi;
        }
        if (record) { sg += (double)gi * (double)gi; sp += (double)x[i] * (double)x[i]; }
    }
    *sumG = sg;
    *sumP = sp;
}
#else
#include <stdlib.h>
void pr_adamw_avx2(long n, float *x, const float *g, float *m, float *v, int torchForm,
                   const float k[10], int record, double *sumG, double *sumP) { abort(); }
#endif
