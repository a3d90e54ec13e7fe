#!/usr/bin/env python3
"""Writes a parity case in the format of shared/parity/FORMAT.md from PyTorch + transformers.

Used to check PromptRepro on shapes other than the shared fixtures (uneven encoder/decoder depth,
other bucket settings, batch sizes, padding, with or without prompt). Needs torch + transformers
(`make bench-reference` creates such a venv). Example:

    python scripts/make_parity_case.py --arch t5 --variant v11 --enc-layers 1 --dec-layers 3 \
        --batch 3 --prompt 7 --seed 5 --out /tmp/case-a
"""
import argparse, copy, json, os
import torch
from safetensors.torch import save_file


def prepend_prompt(prompt, emb, am, dtype):
    """(embeddings, attention mask, prompt leaf) with the soft prompt prepended to every row; the
    leaf (whose .grad is the prompt gradient) is None without a prompt."""
    if prompt is None:
        return emb, am, None
    pr = prompt.clone().to(dtype).requires_grad_(True)
    b = emb.shape[0]
    emb = torch.cat([pr.unsqueeze(0).expand(b, -1, -1), emb], 1)
    am = torch.cat([torch.ones(b, prompt.shape[0], dtype=am.dtype), am], 1)
    return emb, am, pr


def check_conditioning(fp32, fp64):
    """Refuses a case whose float32 reference is not reproducible at the test's tolerances.

    The same model and inputs are run in float64; when float32 and float64 PyTorch disagree by more
    than half of a FORMAT.md tolerance (values 1e-4 + 1e-4·|x|, gradients 1e-4 + 1e-3·|x|), the
    expected numbers depend on rounding order (e.g. a ReLU input or a near-tie in a peaked softmax
    sitting within rounding of its switch point), and no other float32 implementation can be held
    to them. Pick another seed."""
    checks = [("loss", [fp32["loss"]], [fp64["loss"]], 1e-4, 1e-4),
              ("logits", fp32["logits"], fp64["logits"], 1e-4, 1e-4)]
    if fp32["encoder_last_hidden_state"] is not None:
        checks.append(("encoder_last_hidden_state", fp32["encoder_last_hidden_state"], fp64["encoder_last_hidden_state"], 1e-4, 1e-4))
    if fp32["prompt_grad"] is not None:
        checks.append(("prompt_grad", fp32["prompt_grad"], fp64["prompt_grad"], 1e-4, 1e-3))
    for n in fp32["weight_grads"]:
        checks.append((f"weight_grads[{n}]", fp32["weight_grads"][n], fp64["weight_grads"][n], 1e-4, 1e-3))
    for name, x32, x64, atol, rtol in checks:
        worst = max((abs(p - q) / (atol + rtol * abs(q)) for p, q in zip(x32, x64)), default=0)
        if worst > 0.5:
            raise SystemExit(f"ill-conditioned case: {name} differs between float32 and float64 PyTorch by "
                             f"{worst:.2f}× the tolerance; choose another --seed")


def reload(a, sd, cfg, cls):
    """The model as transformers reads the files this case writes (`sd`, `cfg`) back: saved to a
    scratch directory and loaded with from_pretrained (float32)."""
    import tempfile
    d = tempfile.mkdtemp()
    save_file(sd, os.path.join(d, "model.safetensors"))
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)
    return cls.from_pretrained(d, dtype=torch.float32).eval()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", choices=["t5", "gpt2"], required=True)
    ap.add_argument("--variant", choices=["v10", "v11"], default="v10")
    ap.add_argument("--ffn", default=None, help="override feed_forward_proj (e.g. gelu, gated-relu)")
    ap.add_argument("--vocab", type=int, default=257)
    ap.add_argument("--d", type=int, default=40)
    ap.add_argument("--heads", type=int, default=5)
    ap.add_argument("--dkv", type=int, default=6)
    ap.add_argument("--dff", type=int, default=72)
    ap.add_argument("--enc-layers", type=int, default=2)
    ap.add_argument("--dec-layers", type=int, default=3)
    ap.add_argument("--buckets", type=int, default=16)
    ap.add_argument("--max-distance", type=int, default=20)
    ap.add_argument("--batch", type=int, default=3)
    ap.add_argument("--min-len", type=int, default=5)
    ap.add_argument("--max-len", type=int, default=33)
    ap.add_argument("--label-len", type=int, default=5)
    ap.add_argument("--prompt", type=int, default=0)
    ap.add_argument("--generate", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eps", type=float, default=None, help="layer_norm_epsilon (default 1e-6 T5, 1e-5 GPT-2)")
    ap.add_argument("--untied-head", action="store_true", help="GPT-2: tie_word_embeddings false and its own lm_head.weight")
    ap.add_argument("--inverse-layer-scale", action="store_true", help="GPT-2: scale_attn_by_inverse_layer_idx true")
    ap.add_argument("--no-attn-scale", action="store_true", help="GPT-2: scale_attn_weights false")
    ap.add_argument("--activation", default="gelu_new", help="GPT-2 activation_function")
    ap.add_argument("--unprefixed", action="store_true", help="GPT-2: save tensor names without 'transformer.' (Hub gpt2 layout)")
    ap.add_argument("--model-type", choices=["t5", "mt5"], default="t5", help="T5: model_type of the config (mt5: MT5ForConditionalGeneration)")
    ap.add_argument("--store-head", choices=["default", "differs", "none"], default="default",
                    help="lm_head.weight in the file: default (stored exactly when the config unties it), differs (stored, "
                         "other values than the embedding, whatever the config says), none (not stored). Other than default, "
                         "and with --model-type mt5, the expected numbers come from the saved directory loaded back with "
                         "from_pretrained, i.e. from transformers' own reading of the head")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    g = torch.Generator().manual_seed(a.seed + 1)
    os.makedirs(os.path.join(a.out, "model"), exist_ok=True)
    lens = torch.randint(a.min_len, a.max_len + 1, (a.batch,), generator=g).tolist()
    L = max(lens)
    mask = [[1] * n + [0] * (L - n) for n in lens]
    prompt = torch.randn(a.prompt, a.d, generator=g) * 0.5 if a.prompt else None

    if a.arch == "t5":
        from transformers import T5Config, T5ForConditionalGeneration
        cfg = dict(vocab_size=a.vocab, d_model=a.d, d_kv=a.dkv, d_ff=a.dff, num_layers=a.enc_layers,
                   num_decoder_layers=a.dec_layers, num_heads=a.heads, relative_attention_num_buckets=a.buckets,
                   relative_attention_max_distance=a.max_distance, dropout_rate=0.1, layer_norm_epsilon=a.eps or 1e-6,
                   feed_forward_proj=a.ffn or ("relu" if a.variant == "v10" else "gated-gelu"),
                   tie_word_embeddings=a.variant == "v10", decoder_start_token_id=0, eos_token_id=1, pad_token_id=0,
                   model_type=a.model_type)
        if a.model_type == "mt5":
            from transformers import MT5Config as T5Config, MT5ForConditionalGeneration as T5ForConditionalGeneration
        model = T5ForConditionalGeneration(T5Config(**cfg)).eval()
        if a.variant == "v11" or a.store_head == "differs":  # transformers 5 ties a fresh head to `shared`; make it its own tensor
            model.lm_head.weight = torch.nn.Parameter(model.shared.weight.detach().clone())
        with torch.no_grad():
            for p in model.parameters():
                p.normal_(0, 0.3 if p.dim() > 1 else 0.1).add_(1.0 if p.dim() == 1 else 0.0)
        ids = [[int(x) for x in torch.randint(3, a.vocab, (n - 1,), generator=g)] + [1] + [0] * (L - n) for n in lens]
        tl = torch.randint(1, a.label_len + 1, (a.batch,), generator=g).tolist()
        labels = [[int(x) for x in torch.randint(3, a.vocab, (n,), generator=g)] + [-100] * (a.label_len - n) for n in tl]
        stores_head = a.store_head == "differs" or (a.store_head == "default" and a.variant == "v11")
        sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()
              if k not in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight") and not (not stores_head and k == "lm_head.weight")}
        if a.store_head != "default" or a.model_type == "mt5":  # transformers' own reading of the saved head
            model = reload(a, sd, cfg, T5ForConditionalGeneration)
        grads = ["shared.weight", "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                 f"decoder.block.{a.dec_layers - 1}.layer.1.EncDecAttention.k.weight"]
        def forward_backward(model, dtype):
            model = model.to(dtype)
            emb, am, pr = prepend_prompt(prompt, model.shared(torch.tensor(ids)), torch.tensor(mask), dtype)
            out = model(inputs_embeds=emb, attention_mask=am, labels=torch.tensor(labels))
            out.loss.backward()
            named = dict(model.named_parameters())
            return {"loss": out.loss.item(), "logits_shape": list(out.logits.shape),
                    "logits": out.logits.detach().flatten().tolist(),
                    "encoder_last_hidden_state": out.encoder_last_hidden_state.detach().flatten().tolist(),
                    "prompt_grad": pr.grad.flatten().tolist() if pr is not None else None,
                    "weight_grads": {n: named[n].grad.flatten().tolist() for n in grads}}
        exp = forward_backward(copy.deepcopy(model), torch.float32)
        check_conditioning(exp, forward_backward(copy.deepcopy(model), torch.float64))
        with torch.no_grad():
            emb2 = model.shared(torch.tensor(ids))
            am2 = torch.tensor(mask)
            if prompt is not None:
                emb2 = torch.cat([prompt.unsqueeze(0).expand(a.batch, -1, -1), emb2], 1)
                am2 = torch.cat([torch.ones(a.batch, a.prompt, dtype=am2.dtype), am2], 1)
            # Greedy decode of FORMAT §3.5 without a KV cache (transformers 5's generate mis-sizes
            # its cache when encoder and decoder depths differ).
            enc = model.encoder(inputs_embeds=emb2, attention_mask=am2).last_hidden_state
            rows = torch.zeros(a.batch, 1, dtype=torch.long)
            done = torch.zeros(a.batch, dtype=torch.bool)
            for _ in range(a.generate):
                lg = model(encoder_outputs=(enc,), attention_mask=am2, decoder_input_ids=rows, use_cache=False).logits[:, -1]
                nxt = torch.where(done, torch.zeros_like(done, dtype=torch.long), lg.argmax(-1))
                rows = torch.cat([rows, nxt[:, None]], 1)
                done |= nxt == 1
                if bool(done.all()):
                    break
        exp["generated_ids"] = rows.tolist()
        case = {"arch": "t5", "input_ids": ids, "attention_mask": mask, "labels": labels,
                "prompt": prompt.tolist() if prompt is not None else None,
                "generate": {"max_new_tokens": a.generate}, "weight_grads": grads}
    else:
        from transformers import GPT2Config, GPT2LMHeadModel
        cfg = dict(vocab_size=a.vocab, n_embd=a.d, n_layer=a.enc_layers, n_head=a.heads, n_positions=128,
                   layer_norm_epsilon=a.eps or 1e-5, activation_function=a.activation, model_type="gpt2",
                   tie_word_embeddings=not a.untied_head, scale_attn_by_inverse_layer_idx=a.inverse_layer_scale,
                   scale_attn_weights=not a.no_attn_scale)
        model = GPT2LMHeadModel(GPT2Config(**cfg)).eval()
        if a.untied_head or a.store_head == "differs":  # its own head tensor, not an alias of wte
            model.lm_head.weight = torch.nn.Parameter(model.transformer.wte.weight.detach().clone())
        with torch.no_grad():
            for n, p in model.named_parameters():
                p.normal_(0, 0.2)
        ids = [[int(x) for x in torch.randint(0, a.vocab - 1, (n,), generator=g)] + [a.vocab - 1] * (L - n) for n in lens]
        labels = [[t if m else -100 for t, m in zip(r, mr)] for r, mr in zip(ids, mask)]
        sd = {("transformer." + k if not k.startswith("transformer.") else k): v.contiguous()
              for k, v in model.state_dict().items() if k != "lm_head.weight" and not k.endswith((".attn.bias", ".attn.masked_bias"))}
        if a.unprefixed:
            sd = {k[len("transformer."):]: v for k, v in sd.items()}
        if (a.untied_head and a.store_head != "none") or a.store_head == "differs":
            sd["lm_head.weight"] = model.lm_head.weight.detach().clone().contiguous()
        if a.store_head != "default":  # transformers' own reading of the saved head
            model = reload(a, sd, cfg, GPT2LMHeadModel)
        grads = ["transformer.wte.weight", "transformer.wpe.weight", f"transformer.h.{a.enc_layers - 1}.mlp.c_proj.weight"]
        if a.untied_head or a.store_head == "differs":
            grads.append("lm_head.weight")
        def forward_backward(model, dtype):
            model = model.to(dtype)
            emb, am, pr = prepend_prompt(prompt, model.transformer.wte(torch.tensor(ids)), torch.tensor(mask), dtype)
            lab = torch.tensor(labels)
            if prompt is not None:
                lab = torch.cat([torch.full((a.batch, a.prompt), -100), lab], 1)
            out = model(inputs_embeds=emb, attention_mask=am, labels=lab)
            out.loss.backward()
            named = {("transformer." + k if not k.startswith("transformer.") and k != "lm_head.weight" else k): p for k, p in model.named_parameters()}
            n = a.prompt
            return {"loss": out.loss.item(), "logits_shape": [a.batch, L, a.vocab],
                    "logits": out.logits[:, n:].detach().flatten().tolist(), "encoder_last_hidden_state": None,
                    "prompt_grad": pr.grad.flatten().tolist() if pr is not None else None,
                    "weight_grads": {k: named[k].grad.flatten().tolist() for k in grads}, "generated_ids": None}
        exp = forward_backward(copy.deepcopy(model), torch.float32)
        check_conditioning(exp, forward_backward(copy.deepcopy(model), torch.float64))
        case = {"arch": "gpt2", "input_ids": ids, "attention_mask": mask, "labels": labels,
                "prompt": prompt.tolist() if prompt is not None else None, "generate": None, "weight_grads": grads}
    save_file(sd, os.path.join(a.out, "model", "model.safetensors"))
    with open(os.path.join(a.out, "model", "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    with open(os.path.join(a.out, "case.json"), "w") as f:
        json.dump(case, f)
    import sys, transformers
    exp["info"] = {"generator": "scripts/make_parity_case.py", "args": vars(a),
                   "versions": {"torch": torch.__version__.split("+")[0], "transformers": transformers.__version__,
                                "python": sys.version.split()[0]}}
    with open(os.path.join(a.out, "expected.json"), "w") as f:
        json.dump(exp, f)


if __name__ == "__main__":
    main()
