#!/usr/bin/env python3
"""PEFT interop fixtures (Tests/ModelTests/Resources/peft/) and a logits check against PEFT itself.
Pinned (refused otherwise unless --allow-other-versions): torch 2.15.0, transformers 5.24.0, peft 0.21.2,
safetensors 0.8.0; CPU, eager attention.   .venv-ref/bin/python scripts/peft_interop.py build [--out DIR]
    .venv-ref/bin/python scripts/peft_interop.py check --model DIR --adapter DIR --case case.json --logits ours.json

How PEFT 0.21.2 applies adapters (files: site-packages/peft/; S = num_transformer_submodules, n = num_virtual_tokens)
(a) PROMPT_TUNING on T5 (peft_model.py, PeftModelForSeq2SeqLM). PeftModel._setup_prompt_encoder: S defaults to 2 for
  SEQ_2_SEQ_LM (1 otherwise); word_embeddings = first backbone parameter with shape[0] == vocab_size (T5: `shared`, via
  encoder.embed_tokens; GPT-2: `wte`); PromptEmbedding (tuners/prompt_tuning/model.py) = nn.Embedding(n*S, d). The
  adapter file holds one tensor `prompt_embeddings` [n*S, d] (BasePromptEncoder._get_adapter_state_dict,
  tuners/tuners_utils.py); get_prompt() = that weight repeated over the batch (inference_mode).
  forward: PROMPT_TUNING and P_TUNING take the `elif` branch: inputs_embeds = cat(prompts[:, :n], shared(input_ids)),
  attention_mask = cat(ones(B, n), attention_mask). decoder_input_ids / decoder_inputs_embeds / labels are passed on
  UNCHANGED and the decoder_attention_mask prefix is explicitly skipped for PROMPT_TUNING, so T5 makes
  decoder_input_ids = shift_right(labels) itself and returns its usual logits [B, T, V] and loss. Rows n..2n-1
  (the "decoder" half when S = 2) are saved but never read: S = 1 and S = 2 give identical outputs (checked below
  by perturbing them). Only the final `else` branch (MULTITASK_PROMPT_TUNING) prepends rows n: to
  decoder_inputs_embeds and -100 x n to labels when S = 2; it is not taken for PROMPT_TUNING.
  generate (PeftModelForSeq2SeqLM.generate): inputs_embeds = cat(prompts[:, :n], word_embeddings(input_ids)),
  attention_mask prefixed with ones(B, n), then base_model.generate(inputs_embeds=..., attention_mask=...); the
  decoder starts from decoder_start_token_id with no decoder prompt (prepare_inputs_for_generation adds nothing
  for prompt tuning). Encoder positions: prompt 0..n-1, text n..n+L-1 (T5 relative bias sees them as real tokens).
(b) PROMPT_TUNING on GPT-2 (PeftModelForCausalLM.forward): S = 1; inputs_embeds = cat(prompts, wte(input_ids));
  attention_mask = cat(ones(B, n), mask); labels = cat(full((B, n), -100), labels); position_ids passed by the
  caller are dropped with a warning (_adjust_prompt_learning_kwargs), so GPT2Model uses arange(n + L): prompt at
  0..n-1, text at n..n+L-1. Returned logits are [B, n+L, V] (prompt positions included); the HF shifted loss makes
  position n-1 predict labels[:, 0]. generate: base_model.generate with PeftModelForCausalLM.prepare_inputs_for_
  generation: on the prefill step (no/empty cache) input_ids -> inputs_embeds = cat(prompts, wte(ids)) and
  input_ids = None; every step prefixes the 2-D attention_mask with ones(n) and drops position_ids/cache_position,
  and later steps should feed only the last token. BUT with transformers 5.24 the base prepare_inputs_for_generation
  returns the cache under "cache", not "past_key_values", so PEFT sees no cache and RE-PREPENDS the prompt at every
  step (n+1 new positions per step): cached greedy decode differs from the cache-free one (use_cache=False agrees).
(c) LORA (tuners/lora/{layer,model}.py, tuners/tuners_utils.py, utils/save_and_load.py). Keys in
  adapter_model.safetensors: get_peft_model_state_dict drops the adapter name: `base_model.model.<module>.lora_A
  .weight` [r, in] and `...lora_B.weight` [out, r] (LoraLayer.update_layer builds nn.Linear(in, r), nn.Linear(r, out),
  no bias). Conv1D: (in, out) = weight.shape (tuners_utils._get_in_out_features), so GPT-2 c_attn has
  lora_A [r, d], lora_B [3d, r]. scaling s = lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora (update_layer).
  Linear.forward: y = base(x) + lora_B(lora_A(dropout(x))) * s = base(x) + s * x A^T B^T, the same for nn.Linear and
  Conv1D. fan_in_fan_out only changes the merged delta (get_delta_weight): transpose(B @ A, fan_in_fan_out) * s,
  i.e. dW = s*(B A)^T in Conv1D's stored [in, out] layout, dW = s*B A in nn.Linear's [out, in] layout;
  lora/layer.py dispatch_default forces fan_in_fan_out True for Conv1D, False for nn.Linear (with a warning).
  target_modules (check_target_module_exists): a str is re.fullmatch(pattern, module_name); a list matches a name
  equal to an entry or ending in "." + entry. So ["c_proj"] hits attn.c_proj AND mlp.c_proj, T5 ["q","v"] hits
  SelfAttention and EncDecAttention q/v of both stacks; lm_head/embeddings are untouched. inject_adapter raises
  ValueError when nothing matches.
  Loading (PeftModel.from_pretrained -> load_adapter -> set_peft_model_state_dict): the model is built from
  adapter_config.json (so the modules come from target_modules, not from the file); checkpoint keys are mapped to
  model keys by BaseTuner._remap_adapter_state_dict_for_load, keys with no module pass through unchanged, then
  model.load_state_dict(strict=False). from_pretrained warns only about MISSING lora keys ("Found missing adapter
  keys ..."); an UNEXPECTED key (no such module) is dropped silently: no error, no warning; it only appears in
  load_adapter()'s returned load_result.unexpected_keys (see t5-lora-bad-key/expected.json "info").

Fixtures: <case>/model/ (config.json + model.safetensors as make_parity_case.py writes them), <case>/adapter/
(PEFT save_pretrained; README.md model card removed, target_modules sorted), case.json (shared/parity/FORMAT.md;
prompt null: the soft prompt comes from the adapter), expected.json from PeftModel.from_pretrained(base from model/,
adapter/). Each case passes make_parity_case.py's float32-vs-float64 conditioning check (else the next seed is tried).
"""
import argparse, copy, json, logging, math, os, shutil, sys, warnings
import torch

PINNED = {"torch": "2.15.0", "transformers": "5.24.0", "peft": "0.21.2", "safetensors": "0.8.0"}
T5_DIMS = dict(vocab=257, d=40, heads=5, dkv=6, dff=72, enc=2, dec=2, buckets=16, max_distance=20)
GPT2_DIMS = dict(vocab=257, d=32, layers=2, heads=4, n_positions=128)
BAD_KEY = "base_model.model.encoder.block.0.layer.0.SelfAttention.zz.lora_A.weight"

CASES = {  # name: (arch, base seed, adapter spec, batch, min len, max len)
    "t5-prompt-1": ("t5", 11, dict(peft_type="PROMPT_TUNING", n=5, S=1), 3, 5, 20),
    "t5-prompt-2": ("t5", 12, dict(peft_type="PROMPT_TUNING", n=5, S=2), 3, 5, 20),
    "gpt2-prompt": ("gpt2", 13, dict(peft_type="PROMPT_TUNING", n=6, S=1), 2, 5, 16),
    "t5-lora": ("t5", 14, dict(peft_type="LORA", r=4, alpha=8, targets=["q", "v"], rslora=False, std=0.2), 3, 5, 20),
    "t5-lora-rs": ("t5", 15, dict(peft_type="LORA", r=4, alpha=16, targets=["q", "k", "v", "o", "wi", "wo"],
                                  rslora=True, std=0.1), 3, 5, 20),
    "gpt2-lora": ("gpt2", 16, dict(peft_type="LORA", r=4, alpha=8, targets=["c_attn", "c_proj"], rslora=False,
                                   fan_in_fan_out=True, std=0.15), 2, 5, 16),
    # rank_pattern / alpha_pattern: per-module r and lora_alpha (PEFT get_pattern_key: re.match(rf"(.*\.)?({key})$")),
    # a full module path, a suffix ("EncDecAttention.q", "k": both stacks' self- and cross-attention k) and a regex.
    "t5-lora-patterns": ("t5", 17, dict(peft_type="LORA", r=4, alpha=8, targets=["q", "k", "v", "o"], rslora=False, std=0.2,
                                        rank_pattern={"k": 2, "decoder.block.1.layer.0.SelfAttention.v": 6},
                                        alpha_pattern={"EncDecAttention.q": 32, "decoder.block.1.layer.0.SelfAttention.v": 3,
                                                       "encoder\\.block\\.[01]\\.layer\\.0\\.SelfAttention\\.o": 1}), 3, 5, 20),
    "gpt2-lora-patterns": ("gpt2", 18, dict(peft_type="LORA", r=4, alpha=8, targets=["c_attn", "c_proj"], rslora=True,
                                            fan_in_fan_out=True, std=0.15, rank_pattern={"h.1.attn.c_attn": 2},
                                            alpha_pattern={"mlp.c_proj": 2, "h.0.attn.c_attn": 24}), 2, 5, 16),
}


def versions():
    import transformers, peft, safetensors
    return {"torch": torch.__version__.split("+")[0], "transformers": transformers.__version__,
            "peft": peft.__version__, "safetensors": safetensors.__version__, "python": sys.version.split()[0]}


def check_versions(allow_other):
    v = versions()
    bad = {k: v[k] for k in PINNED if v[k] != PINNED[k]}
    if bad:
        msg = f"versions differ from the pinned {PINNED}: {bad}"
        if not allow_other:
            raise SystemExit(msg + " (pass --allow-other-versions to run anyway)")
        print("warning:", msg, file=sys.stderr)


def check_conditioning(fp32, fp64):
    """make_parity_case.py's check: float32 vs float64 PyTorch (here: PEFT) must agree within half of a FORMAT.md
    tolerance (loss, logits: 1e-4 + 1e-4·|x|) and, for T5, give the same greedy decode. Returns the worst ratio,
    or raises ValueError (the caller then tries another seed)."""
    worst_all = 0.0
    for name, x32, x64 in [("loss", [fp32["loss"]], [fp64["loss"]]), ("logits", fp32["logits"], fp64["logits"])]:
        worst = max((abs(p - q) / (1e-4 + 1e-4 * abs(q)) for p, q in zip(x32, x64)), default=0)
        worst_all = max(worst_all, worst)
        if worst > 0.5:
            raise ValueError(f"ill-conditioned: {name} differs between float32 and float64 by {worst:.2f}x the tolerance")
    if fp32.get("generated_ids") != fp64.get("generated_ids"):
        raise ValueError("ill-conditioned: greedy decode differs between float32 and float64")
    return worst_all


# --------------------------------------------------------------------------- base models (as make_parity_case.py)

def build_t5(seed):
    from transformers import T5Config, T5ForConditionalGeneration
    D = T5_DIMS
    cfg = dict(vocab_size=D["vocab"], d_model=D["d"], d_kv=D["dkv"], d_ff=D["dff"], num_layers=D["enc"],
               num_decoder_layers=D["dec"], num_heads=D["heads"], relative_attention_num_buckets=D["buckets"],
               relative_attention_max_distance=D["max_distance"], dropout_rate=0.0, layer_norm_epsilon=1e-6,
               feed_forward_proj="relu", tie_word_embeddings=True, decoder_start_token_id=0, eos_token_id=1,
               pad_token_id=0, model_type="t5")
    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(T5Config(**cfg)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3 if p.dim() > 1 else 0.1).add_(1.0 if p.dim() == 1 else 0.0)
    sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()
          if k not in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight")}
    return model, cfg, sd


def build_gpt2(seed):
    from transformers import GPT2Config, GPT2LMHeadModel
    D = GPT2_DIMS
    cfg = dict(vocab_size=D["vocab"], n_embd=D["d"], n_layer=D["layers"], n_head=D["heads"], n_positions=D["n_positions"],
               layer_norm_epsilon=1e-5, activation_function="gelu_new", model_type="gpt2", tie_word_embeddings=True,
               scale_attn_by_inverse_layer_idx=False, scale_attn_weights=True, resid_pdrop=0.0, embd_pdrop=0.0,
               attn_pdrop=0.0)
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(GPT2Config(**cfg)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    sd = {("transformer." + k if not k.startswith("transformer.") else k): v.detach().clone().contiguous()
          for k, v in model.state_dict().items() if k != "lm_head.weight" and not k.endswith((".attn.bias", ".attn.masked_bias"))}
    return model, cfg, sd


def make_inputs(arch, seed, batch, min_len, max_len, label_len=5):
    g = torch.Generator().manual_seed(seed + 1)
    V = T5_DIMS["vocab"] if arch == "t5" else GPT2_DIMS["vocab"]
    lens = torch.randint(min_len, max_len + 1, (batch,), generator=g).tolist()
    L = max(lens)
    mask = [[1] * n + [0] * (L - n) for n in lens]
    if arch == "t5":
        ids = [[int(x) for x in torch.randint(3, V, (n - 1,), generator=g)] + [1] + [0] * (L - n) for n in lens]
        tl = torch.randint(1, label_len + 1, (batch,), generator=g).tolist()
        labels = [[int(x) for x in torch.randint(3, V, (n,), generator=g)] + [-100] * (label_len - n) for n in tl]
        return {"arch": "t5", "input_ids": ids, "attention_mask": mask, "labels": labels, "prompt": None,
                "generate": {"max_new_tokens": 4}, "weight_grads": []}
    ids = [[int(x) for x in torch.randint(0, V - 1, (n,), generator=g)] + [V - 1] * (L - n) for n in lens]
    labels = [[t if m else -100 for t, m in zip(r, mr)] for r, mr in zip(ids, mask)]
    return {"arch": "gpt2", "input_ids": ids, "attention_mask": mask, "labels": labels, "prompt": None,
            "generate": None, "weight_grads": []}


def save_model(out, cfg, sd):
    from safetensors.torch import save_file
    os.makedirs(os.path.join(out, "model"), exist_ok=True)
    save_file(sd, os.path.join(out, "model", "model.safetensors"))
    with open(os.path.join(out, "model", "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)


# --------------------------------------------------------------------------------------------- PEFT side

def peft_config(arch, spec):
    from peft import LoraConfig, PromptTuningConfig
    task = "SEQ_2_SEQ_LM" if arch == "t5" else "CAUSAL_LM"
    if spec["peft_type"] == "PROMPT_TUNING":
        return PromptTuningConfig(task_type=task, num_virtual_tokens=spec["n"], num_transformer_submodules=spec["S"],
                                  prompt_tuning_init="RANDOM")
    return LoraConfig(task_type=task, r=spec["r"], lora_alpha=spec["alpha"], target_modules=spec["targets"],
                      lora_dropout=0.0, bias="none", use_rslora=spec["rslora"],
                      fan_in_fan_out=spec.get("fan_in_fan_out", False),
                      rank_pattern=spec.get("rank_pattern", {}), alpha_pattern=spec.get("alpha_pattern", {}))


def write_adapter_config(path, acfg):
    """adapter_config.json with the json.dumps settings of PeftConfigMixin.save_pretrained."""
    with open(path, "w") as f:
        f.write(json.dumps(acfg, indent=2, sort_keys=True))


def write_case(out, case, exp):
    """A fixture's case.json (inputs) and expected.json (PEFT's outputs)."""
    with open(os.path.join(out, "case.json"), "w") as f:
        json.dump(case, f)
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(exp, f)


def lora_modules(pm):
    """The names of the modules PEFT wrapped with the default LoRA adapter, sorted."""
    return sorted(n for n, m in pm.named_modules() if hasattr(m, "lora_A") and "default" in m.lora_A)


def write_adapter(base, arch, spec, seed, adapter_dir):
    """get_peft_model on the in-memory base, seeded random non-zero adapter tensors, save_pretrained."""
    from peft import get_peft_model
    pm = get_peft_model(copy.deepcopy(base), peft_config(arch, spec))
    g = torch.Generator().manual_seed(seed + 2)
    with torch.no_grad():
        if spec["peft_type"] == "PROMPT_TUNING":
            w = pm.prompt_encoder["default"].embedding.weight
            w.copy_(torch.randn(w.shape, generator=g) * 0.5)
        else:
            for name, p in sorted(pm.named_parameters()):
                if ".lora_A." in name or ".lora_B." in name:
                    p.copy_(torch.randn(p.shape, generator=g) * spec["std"])
    pm.save_pretrained(adapter_dir)
    # PEFT keeps target_modules as a set: sort the list so that reruns write identical files (same json.dumps
    # settings as PeftConfigMixin.save_pretrained).
    cpath = os.path.join(adapter_dir, "adapter_config.json")
    acfg = json.load(open(cpath))
    if isinstance(acfg.get("target_modules"), list):
        acfg["target_modules"] = sorted(acfg["target_modules"])
    write_adapter_config(cpath, acfg)
    readme = os.path.join(adapter_dir, "README.md")
    if os.path.exists(readme):
        os.remove(readme)


def load_peft(model_dir, adapter_dir, record=None):
    """Base from model_dir (transformers from_pretrained, float32, eager attention) + PeftModel.from_pretrained.
    With record (a dict), warnings and log records raised while loading the adapter are stored in it."""
    from transformers import AutoConfig, T5ForConditionalGeneration, GPT2LMHeadModel
    from peft import PeftModel
    mt = AutoConfig.from_pretrained(model_dir).model_type
    cls = T5ForConditionalGeneration if mt == "t5" else GPT2LMHeadModel
    base = cls.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager").eval()
    logs = []

    class H(logging.Handler):
        def emit(self, rec):
            logs.append(f"{rec.name} {rec.levelname}: {rec.getMessage()}")
    h = H(level=logging.WARNING)
    loggers = [logging.getLogger(), logging.getLogger("transformers"), logging.getLogger("peft")]
    for lg in loggers:
        lg.addHandler(h)
    try:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            pm = PeftModel.from_pretrained(base, adapter_dir).eval()
    finally:
        for lg in loggers:
            lg.removeHandler(h)
    if record is not None:
        record["warnings"] = [f"{x.category.__name__}: {x.message}" for x in w]
        record["log"] = logs
    else:
        for x in w:
            print(f"peft load warning: {x.category.__name__}: {x.message}", file=sys.stderr)
    return mt, pm


def n_text_prefix(pm):
    """Number of leading output positions that are prompt positions (GPT-2 prompt tuning only)."""
    cfg = pm.active_peft_config
    return cfg.num_virtual_tokens if (cfg.peft_type == "PROMPT_TUNING" and cfg.task_type == "CAUSAL_LM") else 0


def peft_forward(pm, mt, case):
    ids, am, lab = (torch.tensor(case[k]) for k in ("input_ids", "attention_mask", "labels"))
    with torch.no_grad():
        out = pm(input_ids=ids, attention_mask=am, labels=lab)
    lg = out.logits[:, n_text_prefix(pm):]  # T5: [B, T, V] as returned; GPT-2: drop the n prompt positions
    return {"loss": out.loss.item(), "logits_shape": list(lg.shape), "logits": lg.flatten().tolist()}


def greedy_by_hand(pm, case, k):
    """FORMAT §3.5 without a KV cache, with the inputs PeftModelForSeq2SeqLM.generate prepares: encoder
    inputs_embeds = cat(prompt rows 0..n-1, shared(ids)), mask prefixed with ones; decoder from [0], no prompt."""
    base = pm.get_base_model()
    ids, am = torch.tensor(case["input_ids"]), torch.tensor(case["attention_mask"])
    B = ids.shape[0]
    with torch.no_grad():
        emb = base.shared(ids)
        cfg = pm.active_peft_config
        if cfg.peft_type == "PROMPT_TUNING":
            n = cfg.num_virtual_tokens
            pr = pm.prompt_encoder[pm.active_adapter].embedding.weight[:n].to(emb.dtype)
            emb = torch.cat([pr.unsqueeze(0).expand(B, -1, -1), emb], 1)
            am = torch.cat([torch.ones(B, n, dtype=am.dtype), am], 1)
        enc = base.encoder(inputs_embeds=emb, attention_mask=am).last_hidden_state
        rows = torch.zeros(B, 1, dtype=torch.long)
        done = torch.zeros(B, dtype=torch.bool)
        margin = math.inf
        for _ in range(k):
            lg = base(encoder_outputs=(enc,), attention_mask=am, decoder_input_ids=rows, use_cache=False).logits[:, -1]
            top2 = lg.topk(2, -1).values
            live = ~done
            if bool(live.any()):
                margin = min(margin, float((top2[:, 0] - top2[:, 1])[live].min()))
            nxt = torch.where(done, torch.zeros_like(done, dtype=torch.long), lg.argmax(-1))
            rows = torch.cat([rows, nxt[:, None]], 1)
            done |= nxt == 1
            if bool(done.all()):
                break
    return rows.tolist(), margin


def peft_generate(pm, case, k):
    ids, am = torch.tensor(case["input_ids"]), torch.tensor(case["attention_mask"])
    with torch.no_grad():
        out = pm.generate(input_ids=ids, attention_mask=am, max_new_tokens=k, do_sample=False, num_beams=1)
    return out.tolist()


def gpt2_generate_probe(pm, case, k=4):
    """Not a fixture value (FORMAT has no GPT-2 decode): PEFT generate on two prefixes of row 0, with and without
    the KV cache, vs a cache-free greedy loop over cat(prompt, wte(ids so far)) at positions 0..; also the number
    of new positions the backbone receives per call with the cache on (prefill n+L, then 1 expected)."""
    base = pm.get_base_model()
    pr = pm.prompt_encoder[pm.active_adapter].embedding.weight
    seen = []
    hook = base.transformer.register_forward_pre_hook(
        lambda mod, a, kw: seen.append((kw.get("inputs_embeds") if kw.get("inputs_embeds") is not None
                                        else kw.get("input_ids")).shape[1]), with_kwargs=True)
    out = []
    try:
        for m in (5, sum(case["attention_mask"][0])):
            ids = torch.tensor([case["input_ids"][0][:m]])
            res = {"input_ids": ids.tolist()}
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for uc in (True, False):
                    seen.clear()
                    res[f"peft_generate_use_cache_{uc}"] = pm.generate(
                        input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=k, do_sample=False,
                        num_beams=1, pad_token_id=0, use_cache=uc).tolist()
                    if uc:
                        res["new_positions_per_call_with_cache"] = list(seen)
                rows = ids
                for _ in range(k):
                    lg = base(inputs_embeds=torch.cat([pr.unsqueeze(0), base.transformer.wte(rows)], 1)).logits[:, -1]
                    rows = torch.cat([rows, lg.argmax(-1, keepdim=True)], 1)
            res["cache_free_greedy"] = rows.tolist()
            out.append(res)
    finally:
        hook.remove()
    return {"runs": out, "note": "transformers 5.24 hands the KV cache to prepare_inputs_for_generation as `cache`; "
                                 "PEFT 0.21.2 looks for `past_key_values`, finds none and re-prepends the prompt at "
                                 "every decode step (n+1 new positions per call instead of 1)"}


def pad_rows(rows):
    w = max(len(r) for r in rows)
    return [r + [0] * (w - len(r)) for r in rows]


def run_case(pm, mt, case):
    res = peft_forward(pm, mt, case)
    res["generated_ids"] = None
    if mt == "t5":
        hand, margin = greedy_by_hand(pm, case, case["generate"]["max_new_tokens"])
        res["generated_ids"] = hand
        res["_margin"] = margin
    return res


# ------------------------------------------------------------------------------------------------- build

SEMANTICS = {
    "t5-prompt": "PROMPT_TUNING (PeftModelForSeq2SeqLM): encoder inputs_embeds = cat(prompt_embeddings[0:n], "
                 "shared[input_ids]), encoder/cross-attention mask = cat(ones(n), attention_mask); decoder inputs, "
                 "decoder mask and labels unchanged (decoder_input_ids = shift_right(labels) by T5); "
                 "prompt_embeddings rows n..n*S-1 are never used (forward or generate). logits = T5's [B, T, V] "
                 "(no decoder prompt positions exist, nothing dropped). generated_ids: encoder prompt prepended "
                 "as in forward, decoder starts from [0] without a prompt.",
    "gpt2-prompt": "PROMPT_TUNING (PeftModelForCausalLM): inputs_embeds = cat(prompt_embeddings [n, d], "
                   "wte[input_ids]), mask = cat(ones(n), mask), labels = cat(-100 x n, labels), position ids "
                   "0..n+L-1 (PEFT passes none; GPT-2 uses arange). PEFT returns [B, n+L, V]; logits here = the last "
                   "L positions [B, L, V]. Loss includes position n-1 predicting labels[:, 0].",
    "t5-lora": "LORA on nn.Linear: y = x W^T + s * (x A^T) B^T, A = lora_A.weight [r, in], B = lora_B.weight [out, r], "
               "s = lora_alpha / r (lora_alpha / sqrt(r) with use_rslora); merged dW = s * B A in the stored "
               "[out, in] layout. target_modules list = suffix match on module names (both stacks, self- and "
               "cross-attention). logits = T5's [B, T, V].",
    "gpt2-lora": "LORA on Conv1D (fan_in_fan_out=True): y = x W + b + s * (x A^T) B^T, A [r, in], B [out, r] with "
                 "(in, out) = Conv1D weight shape; merged dW = s * (B A)^T in the stored [in, out] layout. "
                 "'c_proj' matches both attn.c_proj and mlp.c_proj. logits [B, L, V].",
}


def adapter_summary(adapter_dir):
    from safetensors import safe_open
    with safe_open(os.path.join(adapter_dir, "adapter_model.safetensors"), "pt") as f:
        return {k: list(f.get_slice(k).get_shape()) for k in sorted(f.keys())}


def build_case(out_root, name, arch, seed0, spec, batch, min_len, max_len, tries=20):
    out = os.path.join(out_root, name)
    for attempt in range(tries):
        seed = seed0 + 100 * attempt
        shutil.rmtree(out, ignore_errors=True)
        base, cfg, sd = (build_t5 if arch == "t5" else build_gpt2)(seed)
        save_model(out, cfg, sd)
        write_adapter(base, arch, spec, seed, os.path.join(out, "adapter"))
        case = make_inputs(arch, seed, batch, min_len, max_len)
        mt, pm = load_peft(os.path.join(out, "model"), os.path.join(out, "adapter"))
        exp = run_case(pm, mt, case)
        pm64 = copy.deepcopy(pm).double()
        exp64 = run_case(pm64, mt, case)
        try:
            worst = check_conditioning(exp, exp64)
            if mt == "t5" and exp["_margin"] < 1e-2:
                raise ValueError(f"ill-conditioned: smallest top-1/top-2 decode margin {exp['_margin']:.2g}")
        except ValueError as e:
            print(f"{name}: seed {seed}: {e}; trying another seed", file=sys.stderr)
            continue
        info = {"generator": "scripts/peft_interop.py", "versions": versions(), "case": name, "seed": seed,
                "peft_spec": spec, "attn_implementation": "eager", "device": "cpu",
                "fp32_vs_fp64_worst_ratio_of_tolerance": worst,
                "adapter_tensors": adapter_summary(os.path.join(out, "adapter")),
                "word_embeddings_is_shared": pm.word_embeddings.weight.data_ptr() ==
                pm.get_base_model().get_input_embeddings().weight.data_ptr() if spec["peft_type"] == "PROMPT_TUNING" else None}
        if spec["peft_type"] == "PROMPT_TUNING":
            info["semantics"] = SEMANTICS["t5-prompt" if arch == "t5" else "gpt2-prompt"]
            info["prompt_rows"] = {"total": spec["n"] * spec["S"], "encoder_or_input": [0, spec["n"]],
                                   "unused": [spec["n"], spec["n"] * spec["S"]] if spec["S"] == 2 else None}
        else:
            info["semantics"] = SEMANTICS["t5-lora" if arch == "t5" else "gpt2-lora"]
            info["scaling"] = spec["alpha"] / (math.sqrt(spec["r"]) if spec["rslora"] else spec["r"])
            if spec.get("rank_pattern") or spec.get("alpha_pattern"):  # PEFT's own per-module scaling
                info["scaling_per_module"] = {n: m.scaling["default"] for n, m in sorted(pm.named_modules())
                                              if hasattr(m, "lora_A") and "default" in m.lora_A}
            info["lora_modules"] = lora_modules(pm)
        if mt == "t5":
            gen = peft_generate(pm, case, case["generate"]["max_new_tokens"])
            info["min_argmax_margin"] = exp["_margin"]
            info["peft_generate_ids"] = gen
            info["peft_generate_matches_hand_loop"] = pad_rows(gen) == pad_rows(exp["generated_ids"])
            if not info["peft_generate_matches_hand_loop"]:
                print(f"{name}: PEFT generate {gen} differs from the hand loop {exp['generated_ids']}", file=sys.stderr)
            else:
                exp["generated_ids"] = gen
            info["generated_ids_source"] = ("PeftModel.generate(input_ids, attention_mask, max_new_tokens=4, greedy), "
                                            "identical to a cache-free hand loop" if info["peft_generate_matches_hand_loop"]
                                            else "cache-free hand loop (PEFT generate differed; see peft_generate_ids)")
        if mt == "gpt2" and spec["peft_type"] == "PROMPT_TUNING":
            info["peft_generate_probe"] = gpt2_generate_probe(pm, case)
        if spec["peft_type"] == "PROMPT_TUNING" and spec["S"] == 2:
            # Proof that rows n.. are unused: perturb them and rerun forward + generate.
            pmx = copy.deepcopy(pm)
            with torch.no_grad():
                pmx.prompt_encoder["default"].embedding.weight[spec["n"]:] += 10.0
            alt = run_case(pmx, mt, case)
            info["decoder_rows_perturbed_changes_output"] = (alt["logits"] != exp["logits"] or alt["loss"] != exp["loss"]
                                                             or alt["generated_ids"] != exp["generated_ids"]
                                                             or peft_generate(pmx, case, 4) != info["peft_generate_ids"])
        exp.pop("_margin", None)
        exp.update({"encoder_last_hidden_state": None, "prompt_grad": None, "weight_grads": {}})
        exp["info"] = info
        write_case(out, case, exp)
        print(f"{name}: seed {seed} loss {exp['loss']:.6f} logits_shape {exp['logits_shape']}"
              f" generated {exp['generated_ids']} worst fp32/fp64 {worst:.3f}")
        return exp
    raise SystemExit(f"{name}: no well-conditioned seed in {tries} tries")


def build_bad_key(out_root, src="t5-lora", name="t5-lora-bad-key"):
    from safetensors.torch import load_file, save_file
    s, out = os.path.join(out_root, src), os.path.join(out_root, name)
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(os.path.join(s, "model"), os.path.join(out, "model"))
    shutil.copytree(os.path.join(s, "adapter"), os.path.join(out, "adapter"))
    path = os.path.join(out, "adapter", "adapter_model.safetensors")
    sd = load_file(path)
    ref = sd[BAD_KEY.replace(".zz.", ".q.")]
    sd[BAD_KEY] = torch.randn(ref.shape, generator=torch.Generator().manual_seed(99)) * 0.2
    save_file(sd, path, metadata={"format": "pt"})
    case = json.load(open(os.path.join(s, "case.json")))
    case["expect_error"] = "zz"
    src_exp = json.load(open(os.path.join(s, "expected.json")))
    rec = {}
    try:
        mt, pm = load_peft(os.path.join(out, "model"), os.path.join(out, "adapter"), record=rec)
        rec["raised"] = None
    except Exception as e:  # noqa: BLE001 - record whatever PEFT does
        rec["raised"] = f"{type(e).__name__}: {e}"
        pm = None
    if pm is not None:
        exp = run_case(pm, mt, case)
        exp.pop("_margin", None)
        exp["generated_ids"] = peft_generate(pm, case, 4)
        lr = pm.load_adapter(os.path.join(out, "adapter"), adapter_name="probe")
        rec["load_adapter_result"] = {"unexpected_keys": list(lr.unexpected_keys), "missing_keys": list(lr.missing_keys)}
        rec["outputs_identical_to_" + src] = (exp["loss"] == src_exp["loss"] and exp["logits"] == src_exp["logits"]
                                             and exp["generated_ids"] == src_exp["generated_ids"])
    else:
        exp = {k: None for k in ("loss", "logits_shape", "logits", "generated_ids")}
    exp.update({"encoder_last_hidden_state": None, "prompt_grad": None, "weight_grads": {}})
    exp["info"] = {"generator": "scripts/peft_interop.py", "versions": versions(), "case": name,
                   "copy_of": src, "extra_key": BAD_KEY, "extra_key_shape": list(ref.shape),
                   "peft_load": rec,
                   "semantics": "t5-lora's adapter plus one key for a module that does not exist (SelfAttention.zz). "
                                "PEFT builds its LoRA modules from adapter_config.json target_modules and loads the "
                                "file with load_state_dict(strict=False): the key is ignored. expected.json holds "
                                "PEFT's outputs (= t5-lora's); case.json's expect_error asks PromptRepro to refuse."}
    write_case(out, case, exp)
    print(f"{name}: PEFT load: raised={rec.get('raised')} warnings={rec.get('warnings')} log={rec.get('log')} "
          f"load_adapter={rec.get('load_adapter_result')} identical={rec.get('outputs_identical_to_' + src)}")


# Copies of a fixture's adapter whose adapter_config.json is edited after PEFT saved it: PEFT builds
# its LoRA modules from the config and loads the file with strict=False, so tensors of modules the
# edited config no longer selects are left out. name: (source case, config edit).
CONFIG_EDITS = {
    "t5-lora-exclude": ("t5-lora-rs", {"exclude_modules": ["k", "wo"]}),
    "t5-lora-layers": ("t5-lora-rs", {"layers_to_transform": [1], "layers_pattern": "block"}),
    "t5-lora-regex": ("t5-lora-rs", {"target_modules": "decoder\\..*\\.(q|wi)"}),
}


def build_config_edit(out_root, name):
    """The source case's adapter with CONFIG_EDITS[name] merged into its config; case.json names the
    source's model (`model_from`) instead of a copy; expected.json holds PEFT's outputs on it."""
    src, edit = CONFIG_EDITS[name]
    s, out = os.path.join(out_root, src), os.path.join(out_root, name)
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(os.path.join(s, "adapter"), os.path.join(out, "adapter"))
    cpath = os.path.join(out, "adapter", "adapter_config.json")
    acfg = json.load(open(cpath))
    acfg.update(edit)
    write_adapter_config(cpath, acfg)
    case = json.load(open(os.path.join(s, "case.json")))
    case["model_from"] = src
    rec = {}
    mt, pm = load_peft(os.path.join(s, "model"), os.path.join(out, "adapter"), record=rec)
    exp = run_case(pm, mt, case)
    exp.pop("_margin", None)
    exp["generated_ids"] = peft_generate(pm, case, case["generate"]["max_new_tokens"])
    src_exp = json.load(open(os.path.join(s, "expected.json")))
    exp.update({"encoder_last_hidden_state": None, "prompt_grad": None, "weight_grads": {}})
    exp["info"] = {"generator": "scripts/peft_interop.py", "versions": versions(), "case": name, "copy_of": src,
                   "config_edit": edit, "peft_load": rec,
                   "lora_modules": lora_modules(pm),
                   "loss_differs_from_source": exp["loss"] != src_exp["loss"],
                   "semantics": "the source adapter's file under an edited adapter_config.json: PEFT wraps only the "
                                "modules the edited config selects (check_target_module_exists) and leaves the other "
                                "tensors of the file out (load_state_dict strict=False)"}
    write_case(out, case, exp)
    print(f"{name}: {len(exp['info']['lora_modules'])} LoRA modules, loss {exp['loss']:.6f} (source {src_exp['loss']:.6f})")


def du(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


# ------------------------------------------------------------------------------------------------- check

def check(a):
    """PEFT's logits (and loss / generated_ids when ours has them) vs PromptRepro's JSON; exit 1 on mismatch."""
    case = json.load(open(a.case))
    ours = json.load(open(a.logits))
    mt, pm = load_peft(a.model, a.adapter)
    ref = run_case(pm, mt, case)
    ok = True
    if list(ours.get("logits_shape") or []) != ref["logits_shape"]:
        print(f"logits_shape: ours {ours.get('logits_shape')} PEFT {ref['logits_shape']}")
        ok = False
    pairs = [("logits", ours.get("logits"), ref["logits"])]
    if ours.get("loss") is not None:
        pairs.append(("loss", [ours["loss"]], [ref["loss"]]))
    for key, x, y in pairs:
        if x is None or len(x) != len(y):
            print(f"{key}: length {None if x is None else len(x)} vs PEFT {len(y)}")
            ok = False
            continue
        worst, at = 0.0, 0
        for i, (p, q) in enumerate(zip(x, y)):
            r = abs(p - q) / (a.abs + a.rel * abs(q)) if math.isfinite(p) else math.inf
            if r > worst:
                worst, at = r, i
        print(f"{key}: worst |diff| / (abs + rel*|x|) = {worst:.3g} at {at} (ours {x[at]}, PEFT {y[at]})")
        ok &= worst <= 1.0
    if ours.get("generated_ids") is not None and ref["generated_ids"] is not None:
        gen = peft_generate(pm, case, case["generate"]["max_new_tokens"])
        same = pad_rows(ours["generated_ids"]) == pad_rows(gen)
        print("generated_ids:", "match" if same else f"ours {ours['generated_ids']} PEFT {gen}")
        ok &= same
    print("interop check:", "OK" if ok else "MISMATCH")
    sys.exit(0 if ok else 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--allow-other-versions", action="store_true")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="write the fixtures")
    b.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "ModelTests",
                                                 "Resources", "peft"))
    b.add_argument("--only", nargs="*", help="case names (default: all)")
    c = sub.add_parser("check", help="compare PromptRepro logits with PEFT's")
    c.add_argument("--model", required=True)
    c.add_argument("--adapter", required=True)
    c.add_argument("--case", required=True)
    c.add_argument("--logits", required=True, help='JSON {"logits": [flat], "logits_shape": [...]} (+ optional loss, generated_ids)')
    c.add_argument("--abs", type=float, default=1e-4)
    c.add_argument("--rel", type=float, default=1e-4)
    a = ap.parse_args()
    check_versions(a.allow_other_versions)
    torch.set_num_threads(1)  # deterministic CPU reductions
    if a.cmd == "check":
        return check(a)
    out = os.path.normpath(a.out)
    os.makedirs(out, exist_ok=True)
    names = a.only or list(CASES) + ["t5-lora-bad-key"] + list(CONFIG_EDITS)
    for name in names:
        if name == "t5-lora-bad-key":
            build_bad_key(out)
        elif name in CONFIG_EDITS:
            build_config_edit(out, name)
        else:
            build_case(out, name, *CASES[name])
    size = du(out)
    print(f"{out}: {size / 1e6:.2f} MB")
    if size > 4e6:
        raise SystemExit("fixture directory over 4 MB")


if __name__ == "__main__":
    main()
