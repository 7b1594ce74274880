#!/usr/bin/env bash
# Side-by-side speed of unet and the PyTorch reference (../shared/bench/pytorch_reference.py) on
# one machine in one run: the same network, loss, optimizer, batch and input size, random inputs.
#   scripts/benchmark.sh cpu [--rounds N --rows ... --precisions ...]   (scripts/cpu_benchmark.py;
#                                         adds torch.compile, OpenVINO and ONNX Runtime)
#   scripts/benchmark.sh cuda [quick]
# Environment: UNET (default build/unet), PYTHON (a python3 with torch; default .venv/bin/python,
# else python3), REF (the reference script), OUT (folder for the JSON results, default
# bench-results), REF_MODES (PyTorch modes to run: default "eager" on cpu, "eager compile" on cuda).
# Prints a markdown table last.
set -euo pipefail
cd "$(dirname "$0")/.."
device=${1:-cpu}
if [ "$device" = cpu ]; then
  # On CPUs: every deployable runtime, in interleaved rounds (scripts/cpu_benchmark.py); the peers'
  # Python packages come from BENCH_DEPS (default .bench-deps: pip install --target .bench-deps
  # openvino onnxruntime onnx numpy), installed there when missing.
  deps=${BENCH_DEPS:-.bench-deps}
  python=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
  [ -d "$deps/openvino" ] || "$python" -m pip install -q --target "$deps" openvino onnxruntime onnx numpy
  shift || true
  PYTHONPATH="$PWD/$deps${PYTHONPATH:+:$PYTHONPATH}" exec "$python" scripts/cpu_benchmark.py --python "$python" "$@"
fi
quick=${2:-}
unet=${UNET:-build/unet}
python=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
ref=${REF:-../shared/bench/pytorch_reference.py}
out=${OUT:-bench-results}
mkdir -p "$out"
rows=()

# Rows: mode batch warm-up timed-steps precision.
if [ "$device" = cpu ]; then
  # A full-size training step takes seconds on a small CPU: few, small batches.
  matrix=("train 2 1 2 fp32" "predict 1 1 4 fp32")
  [ -n "$quick" ] && matrix=("predict 1 1 2 fp32")
  ref_modes=${REF_MODES:-eager}
else
  matrix=("train 8 10 40 fp32" "train 8 10 40 fp16" "train 8 10 40 bf16"
          "predict 1 10 100 fp16" "predict 1 10 100 bf16" "predict 16 10 40 fp16" "predict 16 10 40 bf16")
  [ -n "$quick" ] && matrix=("train 8 5 20 bf16" "predict 16 5 20 bf16")
  ref_modes=${REF_MODES:-eager compile}
fi

# unet variants per row: name and flags. On GPUs: eager, CUDA graphs, and graphs + fused kernels.
if [ "$device" = cpu ]; then
  variants=${VARIANTS:-"eager:--graphs=off"}
else
  variants=${VARIANTS:-"eager:--graphs=off,--fused=off graphs:--graphs=on,--fused=off fused:--graphs=on,--fused=on"}
fi

for row in "${matrix[@]}"; do
  read -r mode bs warmup steps prec <<<"$row"
  # unet's fp32 is strict; the reference's fp32 is PyTorch's default (TF32 convolutions): compare
  # like with like on GPUs.
  uprec=$([ "$device" != cpu ] && [ "$prec" = fp32 ] && echo tf32 || echo "$prec")
  ours=()
  for v in $variants; do
    name=${v%%:*}
    flags=${v#*:}
    json="$out/unet-$mode-bs$bs-$prec-$name.json"
    # shellcheck disable=SC2086
    if "$unet" benchmark --exec-mode "$mode" --synthetic --device "$device" --batch-size "$bs" --precision "$uprec" \
      --warmup-steps "$warmup" --max-steps "$steps" --output "$json" --quiet ${flags//,/ } >"$out/unet-$mode-bs$bs-$prec-$name.log" 2>&1; then
      ours+=("$name=$json")
    else
      echo "unet $mode bs$bs $prec $name failed: $(tail -n 1 "$out/unet-$mode-bs$bs-$prec-$name.log")" >&2
      ours+=("$name=")
    fi
  done
  what=$([ "$mode" = train ] && echo train || echo infer)
  refs=()
  for m in $ref_modes; do
    line=""
    [ -f "$ref" ] && line=$("$python" -W ignore "$ref" --what "$what" --prec "$prec" --bs "$bs" --mode "$m" \
      --warmup "$warmup" --iters "$steps" 2>/dev/null | tail -n 1 || true)
    refs+=("${line:-null}")
  done
  rows+=("$("$python" - "$mode" "$bs" "$uprec" "${#ours[@]}" "${ours[@]}" "${refs[@]}" <<'PY'
import json, sys
mode, bs, prec, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ours = {}
for item in sys.argv[5:5 + n]:
    name, path = item.split("=", 1)
    ours[name] = json.load(open(path)) if path else None
refs = [json.loads(t) if t.strip() not in ("", "null") else None for t in sys.argv[5 + n:]]
cells = [mode, bs, prec] + [f"{o['images_per_second']:.1f}" if o else "failed" for o in ours.values()]
best = max((o for o in ours.values() if o), key=lambda o: o["images_per_second"], default=None)
if best:
    mem = best.get("peak_memory_bytes")
    cells += [f"{best['latency_ms_mean']:.1f} / {best['latency_ms_p90']:.1f} / {best['latency_ms_p95']:.1f} / {best['latency_ms_p99']:.1f}",
              f"{mem / 2**30:.1f}" if mem else "-"]
else:
    cells += ["-", "-"]
for ref in refs:
    cells += [f"{ref['img_per_s']:.1f}", f"{best['images_per_second'] / ref['img_per_s']:.2f}x" if best else "-"] if ref else ["n/a", "n/a"]
print("| " + " | ".join(cells) + " |")
PY
)")
done

header="| mode | batch | precision |"
rule="|---|---|---|"
for v in $variants; do header+=" unet ${v%%:*} img/s |"; rule+="---|"; done
header+=" best: ms mean / p90 / p95 / p99 | peak GiB |"
rule+="---|---|"
for m in $ref_modes; do header+=" PyTorch $m img/s | best / $m |"; rule+="---|---|"; done
echo
echo "device: $device ($( [ "$device" = cpu ] && echo "$(nproc) cores" || nvidia-smi --query-gpu=name --format=csv,noheader | head -1)), $(date -u +%F), input 572x572, reference U-Net, random inputs"
echo "$header"
echo "$rule"
printf '%s\n' "${rows[@]}"
