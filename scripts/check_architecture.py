#!/usr/bin/env python3
"""Checks unet's one-way architecture: every #include goes from a part to itself or to a part
below it, as the unet_part(... DEPENDS ...) calls of the top-level CMakeLists.txt declare.

    scripts/check_architecture.py [ROOT]      # prints each wrong arrow; exit 1 if there is one
    scripts/check_architecture.py --self-test # proves that a planted wrong arrow is found

Parts own include/unet/<part>/ (public headers, "unet/<part>/x.h") and src/<part>/ (sources and
private headers, "<part>/x.h"); src/cuda/ is the optional kernels part that only unet_model links, src/cpu/ the CPU kernels part
(the same, without LibTorch),
src/onnx/ the LibTorch-free ONNX writer that only unet_infer links; tools/ (the CLI), python/ (the
Python module over the parts and the CLI's commands) and fuzz/ sit on top and may include any part.
Each test in tests/ uses the parts its unet_add_test(... PARTS ...) line in tests/CMakeLists.txt
names and those below them, and no part's private headers; the shared helpers (test_support) use
unet_model and below. The build enforces the same arrows (each part's public and private include
folders are staged alone, and each test links only its parts); this script reports every wrong
arrow at once, before a build."""
import re
import shutil
import sys
import tempfile
from pathlib import Path

INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)


def declared_parts(root):
    """{part: set of direct dependencies} from the unet_part() calls and unet_cuda's link."""
    text = (root / "CMakeLists.txt").read_text()
    parts = {}
    for m in re.finditer(r"unet_part\((\w+)((?:\s+DEPENDS(?:\s+\w+)+)?)\s+SOURCES", text):
        deps = m.group(2).split()[1:] if m.group(2).strip() else []
        parts[m.group(1)] = set(deps)
    if re.search(r"target_link_libraries\(unet_model PRIVATE unet_cuda\)", text):
        parts["cuda"] = set()
        parts.setdefault("model", set()).add("cuda")
    if re.search(r"target_link_libraries\(unet_model PRIVATE unet_cpu\)", text):
        parts["cpu"] = set()
        parts.setdefault("model", set()).add("cpu")
    if re.search(r"target_link_libraries\(unet_infer PRIVATE unet_onnx\)", text):
        parts["onnx"] = set()
        parts.setdefault("infer", set()).add("onnx")
    return parts


TEST_SUPPORT_PARTS = {"model"}


def declared_tests(root):
    """{test name: the parts it links} from tests/CMakeLists.txt's unet_add_test() calls."""
    path = root / "tests" / "CMakeLists.txt"
    if not path.is_file():
        return {}
    tests = {}
    for m in re.finditer(r"unet_add_test\((\w+)\s+\w+((?:\s+PARTS(?:\s+(?!PRIVATE\b)\w+)+)?)((?:\s+PRIVATE(?:\s+\w+)+)?)\s*\)",
                         path.read_text()):
        parts = set(m.group(2).split()[1:]) if m.group(2).strip() else set()
        private = set(m.group(3).split()[1:]) if m.group(3).strip() else set()
        tests[m.group(1)] = (parts, private)
    return tests


def test_parts(path, root, tests, below):
    """The parts a file in tests/ may include (with those below them), or None when it is not a declared test."""
    stem = path.stem
    if stem == "test_support":
        direct = TEST_SUPPORT_PARTS
    elif stem in tests:
        direct = tests[stem][0] | TEST_SUPPORT_PARTS
    else:
        return None
    # "cli": the command line's library (tools/), which links unet_train and so every part.
    direct = set(direct) | ({"train"} if "cli" in direct else set())
    allowed = set(direct)
    for part in direct:
        allowed |= below.get(part, set())
    return allowed


def closure(parts):
    """{part: every part below it}; raises ValueError on a cycle."""
    below = {}

    def visit(part, path):
        if part in path:
            raise ValueError("dependency cycle: " + " -> ".join(path + [part]))
        if part not in below:
            found = set()
            for dep in parts.get(part, ()):
                if dep not in parts:
                    raise ValueError(f"unet_{part} depends on unknown part '{dep}'")
                found |= {dep} | visit(dep, path + [part])
            below[part] = found
        return below[part]

    for part in parts:
        visit(part, [])
    return below


def owner(path, root, parts):
    rel = path.relative_to(root).parts
    if rel[0] == "include" and len(rel) > 3 and rel[1] == "unet" and rel[2] in parts:
        return rel[2]
    if rel[0] == "src" and len(rel) > 2 and rel[1] in parts:
        return rel[1]
    if rel[0] in ("tools", "python", "tests", "examples", "fuzz"):
        return rel[0]
    return None


def target(name, parts):
    """The part whose header `name` is, or None for system and third-party headers."""
    pieces = name.split("/")
    if pieces[0] == "unet" and len(pieces) == 3 and pieces[1] in parts:
        return pieces[1]
    if pieces[0] == "unet" and len(pieces) == 2:
        return "?flat"
    if len(pieces) == 2 and pieces[0] in parts:
        return pieces[0]
    return None


def check(root):
    root = Path(root)
    parts = declared_parts(root)
    try:
        below = closure(parts)
    except ValueError as e:
        return [str(e)]
    problems = []
    tests = declared_tests(root)
    files = [p for d in ("include", "src", "tools", "python", "tests", "examples", "fuzz") if (root / d).is_dir()
             for p in (root / d).rglob("*") if p.suffix in (".h", ".hpp", ".cpp", ".cu", ".cuh")]
    for path in sorted(files):
        source = owner(path, root, parts)
        if source is None:
            if path.relative_to(root).parts[0] in ("include", "src") and path.name != "pch.h":
                problems.append(f"{path.relative_to(root)}: belongs to no part")
            continue
        for name in INCLUDE.findall(path.read_text(errors="replace")):
            if name.startswith("../") or "/src/" in name or name.startswith("src/"):
                problems.append(f"{path.relative_to(root)}: #include \"{name}\": a path around the staged include "
                                f"folders (the build's one-way rule cannot see it)")
                continue
            dest = target(name, parts)
            if dest is None or dest == source:
                continue
            where = f"{path.relative_to(root)}: #include \"{name}\""
            if dest == "?flat":
                problems.append(f"{where}: unet/ headers live in a part's folder (unet/<part>/)")
            elif source == "examples" and name.split("/")[0] != "unet":
                problems.append(f"{where}: an outside program sees installed public headers only")
            elif source == "tests":
                allowed = test_parts(path, root, tests, below)
                if allowed is None:
                    continue  # not a test executable (a data file's source, say)
                private = tests[path.stem][1] if path.stem in tests else set()
                if name.split("/")[0] != "unet" and dest not in private:
                    problems.append(f"{where}: tests see public headers only (unet/<part>/x.h), or the private "
                                    f"headers of the parts their PRIVATE names")
                elif dest not in allowed:
                    problems.append(f"{where}: {path.stem} may not use unet_{dest} "
                                    f"(tests/CMakeLists.txt links it to {', '.join(sorted(allowed))})")
            elif source in ("tools", "python", "examples", "fuzz"):
                continue
            elif dest not in below[source]:
                problems.append(f"{where}: unet_{source} may not use unet_{dest} "
                                f"(it uses {', '.join(sorted(below[source])) or 'no other part'})")
    return problems


HAND_COUNT = re.compile(r"\b\d+ (?:of \d+ )?(?:tests|parts)\b|out of \d+\b")


def check_docs(root):
    """The docs name every part (docs/architecture.md's table, README's layout) and state no counts
    of tests or parts by hand: such numbers go stale with the next test (the suite and this
    script print them)."""
    root = Path(root)
    problems = []
    parts = declared_parts(root)
    architecture = root / "docs" / "architecture.md"
    readme = root / "README.md"
    if architecture.is_file():
        text = architecture.read_text()
        for part in sorted(parts):
            if not re.search(rf"^\| {part} \|", text, re.M):
                problems.append(f"docs/architecture.md: no row for the part '{part}' in its table of parts")
    if readme.is_file():
        layout = [line for line in readme.read_text().splitlines() if line.startswith("| `include/unet/<part>/`")]
        for part in sorted(parts):
            if layout and f"`{part}`" not in layout[0]:
                problems.append(f"README.md: the project layout does not name the part '{part}'")
    for doc in [readme, *sorted((root / "docs").glob("*.md"))]:
        if not doc.is_file():
            continue
        for number, line in enumerate(doc.read_text().splitlines(), 1):
            for m in HAND_COUNT.finditer(line):
                problems.append(f"{doc.relative_to(root)}:{number}: '{m.group(0)}': a count of tests or parts "
                                f"written by hand (the suite and this script print them)")
    return problems


def self_test():
    """A copy of the tree with one planted wrong arrow must fail, the unchanged copy pass."""
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "unet"
        for d in ("include", "src", "tools", "tests"):
            skip = shutil.ignore_patterns("data", "python") if d == "tests" else None  # test data, not sources
            shutil.copytree(root / d, copy / d, ignore=skip)
        shutil.copy(root / "CMakeLists.txt", copy)
        clean = check(copy)
        header = copy / "include/unet/model/unet.h"
        header.write_text('#include "unet/train/trainer.h"\n' + header.read_text())
        private = copy / "src/data/loader.cpp"
        private.write_text('#include "eval/json.h"\n' + private.read_text())
        test = copy / "tests/test_model.cpp"
        test.write_text('#include "unet/infer/predictor.h"\n#include "../src/data/tiff_internal.h"\n' + test.read_text())
        planted = check(copy)
        (copy / "docs").mkdir()
        (copy / "docs" / "architecture.md").write_text("| runtime |\n| model |\n\nThe suite runs 42 tests.\n")
        docs = check_docs(copy)
    found = "\n".join(planted)
    ok = (not clean and len(planted) == 4 and "unet_model may not use unet_train" in found
          and "test_model may not use unet_infer" in found and "a path around the staged include" in found
          and any("'42 tests'" in d for d in docs) and any("no row for the part 'data'" in d for d in docs))
    print("self-test:", "passed" if ok else f"FAILED (clean: {clean}, planted: {planted}, docs: {docs})")
    return 0 if ok else 1


def main(argv):
    if argv[1:] == ["--self-test"]:
        return self_test()
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent
    problems = check(root) + check_docs(root)
    for p in problems:
        print(p)
    parts = declared_parts(root)
    print(f"{len(problems)} problem(s) in the includes of {len(parts)} parts and the docs" if problems else
          f"one-way: every #include of the {len(parts)} parts points to its own part or one below it")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
