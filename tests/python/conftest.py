"""Shared fixtures of the Python package's tests: a small trained model (by `unet.train`, which is
also the train -> checkpoint -> Segmenter round trip), the unet program to compare with, a
scratch folder. UNET_BIN names the program (the build tree's, or the CI's)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import unet

# A network small enough for seconds of training on two cores.
NET = dict(depth=2, filters=4, input_size=60, input_mode="tile", batch_size=2, quiet=True)


def unet_program() -> str:
    path = os.environ.get("UNET_BIN", "")
    if not path or not os.path.exists(path):
        pytest.skip("UNET_BIN does not name the unet program (set by ctest)")
    return path


def run_program(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([unet_program(), *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="session")
def nuclei_model(tmp_path_factory) -> Path:
    """Interior/boundary nuclei model, trained through the Python API with a progress callback."""
    folder = tmp_path_factory.mktemp("nuclei") / "model"
    calls = []
    unet.train(
        synthetic=True, synthetic_kind="nuclei", synthetic_size=96, synthetic_count=4, mask_encoding="instances",
        classes=3, max_steps=6, log_every=3, model_dir=folder, seed=1,
        progress=lambda step, steps, loss, ips: calls.append((step, steps, loss)), **NET,
    )
    assert [c[0] for c in calls] == [3, 6] and all(c[1] == 6 for c in calls)
    assert all(c[2] > 0 for c in calls)
    return folder


@pytest.fixture(scope="session")
def em_model(tmp_path_factory) -> Path:
    """Two-class membrane model (plain classes, 0/255 masks)."""
    folder = tmp_path_factory.mktemp("em") / "model"
    unet.train(synthetic=True, synthetic_size=96, synthetic_count=4, max_steps=2, model_dir=folder, seed=2, **NET)
    return folder
