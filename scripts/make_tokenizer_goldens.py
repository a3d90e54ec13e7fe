#!/usr/bin/env python3
"""Reference ids from Hugging Face `tokenizers` for real sentences of shared/data.

Writes Tests/ModelTests/Resources/tokenizer-goldens.json: for every selected text its location
(file, line, field), the sha256 of the text and the ids of the T5 and GPT-2 tokenizers in
shared/models. The texts themselves are not copied; the Swift test reads them from shared/data.
Usage: python scripts/make_tokenizer_goldens.py ../shared Tests/ModelTests/Resources/tokenizer-goldens.json
"""
import csv, hashlib, io, json, sys
from tokenizers import Tokenizer

shared, out = sys.argv[1], sys.argv[2]
t5 = Tokenizer.from_file(f"{shared}/models/t5-tokenizer/tokenizer.json")
gpt2 = Tokenizer.from_file(f"{shared}/models/gpt2-tokenizer/tokenizer.json")
FILES = {
    "data/superglue/boolq/val.jsonl": ["question", "passage"],
    "data/superglue/cb/val.jsonl": ["premise", "hypothesis"],
    "data/superglue/copa/val.jsonl": ["premise", "choice1", "choice2"],
    "data/superglue/rte/val.jsonl": ["premise", "hypothesis"],
    "data/superglue/wic/val.jsonl": ["sentence1", "sentence2", "word"],
    "data/superglue/wsc/val.jsonl": ["text"],
    "data/superglue/multirc/val.jsonl": ["passage.text"],
    "data/superglue/record/val.subset5.jsonl": ["passage.text"],
    "data/sst2/dev.tsv": ["sentence"],
    "data/agnews/test.csv": ["title", "description"],
}
items = []
for rel, fields in FILES.items():
    lines = open(f"{shared}/{rel}", encoding="utf-8").read().split("\n")
    lines = [l for l in lines if l]
    start = 1 if rel.endswith(".tsv") else 0
    picks = list(range(start, len(lines), max(1, (len(lines) - start) // 12)))[:12]
    for ln in picks:
        line = lines[ln]
        for field in fields:
            if rel.endswith(".jsonl"):
                obj = json.loads(line)
                text = obj["passage"]["text"] if field == "passage.text" else obj[field]
            elif rel.endswith(".tsv"):
                text = line.split("\t")[0]
            else:
                row = next(csv.reader(io.StringIO(line)))
                text = row[1] if field == "title" else row[2]
            items.append({"file": rel, "line": ln, "field": field,
                          "sha256": hashlib.sha256(text.encode()).hexdigest(),
                          "t5": t5.encode(text).ids, "gpt2": gpt2.encode(text).ids})
json.dump({"generated_with": "tokenizers " + __import__("tokenizers").__version__,
           "t5": "shared/models/t5-tokenizer/tokenizer.json", "gpt2": "shared/models/gpt2-tokenizer/tokenizer.json",
           "items": items}, open(out, "w"), separators=(",", ":"))
print(len(items), "items")
