#!/usr/bin/env bash
# Run on a CUDA machine that has a pip torch but no network (after scripts/prepare_gpu.sh here):
# builds unet against that torch, runs the GPU tests (CTest label cuda) and the benchmark matrix
# against the PyTorch reference, and prints a short table last. Results also go to $OUT (or
# gpu-results) as JSON.
#   scripts/gpu_check.sh [all|test|bench|quick]
# all: build, GPU tests, full matrix; test: build, GPU tests, quick matrix (two rows); bench: build
# (incremental on a warm machine) and the full matrix; quick: build and the quick matrix.
set -euo pipefail
cd "$(dirname "$0")/.."
stage=${1:-all}
out=${OUT:-gpu-results}
mkdir -p "$out"
eval "$(bash .gpu-scripts/unpack-debs.sh .gpu-deps /tmp/unet-deps)"
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
# nvcc builds the fused kernels; CMake finds it on PATH or through CUDACXX.
for d in /usr/local/cuda/bin /usr/local/cuda-13*/bin; do [ -x "$d/nvcc" ] && export PATH="$d:$PATH" && break; done
torch_prefix=$(python3 -W ignore -c 'import torch; print(torch.utils.cmake_prefix_path)')
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
command -v nvcc >/dev/null && nvcc --version | tail -1 || echo "no nvcc: the fused kernels will be missing"
cmake -S . -B build-cuda -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$torch_prefix;$CMAKE_PREFIX_PATH" >"$out/configure.log" 2>&1 ||
  { tail -40 "$out/configure.log"; exit 1; }
start=$(date +%s)
cmake --build build-cuda -j "$(nproc)" 2>&1 | tail -3
echo "build: $(( $(date +%s) - start )) s"
if [ "$stage" = all ] || [ "$stage" = test ]; then
  (cd build-cuda && ctest -L cuda --output-on-failure) 2>&1 | tee "$out/ctest-cuda.log" | tail -25
fi
if [ "$stage" = all ] || [ "$stage" = bench ]; then
  # Where the time goes, eager (a replayed graph hides its kernels from some profilers): the
  # breakdown that orders the fused-kernel work.
  for m in "train 8" "predict 16"; do
    read -r mode bs <<<"$m"
    build-cuda/unet benchmark --exec-mode "$mode" --synthetic --precision bf16 --batch-size "$bs" --graphs off \
      --warmup-steps 5 --max-steps 5 --profile "$out/trace-$mode.json" --output "$out/profile-$mode.json" \
      | tee "$out/profile-$mode.txt" | head -14
  done
fi
matrix=$([ "$stage" = test ] || [ "$stage" = quick ] && echo quick || echo "")
UNET=build-cuda/unet PYTHON=python3 REF=.gpu-scripts/pytorch_reference.py OUT="$out" scripts/benchmark.sh cuda $matrix
