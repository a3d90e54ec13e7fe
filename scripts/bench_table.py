#!/usr/bin/env python3
"""Markdown rows of the README performance table from Reports/bench.json (written by `make bench`)."""
import json, sys
d = json.load(open(sys.argv[1] if len(sys.argv) > 1 else "Reports/bench.json"))
names = {"train_step": "PT train step", "eval_forward": "eval forward", "generate": "generate 3 tokens", "ft_step": "FT step"}
print("| shape | workload | PromptRepro s | PyTorch s | speed-up | GFLOP/s (ours) | peak RSS ours / PyTorch |")
print("|---|---|---|---|---|---|---|")
for shape in d["promptrepro"]:
    for key, label in names.items():
        o, p = d["promptrepro"][shape][key], d["pytorch"][shape][key]
        ratio = p["seconds_median"] / o["seconds_median"]
        print(f"| {shape} | {label} | {o['seconds_median']:.2f} | {p['seconds_median']:.2f} | {ratio:.2f}× | {o['gflops_per_s']:.0f} | "
              f"{o['peak_rss_mb']:.0f} / {p['peak_rss_mb']:.0f} MB ({o['peak_rss_mb'] / p['peak_rss_mb']:.2f}) |")
m = d["machine"]
print(f"\nmachine: {m['cpu']}, {m['cores']} cores ({m['simd']}), {m['threads']} threads, OpenBLAS {m['openblas_core']}; "
      f"torch {d['pytorch'][next(iter(d['pytorch']))]['train_step'].get('torch', '?')}, transformers "
      f"{d['pytorch'][next(iter(d['pytorch']))]['train_step'].get('transformers', '?')}")
