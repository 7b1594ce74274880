"""The napari plugin in a real viewer (Qt on Xvfb, or offscreen without a screenshot): the manifest
is valid, the widget loads a model, segments an image layer in its worker thread and adds the
objects the Segmenter finds; the reader opens unet's files; the samples load. The screenshot of the
viewer with the widget goes to $UNET_SCREENSHOT (docs/images/napari-plugin.png comes from it)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tifffile

napari = pytest.importorskip("napari", reason="napari is not installed in the test Python")
pytest.importorskip("pytestqt", reason="pytest-qt is not installed in the test Python")
npe2 = pytest.importorskip("npe2")

import unet  # noqa: E402
import unet_napari  # noqa: E402
from unet_napari import _reader, _sample_data  # noqa: E402
from unet_napari._widget import SegmentWidget  # noqa: E402

MANIFEST = Path(unet_napari.__file__).with_name("napari.yaml")


@pytest.fixture(scope="module")
def plugin():
    manifest = npe2.PluginManifest.from_file(MANIFEST)
    manager = npe2.PluginManager.instance()
    if manifest.name not in manager._manifests:
        manager.register(manifest)
    return manifest


def test_manifest_names_what_exists(plugin):
    assert plugin.name == "unet-cpp"
    for command in plugin.contributions.commands:
        module, _, attribute = command.python_name.partition(":")
        assert callable(getattr(__import__(module, fromlist=[attribute]), attribute)), command.python_name
    assert {s.key for s in plugin.contributions.sample_data} == {"synthetic-em", "synthetic-nuclei"}


def test_samples():
    (image, meta, kind), (labels, _, labels_kind) = _sample_data.synthetic_nuclei()
    assert image.dtype == np.uint8 and image.shape == (256, 256) and kind == "image"
    assert labels_kind == "labels" and labels.max() > 5
    (em, _, _), (cells, _, _) = _sample_data.synthetic_em()
    assert em.shape == cells.shape and set(np.unique(cells)) == {0, 1}


def test_widget_segments_a_layer(make_napari_viewer, qtbot, plugin):
    viewer = make_napari_viewer()
    image, _, _ = _sample_data.synthetic_nuclei()[0]
    viewer.add_image(image, name="nuclei")
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Segment (unet)")
    assert widget.layer.currentText() == "nuclei"
    widget.model.setCurrentText("nuclei-fluorescence")
    widget.probabilities.setChecked(True)
    worker = widget.run()
    qtbot.waitUntil(lambda: "nuclei objects" in viewer.layers and widget.run_button.isEnabled(), timeout=120_000)
    assert worker is not None and widget.progress.value() == 1
    labels = viewer.layers["nuclei objects"].data
    expected = unet.Segmenter.load("nuclei-fluorescence").predict(image, instances=True)
    assert np.array_equal(labels, expected.labels)
    assert len(np.unique(labels)) - 1 >= 10, "the shipped model finds the synthetic nuclei"
    # One map per class of the model (the shipped model's: background, centre and 8 directions).
    assert viewer.layers["nuclei probabilities"].data.shape == expected.probabilities.shape == (10, 256, 256)
    assert "objects" in widget.status.text()
    assert widget.layer.currentText() == "nuclei"
    shot = os.environ.get("UNET_SCREENSHOT")
    if shot:
        viewer.window._qt_window.resize(1280, 720)
        viewer.reset_view()
        picture = viewer.screenshot(path=shot, canvas_only=False, flash=False)
        assert picture.ndim == 3 and len(np.unique(picture.reshape(-1, picture.shape[-1]), axis=0)) > 50


def test_widget_reports_errors(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((40, 40), np.uint8), name="blank")
    widget = SegmentWidget(viewer)
    widget.model.setCurrentText(str(tmp_path / "no-model"))
    widget.run()
    qtbot.waitUntil(lambda: widget.run_button.isEnabled(), timeout=30_000)
    assert widget.status.text().startswith("error:") and "no-model" in widget.status.text()


def test_reader_opens_outputs(make_napari_viewer, tmp_path, plugin):
    labels = np.zeros((32, 32), np.uint16)
    labels[4:10, 4:10], labels[20:30, 12:20] = 1, 2
    tifffile.imwrite(tmp_path / "cells_instances.tif", labels)
    tifffile.imwrite(tmp_path / "cells_probabilities.tif", np.random.default_rng(0).random((32, 32), np.float32))
    assert _reader.get_reader(str(tmp_path / "cells.png")) is None
    viewer = make_napari_viewer()
    layers = viewer.open(tmp_path / "cells_instances.tif", plugin="unet-cpp")
    assert layers[0]._type_string == "labels" and np.array_equal(layers[0].data, labels)
    layers = viewer.open(tmp_path / "cells_probabilities.tif", plugin="unet-cpp")
    assert layers[0]._type_string == "image" and tuple(layers[0].contrast_limits) == (0.0, 1.0)
