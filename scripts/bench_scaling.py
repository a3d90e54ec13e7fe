#!/usr/bin/env python3
"""The README's scaling table: `promptrepro bench-one` over batch, length and model size.

Usage: python3 scripts/bench_scaling.py [path/to/promptrepro]   (build first: make build)
Each row runs in its own process (peak RSS is per row); medians of 3 after a warm-up.
"""
import json, subprocess, sys

binary = sys.argv[1] if len(sys.argv) > 1 else ".build/release/promptrepro"
rows = [  # (label, shape, workload, batch, text tokens)
    ("t5-small", "t5-small", "train", 1, 256),
    ("t5-small", "t5-small", "train", 8, 128),
    ("t5-small", "t5-small", "train", 8, 256),
    ("t5-small", "t5-small", "train", 8, 512),
    ("t5-small", "t5-small", "train", 32, 256),
    ("t5-base", "t5-base", "train", 8, 256),
    ("t5-small, eval forward", "t5-small", "eval", 32, 256),
    ("t5-base, eval forward", "t5-base", "eval", 32, 256),
]
print("| model | batch | text tokens (+100 prompt) | step s | GFLOP/s | attention share | peak RSS |")
print("|---|---|---|---|---|---|---|")
for label, shape, workload, batch, seq in rows:
    out = subprocess.run([binary, "bench-one", "--shape", shape, "--workload", workload, "--batch", str(batch),
                          "--seq-len", str(seq), "--repeats", "3"], capture_output=True, text=True, check=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    print(f"| {label} | {batch} | {seq} | {r['seconds_median']:.2f} | {r['gflops_per_s']:.0f} | "
          f"{100 * r['attention_share']:.0f}% | {r['peak_rss_mb']:.0f} MB |", flush=True)
