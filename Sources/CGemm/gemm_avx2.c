// AVX2 + FMA SGEMM for x86-64 CPUs without AVX-512 (Intel Haswell and later client cores, AMD Zen
// 1-3): the scheme of gemm.c at half the vector width. B is packed in KC×NC blocks of 16-column
// panels, A in MC×KC blocks of 6-row panels, and a 6×16 register tile (12 ymm accumulators, two B
// vectors per k, A values broadcast; 15 of the 16 ymm registers) runs over each pair of panels.
// Rows and columns past the matrix edge are packed as zeros and the edge tiles store with masks.
// Compiled with per-function target attributes, so the file builds for baseline x86-64; call only
// when pr_gemm_avx2_available() says so.
//
// Why it exists: on AVX2-only hosts OpenBLAS (Debian's 0.3.21) may not know the CPU and run its
// generic SSE kernel, at a quarter of what the FMA units can do.
#include "CGemm.h"
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <stdlib.h>

#define MR PR_AVX2_MR  /* 6 */
#define NR PR_AVX2_NR  /* 16 */

#define AVX2 __attribute__((target("avx2,fma")))

int pr_gemm_avx2_available(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();  // the AVX check includes the OS saving ymm state (XGETBV)
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

#if defined(__x86_64__)

static inline long min_l(long a, long b) { return a < b ? a : b; }

// Mask of the first `count` of 8 lanes (none when count ≤ 0, all when ≥ 8), for maskload/maskstore.
AVX2 static inline __m256i lanes8(long count) {
    int n = (int)(count < 0 ? 0 : count > 8 ? 8 : count);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// Per-thread packing buffers, grown on demand and kept (callers are the core's worker threads).
static _Thread_local float *pack_a = NULL, *pack_b = NULL;
static _Thread_local long pack_a_size = 0, pack_b_size = 0;

static float *ensure(float **buf, long *size, long need) {
    if (*size < need) {
        free(*buf);
        *buf = aligned_alloc(64, (size_t)((need * 4 + 63) / 64 * 64));
        *size = *buf ? need : 0;
    }
    return *buf;
}

// op(A)[ic.., pc..] (mc×kc) into panels of MR rows: panel r holds element (i, p) at p*MR + i.
static void pack_a_block(int transA, const float *a, long lda, long ic, long pc, long mc, long kc, float *ap) {
    for (long ir = 0; ir < mc; ir += MR) {
        long mr = min_l(MR, mc - ir);
        float *dst = ap + ir * kc;
        if (!transA) {
            const float *src = a + (ic + ir) * lda + pc;
            if (mr == MR) {
                for (long p = 0; p < kc; p++) {
                    float *d = dst + p * MR;
#pragma clang loop unroll(full)
                    for (int i = 0; i < MR; i++) d[i] = src[i * lda + p];
                }
            } else {
                for (long p = 0; p < kc; p++) {
                    float *d = dst + p * MR;
                    for (long i = 0; i < MR; i++) d[i] = i < mr ? src[i * lda + p] : 0;
                }
            }
        } else {
            for (long p = 0; p < kc; p++) {
                const float *src = a + (pc + p) * lda + ic + ir;
                float *d = dst + p * MR;
                long i = 0;
                for (; i < mr; i++) d[i] = src[i];
                for (; i < MR; i++) d[i] = 0;
            }
        }
    }
}

// dst[r*ldd + c] = src[c*lds + r] for an 8×8 block.
AVX2 static inline void transpose8(const float *src, long lds, float *dst, long ldd) {
    __m256 r[8], t[8];
    for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + i * lds);
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        r[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
        r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    // r[4q + s] now holds, in 128-bit lane L, column 4L + s of rows 4q..4q+3.
    for (int s = 0; s < 4; s++) {
        _mm256_storeu_ps(dst + s * ldd, _mm256_permute2f128_ps(r[s], r[4 + s], 0x20));
        _mm256_storeu_ps(dst + (4 + s) * ldd, _mm256_permute2f128_ps(r[s], r[4 + s], 0x31));
    }
}

// op(B)[pc.., jc..] (kc×nc) into panels of NR columns: panel holds element (p, j) at p*NR + j.
AVX2 static void pack_b_block(int transB, const float *b, long ldb, long pc, long jc, long kc, long nc, float *bp) {
    for (long jr = 0; jr < nc; jr += NR) {
        long nr = min_l(NR, nc - jr);
        float *dst = bp + jr * kc;
        if (!transB) {
            const float *src = b + pc * ldb + jc + jr;
            if (nr == NR) {
                for (long p = 0; p < kc; p++, src += ldb) {
                    _mm256_store_ps(dst + p * NR, _mm256_loadu_ps(src));
                    _mm256_store_ps(dst + p * NR + 8, _mm256_loadu_ps(src + 8));
                }
            } else {
                __m256i m0 = lanes8(nr), m1 = lanes8(nr - 8);
                for (long p = 0; p < kc; p++, src += ldb) {
                    _mm256_store_ps(dst + p * NR, _mm256_maskload_ps(src, m0));
                    _mm256_store_ps(dst + p * NR + 8, _mm256_maskload_ps(src + 8, m1));
                }
            }
        } else {
            // Column j of op(B) is row j of B, contiguous in p: full 8×8 blocks are transposed in
            // registers, the ragged rest element by element (zeros past column nr).
            const float *src = b + (jc + jr) * ldb + pc;
            for (long p0 = 0; p0 < kc; p0 += 8) {
                long pl = min_l(8, kc - p0);
                for (long j0 = 0; j0 < NR; j0 += 8) {
                    if (pl == 8 && j0 + 8 <= nr) {
                        transpose8(src + j0 * ldb + p0, ldb, dst + p0 * NR + j0, NR);
                    } else {
                        for (long p = p0; p < p0 + pl; p++)
                            for (long j = j0; j < j0 + 8; j++) dst[p * NR + j] = j < nr ? src[j * ldb + p] : 0;
                    }
                }
            }
        }
    }
}

// C tile (mr×nr of it valid) = alpha · A·Bp + beta · C (beta == 0: C not read). A's element
// (i, p) is at a[i*rs + p*cs]: a packed panel (rs 1, cs MR) or the caller's matrix read in place.
AVX2 static inline __attribute__((always_inline)) void kernel_strided(
        long kc, const float *restrict a, long rs, long cs, const float *restrict bp, float *c, long ldc,
        long mr, long nr, float alpha, float beta) {
    // The C tile is read (beta ≠ 0) or written only after the k loop: start fetching its lines now
    // so the misses overlap the FMAs (with a large mc the C block is in L3, not L2).
#pragma clang loop unroll(full)
    for (int i = 0; i < MR; i++) {
        if (i < mr) { _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0); _mm_prefetch((const char *)(c + i * ldc + NR - 1), _MM_HINT_T0); }
    }
    __m256 c0[MR], c1[MR];
#pragma clang loop unroll(full)
    for (int i = 0; i < MR; i++) { c0[i] = _mm256_setzero_ps(); c1[i] = _mm256_setzero_ps(); }
#pragma clang loop unroll_count(4)
    for (long p = 0; p < kc; p++) {
        __m256 b0 = _mm256_load_ps(bp);
        __m256 b1 = _mm256_load_ps(bp + 8);
#pragma clang loop unroll(full)
        for (int i = 0; i < MR; i++) {
            __m256 av = _mm256_broadcast_ss(a + i * rs);
            c0[i] = _mm256_fmadd_ps(av, b0, c0[i]);
            c1[i] = _mm256_fmadd_ps(av, b1, c1[i]);
        }
        a += cs;
        bp += NR;
    }
    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    if (nr == NR) {
#pragma clang loop unroll(full)
        for (int i = 0; i < MR; i++) {
            if (i < mr) {
                float *row = c + i * ldc;
                __m256 r0 = _mm256_mul_ps(va, c0[i]), r1 = _mm256_mul_ps(va, c1[i]);
                if (beta != 0) {
                    r0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(row), r0);
                    r1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(row + 8), r1);
                }
                _mm256_storeu_ps(row, r0);
                _mm256_storeu_ps(row + 8, r1);
            }
        }
    } else {
        __m256i m0 = lanes8(nr), m1 = lanes8(nr - 8);
#pragma clang loop unroll(full)
        for (int i = 0; i < MR; i++) {
            if (i < mr) {
                float *row = c + i * ldc;
                __m256 r0 = _mm256_mul_ps(va, c0[i]), r1 = _mm256_mul_ps(va, c1[i]);
                if (beta != 0) {
                    r0 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(row, m0), r0);
                    r1 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(row + 8, m1), r1);
                }
                _mm256_maskstore_ps(row, m0, r0);
                _mm256_maskstore_ps(row + 8, m1, r1);
            }
        }
    }
}

AVX2 static void kernel(long kc, const float *restrict ap, const float *restrict bp, float *c, long ldc,
                        long mr, long nr, float alpha, float beta) {
    kernel_strided(kc, ap, 1, MR, bp, c, ldc, mr, nr, alpha, beta);
}

AVX2 static void kernel_rows(long kc, const float *restrict a, long lda, const float *restrict bp, float *c, long ldc,
                             long nr, float alpha, float beta) {
    kernel_strided(kc, a, lda, 1, bp, c, ldc, MR, nr, alpha, beta);
}

AVX2 static void kernel_cols(long kc, const float *restrict a, long lda, const float *restrict bp, float *c, long ldc,
                             long nr, float alpha, float beta) {
    kernel_strided(kc, a, 1, lda, bp, c, ldc, MR, nr, alpha, beta);
}

AVX2 void pr_sgemm_avx2(int transA, int transB, long m, long n, long k, float alpha,
                        const float *a, long lda, const float *b, long ldb,
                        float beta, float *c, long ldc, long MC, long KC, long NC) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
        for (long i = 0; i < m; i++)
            for (long j = 0; j < n; j++) c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j];
        return;
    }
    if (MC < MR || KC < 1 || NC < NR) abort();
    long ncMax = min_l(NC, (n + NR - 1) / NR * NR), kcMax = min_l(KC, k), mcMax = min_l(MC, (m + MR - 1) / MR * MR);
    float *bp = ensure(&pack_b, &pack_b_size, kcMax * ncMax);
    float *ap = ensure(&pack_a, &pack_a_size, kcMax * mcMax);
    if (!bp || !ap) abort();
    // Narrow products (per-head attention, n = 64) do only 2n FLOPs per element of A: the kernel
    // reads full 6-row panels of A in place instead of packing them (as gemm.c).
    int direct = n <= 4 * NR;
    for (long jc = 0; jc < n; jc += NC) {
        long nc = min_l(NC, n - jc);
        for (long pc = 0; pc < k; pc += KC) {
            long kc = min_l(KC, k - pc);
            float bet = pc == 0 ? beta : 1.0f;
            pack_b_block(transB, b, ldb, pc, jc, kc, nc, bp);
            for (long ic = 0; ic < m; ic += MC) {
                long mc = min_l(MC, m - ic);
                if (!direct) pack_a_block(transA, a, lda, ic, pc, mc, kc, ap);
                else if (mc % MR) pack_a_block(transA, a, lda, ic + mc / MR * MR, pc, mc % MR, kc, ap);  // ragged last panel
                for (long jr = 0; jr < nc; jr += NR) {
                    long nr = min_l(NR, nc - jr);
                    for (long ir = 0; ir < mc; ir += MR) {
                        long mr = min_l(MR, mc - ir);
                        float *ct = c + (ic + ir) * ldc + jc + jr;
                        if (!direct) {
                            kernel(kc, ap + ir * kc, bp + jr * kc, ct, ldc, mr, nr, alpha, bet);
                        } else if (mr < MR) {
                            kernel(kc, ap, bp + jr * kc, ct, ldc, mr, nr, alpha, bet);
                        } else if (!transA) {
                            kernel_rows(kc, a + (ic + ir) * lda + pc, lda, bp + jr * kc, ct, ldc, nr, alpha, bet);
                        } else {
                            kernel_cols(kc, a + pc * lda + ic + ir, lda, bp + jr * kc, ct, ldc, nr, alpha, bet);
                        }
                    }
                }
            }
        }
    }
}

#else
void pr_sgemm_avx2(int transA, int transB, long m, long n, long k, float alpha,
                   const float *a, long lda, const float *b, long ldb,
                   float beta, float *c, long ldc, long MC, long KC, long NC) { abort(); }
#endif
