#!/usr/bin/env bash
# One entry point on a fresh Debian/Ubuntu machine: install what is missing, build, then run
#   scripts/run.sh demo [unet demo options]   the embedded default job (synthetic data, ~1 minute)
#   scripts/run.sh test [ctest options]       the whole test suite
#   scripts/run.sh build                      only install and build
# LibTorch comes from PyPI's torch wheel (pinned below) in a project-local virtual environment
# (UNET_VENV, default .venv), unless UNET_TORCH_PREFIX names another LibTorch/torch CMake prefix.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-demo}
[ $# -gt 0 ] && shift
torch_version=2.11.0
venv=${UNET_VENV:-.venv}
build=${UNET_BUILD_DIR:-build}

log() { echo "[run.sh] $*" >&2; }
# A test dependency that did not install: its tests skip, except under UNET_CI=1 (.ci/run), where a
# skipped part of the suite would leave CI green without running it.
install_failed() {
  if [ "${UNET_CI:-}" = 1 ]; then log "$* (UNET_CI: failing)"; exit 1; fi
  log "$*"
}
root=$(pwd)
display_missing=()

# 1. System packages: compiler, CMake and the libraries that unet uses.
packages=(g++ cmake make libtiff-dev libpng-dev libcli11-dev nlohmann-json3-dev libgtest-dev libgmock-dev libgloo-dev libgd-dev libonnx-dev libprotobuf-dev libzip-dev libjemalloc-dev pkg-config python3 python3-venv)
missing=()
for p in "${packages[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  # python3 / python3-venv may come from elsewhere (pyenv, conda): only install them if absent.
  if python3 -m venv --help >/dev/null 2>&1; then
    filtered=(); for p in "${missing[@]}"; do [[ $p == python3* ]] || filtered+=("$p"); done
    missing=("${filtered[@]+"${filtered[@]}"}")
  fi
fi
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  log "installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The napari plugin's test draws a real viewer on a virtual X display (Xvfb, Mesa's GL).
if [ "$what" = test ]; then
  for p in xvfb xauth libgl1-mesa-dri libegl1 libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 \
           libxcb-render-util0 libxcb-xinerama0 libxcb-xfixes0 libxcb-shape0 libxcb-cursor0 libdbus-1-3 libfontconfig1; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || display_missing+=("$p")
  done
  if [ ${#display_missing[@]} -gt 0 ]; then
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
    log "installing ${display_missing[*]} (a virtual display for the napari plugin's test)"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${display_missing[@]}" >/dev/null ||
      log "no virtual display: the napari test runs offscreen, without its screenshot"
  fi
fi

# 2. LibTorch.
if [ -n "${UNET_TORCH_PREFIX:-}" ]; then
  torch_prefix=$UNET_TORCH_PREFIX
else
  if ! "$venv/bin/python" -W ignore -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$torch_version')" 2>/dev/null; then
    log "installing torch==$torch_version into $venv (a few GB, once)"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip
    "$venv/bin/python" -m pip install -q "torch==$torch_version"
  fi
  # nanobind builds the Python module (python/) beside the program.
  if ! "$venv/bin/python" -c "import nanobind" 2>/dev/null; then
    log "installing nanobind into $venv (the Python module's bindings)"
    "$venv/bin/python" -m pip install -q nanobind==3.1.0 scikit-build-core==1.1.2
  fi
  torch_prefix=$("$venv/bin/python" -W ignore -c 'import torch; print(torch.utils.cmake_prefix_path)')
  test_python=$(cd "$venv/bin" && pwd)/python
  # The tests' second implementation of the ISBI scores (tests/isbi_reference.py) needs scikit-image;
  # the export tests run the ONNX file in ONNX Runtime and OpenVINO (tests/onnx_reference.py) and
  # a bioimage.io package through the spec's own `bioimageio test` (pydantic 2.12+ breaks it; napari's npe2 refuses 2.11: 2.10.6 suits both).
  if [ "$what" = test ] && ! "$venv/bin/python" -c "import skimage" 2>/dev/null; then
    log "installing scikit-image into $venv (for the ISBI score tests)"
    "$venv/bin/python" -m pip install -q scikit-image || install_failed "scikit-image not installed: that test will skip"
  fi
  # The Python package's tests (pytest) and its napari plugin's, in a real viewer.
  if [ "$what" = test ] && ! "$venv/bin/python" -c "import pytest, pytestqt, napari, tifffile" 2>/dev/null; then
    log "installing pytest, tifffile, napari and pytest-qt into $venv (for the Python package's tests)"
    "$venv/bin/python" -m pip install -q pytest tifffile "napari[pyqt5]==0.9.2" pytest-qt pydantic==2.10.6 ||
      install_failed "napari not installed: the plugin's tests will skip"
  fi
  if [ "$what" = test ] && ! "$venv/bin/python" -c "import onnx, onnxruntime, openvino, bioimageio.core" 2>/dev/null; then
    log "installing onnx, onnxruntime, openvino and bioimageio.core into $venv (for the export tests)"
    "$venv/bin/python" -m pip install -q onnx==1.23.2 onnxruntime==1.32.0 openvino==2026.4.1 \
      bioimageio.core==0.11.0 bioimageio.spec==0.5.12.0 pydantic==2.10.6 ||
      install_failed "export runtimes not installed: those tests will skip"
  fi
fi

# 3. Build.
mkdir -p "$build"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$torch_prefix" -DUNET_TEST_PYTHON="${test_python:-}" >"$build/configure.log" 2>&1 ||
  { cat "$build/configure.log"; exit 1; }
cmake --build "$build" -j "$(nproc)"

# 4. Run.
case "$what" in
  demo) exec "$build/unet" demo "$@" ;;
  test)
    # The suite, then what it skipped and why (scripts/test_skips.py; under UNET_CI=1 a skip for want
    # of an installed dependency fails the run).
    cd "$build"
    status=0
    ctest --output-on-failure "$@" || status=$?
    strict=(); [ "${UNET_CI:-}" = 1 ] && strict=(--strict)
    python3 "$root/scripts/test_skips.py" . "${strict[@]+"${strict[@]}"}" || { [ "$status" -ne 0 ] || status=1; }
    exit "$status" ;;
  build) ;;
  *) echo "usage: scripts/run.sh demo|test|build [options]" >&2; exit 2 ;;
esac
