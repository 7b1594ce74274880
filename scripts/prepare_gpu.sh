#!/usr/bin/env bash
# Run here (with network) before a GPU check: downloads the build dependencies as Debian packages
# into .gpu-deps and copies the shared helper and reference scripts into .gpu-scripts, both
# git-ignored folders that travel to the GPU machine (name them in the device tool's carry).
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${SHARED:-../shared}
apt-get update -qq
"$shared/gpu/fetch-debs.sh" .gpu-deps libtiff-dev libpng-dev libcli11-dev nlohmann-json3-dev libgtest-dev libgmock-dev libgloo-dev
mkdir -p .gpu-scripts
cp "$shared/gpu/unpack-debs.sh" "$shared/bench/pytorch_reference.py" .gpu-scripts/
# The ISBI data (23 MB) for the accuracy stage and the end-to-end test.
mkdir -p .gpu-data
cp -r "$shared/data/isbi2012" .gpu-data/
echo "ready: carry .gpu-deps, .gpu-scripts and .gpu-data, then run scripts/gpu_check.sh there"
