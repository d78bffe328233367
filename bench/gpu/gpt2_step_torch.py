"""PyTorch reference for bench/gpu/gpt2_step.ts: the same GPT-2 124M training step (bf16 autocast,
f32 master weights, batch 16 x 1024, AdamW lr 6e-4 / betas 0.9, 0.95 / weight decay 0.1 on the
matrices, clip 1, loss and grad norm read back each step) in PyTorch eager and under
torch.compile, on the same GPU in the same run. The model is nanoGPT's (tied LM head, no dropout,
scaled_dot_product_attention). Merges denograd's JSON into one report with tokens/s, MFU and the
ratio torch_tokens_per_s / ours_tokens_per_s.

    python3 bench/gpu/gpt2_step_torch.py --ours gpt2_ours.json --out gpt2_step.json [--no-compile]
"""

import argparse
import json
import os
import tempfile
import time
import traceback

import torch
import torch.nn as nn
import torch.nn.functional as F

H200_BF16_PEAK = 989e12  # dense bf16, NVIDIA datasheet (1979 with sparsity)
V, T, C, L, H = 50257, 1024, 768, 12, 12


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.c_attn, self.c_proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.c_fc, self.mlp_proj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)

    def forward(self, x):
        B, T_, _ = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T_, H, C // H).transpose(1, 2) for t in (q, k, v))  # (B, H, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.c_proj(y.transpose(1, 2).contiguous().view(B, T_, C))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, C), nn.Embedding(T, C)
        self.h = nn.ModuleList([Block() for _ in range(L)])
        self.ln_f = nn.LayerNorm(C)
        self.apply(self._init)

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for block in self.h:
            x = block(x)
        logits = self.ln_f(x) @ self.wte.weight.t()  # tied LM head, (B, T, V)
        return F.cross_entropy(logits.float().view(-1, V), targets.view(-1))


def run(compile_model, batch, steps):
    torch.manual_seed(0)
    model = GPT().cuda()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
        lr=6e-4, betas=(0.9, 0.95), eps=1e-8)
    fwd = torch.compile(model) if compile_model else model
    idx = torch.randint(0, V, (batch, T), device="cuda")
    tgt = torch.randint(0, V, (batch, T), device="cuda")

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = fwd(idx, tgt)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item(), norm.item()

    t0 = time.perf_counter()
    losses = [step()[0]]  # the first step includes compilation under torch.compile
    first_ms = (time.perf_counter() - t0) * 1000
    step()
    times = []
    for _ in range(steps):
        torch.cuda.synchronize()
        s = time.perf_counter()
        losses.append(step()[0])
        times.append((time.perf_counter() - s) * 1000)
    ms = sum(times) / len(times)
    n = sum(p.numel() for p in model.parameters()) - model.wpe.weight.numel()
    flops_per_token = 6 * n + 6 * L * C * T
    tps = batch * T / (ms / 1000)
    return {
        "stepMs": ms, "stepMsAll": times, "firstStepMs": first_ms, "tokensPerSecond": tps,
        "mfu": tps * flops_per_token / H200_BF16_PEAK, "params": n,
        "flopsPerToken": flops_per_token, "losses": losses,
        "peakMemoryBytes": torch.cuda.max_memory_allocated(),
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ours")
    p.add_argument("--out", required=True)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--no-compile", action="store_true")
    args = p.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    report = {
        "what": "GPT-2 124M training step, bf16 autocast, %d x %d tokens: denograd vs PyTorch"
        % (args.batch, T),
        "date": time.strftime("%Y-%m-%d"), "gpu": torch.cuda.get_device_name(0),
        "torch": torch.__version__, "cuda": torch.version.cuda, "peakFlops": H200_BF16_PEAK,
    }
    ours = None
    if args.ours and os.path.exists(args.ours):
        with open(args.ours) as f:
            ours = json.load(f)
    report["ours"] = ours
    for name, comp in (("eager", False), ("compile", True)):
        if comp and args.no_compile:
            report[name] = {"skipped": "--no-compile"}
            continue
        try:
            r = run(comp, args.batch, args.steps)
            print(f"torch {name}: {r['stepMs']:.1f} ms/step, {r['tokensPerSecond']:.0f} tokens/s, "
                  f"MFU {100 * r['mfu']:.1f}%, first step {r['firstStepMs']:.0f} ms", flush=True)
        except Exception as e:  # torch.compile may be unavailable on the machine: record why
            traceback.print_exc()
            r = {"error": f"{type(e).__name__}: {e}"[:2000]}
        report[name] = r
        torch.cuda.empty_cache()
        if ours and "tokensPerSecond" in r and ours.get("tokensPerSecond"):
            report[f"{name}_over_ours"] = r["tokensPerSecond"] / ours["tokensPerSecond"]
        save(report, args.out)  # after each variant: a compile that runs out of time keeps eager


def save(report, path):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)))
    with os.fdopen(fd, "w") as f:
        json.dump(report, f, indent=2)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
