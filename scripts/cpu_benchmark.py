#!/usr/bin/env python3
"""unet against the CPU runtimes a user would deploy instead, side by side on this machine.

Runs, in interleaved rounds (every implementation once per round, so that the machine's drift
hits all of them alike), the reference U-Net at 572x572 on random inputs:
  unet            `unet benchmark` (the CPU engine: oneDNN's fused convolutions and, where it is
                  faster, Winograd F(6x6,3x3) or F(4x4,3x3); "unet direct": the engine with --conv-algorithm
                  direct; "unet plain": --cpu-engine off, the plain LibTorch path; all with the
                  allocator the build links, jemalloc)
  PyTorch         ../shared/bench/pytorch_reference.py, eager and torch.compile, and eager with
                  jemalloc preloaded as unet configures it ("PyTorch eager+jemalloc": what a
                  PyTorch user tuning the allocator would get; only where libjemalloc is installed)
  OpenVINO, ORT   ../shared/bench/runtime_reference.py (needs openvino, onnxruntime, onnx: pip
                  install --target DIR openvino onnxruntime onnx, then PYTHONPATH=DIR)
and prints a markdown table of the median images/s (min-max over the rounds), the ratio of unet's
best to the best other implementation, and the fraction of the machine's matrix-product ceiling
(a large fp32 and bf16 matmul measured in the same run; 315 GFLOP per image forward, 945 per
training image) that each reached. The CPU model and its bf16/AMX flags head the table.

int8 (--precisions int8): unet calibrated on its own random inputs (`unet benchmark --precision
int8`), the peers as runtime_reference.py quantizes them (ONNX Runtime static QDQ, OpenVINO NNCF,
calibrated on 4 random inputs): speed only; the accuracy is `unet quantize`'s and
scripts/int8_peers.py's business.

  scripts/cpu_benchmark.py [--rounds 3] [--rows train-2,infer-1,infer-4] [--precisions fp32,bf16,int8]
                           [--train-steps 2] [--infer-steps 3] [--impls unet,PyTorch eager,...]
More timed steps steady the training ratios on noisy machines, at a proportional cost in time.
"""
import argparse, json, os, statistics, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FORWARD_GFLOP, TRAIN_GFLOP = 315.0, 945.0
# The jemalloc settings of tools/allocator.cpp, for the PyTorch row that preloads it.
JEMALLOC = next((p for p in ("/lib/x86_64-linux-gnu/libjemalloc.so.2", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
                             "/usr/lib64/libjemalloc.so.2") if os.path.exists(p)), None)
JEMALLOC_CONF = "oversize_threshold:1,dirty_decay_ms:-1,muzzy_decay_ms:-1,metadata_thp:auto"


def run(cmd, env=None):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    return p.returncode, p.stdout, p.stderr


def cpu_description():
    model, flags = "unknown CPU", set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name") and model == "unknown CPU":
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    wanted = [f for f in ("avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8") if f in flags]
    return f"{model}, {os.cpu_count()} cores, flags: {' '.join(wanted) or 'no AVX-512'}"


def ceiling(python, dtype):
    """TFLOP/s of a large matrix product on all cores (best of 5)."""
    code = f"""
import time, torch
torch.manual_seed(0)
a = torch.randn(2048, 2048, dtype=torch.{dtype}); b = torch.randn(2048, 2048, dtype=torch.{dtype})
best = 0.0
for _ in range(7):
    t = time.perf_counter(); c = a @ b; dt = time.perf_counter() - t
    best = max(best, 2 * 2048**3 / dt / 1e12)
print(best)
"""
    code_rc, out, _ = run([python, "-W", "ignore", "-c", code])
    return float(out.strip().splitlines()[-1]) if code_rc == 0 else float("nan")


def measure(impl, what, prec, bs, args):
    """images/s of one implementation, or None when it is not available for this cell."""
    python, unet = args.python, args.unet
    iters, warmup = (args.train_steps, 1) if what == "train" else (args.infer_steps, 1)
    if impl.startswith("unet"):
        mode = "train" if what == "train" else "predict"
        engine = "off" if impl == "unet plain" else "on"
        if prec == "int8" and impl != "unet":
            return None  # int8 has one path: the engine's oneDNN int8 convolutions
        if impl == "unet direct" and prec != "fp32":
            return None  # Winograd runs in float32 only: elsewhere the same as unet
        out = os.path.join(args.out, f"{impl.replace(' ', '-')}-{what}-{prec}-bs{bs}.json")
        rc, _, err = run([unet, "benchmark", "--exec-mode", mode, "--synthetic", "--device", "cpu", "--precision", prec,
                          "--batch-size", str(bs), "--warmup-steps", str(warmup), "--max-steps", str(iters),
                          "--cpu-engine", engine, "--output", out, "--quiet"]
                         + (["--conv-algorithm", "direct"] if impl == "unet direct" else []))
        return json.load(open(out))["images_per_second"] if rc == 0 else None
    if impl.startswith("PyTorch"):
        mode = "compile" if "compile" in impl else "eager"
        if (what == "train" and mode == "compile") or prec == "int8":
            return None  # the PyTorch reference has no int8
        env = None
        if impl.endswith("+jemalloc"):
            if JEMALLOC is None:
                return None
            env = dict(os.environ, LD_PRELOAD=JEMALLOC, MALLOC_CONF=JEMALLOC_CONF)
        rc, out, _ = run([python, "-W", "ignore", args.ref, "--what", what, "--prec", prec, "--bs", str(bs), "--mode", mode,
                          "--warmup", str(warmup), "--iters", str(iters)], env=env)
    else:
        runtime = "openvino" if impl == "OpenVINO" else "onnxruntime"
        if what == "train" or (runtime == "onnxruntime" and prec == "bf16"):
            return None
        rc, out, _ = run([python, "-W", "ignore", args.runtimes, "--runtime", runtime, "--prec", prec, "--bs", str(bs),
                          "--warmup", str(warmup), "--iters", str(iters)])
    try:
        return json.loads(out.strip().splitlines()[-1])["img_per_s"] if rc == 0 else None
    except (ValueError, IndexError, KeyError):
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rows", default="train-2,infer-1,infer-4")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--train-steps", type=int, default=2, help="timed training steps per measurement (after 1 warm-up)")
    ap.add_argument("--infer-steps", type=int, default=3, help="timed forward passes per measurement (after 1 warm-up)")
    ap.add_argument("--impls", default="unet,unet direct,unet plain,PyTorch eager,PyTorch eager+jemalloc,PyTorch compile,OpenVINO,ONNX Runtime")
    ap.add_argument("--unet", default=os.environ.get("UNET", os.path.join(ROOT, "build", "unet")))
    ap.add_argument("--python", default=os.environ.get("PYTHON", os.path.join(ROOT, ".venv", "bin", "python")))
    ap.add_argument("--ref", default=os.environ.get("REF", os.path.join(ROOT, "..", "shared", "bench", "pytorch_reference.py")))
    ap.add_argument("--runtimes", default=os.path.join(ROOT, "..", "shared", "bench", "runtime_reference.py"))
    ap.add_argument("--out", default=os.environ.get("OUT", os.path.join(ROOT, "bench-results")))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    impls = args.impls.split(",")
    cells = [(row.split("-")[0], prec, int(row.split("-")[1])) for row in args.rows.split(",") for prec in args.precisions.split(",")]
    results = {(c, i): [] for c in cells for i in impls}
    ceilings = {"fp32": [], "bf16": []}
    start = time.time()
    for r in range(args.rounds):
        for dtype in [d for d in ceilings if d in args.precisions.split(",")]:  # bf16 takes minutes without AVX-512
            ceilings[dtype].append(ceiling(args.python, "float32" if dtype == "fp32" else "bfloat16"))
        for cell in cells:
            for impl in impls:
                v = measure(impl, *cell, args)
                if v is not None:
                    results[(cell, impl)].append(v)
                print(f"round {r + 1} {cell} {impl}: {v}", file=sys.stderr, flush=True)
    ceiling_tflops = {d: statistics.median(v) if v else float("nan") for d, v in ceilings.items()}
    print(f"\n{cpu_description()}; {time.strftime('%Y-%m-%d', time.gmtime())}; {args.rounds} interleaved rounds "
          f"({(time.time() - start) / 60:.0f} min); matmul ceiling fp32 {ceiling_tflops['fp32']:.2f}, "
          f"bf16 {ceiling_tflops['bf16']:.2f} TFLOP/s (median)\n")
    print("| mode | batch | precision | " + " | ".join(f"{i} img/s" for i in impls) + " | unet / best other | unet % of ceiling |")
    print("|---|---|---|" + "---|" * len(impls) + "---|---|")
    for cell in cells:
        what, prec, bs = cell
        row, medians = [what, str(bs), prec], {}
        for impl in impls:
            v = results[(cell, impl)]
            if v:
                medians[impl] = statistics.median(v)
                row.append(f"{medians[impl]:.3f} ({min(v):.3f}-{max(v):.3f})")
            else:
                row.append("-")
        ours = max((m for i, m in medians.items() if i.startswith("unet")), default=None)
        others = max((m for i, m in medians.items() if not i.startswith("unet")), default=None)
        row.append(f"{ours / others:.2f}x" if ours and others else "-")
        gflop = TRAIN_GFLOP if what == "train" else FORWARD_GFLOP
        top = ceiling_tflops.get(prec, 0.0)  # no int8 ceiling is measured
        row.append(f"{100 * ours * gflop / 1000 / top:.0f}%" if ours and top > 0 else "-")
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
