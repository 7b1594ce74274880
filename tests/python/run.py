"""Runs one of the Python package's pytest files for ctest: exits 77 (ctest's skip) with one line
saying what is missing when the test Python lacks a module the file needs, and runs Qt tests on a
virtual X display (xvfb-run) when there is no display, so that the viewer can draw its screenshot.

    python run.py TEST_FILE [--needs mod1,mod2] [--display]

With UNET_REQUIRE_PYTHON_TESTS set (CI), a missing module is a failure, not a skip.
"""

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys

parser = argparse.ArgumentParser()
parser.add_argument("test_file")
parser.add_argument("--needs", default="")
parser.add_argument("--display", action="store_true")
args = parser.parse_args()

missing = [m for m in filter(None, args.needs.split(",")) if importlib.util.find_spec(m) is None]
if missing:
    # CI sets UNET_REQUIRE_PYTHON_TESTS: there a missing module fails the test instead of skipping it
    # (ctest reads "SKIPPED: " as a skip, whatever the exit status).
    if os.environ.get("UNET_REQUIRE_PYTHON_TESTS"):
        print(f"FAILED: {sys.executable} lacks {', '.join(missing)} (scripts/run.sh test installs them)")
        sys.exit(1)
    print(f"SKIPPED: {sys.executable} lacks {', '.join(missing)} (scripts/run.sh test installs them)")
    sys.exit(77)
command = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", args.test_file]
env = dict(os.environ)
if args.display and not env.get("DISPLAY"):
    if shutil.which("xvfb-run"):
        command = ["xvfb-run", "-a", "-s", "-screen 0 1400x900x24", *command]
    else:
        print("no display and no xvfb-run: Qt offscreen, without the screenshot")
        env["QT_QPA_PLATFORM"] = "offscreen"
        env.pop("UNET_SCREENSHOT", None)
sys.exit(subprocess.call(command, env=env))
