#!/usr/bin/env python3
"""Rescales a folder of labelled images so that each image's objects are about D pixels across,
and maps instance labels predicted on the rescaled images back to the original sizes: the
object-size rescaling that Cellpose calls `diameter`, as an experiment outside unet (which does
not rescale by object size yet; docs/results.md, "Images rescaled to one nucleus size").

    rescale_objects.py scale SRC DST --diameter 30
        SRC holds images/NAME.png and masks/NAME.png (instance labels, 0 background, as
        scripts/nucleus_data.py writes them). Each image is resized (bilinear, smoothed when
        shrunk) and its labels (nearest) by D / d, d the image's median object diameter (the
        diameter of a disc of the median label area); an image without labels keeps its size.
        Writes DST/images, DST/masks and DST/scales.json (each image's d, scale and original size).
    rescale_objects.py back PRED SCALES OUT
        PRED holds NAME_instances.tif (or .png) as `unet predict --instances` writes them for
        DST's images; writes OUT/NAME_instances.png (16-bit) at the sizes SCALES records (nearest),
        for `unet score --truth SRC/masks --instances`.

The scale comes from the true labels (an oracle, as Cellpose's "ground-truth diameter"); a user
without labels would give the diameter of their objects instead.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image


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


def scale(src, dst, diameter):
    src, dst = Path(src), Path(dst)
    masks = sorted((src / "masks").glob("*.png"))
    if not masks:
        sys.exit(f"rescale_objects: {src / 'masks'} holds no PNG masks")
    if dst.exists() and any(dst.iterdir()):
        sys.exit(f"rescale_objects: {dst} is not empty: choose a new folder (nothing in it is replaced)")
    for sub in ("images", "masks"):
        (dst / sub).mkdir(parents=True, exist_ok=True)
    record = {}
    for m in masks:
        if not (src / "images" / m.name).exists():
            sys.exit(f"rescale_objects: {m} has no image {src / 'images' / m.name}")
        labels = np.asarray(Image.open(m))
        d = median_diameter(labels)
        s = diameter / d if d else 1.0
        shape = (max(1, round(labels.shape[0] * s)), max(1, round(labels.shape[1] * s)))
        Image.fromarray(resized(Image.open(src / "images" / m.name), shape)).save(dst / "images" / m.name)
        Image.fromarray(nearest(labels, shape).astype(np.uint16)).save(dst / "masks" / m.name)
        record[m.stem] = {"median_diameter": d, "scale": s, "size": list(labels.shape)}
        print(f"{m.stem}: median diameter {d or 0:.1f} px, scale {s:.3f}, {labels.shape[1]}x{labels.shape[0]} -> {shape[1]}x{shape[0]}")
    (dst / "scales.json").write_text(json.dumps({"diameter": diameter, "images": record}, indent=1))


def back(pred, scales, out):
    record = json.loads(Path(scales).read_text())["images"]
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        sys.exit(f"rescale_objects: {out} is not empty: choose a new folder (nothing in it is replaced)")
    out.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in Path(pred).iterdir() if p.stem.endswith("_instances") and p.suffix in (".tif", ".png"))
    if not files:
        sys.exit(f"rescale_objects: {pred} holds no NAME_instances.tif or .png")
    for p in files:
        stem = p.stem[: -len("_instances")]
        if stem not in record:
            sys.exit(f"rescale_objects: {p} is not one of the images in {scales}")
        labels = np.asarray(Image.open(p))
        Image.fromarray(nearest(labels, record[stem]["size"]).astype(np.uint16)).save(out / f"{stem}_instances.png")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("scale")
    s.add_argument("src")
    s.add_argument("dst")
    s.add_argument("--diameter", type=float, default=30.0, help="the objects' median diameter after rescaling, pixels")
    b = sub.add_parser("back")
    b.add_argument("pred")
    b.add_argument("scales")
    b.add_argument("out")
    args = parser.parse_args()
    if args.command == "scale":
        if args.diameter <= 0:
            sys.exit("rescale_objects: --diameter must be positive")
        scale(args.src, args.dst, args.diameter)
    else:
        back(args.pred, args.scales, args.out)


if __name__ == "__main__":
    main()
