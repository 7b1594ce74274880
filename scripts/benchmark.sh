#!/usr/bin/env bash
# Side-by-side speed of unet and the PyTorch reference (../shared/bench/pytorch_reference.py) on
# one machine in one run: the same network, loss, optimizer, batch and input size, random inputs.
#   scripts/benchmark.sh [cpu|cuda] [quick]
# Environment: UNET (default build/unet), PYTHON (a python3 with torch; default .venv/bin/python,
# else python3), REF (the reference script), OUT (folder for the JSON results, default bench-results).
# Prints a markdown table last.
set -euo pipefail
cd "$(dirname "$0")/.."
device=${1:-cpu}
quick=${2:-}
unet=${UNET:-build/unet}
python=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
ref=${REF:-../shared/bench/pytorch_reference.py}
out=${OUT:-bench-results}
mkdir -p "$out"
rows=()

if [ "$device" = cpu ]; then
  # A full-size training step takes tens of seconds on a small CPU: few, small batches.
  matrix=("train 2 1 2" "predict 1 1 4")
  [ -n "$quick" ] && matrix=("predict 1 1 2")
else
  matrix=("train 8 10 40" "predict 1 10 100" "predict 16 10 40")
fi

for row in "${matrix[@]}"; do
  read -r mode bs warmup steps <<<"$row"
  json="$out/unet-$mode-bs$bs.json"
  "$unet" benchmark --exec-mode "$mode" --synthetic --device "$device" --batch-size "$bs" \
    --warmup-steps "$warmup" --max-steps "$steps" --output "$json" --quiet >/dev/null
  what=$([ "$mode" = train ] && echo train || echo infer)
  ref_line=""
  if [ -f "$ref" ]; then
    ref_line=$("$python" "$ref" --what "$what" --prec fp32 --bs "$bs" --mode eager --warmup "$warmup" --iters "$steps" 2>/dev/null | tail -n 1 || true)
  fi
  rows+=("$("$python" - "$json" "$ref_line" "$mode" "$bs" <<'PY'
import json, sys
ours = json.load(open(sys.argv[1]))
ref = json.loads(sys.argv[2]) if sys.argv[2].strip() else None
mode, bs = sys.argv[3], sys.argv[4]
r = f"{ref['img_per_s']:.2f}" if ref else "n/a"
ratio = f"{ours['images_per_second'] / ref['img_per_s']:.2f}x" if ref else "n/a"
print(f"| {mode} | {bs} | fp32 | {ours['images_per_second']:.2f} | {ours['latency_ms_mean']:.1f} | {ours['latency_ms_p90']:.1f} | {ours['latency_ms_p99']:.1f} | {r} | {ratio} |")
PY
)")
done

echo
echo "device: $device ($( [ "$device" = cpu ] && nproc || echo gpu ) $( [ "$device" = cpu ] && echo cores)), $(date -u +%F), input 572x572, reference U-Net, random inputs"
echo "| mode | batch | precision | unet img/s | unet ms mean | p90 | p99 | PyTorch eager img/s | unet / PyTorch |"
echo "|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
