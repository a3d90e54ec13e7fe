// What the two AVX-512 kernels (gemm.c: fp32, gemm_bf16.c: bf16 products) share about their
// 32-column register tiles: the lane masks of a ragged tile edge and the write-back of one tile
// row, C = alpha · acc + beta · C (beta == 0: C not read), whose operations fix the result's bits.
// Included by both files inside their x86-64 sections; not a public header.
#ifndef PROMPTREPRO_AVX512_TILE_H
#define PROMPTREPRO_AVX512_TILE_H
#include <immintrin.h>

// Mask of the first `count` of 16 lanes (none when count ≤ 0, all when ≥ 16).
static inline __mmask16 lanes(long count) {
    return (__mmask16)(count >= 16 ? 0xFFFF : count <= 0 ? 0 : (1u << count) - 1);
}

// row[0 ..< 32] (lanes m0 of the first 16, m1 of the second) = va · (acc0, acc1) + vb · row,
// the row read only when beta ≠ 0 (vb holds beta).
__attribute__((target("avx512f"))) static inline __attribute__((always_inline)) void store_tile_row(
        float *row, __m512 acc0, __m512 acc1, __m512 va, __m512 vb, float beta, __mmask16 m0, __mmask16 m1) {
    __m512 r0 = _mm512_mul_ps(va, acc0), r1 = _mm512_mul_ps(va, acc1);
    if (beta != 0) {
        r0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, row), r0);
        r1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, row + 16), r1);
    }
    _mm512_mask_storeu_ps(row, m0, r0);
    _mm512_mask_storeu_ps(row + 16, m1, r1);
}
#endif
