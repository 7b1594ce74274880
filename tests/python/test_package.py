"""The Python package: predictions equal the unet program's files, every dtype and layout, the
train -> checkpoint -> Segmenter round trip (conftest), the program's error messages, no leak, the
GIL released during C++ work, Ctrl-C and callback stops, keyword arguments from the option table."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import numpy as np
import pytest
import tifffile

import unet
from conftest import NET, run_program


def nuclei_image(size=96, index=0):
    image, labels = unet._unet.synthetic("nuclei", size, index)
    return image, labels


def test_three_lines(nuclei_model):
    seg = unet.Segmenter.load(nuclei_model)
    out = seg.predict(nuclei_image()[0], instances=True)
    assert out.labels.shape == (96, 96) and out.labels.dtype == np.int32
    assert out.mask.dtype == np.uint8 and out.probabilities.shape == (3, 96, 96)
    np.testing.assert_allclose(out.probabilities.sum(0), 1.0, atol=1e-5)
    assert seg.classes == 3 and seg.channels == 1 and seg.scheme == "interior-boundary" and seg.has_objects


@pytest.mark.parametrize("size", [96, 130])  # the training size and another (tiles: the model trained on tiles)
def test_equal_to_the_program(nuclei_model, tmp_path, size):
    image = nuclei_image(size, 3)[0]
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in/image.tif", image)
    r = run_program("predict", "--model-dir", nuclei_model, "--input", tmp_path / "in", "--output-dir",
                    tmp_path / "cli", "--mask-encoding", "index", "--instances", "--no-overlays", "--quiet")
    assert r.returncode == 0, r.stderr
    out = unet.Segmenter.load(nuclei_model).predict(image, instances=True)
    assert np.array_equal(tifffile.imread(tmp_path / "cli/image.tif"), out.mask)
    assert np.array_equal(tifffile.imread(tmp_path / "cli/image_instances.tif").astype(np.int32), out.labels)
    np.testing.assert_allclose(tifffile.imread(tmp_path / "cli/image_probabilities.tif"), out.probabilities, atol=1e-6, rtol=0)
    # The same command in-process, through the package's keyword arguments.
    unet.predict(model_dir=nuclei_model, input=tmp_path / "in", output_dir=tmp_path / "py",
                 mask_encoding="index", instances=True, overlays=False, quiet=True)
    for name in ("image.tif", "image_instances.tif", "image_probabilities.tif"):
        assert np.array_equal(tifffile.imread(tmp_path / "cli" / name), tifffile.imread(tmp_path / "py" / name)), name


def test_two_class_equal_to_the_program(em_model, tmp_path):
    image = unet._unet.synthetic("em", 120, 1)[0]
    tifffile.imwrite(tmp_path / "em.tif", image)
    r = run_program("predict", "--model-dir", em_model, "--input", tmp_path / "em.tif", "--output-dir", tmp_path / "cli",
                    "--no-overlays", "--quiet")
    assert r.returncode == 0, r.stderr
    out = unet.Segmenter.load(em_model).predict(image)
    assert np.array_equal(tifffile.imread(tmp_path / "cli/test-masks.tif"), out.mask * 255)
    np.testing.assert_allclose(tifffile.imread(tmp_path / "cli/test-probabilities.tif"), out.probabilities[1], atol=1e-6, rtol=0)


def test_resize_mode_equal_to_the_program(tmp_path):
    folder = tmp_path / "resize"
    unet.train(synthetic=True, synthetic_size=96, synthetic_count=4, max_steps=2, model_dir=folder, seed=3,
               depth=2, filters=4, input_size=92, input_mode="resize", batch_size=2, quiet=True)
    image = unet._unet.synthetic("em", 96, 2)[0]  # the training images' size: auto resizes
    tifffile.imwrite(tmp_path / "em.tif", image)
    r = run_program("predict", "--model-dir", folder, "--input", tmp_path / "em.tif", "--output-dir", tmp_path / "cli",
                    "--probabilities", "--no-overlays", "--quiet")
    assert r.returncode == 0, r.stderr
    out = unet.Segmenter.load(folder).predict(image)
    assert np.array_equal(tifffile.imread(tmp_path / "cli/test-masks.tif"), out.mask * 255)
    np.testing.assert_allclose(tifffile.imread(tmp_path / "cli/test-probabilities.tif"), out.probabilities[1], atol=1e-6, rtol=0)


def test_two_class_masks_and_options(em_model):
    image = unet._unet.synthetic("em", 96, 1)[0]
    seg = unet.Segmenter.load(em_model, tile_overlap=8, blend="uniform", tile_batch=1)
    out = seg.predict(image)
    assert set(np.unique(out.mask)) <= {0, 1} and out.labels is None
    assert np.array_equal(out.mask, (out.probabilities[1] >= 0.5).astype(np.uint8))
    assert "--tile-overlap" not in unet.Segmenter.options() and "tile_overlap" in unet.Segmenter.options()


def read_only(array):
    out = array.copy()
    out.flags.writeable = False
    return out


def test_dtypes_and_layouts(nuclei_model):
    seg = unet.Segmenter.load(nuclei_model)
    image = nuclei_image(96, 2)[0]
    ref = seg.predict(image).probabilities
    same = {
        "uint16": image.astype(np.uint16) * 257,  # the same intensities on 16 bits
        "float32": image.astype(np.float32) / 255,
        "float64": image.astype(np.float64) / 255,
        "(H, W, 1)": image[..., None],
        "(1, H, W)": image[None],
        "fortran order": np.asfortranarray(image),
        "strided view": np.repeat(np.repeat(image, 2, 0), 2, 1)[::2, ::2],
        "read-only": read_only(image),  # as np.asarray gives a PIL image's pixels
    }
    for name, variant in same.items():
        np.testing.assert_allclose(seg.predict(variant).probabilities, ref, atol=2e-5, err_msg=name)
    stack = seg.predict(np.stack([image, image[::-1].copy()]), instances=True)
    assert stack.probabilities.shape == (2, 3, 96, 96) and stack.labels.shape == (2, 96, 96)
    np.testing.assert_array_equal(stack.probabilities[0], ref)
    np.testing.assert_array_equal(stack.mask[1], seg.predict(image[::-1].copy()).mask)
    np.testing.assert_array_equal(seg.predict(np.stack([image, image])[:, None]).probabilities[1], ref)  # (N, 1, H, W)
    assert same["uint16"].max() >= 32768  # the upper half of 16 bits read as unsigned
    with pytest.raises(unet.Error, match="uint8, uint16 or float32"):
        seg.predict(image.astype(np.int64))
    with pytest.raises(unet.Error, match=r"looks like colour \(H, W, 3\)"):
        seg.predict(np.repeat(image[..., None], 3, axis=-1))


def test_rgb_layouts():
    seg = unet.Segmenter.load("nuclei-he")  # a shipped model, by name (RGB)
    rng = np.random.default_rng(0)
    hwc = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    ref = seg.predict(hwc)
    np.testing.assert_array_equal(seg.predict(np.ascontiguousarray(hwc.transpose(2, 0, 1))).probabilities, ref.probabilities)
    both = seg.predict(np.stack([hwc, hwc]))
    np.testing.assert_array_equal(both.probabilities[1], ref.probabilities)
    with pytest.raises(unet.Error, match="the image has 1 channels, the model expects 3"):
        seg.predict(hwc[..., 0])
    with pytest.raises(unet.Error, match="does not fit a model of 3 channel"):
        seg.predict(hwc[..., :2])


def test_errors_carry_the_programs_words(nuclei_model, tmp_path):
    r = run_program("train", "--synthetic", "--max-steps", "-3", "--model-dir", tmp_path / "m")
    assert r.returncode != 0
    line = r.stderr.strip().splitlines()[-1].removeprefix("unet: error: ")
    with pytest.raises(unet.OptionError) as raised:
        unet.train(synthetic=True, max_steps=-3, model_dir=tmp_path / "m")
    assert str(raised.value) == line
    assert isinstance(raised.value, ValueError) and isinstance(raised.value, unet.Error)
    with pytest.raises(unet.OptionError, match="--tile-batch"):
        unet.Segmenter.load(nuclei_model, tile_batch=0)
    with pytest.raises(TypeError, match="did you mean tile_size"):
        unet.Segmenter.load(nuclei_model, tile_sise=64)
    with pytest.raises(unet.Error, match="no such file or folder"):
        unet.Segmenter.load(tmp_path / "nothing")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(unet.Error, match="bad.pt"):
        unet.Segmenter.load(tmp_path / "bad.pt")
    seg = unet.Segmenter.load(nuclei_model)
    with pytest.raises(unet.Error, match="2 channels, the model expects 1"):
        seg.predict(np.zeros((2, 40, 40), np.uint8), axes="cyx")


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_no_leak_over_200_predictions(nuclei_model):
    seg = unet.Segmenter.load(nuclei_model)
    image = nuclei_image(192, 4)[0]
    for _ in range(20):
        seg.predict(image, instances=True)
    before = rss_bytes()
    for _ in range(200):
        out = seg.predict(image, instances=True)
    del out
    grown = rss_bytes() - before
    # A result is 3 x 4 + 1 + 4 bytes per pixel: leaking only its labels (or only its mask) would be
    # 200 x 4 (1) x 192 x 192 B = 28 (7.0) MiB, all of it 119 MiB.
    assert grown < 5 * 2**20, f"resident memory grew by {grown / 2**20:.1f} MiB over 200 predictions"


def longest_pause_of_a_python_thread(work) -> tuple[float, float]:
    """Runs ``work`` while a Python thread notes the time in a loop: the thread's longest pause during
    ``work`` (the GIL held by C++ would pause it for all of it) and how long ``work`` took."""
    stamps, done = [], threading.Event()

    def note():
        while not done.is_set():
            stamps.append(time.perf_counter())

    thread = threading.Thread(target=note)
    thread.start()
    time.sleep(0.05)
    start = time.perf_counter()
    work()
    end = time.perf_counter()
    done.set()
    thread.join()
    during = [t for t in stamps if start <= t <= end]
    gaps = np.diff([start, *during, end])
    return float(gaps.max()), end - start


def test_gil_released(nuclei_model, tmp_path):
    seg = unet.Segmenter.load(nuclei_model, tta=True)
    image = nuclei_image(512, 5)[0]
    seg.predict(image)  # warm up
    pause, took = longest_pause_of_a_python_thread(lambda: seg.predict(image))
    # Python switches threads every 5 ms; a pause as long as the call would mean the GIL was held.
    assert pause < min(0.25, took / 4), f"a Python thread paused {pause:.3f} s of a {took:.3f} s prediction"
    pause, took = longest_pause_of_a_python_thread(
        lambda: unet.train(synthetic=True, synthetic_size=96, synthetic_count=4, max_steps=20, model_dir=tmp_path / "m",
                           depth=2, filters=4, input_size=60, input_mode="tile", batch_size=2, quiet=True)
    )
    assert pause < min(0.25, took / 4), f"a Python thread paused {pause:.3f} s of {took:.3f} s of training"


def test_ctrl_c_stops_training_saved(tmp_path):
    folder = tmp_path / "m"
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))

    def first_log(step, steps, loss, ips):
        timer.start() if not timer.is_alive() and step == 2 else None

    with pytest.raises(KeyboardInterrupt, match="stopped by SIGINT at step"):
        unet.train(synthetic=True, synthetic_size=96, synthetic_count=4, max_steps=3000, log_every=2,
                   model_dir=folder, progress=first_log, depth=2, filters=4, input_size=60, input_mode="tile",
                   batch_size=2, quiet=True)
    assert (folder / "checkpoint.pt").exists()
    # Python's own handler is back: Ctrl-C outside unet raises KeyboardInterrupt at once.
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(2)


def test_callback_error_stops_and_is_raised(tmp_path):
    def fail(step, steps, loss, ips):
        raise RuntimeError(f"enough at step {step}")

    with pytest.raises(RuntimeError, match="enough at step 2"):
        unet.train(synthetic=True, synthetic_size=96, synthetic_count=4, max_steps=50, log_every=2,
                   model_dir=tmp_path / "m", progress=fail, depth=2, filters=4, input_size=60, input_mode="tile",
                   batch_size=2, quiet=True)
    assert (tmp_path / "m" / "checkpoint.pt").exists()
    # The run stopped after the step of the callback's error, not at its 50th.
    steps = [json.loads(line).get("step", 0) for line in (tmp_path / "m" / "log.jsonl").read_text().splitlines()]
    assert max(steps) == 2, steps
    # A later run starts afresh (no stop left pending).
    unet.train(synthetic=True, synthetic_size=96, synthetic_count=4, max_steps=2, model_dir=tmp_path / "m2",
               depth=2, filters=4, input_size=60, input_mode="tile", batch_size=2, quiet=True)
    assert (tmp_path / "m2" / "checkpoint.pt").exists()


def test_help_reads_well():
    for doc in (unet.train.__doc__, unet.evaluate.__doc__, unet.Segmenter.__doc__, unet.Segmenter.predict.__doc__):
        assert doc and len(doc) > 100
    assert "data_dir (value)" in unet.train.__doc__ and "max_steps" in unet.train.__doc__
    assert "progress(step, steps, loss, images_per_second)" in unet.train.__doc__


def test_evaluate_and_score_return_their_records(nuclei_model, tmp_path):
    data = tmp_path / "data"
    r = run_program("demo", "--max-steps", "0", "--synthetic-kind", "nuclei", "--synthetic-size", "96",
                    "--synthetic-count", "5", "--write-data", data, "--model-dir", tmp_path / "d")
    assert r.returncode == 0, r.stderr
    results = unet.evaluate(model_dir=nuclei_model, data_dir=data, log_dir=tmp_path / "eval", quiet=True)
    written = sorted((tmp_path / "eval").glob("eval_results*.json"))
    assert len(written) == 1 and results == json.loads(written[0].read_text())
    assert 0.0 <= results["dice_score"] <= 1.0
    # A prediction equal to the truth scores 1; score's record comes back without an output file.
    labels = nuclei_image(96, 2)[1].astype(np.uint16)
    tifffile.imwrite(tmp_path / "truth.tif", labels)
    tifffile.imwrite(tmp_path / "same.tif", labels)
    record = unet.score(prediction=tmp_path / "same.tif", truth=tmp_path / "truth.tif", instances=True)
    assert record["overall"]["objects"]["f1_50"] == 1.0, record["overall"]
    assert record["overall"]["objects"]["truth"] == len(np.unique(labels)) - 1
    assert not list(tmp_path.glob("*.json"))


def test_commands_from_two_threads_keep_their_own_results(tmp_path):
    labels = nuclei_image(96, 2)[1].astype(np.uint16)
    tifffile.imwrite(tmp_path / "truth.tif", labels)
    tifffile.imwrite(tmp_path / "same.tif", labels)
    tifffile.imwrite(tmp_path / "half.tif", np.where(labels % 2 == 1, labels, 0).astype(np.uint16))
    f1 = {}

    def score(name):
        for _ in range(5):
            record = unet.score(prediction=tmp_path / f"{name}.tif", truth=tmp_path / "truth.tif", instances=True)
            f1.setdefault(name, set()).add(record["overall"]["objects"]["f1_50"])

    threads = [threading.Thread(target=score, args=(name,)) for name in ("same", "half")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert f1["same"] == {1.0} and len(f1["half"]) == 1 and f1["half"].pop() < 0.8, f1


def test_torchscript_export_segments_like_its_checkpoint(nuclei_model, tmp_path):
    unet.export(model_dir=nuclei_model, output=tmp_path / "nuclei.pt")
    image = nuclei_image(130, 6)[0]  # not the training size: both tile
    exported = unet.Segmenter.load(tmp_path / "nuclei.pt").predict(image, instances=True)
    checkpoint = unet.Segmenter.load(nuclei_model).predict(image, instances=True)
    np.testing.assert_allclose(exported.probabilities, checkpoint.probabilities, atol=1e-5, rtol=0)
    assert np.array_equal(exported.labels, checkpoint.labels)
    with pytest.raises(unet.OptionError, match="is an export, which predicts alone"):  # not silently one model
        unet.Segmenter.load(tmp_path / "nuclei.pt", ensemble=[nuclei_model])


def test_ensemble_is_the_members_mean(nuclei_model, em_model, tmp_path):
    # A second seed of the same recipe: its probabilities averaged with the first's (predict --ensemble).
    other = tmp_path / "seed3"
    unet.train(
        synthetic=True, synthetic_kind="nuclei", synthetic_size=96, synthetic_count=4, mask_encoding="instances",
        classes=3, max_steps=6, model_dir=other, seed=3, **NET,
    )
    image = nuclei_image(130)[0]
    first, second = (unet.Segmenter.load(m).predict(image).probabilities for m in (nuclei_model, other))
    both = unet.Segmenter.load(nuclei_model, ensemble=[other]).predict(image, instances=True)
    np.testing.assert_allclose(both.probabilities, (first + second) / 2, atol=1e-5)
    assert np.abs(first - second).max() > 1e-3  # two different models, so a member left out would show
    assert both.labels.shape == image.shape[-2:]
    with pytest.raises(unet.Error, match="cannot join the ensemble: its network"):
        unet.Segmenter.load(nuclei_model, ensemble=[em_model])


def test_shipped_models_by_name_in_an_ensemble(tmp_path, monkeypatch):
    # ensemble= takes shipped names as the path does, also where ./NAME holds only outputs.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "nuclei-fluorescence" / "predictions").mkdir(parents=True)
    image = nuclei_image(130)[0]
    alone = unet.Segmenter.load("nuclei-fluorescence").predict(image).probabilities
    both = unet.Segmenter.load("nuclei-fluorescence", ensemble=["nuclei-fluorescence"]).predict(image).probabilities
    np.testing.assert_allclose(both, alone, atol=1e-5)
    with pytest.raises(unet.OptionError, match="nuclei-fluorescent: no such file or model folder, nor a shipped model"):
        unet.Segmenter.load("nuclei-fluorescence", ensemble=["nuclei-fluorescent"])
