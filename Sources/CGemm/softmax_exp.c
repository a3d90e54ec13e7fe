// The exponential pass of the attention softmax (Sources/Tensor/VectorMath.swift,
// softmaxRowVector) in C for CPUs with AVX2 and FMA: exp8's operations, in the same order, on the
// same eight lanes, so every output bit and the lane sums are the Swift loop's (tested against it).
// The Swift form is not inlined into the softmax (the compiler keeps exp8 out of line), and a call
// per eight scores costs more than the exponential itself. On AVX-512 the same operations run on
// sixteen lanes, each step's low then high eight added to the eight lane sums (same bits).
//   x = row[j] − max ; xc = x clamped to [−150, 89] (a NaN kept)
//   kd = xc·log2e + 1.5·2^23 (two roundings) ; n = kd − 1.5·2^23 ; k = bits(kd) − bits(1.5·2^23)
//   r = fma(−n, ln2hi, xc) ; r = fma(−n, ln2lo, r)
//   y = 1 + r·(1 + r·(1/2 + r·(1/6 + r·(1/24 + r·(1/120 + r·(1/720 + r/5040)))))) (fused steps)
//   y · 2^⌊k/2⌋ · 2^(k − ⌊k/2⌋) ; a NaN input gives itself.
// Products and sums below are separate roundings, as in the Swift form: never contracted to FMAs.
#pragma STDC FP_CONTRACT OFF
#include "CGemm.h"
#include <stdint.h>
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
// The whole softmax row on AVX2 + FMA, n any length: softmaxRowVector's passes (VectorMath.swift)
// with their operations in their order, so the same bits (tested against the Swift form). One call
// a row: from Swift the first and last passes ran as SIMD8 loops whose masked selects compile to
// several instructions each, and the tails as scalar loops around a call per exponential.
//   1. v = row[j] (+ bias[j]); −∞ where keyMask[j] == 0 or j ≥ limit; max over the row, NaNs
//      never taken (the eight-lane loop, then the tail one element at a time);
//   2. no allowed key (max −∞): every row[j] = 1/n;
//   3. e = e^(v − max) by exp8 (the tail: exp8's lane 0, 0 for −∞), lane sums in the order of j,
//      the eight lanes added 0…7 from −0, then the tail's e one by one;
//   4. row[j] ·= 1/sum.
AVX2 void pr_softmax_row_avx2(float *row, long n, const float *bias, const float *keyMask, long limit) {
    const __m256 ninf = _mm256_set1_ps(-__builtin_inff()), zero = _mm256_setzero_ps();
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const int lim = limit > INT32_MAX ? INT32_MAX : limit < INT32_MIN ? INT32_MIN : (int)limit;  // Int32(clamping:)
    const long n8 = n / 8 * 8;
    __m256 mx8 = ninf;
    for (long j = 0; j < n8; j += 8) {
        __m256 v = _mm256_loadu_ps(row + j);
        if (bias) v = _mm256_add_ps(v, _mm256_loadu_ps(bias + j));
        if (keyMask) v = _mm256_blendv_ps(v, ninf, _mm256_cmp_ps(_mm256_loadu_ps(keyMask + j), zero, _CMP_EQ_OQ));
        if (j + 8 > limit) {  // keep lanes with j + lane < limit
            __m256i keep = _mm256_cmpgt_epi32(_mm256_set1_epi32(lim), _mm256_add_epi32(lane, _mm256_set1_epi32((int)j)));
            v = _mm256_blendv_ps(ninf, v, _mm256_castsi256_ps(keep));
        }
        _mm256_storeu_ps(row + j, v);
        mx8 = _mm256_blendv_ps(mx8, v, _mm256_cmp_ps(v, mx8, _CMP_GT_OQ));
    }
    float l8[8];
    _mm256_storeu_ps(l8, mx8);
    float mx = l8[0];
    for (int i = 1; i < 8; i++) if (l8[i] > mx) mx = l8[i];  // no NaN among them: the exact maximum
    for (long j = n8; j < n; j++) {
        float v = row[j] + (bias ? bias[j] : 0.0f);
        if (j >= limit || (keyMask && keyMask[j] == 0)) v = -__builtin_inff();
        row[j] = v;
        if (v > mx) mx = v;
    }
    if (mx == -__builtin_inff()) {
        const float u = 1 / (float)n;
        for (long j = 0; j < n; j++) row[j] = u;
        return;
    }
    float lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    pr_softmax_exp_avx2(row, n8, mx, lanes);
    float s = -0.0f;
    for (int i = 0; i < 8; i++) s += lanes[i];
    for (long j = n8; j < n; j++) {
        const float e = row[j] == -__builtin_inff() ? 0 : _mm256_cvtss_f32(exp8(_mm256_set1_ps(row[j] - mx)));
        row[j] = e;
        s += e;
    }
    const float inv = 1 / s;
    const __m256 iv = _mm256_set1_ps(inv);
    long j = 0;
    for (; j < n8; j += 8) _mm256_storeu_ps(row + j, _mm256_mul_ps(_mm256_loadu_ps(row + j), iv));
    for (; j < n; j++) row[j] *= inv;
}
#define AVX512 __attribute__((target("avx512f,avx512dq,avx2,fma")))

// exp8 on sixteen lanes: the same operations, lane by lane.
AVX512 static inline __m512 exp16(__m512 x) {
    const __m512 shift = _mm512_set1_ps(0x1.8p23f);
    __m512 xc = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(-150.0f), _CMP_LT_OQ), x, _mm512_set1_ps(-150.0f));
    xc = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(89.0f), _CMP_GT_OQ), xc, _mm512_set1_ps(89.0f));
    __m512 t = _mm512_mul_ps(xc, _mm512_set1_ps(0x1.715476p+0f));
    __m512 kd = _mm512_add_ps(t, shift);
    __m512 n = _mm512_sub_ps(kd, shift);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.62e430p-1f), xc);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-0x1.05c610p-29f), r);
    __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(1.0f / 5040), r, _mm512_set1_ps(1.0f / 720));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    __m512 y = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    __m512i k = _mm512_sub_epi32(_mm512_castps_si512(kd), _mm512_castps_si512(shift));
    __m512i k1 = _mm512_srai_epi32(k, 1), k2 = _mm512_sub_epi32(k, k1);
    const __m512i bias = _mm512_set1_epi32(127);
    y = _mm512_mul_ps(y, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(k1, bias), 23)));
    y = _mm512_mul_ps(y, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(k2, bias), 23)));
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), y, x);
}

AVX512 void pr_softmax_exp_avx512(float *row, long n8, float max, float *lanes) {
    __m512 m = _mm512_set1_ps(max);
    __m256 sum = _mm256_loadu_ps(lanes);
    long j = 0;
    for (; j + 16 <= n8; j += 16) {
        __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(row + j), m));
        _mm512_storeu_ps(row + j, e);
        sum = _mm256_add_ps(sum, _mm512_castps512_ps256(e));          // row[j ..< j+8] first,
        sum = _mm256_add_ps(sum, _mm512_extractf32x8_ps(e, 1));      // then row[j+8 ..< j+16]
    }
    _mm256_storeu_ps(lanes, sum);
    if (j < n8) pr_softmax_exp_avx2(row + j, n8 - j, max, lanes);  // a last eight
}
// The softmax's first pass on AVX-512 over row[0 ..< n8]: row[j] += bias[j] (bias non-NULL), then
// −∞ where keyMask[j] == 0 (keyMask non-NULL) or j ≥ limit; returns the largest value (−∞ when
// none is larger; a NaN is never taken), as softmaxRowVector's eight-lane loop does.
AVX512 float pr_softmax_prepare_avx512(float *row, long n8, const float *bias, const float *keyMask, long limit) {
    const __m512 ninf = _mm512_set1_ps(-__builtin_inff()), zero = _mm512_setzero_ps();
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __m512 mx = ninf;
    for (long j = 0; j < n8; j += 16) {
        __mmask16 live = j + 16 <= n8 ? 0xFFFF : (__mmask16)((1u << (n8 - j)) - 1);
        __m512 v = _mm512_maskz_loadu_ps(live, row + j);
        if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(live, bias + j));
        if (keyMask) v = _mm512_mask_blend_ps(_mm512_mask_cmp_ps_mask(live, _mm512_maskz_loadu_ps(live, keyMask + j), zero, _CMP_EQ_OQ), v, ninf);
        if (j + 16 > limit) {  // limit clamped to Int32 as the Swift loop's Int32(clamping:)
            int lim = limit > INT32_MAX ? INT32_MAX : limit < INT32_MIN ? INT32_MIN : (int)limit;
            __mmask16 past = _mm512_cmpge_epi32_mask(_mm512_add_epi32(lane, _mm512_set1_epi32((int)j)), _mm512_set1_epi32(lim));
            v = _mm512_mask_blend_ps(past, v, ninf);
        }
        _mm512_mask_storeu_ps(row + j, live, v);
        mx = _mm512_mask_blend_ps(_mm512_mask_cmp_ps_mask(live, v, mx, _CMP_GT_OQ), mx, v);
    }
    return _mm512_reduce_max_ps(mx);
}

// row[j] *= inv for j < n8 (the softmax's last pass).
AVX512 void pr_softmax_scale_avx512(float *row, long n8, float inv) {
    const __m512 s = _mm512_set1_ps(inv);
    long j = 0;
    for (; j + 16 <= n8; j += 16) _mm512_storeu_ps(row + j, _mm512_mul_ps(_mm512_loadu_ps(row + j), s));
    if (j < n8) {
        __mmask16 live = (__mmask16)((1u << (n8 - j)) - 1);
        _mm512_mask_storeu_ps(row + j, live, _mm512_mul_ps(_mm512_maskz_loadu_ps(live, row + j), s));
    }
}
#else
#include <stdlib.h>
void pr_softmax_exp_avx2(float *row, long n8, float max, float *lanes) { abort(); }
void pr_softmax_row_avx2(float *row, long n, const float *bias, const float *keyMask, long limit) { abort(); }
float pr_softmax_prepare_avx512(float *row, long n8, const float *bias, const float *keyMask, long limit) { abort(); }
void pr_softmax_scale_avx512(float *row, long n8, float inv) { abort(); }
void pr_softmax_exp_avx512(float *row, long n8, float max, float *lanes) { abort(); }
#endif
