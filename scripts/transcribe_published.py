#!/usr/bin/env python3
"""Transcribes the result tables of shared/papers/*.txt into Baselines/published/*.csv
(paper,table,model,method,column,value,unit,source). Run once; the CSVs are committed and a test
recomputes every printed average from its cells to catch transcription errors."""
import csv, re, sys
papers = sys.argv[1] if len(sys.argv) > 1 else "../shared/papers"
out = "Baselines/published"
dpt = open(f"{papers}/dpt-decomposed-prompt-tuning.txt", encoding="utf-8").read().split("\n")
lopt = open(f"{papers}/lopt-low-rank-prompt-tuning.txt", encoding="utf-8").read().split("\n")
METHOD = {"Fine-Tuning": "ft", "Fine-Tuning∗": "ft", "Prompt Tuning Lester et al. (2021)": "pt", "PT": "pt",
          "Residual PT Razdaibiedina et al. (2023)": "respt", "Residual PT": "respt", "Res PT": "respt", "Ours": "dpt"}
DPT_COLS = ["wsc", "wic", "boolq", "cb", "copa", "multirc", "record", "rte"]
UNIT = {"multirc": "F1a %", "record": "F1 %"}

def write(name, rows):
    with open(f"{out}/{name}.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["paper", "table", "model", "method", "column", "value", "unit", "source"])
        w.writerows(rows)

def dpt_table(start, end, table, with_params, value_unit):
    rows, model = [], None
    for line in dpt[start:end]:
        cells = [c.strip() for c in line.split("|")]
        if re.match(r"T5-(Small|Base|Large)", cells[0]) and all(c == "" for c in cells[1:]):
            model = cells[0]; continue
        if cells[0] not in METHOD or model is None:
            continue
        vals = [c for c in cells[1:] if c != ""]
        src = f"papers/dpt-decomposed-prompt-tuning.txt line {dpt.index(line) + 1}"
        m = METHOD[cells[0]]
        note = "*" if cells[0].endswith("∗") else ""
        if with_params:
            rows.append(["dpt", table, model, m, "params", vals[0], "printed", src])
            vals = vals[1:]
        for col, v in zip(DPT_COLS + ["avg"], vals):
            rows.append(["dpt", table, model, m, col, v, (value_unit if value_unit else UNIT.get(col, "acc %")) + note, src])
    return rows

def find(lines, prefix, after=0):
    return next(i for i, l in enumerate(lines) if i >= after and l.startswith(prefix))

t1 = find(dpt, "Model | # Trainable")
write("dpt-table1", dpt_table(t1, t1 + 20, "Table 1", True, None))
t3 = find(dpt, "Model | WSC | WiC | BoolQ")
write("dpt-table3", dpt_table(t3, t3 + 16, "Table 3", False, "std (points)"))
t4 = find(dpt, "Model | # Trainable", t1 + 5)
write("dpt-table4", dpt_table(t4, t4 + 10, "Table 4", True, None))

rows = []
i = find(lopt, "Method# Params SST-2 AGNews")
for line in lopt[i + 1:i + 4]:
    m = re.match(r"(No LoPT|LoPT-1 \(ours\)|LoPT-2 \(ours\))\s*([\d.]+k)\s+([\d.]+)\s+([\d.]+)", line)
    meth = {"No LoPT": "pt", "LoPT-1 (ours)": "lopt1", "LoPT-2 (ours)": "lopt2"}[m.group(1)]
    src = f"papers/lopt-low-rank-prompt-tuning.txt line {lopt.index(line) + 1}"
    rows += [["lopt", "Table 1", "gpt2-large", meth, "params", m.group(2), "printed", src],
             ["lopt", "Table 1", "gpt2-large", meth, "sst2", m.group(3), "acc %", src],
             ["lopt", "Table 1", "gpt2-large", meth, "agnews", m.group(4), "acc %", src]]
write("lopt-table1", rows)

rows = []
i = find(lopt, "Method# Params SST-2 BoolQ RTE WiC CB")
names = {"Fine-tuning 1": "ft", "LoRA 2": "lora", "PT 3": "pt", "DePT 3": "dept", "LoPT-1 (ours)": "lopt1", "LoPT-2 (ours)": "lopt2"}
for line in lopt[i + 1:i + 7]:
    m = re.match(r"(Fine-tuning 1|LoRA 2|PT 3|DePT 3|LoPT-1 \(ours\)|LoPT-2 \(ours\))\s*([\d.]+[kM])\s+([\d. ]+)$", line)
    vals = m.group(3).split()
    src = f"papers/lopt-low-rank-prompt-tuning.txt line {lopt.index(line) + 1}"
    cited = {"Fine-tuning 1": " (cited: Asai et al. 2022)", "LoRA 2": " (cited: Sung et al. 2022)", "PT 3": " (cited: Shi & Lipani 2023)", "DePT 3": " (cited: Shi & Lipani 2023)"}.get(m.group(1), "")
    rows.append(["lopt", "Table 2", "t5-base", names[m.group(1)], "params", m.group(2), "printed", src + cited])
    for col, v in zip(["sst2", "boolq", "rte", "wic", "cb"], vals):
        rows.append(["lopt", "Table 2", "t5-base", names[m.group(1)], col, v, "acc %", src + cited])
write("lopt-table2", rows)

rows = []
i = find(lopt, "Length Rank")
n = None
for line in lopt[i + 1:i + 11]:
    src = f"papers/lopt-low-rank-prompt-tuning.txt line {lopt.index(line) + 1}"
    mn = re.match(r"n=(\d+)", line)
    if mn: n = mn.group(1)
    if "No LoPT" in line:
        rows.append(["lopt", "Table 3", "gpt2-large", "pt-n10", "sst2", re.search(r"([\d.]+)$", line).group(1), "acc %", src]); continue
    mr = re.search(r"r=(\d+)[^-]*(-[\d.]+%)([\d.]+)$", line)
    rows.append(["lopt", "Table 3", "gpt2-large", f"lopt1-n{n}-r{mr.group(1)}", "delta_params", mr.group(2), "printed", src])
    rows.append(["lopt", "Table 3", "gpt2-large", f"lopt1-n{n}-r{mr.group(1)}", "sst2", mr.group(3), "acc %", src])
write("lopt-table3", rows)
