#!/usr/bin/env python3
"""Reference ids from Hugging Face `tokenizers` (0.23.3) for texts a tokenizer review found
PromptRepro getting wrong (2026-12-06), encoded in this order by one tokenizer each, so that a
cache keyed by canonically equivalent strings shows: whitespace followed by combining marks or
modifiers (Swift joins them into one Character), repeated characters whose segmentation ties
are decided by the last digits of the piece scores, and canonically equivalent texts in a row.

Writes Tests/ModelTests/Resources/tokenizer-edge-goldens.json.
Usage: python scripts/make_tokenizer_edge_goldens.py ../shared Tests/ModelTests/Resources/tokenizer-edge-goldens.json
"""
import json, sys
import tokenizers
from tokenizers import Tokenizer

shared, out = sys.argv[1], sys.argv[2]
TEXTS = [
    # a whitespace scalar followed by marks Swift attaches to it
    "a \u0301", "ok \U0001F3FD", "x \u064eb", "a\t\u0301", "one\n\u0301two", "b\u200b\u0301 c", "q \u200d r",
    "w \ufe0f v", "tag \U000E0041 x", "  \u0301\u0301  lead",
    # segmentation ties (Unigram scores)
    "lll", "ahhhh", ".......", "-------", "ggggg", "ahhhh ... revenge is sweet ! ",
    # canonically equivalent texts one after the other (word caches)
    "a\u2000b", "a\u2002b", "\uac00", "\u1100\u1161", "x;y", "\u03c4\u03b9\u037e",
    "a\u0301\u0323 a\u0323\u0301", "\u00e1 a\x0b\u0301", "caf\u00e9 cafe\u0301", "cafe\u0301 caf\u00e9",
]
items = {}
for name, rel in [("t5", "models/t5-tokenizer/tokenizer.json"), ("gpt2", "models/gpt2-tokenizer/tokenizer.json")]:
    tok = Tokenizer.from_file(f"{shared}/{rel}")
    items[name] = [tok.encode(t).ids for t in TEXTS]
json.dump({"generated_with": "tokenizers " + tokenizers.__version__ + " (scripts/make_tokenizer_edge_goldens.py)",
           "t5": "shared/models/t5-tokenizer/tokenizer.json", "gpt2": "shared/models/gpt2-tokenizer/tokenizer.json",
           "texts": TEXTS, "ids": items}, open(out, "w", encoding="utf-8"), ensure_ascii=True, indent=0)
print(len(TEXTS), "texts")
