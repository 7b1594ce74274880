// Tests of scripts/nucleus_data.py, the converter of public nucleus sets into unet's folder
// layout, on small repositories laid out as the real ones (gbm40: RGB tiles and XML polygons;
// kromp2020; the Data Science Bowl's one mask per nucleus, kept by kind of image): the
// fixed split, polygons filled in file order, labels renumbered 1..N, 16-bit masks, and a folder
// that is not empty left alone.
#include "test_support.h"

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <string>

using unet::test::TempDir;

namespace {

/// A gbm40-shaped git repository: 40 tiles of 24 x 20 pixels, each with two overlapping squares
/// (the second drawn over the first); tile 03 also has a square drawn over completely.
const char* kFixture = R"PY(
import os, subprocess, sys
import numpy as np
from PIL import Image
root = sys.argv[1]
os.makedirs(f"{root}/data/GBM40/raw_image"); os.makedirs(f"{root}/data/GBM40/contour_annotation_xml")
def square(x0, y0, x1, y1):
    pts = "".join(f'<Point X="{x}" Y="{y}" />' for x, y in [(x0, y0), (x1, y0), (x1, y1), (x0, y1)])
    return f'<Shape Type="Polygon"><Points>{pts}</Points></Shape>'
for i in range(1, 41):
    Image.fromarray(np.full((20, 24, 3), i, np.uint8)).save(f"{root}/data/GBM40/raw_image/{i:02d}.tif")
    shapes = ([square(15, 15, 16, 16)] if i == 3 else []) + [square(2, 2, 9, 9), square(6, 6, 13, 13)]
    if i == 3: shapes.append(square(14, 14, 17, 17))
    xml = '\ufeff<Document><Layers><Layer><Shapes>' + "".join(shapes) + '</Shapes></Layer></Layers></Document>'
    open(f"{root}/data/GBM40/contour_annotation_xml/{i:02d}_data.xml", "w", encoding="utf-8").write(xml)
)PY";

/// What the converter wrote: the image count per split and two masks' labels at a few points.
const char* kSummary = R"PY(
import json, os, sys
import numpy as np
from PIL import Image
out = sys.argv[1]
counts = {s: len(os.listdir(f"{out}/{s}/images")) for s in ("train", "val", "test")}
m1 = np.asarray(Image.open(f"{out}/train/masks/gbm-01.png")); m3 = np.asarray(Image.open(f"{out}/train/masks/gbm-03.png"))
image = np.asarray(Image.open(f"{out}/val/images/gbm-30.png"))
print(json.dumps({"counts": counts, "dtype": str(m1.dtype), "m1": [int(m1[3, 3]), int(m1[7, 7]), int(m1[12, 12]), int(m1[0, 0])],
                  "m1_labels": sorted(int(v) for v in np.unique(m1)), "m3_labels": sorted(int(v) for v in np.unique(m3)),
                  "image": [list(image.shape), int(image[0, 0, 0])]}))
)PY";

int run_python(const std::string& python, const std::string& code, const std::string& args, const TempDir& dir) {
  unet::test::write_file(dir.file("script.py"), code);
  return std::system(("'" + python + "' " + dir.file("script.py") + " " + args).c_str());
}

/// Appended to a fixture that lays out a repository's files in `root`: commits them.
const char* kCommitted = R"PY(
git = ["git", "-C", root, "-c", "user.name=t", "-c", "user.email=t@t"]
subprocess.run(["git", "init", "-q", root], check=True)
subprocess.run(git + ["add", "."], check=True)
subprocess.run(git + ["commit", "-qm", "fixture"], check=True)
)PY";

/// Runs `fixture` (a repository's files laid out in dir/repo) and commits what it wrote.
int make_repository(const std::string& python, const char* fixture, const TempDir& dir) {
  return run_python(python, std::string(fixture) + kCommitted, dir.file("repo"), dir);
}

/// The test Python with numpy and Pillow where git is there too; empty otherwise (the test skips).
std::string python_and_git() {
  const std::string python = unet::test::python_with("numpy, PIL");
  return python.empty() || std::system("git --version > /dev/null 2>&1") != 0 ? "" : python;
}
constexpr const char* kNoPythonOrGit = "no UNET_TEST_PYTHON with numpy and Pillow, or no git; skipping";

/// Runs `scripts/nucleus_data.py SET` on dir/repo's HEAD into `out`; its output goes to dir/log.
int convert(const std::string& python, const std::string& set, const TempDir& dir, const std::string& out) {
  const std::string script = std::string(UNET_TEST_DATA_DIR) + "/../../scripts/nucleus_data.py";
  const std::string command = "'" + python + "' " + script + " " + set + " --git-dir " + dir.file("repo/.git") +
                              " --commit HEAD --out " + out + " > " + dir.file("log") + " 2>&1";
  return std::system(command.c_str());
}

}  // namespace

TEST(NucleusData, Gbm40IsSplitFilledAndRenumbered) {
  const std::string python = python_and_git();
  if (python.empty()) GTEST_SKIP() << kNoPythonOrGit;
  TempDir dir;
  ASSERT_EQ(make_repository(python, kFixture, dir), 0);
  ASSERT_EQ(convert(python, "gbm40", dir, dir.file("out")), 0) << unet::test::read_file(dir.file("log"));
  ASSERT_EQ(run_python(python, kSummary, dir.file("out") + " > " + dir.file("summary"), dir), 0);
  const auto s = nlohmann::json::parse(unet::test::read_file(dir.file("summary")));
  EXPECT_EQ(s["counts"], nlohmann::json({{"train", 28}, {"val", 6}, {"test", 6}}));
  EXPECT_EQ(s["dtype"], "uint16");
  // Square 1 alone at (3, 3), square 2 over it at (7, 7) and alone at (12, 12), background at (0, 0).
  EXPECT_EQ(s["m1"], nlohmann::json({1, 2, 2, 0}));
  EXPECT_EQ(s["m1_labels"], nlohmann::json({0, 1, 2}));
  // Tile 03's first square is drawn over completely: three objects remain, numbered 1..3.
  EXPECT_EQ(s["m3_labels"], nlohmann::json({0, 1, 2, 3}));
  EXPECT_EQ(s["image"], nlohmann::json({nlohmann::json({20, 24, 3}), 30}));
  // A folder that is not empty is left alone.
  EXPECT_NE(convert(python, "gbm40", dir, dir.file("out")), 0);
  EXPECT_NE(unet::test::read_file(dir.file("log")).find("not empty"), std::string::npos) << unet::test::read_file(dir.file("log"));
}

namespace {

/// A kromp2020-shaped git repository: 10 images of 16 x 12 pixels (names a0..a9; the authors'
/// table puts a0-a5 in training, a6-a9 in test), a1 stored RGB with R=G=B, each with one nucleus
/// labelled 7 in a 16-bit TIFF.
const char* kKrompFixture = R"PY(
import os, subprocess, sys
import numpy as np
from PIL import Image
root = sys.argv[1]
base = f"{root}/cell_nuclei_segmentation/dataset"
os.makedirs(f"{base}/rawimages"); os.makedirs(f"{base}/groundtruth")
rows = ["Image_Name;Diagnosis;Preparation;Train-/Testset split;Testset class"]
for i in range(10):
    name = f"a{i}"
    image = np.full((12, 16), 10 * i, np.uint8)
    Image.fromarray(np.stack([image] * 3, -1) if i == 1 else image).save(f"{base}/rawimages/{name}.tif")
    labels = np.zeros((12, 16), np.uint16); labels[2:5, 3:7] = 7
    Image.fromarray(labels).save(f"{base}/groundtruth/{name}.tif")
    rows.append(f"{name};x;y;{'train' if i < 6 else 'test'};-")
open(f"{base}/image_description.csv", "w").write("\n".join(rows) + "\n")
)PY";

const char* kKrompSummary = R"PY(
import json, os, sys
import numpy as np
from PIL import Image
out = sys.argv[1]
names = {s: sorted(os.listdir(f"{out}/{s}/images")) for s in ("train", "val", "test")}
image = np.asarray(Image.open(f"{out}/train/images/a1.png")); mask = np.asarray(Image.open(f"{out}/train/masks/a1.png"))
print(json.dumps({"names": names, "image": [list(image.shape), int(image[0, 0])], "mask": [str(mask.dtype), int(mask[3, 4]), int(mask[0, 0])]}))
)PY";

}  // namespace

TEST(NucleusData, Kromp2020KeepsTheAuthorsTestSplitAndOneChannel) {
  const std::string python = python_and_git();
  if (python.empty()) GTEST_SKIP() << kNoPythonOrGit;
  TempDir dir;
  ASSERT_EQ(make_repository(python, kKrompFixture, dir), 0);
  ASSERT_EQ(convert(python, "kromp2020", dir, dir.file("out")), 0) << unet::test::read_file(dir.file("log"));
  ASSERT_EQ(run_python(python, kKrompSummary, dir.file("out") + " > " + dir.file("summary"), dir), 0);
  const auto s = nlohmann::json::parse(unet::test::read_file(dir.file("summary")));
  // Every fifth of the authors' training images (a0, a5) validates; their test images test.
  EXPECT_EQ(s["names"]["val"], nlohmann::json({"a0.png", "a5.png"}));
  EXPECT_EQ(s["names"]["train"], nlohmann::json({"a1.png", "a2.png", "a3.png", "a4.png"}));
  EXPECT_EQ(s["names"]["test"], nlohmann::json({"a6.png", "a7.png", "a8.png", "a9.png"}));
  EXPECT_EQ(s["image"], nlohmann::json({nlohmann::json({12, 16}), 10}));  // one channel of the RGB copy
  EXPECT_EQ(s["mask"], nlohmann::json({"uint16", 7, 0}));
  for (const auto& entry : std::filesystem::directory_iterator(dir.path()))  // no partial folder left
    EXPECT_EQ(entry.path().filename().string().find(".partial"), std::string::npos) << entry.path();
}

namespace {

/// A Data Science Bowl-shaped git repository (stage1_train/ID/images/ID.png, one mask PNG per
/// nucleus): a0, e0, f0 dark grey RGBA (fluorescence), b0 colour, c0 dark grey of 520 x 696 (as
/// BBBC039's fields), d0 bright grey (bright-field). Each image has two masks, nucleus "m1" (rows
/// 2-4) and "m2" (rows 6-8); the images' values are 10 (a0), 20 (e0), 30 (f0).
const char* kDsbFixture = R"PY(
import os, subprocess, sys
import numpy as np
from PIL import Image
root = sys.argv[1]
kinds = {"a0": ((12, 16), (10, 10, 10)), "b0": ((12, 16), (200, 60, 150)), "c0": ((520, 696), (12, 12, 12)),
         "d0": ((12, 16), (220, 220, 220)), "e0": ((12, 16), (20, 20, 20)), "f0": ((12, 16), (30, 30, 30))}
for name, (shape, rgb) in kinds.items():
    os.makedirs(f"{root}/stage1_train/{name}/images"); os.makedirs(f"{root}/stage1_train/{name}/masks")
    image = np.zeros(shape + (4,), np.uint8); image[..., :3] = rgb; image[..., 3] = 255
    Image.fromarray(image).save(f"{root}/stage1_train/{name}/images/{name}.png")
    for k, rows in (("m1", slice(2, 5)), ("m2", slice(6, 9))):
        mask = np.zeros(shape, np.uint8); mask[rows, 3:7] = 255
        Image.fromarray(mask).save(f"{root}/stage1_train/{name}/masks/{k}.png")
)PY";

/// Each split's images (none: no folder), and each kept image's shape, first value and labels at three rows.
const char* kDsbSummary = R"PY(
import json, os, sys
import numpy as np
from PIL import Image
out = sys.argv[1]
names, images = {}, {}
for s in ("train", "val", "test"):
    names[s] = sorted(os.listdir(f"{out}/{s}/images")) if os.path.isdir(f"{out}/{s}/images") else []
    for n in names[s]:
        image = np.asarray(Image.open(f"{out}/{s}/images/{n}")); mask = np.asarray(Image.open(f"{out}/{s}/masks/{n}"))
        images[n] = [list(image.shape), int(image.flat[0]), str(mask.dtype), int(mask[3, 4]), int(mask[7, 4]), int(mask[0, 0])]
print(json.dumps({"names": names, "images": images}))
)PY";

}  // namespace

TEST(NucleusData, Dsb2018KeepsOneKindOfImageAndLeavesBbbc039sSizeOut) {
  const std::string python = python_and_git();
  if (python.empty()) GTEST_SKIP() << kNoPythonOrGit;
  TempDir dir;
  ASSERT_EQ(make_repository(python, kDsbFixture, dir), 0);
  auto converted = [&](const std::string& set) {
    const std::string out = dir.file(set);
    EXPECT_EQ(convert(python, set, dir, out), 0) << unet::test::read_file(dir.file("log"));
    EXPECT_EQ(run_python(python, kDsbSummary, out + " > " + dir.file("summary"), dir), 0);
    return nlohmann::json::parse(unet::test::read_file(dir.file("summary")));
  };
  // Fluorescence: the dark grey images but the one of BBBC039's size, one channel each; the
  // first in id order tests, the second validates.
  const auto fluo = converted("dsb2018-fluo");
  EXPECT_EQ(fluo["names"]["test"], nlohmann::json({"dsb-a0.png"}));
  EXPECT_EQ(fluo["names"]["val"], nlohmann::json({"dsb-e0.png"}));
  EXPECT_EQ(fluo["names"]["train"], nlohmann::json({"dsb-f0.png"}));
  EXPECT_EQ(fluo["images"]["dsb-e0.png"], nlohmann::json({nlohmann::json({12, 16}), 20, "uint16", 1, 2, 0}));
  // Stained tissue: the colour image alone, RGB without alpha.
  const auto he = converted("dsb2018-he");
  EXPECT_EQ(he["names"]["test"], nlohmann::json({"dsb-b0.png"}));
  EXPECT_EQ(he["names"]["val"], nlohmann::json::array());
  EXPECT_EQ(he["images"]["dsb-b0.png"], nlohmann::json({nlohmann::json({12, 16, 3}), 200, "uint16", 1, 2, 0}));
}

namespace {

/// Three images of 40 x 48 pixels: a0 (8-bit) with two discs of radius 10 (labels 1 and 2,
/// intensity 200 on 20), a1 without objects, a2 (16-bit) with one disc of radius 10 (60000 on
/// 1000); and bad/, an image of 30 x 30 whose mask is 20 x 20.
const char* kRescaleFixture = R"PY(
import os, sys
import numpy as np
from PIL import Image
root = sys.argv[1]
for d in ("src/images", "src/masks", "bad/images", "bad/masks"): os.makedirs(f"{root}/{d}")
y, x = np.mgrid[0:40, 0:48]
disc = lambda cy, cx: (y - cy) ** 2 + (x - cx) ** 2 <= 100
labels = np.zeros((40, 48), np.uint16); labels[disc(14, 12)] = 1; labels[disc(24, 34)] = 2
Image.fromarray(np.where(labels > 0, 200, 20).astype(np.uint8)).save(f"{root}/src/images/a0.png")
Image.fromarray(labels).save(f"{root}/src/masks/a0.png")
Image.fromarray(np.full((40, 48), 20, np.uint8)).save(f"{root}/src/images/a1.png")
Image.fromarray(np.zeros((40, 48), np.uint16)).save(f"{root}/src/masks/a1.png")
one = disc(20, 24).astype(np.uint16)
Image.fromarray(np.where(one > 0, 60000, 1000).astype(np.uint16)).save(f"{root}/src/images/a2.png")
Image.fromarray(one).save(f"{root}/src/masks/a2.png")
Image.fromarray(np.zeros((30, 30), np.uint8)).save(f"{root}/bad/images/b.png")
Image.fromarray(np.zeros((20, 20), np.uint16)).save(f"{root}/bad/masks/b.png")
)PY";

/// Predictions as `predict --instances` writes them (16-bit TIFFs): here the rescaled labels themselves.
const char* kRescalePredictions = R"PY(
import os, sys
from PIL import Image
root = sys.argv[1]
os.makedirs(f"{root}/pred")
for name in ("a0", "a2"): Image.open(f"{root}/dst/masks/{name}.png").save(f"{root}/pred/{name}_instances.tif")
)PY";

/// The rescaled copy and the labels mapped back: sizes, scales, values, each object's IoU with its
/// original, and the resampling of `nearest` by a factor of 3 (pixel centres 1 and 4 of 6).
const char* kRescaleSummary = R"PY(
import importlib.util, json, sys
import numpy as np
from PIL import Image
script, root = sys.argv[1:3]
spec = importlib.util.spec_from_file_location("rescale_objects", script); ro = importlib.util.module_from_spec(spec); spec.loader.exec_module(ro)
src, dst, back = f"{root}/src", f"{root}/dst", f"{root}/back"
scales = json.load(open(f"{dst}/scales.json"))
m = np.asarray(Image.open(f"{dst}/masks/a0.png")); image = np.asarray(Image.open(f"{dst}/images/a0.png"))
areas = [int((m == v).sum()) for v in (1, 2)]
orig = np.asarray(Image.open(f"{src}/masks/a0.png")); mapped = np.asarray(Image.open(f"{back}/a0_instances.png"))
iou = [float(((orig == v) & (mapped == v)).sum() / ((orig == v) | (mapped == v)).sum()) for v in (1, 2)]
image16 = np.asarray(Image.open(f"{dst}/images/a2.png"))
print(json.dumps({"shape": list(m.shape), "image": [list(image.shape), int(image[7, 6]), int(image[0, 0]), int(image[7, 1])],
                  "labels": sorted(int(v) for v in np.unique(m)), "areas": areas, "iou": iou,
                  "scale": [scales["images"][n]["scale"] for n in ("a0", "a1", "a2")],
                  "a1": list(np.asarray(Image.open(f"{dst}/images/a1.png")).shape), "back": list(mapped.shape),
                  "image16": [str(image16.dtype), list(image16.shape), int(image16[10, 12]), int(image16[0, 0])],
                  "nearest": [ro.nearest(np.arange(6)[None, :], (1, 2)).tolist(), ro.nearest(np.arange(6)[:, None], (2, 1)).tolist()]}))
)PY";

}  // namespace

TEST(NucleusData, RescaledToAnObjectDiameterAndMappedBack) {
  const std::string python = unet::test::python_with("numpy, PIL");
  if (python.empty()) GTEST_SKIP() << "no UNET_TEST_PYTHON with numpy and Pillow; skipping";
  TempDir dir;
  ASSERT_EQ(run_python(python, kRescaleFixture, dir.path(), dir), 0);
  const std::string path = std::string(UNET_TEST_DATA_DIR) + "/../../scripts/rescale_objects.py";
  const std::string script = "'" + python + "' " + path;
  const auto quiet = [&](const std::string& args) { return script + " " + args + " > " + dir.file("log") + " 2>&1"; };
  const std::string scale = quiet("scale " + dir.file("src") + " " + dir.file("dst") + " --diameter 10");
  ASSERT_EQ(std::system(scale.c_str()), 0) << unet::test::read_file(dir.file("log"));
  ASSERT_EQ(run_python(python, kRescalePredictions, dir.path(), dir), 0);
  const std::string back = quiet("back " + dir.file("pred") + " " + dir.file("dst/scales.json") + " " + dir.file("back"));
  ASSERT_EQ(std::system(back.c_str()), 0) << unet::test::read_file(dir.file("log"));
  ASSERT_EQ(run_python(python, kRescaleSummary, path + " " + dir.path() + " > " + dir.file("summary"), dir), 0);
  const auto s = nlohmann::json::parse(unet::test::read_file(dir.file("summary")));
  // Discs of radius 10 (diameter ~20 by their area) are halved to diameter 10: the image to 20 x 24.
  EXPECT_NEAR(s["scale"][0].get<double>(), 0.5, 0.01);
  EXPECT_EQ(s["scale"][1].get<double>(), 1.0);  // no objects: left at its size
  EXPECT_NEAR(s["scale"][2].get<double>(), 0.5, 0.01);
  EXPECT_EQ(s["a1"], nlohmann::json({40, 48}));
  EXPECT_EQ(s["shape"], nlohmann::json({20, 24}));
  EXPECT_EQ(s["labels"], nlohmann::json({0, 1, 2}));
  for (const auto& area : s["areas"]) EXPECT_NEAR(area.get<double>(), 78.5, 12.0);  // pi 5^2
  // Disc 1's centre and the background keep their values; its rim is blended (not nearest).
  EXPECT_EQ(s["image"][0], nlohmann::json({20, 24}));
  EXPECT_EQ(s["image"][1], 200);
  EXPECT_EQ(s["image"][2], 20);
  EXPECT_GT(s["image"][3].get<int>(), 20);
  EXPECT_LT(s["image"][3].get<int>(), 200);
  EXPECT_EQ(s["image16"], nlohmann::json({"uint16", nlohmann::json({20, 24}), 60000, 1000}));  // 16 bits kept
  EXPECT_EQ(s["nearest"].dump(), "[[[1,4]],[[1],[4]]]");  // columns, then rows
  EXPECT_EQ(s["back"], nlohmann::json({40, 48}));
  for (const auto& iou : s["iou"]) EXPECT_GT(iou.get<double>(), 0.85);
  // A folder that is not empty is left alone.
  const std::string before = unet::test::read_file(dir.file("dst/scales.json"));
  EXPECT_NE(std::system(scale.c_str()), 0);
  EXPECT_NE(unet::test::read_file(dir.file("log")).find("not an empty folder"), std::string::npos);
  EXPECT_EQ(unet::test::read_file(dir.file("dst/scales.json")), before);
  // A diameter stated for every image (here 40 for 20-pixel discs) scales all of them alike, the
  // image without objects too.
  ASSERT_EQ(std::system(quiet("scale " + dir.file("src") + " " + dir.file("stated") + " --diameter 10 --source-diameter 40").c_str()), 0)
      << unet::test::read_file(dir.file("log"));
  const auto stated = nlohmann::json::parse(unet::test::read_file(dir.file("stated/scales.json")));
  for (const char* name : {"a0", "a1", "a2"}) {
    EXPECT_EQ(stated["images"][name]["scale"].get<double>(), 0.25) << name;
    EXPECT_EQ(stated["images"][name]["rescaled_size"], nlohmann::json({10, 12})) << name;
  }
  // An image and a mask of different sizes: one line naming both, and nothing written.
  EXPECT_NE(std::system(quiet("scale " + dir.file("bad") + " " + dir.file("bad-out")).c_str()), 0);
  const std::string log = unet::test::read_file(dir.file("log"));
  EXPECT_NE(log.find("is 30x30 but its mask"), std::string::npos) << log;
  EXPECT_EQ(log.find("Traceback"), std::string::npos) << log;
  EXPECT_FALSE(std::filesystem::exists(dir.file("bad-out")));
}
