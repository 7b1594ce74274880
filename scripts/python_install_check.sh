#!/usr/bin/env bash
# The Python package as a user installs it: a fresh virtual environment, `pip install .` of this
# checkout, and the package's tests run against the installed copy (not the build tree).
#   scripts/python_install_check.sh [pytest options]
# `pip install .` builds with scikit-build-core in the build tree of scripts/run.sh (UNET_BUILD_DIR,
# default build), with that tree's LibTorch (Torch_DIR: the same pinned torch, other paths), so that
# its compiled parts are reused and only the module is compiled again; the installed module then
# runs on the fresh environment's torch. Build isolation is off (the build needs torch's CMake
# files; an isolated build would fetch torch a second time); the build requirements come from
# pyproject.toml. UNET_OWN_TORCH=1 builds against the fresh environment's torch instead, as a user's
# `pip install .` does (every part compiles again, twice: here and when the tree's own cache is back).
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(realpath "${UNET_BUILD_DIR:-build}")
clean=${UNET_CLEAN_VENV:-$(mktemp -d /tmp/unet-clean-venv.XXXXXX)}
log() { echo "[python_install_check] $*" >&2; }
[ -x "$build/unet" ] || { log "no $build/unet: run scripts/run.sh build first"; exit 1; }
log "fresh virtual environment in $clean"
python3 -m venv "$clean"
"$clean/bin/python" -m pip install -q torch==2.11.0 nanobind==3.1.0 scikit-build-core==1.1.2 pytest
log "pip install . (scikit-build-core, build tree $build)"
# scikit-build-core leaves its settings in the build tree's cache (its Python, a temporary install
# prefix, SKBUILD): the tree's own cache comes back afterwards, also when the install fails.
cp "$build/CMakeCache.txt" "$build/CMakeCache.txt.before-pip"
restore_cache() {
  mv -f "$build/CMakeCache.txt.before-pip" "$build/CMakeCache.txt"
  cmake -S . -B "$build" >"$build/configure.log" 2>&1 || cat "$build/configure.log"
}
trap restore_cache EXIT
same_torch=()
if [ -z "${UNET_OWN_TORCH:-}" ]; then
  for package in Torch Caffe2; do
    dir=$(sed -n "s/^${package}_DIR:PATH=//p" "$build/CMakeCache.txt")
    if [ -n "$dir" ]; then same_torch+=(-C "cmake.define.${package}_DIR=$dir"); fi
  done
fi
# scikit-build-core wipes a build tree's cache when its own path changed since the last run (each
# run's fresh environment has another): its record of that run goes, the tree's cache stays.
rm -f "$build/.skbuild-info.json"
CMAKE_GENERATOR="Unix Makefiles" "$clean/bin/python" -m pip install -q --no-build-isolation -C build-dir="$build" "${same_torch[@]}" .
restore_cache
trap - EXIT
log "installed: $("$clean/bin/python" -m pip show unet-cpp | grep -E '^(Name|Version|Location)' | tr '\n' ' ')"
# From outside the checkout, with nothing on PYTHONPATH: the installed package and its models.
tests=$PWD/tests/python
cd "$(mktemp -d)"
env -u PYTHONPATH -u UNET_MODELS_DIR UNET_BIN="$build/unet" "$clean/bin/python" - <<'PY'
import unet, unet_napari, importlib.metadata as md
assert "site-packages" in unet.__file__, unet.__file__
entry = [e for e in md.entry_points(group="napari.manifest") if e.name == "unet-cpp"]
assert entry and entry[0].value == "unet_napari:napari.yaml", entry
print("import unet:", unet.__file__, "| shipped models:", [n for n, _ in unet._unet.pretrained_models()])
PY
env -u PYTHONPATH -u UNET_MODELS_DIR UNET_BIN="$build/unet" "$clean/bin/python" -m pytest -q -p no:cacheprovider \
  "$tests/test_package.py" "$@"
