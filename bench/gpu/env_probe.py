"""What the GPU machine has, as JSON on stdout: the GPU, driver, torch/CUDA versions, and the paths
of the libcuda, libcublas and libcublasLt that PyTorch itself loads (read from /proc/self/maps
after one matmul), which bench/gpu/check.sh then points denograd's library discovery at."""

import json
import re
import subprocess
import sys


def pip_versions(names):
    out = {}
    try:
        from importlib.metadata import version
    except ImportError:
        return out
    for n in names:
        try:
            out[n] = version(n)
        except Exception:
            out[n] = None
    return out


def main():
    info = {"python": sys.version.split()[0]}
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
             "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
        info["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
    except Exception as e:
        info["nvidia_smi"] = f"failed: {e}"
    info["packages"] = pip_versions(
        ["torch", "nvidia-cublas", "nvidia-cublas-cu12", "nvidia-cuda-runtime", "triton"])
    try:
        import torch
        a = torch.ones(64, 64, device="cuda")
        (a @ a).sum().item()  # loads cuBLAS (and cuBLASLt)
        a.bfloat16() @ a.bfloat16()
        torch.cuda.synchronize()
        info["torch"] = torch.__version__
        info["torch_cuda"] = torch.version.cuda
        info["gpu"] = torch.cuda.get_device_name(0)
        info["capability"] = list(torch.cuda.get_device_capability(0))
        with open("/proc/self/maps") as f:
            maps = f.read()
        libs = sorted(set(re.findall(r"(/\S*/lib(?:cuda|cublas|cublasLt|cudart|nvrtc)\.so[\d.]*)", maps)))
        info["loaded_libs"] = libs
        for key, pat in (("libcuda", r"/libcuda\.so"), ("libcublas", r"/libcublas\.so"),
                         ("libcublasLt", r"/libcublasLt\.so")):
            info[key] = next((p for p in libs if re.search(pat, p)), None)
    except Exception as e:
        info["torch_error"] = f"{type(e).__name__}: {e}"
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
