"""Markdown table of `promptrepro bench-gemm` JSON files: per shape, each kernel's median GFLOP per
CPU second (wall-clock median in parentheses) and AVX2 over OpenBLAS. Usage:
python3 scripts/gemm_table.py Reports/gemm/*.json"""
import json
import sys

KERNELS = ("avx512", "avx2", "openblas")
for path in sys.argv[1:]:
    d = json.load(open(path))
    m = d["machine"]
    print(f"\n{path}: {m['cpu']} (family {m['cpu_family']} model {m['cpu_model']}), {d['threads']} thread(s), "
          f"{d['rounds']} interleaved rounds, OpenBLAS core {m['openblas_core']}; blockings "
          + ", ".join(f"{k} {v}" for k, v in sorted(m["blockings"].items())) + f"; caches {m['caches']}\n")
    ks = [k for k in KERNELS if any(k in r for r in d["sgemm"].values())]
    print("| shape (m×n×k) | " + " | ".join(k if k != "openblas" else f"openblas {m['openblas_core']}" for k in ks) + " | avx2 / openblas |")
    print("|---" * (len(ks) + 2) + "|")
    for shape, r in sorted(d["sgemm"].items(), key=lambda kv: -kv[1]["m"] * kv[1]["n"] * kv[1]["k"]):
        cells = [f"{r[k]['gflops_per_cpu_s_median']:.0f} ({r[k]['gflops_median']:.0f})" if k in r else "–" for k in ks]
        ratio = (f"{r['avx2']['gflops_per_cpu_s_median'] / r['openblas']['gflops_per_cpu_s_median']:.2f}"
                 if "avx2" in r and "openblas" in r else "–")
        print(f"| {shape} | " + " | ".join(cells) + f" | {ratio} |")
