#!/usr/bin/env python3
"""PyTorch CPU reference for bench/optim_bench.ts: optimizer steps over GPT-2-shaped parameters
(token and position embeddings, per block two LayerNorms, c_attn, attn c_proj, c_fc, mlp c_proj
with biases, a final LayerNorm) with fixed random gradients. Driven over stdin/stdout so the
TypeScript side can interleave denograd and PyTorch steps in one run:

  stdin  "setup <kind>\\n" -> {"ok": true, "params": <n>}
         fresh optimizers of that kind, a for-loop one (foreach=False) and a foreach=True one;
         kinds: sgd (momentum 0.9), adam, adamw (betas 0.9/0.95, wd 0.1 on matrices),
                muon (MuonReference on the blocks' matrices + AdamW on the rest, AdamW's
                foreach as given)
  stdin  "step <loop|foreach>\\n"  -> {"ms": <that optimizer's step() milliseconds>}
  stdin  "quit\\n"  -> exit
  on start         -> {"ready": true, "torch": <version>, "threads": <n>}

Usage: optim_torch_reference.py VOCAB CONTEXT C LAYERS THREADS
"""

import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "fixtures"))
from make_optim2_fixture import MuonReference  # noqa: E402  (the reference the tests check)


def gpt2_params(vocab, context, c, layers):
    """(name, tensor) in GPT2.namedParameters() order."""
    shapes = [("wte.weight", (vocab, c)), ("wpe.weight", (context, c))]
    for i in range(layers):
        p = f"h.{i}."
        shapes += [(p + "ln_1.weight", (c,)), (p + "ln_1.bias", (c,)),
                   (p + "attn.c_attn.weight", (3 * c, c)), (p + "attn.c_attn.bias", (3 * c,)),
                   (p + "attn.c_proj.weight", (c, c)), (p + "attn.c_proj.bias", (c,)),
                   (p + "ln_2.weight", (c,)), (p + "ln_2.bias", (c,)),
                   (p + "mlp.c_fc.weight", (4 * c, c)), (p + "mlp.c_fc.bias", (4 * c,)),
                   (p + "mlp.c_proj.weight", (c, 4 * c)), (p + "mlp.c_proj.bias", (c,))]
    shapes += [("ln_f.weight", (c,)), ("ln_f.bias", (c,))]
    out = []
    for name, shape in shapes:
        t = (torch.randn(shape) * 0.02).requires_grad_()
        t.grad = torch.randn(shape) * 1e-3
        out.append((name, t))
    return out


def make_optimizer(kind, foreach, named):
    params = [p for _, p in named]
    matrices = [p for _, p in named if p.ndim >= 2]
    vectors = [p for _, p in named if p.ndim < 2]
    adamw_groups = [{"params": matrices, "weight_decay": 0.1},
                    {"params": vectors, "weight_decay": 0.0}]
    if kind == "sgd":
        return [torch.optim.SGD(params, lr=0.01, momentum=0.9, foreach=foreach)]
    if kind == "adam":
        return [torch.optim.Adam(params, lr=1e-3, foreach=foreach)]
    if kind == "adamw":
        return [torch.optim.AdamW(adamw_groups, lr=6e-4, betas=(0.9, 0.95), foreach=foreach)]
    if kind == "muon":
        hidden = [p for n, p in named if p.ndim == 2 and n.startswith("h.")]
        rest = [p for n, p in named if p.ndim == 2 and not n.startswith("h.")]
        return [MuonReference(hidden, lr=0.02, momentum=0.95),
                torch.optim.AdamW([{"params": rest, "weight_decay": 0.1},
                                   {"params": vectors, "weight_decay": 0.0}],
                                  lr=6e-4, betas=(0.9, 0.95), foreach=foreach)]
    raise ValueError(f"unknown optimizer {kind!r}")


def main() -> None:
    vocab, context, c, layers, threads = (int(a) for a in sys.argv[1:6])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    named = gpt2_params(vocab, context, c, layers)
    optimizers = {}
    print(json.dumps({"ready": True, "torch": torch.__version__,
                      "threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        try:
            if cmd[0] == "setup":
                optimizers = {"loop": make_optimizer(cmd[1], False, named),
                              "foreach": make_optimizer(cmd[1], True, named)}
                print(json.dumps({"ok": True, "params": sum(p.numel() for _, p in named)}),
                      flush=True)
            elif cmd[0] == "step":
                t0 = time.perf_counter()
                for opt in optimizers[cmd[1]]:
                    opt.step()
                print(json.dumps({"ms": (time.perf_counter() - t0) * 1e3}), flush=True)
            else:
                print(json.dumps({"error": f"unknown command {line.strip()!r}"}), flush=True)
        except Exception as e:  # reported to the TypeScript side, which stops
            print(json.dumps({"error": repr(e)}), flush=True)


if __name__ == "__main__":
    main()
