#!/usr/bin/env bash
# Run on a CUDA machine after `scripts/gpu_check.sh build` (which builds build-cuda/unet there) and
# `eval "$(bash .gpu-scripts/unpack-debs.sh .gpu-deps /tmp/unet-deps)"` (the libraries it links):
# trains nucleus models side by side on one GPU and scores each on every other split of its data.
# DATA holds one folder per data set made here by `scripts/nucleus_data.py` (DATA/SET/train, and
# any of val, test or other split folders beside it, e.g. another set's test split copied in as
# DATA/SET/cross-gbm40 for a check on data the model never saw). Checkpoints (model only), logs and
# scores go to $OUT (or gpu-results).
#   DATA=.gpu-nuclei STEPS=2500 LIMIT=300 scripts/gpu_nuclei.sh NAME:SET:FLAGS [NAME:SET:FLAGS ...]
# e.g. scripts/gpu_nuclei.sh "ib0:kromp:--seed 0" "dist0:kromp:--instance-targets distance --seed 0"
# Every run shares the recipe below (FLAGS add to it, and a flag given again there wins) and gets an
# equal share of the cores for its loader unless FLAGS name --loader-threads. A run still going
# after LIMIT seconds is stopped as Ctrl-C stops it (it saves its checkpoint), so that a device
# lease ends with models rather than without.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-results}
data=${DATA:-.gpu-nuclei}
steps=${STEPS:-2500}
limit=${LIMIT:-300}
precision=${PRECISION:-bf16}
unet=${UNET:-build-cuda/unet}
mkdir -p "$out"
[ -x "$unet" ] || { echo "no $unet: run scripts/gpu_check.sh build first"; exit 1; }
for run in "$@"; do
  rest=${run#*:} set=${rest%%:*}
  [ -d "$data/$set/train" ] || { echo "$run: no $data/$set/train"; exit 1; }
done
loader=$(( $(nproc) / $# > 1 ? $(nproc) / $# : 1 ))
recipe="--fold none --augment --normalize percentile --mask-encoding instances
  --depth 3 --filters 32 --input-size 220 --input-mode tile --batch-size 8 --learning-rate 1e-3
  --max-steps $steps --log-every 250 --checkpoint-every 500 --loader-threads $loader --precision $precision"
start=$(date +%s)
pids=()
for run in "$@"; do
  name=${run%%:*} rest=${run#*:} set=${rest%%:*} flags=
  [[ $rest == *:* ]] && flags=${rest#*:}
  # shellcheck disable=SC2086
  "$unet" train --data-dir "$data/$set/train" $recipe $flags --model-dir "/tmp/nuclei-$name" --overwrite \
    >"$out/$name-train.log" 2>&1 &
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
# The models first (what a lease that ends early must not lose): without their optimizer state (a
# third of the size), what comes back and what ships.
for run in "$@"; do
  name=${run%%:*}
  "$unet" export --model-dir "/tmp/nuclei-$name" --format checkpoint -o "$out/$name.pt" >/dev/null 2>&1 || echo "$name: no checkpoint"
  grep -E "^trained|images/s" "$out/$name-train.log" | tail -1 | sed "s/^/$name: /"
done
# Then the scores, one evaluation at a time: each uses every core for its objects and metrics, and
# ten at once (2026-12-04) spin-waited past the lease.
for run in "$@"; do
  name=${run%%:*} rest=${run#*:} set=${rest%%:*}
  for split in "$data/$set"/*/; do
    split=$(basename "$split")
    [ "$split" = train ] && continue
    "$unet" evaluate --model-dir "/tmp/nuclei-$name" --data-dir "$data/$set/$split" --fold none --mask-encoding instances \
      --log-dir "/tmp/nuclei-$name/$split" >"$out/$name-$split.txt" 2>&1
  done
done
for run in "$@"; do
  name=${run%%:*}
  for f in "$out/$name"-*.txt; do
    grep -E "objects \(" "$f" | sed "s/^ *objects ([^)]*) */$(basename "$f" .txt): /"
  done
done
