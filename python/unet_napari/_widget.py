"""The dock widget: pick a model, segment the selected image layer in a worker thread, add the
objects (or classes) as a Labels layer and, if asked, the probabilities as an Image layer."""

from __future__ import annotations

import os

import numpy as np
from napari.qt.threading import thread_worker
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

import unet


class SegmentWidget(QWidget):
    """Segment the selected image layer with a unet model (a model folder, a checkpoint, a
    TorchScript export, or a shipped model's name)."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self._segmenters: dict[tuple, unet.Segmenter] = {}
        self.worker = None

        self.model = QComboBox()
        self.model.setEditable(True)
        self.model.addItems([name for name, _ in unet._unet.pretrained_models()])
        self.model.setToolTip("A model folder (unet train's model_dir), checkpoint.pt, an export, or a shipped model")
        pick_file = QPushButton("File...")
        pick_file.setToolTip("A checkpoint (checkpoint.pt) or a TorchScript export (unet export)")
        pick_file.clicked.connect(self._browse_file)
        pick_folder = QPushButton("Folder...")
        pick_folder.setToolTip("A model folder: unet train's model_dir, with checkpoint.pt")
        pick_folder.clicked.connect(self._browse_folder)
        model_row = QHBoxLayout()
        model_row.addWidget(self.model, 1)
        model_row.addWidget(pick_file)
        model_row.addWidget(pick_folder)

        self.layer = QComboBox()
        self.instances = QCheckBox("objects (instance labels)")
        self.instances.setChecked(True)
        self.probabilities = QCheckBox("probabilities layer")
        self.tta = QCheckBox("test-time augmentation (about 4-5x slower)")
        self.run_button = QPushButton("Segment")
        self.run_button.clicked.connect(self.run)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.status = QLabel("")
        self.status.setWordWrap(True)

        form = QFormLayout()
        form.addRow("model", model_row)
        form.addRow("image", self.layer)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        for w in (self.instances, self.probabilities, self.tta, self.run_button, self.progress, self.status):
            layout.addWidget(w)
        layout.addStretch(1)

        self.viewer.layers.events.inserted.connect(self._refresh_layers)
        self.viewer.layers.events.removed.connect(self._refresh_layers)
        self.viewer.layers.selection.events.active.connect(self._refresh_layers)
        self._refresh_layers()

    def _browse_file(self):
        path, _ = QFileDialog.getOpenFileName(self, "Model file", "", "Models (*.pt *.pth *.ts);;All files (*)")
        if path:
            self.model.setCurrentText(path)

    def _browse_folder(self):
        path = QFileDialog.getExistingDirectory(self, "Model folder")
        if path:
            self.model.setCurrentText(path)

    def _refresh_layers(self, *_):
        current = self.layer.currentText()
        names = [layer.name for layer in self.viewer.layers if layer._type_string == "image"]
        self.layer.clear()
        self.layer.addItems(names)
        active = self.viewer.layers.selection.active
        choice = active.name if active is not None and active.name in names else current
        if choice in names:
            self.layer.setCurrentText(choice)

    def segmenter(self, path: str, tta: bool) -> unet.Segmenter:
        key = (path, tta)
        if key not in self._segmenters:
            self._segmenters[key] = unet.Segmenter.load(path, tta=tta)
        return self._segmenters[key]

    def run(self):
        """Segments the chosen layer in a worker thread; returns the worker (started)."""
        name = self.layer.currentText()
        if not name:
            self.status.setText("no image layer to segment")
            return None
        layer = self.viewer.layers[name]
        data = np.asarray(layer.data if not layer.multiscale else layer.data[0])
        rgb = bool(getattr(layer, "rgb", False))
        path = self.model.currentText().strip()
        instances, tta = self.instances.isChecked(), self.tta.isChecked()
        stack = data.ndim == (4 if rgb else 3)
        count = data.shape[0] if stack else 1
        self.progress.setRange(0, count)
        self.progress.setValue(0)
        self.run_button.setEnabled(False)
        self.status.setText(f"segmenting {name} with {os.path.basename(path) or path}...")

        @thread_worker
        def work():
            # Errors come back as results: superqt reports a RuntimeError (unet.Error is one) of a
            # worker as a warning, not through `errored`.
            try:
                segmenter = self.segmenter(path, tta)
                objects = instances and segmenter.has_objects
                images = data if stack else data[None]
                parts = []
                for k, image in enumerate(images):
                    parts.append(segmenter.predict(image, instances=objects, axes="yxc" if rgb else "yx"))
                    yield k + 1
            except Exception as error:  # noqa: BLE001 (shown in the widget)
                return "error", error
            return "done", (segmenter, objects, parts)

        def done(result):
            what, value = result
            if what == "error":
                self._failed(value)
            else:
                self._add_layers(name, stack, *value)

        worker = work()
        worker.yielded.connect(self.progress.setValue)
        worker.returned.connect(done)
        worker.errored.connect(self._failed)
        self.worker = worker
        worker.start()
        return worker

    def _add_layers(self, name: str, stack: bool, segmenter: unet.Segmenter, objects: bool, parts: list):
        def joined(values):
            return np.stack(values) if stack else values[0]

        if self.probabilities.isChecked():  # below the labels
            probabilities = joined([p.probabilities for p in parts])
            foreground = probabilities[..., 1, :, :] if segmenter.classes == 2 else probabilities
            self.viewer.add_image(foreground, name=f"{name} probabilities", colormap="magma", contrast_limits=(0.0, 1.0),
                                  visible=False)
        if objects:
            labels = joined([p.labels for p in parts])
            self.viewer.add_labels(labels, name=f"{name} objects")
            what = f"{len(np.unique(labels)) - 1} objects" if not stack else "objects"
        else:
            self.viewer.add_labels(joined([p.mask for p in parts]), name=f"{name} classes")
            what = "classes " + ", ".join(segmenter.class_names)
        self.layer.setCurrentText(name)  # the segmented layer stays chosen
        self.status.setText(f"{name}: {what}")
        self.run_button.setEnabled(True)

    def _failed(self, error: Exception):
        self.status.setText(f"error: {error}")
        self.run_button.setEnabled(True)
