#!/usr/bin/env python3
"""PyTorch CPU reference for bench/transformer_bench.ts: the same 2-block GPT-2-style
forward + backward, op for op. Driven over stdin/stdout so the TypeScript side can interleave
denograd and PyTorch steps in one run:

  stdin  "step\\n"   -> stdout {"ms": <forward+backward milliseconds>, "loss": <float>}
  stdin  "quit\\n"   -> exit
  on start          -> stdout {"ready": true, "torch": <version>, "threads": <n>}

Usage: torch_reference.py B T C H LAYERS VOCAB THREADS
"""

import json
import math
import sys
import time

import torch
import torch.nn.functional as F


def main() -> None:
    b, t, c, h, layers, vocab, threads = (int(a) for a in sys.argv[1:8])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    d = c // h

    def weight(*shape: int) -> torch.Tensor:
        return (torch.randn(*shape) * 0.02).requires_grad_()

    def ones(n: int) -> torch.Tensor:
        return torch.ones(n).requires_grad_()

    def zeros(n: int) -> torch.Tensor:
        return torch.zeros(n).requires_grad_()

    blocks = [
        {
            "ln1w": ones(c), "ln1b": zeros(c),
            "wqkv": weight(3 * c, c), "bqkv": zeros(3 * c),
            "wproj": weight(c, c), "bproj": zeros(c),
            "ln2w": ones(c), "ln2b": zeros(c),
            "wfc": weight(4 * c, c), "bfc": zeros(4 * c),
            "wfc2": weight(c, 4 * c), "bfc2": zeros(c),
        }
        for _ in range(layers)
    ]
    lnfw, lnfb = ones(c), zeros(c)
    wout = weight(vocab, c)
    params = [p for blk in blocks for p in blk.values()] + [lnfw, lnfb, wout]

    x0 = torch.randn(b, t, c)  # input activations (B, T, C); no embedding
    targets = torch.randint(0, vocab, (b, t))  # (B, T)
    mask = torch.triu(torch.ones(t, t), 1).bool()  # (T, T), True above the diagonal
    scale = 1.0 / math.sqrt(d)

    def block(x: torch.Tensor, p: dict) -> torch.Tensor:
        hx = F.layer_norm(x, (c,), p["ln1w"], p["ln1b"])  # (B, T, C)
        qkv = F.linear(hx, p["wqkv"], p["bqkv"])  # (B, T, 3C)
        q, k, v = qkv.split(c, dim=2)
        q = q.reshape(b, t, h, d).transpose(1, 2)  # (B, H, T, D)
        k = k.reshape(b, t, h, d).transpose(1, 2)
        v = v.reshape(b, t, h, d).transpose(1, 2)
        att = torch.matmul(q, k.transpose(-2, -1)) * scale  # (B, H, T, T)
        att = att.masked_fill(mask, float("-inf"))
        att = F.softmax(att, dim=-1)
        y = torch.matmul(att, v)  # (B, H, T, D)
        y = y.transpose(1, 2).reshape(b, t, c)  # (B, T, C)
        x = x + F.linear(y, p["wproj"], p["bproj"])
        hx = F.layer_norm(x, (c,), p["ln2w"], p["ln2b"])
        m = F.gelu(F.linear(hx, p["wfc"], p["bfc"]), approximate="tanh")  # (B, T, 4C)
        return x + F.linear(m, p["wfc2"], p["bfc2"])

    def step() -> float:
        x = x0
        for blk in blocks:
            x = block(x, blk)
        x = F.layer_norm(x, (c,), lnfw, lnfb)
        logits = F.linear(x, wout)  # (B, T, V)
        loss = F.cross_entropy(logits.reshape(-1, vocab), targets.reshape(-1))
        loss.backward()
        return loss.item()

    print(json.dumps({"ready": True, "torch": torch.__version__, "threads": torch.get_num_threads()}),
          flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "quit":
            break
        if cmd != "step":
            print(json.dumps({"error": f"unknown command {cmd!r}"}), flush=True)
            continue
        for p in params:
            p.grad = None
        t0 = time.perf_counter()
        loss = step()
        ms = (time.perf_counter() - t0) * 1e3
        print(json.dumps({"ms": ms, "loss": loss}), flush=True)


if __name__ == "__main__":
    main()
