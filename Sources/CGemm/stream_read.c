// The memory read-rate probe of `bench-e2e` (Sources/Tensor/MemoryReadProbe.swift): reads n floats
// once, in order, and returns their sum (so the loads cannot be dropped). Four independent vector
// sums keep enough loads in flight that the rate is the memory's, not the adds' latency.
#include "CGemm.h"

#if defined(__x86_64__)
#include <immintrin.h>
__attribute__((target("avx2"))) static double stream_sum_avx2(const float *p, long n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    long i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_add_ps(s0, _mm256_loadu_ps(p + i));
        s1 = _mm256_add_ps(s1, _mm256_loadu_ps(p + i + 8));
        s2 = _mm256_add_ps(s2, _mm256_loadu_ps(p + i + 16));
        s3 = _mm256_add_ps(s3, _mm256_loadu_ps(p + i + 24));
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    double total = 0;
    for (int l = 0; l < 8; l++) total += lanes[l];
    for (; i < n; i++) total += p[i];
    return total;
}
#endif

double pr_stream_sum(const float *p, long n) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) return stream_sum_avx2(p, n);
#endif
    // Sixteen independent lanes (each its own chain, so a compiler vectorises them without
    // reassociating: four NEON or SSE adds a step), enough to keep the add latency off the rate.
    float s[16] = {0};
    long i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++) s[l] += p[i + l];
    double total = 0;
    for (int l = 0; l < 16; l++) total += s[l];
    for (; i < n; i++) total += p[i];
    return total;
}
