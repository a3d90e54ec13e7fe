#!/usr/bin/env python3
"""PromptRepro's own SGEMM against PyTorch's `linear`, alternated repetition by repetition in one process.

`promptrepro bench-gemm` and `make bench` alternate the two sides round by round in separate
processes; on a shared host whose speed drifts within seconds that still lets a drift land on one
side. This harness compiles Sources/CGemm into a shared library, loads it next to torch, and per
repetition times ours (for every blocking asked for) and then torch on the same operands, so each
ratio compares products run a few milliseconds apart.

Ours runs the product the way `BLAS.sgemm` does it on the own kernels: with 2+ threads the threads
pack disjoint column panels of op(B) into one shared buffer, meet at a barrier, then each runs its
rows against it (`BLAS.sgemmSharedB`); with 1 thread `pr_sgemm_*` packs on the fly. C = A·Wᵀ as
torch's linear(A, W), A [m, k], W [n, k]; a check against torch's result runs before timing.

Usage (with the venv `make bench-reference` makes):
    .venv-bench/bin/python scripts/gemm_interleaved.py --threads 2 --rounds 15 --blocking 4092,672 --blocking 4092,320
Prints the host (cpu family / model / flags) and, per shape, torch's median GFLOP/s and for each
blocking ours and the median and min–max of ours ÷ torch over the rounds. `--json F` writes the
same. Needs clang (the Swift toolchain has it) and torch.
"""
import argparse, ctypes, json, os, pathlib, statistics, subprocess, sys, tempfile, time

ROOT = pathlib.Path(__file__).resolve().parent.parent

WRAPPER = r"""
#include <pthread.h>
#include <stdlib.h>
#include "CGemm.h"
typedef struct { int kern, threads, t; long m, n, k, mc, nc; const float *a, *b; float *c, *bp; pthread_barrier_t *bar; } job;
static void *part(void *p) {
    job *j = p; long nr = j->kern == 512 ? PR_AVX512_NR : PR_AVX2_NR, kc = j->kern == 512 ? 384 : 256;
    long panels = (j->n + nr - 1) / nr, j0 = j->t * panels / j->threads * nr, j1 = (j->t + 1) * panels / j->threads * nr;
    if (j1 > j->n) j1 = j->n;
    if (j->kern == 512) pr_sgemm_avx512_pack_b_cols(1, j->n, j->k, j->b, j->k, kc, j0, j1, j->bp);
    else pr_sgemm_avx2_pack_b_cols(1, j->n, j->k, j->b, j->k, kc, j0, j1, j->bp);
    pthread_barrier_wait(j->bar);
    long m0 = j->t * j->m / j->threads, m1 = (j->t + 1) * j->m / j->threads;
    if (j->kern == 512) pr_sgemm_avx512_packed(0, m1 - m0, j->n, j->k, 1, j->a + m0 * j->k, j->k, j->bp, 0, j->c + m0 * j->n, j->n, j->mc, kc, j->nc);
    else pr_sgemm_avx2_packed(0, m1 - m0, j->n, j->k, 1, j->a + m0 * j->k, j->k, j->bp, 0, j->c + m0 * j->n, j->n, j->mc, kc, j->nc);
    return 0;
}
void ours(int kern, int threads, long m, long n, long k, const float *a, const float *b, float *c, long mc, long nc) {
    long kc = kern == 512 ? 384 : 256;
    if (threads <= 1) {
        if (kern == 512) pr_sgemm_avx512(0, 1, m, n, k, 1, a, k, b, k, 0, c, n, mc, kc, nc);
        else pr_sgemm_avx2(0, 1, m, n, k, 1, a, k, b, k, 0, c, n, mc, kc, nc);
        return;
    }
    static float *bp; static long have;
    long need = kern == 512 ? pr_sgemm_avx512_packed_size(n, k) : pr_sgemm_avx2_packed_size(n, k);
    if (need > have) { free(bp); bp = aligned_alloc(64, (need * 4 + 63) / 64 * 64); have = need; }
    pthread_barrier_t bar; pthread_barrier_init(&bar, 0, threads);
    job js[64]; pthread_t th[64];
    for (int t = 0; t < threads; t++) {
        js[t] = (job){kern, threads, t, m, n, k, mc, nc, a, b, c, bp, &bar};
        if (t) pthread_create(&th[t], 0, part, &js[t]);
    }
    part(&js[0]);
    for (int t = 1; t < threads; t++) pthread_join(th[t], 0);
    pthread_barrier_destroy(&bar);
}
"""


def host():
    info = {}
    for line in open("/proc/cpuinfo"):
        if ":" in line:
            key, value = (s.strip() for s in line.split(":", 1))
            if key in ("vendor_id", "cpu family", "model", "model name", "stepping") and key not in info:
                info[key] = value
            if key == "flags" and "flags" not in info:
                info["flags"] = " ".join(f for f in value.split() if f.startswith(("avx", "fma", "amx")))
    return info


def build(tmp):
    src = ROOT / "Sources" / "CGemm"
    wrapper = pathlib.Path(tmp) / "wrapper.c"
    wrapper.write_text(WRAPPER)
    lib = pathlib.Path(tmp) / "libours.so"
    sources = [str(p) for p in sorted(src.glob("*.c"))] + [str(wrapper)]
    subprocess.run(["clang", "-O3", "-fPIC", "-shared", "-pthread", "-I", str(src / "include"), "-I", str(src), *sources, "-o", str(lib)],
                   check=True)
    return ctypes.CDLL(str(lib))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--kernel", choices=["avx512", "avx2"], default="avx512")
    ap.add_argument("--blocking", action="append", help="mc,nc of ours (repeatable); default the derived rule's on this host is not known here, so give it")
    ap.add_argument("--shape", action="append", help="m,n,k (repeatable); default the bench's 2048³, 2848×512×2048, 2848×2048×512")
    ap.add_argument("--json", help="write the results here too")
    args = ap.parse_args()
    if not 1 <= args.threads <= 64:
        sys.exit("--threads must be between 1 and 64")
    import torch
    torch.set_num_threads(args.threads)
    blockings = [tuple(int(x) for x in b.split(",")) for b in (args.blocking or ["4092,320"])]
    shapes = [tuple(int(x) for x in s.split(",")) for s in (args.shape or ["2048,2048,2048", "2848,512,2048", "2848,2048,512"])]
    kern = 512 if args.kernel == "avx512" else 2
    with tempfile.TemporaryDirectory() as tmp:
        lib = build(tmp)
        L, P = ctypes.c_long, ctypes.c_void_p
        result = {"host": host(), "threads": args.threads, "kernel": args.kernel, "rounds": args.rounds,
                  "torch": torch.__version__, "shapes": []}
        print(json.dumps(result["host"]), f"threads {args.threads} kernel {args.kernel} torch {torch.__version__}")
        for (m, n, k) in shapes:
            a, w, c = torch.randn(m, k), torch.randn(n, k), torch.empty(m, n)

            def run(mc, nc):
                lib.ours(kern, args.threads, L(m), L(n), L(k), P(a.data_ptr()), P(w.data_ptr()), P(c.data_ptr()), L(mc), L(nc))

            ref = torch.nn.functional.linear(a, w)
            for b in blockings:
                run(*b)
                if not torch.allclose(c, ref, rtol=1e-3, atol=1e-3 * k ** 0.5):
                    sys.exit(f"ours with mc,nc {b} disagrees with torch at {m}x{n}x{k}")
            flop = 2.0 * m * n * k
            ours = {b: [] for b in blockings}
            theirs = []
            for _ in range(args.rounds):
                for b in blockings:
                    t = time.perf_counter(); run(*b); ours[b].append(flop / (time.perf_counter() - t) / 1e9)
                t = time.perf_counter(); torch.nn.functional.linear(a, w); theirs.append(flop / (time.perf_counter() - t) / 1e9)
            row = {"shape": [m, n, k], "torch_gflops_median": statistics.median(theirs), "ours": []}
            parts = [f"{m}x{n}x{k}: torch {statistics.median(theirs):.0f}"]
            for b in blockings:
                ratios = [x / y for x, y in zip(ours[b], theirs)]
                row["ours"].append({"mc": b[0], "nc": b[1], "gflops_median": statistics.median(ours[b]),
                                    "ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios)})
                parts.append(f"mc {b[0]} nc {b[1]}: {statistics.median(ours[b]):.0f} "
                             f"({statistics.median(ratios):.2f}x, {min(ratios):.2f}-{max(ratios):.2f})")
            print("; ".join(parts), flush=True)
            result["shapes"].append(row)
        if args.json:
            pathlib.Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
