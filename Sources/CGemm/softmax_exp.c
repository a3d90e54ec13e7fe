// The exponential pass of the attention softmax (Sources/Tensor/VectorMath.swift,
// softmaxRowVector) on AVX-512: 16 scores per step, eight doubles per register, where the Swift
// form (built for x86-64 Haswell, AVX2) does four. Every operation is the Swift form's, in the
// same order, so every output bit and the lane sums are the same (tested against it):
//   x = row[j] − max (float) ; in double: kd' = fma(32/ln2, x, 1.5·2^52) ; k = bits(kd')
//   r = fma(32/ln2, x, −(kd' − 1.5·2^52)) ; s = bits(T[k mod 32] + k << 47)
//   y = s · fma(fma(C0, r, C1), r², fma(r, C2, 1)), rounded once to float
// which is glibc's expf (FMA build) step for step; −∞ (a masked score) gives 0 and lanes with
// |x| ≥ 88 (overflow, subnormal results, NaN) call libm's expf, as glibc's own special case does.
#include "CGemm.h"
#include <math.h>
#if defined(__x86_64__)
#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,fma")))

// Eight lanes of the exp above; t0..t3 hold the 32-entry table, eight entries each.
AVX512 static inline __m256 exp8(__m256 x, __m512i t0, __m512i t1, __m512i t2, __m512i t3) {
    const __m512d inv = _mm512_set1_pd(0x1.71547652b82fep+0 * 32), shift = _mm512_set1_pd(0x1.8p+52);
    const __m512d c0 = _mm512_set1_pd(0x1.c6af84b912394p-5 / 32768), c1 = _mm512_set1_pd(0x1.ebfce50fac4f3p-3 / 1024);
    const __m512d c2 = _mm512_set1_pd(0x1.62e42ff0c52d6p-1 / 32), one = _mm512_set1_pd(1);
    __m512d xd = _mm512_cvtps_pd(x);
    __m512d kds = _mm512_fmadd_pd(inv, xd, shift);
    __m512i ki = _mm512_castpd_si512(kds);
    __m512d kd = _mm512_sub_pd(kds, shift);
    __m512d r = _mm512_fmadd_pd(inv, xd, _mm512_sub_pd(_mm512_setzero_pd(), kd));
    __m512i idx = _mm512_and_si512(ki, _mm512_set1_epi64(31));
    __m512i lo = _mm512_permutex2var_epi64(t0, idx, t1), hi = _mm512_permutex2var_epi64(t2, idx, t3);
    __m512i t = _mm512_mask_blend_epi64(_mm512_test_epi64_mask(idx, _mm512_set1_epi64(16)), lo, hi);
    __m512d s = _mm512_castsi512_pd(_mm512_add_epi64(t, _mm512_slli_epi64(ki, 47)));
    __m512d z = _mm512_fmadd_pd(c0, r, c1);
    __m512d r2 = _mm512_mul_pd(r, r);
    __m512d y = _mm512_fmadd_pd(r, c2, one);
    y = _mm512_fmadd_pd(z, r2, y);
    __m256 out = _mm512_cvtpd_ps(_mm512_mul_pd(y, s));
    // −∞ → 0; |x| ≥ 88 (not −∞) or NaN → libm.
    __mmask8 masked = _mm256_cmp_ps_mask(x, _mm256_set1_ps(-INFINITY), _CMP_EQ_OQ);
    __mmask8 fast = _mm256_cmp_ps_mask(x, _mm256_set1_ps(88), _CMP_LT_OQ) & _mm256_cmp_ps_mask(x, _mm256_set1_ps(-88), _CMP_GT_OQ);
    out = _mm256_mask_blend_ps(masked, out, _mm256_setzero_ps());
    __mmask8 slow = (__mmask8)~(fast | masked);
    if (slow) {
        float xs[8], ys[8];
        _mm256_storeu_ps(xs, x);
        _mm256_storeu_ps(ys, out);
        for (int l = 0; l < 8; l++) if (slow & (1u << l)) ys[l] = expf(xs[l]);
        out = _mm256_loadu_ps(ys);
    }
    return out;
}

AVX512 void pr_softmax_exp_avx512(float *row, long n8, float max, const unsigned long long *table, float *lanes) {
    __m512i t0 = _mm512_loadu_si512(table), t1 = _mm512_loadu_si512(table + 8);
    __m512i t2 = _mm512_loadu_si512(table + 16), t3 = _mm512_loadu_si512(table + 24);
    __m256 m = _mm256_set1_ps(max), sum = _mm256_loadu_ps(lanes);
    long j = 0;
    for (; j + 16 <= n8; j += 16) {
        __m256 e0 = exp8(_mm256_sub_ps(_mm256_loadu_ps(row + j), m), t0, t1, t2, t3);
        __m256 e1 = exp8(_mm256_sub_ps(_mm256_loadu_ps(row + j + 8), m), t0, t1, t2, t3);
        _mm256_storeu_ps(row + j, e0);
        _mm256_storeu_ps(row + j + 8, e1);
        sum = _mm256_add_ps(sum, e0);   // the Swift loop's order: chunk j, then chunk j + 8
        sum = _mm256_add_ps(sum, e1);
    }
    for (; j + 8 <= n8; j += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(row + j), m), t0, t1, t2, t3);
        _mm256_storeu_ps(row + j, e);
        sum = _mm256_add_ps(sum, e);
    }
    _mm256_storeu_ps(lanes, sum);
}
#else
#include <stdlib.h>
void pr_softmax_exp_avx512(float *row, long n8, float max, const unsigned long long *table, float *lanes) { abort(); }
#endif
