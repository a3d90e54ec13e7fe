#!/usr/bin/env python3
"""Every stored benchmark report re-judged by the current rules, as a Markdown table.

Usage: scripts/bench_rejudge.py [Reports/hosts/*.json …]  (default: Reports/hosts/*.json)

For each report: its host (cpu family/model as recorded), the kind of run, and the goals met / not
met as `promptrepro bench --evaluate FILE` judges them now (PROMPTREPRO_BIN, else
.build/release/promptrepro). A report's own stored `goals` are those of the code that wrote it; a
verdict quoted in docs/performance.md's older rows is the same. e2e reports written before the
sides' epoch timers are judged on the lower of the wall and run ratios ("wall and run": each side's
own timer over its whole run), or on the wall ratio alone where they lack that too ("wall only").
"""
import glob
import json
import os
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
binary = os.environ.get("PROMPTREPRO_BIN", os.path.join(here, "..", ".build", "release", "promptrepro"))
files = sys.argv[1:] or sorted(glob.glob(os.path.join(here, "..", "Reports", "hosts", "*.json")))
print("| report | host (family / model) | run | met | not met | note |")
print("|---|---|---|---|---|---|")
for f in files:
    d = json.load(open(f))
    m = d.get("machine", {})
    host = f"{m.get('vendor', '') or m.get('cpu', '?')} {m.get('cpu_family', '?')} / {m.get('cpu_model', '?')}".strip()
    e2e = "sides" in d
    kind = "bench-e2e" if e2e else ("bench, " + ", ".join(sorted(k for k in d.get("promptrepro", {}) if k != "gemm")))
    r = subprocess.run([binary, "bench", "--evaluate", f], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"| {os.path.basename(f)} | {host} | {kind} | – | – | not judged: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else 'error'} |")
        continue
    g = json.loads(r.stdout)
    note = ""
    if e2e:
        bases = [v["basis"] for side in g.values() if isinstance(side, dict) for v in side.values() if isinstance(v, dict) and v.get("basis")]
        if any(b.startswith("wall ratio only") for b in bases):
            note = "wall only (no per-epoch or run series)"
        elif bases:
            note = "wall and run (no per-epoch series)"
    print(f"| {os.path.basename(f)} | {host} | {kind} | {g.get('met', 0)} | {g.get('not_met', 0)} | {note} |")
