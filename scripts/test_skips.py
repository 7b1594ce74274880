#!/usr/bin/env python3
"""Counts the tests that the last ctest run skipped, with each one's reason, and fails when one of
them skipped for a reason that the machine running it should not have.

    scripts/test_skips.py BUILD_DIR            # print the skips; exit 0
    scripts/test_skips.py BUILD_DIR --strict   # exit 1 when a skip is not an allowed one

A test skips when something it needs is absent: a GPU, the ISBI data, a CPU feature, or a library
or Python package that the build or scripts/run.sh should have installed. Only the first three
are a property of the machine; on CI (--strict) the others are errors, since they mean that an
install failed and a part of the suite silently stopped running. The reasons come from ctest's
own log (Testing/Temporary/LastTest.log: each test's output with GoogleTest's "Skipped" message,
or the Python tests' "SKIPPED: <what is missing>" line; both are ctest skip expressions). Skips
inside pytest (a test of the package that skips itself) are pytest's to report.

    scripts/test_skips.py BUILD_DIR --gpu      # on a GPU machine: a GPU test that skips fails too"""
import re
import sys
from pathlib import Path

# Skips that say something about the machine, not about the installation.
ALLOWED = [
    ("no GPU", re.compile(r"no CUDA device|no CUDA kernels built|built without CUDA kernels")),
    ("no ISBI data", re.compile(r"ISBI 2012 data not found")),
    ("CPU features", re.compile(r"on this CPU|need VNNI or AMX|no /proc/cpuinfo")),
]

BLOCK = re.compile(r"^\d+/\d+ Testing: (?P<name>.+?)\n(?P<body>.*?)(?=^\d+/\d+ Testing: |\Z)", re.M | re.S)


def skipped_tests(log_text):
    """[(test name, reason)] of the skipped tests in a LastTest.log."""
    out = []
    for m in BLOCK.finditer(log_text):
        body = m.group("body")
        if "Skip regular expression found" not in body:
            continue
        reason = ""
        gtest = re.search(r": Skipped\n(.*?)\n\[  SKIPPED \]", body, re.S)
        if gtest:
            reason = gtest.group(1).strip()
        else:
            said = re.search(r"^(?:SKIP|skip(?:ped|ping)?)[: ](.*)$", body, re.M | re.I)
            reason = said.group(1).strip() if said else body.strip().splitlines()[-1] if body.strip() else ""
        out.append((m.group("name").strip(), " ".join(reason.split())))
    return out


def classify(reason):
    for label, pattern in ALLOWED:
        if pattern.search(reason):
            return label
    return None


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    strict = "--strict" in argv[1:] or "--gpu" in argv[1:]
    gpu = "--gpu" in argv[1:]
    if len(args) != 1:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    log = Path(args[0]) / "Testing" / "Temporary" / "LastTest.log"
    if not log.is_file():
        print(f"test_skips: no ctest log at {log}: no tests ran")
        return 0
    skips = skipped_tests(log.read_text(errors="replace"))
    counts, wrong = {}, []
    for name, reason in skips:
        label = classify(reason)
        if gpu and label == "no GPU":
            label = None  # on a GPU machine the GPU tests must run
        counts[label or "not allowed"] = counts.get(label or "not allowed", 0) + 1
        if label is None:
            wrong.append((name, reason))
    summary = ", ".join(f"{n} {label}" for label, n in sorted(counts.items())) or "none"
    print(f"skipped tests: {len(skips)} ({summary})")
    for name, reason in wrong:
        print(f"  {name}: {reason or '(no reason given)'}")
    if strict and wrong:
        print(f"test_skips: {len(wrong)} test(s) skipped for want of something this machine should have "
              f"installed (see above): failing", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
