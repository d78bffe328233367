#!/usr/bin/env bash
# The one-shot GPU check, run on the device machine from the repository root (see bench/README.md,
# "GPU"). It needs the folder bench/gpu/prepare.sh made here (.carry: Deno as an xz archive and
# Deno's cache of the npm packages the entry points import) and writes everything under $OUT:
#
#   check.log       every stage's output, in order (the smoke stage's step-by-step verdicts first)
#   env.json        GPU, driver, torch/CUDA versions, the NVIDIA libraries found
#   gemm.json       our GEMM timings merged with torch.matmul's + ratio
#   gpt2_step.json  our GPT-2 step merged with PyTorch eager/compile
#   attention.json  our attention kernels and the cuDNN path merged with torch SDPA (flash) + ratios
#   (our unmerged half, e.g. gemm_ours.json, only when its PyTorch merge failed)
#   summary.json    each stage's exit status and seconds
#
# Each stage runs under its own `timeout` and a failing stage does not stop the later ones; the
# stage limits are also capped by an overall budget (CHECK_BUDGET_S, default 420 s), so the
# whole script ends inside 8 minutes even when something hangs.
#
# Usage: bash bench/gpu/check.sh [PARTS], PARTS a comma list of tests, gemm, gpt2, attention
# (default: tests,gemm,gpt2). Unpacking Deno and probing the machine always run. Every part's
# stage limits together exceed one call's budget, so a session runs the parts it needs, most
# important first (tests), and the rest in a second call when device time is left.
set -u
cd "$(dirname "$0")/../.."
PARTS=",${1:-tests,gemm,gpt2},"
want() { [[ $PARTS == *",all,"* || $PARTS == *",$1,"* ]]; }
OUT=${OUT:-/tmp/denograd-gpu-check}
# Our half of each benchmark goes to WORK and only the merged files to $OUT: the device tool brings
# back at most 8 files (an unmerged half is copied to $OUT at the end only if its merge failed).
WORK=/tmp/denograd-gpu-work
mkdir -p "$OUT" "$WORK"
LOG="$OUT/check.log"
: >"$LOG"
BUDGET=${CHECK_BUDGET_S:-420}
DEADLINE=$(($(date +%s) + BUDGET))
STAGES="$OUT/.stages.tsv"
: >"$STAGES"
export PYTHONUNBUFFERED=1 DENO_NO_UPDATE_CHECK=1 NO_COLOR=1

say() { echo "$*" | tee -a "$LOG"; }

# stage NAME LIMIT_S CMD...: runs CMD under `timeout`, capped by the remaining budget.
stage() {
  local name=$1 limit=$2
  shift 2
  local left=$((DEADLINE - $(date +%s) - 15))
  if ((left < 10)); then
    say "===== $name: skipped, out of time"
    printf '%s\t%s\t%s\n' "$name" "skipped" 0 >>"$STAGES"
    return
  fi
  ((limit > left)) && limit=$left
  say "===== $name (limit ${limit}s): $*"
  local t0=$(date +%s)
  timeout -k 10 "$limit" "$@" 2>&1 | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  local dt=$(($(date +%s) - t0))
  say "===== $name: exit $rc after ${dt}s$( ((rc == 124 || rc == 137)) && echo ' (timed out)')"
  printf '%s\t%s\t%s\n' "$name" "$rc" "$dt" >>"$STAGES"
}

# ---- Deno ----
DENO_HOME=/tmp/denograd-deno
mkdir -p "$DENO_HOME"
stage unpack-deno 60 python3 -c "
import lzma, os, shutil, subprocess, sys
shutil.copyfileobj(lzma.open('.carry/deno.xz'), open('$DENO_HOME/deno', 'wb'))
os.chmod('$DENO_HOME/deno', 0o755)
sys.exit(subprocess.run(['$DENO_HOME/deno', '--version']).returncode)"
export PATH="$DENO_HOME:$PATH"
# The carried cache holds the npm packages; --cached-only below never reaches for the network.
export DENO_DIR="$PWD/.carry/deno_dir"

# ---- the machine and its NVIDIA libraries ----
stage env 60 bash -c "python3 bench/gpu/env_probe.py >'$OUT/env.json'; cat '$OUT/env.json'; nvidia-smi"
lib() { python3 -c "import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2]) or '')" "$OUT/env.json" "$1" 2>/dev/null; }
CUBLAS=$(lib libcublas)
CUBLASLT=$(lib libcublasLt)
LIBCUDA=$(lib libcuda)
# Fall back to the wheels' folders when torch did not load the libraries itself.
SITE=$(python3 -c "import nvidia, os; print(os.path.dirname(list(nvidia.__path__)[0]))" 2>/dev/null)
for d in "$SITE/nvidia/cu13/lib" "$SITE/nvidia/cublas/lib"; do
  [[ -z "$CUBLAS" && -d "$d" ]] && CUBLAS="$d"
  [[ -z "$CUBLASLT" && -d "$d" ]] && CUBLASLT="$d"
done
[[ -n "$CUBLAS" ]] && export DENOGRAD_CUBLAS="$CUBLAS"
[[ -n "$CUBLASLT" ]] && export DENOGRAD_CUBLASLT="$CUBLASLT"
[[ -n "$LIBCUDA" ]] && export DENOGRAD_LIBCUDA="$LIBCUDA"
for f in "$CUBLAS" "$CUBLASLT" "$LIBCUDA"; do
  [[ -n "$f" ]] && export LD_LIBRARY_PATH="$( [[ -d $f ]] && echo "$f" || dirname "$f"):${LD_LIBRARY_PATH:-}"
done
say "DENOGRAD_CUBLAS=${DENOGRAD_CUBLAS:-} DENOGRAD_CUBLASLT=${DENOGRAD_CUBLASLT:-} DENOGRAD_LIBCUDA=${DENOGRAD_LIBCUDA:-}"
# cuDNN 9 from its wheel: the shim libcudnn.so.9 loads its sub-libraries (libcudnn_graph.so.9,
# libcudnn_engines_*.so.9) by name, so their folder goes on LD_LIBRARY_PATH too.
CUDNN_DIR="$SITE/nvidia/cudnn/lib"
if [[ -n "$SITE" && -d "$CUDNN_DIR" ]]; then
  export DENOGRAD_CUDNN="$CUDNN_DIR" LD_LIBRARY_PATH="$CUDNN_DIR:${LD_LIBRARY_PATH:-}"
fi
say "DENOGRAD_CUDNN=${DENOGRAD_CUDNN:-}"

DENO_RUN=(deno run --no-check --cached-only --allow-all)

# ---- smoke: driver, module load, one kernel of each kind, cuBLAS, attention vs the CPU ----
# Always runs, first: it names the first layer that breaks before the suites below multiply it.
stage smoke 60 "${DENO_RUN[@]}" bench/gpu/smoke.ts

# ---- the CUDA test suite (type-checked at home; here only run) ----
# The GPU tests and the two that check the FFI bindings against this machine's libraries; the
# emulator tests (g++ builds, CPU only) and the PTX freshness check ran at home.
TESTS=(tests/cuda_gpu_test.ts tests/cuda_backend_test.ts tests/cublas_test.ts)
if want tests; then
  stage tests 150 deno test --no-check --cached-only --allow-all "${TESTS[@]}"
  # cuDNN's fused attention against the CPU backend (planning may compile kernels: own stage).
  stage cudnn-tests 90 deno test --no-check --cached-only --allow-all tests/cudnn_gpu_test.ts tests/cudnn_test.ts
fi

# ---- benchmarks: ours, then PyTorch on the same GPU, merged ----
if want gemm; then
  stage gemm-ours 75 "${DENO_RUN[@]}" bench/gpu/gemm.ts --out "$WORK/gemm_ours.json"
  stage gemm-torch 75 python3 bench/gpu/gemm_torch.py --ours "$WORK/gemm_ours.json" --out "$OUT/gemm.json"
fi
if want gpt2; then
  stage gpt2-ours 90 "${DENO_RUN[@]}" bench/gpu/gpt2_step.ts --out "$WORK/gpt2_ours.json"
  stage gpt2-torch 150 python3 bench/gpu/gpt2_step_torch.py --ours "$WORK/gpt2_ours.json" --out "$OUT/gpt2_step.json"
fi
# Fused attention, bf16, B=8 H=12 D=64 T=1024..8192: ours, the cuDNN path, then torch SDPA (flash).
if want attention; then
  stage attn-ours 75 "${DENO_RUN[@]}" bench/gpu/attention.ts --out "$WORK/attn_flash.json"
  stage attn-cudnn 45 "${DENO_RUN[@]}" bench/gpu/attention.ts --path cudnn --out "$WORK/attn_cudnn.json"
  stage attn-torch 60 python3 bench/gpu/attention_torch.py --ours "$WORK/attn_flash.json" --cudnn "$WORK/attn_cudnn.json" --out "$OUT/attention.json"
fi

for pair in gemm_ours.json:gemm.json gpt2_ours.json:gpt2_step.json attn_flash.json:attention.json; do
  half=${pair%%:*} merged=${pair#*:}
  [[ -f "$WORK/$half" && ! -f "$OUT/$merged" ]] && cp "$WORK/$half" "$OUT/$half"
done

python3 - "$STAGES" "$OUT/summary.json" <<'PY'
import json, sys, time
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
stages = [{"stage": n, "exit": (int(rc) if rc.lstrip("-").isdigit() else rc), "seconds": int(s)}
          for n, rc, s in rows]
json.dump({"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "stages": stages},
          open(sys.argv[2], "w"), indent=2)
PY
rm -f "$STAGES"
say "===== done: $(cat "$OUT/summary.json" | tr -d '\n ' )"
