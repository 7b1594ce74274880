#!/usr/bin/env bash
# Fuzzes unet's readers of hostile input with libFuzzer (clang, UndefinedBehaviorSanitizer, and
# AddressSanitizer where it applies):
#   scripts/fuzz.sh [SECONDS]      each target for SECONDS (default 60), from fuzz/corpus/<target>
# Targets: image (TIFF and PNG readers), options (the command-line parser, with the dictionary
# fuzz/options.dict) and readers (score's pairs of images, benchmark's baseline JSON), built with ASan and
# UBSan in build-fuzz; checkpoint (the checkpoint reader), built with UBSan alone in
# build-fuzz-ubsan: ASan's operator new reports an allocation failure instead of throwing
# std::bad_alloc, which is how unet bounds what a crafted checkpoint makes LibTorch allocate.
# New inputs go to a scratch corpus, not the repository; a crash or sanitizer report leaves its
# input in $OUT (default fuzz-results) and makes the script fail. Installs clang-14 and
# libclang-rt-14-dev when missing; LibTorch as for the normal build (scripts/run.sh build first).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
out=${OUT:-fuzz-results}
venv=${UNET_VENV:-.venv}
torch_prefix=${UNET_TORCH_PREFIX:-$("$venv/bin/python" -W ignore -c 'import torch; print(torch.utils.cmake_prefix_path)')}
mkdir -p "$out"
if ! command -v clang++-14 >/dev/null || ! dpkg-query -W -f='${Status}' libclang-rt-14-dev 2>/dev/null | grep -q "ok installed"; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  echo "[fuzz.sh] installing clang-14 and libclang-rt-14-dev" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq clang-14 libclang-rt-14-dev >/dev/null
fi

# build DIR SANITIZERS TARGETS...: CPU code only (the readers under test do not touch CUDA).
build() {
  local dir=$1 sanitizers=$2
  shift 2
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++-14 -DUNET_FUZZ=ON \
    -DUNET_SANITIZERS="$sanitizers" -DUNET_USE_CUDA=OFF -DUNET_BUILD_TESTS=OFF -DCMAKE_PREFIX_PATH="$torch_prefix" \
    >"$out/configure-$(basename "$dir").log" 2>&1 || { tail -30 "$out/configure-$(basename "$dir").log"; exit 1; }
  cmake --build "$dir" -j "$(nproc)" --target "$@" >"$out/build-$(basename "$dir").log" 2>&1 ||
    { grep -E "error" "$out/build-$(basename "$dir").log" | head -30; exit 1; }
}
start=$(date +%s)
build "${UNET_FUZZ_BUILD_DIR:-build-fuzz}" address,undefined fuzz_image fuzz_options fuzz_readers
build "${UNET_FUZZ_BUILD_DIR:-build-fuzz}-ubsan" undefined fuzz_checkpoint
echo "fuzz builds: $(( $(date +%s) - start )) s"

status=0
for target in image checkpoint options readers; do
  binary=${UNET_FUZZ_BUILD_DIR:-build-fuzz}/fuzz/fuzz_$target
  [ "$target" = checkpoint ] && binary=${UNET_FUZZ_BUILD_DIR:-build-fuzz}-ubsan/fuzz/fuzz_$target
  scratch=$(mktemp -d)
  cp fuzz/corpus/$target/* "$scratch"/
  dict=(); [ -f "fuzz/$target.dict" ] && dict=(-dict="fuzz/$target.dict")
  # LibTorch is not instrumented and keeps some allocations for the life of the process.
  if ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
     "$binary" "${dict[@]+"${dict[@]}"}" -max_total_time="$seconds" -rss_limit_mb=4096 -malloc_limit_mb=65536 -timeout=30 \
       -artifact_prefix="$out/$target-" "$scratch" >"$out/$target.log" 2>&1; then
    echo "fuzz_$target: $(grep -Eo 'Done [0-9]+ runs in [0-9]+ second' "$out/$target.log" | tail -1) (corpus $(ls "$scratch" | wc -l) inputs), no findings"
  else
    status=1
    echo "fuzz_$target: FINDING, see $out/$target.log and $out/$target-*"; tail -30 "$out/$target.log"
  fi
  rm -rf "$scratch"
done
exit $status
