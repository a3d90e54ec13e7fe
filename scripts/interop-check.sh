#!/usr/bin/env bash
# make interop-check: PromptRepro → PEFT round trip. Trains PT, DPT, LoPT-2 and LoRA briefly on the
# embedded T5 and GPT-2 smoke backbones, writes each as a PEFT adapter (train --save-adapter),
# computes PromptRepro's logits with `forward --adapter`, and has PEFT itself load the same adapter
# into the same model (scripts/peft_interop.py check) and compare logits (abs 1e-4 + rel 1e-4).
# Needs the pinned venv (make reference-venv); not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.build/release/promptrepro}
PY=${PY:-.venv-ref/bin/python}
DATA=${DATA:-${PROMPTREPRO_SHARED:-../shared}/data}
OUT=${OUT:-runs/interop}
rm -rf "$OUT"; mkdir -p "$OUT"
"$BIN" export-embedded --out "$OUT/models" >/dev/null
fail=0
for arch in t5 gpt2; do
  if [ $arch = t5 ]; then model=embedded:t5-tiny; dir=$OUT/models/t5-tiny; task=cb; case=Tests/ModelTests/Resources/peft/t5-prompt-1/case.json
  else model=embedded:gpt2-tiny; dir=$OUT/models/gpt2-tiny; task=sst2; case=Tests/ModelTests/Resources/peft/gpt2-prompt/case.json; fi
  for method in pt dpt lopt2 lora; do
    name=$arch-$method
    extra=(); [ $method = lora ] && extra=(--lora-targets "$( [ $arch = t5 ] && echo q,v || echo c_attn,c_proj )")
    "$BIN" train --method $method --task $task --model $model --k 8 --epochs 2 --n 5 --r 2 --eval-limit 8 --decode-max-tokens 2 \
      --data-dir "$DATA" "${extra[@]}" --save-adapter "$OUT/$name/adapter" >/dev/null 2>"$OUT/$name.log"
    "$BIN" forward --model "$dir" --adapter "$OUT/$name/adapter" --case "$case" --out "$OUT/$name/ours.json"
    if "$PY" scripts/peft_interop.py check --model "$dir" --adapter "$OUT/$name/adapter" --case "$case" --logits "$OUT/$name/ours.json"; then
      echo "interop $name: PEFT and PromptRepro agree"
    else
      echo "interop $name: MISMATCH"; fail=1
    fi
  done
done
exit $fail
