#!/usr/bin/env bash
# Run here (with network) before a GPU check: downloads the build dependencies as Debian packages
# into .gpu-deps and copies the shared helper and reference scripts into .gpu-scripts, both
# git-ignored folders that travel to the GPU machine (name them in the device tool's carry).
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${SHARED:-../shared}
apt-get update -qq
"$shared/gpu/fetch-debs.sh" .gpu-deps libtiff-dev libpng-dev libcli11-dev nlohmann-json3-dev libgtest-dev libgmock-dev libgloo-dev
# The recursive dependencies include system libraries (PAM, SELinux, OpenSSL, readline, Kerberos,
# RDMA, ...) that the GPU machine has in newer versions of its own: unpacked onto its
# LD_LIBRARY_PATH they would shadow those for every program there. Keep only what unet builds and
# runs with (Gloo is used for its headers only).
keep='^(libcli11-dev|nlohmann-json3-dev|libgtest-dev|libgmock-dev|libgloo-dev|libtiff|libpng|libdeflate|libjbig|liblerc|libwebp|libjpeg|libzstd-dev|liblzma-dev)'
for f in .gpu-deps/*.deb; do basename "$f" | grep -qE "$keep" || rm -f "$f"; done
mkdir -p .gpu-scripts
cp "$shared/gpu/unpack-debs.sh" "$shared/bench/pytorch_reference.py" .gpu-scripts/
# The ISBI data (23 MB) for the accuracy stage and the end-to-end test (DATA=0 leaves it out: the
# carried folders must stay under the device tool's 64 MiB).
if [ "${DATA:-1}" != 0 ]; then
  mkdir -p .gpu-data
  cp -r "$shared/data/isbi2012" .gpu-data/
fi
echo "ready: carry .gpu-deps, .gpu-scripts and .gpu-data, then run scripts/gpu_check.sh there"
