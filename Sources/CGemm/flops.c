// The GEMM FLOP counter declared in CGemm.h. Each thread adds to a slot of its own, on a cache
// line of its own (a decoding step makes thousands of small products on both threads, and one
// shared atomic bounced its line between the cores at every call); a read sums the slots. Relaxed
// ordering: only totals matter, and readers take a difference around a region they run themselves.
// Threads past the last slot share one atomic slot.
#include "CGemm.h"
#include <stdatomic.h>

enum { SLOTS = 64 };
typedef struct { _Atomic long long value; char pad[64 - sizeof(long long)]; } slot_t;
static _Alignas(64) slot_t slots[SLOTS + 1];   // slots[SLOTS]: shared by threads without a slot of their own
static _Atomic unsigned slots_taken = 0;
static _Thread_local slot_t *mine = NULL;

void pr_flops_add(long long flops) {
    if (!mine) {
        unsigned i = atomic_fetch_add_explicit(&slots_taken, 1, memory_order_relaxed);
        mine = &slots[i < SLOTS ? i : SLOTS];
    }
    if (mine == &slots[SLOTS]) {
        atomic_fetch_add_explicit(&mine->value, flops, memory_order_relaxed);
    } else {  // this thread is the slot's only writer
        atomic_store_explicit(&mine->value, atomic_load_explicit(&mine->value, memory_order_relaxed) + flops,
                              memory_order_relaxed);
    }
}

long long pr_flops_read(void) {
    long long total = 0;
    for (int i = 0; i <= SLOTS; i++) total += atomic_load_explicit(&slots[i].value, memory_order_relaxed);
    return total;
}
