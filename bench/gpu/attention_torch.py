"""torch.nn.functional.scaled_dot_product_attention with the flash backend on the shapes
bench/gpu/attention.ts measured, on the same GPU, timed the same way (CUDA events around
back-to-back calls after a warm-up), merged with denograd's numbers (our kernels and, when its JSON
exists, the cuDNN path) into one JSON with TFLOP/s and the ratio ours_ms / torch_ms per shape
(1.0 = as fast as PyTorch; < 1 is faster).

    python3 bench/gpu/attention_torch.py --ours attn_flash.json [--cudnn attn_cudnn.json] --out attention.json

Forward runs under no_grad; forward + backward is sdpa(q, k, v) then out.backward(dout) with q, k,
v requiring grad (what a training step does). FLOPs as bench/gpu/attention.ts counts them.
"""

import argparse
import json
import os
import tempfile
import time

import torch
import torch.nn.functional as F

B, H, D = 8, 12, 64
TS = [1024, 2048, 4096, 8192]


def flash_only():
    """A context that restricts SDPA to the FlashAttention backend (raises if it cannot run)."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
        return sdpa_kernel(SDPBackend.FLASH_ATTENTION)
    except ImportError:  # torch < 2.3
        return torch.backends.cuda.sdp_kernel(
            enable_flash=True, enable_math=False, enable_mem_efficient=False)


def time_ms(fn):
    fn()  # warm-up
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    fn()
    end.record()
    end.synchronize()
    first = start.elapsed_time(end)
    iters = max(1, min(50, round(150 / max(first, 1e-3))))
    torch.cuda.synchronize()
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / iters, iters


def flops(t, causal):
    return 4 * B * H * t * t * D * (0.5 if causal else 1)


def load(path):
    if not path:
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        print(f"no usable {path} ({e})", flush=True)
        return {"error": str(e), "results": []}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ours", required=True)
    p.add_argument("--cudnn")
    p.add_argument("--out", required=True)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    ours, cudnn = load(args.ours), load(args.cudnn)
    key = lambda r: (r["T"], r["causal"])  # noqa: E731
    ours_rows = {key(r): r for r in ours.get("results", [])}
    cudnn_rows = {key(r): r for r in (cudnn or {}).get("results", [])}
    rows = []
    for t in TS[:2] if args.quick else TS:
        for causal in (False, True):
            q, k, v, dout = (torch.randn(B, H, t, D, device="cuda", dtype=torch.bfloat16)
                             for _ in range(4))
            qg, kg, vg = (x.clone().requires_grad_() for x in (q, k, v))

            def fwd():
                with torch.no_grad():
                    F.scaled_dot_product_attention(q, k, v, is_causal=causal)

            def fwd_bwd():
                out = F.scaled_dot_product_attention(qg, kg, vg, is_causal=causal)
                out.backward(dout)

            with flash_only():
                f_ms, _ = time_ms(fwd)
                fb_ms, _ = time_ms(fwd_bwd)
            fl = flops(t, causal)
            row = {"B": B, "H": H, "T": t, "D": D, "causal": causal, "dtype": "bf16",
                   "torch_fwd_ms": f_ms, "torch_fwd_tflops": fl / (f_ms * 1e-3) / 1e12,
                   "torch_fwd_bwd_ms": fb_ms,
                   "torch_fwd_bwd_tflops": 3.5 * fl / (fb_ms * 1e-3) / 1e12}
            for name, table in (("ours", ours_rows), ("cudnn", cudnn_rows)):
                r = table.get((t, causal))
                if r is None:
                    continue
                row[f"{name}_fwd_ms"] = r["fwd_ms"]
                row[f"{name}_fwd_tflops"] = r["fwd_tflops"]
                row[f"{name}_fwd_bwd_ms"] = r["fwd_bwd_ms"]
                row[f"{name}_fwd_bwd_tflops"] = r["fwd_bwd_tflops"]
                row[f"{name}_fwd_over_torch"] = r["fwd_ms"] / f_ms
                row[f"{name}_fwd_bwd_over_torch"] = r["fwd_bwd_ms"] / fb_ms
                for why in ("cudnn_forward_unsupported", "cudnn_backward_unsupported"):
                    if r.get(why):
                        row[why] = r[why]
            rows.append(row)
            print(f"T={t} {'causal' if causal else 'full  '}: torch fwd {f_ms:.3f} ms "
                  f"({row['torch_fwd_tflops']:.1f} TFLOP/s), fwd+bwd {fb_ms:.3f} ms "
                  f"({row['torch_fwd_bwd_tflops']:.1f}); ours fwd/torch "
                  f"{row.get('ours_fwd_over_torch')}, fwd+bwd/torch "
                  f"{row.get('ours_fwd_bwd_over_torch')}; cudnn fwd/torch "
                  f"{row.get('cudnn_fwd_over_torch')}", flush=True)
            del q, k, v, dout, qg, kg, vg
            torch.cuda.empty_cache()
    report = {
        "what": "fused attention, bf16: denograd (our kernels; cuDNN path) vs "
                "torch SDPA (flash backend), same GPU, same run",
        "date": time.strftime("%Y-%m-%d"),
        "gpu": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "ours_device": ours.get("device"),
        "ours_error": ours.get("error"),
        "cudnn_error": (cudnn or {}).get("error"),
        "results": rows,
    }
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(args.out)))
    with os.fdopen(fd, "w") as f:
        json.dump(report, f, indent=2)
    os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
