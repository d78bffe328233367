#!/usr/bin/env python3
"""PyTorch CPU reference for bench/finetune_lora_dpo.ts: the same GPT-2 as
gpt2_torch_reference.py, and two fine-tuning steps on fixed random batches:

  dpo:  (first) full-parameter DPO: the policy and a frozen deep copy as the reference (its
        forward under no_grad), sequence log-probabilities summed over the response positions,
        loss -logsigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r))), AdamW on every parameter.
  lora: (after dpo) rank-R LoRA (A kaiming-uniform, B zero, scaling alpha/R) on every block's c_attn,
        c_proj, c_fc and MLP c_proj of the same model, now frozen; next-token loss; AdamW on
        A and B.

Driven over stdin/stdout like gpt2_torch_reference.py:

  on start               -> {"ready": true, "torch": <version>, "threads": <n>}
  stdin "lora" / "dpo"   -> {"ms": <one step, milliseconds>, "loss": <float>}
  stdin "mem"            -> {"maxRssMB": <peak resident set>}
  stdin "quit"           -> exit

Usage: finetune_lora_dpo_torch.py VOCAB CONTEXT EMBD LAYERS HEADS LORA_BATCH DPO_PAIRS SEQ RANK
       ALPHA BETA THREADS
"""

import copy
import json
import math
import os
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpt2_torch_reference import GPT  # noqa: E402


class LoRALinear(nn.Module):
    """base(x) + (alpha/r) * dropout(x) @ A^T @ B^T, as in the LoRA paper and peft."""

    def __init__(self, base: nn.Linear, r: int, alpha: float) -> None:
        super().__init__()
        self.base = base
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.scaling = alpha / r

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.lora_A.t() * self.scaling) @ self.lora_B.t()


def logits_of(model: GPT, idx: torch.Tensor) -> torch.Tensor:
    t = idx.shape[1]
    x = model.wte(idx) + model.wpe(torch.arange(t))  # (N, T, C)
    for blk in model.blocks:
        x = blk(x)
    return F.linear(model.ln_f(x), model.wte.weight)  # (N, T, V)


def seq_logps(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                          reduction="none", ignore_index=-100)
    return -nll.view(target.shape).sum(-1)  # (N)


def dpo_batch(vocab: int, pairs: int, t: int) -> tuple:
    """2*pairs sequences (chosen rows first); targets -100 on the first half (the prompt)."""
    idx = torch.randint(0, vocab, (2 * pairs, t))
    target = torch.randint(0, vocab, (2 * pairs, t))
    target[:, : t // 2] = -100
    return idx, target


def main() -> None:
    (vocab, context, c, layers, h, lora_b, pairs, t, rank) = (int(a) for a in sys.argv[1:10])
    alpha, beta = float(sys.argv[10]), float(sys.argv[11])
    torch.set_num_threads(int(sys.argv[12]))
    torch.manual_seed(0)

    # DPO: full parameters against a frozen copy.
    policy = GPT(vocab, context, c, layers, h)
    reference = copy.deepcopy(policy).eval()
    for p in reference.parameters():
        p.requires_grad_(False)
    decay = [p for p in policy.parameters() if p.dim() >= 2]
    rest = [p for p in policy.parameters() if p.dim() < 2]
    dpo_opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                                 {"params": rest, "weight_decay": 0.0}], lr=5e-6)
    dpo_idx, dpo_target = dpo_batch(vocab, pairs, t)
    lora_idx = torch.randint(0, vocab, (lora_b, t))
    lora_target = torch.randint(0, vocab, (lora_b, t))
    lora_opt = None

    def to_lora() -> torch.optim.Optimizer:
        """After the DPO steps: freeze the policy and wrap its linear layers (as the TS side)."""
        nonlocal reference, dpo_opt
        reference, dpo_opt = None, None
        policy.requires_grad_(False)
        for blk in policy.blocks:
            for name in ("c_attn", "c_proj", "c_fc", "c_proj2"):
                setattr(blk, name, LoRALinear(getattr(blk, name), rank, alpha))
        params = [p for n, p in policy.named_parameters() if "lora_" in n]
        return torch.optim.AdamW(params, lr=5e-4, weight_decay=0.01)

    print(json.dumps({"ready": True, "torch": torch.__version__,
                      "threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "quit":
            break
        if cmd == "mem":
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(json.dumps({"maxRssMB": rss}), flush=True)
            continue
        if cmd == "lora" and lora_opt is None:
            lora_opt = to_lora()
        t0 = time.perf_counter()
        if cmd == "lora":
            lora_opt.zero_grad(set_to_none=True)
            logits = logits_of(policy, lora_idx)
            loss = F.cross_entropy(logits.reshape(-1, vocab), lora_target.reshape(-1))
            loss.backward()
            lora_opt.step()
        elif cmd == "dpo" and dpo_opt is not None:
            dpo_opt.zero_grad(set_to_none=True)
            with torch.no_grad():
                ref = seq_logps(logits_of(reference, dpo_idx), dpo_target)
            pol = seq_logps(logits_of(policy, dpo_idx), dpo_target)
            z = beta * ((pol[:pairs] - ref[:pairs]) - (pol[pairs:] - ref[pairs:]))
            loss = (-F.logsigmoid(z)).mean()
            loss.backward()
            dpo_opt.step()
        else:
            print(json.dumps({"error": f"unknown command {cmd!r} (dpo must come before lora)"}),
                  flush=True)
            continue
        ms = (time.perf_counter() - t0) * 1e3
        print(json.dumps({"ms": ms, "loss": loss.item()}), flush=True)


if __name__ == "__main__":
    main()
