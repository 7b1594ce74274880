"""unet: U-Net segmentation for 2D biomedical images, from Python.

    import unet
    seg = unet.Segmenter.load("results")          # a model folder, checkpoint, export or shipped name
    out = seg.predict(image, instances=True)      # NumPy in: out.mask, out.labels, out.probabilities

The C++ core does the work, the same code as the ``unet`` program: a prediction here equals
``unet predict`` on the same pixels. `train`, `evaluate`, `predict`, `score` and the other
commands take the program's options as keyword arguments (``data_dir=`` for ``--data-dir``), with
its defaults, checks and messages; ``help(unet.train)`` lists them. Errors raise `unet.Error`
(`unet.OptionError` for options) with the program's one-line message; Ctrl-C stops a training run
after its step, saved, and raises KeyboardInterrupt.
"""

from __future__ import annotations

import os as _os
from pathlib import Path as _Path

import torch as _torch  # noqa: F401  (loads LibTorch's libraries, which the module links)

_models = _Path(__file__).with_name("models")
if _models.is_dir():  # an installed package ships the pretrained models beside it
    _os.environ.setdefault("UNET_MODELS_DIR", str(_models))

from . import _commands, _unet  # noqa: E402
from ._segmenter import Prediction, Segmenter  # noqa: E402
from ._unet import Error, OptionError  # noqa: E402

__all__ = [
    "Error",
    "OptionError",
    "Prediction",
    "Segmenter",
    "benchmark",
    "cross_validate",
    "demo",
    "evaluate",
    "export",
    "predict",
    "quantize",
    "score",
    "train",
]
__version__ = _unet.__version__


def _command(name: str, summary: str, progress: bool = False):
    command = name.replace("_", "-")

    if progress:

        def run(*, progress=None, **options):
            return _commands.run(command, options, progress)

    else:

        def run(**options):
            return _commands.run(command, options)

    run.__name__ = run.__qualname__ = name
    run.__module__ = __name__
    doc = _commands.describe(command, summary)
    if progress:
        doc += (
            "\n\nprogress: called as progress(step, steps, loss, images_per_second) at each logged step"
            " (every log_every steps and the last); what it raises stops the run after its step,"
            " saved, and is raised here."
        )
    run.__doc__ = doc
    return run


train = _command("train", "Trains a U-Net (as `unet train`); the checkpoint goes to model_dir.", progress=True)
evaluate = _command(
    "evaluate",
    "Evaluates a checkpoint on labelled data (as `unet evaluate`) and returns its scores as a dict,"
    " the record it writes to eval_results.json.",
)
predict = _command("predict", "Predicts image files into mask, probability and label files (as `unet predict`).")
score = _command(
    "score",
    "Scores predicted masks or labels against the truth (as `unet score`) and returns the record as a"
    " dict (per image and overall; also written to output when given).",
)
export = _command("export", "Exports a checkpoint: TorchScript, ONNX, bioimage.io (as `unet export`).")
quantize = _command("quantize", "Calibrates int8 inference for a checkpoint (as `unet quantize`).")
cross_validate = _command(
    "cross_validate", "Trains and evaluates on each fold (as `unet cross-validate`); returns cv_results.json as a dict."
)
demo = _command("demo", "The embedded default job on synthetic data (as `unet demo`).")
benchmark = _command("benchmark", "Times training or inference (as `unet benchmark`); returns its JSON record as a dict.")
