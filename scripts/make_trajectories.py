#!/usr/bin/env python3
"""Writes the training-trajectory fixtures of Tests/MethodTests/Resources/trajectories/ from PyTorch +
transformers (12 optimizer steps per case on one fixed full batch, every method × optimizer setting).

Pinned reference versions (the fixtures were written with exactly these; the script refuses others
unless --allow-other-versions is given, and records the versions it ran with in every case.json):
    torch 2.15.0, transformers 5.24.0, peft 0.21.2 (version recorded only; LoRA is done with
    forward hooks), safetensors 0.8.0.
`make bench-reference` creates such a venv (the project uses .venv-ref). CPU only. Example:

    .venv-ref/bin/python scripts/make_trajectories.py --out Tests/MethodTests/Resources/trajectories

Layout (see also the "note" of each case.json):
    models/<name>/{config.json, model.safetensors}   tiny random backbones (float32, save_pretrained)
    <case>/case.json           model, method_config, optimizer, steps, batch, note, generator
    <case>/initial.safetensors trainable tensors (and LoPT-2's frozen X0) before step 1, float32
    <case>/expected.json       losses / grad_norms per step (before that step's update), float32 and float64 runs
    <case>/states.safetensors  step<t>/<NAME>, step<t>_f64/<NAME> (params after update t),
                               step<t>/opt.<NAME>.0|1, step<t>/opt.step (float32 optimizer state after update t)

Every case is trained twice from the same initial float32 tensors: in float32 (the reference) and in
float64 (model.double()); as in make_parity_case.py, a case whose float32 run is not reproducible
(float32 and float64 disagree beyond --max-rel-loss) is refused, so that the Swift test can derive its
tolerances from the float32-vs-float64 spread.
"""
import argparse, copy, json, math, os, shutil, sys, zlib
import torch
import torch.nn.functional as F

PINNED = {"torch": "2.15.0", "transformers": "5.24.0", "peft": "0.21.2", "safetensors": "0.8.0"}
STEPS = 12
T5_TOKENIZER = "/work/shared/models/t5-tokenizer"
GPT2_TOKENIZER = "/work/shared/models/gpt2-tokenizer"
SST2 = "/work/shared/data/sst2/dev.tsv"
CB = "/work/shared/data/superglue/cb/val.jsonl"
CB_LABELS = {"entailment": 0, "contradiction": 1, "neutral": 2}
# Every CB premise is longer than 24 tokens, so a common truncation to 24 would leave no padding;
# row i is truncated to T5_MAX_LEN[i] tokens (</s> kept) so that the mask path is exercised.
T5_MAX_LEN = [24, 21, 17, 13]
SMALL_VOCAB = 512


def versions():
    import transformers, peft, safetensors
    return {"torch": torch.__version__.split("+")[0], "transformers": transformers.__version__,
            "peft": peft.__version__, "safetensors": safetensors.__version__}


# ----------------------------------------------------------------------------------------- models

def t5_config(variant, vocab):
    from transformers import T5Config
    cfg = T5Config(vocab_size=vocab, d_model=8, d_kv=4, d_ff=16, num_layers=2, num_decoder_layers=2, num_heads=2,
                   relative_attention_num_buckets=8, relative_attention_max_distance=20, dropout_rate=0.0,
                   layer_norm_epsilon=1e-6, feed_forward_proj="relu" if variant == "v10" else "gated-gelu",
                   tie_word_embeddings=variant == "v10", decoder_start_token_id=0, eos_token_id=1, pad_token_id=0)
    cfg._attn_implementation = "eager"
    return cfg


def build_model(name):
    """(model, arch) with seeded random weights: matrices N(0, fan_in^-1/2), T5 embeddings/head N(0, 1),
    GPT-2 wte N(0, 0.5) and wpe N(0, 0.1), LayerNorm weights 1 + N(0, 0.1), biases N(0, 0.1)."""
    vocab = SMALL_VOCAB if name.endswith("-small-vocab") else None
    seed = zlib.crc32(name.encode()) % 10_000
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    if name.startswith("t5"):
        from transformers import T5ForConditionalGeneration
        variant = "v10" if name.startswith("t5-v10") else "v11"
        model = T5ForConditionalGeneration(t5_config(variant, vocab or 32128))
        if variant == "v11":  # transformers 5 ties a fresh v1.1 head to `shared`; make it its own tensor
            model.lm_head.weight = torch.nn.Parameter(model.shared.weight.detach().clone())
        arch = "t5"
    else:
        from transformers import GPT2Config, GPT2LMHeadModel
        cfg = GPT2Config(vocab_size=vocab or 50257, n_embd=8, n_head=2, n_layer=2, n_positions=128, resid_pdrop=0.0,
                         embd_pdrop=0.0, attn_pdrop=0.0, summary_first_dropout=0.0, layer_norm_epsilon=1e-5,
                         activation_function="gelu_new", tie_word_embeddings=True)
        cfg._attn_implementation = "eager"
        model = GPT2LMHeadModel(cfg)
        arch = "gpt2"
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith(("shared.weight", "lm_head.weight")):
                p.copy_(torch.randn(p.shape, generator=g))
            elif n.endswith("relative_attention_bias.weight"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            elif n.endswith("wte.weight"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            elif n.endswith("wpe.weight"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            elif "layer_norm" in n or ".ln_" in n or n.endswith(("final_layer_norm.weight",)):
                if n.endswith(".weight"):
                    p.copy_(1 + torch.randn(p.shape, generator=g) * 0.1)
                else:
                    p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            elif n.endswith(".bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            else:  # T5 Linear [out, in]; GPT-2 Conv1D [in, out]
                fan_in = p.shape[1] if arch == "t5" else p.shape[0]
                p.copy_(torch.randn(p.shape, generator=g) * fan_in ** -0.5)
    for m in model.modules():  # all dropout off
        if isinstance(m, torch.nn.Dropout):
            assert m.p == 0.0, m
    return model, arch


def save_model(model, name, out):
    d = os.path.join(out, "models", name)
    model.save_pretrained(d, safe_serialization=True)
    cfgp = os.path.join(d, "config.json")
    cfg = json.load(open(cfgp))
    if name.startswith("t5-v11"):
        # transformers 5 writes tie_word_embeddings true for every T5 (and scale_decoder_outputs false);
        # the head is untied and stored, so say so.
        cfg["tie_word_embeddings"] = False
    with open(cfgp, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
    from safetensors import safe_open
    with safe_open(os.path.join(d, "model.safetensors"), "pt") as f:
        keys = set(f.keys())
        assert all(f.get_tensor(k).dtype == torch.float32 for k in keys)
    assert ("lm_head.weight" in keys) == name.startswith("t5-v11"), keys


# ---------------------------------------------------------------------------------------- batches

def t5_batch(small):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(T5_TOKENIZER)
    rows = [json.loads(l) for l in open(CB)][:4]
    ids = [tok(f"premise: {r['premise']} hypothesis: {r['hypothesis']}", max_length=n, truncation=True).input_ids
           for r, n in zip(rows, T5_MAX_LEN)]
    tg = [tok(str(CB_LABELS[r["label"]])).input_ids for r in rows]
    L, T = max(map(len, ids)), max(map(len, tg))
    b = {"input_ids": [x + [tok.pad_token_id] * (L - len(x)) for x in ids],
         "attention_mask": [[1] * len(x) + [0] * (L - len(x)) for x in ids],
         "labels": [x + [-100] * (T - len(x)) for x in tg]}
    note = (f"T5 batch: first 4 rows of superglue/cb/val.jsonl, source 'premise: {{premise}} hypothesis: {{hypothesis}}' "
            f"truncated per row to {T5_MAX_LEN} tokens (</s> kept; every CB source exceeds 24 tokens, so a common "
            f"truncation would leave no padding), right-padded with 0; labels = tokenized label index "
            f"(entailment 0, contradiction 1, neutral 2) incl. </s>, right-padded with -100.")
    if small:
        b["input_ids"] = [[t % SMALL_VOCAB for t in r] for r in b["input_ids"]]
        b["labels"] = [[t % SMALL_VOCAB if t >= 0 else t for t in r] for r in b["labels"]]
        note += f" Small-vocab model: every token id (inputs and labels) taken modulo {SMALL_VOCAB}."
    return b, note


def gpt2_batch(small):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(GPT2_TOKENIZER)
    lines = open(SST2).read().splitlines()[1:5]
    sents = [l.split("\t")[0].strip() for l in lines]
    labels = [int(l.split("\t")[1]) for l in lines]
    ids = [tok(s).input_ids for s in sents]
    L = max(map(len, ids))
    pad = tok.eos_token_id  # 50256
    cls = [tok(" negative").input_ids[0], tok(" positive").input_ids[0]]
    b = {"input_ids": [x + [pad] * (L - len(x)) for x in ids],
         "attention_mask": [[1] * len(x) + [0] * (L - len(x)) for x in ids],
         "class_token_ids": cls, "class_targets": labels, "last_positions": [len(x) - 1 for x in ids]}
    note = ("GPT-2 batch: first 4 rows of sst2/dev.tsv, sentence stripped of its trailing space, right-padded with "
            "50256; verbalizer ' negative'/' positive' (first token ids), loss = mean CE of "
            "hidden[b, n + last_positions[b]] @ lm_head.weight[class_token_ids].T against class_targets.")
    if small:
        b["input_ids"] = [[t % SMALL_VOCAB for t in r] for r in b["input_ids"]]
        b["class_token_ids"] = [t % SMALL_VOCAB for t in cls]
        note += f" Small-vocab model: every token id (inputs, pads and class_token_ids) taken modulo {SMALL_VOCAB}."
    return b, note


# ---------------------------------------------------------------------------------------- methods

DEFAULT_MC = {"n": 100, "r": 10, "m": 400, "s": 256, "alpha": 8.0, "dropout": 0, "targets": [], "init": "default"}


def lora_modules(model, targets):
    return [(n, m) for n, m in model.named_modules() if any(n.endswith("." + t) for t in targets)]


def initial_tensors(method, mc, model, arch, seed):
    """Ordered {NAME: float32 tensor}: N(0, 0.5) for every method tensor, LayerNorm weight 1 + N(0, 0.1),
    biases N(0, 0.1); ft: the model's own parameters."""
    g = torch.Generator().manual_seed(seed)
    d = model.config.d_model if arch == "t5" else model.config.n_embd
    N = lambda *s: torch.randn(*s, generator=g) * 0.5
    n, r, m, s = mc["n"], mc["r"], mc["m"], mc["s"]
    if method == "pt":
        return {"prompt": N(n, d)}
    if method == "respt":
        return {"prompt": N(n, d), "mlp.down.weight": N(m, d), "mlp.down.bias": torch.randn(m, generator=g) * 0.1,
                "mlp.up.weight": N(d, m), "mlp.up.bias": torch.randn(d, generator=g) * 0.1,
                "mlp.norm.weight": 1 + torch.randn(d, generator=g) * 0.1, "mlp.norm.bias": torch.randn(d, generator=g) * 0.1}
    if method == "dept":
        return {"prompt": N(m, d), "lora_embedding_A": N(s, r), "lora_embedding_B": N(r, d)}
    if method == "dpt":
        return {"prefix_first": N(n, r), "prefix_second": N(r, d)}
    if method == "lopt1":
        return {"U": N(n, r), "V": N(r, d)}
    if method == "lopt2":
        return {"X0": N(n, d), "U": N(d, r), "V": N(r, d)}
    if method == "probe":
        return {"U": N(n, r), "sigma": N(r), "V": N(d, r)}
    if method == "lora":
        out = {}
        for name, mod in lora_modules(model, mc["targets"]):
            W = mod.weight
            fin, fout = (W.shape[1], W.shape[0]) if arch == "t5" else (W.shape[0], W.shape[1])
            out[f"{name}.weight.lora_A"] = N(r, fin)
            out[f"{name}.weight.lora_B"] = N(fout, r)
        assert out, "no LoRA targets matched"
        return out
    if method == "ft":
        return {k: p.detach().clone() for k, p in model.named_parameters()}
    raise ValueError(method)


FROZEN = {"lopt2": {"X0"}}


def make_prompt(method, mc, P):
    """The n×d rows prepended to the text embeddings (None: no prompt)."""
    if method in ("pt", "dept"):
        return P["prompt"]
    if method == "respt":
        x = P["prompt"]
        h = F.linear(F.relu(F.linear(x, P["mlp.down.weight"], P["mlp.down.bias"])), P["mlp.up.weight"], P["mlp.up.bias"])
        return F.layer_norm(h, (x.shape[-1],), P["mlp.norm.weight"], P["mlp.norm.bias"], eps=1e-5) + x
    if method == "dpt":
        return P["prefix_first"] @ P["prefix_second"]
    if method == "lopt1":
        return P["U"] @ P["V"]
    if method == "lopt2":
        return F.elu(P["X0"] @ P["U"], alpha=1.0) @ P["V"]
    if method == "probe":
        return (P["U"] * F.relu(P["sigma"])) @ P["V"].T
    return None


def forward_loss(model, arch, method, mc, P, batch, dtype):
    ids = torch.tensor(batch["input_ids"])
    am = torch.tensor(batch["attention_mask"])
    B, L = ids.shape
    emb = model.shared(ids) if arch == "t5" else model.transformer.wte(ids)
    if method == "dept":
        assert L <= mc["s"]
        delta = (mc["alpha"] / math.sqrt(mc["r"])) * (P["lora_embedding_A"] @ P["lora_embedding_B"])
        emb = emb + delta[:L].unsqueeze(0)
    prompt = make_prompt(method, mc, P)
    n = 0
    if prompt is not None:
        n = prompt.shape[0]
        emb = torch.cat([prompt.unsqueeze(0).expand(B, -1, -1), emb], 1)
        am = torch.cat([torch.ones(B, n, dtype=am.dtype), am], 1)
    assert emb.dtype == dtype
    if arch == "t5":
        return model(inputs_embeds=emb, attention_mask=am, labels=torch.tensor(batch["labels"]), use_cache=False).loss
    h = model.transformer(inputs_embeds=emb, attention_mask=am, use_cache=False).last_hidden_state
    rows = h[torch.arange(B), n + torch.tensor(batch["last_positions"])]
    logits = rows @ model.lm_head.weight[torch.tensor(batch["class_token_ids"])].T
    return F.cross_entropy(logits, torch.tensor(batch["class_targets"]))


# ------------------------------------------------------------------------------------- optimizers

class AdamWHF(torch.optim.Optimizer):
    """transformers' removed AdamW (correct_bias=True): moments as Adam, step size lr·sqrt(1−β2^t)/(1−β1^t),
    denominator sqrt(v) + eps, then decoupled decay p ← p − lr·wd·p after the Adam step."""

    def __init__(self, params, lr, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self):
        for gr in self.param_groups:
            b1, b2 = gr["betas"]
            for p in gr["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st["step"] = 0
                    st["exp_avg"] = torch.zeros_like(p)
                    st["exp_avg_sq"] = torch.zeros_like(p)
                st["step"] += 1
                t = st["step"]
                m, v, g = st["exp_avg"], st["exp_avg_sq"], p.grad
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                step_size = gr["lr"] * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
                p.addcdiv_(m, v.sqrt().add_(gr["eps"]), value=-step_size)
                if gr["weight_decay"] > 0:
                    p.add_(p, alpha=-gr["lr"] * gr["weight_decay"])


def lr_factor(o):
    W, T = o["warmup_steps"], o["total_steps"]
    if o["schedule"] == "constant":
        return lambda t: 1.0
    if o["schedule"] == "constant-warmup":
        return lambda t: t / W if t < W else 1.0
    if o["schedule"] == "linear":
        return lambda t: t / W if t < W else max(0.0, (T - t) / (T - W))
    raise ValueError(o["schedule"])


def make_optimizer(o, method, params):
    main = [p for k, p in params.items() if not (method == "dept" and k.startswith("lora_embedding_"))]
    groups = [{"params": main, "lr": o["lr"]}]
    if method == "dept":
        groups.append({"params": [params["lora_embedding_A"], params["lora_embedding_B"]], "lr": o["lr_secondary"]})
    if o["kind"] == "adamw-torch":
        opt = torch.optim.AdamW(groups, lr=o["lr"], betas=(0.9, 0.999), eps=o["eps"], weight_decay=o["weight_decay"])
    elif o["kind"] == "adamw-hf":
        opt = AdamWHF(groups, lr=o["lr"], betas=(0.9, 0.999), eps=o["eps"], weight_decay=o["weight_decay"])
    elif o["kind"] == "adafactor":
        from transformers.optimization import Adafactor
        assert o["eps"] == 1e-30
        opt = Adafactor(groups, lr=o["lr"], relative_step=False, scale_parameter=False, warmup_init=False,
                        weight_decay=o["weight_decay"])
    else:
        raise ValueError(o["kind"])
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(o))


def opt_state(o, st):
    """PromptRepro's slots: AdamW 0 = exp_avg, 1 = exp_avg_sq; Adafactor ≥2-D 0 = row, 1 = col; 1-D 0 = exp_avg_sq."""
    if o["kind"] in ("adamw-torch", "adamw-hf"):
        return [st["exp_avg"], st["exp_avg_sq"]]
    if "exp_avg_sq_row" in st:
        return [st["exp_avg_sq_row"], st["exp_avg_sq_col"]]
    return [st["exp_avg_sq"]]


# ------------------------------------------------------------------------------------------- run

def train(case, base_model, init, batch, dtype, keep_states):
    arch, method, mc, o = case["arch"], case["method"], case["method_config"], case["optimizer"]
    model = copy.deepcopy(base_model).to(dtype)
    for p in model.parameters():
        p.requires_grad_(method == "ft")
    if method == "ft":
        params = dict(model.named_parameters())
        assert list(params) == list(init)
        with torch.no_grad():
            for k, p in params.items():
                p.copy_(init[k].to(dtype))
        P = {}
    else:
        P = {k: torch.nn.Parameter(v.clone().to(dtype), requires_grad=k not in FROZEN.get(method, ())) for k, v in init.items()}
        params = {k: p for k, p in P.items() if p.requires_grad}
        if method == "lora":
            scale = mc["alpha"] / mc["r"]
            for name, mod in lora_modules(model, mc["targets"]):
                A, Bm = P[f"{name}.weight.lora_A"], P[f"{name}.weight.lora_B"]
                mod.register_forward_hook(lambda mod, inp, out, A=A, Bm=Bm: out + scale * ((inp[0] @ A.T) @ Bm.T))
    opt, sched = make_optimizer(o, method, params)
    plist = list(params.values())
    losses, norms, states = [], [], {}
    for t in range(1, case["steps"] + 1):
        opt.zero_grad(set_to_none=True)
        loss = forward_loss(model, arch, method, mc, P, batch, dtype)
        loss.backward()
        for k, p in params.items():
            assert p.grad is not None, k
        gn = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in plist]))
        if o["clip_norm"] is not None:
            torch.nn.utils.clip_grad_norm_(plist, o["clip_norm"])
        opt.step()
        sched.step()
        losses.append(loss.item())
        norms.append(gn.item())
        if keep_states(t):
            for k, p in params.items():
                states[f"step{t}/{k}"] = p.detach().float().clone()
                for i, s in enumerate(opt_state(o, opt.state[p])):
                    states[f"step{t}/opt.{k}.{i}"] = s.detach().float().clone()
            states[f"step{t}/opt.step"] = torch.tensor([float(t)])
    final = {k: p.detach().clone() for k, p in params.items()}
    return losses, norms, states, final


def opt_cfg(kind, lr, wd=0.0, eps=None, schedule="constant", warmup=0, clip=None, lr2=None):
    if eps is None:
        eps = {"adamw-torch": 1e-8, "adamw-hf": 1e-6, "adafactor": 1e-30}[kind]
    return {"kind": kind, "lr": lr, "lr_secondary": lr2, "weight_decay": wd, "eps": eps, "schedule": schedule,
            "warmup_steps": warmup, "total_steps": STEPS, "clip_norm": clip}


DPT_PIPE = dict(wd=1e-2, schedule="linear", warmup=3, clip=1.0)  # adamw-torch, DPT-style
TARGETS = {"t5": ["q", "v"], "gpt2": ["c_attn"]}

# (case, model, method, method_config overrides, optimizer)
CASES = [
    ("t5-v10-pt", "t5-v10", "pt", {"n": 4}, opt_cfg("adamw-torch", 0.3, **DPT_PIPE)),
    ("t5-v10-respt", "t5-v10", "respt", {"n": 4, "m": 6},
     opt_cfg("adamw-hf", 0.1, wd=1e-2, eps=1e-6, schedule="constant-warmup", warmup=2, clip=0.05)),
    ("t5-v10-dept", "t5-v10", "dept", {"m": 3, "r": 2, "s": 32, "alpha": 8.0},
     opt_cfg("adamw-hf", 0.3, lr2=0.05, eps=1e-6, schedule="linear", warmup=3, clip=1.0)),
    ("t5-v10-dpt", "t5-v10", "dpt", {"n": 4, "r": 2}, opt_cfg("adamw-torch", 0.3, **DPT_PIPE)),
    # lr 0.1, not 0.3: at 0.3 no seed in 0..19 gave a float32 run within 1e-5 (tensors) of float64
    ("t5-v10-lopt1", "t5-v10", "lopt1", {"n": 4, "r": 2}, opt_cfg("adafactor", 0.1, clip=1.0)),
    ("t5-v10-lopt2", "t5-v10", "lopt2", {"n": 4, "r": 2}, opt_cfg("adafactor", 0.3, clip=0.05)),
    ("t5-v10-lora", "t5-v10", "lora", {"r": 2, "alpha": 4.0},
     opt_cfg("adamw-torch", 0.05, wd=1e-2, schedule="linear", warmup=3, clip=0.05)),
    ("t5-v10-probe", "t5-v10", "probe", {"n": 4, "r": 3}, opt_cfg("adafactor", 0.1)),  # sigma: Adafactor 1-D state
    ("t5-v10-ft", "t5-v10-small-vocab", "ft", {}, opt_cfg("adamw-hf", 1e-3, wd=1e-5, eps=1e-8)),
    ("t5-v11-pt", "t5-v11", "pt", {"n": 4}, opt_cfg("adafactor", 0.1, wd=1e-5)),  # 0.1: as t5-v10-lopt1
    ("t5-v11-dpt", "t5-v11", "dpt", {"n": 4, "r": 2}, opt_cfg("adamw-torch", 0.3, **DPT_PIPE)),
    ("t5-v11-lora", "t5-v11", "lora", {"r": 2, "alpha": 4.0},
     opt_cfg("adamw-torch", 0.02, schedule="constant-warmup", warmup=2)),  # 0.05 drifted (f32 vs f64)
    ("t5-v11-ft", "t5-v11-small-vocab", "ft", {}, opt_cfg("adamw-torch", 1e-3, **DPT_PIPE)),
    ("gpt2-pt", "gpt2", "pt", {"n": 4}, opt_cfg("adafactor", 0.3, clip=1.0)),
    ("gpt2-lopt1", "gpt2", "lopt1", {"n": 4, "r": 2}, opt_cfg("adafactor", 0.3, schedule="constant-warmup", warmup=2, clip=1.0)),
    ("gpt2-lopt2", "gpt2", "lopt2", {"n": 4, "r": 2}, opt_cfg("adafactor", 0.3, wd=1e-2, clip=0.2)),
    ("gpt2-dpt", "gpt2", "dpt", {"n": 4, "r": 2}, opt_cfg("adamw-torch", 0.3, **DPT_PIPE)),
    ("gpt2-dept", "gpt2", "dept", {"m": 3, "r": 2, "s": 32, "alpha": 8.0},
     opt_cfg("adamw-torch", 0.3, lr2=0.05, **DPT_PIPE)),
    ("gpt2-lora", "gpt2", "lora", {"r": 2, "alpha": 4.0}, opt_cfg("adamw-torch", 0.05, clip=0.05)),
    # eps 1e-6: the attention key biases (c_attn.bias[d:2d]) have a zero gradient in exact arithmetic (softmax is
    # shift-invariant); float32 leaves ~1e-8 of rounding there, which eps 1e-8 would turn into ±lr steps (eps 1e-6: ~1e-5).
    ("gpt2-ft", "gpt2-small-vocab", "ft", {}, opt_cfg("adamw-torch", 1e-3, wd=1e-2, eps=1e-5)),
]
# Seed offsets (initial tensors: seed = crc32(case) % 100000 + offset). With the plain seeds several cases were
# ill-conditioned (float32 and float64 trajectories drifting apart by up to 1e-3 relative in the loss, mostly the
# T5 + Adafactor ones: a normalised update without momentum amplifies rounding step by step); each case uses the
# offset in 0..19 whose float32/float64 spread was smallest (loss and final tensors) in a scan of this script.
SEED_OFFSET = {"t5-v10-pt": 1, "t5-v10-respt": 2, "t5-v10-dept": 4, "t5-v10-dpt": 1, "t5-v10-lopt1": 4,
               "t5-v10-lopt2": 13, "t5-v10-lora": 6, "t5-v10-probe": 6, "t5-v11-pt": 3, "t5-v11-lora": 6,
               "gpt2-pt": 6, "gpt2-lopt1": 7, "gpt2-lopt2": 1, "gpt2-dpt": 6, "gpt2-dept": 2, "gpt2-lora": 2}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="Tests/MethodTests/Resources/trajectories")
    ap.add_argument("--only", nargs="*", help="case names (default: all)")
    ap.add_argument("--allow-other-versions", action="store_true")
    ap.add_argument("--max-rel-loss", type=float, default=1e-5, help="refuse a case whose f32/f64 losses differ more (relative)")
    ap.add_argument("--max-rel-param", type=float, default=1e-4,
                    help="refuse a case whose final f32/f64 tensors differ more (max |diff| / max |f64 tensor|)")
    a = ap.parse_args()
    ver = versions()
    if ver != PINNED and not a.allow_other_versions:
        raise SystemExit(f"versions {ver} differ from the pinned {PINNED}; pass --allow-other-versions to proceed")
    torch.set_num_threads(1)  # deterministic reductions
    if not a.only and os.path.isdir(a.out):
        shutil.rmtree(a.out)
    os.makedirs(a.out, exist_ok=True)
    from safetensors.torch import save_file

    models = {}
    for cname, mname, *_ in CASES:
        if mname not in models and (not a.only or cname in a.only):
            models[mname] = build_model(mname)
            save_model(models[mname][0], mname, a.out)
    failures, report = [], []
    for cname, mname, method, mco, o in CASES:
        if a.only and cname not in a.only:
            continue
        model, arch = models[mname]
        mc = dict(DEFAULT_MC, method=method, **mco)
        if method == "lora":
            mc["targets"] = TARGETS[arch]
        mc = {k: mc[k] for k in ["method", "n", "r", "m", "s", "alpha", "dropout", "targets", "init"]}
        mc["alpha"] = float(mc["alpha"])
        small = mname.endswith("-small-vocab")
        batch, note = (t5_batch if arch == "t5" else gpt2_batch)(small)
        seed = zlib.crc32(cname.encode()) % 100_000 + SEED_OFFSET.get(cname, 0)
        init = initial_tensors(method, mc, model, arch, seed)
        note += (f" Initial tensors: seed {seed}, N(0, 0.5) (LayerNorm weight 1 + N(0, 0.1), biases N(0, 0.1))."
                 if method != "ft" else " Initial tensors: the model's own weights (models/%s)." % mname)
        if method == "lora":
            note += " LoRA by forward hooks: out += (alpha/r)·(x A^T) B^T on every module whose name ends in ." + "/.".join(mc["targets"]) + "."
        if o["kind"] == "adafactor":
            note += " Adafactor eps = eps1 1e-30 (eps2 1e-3 unused without scale_parameter), clip_threshold 1, decay_rate -0.8, beta1 None."
        if o["schedule"] != "constant" and o["warmup_steps"] > 0:
            note += " The schedule factor of the first update is 0 (t/W at t = 0): step 1 changes only the optimizer state."
        if method == "ft":
            note += " states.safetensors holds steps 1, 2, 11, 12 only."
        if method == "ft" and arch == "gpt2":
            note += (" The key biases c_attn.bias[8:16] have zero gradient in exact arithmetic (float32 leaves ~1e-9 "
                     "of rounding, float64 ~1e-17); eps 1e-5 keeps that noise from moving them by more than ~3e-6.")
        case = {"model": mname, "arch": arch, "method": method, "method_config": mc, "optimizer": o, "steps": STEPS,
                "batch": batch, "note": note,
                "generator": {"script": "scripts/make_trajectories.py", "torch": ver["torch"],
                              "transformers": ver["transformers"], "peft": ver["peft"]}}
        keep = (lambda t: t in (1, 2, STEPS - 1, STEPS)) if method == "ft" else (lambda t: True)
        l32, n32, st32, fin32 = train(case, model, init, batch, torch.float32, keep)
        l64, n64, st64, fin64 = train(case, model, init, batch, torch.float64, keep)

        # ---- sanity checks
        msgs = []
        if not all(map(math.isfinite, l32 + l64)):
            msgs.append("non-finite loss")
        if not l32[-1] < l32[0]:
            msgs.append(f"loss did not decrease ({l32[0]:.6g} -> {l32[-1]:.6g})")
        f = lr_factor(o)
        first = next(t for t in range(STEPS) if f(t) > 0) + 1  # first update with a non-zero lr
        prev = init if first == 1 else {k[len(f"step{first - 1}/"):]: v for k, v in st32.items()
                                         if k.startswith(f"step{first - 1}/") and "/opt." not in k}
        for k in fin32:
            if torch.equal(st32[f"step{first}/{k}"], prev[k]):
                msgs.append(f"{k} unchanged at step {first}")
        rel = max(abs(p - q) / abs(q) for p, q in zip(l32, l64))
        if rel > a.max_rel_loss:
            msgs.append(f"ill-conditioned: f32/f64 losses differ by {rel:.2e} relative")
        dl = max(abs(p - q) for p, q in zip(l32, l64))
        dt = max((fin32[k].double() - fin64[k]).abs().max().item() for k in fin32)
        dtr = max(((fin32[k].double() - fin64[k]).abs().max() / fin64[k].abs().max().clamp(min=1e-30)).item() for k in fin32)
        if dtr > a.max_rel_param:
            msgs.append(f"ill-conditioned: final f32/f64 tensors differ by {dtr:.2e} of their max")
        clipped = sum(1 for x in n32 if o["clip_norm"] is not None and x > o["clip_norm"])
        report.append(f"{cname:16s} {o['kind']:11s} loss {l32[0]:.6f} -> {l32[-1]:.6f}  max|dloss| {dl:.1e} "
                      f"(rel {rel:.1e})  max|dparam| {dt:.1e} (rel-to-max {dtr:.1e})  clipped {clipped}/{STEPS}")
        if msgs:
            failures.append(f"{cname}: " + "; ".join(msgs))

        d = os.path.join(a.out, cname)
        os.makedirs(d, exist_ok=True)
        save_file({k: v.float().contiguous() for k, v in init.items()}, os.path.join(d, "initial.safetensors"))
        states = dict(st32)
        for k, v in st64.items():
            if "/opt." not in k:
                states[k.replace("/", "_f64/", 1)] = v.float()
        save_file({k: v.contiguous() for k, v in states.items()}, os.path.join(d, "states.safetensors"))
        with open(os.path.join(d, "expected.json"), "w") as fh:
            json.dump({"losses": l32, "losses_f64": l64, "grad_norms": n32, "grad_norms_f64": n64}, fh)
        with open(os.path.join(d, "case.json"), "w") as fh:
            json.dump(case, fh, indent=1)
    print("\n".join(report))
    if failures:
        print("SANITY FAILURES:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print(f"all {len(report)} cases pass: finite, loss decreases, every trainable tensor changes at its first "
          f"non-zero-lr update, f32/f64 losses within {a.max_rel_loss:g} relative, final tensors within "
          f"{a.max_rel_param:g} of their max")


if __name__ == "__main__":
    main()
