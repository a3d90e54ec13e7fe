// The exponential pass of the attention softmax (Sources/Tensor/VectorMath.swift,
// softmaxRowVector) in C for CPUs with AVX2 and FMA: exp8's operations, in the same order, on the
// same eight lanes, so every output bit and the lane sums are the Swift loop's (tested against it).
// The Swift form is not inlined into the softmax (the compiler keeps exp8 out of line), and a call
// per eight scores costs more than the exponential itself.
//   x = row[j] − max ; xc = x clamped to [−150, 89] (a NaN kept)
//   kd = xc·log2e + 1.5·2^23 (two roundings) ; n = kd − 1.5·2^23 ; k = bits(kd) − bits(1.5·2^23)
//   r = fma(−n, ln2hi, xc) ; r = fma(−n, ln2lo, r)
//   y = 1 + r·(1 + r·(1/2 + r·(1/6 + r·(1/24 + r·(1/120 + r·(1/720 + r/5040)))))) (fused steps)
//   y · 2^⌊k/2⌋ · 2^(k − ⌊k/2⌋) ; a NaN input gives itself.
// Products and sums below are separate roundings, as in the Swift form: never contracted to FMAs.
#pragma STDC FP_CONTRACT OFF
#include "CGemm.h"
#if defined(__x86_64__)
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma")))

AVX2 static inline __m256 exp8(__m256 x) {
    const __m256 shift = _mm256_set1_ps(0x1.8p23f);
    __m256 xc = _mm256_blendv_ps(x, _mm256_set1_ps(-150.0f), _mm256_cmp_ps(x, _mm256_set1_ps(-150.0f), _CMP_LT_OQ));
    xc = _mm256_blendv_ps(xc, _mm256_set1_ps(89.0f), _mm256_cmp_ps(x, _mm256_set1_ps(89.0f), _CMP_GT_OQ));
    __m256 t = _mm256_mul_ps(xc, _mm256_set1_ps(0x1.715476p+0f));
    __m256 kd = _mm256_add_ps(t, shift);
    __m256 n = _mm256_sub_ps(kd, shift);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e430p-1f), xc);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-0x1.05c610p-29f), r);
    __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(1.0f / 5040), r, _mm256_set1_ps(1.0f / 720));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256 y = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i k = _mm256_sub_epi32(_mm256_castps_si256(kd), _mm256_castps_si256(shift));
    __m256i k1 = _mm256_srai_epi32(k, 1), k2 = _mm256_sub_epi32(k, k1);
    const __m256i bias = _mm256_set1_epi32(127);
    y = _mm256_mul_ps(y, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k1, bias), 23)));
    y = _mm256_mul_ps(y, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k2, bias), 23)));
    return _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

AVX2 void pr_softmax_exp_avx2(float *row, long n8, float max, float *lanes) {
    __m256 m = _mm256_set1_ps(max), sum = _mm256_loadu_ps(lanes);
    for (long j = 0; j + 8 <= n8; j += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(row + j), m));
        _mm256_storeu_ps(row + j, e);
        sum = _mm256_add_ps(sum, e);  // the Swift loop's order: chunk by chunk
    }
    _mm256_storeu_ps(lanes, sum);
}
#else
#include <stdlib.h>
void pr_softmax_exp_avx2(float *row, long n8, float max, float *lanes) { abort(); }
#endif
