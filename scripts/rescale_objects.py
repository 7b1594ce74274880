#!/usr/bin/env python3
"""Rescales a folder of labelled images so that each image's objects are about D pixels across,
and maps instance labels predicted on the rescaled images back to the original sizes: the
object-size rescaling that Cellpose calls `diameter`, as an experiment outside unet (which does
not rescale by object size yet; docs/results.md, "Images rescaled to one nucleus size").

    rescale_objects.py scale SRC DST --diameter 30 [--source-diameter D0]
        SRC holds images/NAME.png and masks/NAME.png (instance labels, 0 background, as
        scripts/nucleus_data.py writes them). Each image is resized (bilinear, smoothed when
        shrunk) and its labels (nearest) by D / d, d the image's median object diameter (the
        diameter of a disc of the median label area; an image without labels keeps its size),
        or by D / D0 for every image with --source-diameter (the size a user would state).
        Writes DST/images, DST/masks and DST/scales.json (each image's d, scale and original size).
    rescale_objects.py back PRED SCALES OUT
        PRED holds NAME_instances.tif (or .png) as `unet predict --instances` writes them for
        DST's images; writes OUT/NAME_instances.png (16-bit) at the sizes SCALES records (nearest),
        for `unet score --truth SRC/masks --instances`.

Without --source-diameter the scale comes from the true labels (an oracle, as Cellpose's
"ground-truth diameter").
"""
import argparse
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

MAX_PIXELS = 1 << 28  # the largest rescaled image (width x height), as unet's --max-image-pixels


def fail(message):
    sys.exit(f"rescale_objects: {message}")


def nearest(labels, shape):
    """Labels [h, w] resampled to `shape` by their pixel centres (no new values)."""
    h, w = shape
    rows = np.minimum(((np.arange(h) + 0.5) * labels.shape[0] / h).astype(np.int64), labels.shape[0] - 1)
    cols = np.minimum(((np.arange(w) + 0.5) * labels.shape[1] / w).astype(np.int64), labels.shape[1] - 1)
    return labels[rows][:, cols]


def resized(image, shape):
    """An 8- or 16-bit image (grey or with channels) resized to `shape`, bilinear (smoothed when shrunk)."""
    if image.mode in ("L", "RGB"):
        return np.asarray(image.resize((shape[1], shape[0]), Image.BILINEAR))
    a = np.asarray(image)
    planes = a[..., None] if a.ndim == 2 else a
    out = np.stack([np.asarray(Image.fromarray(planes[..., c].astype(np.float32), "F").resize((shape[1], shape[0]), Image.BILINEAR))
                    for c in range(planes.shape[-1])], axis=-1)
    out = np.clip(np.rint(out), 0, np.iinfo(a.dtype).max).astype(a.dtype)
    return out[..., 0] if a.ndim == 2 else out


def median_diameter(labels):
    """The diameter of a disc of the median object area, pixels (None without objects)."""
    _, counts = np.unique(labels[labels > 0], return_counts=True)
    return float(2 * np.sqrt(np.median(counts) / np.pi)) if len(counts) else None


def open_image(path, load=True):
    """An image as PIL opens it (its pixels read unless `load` is false: size and mode only),
    palette images as RGB; fails with one line for what it cannot resample."""
    try:
        image = Image.open(path)
        if load:
            image.load()
    except Exception as e:  # PIL raises several types for unreadable files
        fail(f"{path}: not a readable image ({e})")
    if image.mode == "P":
        image = image.convert("RGB")
    if image.mode not in ("L", "RGB", "I;16", "I;16B", "I;16L", "I"):
        fail(f"{path}: image mode {image.mode} (8- or 16-bit grey or RGB expected)")
    return image


def open_labels(path):
    labels = np.asarray(open_image(path))
    if labels.ndim != 2:
        fail(f"{path}: labels with {labels.shape[2]} channels (one channel of instance labels expected)")
    if labels.min() < 0 or labels.max() > 65535:
        fail(f"{path}: labels outside 0..65535")
    return labels


def fresh(folder):
    """A folder that does not exist or is empty; returns its .partial twin, emptied."""
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        fail(f"{folder} is not an empty folder: choose a new one (nothing in it is replaced)")
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    return partial


def scale(src, dst, diameter, source_diameter=None):
    src, dst = Path(src), Path(dst)
    masks = sorted((src / "masks").glob("*.png")) if (src / "masks").is_dir() else []
    if not masks:
        fail(f"{src / 'masks'} holds no PNG masks")
    plan = []
    for m in masks:  # everything checked before anything is written
        image_path = src / "images" / m.name
        if not image_path.exists():
            fail(f"{m} has no image {image_path}")
        image, labels = open_image(image_path, load=False), open_labels(m)
        if (image.height, image.width) != labels.shape:
            fail(f"{image_path} is {image.width}x{image.height} but its mask {m} is {labels.shape[1]}x{labels.shape[0]}")
        d = median_diameter(labels)
        s = diameter / source_diameter if source_diameter else diameter / d if d else 1.0
        shape = (max(1, round(labels.shape[0] * s)), max(1, round(labels.shape[1] * s)))
        if shape[0] * shape[1] > MAX_PIXELS:
            fail(f"{m}: scaled by {s:.3g} it would be {shape[1]}x{shape[0]} pixels")
        plan.append((m, image_path, d, s, shape))  # re-read when written: one image in memory at a time
    partial = fresh(dst)
    for sub in ("images", "masks"):
        (partial / sub).mkdir()
    record = {}
    for m, image_path, d, s, shape in plan:
        labels = open_labels(m)
        Image.fromarray(resized(open_image(image_path), shape)).save(partial / "images" / m.name)
        Image.fromarray(nearest(labels, shape).astype(np.uint16)).save(partial / "masks" / m.name)
        record[m.stem] = {"median_diameter": d, "scale": s, "size": list(labels.shape), "rescaled_size": list(shape)}
        print(f"{m.stem}: median diameter {d or 0:.1f} px, scale {s:.3f}, {labels.shape[1]}x{labels.shape[0]} -> {shape[1]}x{shape[0]}")
    (partial / "scales.json").write_text(json.dumps({"diameter": diameter, "source_diameter": source_diameter, "images": record}, indent=1))
    if dst.exists():
        dst.rmdir()
    partial.rename(dst)


def back(pred, scales, out):
    pred, out = Path(pred), Path(out)
    try:
        record = json.loads(Path(scales).read_text())["images"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        fail(f"{scales}: not a scales.json that `rescale_objects.py scale` wrote ({e})")
    if not pred.is_dir():
        fail(f"{pred} is not a folder")
    files = sorted(p for p in pred.iterdir() if p.stem.endswith("_instances") and p.suffix in (".tif", ".png"))
    if not files:
        fail(f"{pred} holds no NAME_instances.tif or .png")
    plan, seen = [], set()
    for p in files:
        stem = p.stem[: -len("_instances")]
        if stem not in record:
            fail(f"{p} is not one of the images in {scales}")
        if stem in seen:
            fail(f"{pred} holds two predictions of {stem} (.tif and .png)")
        seen.add(stem)
        labels = open_labels(p)
        if list(labels.shape) != record[stem]["rescaled_size"]:
            fail(f"{p} is {labels.shape[1]}x{labels.shape[0]}, not the rescaled image's size in {scales}")
        plan.append((stem, p))
    for stem in sorted(set(record) - seen):
        print(f"note: {stem} has no prediction in {pred}")
    partial = fresh(out)
    for stem, p in plan:
        Image.fromarray(nearest(open_labels(p), record[stem]["size"]).astype(np.uint16)).save(partial / f"{stem}_instances.png")
    if out.exists():
        out.rmdir()
    partial.rename(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("scale")
    s.add_argument("src")
    s.add_argument("dst")
    s.add_argument("--diameter", type=float, default=30.0, help="the objects' median diameter after rescaling, pixels")
    s.add_argument("--source-diameter", type=float, help="the objects' diameter in every SRC image, pixels, as a user "
                   "would state it (default: each image's median from its labels)")
    b = sub.add_parser("back")
    b.add_argument("pred")
    b.add_argument("scales")
    b.add_argument("out")
    args = parser.parse_args()
    if args.command == "scale":
        for name, value in (("--diameter", args.diameter), ("--source-diameter", args.source_diameter)):
            if value is not None and not (math.isfinite(value) and value > 0):
                fail(f"{name} {value}: a positive number of pixels expected")
        scale(args.src, args.dst, args.diameter, args.source_diameter)
    else:
        back(args.pred, args.scales, args.out)


if __name__ == "__main__":
    main()
