"""torch.matmul on the shapes bench/gpu/gemm.ts measured, on the same GPU, timed the same way
(CUDA events around back-to-back calls after three warm-ups), merged with denograd's numbers into
one JSON with the ratio ours_ms / torch_ms per shape (1.0 = as fast as PyTorch; < 1 is faster).

    python3 bench/gpu/gemm_torch.py --ours gemm_ours.json --out gemm.json

f32 runs with TF32 off (torch's default for matmul, and denograd's), so both do exact f32.
"""

import argparse
import json
import os
import tempfile
import time

import torch


# bench/gpu/gemm.ts's GEMM_SHAPES, used when its JSON is missing.
SHAPES = [
    {"name": "qkv (x @ W_attn)", "batch": 1, "m": 16384, "n": 2304, "k": 768},
    {"name": "attn proj", "batch": 1, "m": 16384, "n": 768, "k": 768},
    {"name": "mlp fc", "batch": 1, "m": 16384, "n": 3072, "k": 768},
    {"name": "mlp proj", "batch": 1, "m": 16384, "n": 768, "k": 3072},
    {"name": "lm head", "batch": 1, "m": 16384, "n": 50257, "k": 768},
    {"name": "attn scores (q @ k^T)", "batch": 192, "m": 1024, "n": 1024, "k": 64},
    {"name": "attn values (p @ v)", "batch": 192, "m": 1024, "n": 64, "k": 1024},
    {"name": "square 8192", "batch": 1, "m": 8192, "n": 8192, "k": 8192},
]


def time_ms(fn, flops):
    for _ in range(3):
        fn()
    iters = max(5, min(200, round(200e-3 / (flops / 400e12))))
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / iters, iters


def blas_library():
    try:
        return str(torch.backends.cuda.preferred_blas_library())
    except Exception:  # older torch: no such query
        return None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ours", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with open(args.ours) as f:
            ours = json.load(f)
    except (OSError, ValueError) as e:  # our side failed: still measure torch on the shapes
        print(f"no usable {args.ours} ({e}); timing torch alone", flush=True)
        ours = {"error": str(e), "results": [
            {**s, "dtype": dt, "ms": None, "tflops": None} for dt in ("f32", "bf16") for s in SHAPES]}
    dtypes = {"f32": torch.float32, "bf16": torch.bfloat16}
    rows = []
    for r in ours["results"]:
        dims = lambda a, b: (r["batch"], a, b) if r["batch"] > 1 else (a, b)  # noqa: E731
        dt = dtypes[r["dtype"]]
        a = torch.randn(dims(r["m"], r["k"]), device="cuda", dtype=dt)
        b = torch.randn(dims(r["k"], r["n"]), device="cuda", dtype=dt)
        flops = 2 * r["batch"] * r["m"] * r["n"] * r["k"]
        ms, iters = time_ms(lambda: torch.matmul(a, b), flops)
        row = {
            **{k: r[k] for k in ("name", "dtype", "batch", "m", "n", "k")},
            "ours_ms": r["ms"],
            "torch_ms": ms,
            "ours_tflops": r["tflops"],
            "torch_tflops": flops / (ms * 1e-3) / 1e12,
            "ours_over_torch": r["ms"] / ms if r["ms"] else None,
        }
        rows.append(row)
        print(f"{row['dtype']} {row['name']:<24} ours {r['ms']} ms  torch {ms:.3f} ms  "
              f"ratio {row['ours_over_torch']}", flush=True)
        del a, b
    report = {
        "what": "GEMM: denograd (cuBLAS through Deno FFI) vs torch.matmul, same GPU, same run",
        "date": time.strftime("%Y-%m-%d"),
        "gpu": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "blas": blas_library(),
        "ours_device": ours.get("device"),
        "results": rows,
    }
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(args.out)))
    with os.fdopen(fd, "w") as f:
        json.dump(report, f, indent=2)
    os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
