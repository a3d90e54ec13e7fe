#!/usr/bin/env python3
"""Word characters of the `regex` module (`\\w`, hence `\\b`), which DPT's released code imports as
`re` in metrics.py (XYaoooo/DPT @ 7611fc3: `import regex as re`) and so uses in the SQuAD
normalisation's `re.sub(r"\\b(a|an|the)\\b", " ", s)` for ReCoRD. Python's stdlib `re` (the official
SQuAD/ReCoRD scripts) counts other characters: combining marks and U+200D are words only for
`regex`; numbers that are neither decimal digits nor letters (², ½: No) only for `re` (Ⅻ, Nl, is
Alphabetic, a word for both).

Writes, as JSON, the inclusive ranges of code points that `regex` matches with `\\w` (surrogates
excluded), those it treats as assigned (`\\P{Cn}`: its Unicode tables' extent, so a reader with
newer tables compares only these), and, for comparison, those stdlib `re` matches, with the
versions that produced them.

Usage: python scripts/regex_word_ranges.py > Tests/TaskTests/Resources/regex-word-ranges.json
       (pinned: regex 2026.12.2, CPython 3.11; `pip install regex==2026.12.2`)
"""
import json, re as stdre, sys, unicodedata
import regex

def ranges(rx):
    out, start = [], None
    for c in range(0x110000):
        w = not (0xD800 <= c <= 0xDFFF) and rx.match(chr(c)) is not None
        if w and start is None:
            start = c
        if not w and start is not None:
            out.append([start, c - 1]); start = None
    if start is not None:
        out.append([start, 0x10FFFF])
    return out

json.dump({"generated_with": f"regex {regex.__version__}, CPython {sys.version.split()[0]} (unicodedata {unicodedata.unidata_version}); scripts/regex_word_ranges.py",
           "regex_word": ranges(regex.compile(r"\w")),
           "regex_assigned": ranges(regex.compile(r"\P{Cn}")),
           "re_word": ranges(stdre.compile(r"\w"))}, sys.stdout, separators=(",", ":"))
sys.stdout.write("\n")
