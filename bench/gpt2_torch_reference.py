#!/usr/bin/env python3
"""PyTorch CPU reference for bench/gpt2_bench.ts: GPT-2 (nanoGPT-style, tied head, tanh GELU,
pre-LayerNorm) and one AdamW training step on a fixed random batch. Driven over stdin/stdout so
the TypeScript side can interleave denograd and PyTorch steps in one run:

  on start          -> stdout {"ready": true, "torch": <version>, "threads": <n>, "params": <n>}
  stdin  "step\\n"   -> stdout {"ms": <forward+backward+AdamW milliseconds>, "loss": <float>}
  stdin  "mem\\n"    -> stdout {"maxRssMB": <peak resident set of this process>}
  stdin  "quit\\n"   -> exit

Usage: gpt2_torch_reference.py VOCAB CONTEXT EMBD LAYERS HEADS BATCH SEQ THREADS
"""

import json
import math
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, c: int, h: int) -> None:
        super().__init__()
        self.h = h
        self.ln_1 = nn.LayerNorm(c)
        self.c_attn = nn.Linear(c, 3 * c)
        self.c_proj = nn.Linear(c, c)
        self.ln_2 = nn.LayerNorm(c)
        self.c_fc = nn.Linear(c, 4 * c)
        self.c_proj2 = nn.Linear(4 * c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(c, dim=2)  # (B, T, C) each
        q, k, v = (z.view(b, t, self.h, c // self.h).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(c // self.h))  # (B, H, T, T)
        mask = torch.triu(torch.ones(t, t, dtype=torch.bool), 1)
        att = F.softmax(att.masked_fill(mask, float("-inf")), dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, c)
        x = x + self.c_proj(y)
        return x + self.c_proj2(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, vocab: int, context: int, c: int, layers: int, h: int) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab, c)
        self.wpe = nn.Embedding(context, c)
        self.blocks = nn.ModuleList(Block(c, h) for _ in range(layers))
        self.ln_f = nn.LayerNorm(c)
        # GPT-2's init: N(0, 0.02), zero biases, residual projections scaled by 1/sqrt(2 * layers).
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)
        for blk in self.blocks:
            for proj in (blk.c_proj, blk.c_proj2):
                nn.init.normal_(proj.weight, std=0.02 / math.sqrt(2 * layers))

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        t = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(t))  # (B, T, C)
        for blk in self.blocks:
            x = blk(x)
        logits = F.linear(self.ln_f(x), self.wte.weight)  # (B, T, V), head tied to wte
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def main() -> None:
    vocab, context, c, layers, h, b, t, threads = (int(a) for a in sys.argv[1:9])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = GPT(vocab, context, c, layers, h)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}], lr=4e-4)
    idx = torch.randint(0, vocab, (b, t))
    targets = torch.randint(0, vocab, (b, t))
    n = sum(p.numel() for p in model.parameters())
    print(json.dumps({"ready": True, "torch": torch.__version__,
                      "threads": torch.get_num_threads(), "params": n}), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "quit":
            break
        if cmd == "mem":
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(json.dumps({"maxRssMB": rss}), flush=True)
            continue
        if cmd != "step":
            print(json.dumps({"error": f"unknown command {cmd!r}"}), flush=True)
            continue
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = model(idx, targets)
        loss.backward()
        opt.step()
        ms = (time.perf_counter() - t0) * 1e3
        print(json.dumps({"ms": ms, "loss": loss.item()}), flush=True)


if __name__ == "__main__":
    main()
