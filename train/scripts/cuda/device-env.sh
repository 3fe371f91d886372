#!/usr/bin/env bash
# Source this on the GPU machine before running a binary built by build-cuda.sh:
#   source device-env.sh   (copied next to the binary, or train/scripts/cuda/device-env.sh in a clone)
# It points the dynamic loader at the CUDA libraries that the machine's Python packages carry.
dirs=""
for lib in libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libcudart.so.13 libnvrtc.so.13 libcudnn.so.9; do
  found=$(find / -xdev -name "$lib" -not -path '*/proc/*' 2>/dev/null | head -n 1)
  [[ -n $found ]] && dirs="$dirs:$(dirname "$found")"
done
export LD_LIBRARY_PATH="${dirs#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
