// A small fork-join pool for Sources/Tensor/Parallel.swift: `threads − 1` worker threads that spin
// briefly (PAUSE) for the next job before parking on a condition variable. libdispatch's
// concurrentPerform parks its workers between calls and wakes them with a semaphore; on a 2-vCPU
// KVM guest that wake-up (an IPI, a VM exit) came late enough that calls of 20–400 µs per chunk
// ran mostly on the calling thread (2 chunks of ≈ 100 µs: 1.0× with concurrentPerform, 1.7× here).
//
// Chunks are claimed one at a time from a ticket that carries the job's generation, so a worker
// that is late for one job can never run a chunk of the next one with the old body. Which thread
// runs a chunk never matters: callers split work into chunks that depend only on the problem size
// and the thread count (results are bit-identical whoever runs them). A call made from inside a
// job, or while another thread's job is running, runs its chunks in order on the calling thread.
#include "CGemm.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define PR_PAUSE() _mm_pause()
#else
#define PR_PAUSE() ((void)0)
#endif

enum { MAX_WORKERS = 255 };
static pthread_mutex_t park_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t park_cv = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t run_mu = PTHREAD_MUTEX_INITIALIZER;   // one job at a time
static _Atomic uint64_t ticket;       // generation << 32 | chunks << 16 | next unclaimed chunk
static _Atomic uint32_t generation;   // what idle workers wait on
static _Atomic long finished;         // chunks of the current job done
static _Atomic int parked;
static _Atomic(pr_chunk_fn) job_fn;
static _Atomic(void *) job_ctx;
static int workers;
static _Thread_local int inside_job;
static const uint64_t spin_ns = 100000;   // how long an idle worker spins before parking

static inline uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

// Claims and runs chunks of job `gen` until none is left (or a newer job has started). The
// chunk count travels in the ticket, and a job's fn and ctx are rewritten only once all of its
// chunks are claimed, so a successful claim always pairs a chunk with its own job's fn and ctx.
static void run_chunks(uint32_t gen, pr_chunk_fn fn, void *ctx) {
    for (;;) {
        uint64_t t = atomic_load_explicit(&ticket, memory_order_acquire);
        long next = (long)(t & 0xffffu), chunks = (long)((t >> 16) & 0xffffu);
        if ((uint32_t)(t >> 32) != gen || next >= chunks) return;
        if (!atomic_compare_exchange_weak_explicit(&ticket, &t, t + 1, memory_order_acq_rel, memory_order_relaxed)) continue;
        fn(ctx, next);
        atomic_fetch_add_explicit(&finished, 1, memory_order_release);
    }
}

static void *worker_main(void *arg) {
    (void)arg;
    inside_job = 1;
    uint32_t seen = atomic_load_explicit(&generation, memory_order_acquire);
    for (;;) {
        uint32_t g = atomic_load_explicit(&generation, memory_order_acquire);
        if (g == seen) {
            uint64_t start = now_ns();
            for (unsigned n = 1; (g = atomic_load_explicit(&generation, memory_order_acquire)) == seen; n++) {
                PR_PAUSE();
                if (n % 64 == 0 && now_ns() - start > spin_ns) break;
            }
            if (g == seen) {
                pthread_mutex_lock(&park_mu);
                atomic_fetch_add(&parked, 1);
                while ((g = atomic_load(&generation)) == seen) pthread_cond_wait(&park_cv, &park_mu);
                atomic_fetch_sub(&parked, 1);
                pthread_mutex_unlock(&park_mu);
            }
        }
        seen = g;
        // The job's fn and ctx were written before `generation` (release); ones already of a newer
        // job are harmless: run_chunks claims only chunks of generation g.
        run_chunks(g, atomic_load_explicit(&job_fn, memory_order_acquire), atomic_load_explicit(&job_ctx, memory_order_acquire));
    }
    return 0;
}

void pr_pool_run(long chunks, long threads, pr_chunk_fn fn, void *ctx) {
    if (chunks <= 0) return;
    if (threads <= 1 || chunks == 1 || chunks > PR_POOL_MAX_CHUNKS || inside_job || pthread_mutex_trylock(&run_mu) != 0) {
        for (long c = 0; c < chunks; c++) fn(ctx, c);
        return;
    }
    while (workers < threads - 1 && workers < MAX_WORKERS) {
        pthread_t t;
        if (pthread_create(&t, 0, worker_main, 0) != 0) break;
        pthread_detach(t);
        workers++;
    }
    uint32_t g = atomic_load_explicit(&generation, memory_order_relaxed) + 1;
    atomic_store_explicit(&job_fn, fn, memory_order_relaxed);
    atomic_store_explicit(&job_ctx, ctx, memory_order_relaxed);
    atomic_store_explicit(&finished, 0, memory_order_relaxed);
    atomic_store_explicit(&ticket, (uint64_t)g << 32 | (uint64_t)chunks << 16, memory_order_release);
    // Sequentially consistent, like the parked-count load after it and the worker's increment and
    // re-check under park_mu: a worker either sees g before it waits or is counted here and woken.
    atomic_store(&generation, g);
    if (atomic_load(&parked) > 0) {
        pthread_mutex_lock(&park_mu);
        pthread_cond_broadcast(&park_cv);
        pthread_mutex_unlock(&park_mu);
    }
    inside_job = 1;
    run_chunks(g, fn, ctx);
    inside_job = 0;
    // Wait for the workers' chunks: spin, then yield the CPU (a worker may be waiting for one when
    // more threads than cores run, e.g. two trainings at once).
    uint64_t start = 0;
    for (unsigned n = 1; atomic_load_explicit(&finished, memory_order_acquire) < chunks; n++) {
        PR_PAUSE();
        if (n % 64 == 0) {
            if (start == 0) start = now_ns();
            else if (now_ns() - start > spin_ns) sched_yield();
        }
    }
    pthread_mutex_unlock(&run_mu);
}
