#!/usr/bin/env python3
"""Reference trajectories for the optimizer unit tests (torch.optim.AdamW and transformers'
Adafactor); transformers 5 no longer ships its AdamW, whose update the test works out by hand.
Prints p after each of 3 steps for fixed gradients."""
import torch
from transformers.optimization import Adafactor

def run(make, p0, grads):
    p = torch.nn.Parameter(torch.tensor(p0, dtype=torch.float32))
    opt = make([p])
    out = []
    for g in grads:
        p.grad = torch.tensor(g, dtype=torch.float32)
        opt.step()
        out.append(p.detach().flatten().tolist())
    return out

p0 = [[0.5, -1.0, 2.0], [0.25, 0.0, -0.75]]
grads = [[[0.1, -0.2, 0.3], [0.4, -0.5, 0.6]], [[-0.3, 0.1, 0.0], [0.2, 0.2, -0.1]], [[0.05, 0.5, -0.4], [-0.6, 0.3, 0.2]]]
print("adamw_torch", run(lambda ps: torch.optim.AdamW(ps, lr=0.3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-5), p0, grads))
print("adafactor_2d", run(lambda ps: Adafactor(ps, lr=0.3, relative_step=False, scale_parameter=False, warmup_init=False), p0, grads))
print("adafactor_1d", run(lambda ps: Adafactor(ps, lr=0.3, relative_step=False, scale_parameter=False, warmup_init=False), p0[0], [g[0] for g in grads]))
print("adafactor_wd", run(lambda ps: Adafactor(ps, lr=0.3, relative_step=False, scale_parameter=False, warmup_init=False, weight_decay=1e-2), p0, grads))
