"""Sample data: the synthetic images that `unet train --synthetic` trains on, with their truth."""

from __future__ import annotations

import unet


def synthetic_em():
    image, mask = unet._unet.synthetic("em", 256)
    return [(image, {"name": "synthetic EM"}, "image"), ((mask == 255).astype("uint8"), {"name": "cells (truth)"}, "labels")]


def synthetic_nuclei():
    image, labels = unet._unet.synthetic("nuclei", 256)
    return [(image, {"name": "synthetic nuclei"}, "image"), (labels, {"name": "nuclei (truth)"}, "labels")]
