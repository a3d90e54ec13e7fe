// Compact storage of a mostly-zero activation (Sources/Tensor/Rematerialization.swift): a bitmap
// of the elements whose bit pattern is not +0.0 (so −0.0 and NaN are kept) and their values in
// order. Expanding gives the original floats bit for bit. Elements e of word w = e / 64 map to bit
// e % 64. Callers split the work at multiples of 64 elements.
#include "CGemm.h"
#include <string.h>

typedef unsigned __attribute__((may_alias)) float_bits;  // a float's bit pattern, read in place

long pr_compact_bitmap(const float *x, long n, unsigned long long *bits) {
    const float_bits *u = (const float_bits *)x;
    long count = 0;
    for (long w = 0; w * 64 < n; w++) {
        long e0 = w * 64, len = n - e0 < 64 ? n - e0 : 64;
        unsigned long long m = 0;
        if (len == 64) {
            for (int i = 0; i < 64; i++) m |= (unsigned long long)(u[e0 + i] != 0) << i;
        } else {
            for (long i = 0; i < len; i++) m |= (unsigned long long)(u[e0 + i] != 0) << i;
        }
        bits[w] = m;
        count += __builtin_popcountll(m);
    }
    return count;
}

void pr_compact_gather(const float *x, long n, const unsigned long long *bits, float *dst) {
    long k = 0;
    for (long w = 0; w * 64 < n; w++) {
        unsigned long long m = bits[w];
        const float *src = x + w * 64;
        while (m) {
            int i = __builtin_ctzll(m);
            dst[k++] = src[i];
            m &= m - 1;
        }
    }
}

void pr_compact_expand(const float *values, long n, const unsigned long long *bits, float *dst) {
    long k = 0;
    for (long w = 0; w * 64 < n; w++) {
        long e0 = w * 64, len = n - e0 < 64 ? n - e0 : 64;
        float *out = dst + e0;
        memset(out, 0, (size_t)len * sizeof(float));
        unsigned long long m = bits[w];
        while (m) {
            int i = __builtin_ctzll(m);
            out[i] = values[k++];
            m &= m - 1;
        }
    }
}
