#!/usr/bin/env bash
# Run HERE (the build machine) before the device call: puts what bench/gpu/check.sh needs on the
# GPU machine, which has no Deno and no network, into the ignored folder .carry/:
#
#   .carry/deno.xz     this machine's Deno binary (x86-64 Linux), xz-compressed
#   .carry/deno_dir/   Deno's cache (DENO_DIR) holding the npm packages the GPU entry points import
#
# Then call the device tool's `run` with carry [".carry"] (see bench/README.md, "GPU").
set -euo pipefail
cd "$(dirname "$0")/../.."
[[ "$(uname -m)" == x86_64 ]] || { echo "prepare.sh: the GPU machine is x86-64; run this on one" >&2; exit 1; }
mkdir -p .carry
DENO=$(readlink -f "$(command -v deno)")
VERSION="$(deno --version | head -1) $(sha256sum "$DENO" | cut -c1-16)"
# xz takes minutes on a small machine: reuse the archive while the binary is the same.
if [[ -f .carry/deno.xz && "$(cat .carry/deno.version 2>/dev/null)" == "$VERSION" ]]; then
  echo "reusing .carry/deno.xz ($VERSION)"
else
  echo "compressing $DENO ($VERSION)"
  xz -T0 -6 -c "$DENO" >.carry/deno.xz.tmp && mv .carry/deno.xz.tmp .carry/deno.xz
  echo "$VERSION" >.carry/deno.version
fi

# The device must run the kernels of this checkout: the committed PTX must match cuda/*.cu.
deno task kernels:check || {
  echo "prepare.sh: src/backend/cuda/_ptx.ts is stale: run \`deno task kernels\` first" >&2
  exit 1
}

# Only the npm packages the GPU entry points actually reach travel (Deno resolves npm packages
# lazily, so --cached-only runs with just these): `deno cache` would fetch every package of
# deno.json, far over the 64 MiB the device call carries.
entries=(tests/cublas_test.ts bench/gpu/gemm.ts bench/gpu/gpt2_step.ts bench/gpu/attention.ts)
for f in tests/cuda_*_test.ts; do [[ -e "$f" ]] && entries+=("$f"); done
deno cache "${entries[@]}" >/dev/null
rm -rf .carry/deno_dir
python3 - "${entries[@]}" <<'PY'
import json, os, shutil, subprocess, sys
cache = json.loads(subprocess.run(["deno", "info", "--json"], capture_output=True, text=True,
                                  check=True).stdout)["npmCache"]
need = set()
for entry in sys.argv[1:]:
    info = json.loads(subprocess.run(["deno", "info", "--json", entry], capture_output=True,
                                     text=True, check=True).stdout)
    todo = [m["npmPackage"] for m in info["modules"] if m.get("npmPackage")]
    while todo:
        pkg = todo.pop()
        if pkg not in need:
            need.add(pkg)
            todo += info["npmPackages"][pkg].get("dependencies", [])
for pkg in sorted(need):
    name, version = pkg.rsplit("@", 1)
    src = os.path.join(cache, "registry.npmjs.org", name)
    dst = os.path.join(".carry/deno_dir/npm/registry.npmjs.org", name)
    shutil.copytree(os.path.join(src, version), os.path.join(dst, version))
    if os.path.exists(os.path.join(src, "registry.json")):
        shutil.copy(os.path.join(src, "registry.json"), dst)
print("npm packages carried:", ", ".join(sorted(need)) or "none")
PY
mkdir -p .carry/deno_dir
du -sh .carry/deno.xz .carry/deno_dir
# What the device call sends: tracked files and untracked ones git does not ignore, plus the carry.
total=$(git ls-files -z -co --exclude-standard | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
carry=$(du -sb .carry | cut -f1)
echo "working tree ${total} B + carry ${carry} B = $(((total + carry) / 1048576)) MiB (limit 64 MiB)"
