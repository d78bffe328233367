#!/usr/bin/env python3
"""PyTorch CPU reference for bench/moe_bench.ts: the same mixture-of-experts layer (the same
algorithm as denograd's src/nn/moe.ts: softmax router, top-k with renormalised gates, GShard
capacity priority, an (E, capacity, C) dispatch buffer, two batched GEMMs, gate-weighted combine,
load-balancing and z-losses) and the dense MLP it is compared with, forward + backward. Driven
over stdin/stdout so the TypeScript side can interleave denograd and PyTorch in one run:

  stdin  "moe\\n" | "dense\\n" -> stdout {"ms": <forward+backward ms>, "loss": <float>}
  stdin  "quit\\n"             -> exit
  on start                    -> stdout {"ready": true, "torch": <version>, "threads": <n>}

Usage: moe_torch_reference.py TOKENS C EXPERTS TOPK HIDDEN DENSE_HIDDEN CAPACITY_FACTOR THREADS
"""

import json
import math
import sys
import time

import torch
import torch.nn.functional as F


def main() -> None:
    n, c, e, k, hidden, dense_hidden = (int(a) for a in sys.argv[1:7])
    factor = float(sys.argv[7])
    threads = int(sys.argv[8])
    torch.set_num_threads(threads)
    torch.manual_seed(0)

    def weight(*shape: int) -> torch.Tensor:
        return (torch.randn(*shape) * 0.02).requires_grad_()

    def zeros(*shape: int) -> torch.Tensor:
        return torch.zeros(*shape).requires_grad_()

    x = torch.randn(n, c).requires_grad_()  # (N, C) tokens
    upstream = torch.randn(n, c)  # (N, C) the gradient arriving from above
    router = weight(e, c)
    fc_w, fc_b = weight(e, hidden, c), zeros(e, hidden)
    proj_w, proj_b = weight(e, c, hidden), zeros(e, c)
    w1, b1 = weight(dense_hidden, c), zeros(dense_hidden)
    w2, b2 = weight(c, dense_hidden), zeros(c)
    params = [x, router, fc_w, fc_b, proj_w, proj_b, w1, b1, w2, b2]
    capacity = min(n, math.ceil(k * n * factor / e))
    token_of_choice = torch.arange(n).repeat(k)  # (k*N) rank-major: all first choices first

    def moe_step() -> float:
        logits = x @ router.T  # (N, E)
        probs = torch.softmax(logits, dim=-1)
        top_p, top_i = torch.topk(probs, k, dim=-1)  # (N, k)
        gates = top_p / top_p.sum(-1, keepdim=True)
        choice = top_i.T.reshape(-1)  # (k*N) rank-major, token order within a rank
        onehot = F.one_hot(choice, e)  # (k*N, E)
        position = ((torch.cumsum(onehot, 0) - 1) * onehot).sum(-1)  # place in its expert's queue
        kept = position < capacity
        slot = choice * capacity + position.clamp(max=capacity - 1)
        token_of_slot = torch.zeros(e * capacity, dtype=torch.long)
        token_of_slot[slot[kept]] = token_of_choice[kept]
        xd = x[token_of_slot].view(e, capacity, c)  # (E, cap, C) dispatch buffer
        h = F.gelu(torch.baddbmm(fc_b.unsqueeze(1), xd, fc_w.transpose(1, 2)), approximate="tanh")
        o = torch.baddbmm(proj_b.unsqueeze(1), h, proj_w.transpose(1, 2)).view(e * capacity, c)
        mix = gates.T.reshape(-1) * kept  # (k*N) dropped choices weigh 0
        y = torch.zeros(n, c).index_add(0, token_of_choice, o[slot] * mix[:, None])  # (N, C)
        f = onehot.sum(0).float() / (n * k)
        aux = e * (f * probs.mean(0)).sum()
        z = (torch.logsumexp(logits, dim=-1) ** 2).mean()
        loss = (y * upstream).sum() + 0.01 * aux + 0.001 * z
        loss.backward()
        return loss.item()

    def dense_step() -> float:
        h = F.gelu(F.linear(x, w1, b1), approximate="tanh")  # (N, 4C)
        y = F.linear(h, w2, b2)  # (N, C)
        loss = (y * upstream).sum()
        loss.backward()
        return loss.item()

    steps = {"moe": moe_step, "dense": dense_step}
    print(json.dumps({"ready": True, "torch": torch.__version__, "threads": torch.get_num_threads()}),
          flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "quit":
            break
        if cmd not in steps:
            print(json.dumps({"error": f"unknown command {cmd!r}"}), flush=True)
            continue
        for p in params:
            p.grad = None
        t0 = time.perf_counter()
        loss = steps[cmd]()
        ms = (time.perf_counter() - t0) * 1e3
        print(json.dumps({"ms": ms, "loss": loss}), flush=True)


if __name__ == "__main__":
    main()
