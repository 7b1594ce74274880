"""A reader for unet's output files: instance labels and masks as Labels layers, probabilities as
an Image layer (also the tiled pyramids of streamed predictions, as multiscale layers)."""

from __future__ import annotations

import os

import numpy as np
import tifffile


def get_reader(path):
    if isinstance(path, list) or not str(path).lower().endswith((".tif", ".tiff")):
        return None
    return read


def _levels(path):
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        if len(series.levels) > 1:  # a streamed prediction's pyramid
            return [level.asarray() for level in series.levels]
        return [series.asarray()]


def read(path):
    path = str(path)
    name = os.path.basename(path)
    levels = _levels(path)
    data = levels if len(levels) > 1 else levels[0]
    meta = {"name": os.path.splitext(name)[0], "multiscale": len(levels) > 1}
    if "probabilities" in name:
        if levels[0].dtype == np.uint8:  # --probability-bits 8: round(255 p)
            meta["contrast_limits"] = (0, 255)
        else:
            meta["contrast_limits"] = (0.0, 1.0)
        meta["colormap"] = "magma"
        return [(data, meta, "image")]
    if "masks" in name or name.endswith(".tif") and levels[0].dtype == np.uint8:
        # 0/255 masks: 255 is class 1; index masks: the class indices.
        data = [np.where(level == 255, 1, level).astype(np.uint8) for level in levels]
        data = data if len(data) > 1 else data[0]
    return [(data, meta, "labels")]
