#!/usr/bin/env python3
"""PyTorch + transformers side of `make bench-e2e`: one complete few-shot DPT run written the way
the DPT code (XYaoooo/DPT, main_ddp.py + loader.py) does it, timed end to end.

  task      CB, k = 32 rows of Baselines/manifests/cb-k32-s1.json (indices into superglue/cb/train.jsonl)
  template  source "premise: {premise} hypothesis: {hypothesis}", target "{label_index}" (the dpt
            template set of Sources/Tasks/Registry/cb.yaml, as PromptRepro's side uses it)
  model     --model DIR: from_pretrained(DIR) (what `bench-e2e` passes: the random-init t5-small
            checkpoint its own side loads, so both sides run the same weights, loaded from a file as
            the DPT code loads t5); without it, random-init t5-small from its config (d_model 512,
            6 layers, 8 heads, d_ff 2048, vocab 32128; torch.manual_seed(--seed)); frozen;
            DPT prefix P = A @ B (A: n x r, B: r x d,
            both uniform(-0.5, 0.5)) prepended to the input embeddings, mask extended by n ones
  train     AdamW lr 0.3 wd 1e-5 (torch), linear schedule with warmup int(0.1 * total steps),
            clip_grad_norm_ 1.0, batch 16, DataLoader shuffle with a seeded generator, model.train()
            (dropout 0.1 on)
  eval      after every epoch on all 56 CB validation rows, eval batch 128, model.eval(),
            greedy generate(max_length=128, num_beams=1), batch_decode(skip_special_tokens) + strip,
            accuracy against the label index

Variants (--variant):
  dpt-code  the DPT code's padding: every source padded to max_source_length 256, every target to
            max_target_length 128 (pad -> -100), so the decoder runs 128 positions in training
  dynamic   the fastest careful PyTorch: sources and targets padded to the batch's longest

Prints one JSON line: wall seconds of the whole run (from before the model is built to the last
evaluation; interpreter start and imports are reported separately), per-epoch train/eval seconds,
losses, accuracies, decode_row_steps (batch rows x new tokens of every generate: the decoding work,
which bench-e2e sets beside PromptRepro's count) and train_positions (source, prompt and target
positions of the training batches, padding included), whether the versions are the pinned ones,
and the versions (torch, transformers, python). A checkpoint that does not load every weight as
stored (missing, unexpected or mismatched keys) is refused (exit status 1).
"""
import argparse, json, os, platform, sys, time

T0 = time.perf_counter()
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration, get_scheduler  # noqa: E402

PINNED = {"torch": "2.15.0", "transformers": "5.24.0"}
LABELS = ["entailment", "contradiction", "neutral"]


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def examples(rows):
    return [(f"premise: {r['premise']} hypothesis: {r['hypothesis']}", str(LABELS.index(r["label"]))) for r in rows]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", choices=["dpt-code", "dynamic"], default="dpt-code")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data-dir", required=True, help="directory holding superglue/cb/{train,val}.jsonl")
    ap.add_argument("--manifest", required=True, help="Baselines/manifests/cb-k32-s1.json")
    ap.add_argument("--tokenizer", required=True, help="directory with the t5 tokenizer files")
    ap.add_argument("--model", default=None, help="a t5-small checkpoint directory to load (default: random init from the config)")
    ap.add_argument("--decode-max-length", type=int, default=128, help="generate(max_length=...) (DPT: max_target_length)")
    a = ap.parse_args()
    imports_s = time.perf_counter() - T0

    torch.set_num_threads(a.threads)
    versions_pinned = True
    for name, want in PINNED.items():
        got = getattr(sys.modules[name], "__version__")
        if not got.startswith(want):
            versions_pinned = False
            print(f"warning: {name} {got}, bench pins {want} (make bench-reference)", file=sys.stderr)

    t_start = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(a.tokenizer)
    with open(a.manifest) as f:
        manifest = json.load(f)
    train_rows = read_jsonl(os.path.join(a.data_dir, "superglue/cb/train.jsonl"))
    if len(train_rows) != manifest["train_rows"]:
        sys.exit(f"{a.manifest}: expects {manifest['train_rows']} training rows, the data has {len(train_rows)}")
    train = examples([train_rows[i] for i in manifest["indices"]])
    val = examples(read_jsonl(os.path.join(a.data_dir, "superglue/cb/val.jsonl")))

    torch.manual_seed(a.seed)
    if a.model:
        model, info = T5ForConditionalGeneration.from_pretrained(a.model, dtype=torch.float32, output_loading_info=True)
        cfg = model.config
        # A weight the checkpoint lacks would be initialised at random without a word (the two
        # sides would not run the same model): refuse instead.
        bad = {k: v for k, v in info.items() if v}
        if bad:
            sys.exit(f"{a.model}: from_pretrained did not load every weight as stored: {bad}")
    else:
        cfg = T5Config(vocab_size=32128, d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_heads=8,
                       feed_forward_proj="relu", tie_word_embeddings=True, dropout_rate=0.1,
                       decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
        model = T5ForConditionalGeneration(cfg)
    for p in model.parameters():
        p.requires_grad_(False)
    n, r, d = 100, 10, cfg.d_model
    A = torch.nn.Parameter(torch.empty(n, r).uniform_(-0.5, 0.5))  # prefix_first
    B = torch.nn.Parameter(torch.empty(r, d).uniform_(-0.5, 0.5))  # prefix_second

    dynamic = a.variant == "dynamic"

    def encode(batch, with_targets=True):
        src = tok([s for s, _ in batch], max_length=256, truncation=True, return_tensors="pt",
                  padding="longest" if dynamic else "max_length")
        out = {"ids": src.input_ids, "mask": src.attention_mask}
        if with_targets:
            tgt = tok([t for _, t in batch], max_length=128, truncation=True, return_tensors="pt",
                      padding="longest" if dynamic else "max_length").input_ids
            tgt[tgt == tok.pad_token_id] = -100
            out["labels"] = tgt
        return out

    def prompted(ids, mask):
        P = (A @ B).unsqueeze(0).expand(ids.shape[0], -1, -1)                # (B, n, d)
        embeds = torch.cat([P, model.shared(ids)], 1)                          # (B, n + L, d)
        return embeds, torch.cat([torch.ones(ids.shape[0], n, dtype=mask.dtype), mask], 1)

    # DPT: DataLoader(shuffle=True, generator=g) over a Dataset that tokenizes per item.
    g = torch.Generator()
    g.manual_seed(a.seed)
    loader = torch.utils.data.DataLoader(list(range(len(train))), batch_size=16, shuffle=True, generator=g)
    opt = torch.optim.AdamW([A, B], lr=0.3, weight_decay=1e-5)
    total = a.epochs * len(loader)
    sched = get_scheduler("linear", optimizer=opt, num_warmup_steps=int(0.1 * total), num_training_steps=total)

    epochs = []
    for epoch in range(1, a.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        losses = []
        train_positions = 0  # encoder + decoder positions the training batches ran (padding included)
        for idx in loader:
            b = encode([train[i] for i in idx.tolist()])
            train_positions += b["ids"].numel() + n * b["ids"].shape[0] + b["labels"].numel()
            embeds, mask = prompted(b["ids"], b["mask"])
            loss = model(inputs_embeds=embeds, attention_mask=mask, labels=b["labels"]).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_([A, B], 1.0)
            opt.step(); sched.step(); opt.zero_grad()
            losses.append(loss.item())
        t1 = time.perf_counter()
        model.eval()
        preds = []
        row_steps = 0  # rows x new tokens of every generate: the rows each decoding step computed
        with torch.no_grad():
            for i in range(0, len(val), 128):
                b = encode(val[i:i + 128], with_targets=False)
                embeds, mask = prompted(b["ids"], b["mask"])
                out = model.generate(inputs_embeds=embeds, attention_mask=mask, max_length=a.decode_max_length,
                                     num_beams=1, do_sample=False)
                row_steps += out.shape[0] * (out.shape[1] - 1)  # out holds the start token too
                preds += [p.strip() for p in tok.batch_decode(out, skip_special_tokens=True)]
        t2 = time.perf_counter()
        acc = 100 * sum(p == t for p, (_, t) in zip(preds, val)) / len(val)
        epochs.append({"epoch": epoch, "losses": losses, "train_seconds": t1 - t0, "eval_seconds": t2 - t1,
                       "accuracy": acc, "decoded_tokens_max": int(out.shape[1]), "decode_row_steps": int(row_steps),
                       "train_positions": int(train_positions)})
        print(f"{a.variant} epoch {epoch} loss {sum(losses) / len(losses):.4f} acc {acc:.2f} "
              f"train {t1 - t0:.1f}s eval {t2 - t1:.1f}s", file=sys.stderr)
    run_s = time.perf_counter() - t_start
    print(json.dumps({"variant": a.variant, "epochs": a.epochs, "threads": a.threads, "seconds": run_s,
                      "imports_seconds": imports_s, "history": epochs, "versions_pinned": versions_pinned,
                      "decode": f"generate(max_length={a.decode_max_length}, num_beams=1): up to {a.decode_max_length - 1} new tokens "
                                "per row (max_length counts the start token), every row of the batch computed until all have "
                                "emitted </s>",
                      "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                                   "python": platform.python_version(), "pinned": PINNED}}))


if __name__ == "__main__":
    main()
