#!/usr/bin/env bash
# Which training target separates touching nuclei best on held-out images: two classes from
# instance labels (objects parted by a background line), the same with the U-Net paper's border
# weights, or three classes (background, interior, boundary; Caicedo et al. 2019), alone or with
# the separation term between touching objects (no class balance)? Each model is
# trained on the same synthetic nuclei, predicts instance labels for other synthetic nuclei (another
# seed), and `unet score --instances` matches them to the truth.
#
#   scripts/compare_instance_targets.sh [OUT]      (default runs/instance-targets)
#   STEPS=1500 SEEDS="0 1" UNET=build/unet THREADS=2 scripts/compare_instance_targets.sh
#   TARGETS="three-class three-class+separation" scripts/compare_instance_targets.sh   (some targets only)
set -euo pipefail
cd "$(dirname "$0")/.."
unet=${UNET:-build/unet}
out=${1:-runs/instance-targets}
steps=${STEPS:-1500}
seeds=${SEEDS:-0}
names=${TARGETS:-two-class two-class+border-weights three-class three-class+separation}
threads=${THREADS:-2}
mkdir -p "$out"
data() {  # data DIR SEED COUNT
  [ -d "$1/masks" ] || "$unet" demo --synthetic-kind nuclei --synthetic-size 256 --synthetic-count "$3" --seed "$2" \
    --write-data "$1" --max-steps 0 --model-dir "$out/unused" --quiet >/dev/null
}
data "$out/train-data" 0 40
data "$out/test-data" 100 12
net="--depth 3 --filters 16 --input-size 220 --input-mode tile --batch-size 4 --learning-rate 1e-3 --warmup-steps 5"
net="$net --max-steps $steps --fold none --overwrite --quiet --threads $threads --log-every 100000"
declare -A targets=(
  [two-class]="--classes 2"
  [two-class+border-weights]="--classes 2 --border-weights"
  [three-class]="--classes 3"
  [three-class+separation]="--classes 3 --border-weights --no-border-class-balance"
)
for seed in $seeds; do
  for name in $names; do
    [ -n "${targets[$name]+set}" ] || { echo "unknown target '$name' (${!targets[*]})" >&2; exit 2; }
    model="$out/seed$seed/$name"
    if [ ! -f "$model/trained" ]; then  # a run stopped halfway starts over
      "$unet" train --data-dir "$out/train-data" --mask-encoding instances ${targets[$name]} --seed "$seed" \
        --model-dir "$model" $net
      touch "$model/trained"
    fi
    methods="components watershed"
    [[ "$name" = three-class* ]] && methods=components  # interior/boundary models grow their interior either way
    for method in $methods; do
      pred="$model/pred-$method"
      rm -rf "$pred" "$model/score-$method.json"
      "$unet" predict --input "$out/test-data/images" --model-dir "$model" --output-dir "$pred" --instances "$method" \
        --no-overlays --no-probabilities --quiet --threads "$threads" >/dev/null
      "$unet" score --prediction "$pred" --truth "$out/test-data/masks" --instances -o "$model/score-$method.json" >/dev/null
    done
  done
done
python3 - "$out" $seeds <<'PY'
import json, statistics, sys, pathlib
out, seeds = pathlib.Path(sys.argv[1]), sys.argv[2:]
rows = [("two-class", "components"), ("two-class", "watershed"), ("two-class+border-weights", "components"),
        ("two-class+border-weights", "watershed"), ("three-class", "components"), ("three-class+separation", "components")]
print(f"| target | objects | F1@0.5 | F1@0.75 | mean AP | split | merged | predicted/true |")
print("|---|---|---|---|---|---|---|---|")
for name, method in rows:
    if not all((out / f"seed{s}" / name / f"score-{method}.json").exists() for s in seeds):
        continue  # a target not run (TARGETS)
    runs = [json.load(open(out / f"seed{s}" / name / f"score-{method}.json"))["overall"]["objects"] for s in seeds]
    def cell(key):
        v = [r[key] for r in runs]
        return f"{statistics.median(v):.3f}" + (f" ({min(v):.3f}-{max(v):.3f})" if len(v) > 1 else "")
    counts = "; ".join(f"{r['predicted']}/{r['truth']}" for r in runs)
    how = "interior grown" if name.startswith("three-class") else method
    print(f"| {name} | {how} | {cell('f1_50')} | {cell('f1_75')} | {cell('mean_ap')} | "
          f"{'; '.join(str(r['split']) for r in runs)} | {'; '.join(str(r['merged']) for r in runs)} | {counts} |")
PY
