// Dropout's mask and its backward on AVX-512 and on AVX2 (Sources/Tensor/Elementwise.swift:
// dropoutChunks, maskApply). The Swift form (built for x86-64 Haswell, AVX2) draws eight
// Philox-4x32-10 blocks per 64-element chunk in eight lanes; the AVX-512 form draws two chunks'
// sixteen blocks in sixteen lanes, the AVX2 form one chunk's eight, as the Swift form.
// The mask rule, the products and their order are the Swift form's, so every output and mask bit
// is the same (tested against it):
//   element e of chunk c = e / 64, r = e % 64: Philox block 8c + r % 8 of (seed, stream), word
//   (r / 8) % 4, its low 16 bits when r < 32 and high 16 bits otherwise; kept iff ≥ threshold;
//   dst = src · (kept ? scale : 0); bits: bit e % 8 of byte e / 8 set iff kept.
#include "CGemm.h"
#if defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

#define AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw")))

// (high, low) 32-bit halves of the lane-wise 64-bit products x·m: even lanes from one vpmuludq,
// odd lanes from another on x shifted down 32 bits.
AVX512 static inline void mulhilo(__m512i x, __m512i m, __m512i *hi, __m512i *lo) {
    __m512i even = _mm512_mul_epu32(x, m), odd = _mm512_mul_epu32(_mm512_srli_epi64(x, 32), m);
    *lo = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
    *hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
}

// Philox-4x32-10 blocks b0 … b0 + 15 of (seed, stream): w[i] holds word i, lane l block b0 + l.
AVX512 static inline void philox16(unsigned long long b0, unsigned long long seed, unsigned long long stream, __m512i w[4]) {
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i m0 = _mm512_set1_epi32((int)0xD2511F53u), m1 = _mm512_set1_epi32((int)0xCD9E8D57u);
    __m512i base = _mm512_set1_epi32((int)(unsigned)b0);
    __m512i c0 = _mm512_add_epi32(base, iota);
    __mmask16 carry = _mm512_cmplt_epu32_mask(c0, base);  // the block index's low word wrapped
    __m512i hiw = _mm512_set1_epi32((int)(unsigned)(b0 >> 32));
    __m512i c1 = _mm512_mask_add_epi32(hiw, carry, hiw, _mm512_set1_epi32(1));
    __m512i c2 = _mm512_set1_epi32((int)(unsigned)stream), c3 = _mm512_set1_epi32((int)(unsigned)(stream >> 32));
    unsigned k0 = (unsigned)seed, k1 = (unsigned)(seed >> 32);
    for (int r = 0; r < 10; r++) {
        if (r > 0) { k0 += 0x9E3779B9u; k1 += 0xBB67AE85u; }
        __m512i hi0, lo0, hi1, lo1;
        mulhilo(c0, m0, &hi0, &lo0);
        mulhilo(c2, m1, &hi1, &lo1);
        __m512i n0 = _mm512_xor_si512(_mm512_xor_si512(hi1, c1), _mm512_set1_epi32((int)k0));
        __m512i n2 = _mm512_xor_si512(_mm512_xor_si512(hi0, c3), _mm512_set1_epi32((int)k1));
        c0 = n0; c1 = lo1; c2 = n2; c3 = lo0;
    }
    w[0] = c0; w[1] = c1; w[2] = c2; w[3] = c3;
}

AVX512 void pr_dropout_chunks_avx512(long c0, long c1, unsigned threshold, float scale,
                                     unsigned long long seed, unsigned long long stream,
                                     const float *src, float *dst, unsigned char *bits) {
    const __m512i t = _mm512_set1_epi32((int)threshold), low = _mm512_set1_epi32(0xFFFF);
    const __m512 on = _mm512_set1_ps(scale);
    for (long c = c0; c < c1; c += 2) {
        __m512i w[4];
        philox16((unsigned long long)c * 8, seed, stream, w);
        for (int q = 0; q < 2 && c + q < c1; q++) {
            long base = (c + q) * 64;
            for (int half = 0; half < 2; half++) {
                for (int wp = 0; wp < 4; wp += 2) {
                    // Chunk c's eight lanes of words wp and wp + 1 (elements o … o + 15), or chunk c + 1's.
                    __m512i v = q == 0 ? _mm512_shuffle_i32x4(w[wp], w[wp + 1], 0x44) : _mm512_shuffle_i32x4(w[wp], w[wp + 1], 0xEE);
                    __m512i u = half == 0 ? _mm512_and_si512(v, low) : _mm512_srli_epi32(v, 16);
                    __mmask16 keep = _mm512_cmpge_epu32_mask(u, t);
                    long o = base + half * 32 + wp * 8;
                    _mm512_storeu_ps(dst + o, _mm512_mul_ps(_mm512_loadu_ps(src + o), _mm512_maskz_mov_ps(keep, on)));
                    if (bits) { unsigned short k = (unsigned short)keep; memcpy(bits + (o >> 3), &k, 2); }
                }
            }
        }
    }
}

AVX512 void pr_mask_apply_avx512(long c0, long c1, float scale, const unsigned char *bits,
                                 const float *src, float *dst, int accumulate) {
    const __m512 on = _mm512_set1_ps(scale);
    for (long o = c0 * 64; o < c1 * 64; o += 16) {
        unsigned short k;
        memcpy(&k, bits + (o >> 3), 2);
        __m512 y = _mm512_mul_ps(_mm512_loadu_ps(src + o), _mm512_maskz_mov_ps((__mmask16)k, on));
        // accumulate: 1 dst + y; 2 y + 0 (the bits of adding into zeros: −0 becomes +0); 0 y.
        _mm512_storeu_ps(dst + o, accumulate == 1 ? _mm512_add_ps(_mm512_loadu_ps(dst + o), y)
                                  : accumulate == 2 ? _mm512_add_ps(_mm512_setzero_ps(), y) : y);
    }
}

// The AVX2 form (wherever the AVX-512 form does not run: no AVX-512, or another GEMM kernel
// chosen, e.g. PROMPTREPRO_GEMM=avx2): one chunk's eight Philox blocks in eight lanes, as the
// Swift form draws them, with the compare, select and bit packing in single instructions. The
// 16-bit uniforms and the threshold (≤ 65536) are non-negative as 32-bit signed integers, so
// kept = !(threshold > u) is the unsigned u ≥ threshold.
#define AVX2 __attribute__((target("avx2,fma")))

AVX2 static inline void mulhilo8(__m256i x, __m256i m, __m256i *hi, __m256i *lo) {
    __m256i even = _mm256_mul_epu32(x, m), odd = _mm256_mul_epu32(_mm256_srli_epi64(x, 32), m);
    *lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
    *hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
}

// Philox-4x32-10 blocks b0 … b0 + 7 of (seed, stream), b0 a multiple of 8 (so the eight share
// the index's high word): w[i] holds word i, lane l block b0 + l.
AVX2 static inline void philox8(unsigned long long b0, unsigned long long seed, unsigned long long stream, __m256i w[4]) {
    const __m256i m0 = _mm256_set1_epi32((int)0xD2511F53u), m1 = _mm256_set1_epi32((int)0xCD9E8D57u);
    __m256i c0 = _mm256_add_epi32(_mm256_set1_epi32((int)(unsigned)b0), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256i c1 = _mm256_set1_epi32((int)(unsigned)(b0 >> 32));
    __m256i c2 = _mm256_set1_epi32((int)(unsigned)stream), c3 = _mm256_set1_epi32((int)(unsigned)(stream >> 32));
    unsigned k0 = (unsigned)seed, k1 = (unsigned)(seed >> 32);
    for (int r = 0; r < 10; r++) {
        if (r > 0) { k0 += 0x9E3779B9u; k1 += 0xBB67AE85u; }
        __m256i hi0, lo0, hi1, lo1;
        mulhilo8(c0, m0, &hi0, &lo0);
        mulhilo8(c2, m1, &hi1, &lo1);
        __m256i n0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), _mm256_set1_epi32((int)k0));
        __m256i n2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), _mm256_set1_epi32((int)k1));
        c0 = n0; c1 = lo1; c2 = n2; c3 = lo0;
    }
    w[0] = c0; w[1] = c1; w[2] = c2; w[3] = c3;
}

AVX2 void pr_dropout_chunks_avx2(long c0, long c1, unsigned threshold, float scale,
                                 unsigned long long seed, unsigned long long stream,
                                 const float *src, float *dst, unsigned char *bits) {
    const __m256i t = _mm256_set1_epi32((int)threshold), low = _mm256_set1_epi32(0xFFFF);
    const __m256 on = _mm256_set1_ps(scale);
    for (long c = c0; c < c1; c++) {
        __m256i w[4];
        philox8((unsigned long long)c * 8, seed, stream, w);
        long base = c * 64;
        for (int half = 0; half < 2; half++) {
            for (int wi = 0; wi < 4; wi++) {
                __m256i u = half == 0 ? _mm256_and_si256(w[wi], low) : _mm256_srli_epi32(w[wi], 16);
                __m256 keep = _mm256_castsi256_ps(_mm256_andnot_si256(_mm256_cmpgt_epi32(t, u), _mm256_set1_epi32(-1)));
                long o = base + half * 32 + wi * 8;
                // src · (kept ? scale : +0), the Swift form's product.
                _mm256_storeu_ps(dst + o, _mm256_mul_ps(_mm256_loadu_ps(src + o), _mm256_and_ps(keep, on)));
                if (bits) bits[o >> 3] = (unsigned char)_mm256_movemask_ps(keep);
            }
        }
    }
}

AVX2 void pr_mask_apply_avx2(long c0, long c1, float scale, const unsigned char *bits,
                             const float *src, float *dst, int accumulate) {
    const __m256 on = _mm256_set1_ps(scale);
    const __m256i lane = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    for (long o = c0 * 64; o < c1 * 64; o += 8) {
        // Lane l all ones iff bit l of the byte is set.
        __m256i b = _mm256_and_si256(_mm256_set1_epi32(bits[o >> 3]), lane);
        __m256 keep = _mm256_castsi256_ps(_mm256_cmpeq_epi32(b, lane));
        __m256 y = _mm256_mul_ps(_mm256_loadu_ps(src + o), _mm256_and_ps(keep, on));
        // accumulate: 1 dst + y; 2 y + 0 (the bits of adding into zeros: −0 becomes +0); 0 y.
        _mm256_storeu_ps(dst + o, accumulate == 1 ? _mm256_add_ps(_mm256_loadu_ps(dst + o), y)
                                  : accumulate == 2 ? _mm256_add_ps(_mm256_setzero_ps(), y) : y);
    }
}
#else
void pr_dropout_chunks_avx512(long c0, long c1, unsigned threshold, float scale, unsigned long long seed,
                              unsigned long long stream, const float *src, float *dst, unsigned char *bits) {}
void pr_mask_apply_avx512(long c0, long c1, float scale, const unsigned char *bits, const float *src, float *dst, int accumulate) {}
void pr_dropout_chunks_avx2(long c0, long c1, unsigned threshold, float scale, unsigned long long seed,
                            unsigned long long stream, const float *src, float *dst, unsigned char *bits) {}
void pr_mask_apply_avx2(long c0, long c1, float scale, const unsigned char *bits, const float *src, float *dst, int accumulate) {}
#endif
