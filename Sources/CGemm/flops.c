// The GEMM FLOP counter declared in CGemm.h: one process-wide 64-bit atomic, relaxed ordering
// (only the total matters; readers take a difference around a region they run themselves).
#include "CGemm.h"
#include <stdatomic.h>

static _Atomic long long flop_count = 0;

void pr_flops_add(long long flops) { atomic_fetch_add_explicit(&flop_count, flops, memory_order_relaxed); }

long long pr_flops_read(void) { return atomic_load_explicit(&flop_count, memory_order_relaxed); }
