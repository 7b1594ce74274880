#!/usr/bin/env python3
"""Runs an ONNX file that unet exported in the runtimes a user would deploy it in, and compares
their probabilities with unet's own (test_export.cpp writes the cases).

    onnx_reference.py MODEL.onnx CASES.json

CASES.json: {"tolerance": t, "cases": [{"input": "x.f32", "expected": "p.f32", "shape": [N, C, H, W],
"output_shape": [N, K, H', W']}]}, raw little-endian float32 files. Checks the file with onnx's full
checker and strict shape inference, reads the unet contract from metadata_props, then runs ONNX
Runtime and OpenVINO (fp32: OpenVINO's CPU plugin would otherwise pick bf16 on CPUs that have it).
Prints one line per runtime and case; exit 1 on any failure."""
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import openvino as ov


def main(model_path, cases_path):
    model = onnx.load(model_path)
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    meta = {p.key: p.value for p in model.metadata_props}
    contract = json.loads(meta["unet.contract"])
    assert contract["format"] == "unet-onnx/1", contract["format"]
    spec = json.loads(Path(cases_path).read_text())
    folder = Path(cases_path).parent
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    compiled = ov.Core().compile_model(model_path, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    failures = 0
    for case in spec["cases"]:
        x = np.fromfile(folder / case["input"], dtype="<f4").reshape(case["shape"])
        expected = np.fromfile(folder / case["expected"], dtype="<f4").reshape(case["output_shape"])
        results = {"onnxruntime": session.run(["probabilities"], {"image": x})[0],
                   "openvino": compiled({"image": x})["probabilities"]}
        for runtime, got in results.items():
            ok = got.shape == expected.shape
            diff = float(np.abs(got - expected).max()) if ok else float("inf")
            ok = ok and diff <= spec["tolerance"]
            failures += not ok
            print(f"{runtime} {case['shape']} -> {list(got.shape)}: max |diff| {diff:.2e} {'ok' if ok else 'FAILED'}")
    print(f"contract: classes {contract['output']['classes']}, legal sizes {contract['input']['legal_sizes']}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
