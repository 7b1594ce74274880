#!/usr/bin/env python3
"""Looks for a held-out set's fields inside a converted development set: each development image
is slid over each held-out image (or the held-out image over it, when it is the larger) by
normalised cross-correlation of log intensities (skimage's match_template), at a quarter of their
size first; each development image's best match, where it scores above --threshold there, is
scored again at full size and listed. Measured on BBBC039 and the Data Science Bowl's images
(8-bit copies of 16-bit fields): the same field scored 0.99 to 1.00, different fields of sparse
nuclei up to 0.85 at quarter size and 0.72 at full size (a lone nucleus lining up). Crops
resampled to another scale are not found; images that fit neither way are counted apart.

    held_out_overlap.py --held-out BBBC039/images --develop nuclei-dsb-fluo/{train,val,test}/images

How data.md's statement that no dsb2018-fluo image shows a BBBC039 field was checked.
"""
import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from skimage.feature import match_template
from skimage.transform import downscale_local_mean


def read(path):
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile
        a = tifffile.imread(path)
    else:
        try:
            a = np.asarray(Image.open(path))
        except OSError as e:
            sys.exit(f"{path}: not an image ({e})")
    a = a[..., 0] if a.ndim == 3 else a
    a = a.astype(np.float32)
    return np.log1p(a - a.min())


def best(a, b):
    """The highest correlation of the smaller of `a` and `b` anywhere inside the other (-1 when
    neither fits inside the other)."""
    if a.shape[0] <= b.shape[0] and a.shape[1] <= b.shape[1]:
        return float(match_template(b, a).max())
    if b.shape[0] <= a.shape[0] and b.shape[1] <= a.shape[1]:
        return float(match_template(a, b).max())
    return -1.0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--held-out", required=True, help="folder of the held-out set's images")
    ap.add_argument("--develop", required=True, nargs="+", help="folders of the development set's images")
    ap.add_argument("--threshold", type=float, default=0.7, help="quarter-size correlation that is checked at full size")
    a = ap.parse_args()
    held = sorted(p for p in Path(a.held_out).iterdir() if p.is_file())
    if not held:
        sys.exit(f"{a.held_out}: no images")
    held_full = {p.name: read(p) for p in held}
    held_small = {n: downscale_local_mean(v, (4, 4)) for n, v in held_full.items()}
    found, checked, unfit = [], 0, []
    for folder in a.develop:
        for path in sorted(p for p in Path(folder).iterdir() if p.is_file()):
            image = read(path)
            small = downscale_local_mean(image, (4, 4))
            score, name = max((best(small, v), n) for n, v in held_small.items())
            if score < -0.5:
                unfit.append(path)
                continue
            checked += 1
            if score > a.threshold:
                full = best(image, held_full[name])
                found.append((full, path, name))
                print(f"{path}: {name} at {full:.3f} (quarter size {score:.3f})", flush=True)
    same = [f for f in found if f[0] > 0.95]
    print(f"{checked} images checked against {len(held)}; {len(same)} show a held-out field (full-size correlation > 0.95)"
          + (f"; {len(unfit)} fit neither inside nor around a held-out image: not checked" if unfit else ""))
    return 1 if same else 0


if __name__ == "__main__":
    sys.exit(main())
