// Exhaustive accuracy check of the attention softmax's exponential (Sources/CGemm/softmax_exp.c,
// the same bits as VectorMath.swift's exp8): every one of the 2^32 floats through
// pr_softmax_exp_avx2 (max = 0), against libm's double-precision exp. Prints the worst error in
// ulps of the float result (subnormal results measured in the subnormal spacing), the inputs whose
// result is NaN, infinite or zero where it should not be, and the share of correctly rounded results
// for x uniform in [−20, 0]. Needs an x86-64 CPU with AVX2 and FMA; about a minute. Build it with
// clang and contraction off, as SwiftPM builds the pass (gcc fuses a product and a sum across
// statements by default, which would check a different function):
//
//   clang -O2 -ffp-contract=off -I Sources/CGemm/include scripts/check_exp_accuracy.c \
//      Sources/CGemm/softmax_exp.c -lm -o /tmp/check_exp && /tmp/check_exp
#include "CGemm.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// The spacing of floats in the binade |v| lies in: that of v rounded to float, halved when the
// rounding went up to a power of two (the largest finite float's past it).
static double ulp_of(double v) {
    double av = fabs(v);
    float a = (float)av;
    if (isinf(a)) a = 0x1.fffffep127f;
    float up = nextafterf(a, INFINITY), down = nextafterf(a, 0);
    if ((double)a > av && (double)a - down < (double)up - a) return (double)a - down;
    return isinf(up) ? (double)a - down : (double)up - a;
}

int main(void) {
    enum { N = 1 << 16 };
    static float x[N], y[N];
    float lanes[8];
    double worst = 0; float worst_x = 0; long faults = 0;
    for (unsigned long base = 0; base <= 0xFFFFFFFFul; base += N) {
        for (long i = 0; i < N; i++) { unsigned u = (unsigned)(base + i); memcpy(&x[i], &u, 4); }
        memcpy(y, x, sizeof y);
        memset(lanes, 0, sizeof lanes);
        pr_softmax_exp_avx2(y, N, 0, lanes);
        for (long i = 0; i < N; i++) {
            if (isnan(x[i])) { if (!isnan(y[i])) faults++; continue; }
            double exact = exp((double)x[i]);
            float want = (float)exact;
            if (isinf(want) || want == 0) {  // past the range: the neighbouring rounding at most
                if (y[i] != want && fabs((double)y[i] - exact) > 0x1p-149) faults++;
                continue;
            }
            if (!isfinite(y[i])) { faults++; continue; }
            double e = fabs((double)y[i] - exact) / ulp_of(exact);
            if (e > worst) { worst = e; worst_x = x[i]; }
        }
    }
    long rounded = 0, total = 0;
    srand(1);
    for (long b = 0; b < 64; b++) {
        for (long i = 0; i < N; i++) x[i] = -20.0f * (float)(rand() / 2147483648.0);
        memcpy(y, x, sizeof y);
        pr_softmax_exp_avx2(y, N, 0, lanes);
        for (long i = 0; i < N; i++) { total++; if (y[i] == (float)exp((double)x[i])) rounded++; }
    }
    printf("all 2^32 floats: worst %.4f ulp at x = %a (%g); %ld faults (NaN, infinity or zero where exp is not)\n",
           worst, worst_x, worst_x, faults);
    printf("x uniform in [-20, 0]: %.2f %% of %ld results correctly rounded\n", 100.0 * rounded / total, total);
    return worst <= 1 && faults == 0 ? 0 : 1;
}
