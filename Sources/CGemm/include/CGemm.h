// PromptRepro's own single-precision GEMM for CPUs with AVX-512 (row-major, transpose flags).
// Only Sources/Tensor/BLAS.swift calls it; elsewhere OpenBLAS serves every product.
#ifndef PROMPTREPRO_CGEMM_H
#define PROMPTREPRO_CGEMM_H

/// 1 when this CPU and the OS support the AVX-512 instructions the kernel uses (F, VL, DQ, BW).
int pr_gemm_avx512_available(void);

/// C[m×n] = alpha · op(A) · op(B) + beta · C, all row-major; op(A) is m×k (A stored k×m when
/// transA), op(B) is k×n (B stored n×k when transB). beta == 0 never reads C. Single-threaded;
/// every element is summed over k in the same order whatever m, n or the caller's split, so the
/// result does not depend on how a caller divides C among threads. Call only when
/// pr_gemm_avx512_available() returns 1.
void pr_sgemm_avx512(int transA, int transB, long m, long n, long k, float alpha,
                     const float *a, long lda, const float *b, long ldb,
                     float beta, float *c, long ldc);

/// Process-wide count of GEMM floating-point operations (2·m·n·k per product), added by
/// BLAS.sgemm (Sources/Tensor/BLAS.swift) with one relaxed atomic add per call, so products
/// issued from several threads at once are all counted. Read it before and after a region.
void pr_flops_add(long long flops);
long long pr_flops_read(void);

#endif
