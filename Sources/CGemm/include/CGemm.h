// PromptRepro's own single-precision GEMMs for x86-64 (row-major, transpose flags): an AVX-512
// kernel (gemm.c) and an AVX2 + FMA one (gemm_avx2.c) for CPUs without AVX-512. Only
// Sources/Tensor (BLAS.swift, PackedOperands.swift) calls them; elsewhere OpenBLAS serves every
// product. The other C helpers (the softmax's exponentials, dropout, compaction, the thread pool)
// are described below.
#ifndef PROMPTREPRO_CGEMM_H
#define PROMPTREPRO_CGEMM_H

/// Register tiles (rows of A × columns of B per kernel call); MC must be a multiple of MR and NC
/// of NR for full-speed blocks (other values are correct, only slower).
#define PR_AVX512_MR 12
#define PR_AVX512_NR 32
#define PR_AVX2_MR 6
#define PR_AVX2_NR 16

/// 1 when this CPU and the OS support the AVX-512 instructions the kernel uses (F, VL, DQ, BW).
int pr_gemm_avx512_available(void);
/// 1 when this CPU and the OS support AVX2 and FMA.
int pr_gemm_avx2_available(void);

/// C[m×n] = alpha · op(A) · op(B) + beta · C, all row-major; op(A) is m×k (A stored k×m when
/// transA), op(B) is k×n (B stored n×k when transB). beta == 0 never reads C. Blocking: A in
/// MC×KC blocks, B in KC×NC blocks. Single-threaded; every element is summed over k in blocks of
/// KC, each in order, whatever m, n, MC, NC or the caller's split, so the result depends on KC
/// but not on how a caller divides C among threads. Call only when pr_gemm_avx512_available()
/// returns 1.
void pr_sgemm_avx512(int transA, int transB, long m, long n, long k, float alpha,
                     const float *a, long lda, const float *b, long ldb,
                     float beta, float *c, long ldc, long MC, long KC, long NC);

/// The same product and contract with the 6×16 AVX2 + FMA kernel. Call only when
/// pr_gemm_avx2_available() returns 1.
void pr_sgemm_avx2(int transA, int transB, long m, long n, long k, float alpha,
                   const float *a, long lda, const float *b, long ldb,
                   float beta, float *c, long ldc, long MC, long KC, long NC);

/// A frozen B operand packed once for many products (Sources/Tensor/PackedOperands.swift):
/// NAME_pack_b writes op(B) (k×n; B stored n×k when transB) into `out`, 64-byte aligned with
/// NAME_packed_size(n, k) floats, in the kernel's KC-row blocks of NR-column panels; NAME_packed
/// then computes C = alpha · op(A) · op(B) + beta · C from it with the same kernel calls, hence the
/// same bits, as NAME with the same KC (MC and NC free; the packing fixes KC).
void pr_sgemm_avx512_pack_b(int transB, long n, long k, const float *b, long ldb, long KC, float *out);
/// The part of NAME_pack_b's output that holds columns j0 ..< min(j1, n) of op(B) (j0 a multiple of
/// the kernel's NR: 32 AVX-512, 16 AVX2), written where NAME_pack_b writes them; disjoint ranges
/// may be packed by different threads into one buffer.
void pr_sgemm_avx512_pack_b_cols(int transB, long n, long k, const float *b, long ldb, long KC, long j0, long j1, float *out);
long pr_sgemm_avx512_packed_size(long n, long k);
void pr_sgemm_avx512_packed(int transA, long m, long n, long k, float alpha, const float *a, long lda,
                            const float *packed, float beta, float *c, long ldc, long MC, long KC, long NC);
void pr_sgemm_avx2_pack_b(int transB, long n, long k, const float *b, long ldb, long KC, float *out);
void pr_sgemm_avx2_pack_b_cols(int transB, long n, long k, const float *b, long ldb, long KC, long j0, long j1, float *out);
long pr_sgemm_avx2_packed_size(long n, long k);
void pr_sgemm_avx2_packed(int transA, long m, long n, long k, float alpha, const float *a, long lda,
                          const float *packed, float beta, float *c, long ldc, long MC, long KC, long NC);

/// Opt-in bf16 products for evaluation (gemm_bf16.c, Sources/Tensor/BF16Products.swift): 1 when
/// this CPU and the OS support AVX-512 F, VL, BW and BF16.
int pr_gemm_bf16_available(void);
/// uint32 units (two bf16 each) that op(B) (k×n) takes packed: ⌈n/32⌉·32 · (⌈k/2⌉ rounded up to 16).
long pr_bf16_packed_b_units(long n, long k);
/// Columns j0 ..< min(j1, n) of op(B) (B stored n×k when transB), rounded to bf16 (nearest even;
/// denormals as 0), into `out` (64-byte aligned, pr_bf16_packed_b_units(n, k) units) where the
/// whole packing puts them; j0 a multiple of 32. Disjoint ranges may be packed by different threads.
void pr_bf16_pack_b_cols(int transB, long n, long k, const float *b, long ldb, long j0, long j1, unsigned int *out);
/// C[m×n] = alpha · bf16(A) · bf16(op(B)) + beta · C (A m×k row-major, not transposed; op(B)
/// packed by pr_bf16_pack_b_cols), products summed in fp32 over k in blocks of KC units (2·KC
/// values of k), each in order; beta == 0 never reads C. MC, NC and the caller's split of the rows
/// never change the bits. Single-threaded; call only when pr_gemm_bf16_available() returns 1.
void pr_sgemm_bf16_packed(long m, long n, long k, float alpha, const float *a, long lda, const unsigned int *packed,
                          float beta, float *c, long ldc, long MC, long KC, long NC);
/// 1 when this CPU has AMX-TILE and AMX-BF16 (besides what pr_gemm_bf16_available needs) and Linux
/// granted the process the tile state (arch_prctl ARCH_REQ_XCOMP_PERM, asked on the first call).
int pr_gemm_amx_available(void);
/// pr_sgemm_bf16_packed on the AMX tile unit (TDPBF16PS, 32 × 32 blocks of C): the same operands,
/// packing and arguments (MC rounded down to a multiple of 32, KC to 16 units); products summed in
/// fp32 over k in blocks of KC units, so the bits depend on KC only (and differ from
/// pr_sgemm_bf16_packed's). Single-threaded; call only when pr_gemm_amx_available() returns 1.
void pr_sgemm_bf16_amx_packed(long m, long n, long k, float alpha, const float *a, long lda, const unsigned int *packed,
                              float beta, float *c, long ldc, long MC, long KC, long NC);

/// C's one row (m = 1, op(B) = B, k×n row-major with ldb) = alpha · a · B + beta · C, computed as
/// the own kernels compute it with kc = KC (same operations, same bits), reading B in place
/// (gemm_row.c). `a` holds element p at a[p] (a[p·lda] when transA). Call on CPUs with AVX2 + FMA
/// for speed (elsewhere it is exact but slow).
void pr_sgemm_row(int transA, long n, long k, float alpha, const float *a, long lda,
                  const float *b, long ldb, float beta, float *c, long KC);

/// Process-wide count of GEMM floating-point operations (2·m·n·k per product), added by
/// BLAS.sgemm (Sources/Tensor/BLAS.swift) with one relaxed atomic add per call, so products
/// issued from several threads at once are all counted. Read it before and after a region.
void pr_flops_add(long long flops);
long long pr_flops_read(void);

/// Sum of p[0 ..< n], each float read once in order (stream_read.c): the memory read-rate probe
/// of `bench-e2e` (Sources/Tensor/MemoryReadProbe.swift). Float partial sums, so exact only for
/// values whose sums are representable (the probe only needs the loads).
double pr_stream_sum(const float *p, long n);

/// The exponential pass of the attention softmax on AVX2 + FMA (softmax_exp.c): for j < n8 (a
/// multiple of 8), row[j] = e^(row[j] − max) by Sources/Tensor/VectorMath.swift's exp8, and
/// lanes[j mod 8] += row[j] in the order of j, exactly as that file's eight-lane loop does (same
/// bits). Call only when pr_gemm_avx2_available() returns 1.
void pr_softmax_exp_avx2(float *row, long n8, float max, float *lanes);
/// AdamW's update of x[0 ..< n] with gradient g and moments m, v on AVX2 (adamw.c): the eight-lane
/// loop and scalar tail of Sources/Training/Optimizers.swift's Optimizer.adam, operation for
/// operation (same bits). torchForm 1: torch's rule, 0: transformers'. k = (beta1, beta2,
/// 1 − beta1, 1 − beta2, eps, decay, stepSize, √bc2, hfStep, hfDecay) as that function computes
/// them. With record ≠ 0, *sumG = Σ g² and *sumP = Σ x_new², in double in that loop's order (else 0).
/// Call only when pr_gemm_avx2_available() returns 1.
void pr_adamw_avx2(long n, float *x, const float *g, float *m, float *v, int torchForm,
                   const float k[10], int record, double *sumG, double *sumP);
/// The whole softmax of row[0 ..< n] on AVX2 + FMA (softmax_exp.c), n any length: adds bias[j]
/// (non-NULL), −∞ where keyMask[j] == 0 (non-NULL) or j ≥ limit, then e^(x − max) / Σ, or 1/n for
/// every key when none is allowed; the passes of Sources/Tensor/VectorMath.swift's
/// softmaxRowVector, operation for operation (same bits). Call only when pr_gemm_avx2_available()
/// returns 1.
void pr_softmax_row_avx2(float *row, long n, const float *bias, const float *keyMask, long limit);
/// The same pass on AVX-512 (softmax_exp.c): sixteen exponentials per step with exp8's operations
/// on each lane, their low eight then their high eight added to the eight lane sums (the order of
/// j, as above): the bits of pr_softmax_exp_avx2. Call only when pr_gemm_avx512_available() returns 1.
void pr_softmax_exp_avx512(float *row, long n8, float max, float *lanes);
/// The softmax's other two passes on AVX-512 (softmax_exp.c), over j < n8 (a multiple of 8):
/// `prepare` adds bias[j] (non-NULL), sets −∞ where keyMask[j] == 0 (non-NULL) or j ≥ limit, and
/// returns the largest value (NaNs never taken); `scale` multiplies by inv. Elementwise, so the
/// bits of VectorMath.swift's eight-lane loops. Call only when pr_gemm_avx512_available() returns 1.
float pr_softmax_prepare_avx512(float *row, long n8, const float *bias, const float *keyMask, long limit);
void pr_softmax_scale_avx512(float *row, long n8, float inv);

/// Dropout on AVX-512 (dropout_mask.c), the same bits as Sources/Tensor/Elementwise.swift's
/// dropoutChunks / maskApply. Call only when pr_gemm_avx512_available() returns 1.
/// Whole 64-element chunks c0 ..< c1 (every element < the tensor's count): dst = src · (kept ?
/// scale : 0) under the mask rule of (seed, stream) and `threshold` (16-bit); the mask to `bits`
/// (bit e % 8 of byte e / 8) when not NULL.
void pr_dropout_chunks_avx512(long c0, long c1, unsigned threshold, float scale, unsigned long long seed,
                              unsigned long long stream, const float *src, float *dst, unsigned char *bits);
/// Whole chunks c0 ..< c1: y = src · (bit set ? scale : 0); dst = y (accumulate 0), dst + y (1) or
/// y + 0 (2: the bits of adding into a zeroed dst).
void pr_mask_apply_avx512(long c0, long c1, float scale, const unsigned char *bits, const float *src, float *dst, int accumulate);
/// Dropout's whole chunks c0 ..< c1 on AVX2 (dropout_mask.c): pr_dropout_chunks_avx512's contract
/// and bits, eight Philox blocks (one chunk) at a time. Call only when pr_gemm_avx2_available()
/// returns 1.
void pr_dropout_chunks_avx2(long c0, long c1, unsigned threshold, float scale, unsigned long long seed,
                            unsigned long long stream, const float *src, float *dst, unsigned char *bits);
/// pr_mask_apply_avx512's contract and bits on AVX2. Call only when pr_gemm_avx2_available() returns 1.
void pr_mask_apply_avx2(long c0, long c1, float scale, const unsigned char *bits, const float *src, float *dst, int accumulate);

/// The most chunks pr_pool_run spreads over threads (its ticket holds a 16-bit chunk count); a
/// job with more runs serially on the calling thread.
#define PR_POOL_MAX_CHUNKS 0xffff
/// A chunk of a parallel job: `ctx` as given to pr_pool_run, `chunk` in 0 ..< chunks.
typedef void (*pr_chunk_fn)(void *ctx, long chunk);
/// Runs fn(ctx, c) for every c in 0 ..< chunks on the calling thread and up to `threads − 1`
/// pool workers (parallel_pool.c), and returns when all are done. Inside a job, or while another
/// thread's job runs, the chunks run in order on the calling thread. Chunks run in any order on
/// any thread: results must not depend on which.
void pr_pool_run(long chunks, long threads, pr_chunk_fn fn, void *ctx);

/// Compact storage of a mostly-zero activation (compact.c). pr_compact_bitmap sets bit e % 64 of
/// bits[e / 64] iff x[e]'s bit pattern is not +0.0, for e < n (ceil(n / 64) words), and returns
/// how many are set; pr_compact_gather writes those elements to dst in order; pr_compact_expand
/// writes the n floats back (+0.0 where the bit is clear) from the gathered values.
long pr_compact_bitmap(const float *x, long n, unsigned long long *bits);
void pr_compact_gather(const float *x, long n, const unsigned long long *bits, float *dst);
void pr_compact_expand(const float *values, long n, const unsigned long long *bits, float *dst);

#endif
