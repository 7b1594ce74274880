#!/usr/bin/env bash
# Run on a CUDA machine after `scripts/gpu_check.sh tests` (which builds build-cuda/unet there):
# trains nucleus models side by side on one GPU from a kromp2020 folder made here by
# `scripts/nucleus_data.py kromp2020` (its train and val splits copied into $DATA; the test split
# stays here), then scores each on the validation split. Checkpoints, logs and scores go to $OUT
# (or gpu-results).
#   DATA=.gpu-nuclei STEPS=3000 LIMIT=300 scripts/gpu_nuclei.sh NAME:FLAGS [NAME:FLAGS ...]
# e.g. scripts/gpu_nuclei.sh "ib0:--seed 0" "dist0:--instance-targets distance --seed 0"
# Every run shares the recipe below (FLAGS add to it) and gets an equal share of the cores for its
# loader. A run still going after LIMIT seconds is stopped as Ctrl-C stops it (it saves its
# checkpoint), so that a device lease ends with models rather than without.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-results}
data=${DATA:-.gpu-nuclei}
steps=${STEPS:-3000}
limit=${LIMIT:-300}
precision=${PRECISION:-bf16}
unet=${UNET:-build-cuda/unet}
mkdir -p "$out"
[ -x "$unet" ] || { echo "no $unet: run scripts/gpu_check.sh tests first"; exit 1; }
loader=$(( $(nproc) / $# > 1 ? $(nproc) / $# : 1 ))
recipe="--data-dir $data/train --fold none --augment --normalize percentile --mask-encoding instances
  --depth 3 --filters 32 --input-size 220 --input-mode tile --batch-size 8 --learning-rate 1e-3
  --max-steps $steps --log-every 250 --checkpoint-every 500 --loader-threads $loader --precision $precision"
start=$(date +%s)
pids=()
for run in "$@"; do
  name=${run%%:*} flags=${run#*:}
  # shellcheck disable=SC2086
  "$unet" train $recipe $flags --model-dir "/tmp/nuclei-$name" --overwrite >"$out/$name-train.log" 2>&1 &
  pids+=($!)
done
while :; do
  running=0
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && running=1; done
  [ $running = 0 ] && break
  if [ $(( $(date +%s) - start )) -ge "$limit" ]; then
    echo "time limit ($limit s): stopping the runs still going"
    for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    break
  fi
  sleep 2
done
echo "trained $# models in $(( $(date +%s) - start )) s"
for run in "$@"; do
  name=${run%%:*}
  "$unet" evaluate --model-dir "/tmp/nuclei-$name" --data-dir "$data/val" --fold none --log-dir "/tmp/nuclei-$name/val" \
    >"$out/$name-val.txt" 2>&1 &
done
wait
for run in "$@"; do
  name=${run%%:*}
  # The model without its optimizer state (a third of the size): what comes back and what ships.
  "$unet" export --model-dir "/tmp/nuclei-$name" --format checkpoint -o "$out/$name.pt" >/dev/null 2>&1 || echo "$name: no checkpoint"
  grep -E "^trained|images/s" "$out/$name-train.log" | tail -1 | sed "s/^/$name: /"
  grep -E "objects \(|Dice per class" "$out/$name-val.txt" | sed "s/^/$name: /"
done
