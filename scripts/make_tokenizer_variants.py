#!/usr/bin/env python3
"""Reference ids from Hugging Face `tokenizers` (0.23.3) for variants of the T5 tokenizer.json:
each variant replaces top-level keys of shared/models/t5-tokenizer/tokenizer.json (pre_tokenizer,
normalizer, decoder: Metaspace prepend_scheme always / first / never with split false, a Replace
normalizer) and encodes its texts. TokenizerTests.testTokenizerJSONVariants builds the same
variants in Swift and compares the ids.

The variants and texts are read from the resource itself (its "variants" object without "ids"),
so this script only (re)computes the ids: "$base_normalizer" in a normalizer list stands for the
base file's normalizer.

Usage: python scripts/make_tokenizer_variants.py ../shared Tests/ModelTests/Resources/tokenizer-variants.json
(rewrites the file in place; run in a venv with tokenizers==0.23.3).
"""
import json, sys
import tokenizers
from tokenizers import Tokenizer

shared, path = sys.argv[1], sys.argv[2]
with open(path, encoding="utf-8") as fh:
    spec = json.load(fh)
with open(f"{shared}/models/t5-tokenizer/tokenizer.json", encoding="utf-8") as fh:
    base = json.load(fh)
for name, v in spec["variants"].items():
    obj = dict(base)
    for key, change in v["changes"].items():
        if isinstance(change, dict) and isinstance(change.get("normalizers"), list):
            change = dict(change, normalizers=[base["normalizer"] if n == "$base_normalizer" else n for n in change["normalizers"]])
        obj[key] = change
    tok = Tokenizer.from_str(json.dumps(obj))
    v["ids"] = [tok.encode(t).ids for t in v["texts"]]
spec["generated_with"] = "tokenizers " + tokenizers.__version__ + " (scripts/make_tokenizer_variants.py)"
spec["base"] = "shared/models/t5-tokenizer/tokenizer.json"
with open(path, "w", encoding="utf-8") as fh:
    json.dump(spec, fh, ensure_ascii=False, indent=1)
    fh.write("\n")
