#!/usr/bin/env python3
"""A second implementation of the ISBI 2012 challenge's scores, for test_scores.cpp.

Written from the challenge's definitions (Arganda-Carreras et al. 2015, Frontiers in
Neuroanatomy 9:142) and Fiji's conventions, in Python with scikit-image and NumPy: segments are
4-connected components (`skimage.measure.label`) of the thresholded cell probability, or,
thinned, the basins of a watershed of the boundary mask; the scores come from NumPy contingency
tables of truth segments against proposal segments over the pixels inside truth segments,
proposal boundary pixels counting as one-pixel segments.

The thinning watershed is Vincent and Soille's flooding in Fiji's pixel order (`vincent_soille`
below, from the paper's pseudo-code). scikit-image's `watershed(..., watershed_line=True)` floods
by priority and age and draws lines where Fiji draws none (a boundary band of even width gets a
line in scikit-image, none in Fiji), so its thinned scores are reported too
(`*_thinned_skimage`) and compared loosely only.

  isbi_reference.py TRUTH.u8 PROBABILITY.f32 HEIGHT WIDTH OUT.json
TRUTH: uint8 cells (1) and membrane (0); PROBABILITY: float32 cell probability, row-major.
Writes v_rand, v_info, v_rand_thinned and v_info_thinned, one value per threshold.
"""
import json
import sys

import numpy as np
from skimage.measure import label
from skimage.segmentation import watershed


def f_score(precision, recall):
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def scores(truth, proposal):
    inside = truth > 0
    a, b = truth[inside].astype(np.int64), proposal[inside].astype(np.int64)
    n = float(a.size)
    if n == 0:
        return 1.0, 1.0
    singles = b == 0
    # Contingency table of (truth, proposal) segments; each proposal boundary pixel a segment of its own.
    b = np.where(singles, b.max(initial=0) + 1 + np.arange(a.size), b)
    _, joint = np.unique(np.stack([a, b]), axis=1, return_counts=True)
    _, rows = np.unique(a, return_counts=True)
    _, cols = np.unique(b, return_counts=True)
    p, s, t = joint / n, rows / n, cols / n
    # Rand: F-score of precision sum p^2 / sum t^2 and recall sum p^2 / sum s^2.
    v_rand = f_score((p ** 2).sum() / (t ** 2).sum(), (p ** 2).sum() / (s ** 2).sum())
    # Information: F-score of I / H(S) and I / H(T); Fiji's conventions for zero entropies.
    h_s, h_t = -(s * np.log(s)).sum(), -(t * np.log(t)).sum()
    mutual = h_s + h_t + (p * np.log(p)).sum()
    if h_t == 0:
        precision, recall = 1.0, 0.0
    elif h_s == 0:
        precision, recall = 0.0, 1.0
    else:
        precision, recall = mutual / h_s, mutual / h_t
    return v_rand, f_score(precision, recall)


def vincent_soille(cells):
    """Labels of the basins of the boundary mask (~cells), 0 on watershed lines (Fiji's order:
    pixels by value, then column-major; neighbours left, up, right, down)."""
    h, w = cells.shape
    INIT, MASK, INQUEUE, WSHED = -1, -2, -3, 0
    lab = np.full((h, w), INIT, np.int64)

    def neighbours(y, x):
        for dy, dx in ((0, -1), (-1, 0), (0, 1), (1, 0)):
            if 0 <= y + dy < h and 0 <= x + dx < w:
                yield y + dy, x + dx

    order = [(y, x) for x in range(w) for y in range(h)]
    levels = [[p for p in order if cells[p]], [p for p in order if not cells[p]]]
    current, flag, fifo = 0, False, []
    for level in levels:
        for p in level:
            lab[p] = MASK
            if any(lab[q] >= WSHED for q in neighbours(*p)):
                lab[p] = INQUEUE
                fifo.append(p)
        head = 0
        while head < len(fifo):
            p = fifo[head]
            head += 1
            for q in neighbours(*p):
                if lab[q] > 0:
                    if lab[p] == INQUEUE or (lab[p] == WSHED and flag):
                        lab[p] = lab[q]
                    elif lab[p] > 0 and lab[p] != lab[q]:
                        lab[p], flag = WSHED, False
                elif lab[q] == WSHED:
                    if lab[p] == INQUEUE:
                        lab[p], flag = WSHED, True
                elif lab[q] == MASK:
                    lab[q] = INQUEUE
                    fifo.append(q)
        fifo = []
        for p in level:
            if lab[p] == MASK:
                current += 1
                lab[p] = current
                stack = [p]
                while stack:
                    r = stack.pop(0)
                    for q in neighbours(*r):
                        if lab[q] == MASK:
                            lab[q] = current
                            stack.append(q)
    return np.where(lab == INIT, 0, lab)


def main():
    truth_path, probability_path, h, w, out = sys.argv[1:6]
    h, w = int(h), int(w)
    truth_cells = np.fromfile(truth_path, np.uint8).reshape(h, w) > 0
    probability = np.fromfile(probability_path, np.float32).reshape(h, w).astype(np.float64)
    truth = label(truth_cells, connectivity=1)
    keys = ["v_rand", "v_info", "v_rand_thinned", "v_info_thinned", "v_rand_thinned_skimage", "v_info_thinned_skimage"]
    result = {k: [] for k in keys}
    th = 0.0
    while th <= 1.0:  # the challenge's grid: 0.0, 0.1, ... accumulated in double arithmetic
        cells = probability > th
        skimage_lines = watershed((~cells).astype(np.uint8), label(cells, connectivity=1), connectivity=1, watershed_line=True)
        if not cells.any():  # no cell at all: one basin
            skimage_lines = np.ones(cells.shape, np.int64)
        for prefix, segments in (("", label(cells, connectivity=1)), ("_thinned", vincent_soille(cells)),
                                 ("_thinned_skimage", skimage_lines)):
            v_rand, v_info = scores(truth, segments)
            result["v_rand" + prefix].append(v_rand)
            result["v_info" + prefix].append(v_info)
        th += 0.1
    with open(out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
