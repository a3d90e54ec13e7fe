#!/usr/bin/env python3
"""PyTorch + transformers reference for `make bench`: the same workloads and shapes as
`promptrepro bench-one` (random-init T5 of the named architecture, CPU, fixed thread count).

  train     prompt-tuning step, batch 8, encoder 256 tokens + 100 prompt rows, target 3 tokens,
            dropout 0.1 (model.train()), backbone frozen, torch AdamW on the prompt
  eval      teacher-forced forward, batch 32, dropout off, no grad
  generate  greedy decoding of 3 new tokens, batch 32
  ft        full fine-tuning step, batch 8, 256 tokens, AdamW on every weight

AdamW is torch's fused CPU kernel (`fused=True`, what transformers' Trainer picks by default for
torch >= 2.8: `adamw_torch_fused`); the per-tensor loop torch.optim.AdamW runs by default took
0.20-0.24 s of a t5-small FT step against 0.03 s fused (1 thread, 2026-12-07), time a careful user
does not spend. T5 runs its attention through torch's SDPA (transformers' default
`attn_implementation` for T5, recorded as "attn_implementation").

PyPI's Linux wheel of torch is built with CUDA, and importing it maps CUDA and Triton libraries
even on a host without a GPU: their resident pages (165-232 MB of the process's 712 MB after
`import torch, transformers`) count in PyTorch's peak RSS. Each child records them as
"cuda_libs_rss_mb" (the Rss of those mappings in /proc/self/smaps when it ends), so a ratio
against a CPU-only build can be read off as well (docs/performance.md, "Memory").

Each workload runs in a fresh process (`--child`) so its peak RSS is its own; timings are the
median of --repeats runs after one warm-up. Prints one JSON object on stdout: per shape and workload,
plus "gemm": raw torch linear GFLOP/s on the core sgemm shapes of `promptrepro bench` (with
`--child gemm - --attention`, also torch.matmul's on the per-head attention products).
"""
import argparse, json, resource, statistics, subprocess, sys, time


def child(shape, workload, repeats, threads, seq, prompt_len):
    import torch
    from transformers import T5Config, T5ForConditionalGeneration
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    sizes = {"t5-small": dict(d_model=512, d_ff=2048, num_heads=8, num_layers=6),
             "t5-base": dict(d_model=768, d_ff=3072, num_heads=12, num_layers=12),
             "t5-large": dict(d_model=1024, d_ff=4096, num_heads=16, num_layers=24)}[shape]
    cfg = T5Config(vocab_size=32128, d_kv=64, feed_forward_proj="relu", tie_word_embeddings=True, dropout_rate=0.1,
                   decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, **sizes)
    model = T5ForConditionalGeneration(cfg)
    b = 32 if workload in ("eval", "generate") else 8
    ids = torch.randint(3, 31000, (b, seq)); ids[:, -1] = 1
    mask = torch.ones(b, seq, dtype=torch.long)
    labels = torch.randint(3, 31000, (b, 3)); labels[:, -1] = 1
    prompt = torch.nn.Parameter(torch.randn(prompt_len, cfg.d_model) * 0.5)
    pmask = torch.cat([torch.ones(b, prompt_len, dtype=torch.long), mask], 1)

    if workload == "ft":
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-5, fused=True)
    else:
        for p in model.parameters():
            p.requires_grad_(False)
        opt = torch.optim.AdamW([prompt], lr=0.3, weight_decay=1e-5, fused=True)

    def embeds():
        e = model.shared(ids)
        return torch.cat([prompt.unsqueeze(0).expand(b, -1, -1), e], 1)

    def once():
        if workload == "train":
            model.train()
            loss = model(inputs_embeds=embeds(), attention_mask=pmask, labels=labels).loss
            loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
        elif workload == "ft":
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
        elif workload == "eval":
            model.eval()
            with torch.no_grad():
                model(inputs_embeds=embeds(), attention_mask=pmask, labels=labels)
        else:
            model.eval()
            with torch.no_grad():
                model.generate(inputs_embeds=embeds(), attention_mask=pmask, max_new_tokens=3, do_sample=False, num_beams=1)

    once()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter(); once(); times.append(time.perf_counter() - t0)
    rss = peak_rss_mb()
    print(json.dumps({"shape": shape, "workload": workload, "batch": b, "seconds_median": statistics.median(times),
                      "seconds_all": times, "peak_rss_mb": rss, "threads": threads, "cuda_libs_rss_mb": cuda_libs_rss_mb(),
                      "attn_implementation": getattr(model.config, "_attn_implementation", None), "adamw": "fused",
                      "torch": torch.__version__, "transformers": __import__("transformers").__version__}))


def peak_rss_mb():
    """This process's peak resident set, MB: VmHWM of /proc/self/status, as PromptRepro's side reads it.
    getrusage's ru_maxrss carries the spawning process's peak across exec on Linux (the bench parent's
    memory was a floor under both sides); ru_maxrss only where /proc is absent."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cuda_libs_rss_mb():
    """Resident MB of the CUDA and Triton shared libraries this process maps (PyPI's torch wheel
    loads them on import, GPU or not): the Rss of every /proc/self/smaps mapping whose file is one
    of them. None where /proc is absent."""
    marks = ("libcu", "libnv", "libtorch_cuda", "libc10_cuda", "libtriton", "libcudnn", "libnccl", "cusparse", "cufft", "curand",
             "cusolver", "cublas")
    total, path = 0, ""
    try:
        with open("/proc/self/smaps") as f:
            for line in f:
                head = line.split()
                if head and "-" in head[0] and len(head) >= 5:  # a mapping's header line: address perms offset dev inode [path]
                    path = head[5] if len(head) >= 6 else ""
                elif line.startswith("Rss:") and any(m in path.rsplit("/", 1)[-1] for m in marks):
                    total += int(head[1])
    except OSError:
        return None
    return total / 1024


def gemm(repeats, threads, attention=False):
    """Raw torch.nn.functional.linear GFLOP/s on the core sgemm shapes of `promptrepro bench`; with
    `attention`, also torch.matmul's on the per-head attention products (key "attention"): the
    products T5's eager attention forms (transformers' T5 runs SDPA by default, which calls its own
    kernels; these rates are torch's GEMM at those shapes): batch 8 x 8 heads over 356 positions, head width 64,
    Q/K/V/dO the [8, 356, 512] projections viewed as [8, 8, 356, 64] (view + transpose, no copy),
    P [8, 8, 356, 356]; the backward's P^T . dO as autograd's matmul backward forms it."""
    import torch
    torch.set_num_threads(threads)
    out = {}

    def rate(flops, f, warmup=1, least=1):
        for _ in range(warmup):
            f()
        times = []
        for _ in range(max(repeats, least)):
            t0 = time.perf_counter(); f(); times.append(time.perf_counter() - t0)
        return {"gflops": round(flops / statistics.median(times) / 1e9, 3)}  # 0.001: verdicts recompute from it

    # 3 warm-up calls in this fresh process (ours and OpenBLAS's run warm in the parent): a slow
    # first call must not lower the reference rate, and with it every goal judged against it.
    for m, k, n in [(2048, 2048, 2048), (2848, 512, 2048), (2848, 2048, 512)]:
        a, w = torch.randn(m, k), torch.randn(n, k)
        out[f"{m}x{k}x{n}"] = rate(2 * m * n * k, lambda: torch.nn.functional.linear(a, w), 3)
    if attention:
        b, h, t, d = 8, 8, 356, 64
        heads = lambda: torch.randn(b, t, h * d).view(b, t, h, d).transpose(1, 2)
        q, k_, v, do = heads(), heads(), heads(), heads()
        p = torch.rand(b, h, t, t)
        scores, values = torch.empty(b, h, t, t), torch.empty(b, h, t, d)
        flops = 2 * b * h * t * t * d
        # Into preallocated outputs (out=), after 5 warm-up calls: the product alone, as ours is timed
        # (the first calls of a fresh process ran at a third of the steady rate on AMD Zen 1).
        out["attention"] = {
            "356x356x64": rate(flops, lambda: torch.matmul(q, k_.transpose(3, 2), out=scores), 5, 5),
            "356x64x356:nn": rate(flops, lambda: torch.matmul(p, v, out=values), 5, 5),
            "356x64x356:tn": rate(flops, lambda: torch.matmul(p.transpose(-1, -2), do, out=values), 5, 5),
        }
    print(json.dumps(out))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="t5-small,t5-base")
    ap.add_argument("--workloads", default="train,eval,generate,ft")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--prompt", type=int, default=100)
    ap.add_argument("--child", nargs=2)
    ap.add_argument("--attention", action="store_true", help="with --child gemm: also the per-head attention products")
    a = ap.parse_args()
    if a.child:
        if a.child[0] == "gemm":
            gemm(a.repeats, a.threads, a.attention)
        else:
            child(a.child[0], a.child[1], a.repeats, a.threads, a.seq, a.prompt)
        return
    out = {}
    r = subprocess.run([sys.executable, __file__, "--child", "gemm", "-", "--repeats", str(a.repeats), "--threads", str(a.threads)],
                       capture_output=True, text=True)
    if r.returncode == 0:
        out["gemm"] = json.loads(r.stdout.strip().splitlines()[-1])
    for shape in a.shapes.split(","):
        out[shape] = {}
        for w in a.workloads.split(","):
            r = subprocess.run([sys.executable, __file__, "--child", shape, w, "--repeats", str(a.repeats), "--threads", str(a.threads),
                                "--seq", str(a.seq), "--prompt", str(a.prompt)], capture_output=True, text=True)
            if r.returncode != 0:
                out[shape][w] = {"error": r.stderr[-2000:]}
                continue
            out[shape][w] = json.loads(r.stdout.strip().splitlines()[-1])
            print(f"pytorch {shape} {w}: {out[shape][w]['seconds_median']:.3f} s", file=sys.stderr)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
