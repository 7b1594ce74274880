#!/usr/bin/env python3
"""int8 accuracy of unet next to the peers' int8 on the same trained model and the same images.

For a model that `unet quantize` calibrated (MODEL/int8.json names its calibration slices and the
held-out slices it checked on), on ISBI-layout data:
  - unet fp32 and unet int8: `unet predict` on the held-out slices;
  - ONNX Runtime fp32 and int8 (quantize_static: QDQ, per-channel s8 weights, u8 activations, the
    recipe of ../shared/bench/runtime_reference.py) and OpenVINO fp32 and int8 (NNCF post-training
    quantization), on unet's fp32 ONNX export, calibrated on the same slices unet calibrated on;
    each slice whole, mirrored at its borders to the smallest legal size.
Every variant's cell probabilities are scored the same way: membrane Dice at 0.5 here, and the
ISBI scores (thinned V_Rand and V_Info at the best threshold) by `unet score`. Prints a markdown
table, with each runtime's int8 change against its own fp32.
Needs numpy, PIL, onnx, onnxruntime, openvino and nncf (scripts/benchmark.sh's .bench-deps + nncf).
    python3 scripts/int8_peers.py --model-dir M --data-dir ../shared/data/isbi2012 [--unet build/unet]
"""
import argparse, json, os, subprocess, sys, tempfile

import numpy as np
from PIL import Image, ImageSequence


def stack(path):
    with Image.open(path) as im:
        return [np.asarray(p, dtype=np.float32) for p in ImageSequence.Iterator(im)]


def pages(names, source):
    return [int(n.split("#")[1]) for n in names if n.startswith(source + "#")]


def legal_size(side, minimum, step, shrink):
    s = minimum
    while s - shrink < side:
        s += step
    return s


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"{' '.join(cmd)}: {r.stderr.strip()}")
    return r.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--unet", default="build/unet")
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    record = json.load(open(os.path.join(a.model_dir, "int8.json")))
    held_out = record["report"]["checked_images"]
    calib_pages = pages(record["report"]["calibration_images"], "train-volume.tif")
    test_pages = pages(held_out, "train-volume.tif")
    images, labels = stack(os.path.join(a.data_dir, "train-volume.tif")), stack(os.path.join(a.data_dir, "train-labels.tif"))
    work = tempfile.mkdtemp(prefix="int8-peers-")
    os.makedirs(os.path.join(work, "images"))
    os.makedirs(os.path.join(work, "truth"))
    for p in test_pages:  # the held-out slices as files, for unet predict and unet score
        Image.fromarray(images[p].astype(np.uint8)).save(os.path.join(work, "images", f"s{p:02d}.png"))
        Image.fromarray((labels[p] > 0).astype(np.uint8) * 255).save(os.path.join(work, "truth", f"s{p:02d}.png"))
    threads = ["--threads", str(a.threads)] if a.threads else []

    probs = {}  # variant -> {page: cell probability [H, W]}
    for prec in ["fp32", "int8"]:
        out = os.path.join(work, "unet-" + prec)
        run([a.unet, "predict", "--quiet", "--model-dir", a.model_dir, "--precision", prec, "--input",
             os.path.join(work, "images"), "--output-dir", out] + threads)
        probs["unet " + prec] = {}
        for p in test_pages:
            with Image.open(os.path.join(out, f"s{p:02d}_probabilities.tif")) as im:
                maps = [np.asarray(q, dtype=np.float32) for q in ImageSequence.Iterator(im)]
            probs["unet " + prec][p] = maps[1] if len(maps) > 1 else maps[0]

    onnx_path = os.path.join(work, "fp32.onnx")
    run([a.unet, "export", "--model-dir", a.model_dir, "--format", "onnx", "--output", onnx_path])
    import onnx
    meta = {p.key: p.value for p in onnx.load(onnx_path).metadata_props}
    contract = json.loads(meta["unet.contract"])
    minimum, step = contract["input"]["minimum_size"], contract["input"]["size_step"]
    shrink = contract["input"]["trained_size"] - contract["output"]["trained_output_size"]
    h, w = images[0].shape
    size = legal_size(max(h, w), minimum, step, shrink)

    def prepare(p):
        x = images[p] / 127.5 - 1.0
        top, left = (size - h) // 2, (size - w) // 2
        x = np.pad(x, ((top, size - h - top), (left, size - w - left)), mode="reflect")
        return x[None, None].astype(np.float32), top - shrink // 2, left - shrink // 2

    calib = [prepare(p)[0] for p in calib_pages]

    def predict(infer):
        out = {}
        for p in test_pages:
            x, oy, ox = prepare(p)
            logits = infer(x)[0]
            e = np.exp(logits - logits.max(0, keepdims=True))
            out[p] = (e / e.sum(0, keepdims=True))[1, oy:oy + h, ox:ox + w]
        return out

    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    so = ort.SessionOptions()
    if a.threads:
        so.intra_op_num_threads = a.threads
    q_path = os.path.join(work, "ort-int8.onnx")
    feed = iter([{"image": c} for c in calib])

    class Reader(CalibrationDataReader):
        def get_next(self):
            return next(feed, None)
    quantize_static(onnx_path, q_path, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    for name, path in [("ONNX Runtime fp32", onnx_path), ("ONNX Runtime int8", q_path)]:
        s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        probs[name] = predict(lambda x: s.run(["logits"], {"image": x})[0])

    import nncf
    import openvino as ov
    core = ov.Core()
    cfg = {"INFERENCE_PRECISION_HINT": "f32"}
    if a.threads:
        cfg["INFERENCE_NUM_THREADS"] = a.threads
    model = core.read_model(onnx_path)
    qmodel = nncf.quantize(core.read_model(onnx_path), nncf.Dataset(calib), subset_size=len(calib))
    for name, m, c in [("OpenVINO fp32", model, cfg), ("OpenVINO int8 (NNCF)", qmodel, {k: v for k, v in cfg.items() if k != "INFERENCE_PRECISION_HINT"})]:
        compiled = core.compile_model(m, "CPU", c)
        probs[name] = predict(lambda x: compiled({0: x})[compiled.output("logits")])

    rows = {}
    for name, maps in probs.items():
        folder = os.path.join(work, "p-" + name.replace(" ", "_").replace("(", "").replace(")", ""))
        os.makedirs(folder)
        inter = union = 0.0
        for p, m in maps.items():
            Image.fromarray(np.clip(np.rint(m * 255), 0, 255).astype(np.uint8)).save(os.path.join(folder, f"s{p:02d}.png"))
            pred, truth = m < 0.5, labels[p] == 0  # membranes
            inter += np.logical_and(pred, truth).sum()
            union += pred.sum() + truth.sum()
        scores = json.loads(run([a.unet, "score", "--prediction", folder, "--truth", os.path.join(work, "truth"), "-o",
                                 os.path.join(folder, "scores.json")]) and open(os.path.join(folder, "scores.json")).read())
        overall = scores.get("overall", scores)
        rows[name] = (2 * inter / union, overall.get("v_rand_thinned"), overall.get("v_info_thinned"))
    print(f"model {a.model_dir}: {len(test_pages)} held-out slices, calibration on {len(calib)} slices; whole slices "
          f"mirrored to {size}x{size} for the peers")
    print("| runtime | membrane Dice | V_Rand (thinned) | V_Info (thinned) | int8 change (Dice / V_Rand / V_Info) |")
    print("|---|---|---|---|---|")
    for name, (d, vr, vi) in rows.items():
        change = ""
        if "int8" in name:
            base = rows[[n for n in rows if n.startswith(name.split(" int8")[0]) and "fp32" in n][0]]
            change = f"{d - base[0]:+.4f} / {vr - base[1]:+.4f} / {vi - base[2]:+.4f}"
        print(f"| {name} | {d:.4f} | {vr:.4f} | {vi:.4f} | {change} |")


if __name__ == "__main__":
    main()
