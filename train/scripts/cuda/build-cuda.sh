#!/usr/bin/env bash
# Builds a crate with candle's CUDA backend on a machine that has no CUDA toolkit and no GPU,
# so that the binary can be carried to a GPU machine and run there.
#
#   train/scripts/cuda/build-cuda.sh -p edge-reid-train --bin edge-reid-train   (from the repository root)
#
# Arguments are passed to `cargo build --release --features cuda`. The binary lands in
# target/cuda/release/. What it does:
#   1. installs CUDA 13.0's compiler (nvcc, headers, CCCL) from PyPI into a cached venv;
#   2. makes stub shared libraries (libcuda, libcublas, libcublasLt, libcurand, libnvrtc) whose
#      only job is to let the linker finish: they carry the real libraries' sonames, so at run
#      time the GPU machine's real libraries are loaded instead (source train/scripts/cuda/device-env.sh there);
#   3. builds with CUDA_COMPUTE_CAP=90 (H100/H200) unless you set another.
set -euo pipefail
cache=${EDGE_REID_CUDA_CACHE:-$HOME/.cache/edge-reid-cuda}
venv=$cache/venv
stubs=$cache/stubs
mkdir -p "$cache" "$stubs"
if [[ ! -x $venv/bin/python ]]; then
  python3 -m venv "$venv"
fi
if ! compgen -G "$venv/lib/python3*/site-packages/nvidia/cu13/bin/nvcc" >/dev/null; then
  "$venv/bin/pip" install -q "nvidia-cuda-nvcc==13.0.*" "nvidia-nvvm==13.0.*" "nvidia-cuda-crt==13.0.*" \
    "nvidia-cuda-runtime==13.0.*" "nvidia-cuda-cccl==13.0.*"
fi
cuda_root=$(echo "$venv"/lib/python3*/site-packages/nvidia/cu13)
export CUDA_ROOT=$cuda_root CUDA_PATH=$cuda_root PATH=$cuda_root/bin:$PATH
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/cuda}
ln -sf "$cuda_root/lib/libcudart.so.13" "$stubs/libcudart.so"

# name:soname-version:symbol-pattern
libs="cuda:1:^cu[A-Z] nvrtc:13:^nvrtc curand:10:^curand cublasLt:13:^cublasLt cublas:13:^cublas[^L] cudnn:9:^cudnn"
make_stubs() { # $1: file of symbol names (may be empty)
  for spec in $libs; do
    IFS=: read -r name version pattern <<<"$spec"
    { grep -E "$pattern" "$1" || true; } | sed 's/.*/void &(void) {}/' >"$stubs/$name.c"
    gcc -shared -fPIC "$stubs/$name.c" -o "$stubs/lib$name.so" -Wl,-soname,"lib$name.so.$version"
  done
}
syms=$cache/symbols.txt
touch "$syms"
make_stubs "$syms"
export RUSTFLAGS="${RUSTFLAGS:-} -L $stubs -C link-arg=-Wl,--error-limit=0"
log=$cache/build.log
for pass in 1 2; do
  if cargo build --release --features cuda "$@" 2>&1 | tee "$log" | grep -E "^(error|warning: unused)" >/dev/null; then :; fi
  if ! grep -q "undefined symbol" "$log"; then
    if grep -q "^error" "$log"; then tail -40 "$log"; exit 1; fi
    echo "built into $CARGO_TARGET_DIR/release (stubs in $stubs)"; exit 0
  fi
  # first pass: the linker named the CUDA symbols it needs; give the stubs those names and link again
  grep -oE "undefined symbol: [A-Za-z0-9_]+" "$log" | sed 's/undefined symbol: //' | sort -u >>"$syms"
  sort -u -o "$syms" "$syms"
  make_stubs "$syms"
done
tail -40 "$log"; exit 1
