#!/usr/bin/env python3
"""Runs an int8 (QDQ) ONNX file that unet exported in ONNX Runtime and, when importable, OpenVINO,
compares their logits and probabilities with unet's int8 engine, and says which kernels the
runtimes chose (test_int8_onnx.cpp writes the cases).

    onnx_int8_reference.py MODEL.onnx CASES.json

CASES.json: {"logit_tolerance": t, "probability_tolerance": p, "min_agreement": a, "output_step": s,
"onnxruntime_logit_tolerance": t' (optional, per runtime; default t),
"cases": [{"input": "x.f32", "logits": "l.f32", "shape": [N, C, H, W], "output_shape": [N, K, H', W']}]},
raw little-endian float32 files. Prints one line per runtime and case (max |logit diff|, max
|probability diff|, argmax agreement) and one line per runtime with the kernels: ONNX Runtime's
optimized graph's int8 nodes (QLinearConv, ...), OpenVINO's executed convolutions by precision.
Exit 1 on any failure, including an ONNX Runtime graph with a float convolution besides the head."""
import collections
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort


def softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def ort_kernels(model_path):
    """Op types of ONNX Runtime's optimized graph (the level before its CPU-specific layouts)."""
    with tempfile.TemporaryDirectory() as folder:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(Path(folder) / "optimized.onnx")
        ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
        graph = onnx.load(options.optimized_model_filepath).graph
        return collections.Counter(n.op_type for n in graph.node)


def openvino_runtimes(model_path):
    """OpenVINO's compiled CPU model and its executed convolutions by input precision, or None."""
    try:
        import openvino as ov
    except ImportError:
        return None, None
    compiled = ov.Core().compile_model(model_path, "CPU")
    kinds = collections.Counter()
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        layer = info["layerType"].astype(str) if "layerType" in info else ""
        if layer in ("Convolution", "Deconvolution"):
            kinds[f"{layer}:{info['runtimePrecision'].astype(str)}"] += 1
    return compiled, kinds


def main(model_path, cases_path):
    model = onnx.load(model_path)
    onnx.checker.check_model(model, full_check=True)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta.get("precision") == "int8", meta.get("precision")
    spec = json.loads(Path(cases_path).read_text())
    folder = Path(cases_path).parent
    failures = 0

    kernels = ort_kernels(model_path)
    print("onnxruntime kernels: " + ", ".join(f"{k} {v}" for k, v in sorted(kernels.items())))
    # Every convolution but the head (float32 logits) must have become a QLinearConv.
    if kernels["QLinearConv"] == 0 or kernels["Conv"] + kernels["ConvTranspose"] > 1:
        print("onnxruntime: float convolutions besides the head in the optimized graph FAILED")
        failures += 1
    runtimes = {"onnxruntime": lambda x: ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
                .run(["logits"], {"image": x})[0]}
    compiled, ov_kinds = openvino_runtimes(model_path)
    if compiled is not None:
        print("openvino convolutions: " + ", ".join(f"{k} {v}" for k, v in sorted(ov_kinds.items())))
        runtimes["openvino"] = lambda x: compiled({"image": x})["logits"]
    else:
        print("openvino: not importable, skipped")

    for case in spec["cases"]:
        x = np.fromfile(folder / case["input"], dtype="<f4").reshape(case["shape"])
        expected = np.fromfile(folder / case["logits"], dtype="<f4").reshape(case["output_shape"])
        outputs = {}
        for runtime, run in runtimes.items():
            got = outputs[runtime] = run(x)
            if got.shape != expected.shape:
                print(f"{runtime} {case['shape']}: shape {list(got.shape)} FAILED")
                failures += 1
                continue
            logit = float(np.abs(got - expected).max())
            prob = float(np.abs(softmax(got) - softmax(expected)).max())
            agree = float((got.argmax(1) == expected.argmax(1)).mean())
            ok = logit <= spec.get(runtime + "_logit_tolerance", spec["logit_tolerance"]) and prob <= spec["probability_tolerance"] and agree >= spec["min_agreement"]
            failures += not ok
            print(f"{runtime} {case['shape']} -> {list(got.shape)}: max |logit diff| {logit:.3e} "
                  f"({logit / spec['output_step']:.2f} output steps), max |probability diff| {prob:.3e}, "
                  f"argmax agreement {agree:.5f} {'ok' if ok else 'FAILED'}")
        if len(outputs) == 2 and all(o.shape == expected.shape for o in outputs.values()):
            between = float(np.abs(outputs["onnxruntime"] - outputs["openvino"]).max())
            print(f"onnxruntime vs openvino: max |logit diff| {between:.3e} ({between / spec['output_step']:.2f} output steps)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
