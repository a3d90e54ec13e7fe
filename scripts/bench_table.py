#!/usr/bin/env python3
"""Markdown rows of the README performance table from Reports/bench.json (written by `make bench`)."""
import json, sys
d = json.load(open(sys.argv[1] if len(sys.argv) > 1 else "Reports/bench.json"))
names = {"train_step": "PT train step", "eval_forward": "eval forward", "generate": "generate 3 tokens", "ft_step": "FT step",
         "ft_step_checkpointed": "FT step, checkpointed (opt-in)"}
reference = {"ft_step_checkpointed": "ft_step"}  # PyTorch runs one FT step (no checkpointing)
bound = d.get("ratio_bound", {})
print("| shape | workload | PromptRepro s | PyTorch s | speed-up | bound | GFLOP/s (ours) | peak RSS ours / PyTorch |")
print("|---|---|---|---|---|---|---|---|")
for shape in sorted(d["promptrepro"], key=lambda s: (s != "t5-small", s)):
    for key, label in names.items():
        if key not in d["promptrepro"][shape]:
            continue
        o, p = d["promptrepro"][shape][key], d["pytorch"][shape][reference.get(key, key)]
        ratio = p["seconds_median"] / o["seconds_median"]
        b = bound.get(shape, {}).get(key)
        print(f"| {shape} | {label} | {o['seconds_median']:.2f} | {p['seconds_median']:.2f} | {ratio:.2f}× | "
              f"{f'{b:.2f}×' if b else '–'} | {o['gflops_per_s']:.0f} | "
              f"{o['peak_rss_mb']:.0f} / {p['peak_rss_mb']:.0f} MB ({o['peak_rss_mb'] / p['peak_rss_mb']:.2f}) |")
m = d["machine"]
first = next(k for k in d["pytorch"] if k != "gemm")
print(f"\nmachine: {m['cpu']}, {m['cores']} cores ({m['simd']}), {m['threads']} threads, GEMM kernel {m.get('gemm_kernel', 'openblas')} ({m.get('gemm_blocking', 'blocking not recorded')}), OpenBLAS {m['openblas_core']}, "
      f"Swift ISA {m.get('swift_isa', '?')}; torch {d['pytorch'][first]['train_step'].get('torch', '?')}, transformers "
      f"{d['pytorch'][first]['train_step'].get('transformers', '?')}")
core = d["core"]["sgemm"]
torch_gemm = d["pytorch"].get("gemm", {})
print("sgemm GFLOP/s (ours / raw OpenBLAS / torch): " + "; ".join(
    f"{k} {v['core_gflops']:.0f} / {v['openblas_gflops']:.0f} / {torch_gemm.get(k, {}).get('gflops', float('nan')):.0f}"
    + (f" (ours ÷ best {v['core_over_best']:.2f}, rounds {v['core_over_best_range'][0]:.2f}–{v['core_over_best_range'][1]:.2f})" if "core_over_best" in v else "")
    for k, v in sorted(core.items())))
