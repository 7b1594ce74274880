#!/usr/bin/env bash
# Run on a CUDA machine that has a pip torch but no network (after scripts/prepare_gpu.sh here):
# builds unet against that torch, runs the GPU tests (CTest label cuda) and the benchmark matrix
# against the PyTorch reference, and prints a short table last. Results also go to $OUT (or
# gpu-results) as JSON.
#   scripts/gpu_check.sh [all|test|tests|build|bench|quick|accuracy]
# build: the CLI alone (for scripts/gpu_nuclei.sh); all: build, GPU tests, full matrix; test: build, GPU tests, quick matrix (two rows); tests: build
# and GPU tests only (about 3 minutes on 16 cores, for a rerun after fixes); bench: build
# (incremental on a warm machine), profiles, the NCCL world-size-1 cost and the full matrix; quick:
# build and the quick matrix; accuracy: build and a full-size cross-validation of the folds in
# FOLDS (default 0) with the reference settings in PRECISION (default bf16), on .gpu-data.
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
cmake -S . -B build-cuda -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$torch_prefix;$CMAKE_PREFIX_PATH" \
  -DUNET_ISBI_DIR="$PWD/.gpu-data/isbi2012" >"$out/configure.log" 2>&1 ||
  { tail -40 "$out/configure.log"; exit 1; }
start=$(date +%s)
# Only what the stage runs: the CLI, and the GPU tests for the test stages.
targets=(unet)
{ [ "$stage" = all ] || [ "$stage" = test ] || [ "$stage" = tests ]; } && targets+=(test_gpu_CUDA test_fused_CUDA)
cmake --build build-cuda -j "$(nproc)" --target "${targets[@]}" >"$out/build.log" 2>&1 ||
  { grep -E "error|Error" "$out/build.log" | head -30; tail -20 "$out/build.log"; exit 1; }
echo "build: $(( $(date +%s) - start )) s"
[ "$stage" = build ] && exit 0
# The GPU tests' failures are this script's exit status (after the benchmarks, which run anyway).
tests_rc=0
if [ "$stage" = all ] || [ "$stage" = test ] || [ "$stage" = tests ]; then
  (cd build-cuda && ctest -L cuda --output-on-failure --timeout 240) >"$out/ctest-cuda.log" 2>&1 || tests_rc=$?
  tail -25 "$out/ctest-cuda.log"
  [ "$tests_rc" -eq 0 ] || echo "GPU tests FAILED (ctest exit status $tests_rc; all of it in $out/ctest-cuda.log)" >&2
  # A GPU test that skips here (no CUDA kernels built, say) did not run: that fails too.
  python3 scripts/test_skips.py build-cuda --gpu | tee -a "$out/ctest-cuda.log" || { [ "$tests_rc" -ne 0 ] || tests_rc=1; }
fi
[ "$stage" = tests ] && exit "$tests_rc"
if [ "$stage" = accuracy ]; then
  # The reference's schedule and settings: batch 8, 6,400 steps, Adam 1e-4, L2 5e-4, augmentation.
  build-cuda/unet cross-validate --data-dir .gpu-data/isbi2012 --folds "${FOLDS:-0}" --precision "${PRECISION:-bf16}" \
    --augment --max-steps "${STEPS:-6400}" --log-every 400 --model-dir /tmp/unet-cv --overwrite 2>&1 | tee "$out/cv.txt" | grep -v "^step"
  cp /tmp/unet-cv/cv_results.json "$out/" 2>/dev/null || true
  for f in /tmp/unet-cv/fold-*; do cp "$f/log.jsonl" "$out/$(basename "$f")-log.jsonl" 2>/dev/null || true; done
  exit 0
fi
if [ "$stage" = all ] || [ "$stage" = bench ]; then
  # The NCCL process group at world size 1 against none (issue: under 2%); both eager, as
  # data-parallel runs do not use graphs.
  build-cuda/unet benchmark --exec-mode train --synthetic --precision bf16 --batch-size 8 --graphs off \
    --warmup-steps 10 --max-steps 40 --output "$out/nopg.json" --quiet || echo "no-process-group benchmark failed"
  build-cuda/unet launch --nproc-per-node 1 -- benchmark --exec-mode train --synthetic --precision bf16 --batch-size 8 \
    --graphs off --warmup-steps 10 --max-steps 40 --output "$out/nccl1.json" --baseline "$out/nopg.json" | tail -3 || echo "NCCL world-size-1 benchmark failed"
  # Where the time goes, eager (a replayed graph hides its kernels from some profilers): the
  # breakdown that orders the fused-kernel work.
  for m in "train 8" "predict 16"; do
    read -r mode bs <<<"$m"
    build-cuda/unet benchmark --exec-mode "$mode" --synthetic --precision bf16 --batch-size "$bs" --graphs off \
      --warmup-steps 5 --max-steps 5 --profile "$out/trace-$mode.json" --output "$out/profile-$mode.json" \
      | tee "$out/profile-$mode.txt" | head -14 || echo "profile $mode failed"
  done
fi
matrix=$([ "$stage" = test ] || [ "$stage" = quick ] && echo quick || echo "")
UNET=build-cuda/unet PYTHON=python3 REF=.gpu-scripts/pytorch_reference.py OUT="$out" scripts/benchmark.sh cuda $matrix
exit "$tests_rc"
