#!/usr/bin/env python3
"""Reference WSC inputs of DePT's code (ZhengxiangShi/DePT, src/tasks.py, SuperGLUEWSCFixed:
T5's `_mark_span` with the `regex` module, as that file imports it): `* noun *` around span1 at
word span1_index, then `# pronoun #` around span2 at span2_index + 2 when span1 comes first,
source "text: <marked>". Prints, for each WSC file under ../shared/data, its row count and the
sha256 of its sources joined by "\n", and the sources of the rows named in ROWS, as JSON.

Usage: python scripts/dept_wsc_marks.py ../shared/data   (needs `regex`; 2024.x or later)
"""
import hashlib, json, sys
import regex as re

def mark_span(text, span_str, span_idx, mark):
    pattern_tmpl = r'^((?:\S+\s){N})(W)'
    pattern = re.sub('N', str(span_idx), pattern_tmpl)
    pattern = re.sub('W', span_str, pattern)
    return re.sub(pattern, r'\1{0} \2 {0}'.format(mark), text)

def source(ex):
    t = ex["target"] if "target" in ex else ex
    text = mark_span(ex["text"], t["span1_text"], t["span1_index"], "*")
    span2_index = t["span2_index"] + 2 * int(t["span1_index"] < t["span2_index"])
    return "text: " + mark_span(text, t["span2_text"], span2_index, "#")

FILES = ["superglue/wsc/train.jsonl", "superglue/wsc/val.jsonl", "fewglue/wsc/train32.jsonl"]
ROWS = {"superglue/wsc/val.jsonl": [0, 5], "superglue/wsc/train.jsonl": [137, 433]}
data = sys.argv[1]
out = {"generated_with": "regex " + re.__version__ + " (scripts/dept_wsc_marks.py)", "files": {}}
for rel in FILES:
    rows = [json.loads(l) for l in open(f"{data}/{rel}", encoding="utf-8")]
    sources = [source(r) for r in rows]
    out["files"][rel] = {"rows": len(rows), "sha256": hashlib.sha256("\n".join(sources).encode()).hexdigest(),
                         "examples": {str(r["idx"]): s for r, s in zip(rows, sources) if r["idx"] in ROWS.get(rel, [])}}
print(json.dumps(out, indent=1, ensure_ascii=False))
