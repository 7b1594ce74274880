#!/usr/bin/env python3
"""What dropping low-probability objects does to the object scores, for each of several levels at
once (unet's `--min-object-probability D` does it for one D). Reads `unet predict --instances` outputs (<stem>_instances.tif and
<stem>_probabilities.tif, class 0 the background) and the true instance masks (<stem>.png), drops
each predicted object whose mean object probability (1 - background's, over its pixels) is under
D, and prints the pooled scores per D as `unet evaluate` pools them: objects match at IoU above a
threshold (unique above 0.5), F1 = 2 TP / (2 TP + FP + FN), mean AP = mean over IoU 0.5-0.95 of
TP / (TP + FP + FN). At D = 0 the numbers are evaluate's own (checked on kromp2020 and coelho2009).

    unet predict --model nuclei-fluorescence --input DATA/val/images --output-dir OUT --instances --no-overlays \
        --min-object-probability 0    # every object, whatever level the model records
    object_probability_filter.py OUT DATA/val/masks [--levels 0,0.6,0.7,0.78]

StarDist keeps an object only where its predicted object probability passes a per-model
threshold chosen on validation images (`prob_thresh`); this asks whether unet's objects, cut from
the classes and grown to the object threshold, would gain from the same (docs/results.md).
"""
import argparse
import glob
import os

import numpy as np
import tifffile
from PIL import Image

IOU_THRESHOLDS = 0.5 + 0.05 * np.arange(10)


def image_terms(truth, predicted, background):
    """The IoU of every truth/predicted pair [T, P], the count of true objects, and each
    predicted object's presence and mean object probability [P]."""
    nt, npred = truth.max() + 1, predicted.max() + 1
    counts = np.bincount((truth * npred + predicted).ravel(), minlength=nt * npred).reshape(nt, npred)
    area_t, area_p = counts.sum(1), counts.sum(0)
    inter = counts[1:, 1:]
    iou = inter / np.maximum(area_t[1:, None] + area_p[None, 1:] - inter, 1)
    mean = np.bincount(predicted.ravel(), weights=(1.0 - background).ravel(), minlength=npred) / np.maximum(area_p, 1)
    return iou, int((area_t[1:] > 0).sum()), area_p[1:] > 0, mean[1:]


def pooled_scores(images, level):
    tp, truth_count, predicted_count = np.zeros(len(IOU_THRESHOLDS)), 0, 0
    for iou, n_true, present, mean in images:
        keep = present & (mean >= level)
        truth_count += n_true
        predicted_count += int(keep.sum())
        kept = iou[:, keep]
        tp += np.array([(kept > t).sum() for t in IOU_THRESHOLDS])
    fp, fn = predicted_count - tp, truth_count - tp
    return predicted_count, 2 * tp[0] / (2 * tp[0] + fp[0] + fn[0]), 2 * tp[5] / (2 * tp[5] + fp[5] + fn[5]), np.mean(tp / (tp + fp + fn))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("predictions")
    ap.add_argument("masks")
    ap.add_argument("--levels", default="0,0.5,0.6,0.65,0.7,0.72,0.75,0.78,0.8")
    a = ap.parse_args()
    images = []
    for mask in sorted(glob.glob(os.path.join(a.masks, "*.png"))):
        stem = os.path.splitext(os.path.basename(mask))[0]
        truth = np.array(Image.open(mask)).astype(np.int64)
        predicted = tifffile.imread(os.path.join(a.predictions, stem + "_instances.tif")).astype(np.int64)
        maps = tifffile.imread(os.path.join(a.predictions, stem + "_probabilities.tif")).astype(np.float32)
        if maps.shape[-2:] != truth.shape:
            maps = np.moveaxis(maps, -1, 0)
        images.append(image_terms(truth, predicted, maps[0]))
    print(f"{len(images)} images")
    for level in (float(v) for v in a.levels.split(",")):
        n, f1, f1_75, mean_ap = pooled_scores(images, level)
        print(f"mean object probability >= {level:g}: predicted {n}, F1 {f1:.4f}, F1 at 0.75 {f1_75:.4f}, mean AP {mean_ap:.4f}")


if __name__ == "__main__":
    main()
