#!/usr/bin/env python3
"""StarDist, the peer, on the nucleus sets unet trains on: is a star-convex method better here?

A measurement outside unet (docs/results.md, "StarDist on the same nuclei"). It uses the public
`stardist` package (TensorFlow; pip install stardist tensorflow-cpu) as its authors document it,
on a folder layout as scripts/rescale_objects.py writes it (D/{train,val,test}/images/NAME.png and
masks/NAME.png, instance labels; here each image rescaled to 30-pixel nuclei, as unet's
`--object-diameter 30` trains):

    stardist_peer.py oracle --data D --split val --rays 32 --out OUT
        each true label image redrawn as star-convex polygons from its own labels (no network):
        what the representation can reach; score OUT with `unet score --instances`.
    stardist_peer.py train --data D --model-dir M --steps 3000 --seed 0
        StarDist2D (32 rays, grid 2 or --grid, its default U-Net: depth 3, 32 filters) trained on D/train in
        patches of 160 (images smaller than that padded with background), batch 4, validated on
        D/val, its probability and overlap thresholds then chosen on D/val (optimize_thresholds).
    stardist_peer.py predict --data D --model-dir M --split test --out OUT
        OUT/NAME_instances.png (16-bit labels) for each image of D/SPLIT/images (no masks needed).

Images are normalised per image to their 1st-99.8th percentiles, as unet's `--normalize
percentile` and StarDist's examples do; augmentation: rotations by 90 degrees, mirroring, intensity
scale and shift (StarDist's example augmenter).
"""
import argparse
import glob
import os
import sys
import time

os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "2")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from PIL import Image


def load(data, split, with_labels=True):
    """The images (float32, one channel) and labels (int32; none without `with_labels`) of
    DATA/SPLIT, sorted by name."""
    names = sorted(os.path.basename(p)[:-4] for p in glob.glob(f"{data}/{split}/images/*.png"))
    if not names:
        sys.exit(f"stardist_peer: no images in {data}/{split}/images")
    images, labels = [], []
    for n in names:
        x = np.asarray(Image.open(f"{data}/{split}/images/{n}.png"), dtype=np.float32)
        images.append(x[..., :3].mean(-1) if x.ndim == 3 else x)
        if with_labels:
            labels.append(np.asarray(Image.open(f"{data}/{split}/masks/{n}.png")).astype(np.int32))
    return names, images, labels


def normalise(x):
    from csbdeep.utils import normalize
    return normalize(x, 1, 99.8, axis=(0, 1))


def save_labels(labels, path):
    if labels.max() > 65535:
        sys.exit(f"stardist_peer: {path}: more than 65,535 objects")
    Image.fromarray(labels.astype(np.uint16)).save(path)


def pad_to(x, y, side):
    """Image and labels padded at the bottom and right with background to at least side x side."""
    ph, pw = max(0, side - x.shape[0]), max(0, side - x.shape[1])
    if ph or pw:
        x = np.pad(x, ((0, ph), (0, pw)), mode="constant")
        y = np.pad(y, ((0, ph), (0, pw)), mode="constant")
    return x, y


def augment(x, y):
    k = np.random.randint(4)
    x, y = np.rot90(x, k), np.rot90(y, k)
    if np.random.rand() < 0.5:
        x, y = np.fliplr(x), np.fliplr(y)
    return x * np.random.uniform(0.6, 2) + np.random.uniform(-0.2, 0.2), y


def oracle(args):
    from stardist import relabel_image_stardist
    names, _, labels = load(args.data, args.split)
    os.makedirs(args.out, exist_ok=True)
    for n, y in zip(names, labels):
        save_labels(relabel_image_stardist(y, n_rays=args.rays), f"{args.out}/{n}_instances.png")


def train(args):
    import tensorflow as tf
    from stardist import fill_label_holes
    from stardist.models import Config2D, StarDist2D
    tf.random.set_seed(args.seed)
    np.random.seed(args.seed)
    _, x, y = load(args.data, "train")
    _, xv, yv = load(args.data, "val")
    x, xv = [normalise(i) for i in x], [normalise(i) for i in xv]
    y, yv = [fill_label_holes(i) for i in y], [fill_label_holes(i) for i in yv]
    x, y = zip(*[pad_to(a, b, args.patch) for a, b in zip(x, y)])
    xvp, yvp = zip(*[pad_to(a, b, args.patch) for a, b in zip(xv, yv)])
    config = Config2D(n_rays=32, grid=(args.grid, args.grid), n_channel_in=1, train_patch_size=(args.patch, args.patch),
                      train_batch_size=4, train_epochs=args.steps // 100, train_steps_per_epoch=100,
                      train_tensorboard=False)
    model_dir = os.path.abspath(args.model_dir)
    model = StarDist2D(config, name=os.path.basename(model_dir), basedir=os.path.dirname(model_dir))
    start = time.time()
    model.train(list(x), list(y), validation_data=(list(xvp), list(yvp)), augmenter=augment)
    print(f"trained {args.steps} steps in {time.time() - start:.0f} s", flush=True)
    model.optimize_thresholds(xv, yv)


def predict(args):
    from stardist.models import StarDist2D
    model_dir = os.path.abspath(args.model_dir)
    model = StarDist2D(None, name=os.path.basename(model_dir), basedir=os.path.dirname(model_dir))
    names, images, _ = load(args.data, args.split, with_labels=False)
    os.makedirs(args.out, exist_ok=True)
    start = time.time()
    for n, x in zip(names, images):
        labels, _ = model.predict_instances(normalise(x))
        save_labels(labels, f"{args.out}/{n}_instances.png")
    print(f"predicted {len(names)} images of {args.split} in {time.time() - start:.0f} s, "
          f"thresholds {model.thresholds}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    o = sub.add_parser("oracle")
    t = sub.add_parser("train")
    p = sub.add_parser("predict")
    for s in (o, t, p):
        s.add_argument("--data", required=True)
    for s in (o, p):
        s.add_argument("--split", required=True)
        s.add_argument("--out", required=True)
    o.add_argument("--rays", type=int, default=32)
    for s in (t, p):
        s.add_argument("--model-dir", required=True)
    t.add_argument("--steps", type=int, default=3000)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--patch", type=int, default=160)
    t.add_argument("--grid", type=int, default=2, help="output subsampling (StarDist's grid; 2 for its fluorescence models)")
    args = parser.parse_args()
    {"oracle": oracle, "train": train, "predict": predict}[args.command](args)


if __name__ == "__main__":
    main()
