#!/usr/bin/env python3
"""DePT adapter fixture: Tests/ModelTests/Resources/peft/t5-dept/ (case.json, expected.json, adapter/).

What DePT's PEFT fork computes for a PROMPT_TUNING_LORA adapter on T5 (github.com/ZhengxiangShi/DePT at
ce8574a: peft/tuners/prompt_tuning_lora.py `PromptEmbeddingLoRA`; peft/peft_model.py
`PeftModelForSeq2SeqLM.forward` and `.generate`, their PROMPT_TUNING_LORA branches), written out with
transformers' T5ForConditionalGeneration, since the fork is not on PyPI:
  scaling = lora_alpha / sqrt(r)                                  (PromptEmbeddingLoRA.__init__)
  inputs_embeds = shared(input_ids) + scaling * (A @ B)           (A = lora_embedding_A [max_length, r],
                                                                   B = lora_embedding_B [r, d]; the fork adds
                                                                   the [max_length, d] product to every row, so
                                                                   its inputs are padded to exactly max_length)
  inputs_embeds = cat(P[:n], inputs_embeds); attention_mask = cat(ones(B, n), attention_mask)
  forward: base_model(inputs_embeds=..., attention_mask=..., labels=...) (decoder from shift_right(labels))
  generate: base_model.generate(inputs_embeds=..., attention_mask=...) (decoder from [0], no prompt)
The base model and inputs are the t5-prompt-1 fixture's (made by scripts/peft_interop.py); max_length is
set to its input length (16), as the fork requires. P, A and B are drawn here (B non-zero, so the update
shows). float32 and float64 must agree within half of FORMAT.md's tolerance and decode alike.

Pinned (refused otherwise): torch 2.15.0, transformers 5.24.0, safetensors 0.8.0; CPU, eager attention.
Usage: .venv-bench/bin/python scripts/make_dept_adapter_case.py [Tests/ModelTests/Resources/peft]
"""
import json, math, os, sys

import safetensors
import torch
import transformers
from safetensors.torch import save_file
from transformers import T5ForConditionalGeneration

PINNED = {"torch": "2.15.0", "transformers": "5.24.0", "safetensors": "0.8.0"}
N, R, ALPHA, SEED = 6, 3, 8, 5


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "Tests/ModelTests/Resources/peft"
    got = {"torch": torch.__version__.split("+")[0], "transformers": transformers.__version__, "safetensors": safetensors.__version__}
    if got != PINNED:
        raise SystemExit(f"versions {got} differ from the pinned {PINNED}")
    src = os.path.join(root, "t5-prompt-1")
    with open(os.path.join(src, "case.json")) as f:
        case = json.load(f)
    model = T5ForConditionalGeneration.from_pretrained(os.path.join(src, "model"), attn_implementation="eager").eval()
    d, s = model.config.d_model, len(case["input_ids"][0])
    g = torch.Generator().manual_seed(SEED)
    P = torch.randn(N, d, generator=g) * 0.5
    A = (torch.rand(s, R, generator=g) * 2 - 1) / math.sqrt(R)  # kaiming_uniform_(a=sqrt(5)) on [s, r]: U(-1/sqrt(r), 1/sqrt(r))
    B = torch.randn(R, d, generator=g) * 0.1

    def run(dtype):
        m = model.to(dtype)
        ids, am, lab = (torch.tensor(case[k]) for k in ("input_ids", "attention_mask", "labels"))
        b = ids.shape[0]
        with torch.no_grad():
            emb = m.shared(ids)
            emb = emb + (ALPHA / math.sqrt(R)) * (A.to(dtype) @ B.to(dtype)).repeat(b, 1, 1)
            emb = torch.cat([P.to(dtype).unsqueeze(0).expand(b, -1, -1), emb], 1)
            mask = torch.cat([torch.ones(b, N, dtype=am.dtype), am], 1)
            out = m(inputs_embeds=emb, attention_mask=mask, labels=lab)
            gen = m.generate(inputs_embeds=emb, attention_mask=mask, max_new_tokens=case["generate"]["max_new_tokens"],
                             do_sample=False, num_beams=1)
        return {"loss": out.loss.item(), "logits_shape": list(out.logits.shape),
                "logits": out.logits.flatten().double().tolist(), "generated_ids": gen.tolist()}

    r64, r32 = run(torch.float64), run(torch.float32)
    worst = max(abs(p - q) / (1e-4 + 1e-4 * abs(q)) for p, q in zip(r32["logits"] + [r32["loss"]], r64["logits"] + [r64["loss"]]))
    if worst > 0.5 or r32["generated_ids"] != r64["generated_ids"]:
        raise SystemExit(f"ill-conditioned (float32 vs float64: {worst:.2f} of the tolerance, decodes equal: "
                         f"{r32['generated_ids'] == r64['generated_ids']}): change SEED")
    out = os.path.join(root, "t5-dept")
    os.makedirs(os.path.join(out, "adapter"), exist_ok=True)
    save_file({"prompt_embeddings": P.contiguous(), "lora_embedding_A": A.contiguous(), "lora_embedding_B": B.contiguous()},
              os.path.join(out, "adapter", "adapter_model.safetensors"))
    acfg = {"peft_type": "PROMPT_TUNING_LORA", "task_type": "SEQ_2_SEQ_LM", "num_virtual_tokens": N, "token_dim": d,
            "num_transformer_submodules": 1, "r": R, "lora_alpha": ALPHA, "max_length": s,
            "prompt_tuning_init": "RANDOM", "base_model_name_or_path": None}
    with open(os.path.join(out, "adapter", "adapter_config.json"), "w") as f:
        f.write(json.dumps(acfg, indent=2, sort_keys=True))
    with open(os.path.join(out, "case.json"), "w") as f:
        json.dump(dict(case, model_from="t5-prompt-1"), f)
    r32.update({"encoder_last_hidden_state": None, "prompt_grad": None, "weight_grads": {},
                "info": {"generator": "scripts/make_dept_adapter_case.py", "versions": got, "seed": SEED,
                         "semantics": __doc__.split("\n\n")[1], "fp32_vs_fp64_worst_ratio_of_tolerance": worst,
                         "generated_ids_source": "T5ForConditionalGeneration.generate(inputs_embeds, attention_mask, greedy)"}})
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(r32, f)
    print(f"wrote {out}: loss {r32['loss']:.6f}, fp32 vs fp64 {worst:.3f} of the tolerance, generated {r32['generated_ids']}")


if __name__ == "__main__":
    main()
