#!/usr/bin/env python3
"""PyTorch CPU reference for bench/finetune_classify_instruct.ts: the same two fine-tuning steps on
the same GPT-2 (bench/gpt2_torch_reference.py's model), driven over stdin/stdout:

  classify: the book's chapter 6 step. Every parameter frozen but the last block, the final
            LayerNorm and a new Linear(C, 2) head; the logits of each row's last real token;
            cross-entropy; AdamW (lr 5e-5, weight decay 0.1) on the trainable parameters.
  instruct: the book's chapter 7 step. Next-token cross-entropy over all positions, targets after
            each row's end-of-text masked with -100; AdamW on all parameters.

  on start             -> {"ready": true, "torch": <version>, "threads": <n>, "params": <n>}
  stdin "classify\\n"   -> {"ms": <forward+backward+AdamW milliseconds>, "loss": <float>}
  stdin "instruct\\n"   -> {"ms": ..., "loss": ...}
  stdin "quit\\n"       -> exit

Usage: finetune_classify_instruct_torch.py VOCAB CONTEXT EMBD LAYERS HEADS THREADS
         CLS_LENGTHS INS_LENGTHS  (comma-separated real lengths; T = the largest of each)
"""

import json
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpt2_torch_reference import GPT  # noqa: E402  (the same model as the GPT-2 benchmark)

PAD = 50256


def hidden(model: GPT, idx: torch.Tensor) -> torch.Tensor:
    """Final hidden states after ln_f, (B, T, C)."""
    x = model.wte(idx) + model.wpe(torch.arange(idx.shape[1]))
    for blk in model.blocks:
        x = blk(x)
    return model.ln_f(x)


def main() -> None:
    vocab, context, c, layers, h, threads = (int(a) for a in sys.argv[1:7])
    cls_lengths = [int(x) for x in sys.argv[7].split(",")]
    ins_lengths = [int(x) for x in sys.argv[8].split(",")]
    torch.set_num_threads(threads)
    torch.manual_seed(0)

    # Classification: a frozen trunk but its last block and ln_f, a new 2-class head.
    clf_trunk = GPT(vocab, context, c, layers, h)
    for p in clf_trunk.parameters():
        p.requires_grad = False
    for p in list(clf_trunk.blocks[-1].parameters()) + list(clf_trunk.ln_f.parameters()):
        p.requires_grad = True
    head = nn.Linear(c, 2)
    trainable = [p for p in clf_trunk.parameters() if p.requires_grad] + list(head.parameters())
    clf_opt = torch.optim.AdamW(trainable, lr=5e-5, weight_decay=0.1)
    b, t = len(cls_lengths), max(cls_lengths)
    cls_idx = torch.randint(0, vocab, (b, t))
    for row, n in enumerate(cls_lengths):
        cls_idx[row, n:] = PAD
    last = torch.tensor(cls_lengths) - 1
    labels = torch.randint(0, 2, (b,))

    # Instruction tuning: every parameter trains.
    lm = GPT(vocab, context, c, layers, h)
    lm_opt = torch.optim.AdamW(lm.parameters(), lr=5e-5, weight_decay=0.1)
    b2, t2 = len(ins_lengths), max(ins_lengths)
    ins_idx = torch.randint(0, vocab, (b2, t2))
    ins_targets = torch.randint(0, vocab, (b2, t2))
    for row, n in enumerate(ins_lengths):
        ins_idx[row, n:] = PAD
        ins_targets[row, n - 1] = PAD  # the end-of-text is learned
        ins_targets[row, n:] = -100  # padding is not

    n_params = sum(p.numel() for p in lm.parameters())
    print(json.dumps({"ready": True, "torch": torch.__version__,
                      "threads": torch.get_num_threads(), "params": n_params}), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "quit":
            break
        t0 = time.perf_counter()
        if cmd == "classify":
            clf_opt.zero_grad(set_to_none=True)
            states = hidden(clf_trunk, cls_idx)  # (B, T, C)
            logits = head(states[torch.arange(b), last])  # (B, 2)
            loss = F.cross_entropy(logits, labels)
            loss.backward()
            clf_opt.step()
        elif cmd == "instruct":
            lm_opt.zero_grad(set_to_none=True)
            loss = lm(ins_idx, ins_targets)  # mean over targets != -100
            loss.backward()
            lm_opt.step()
        else:
            print(json.dumps({"error": f"unknown command {cmd!r}"}), flush=True)
            continue
        ms = (time.perf_counter() - t0) * 1e3
        print(json.dumps({"ms": ms, "loss": loss.item()}), flush=True)


if __name__ == "__main__":
    main()
