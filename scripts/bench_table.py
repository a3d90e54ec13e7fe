#!/usr/bin/env python3
"""Markdown rows of the performance table (docs/performance.md, README) from a `make bench` report.

Usage: scripts/bench_table.py [Reports/bench.json]

Speed-up is the report's own `ratio`: the median over rounds of PyTorch ÷ ours taken round by round
(interleaved runs), with the rounds' min–max beside it; reports written before interleaving have no
`ratio`, and then the ratio of the two medians is shown. `bound` uses our measured SGEMM rate,
`bound_best` the best GEMM rate measured on the host (bench.json's definitions); `goal` is the
speed-up verdict and the goal it was judged against (issue #21), and `bound_best` the one it was
judged with, both as `promptrepro bench --evaluate FILE` re-judges them now from the report's raw
series (a report's stored `goals` and `ratio_bound_best` are those of the code that wrote it, and
can disagree: the per-round GEMM probes raised some hosts' best rate); without the binary
(PROMPTREPRO_BIN, else .build/release/promptrepro) the stored ones are shown, marked "(stored)".
GFLOP/s is the workload's GFLOP over our median seconds.
"""
import json
import os
import subprocess
import sys

path = sys.argv[1] if len(sys.argv) > 1 else "Reports/bench.json"
d = json.load(open(path))
binary = os.environ.get("PROMPTREPRO_BIN", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".build", "release", "promptrepro"))
try:
    judged = json.loads(subprocess.run([binary, "bench", "--evaluate", path], capture_output=True, text=True, check=True).stdout)
except (OSError, subprocess.CalledProcessError, json.JSONDecodeError):
    judged = None
names = {"train_step": "PT train step", "eval_forward": "eval forward", "generate": "generate 3 tokens", "ft_step": "FT step",
         "ft_step_checkpointed": "FT step, checkpointed (opt-in)", "ft_step_uncheckpointed": "FT step, not checkpointed (opt-out)",
         "eval_forward_bf16": "eval forward, bf16 products (opt-in)"}
# PyTorch runs one FT step (no checkpointing). Reports since the FT step's self-attention is
# checkpointed by default have the uncheckpointed row; older ones the opt-in checkpointed row.
# The opt-in bf16 evaluation (hosts with AVX512-BF16) is compared with PyTorch's fp32 eval forward.
reference = {"ft_step_checkpointed": "ft_step", "ft_step_uncheckpointed": "ft_step", "eval_forward_bf16": "eval_forward"}
bound, bound_best = d.get("ratio_bound", {}), d.get("ratio_bound_best", {})
ratio, ratio_range, goals = d.get("ratio", {}), d.get("ratio_range", {}), d.get("goals", {})


def times(side):
    s = side.get("seconds")
    if isinstance(s, dict):
        return f"{s['median']:.2f} ({s['min']:.2f}–{s['max']:.2f})"
    return f"{side['seconds_median']:.2f}"


def gflops(side):
    # GFLOP over the median seconds (reports before 2026-12-02 stored the last round's rate).
    return side["gflop"] / side["seconds_median"] if side.get("gflop") else side["gflops_per_s"]


def cell(table, shape, key):
    v = table.get(shape, {}).get(key)
    return f"{v:.2f}×" if v else "–"


print("| shape | workload | PromptRepro s | PyTorch s | speed-up (rounds) | bound | bound_best | goal | GFLOP/s (ours) | peak RSS ours / PyTorch |")
print("|---|---|---|---|---|---|---|---|---|---|")
for shape in sorted(d["promptrepro"], key=lambda s: (s != "t5-small", s)):
    for key, label in names.items():
        if key not in d["promptrepro"][shape]:
            continue
        o, p = d["promptrepro"][shape][key], d["pytorch"][shape][reference.get(key, key)]
        r = ratio.get(shape, {}).get(key)
        if r is None:
            speed = f"{p['seconds_median'] / o['seconds_median']:.2f}×"
        else:
            lo_hi = ratio_range.get(shape, {}).get(key)
            speed = f"{r:.2f}×" + (f" ({lo_hi[0]:.2f}–{lo_hi[1]:.2f})" if lo_hi else "")
        g = (judged if judged is not None else goals).get(shape, {}).get(key, {}).get("speedup")
        mark = "" if judged is not None else " (stored)"
        verdict = f"{'met' if g['met'] else 'not met'} (≥ {g['goal']:.2f}){mark}" if g else "–"
        best = f"{g['bound_best']:.2f}×" if judged is not None and g and g.get("bound_best") else cell(bound_best, shape, key) + mark
        print(f"| {shape} | {label} | {times(o)} | {times(p)} | {speed} | {cell(bound, shape, key)} | "
              f"{best} | {verdict} | {gflops(o):.0f} | "
              f"{o['peak_rss_mb']:.0f} / {p['peak_rss_mb']:.0f} MB ({o['peak_rss_mb'] / p['peak_rss_mb']:.3f}) |")
m = d["machine"]
first = next(k for k in d["pytorch"] if k != "gemm")
host = m["cpu"] + (f", family {m['cpu_family']} model {m['cpu_model']}" if "cpu_family" in m else "")
print(f"\nmachine: {host}, {m['cores']} cores ({m['simd']}), {m['threads']} threads, GEMM kernel {m.get('gemm_kernel', 'openblas')} ({m.get('gemm_blocking', 'blocking not recorded')}){', bf16 kernel ' + m['bf16_kernel'] if m.get('bf16_kernel', 'none') != 'none' else ''}, OpenBLAS {m['openblas_core']}, "
      f"Swift ISA {m.get('swift_isa', '?')}; torch {d['pytorch'][first]['train_step'].get('torch', '?')}, transformers "
      f"{d['pytorch'][first]['train_step'].get('transformers', '?')}")
core = d["core"]["sgemm"]
torch_gemm = d["pytorch"].get("gemm", {})


def torch_rate(k, v):
    return v.get("torch_gflops", torch_gemm.get(k, {}).get("gflops", float("nan")))


print("sgemm GFLOP/s (ours / raw OpenBLAS / torch): " + "; ".join(
    f"{k} {v['core_gflops']:.0f} / {v['openblas_gflops']:.0f} / {torch_rate(k, v):.0f}"
    + (f" (ours ÷ best {v['core_over_best']:.2f}, rounds {v['core_over_best_range'][0]:.2f}–{v['core_over_best_range'][1]:.2f})" if "core_over_best" in v else "")
    for k, v in sorted(core.items())))
heads = d["core"].get("attention", {})  # reports since 2026-12-05: the per-head attention products
if heads:
    print(f"per-head attention GFLOP/s ({next(iter(heads.values()))['units']} units; ours / OpenBLAS / torch): " + "; ".join(
        f"{k} {v['core_gflops']:.0f} / {v['openblas_gflops']:.0f} / {v.get('torch_gflops', float('nan')):.0f}"
        f" (ours ÷ best {v['core_over_best']:.2f}, rounds {v['core_over_best_range'][0]:.2f}–{v['core_over_best_range'][1]:.2f})"
        for k, v in sorted(heads.items())))
if "met" in goals:
    print(f"goals (issue #21) as the report states them: {goals['met']} met, {goals['not_met']} not met "
          f"(`promptrepro bench --evaluate FILE` re-judges them); unstable series (spread > 10 %): {len(d.get('unstable', []))}")
steal = d.get("steal", {})
if "max" in steal:  # reports since 2026-12-03: the hypervisor's share of the CPU time per timed run
    print(f"steal (share of the machine's CPU time given to other guests, per timed run): median {steal['median']:.3f}, "
          f"max {steal['max']:.3f}; {steal['children_at_least_5_percent']} of {steal['children']} runs ≥ 5 %")
