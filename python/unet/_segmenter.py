"""`Segmenter`: a trained model, loaded once, that segments NumPy images of any size.

The C++ `unet::Segmenter` does the work (the same tiles, normalisation and object rules as
``unet predict``); this file only brings NumPy layouts to [C, H, W] and back.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np

from . import _commands, _unet

_DTYPES = (np.uint8, np.uint16, np.float32)


@dataclass
class Prediction:
    """What `Segmenter.predict` returns for an image of H x W pixels (N x ... for a stack)."""

    #: float32 [classes, H, W] ([N, classes, H, W]): class probabilities, summing to 1.
    probabilities: np.ndarray
    #: uint8 [H, W]: the class of each pixel (two classes: 1 where p(class 1) >= 0.5).
    mask: np.ndarray
    #: int32 [H, W]: object labels, 0 the background; None unless asked for (``instances``).
    labels: Optional[np.ndarray] = None


def _axes(shape: tuple, channels: int) -> str:
    """The layout of an array of ``shape`` for a model of ``channels`` input channels."""
    if len(shape) == 2:
        return "yx"
    if len(shape) == 3:
        if shape[-1] == channels and (channels > 1 or shape[-1] == 1):
            return "yxc"
        if shape[0] == channels:  # (1, H, W) for a gray model: one image, as (C, H, W)
            return "cyx"
        if channels == 1 and shape[-1] in (3, 4) and shape[0] > 4:
            raise _unet.Error(
                f"an image of shape {tuple(shape)} looks like colour (H, W, {shape[-1]}), and this model takes gray "
                "images (1 channel): convert it (e.g. image.mean(axis=-1)), or pass axes='zyx' for a stack"
            )
        if channels == 1:
            return "zyx"
    if len(shape) == 4:
        if shape[-1] == channels:
            return "zyxc"
        if shape[1] == channels:
            return "zcyx"
    raise _unet.Error(
        f"an image of shape {tuple(shape)} does not fit a model of {channels} channel(s): "
        "expected (H, W), (H, W, C), (C, H, W) or stacks of them (N, ...); name the layout with axes="
    )


def _images(array: np.ndarray, axes: str) -> list[np.ndarray]:
    """``array`` as C-contiguous [C, H, W] images (views where the layout allows)."""
    order = {"yx": "cyx", "yxc": "cyx", "cyx": "cyx", "zyx": "zcyx", "zyxc": "zcyx", "zcyx": "zcyx"}
    if axes not in order:
        raise _unet.Error(f"axes='{axes}': expected one of {', '.join(order)}")
    if len(axes) != array.ndim:
        raise _unet.Error(f"axes='{axes}' names {len(axes)} axes, the image has {array.ndim}")
    source = axes if "c" in axes else axes.replace("yx", "cyx")
    if "c" not in axes:
        array = array[..., None, :, :]
    target = order[axes]
    array = np.transpose(array, [source.index(a) for a in target])
    if array.dtype not in _DTYPES:
        if array.dtype == np.float64:
            array = array.astype(np.float32)
        else:
            raise _unet.Error(f"images are uint8, uint16 or float32/float64 arrays, not {array.dtype}")
    if target == "cyx":
        return [np.ascontiguousarray(array)]
    return [np.ascontiguousarray(image) for image in array]


class Segmenter:
    """A trained U-Net, loaded once, that segments images of any size, outputs at their own resolution.

    ``Segmenter.load(path, **options)`` takes a model folder (``unet train``'s ``model_dir``), a
    checkpoint file, a TorchScript export, or the name of a shipped model (``"nuclei-fluorescence"``),
    and the options of ``unet predict`` that shape a prediction as keyword arguments, with its
    defaults: ``tile_size``, ``tile_overlap``, ``blend``, ``tile_batch``, ``tta``, ``input_mode``,
    ``min_object_area``, ``split_radius``, ``object_threshold``, ``min_object_probability``, ``object_diameter`` (the images' object size in pixels, or
    ``"auto"``, for a model trained at one), ``precision`` (fp32, bf16, int8), ``conv_algorithm``,
    ``cpu_engine``, ``device``, ``threads`` ... (``Segmenter.options()`` lists them all).
    """

    def __init__(self, core: Any, path: str):
        self._core = core
        self.path = path

    @staticmethod
    def load(path: Union[str, os.PathLike], **options: Any) -> "Segmenter":
        """Loads the model at ``path``: a model folder, a checkpoint file, a TorchScript export
        (``unet export``) or a shipped model's name. ``options``: ``unet predict``'s options that
        shape a prediction, as keywords with its defaults (`Segmenter.options()` lists them); an
        export takes the tile options, ``tta``, ``min_object_area``, ``split_radius``,
        ``split_ratio``, ``object_threshold``, ``min_object_probability`` and ``object_diameter``, a
        checkpoint all of them (``ensemble``, other checkpoints, model folders or shipped model names
        averaged with it, only with a checkpoint).
        Raises `unet.Error` (`unet.OptionError` for options) with the program's message."""
        path = os.fspath(path)
        # As the program's --ensemble (model_folder_or_name): a file or a folder holding a checkpoint
        # first, so that a folder `--model NAME` wrote its outputs to does not hide shipped NAME.
        if not (os.path.isfile(path) or os.path.isfile(os.path.join(path, "checkpoint.pt"))):
            shipped = _shipped_model(path)
            if shipped is not None:
                path = shipped
            elif not os.path.exists(path):
                raise _unet.Error(f"{path}: no such file or folder, nor a shipped model name ({', '.join(_shipped_names())})")
        args = _commands.to_args("segment", options, "Segmenter.load")
        return Segmenter(_unet.load_segmenter(path, args), path)

    @staticmethod
    def options() -> str:
        """The keyword arguments of `Segmenter.load`, with their defaults and meaning."""
        return _commands.describe("segment", "Segmenter.load(path, **options)")

    def predict(
        self,
        image: np.ndarray,
        *,
        instances: Union[bool, str] = False,
        axes: Optional[str] = None,
    ) -> Prediction:
        """Segments ``image``: (H, W), (H, W, C) or (C, H, W), 8-bit, 16-bit or float in [0, 1],
        or a stack (N, ...) of them. ``instances``: True (or "components", "watershed") also cuts
        out the objects into ``labels``. ``axes`` names an ambiguous layout ("yx", "yxc", "cyx",
        "zyx", "zyxc", "zcyx")."""
        array = np.asarray(image)
        layout = axes or _axes(array.shape, self.channels)
        method = None
        if instances:
            method = "components" if instances is True else str(instances)
        parts = [self._core.segment(one, method) for one in _images(array, layout)]
        if not layout.startswith("z"):
            probabilities, mask, labels = parts[0]
            return Prediction(probabilities, mask, labels)
        return Prediction(
            np.stack([p[0] for p in parts]),
            np.stack([p[1] for p in parts]),
            np.stack([p[2] for p in parts]) if method else None,
        )

    __call__ = predict

    @property
    def channels(self) -> int:
        """Input channels (1 gray, 3 RGB)."""
        return self._core.channels

    @property
    def classes(self) -> int:
        return self._core.classes

    @property
    def class_names(self) -> list[str]:
        return self._core.class_names

    @property
    def scheme(self) -> str:
        """What the classes stand for: plain, interior-boundary, distance or directions."""
        return self._core.scheme

    @property
    def has_objects(self) -> bool:
        """Whether ``predict(..., instances=True)`` can cut objects out of this model's classes."""
        return self._core.has_objects

    @property
    def input_size(self) -> int:
        """The network input side of training: tiles are this large unless ``tile_size`` says."""
        return self._core.input_size

    @property
    def normalisation(self) -> str:
        """How intensities are normalised before the network (the model's record)."""
        return self._core.normalisation

    @property
    def device(self) -> str:
        return self._core.device

    def __repr__(self) -> str:
        return (
            f"Segmenter({self.path!r}: {self.channels} channel(s), {self.classes} classes "
            f"{self.class_names}, tiles of {self.input_size}, {self.device})"
        )


def _shipped_names() -> list[str]:
    return [name for name, _ in _unet.pretrained_models()]


def _shipped_model(name: str) -> Optional[str]:
    """The folder of shipped model ``name``, checked against models.json; None for another name."""
    return _unet.pretrained_model_dir(name) if name in _shipped_names() else None
