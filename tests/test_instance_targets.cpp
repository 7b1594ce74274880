// Training from instance labels: the targets that part touching objects (two classes with a
// background line, three classes interior/boundary), the objects an interior/boundary model's
// output makes, the synthetic nuclei, and the commands end to end on a folder of instance masks.
#include "test_support.h"

#include "unet/data/components.h"
#include "unet/data/instance_targets.h"
#include "unet/data/preprocess.h"
#include "unet/data/source.h"
#include "unet/data/synthetic.h"
#include "unet/eval/instances.h"
#include "unet/eval/metrics.h"
#include "unet/eval/objects.h"
#include "unet/model/checkpoint.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <filesystem>

using namespace unet;

namespace {

/// An int64 map from rows of digits.
at::Tensor map_from(const std::vector<std::string>& rows) {
  at::Tensor t = at::zeros({static_cast<int64_t>(rows.size()), static_cast<int64_t>(rows[0].size())}, at::kLong);
  for (size_t y = 0; y < rows.size(); ++y)
    for (size_t x = 0; x < rows[y].size(); ++x) t[y][x] = rows[y][x] - '0';
  return t;
}

/// Two objects touching along a vertical line, both cut by the image's left or right edge, and a
/// free-standing third one.
const std::vector<std::string> kTouching = {
    "00000000000",  //
    "11112222000",  //
    "11112222000",  //
    "11112222030",  //
    "11112222000",  //
    "00000000000",  //
};

/// Pairs of 4-adjacent pixels with different non-zero labels: touching objects.
int64_t touching_pairs(const at::Tensor& labels) {
  const at::Tensor a = labels.slice(1, 0, -1), b = labels.slice(1, 1);
  const at::Tensor c = labels.slice(0, 0, -1), d = labels.slice(0, 1);
  return ((a > 0) & (b > 0) & (a != b)).sum().item<int64_t>() + ((c > 0) & (d > 0) & (c != d)).sum().item<int64_t>();
}

}  // namespace

TEST(InstanceTargets, TwoClassesPartTouchingObjectsByABackgroundLine) {
  const at::Tensor parted = separated_objects(map_from(kTouching));
  EXPECT_TRUE(at::equal(parted, map_from({
                                    "00000000000",  //
                                    "11100111000",  //
                                    "11100111000",  //
                                    "11100111010",  //
                                    "11100111000",  //
                                    "00000000000",  //
                                })));
  EXPECT_EQ(connected_components(parted > 0).max().item<int64_t>(), 3);
}

TEST(InstanceTargets, ThreeClassesMarkBoundariesButNotTheImageEdge) {
  // 2 = boundary: next to the background or to the other object; the left edge is not a boundary.
  EXPECT_TRUE(at::equal(interior_boundary(map_from(kTouching), 1), map_from({
                                                                        "00000000000",  //
                                                                        "22222222000",  //
                                                                        "11122112000",  //
                                                                        "11122112020",  //
                                                                        "22222222000",  //
                                                                        "00000000000",  //
                                                                    })));
  // Two pixels wide: the 4-row objects are all boundary but for nothing; the third one too.
  const at::Tensor wide = interior_boundary(map_from(kTouching), 2);
  EXPECT_EQ((wide == 1).sum().item<int64_t>(), 0);
  EXPECT_EQ((wide == 2).sum().item<int64_t>(), 33);
  EXPECT_THROW(instance_targets(map_from(kTouching), 4, {ClassScheme::kInteriorBoundary, 2}), OptionError);
  EXPECT_THROW(instance_targets(map_from(kTouching), 3, {ClassScheme::kInteriorBoundary, 0}), OptionError);
}

TEST(InstanceTargets, InteriorBoundaryMapsGiveTheirObjectsBack) {
  // A hand-made case: the flood from each interior meets its neighbour's on the contact line.
  at::Tensor labels = at::zeros({12, 20}, at::kLong);
  labels.slice(0, 1, 11).slice(1, 1, 10).fill_(4);
  labels.slice(0, 1, 11).slice(1, 10, 19).fill_(9);
  const at::Tensor maps = one_hot_maps(interior_boundary(labels, 2), 3);
  const at::Tensor objects = objects_of(maps, ClassScheme::kInteriorBoundary);
  EXPECT_TRUE(at::equal(objects, at::where(labels == 4, 1, at::where(labels == 9, 2, 0)).to(at::kLong)));
  // The synthetic nuclei: their interior/boundary truth decodes to the same objects (IoU > 0.75),
  // but where an object's interior falls apart (a nucleus squeezed by two others): it splits.
  SyntheticOptions o;
  o.kind = SyntheticKind::kNuclei;
  for (int64_t i = 0; i < 3; ++i) {
    const at::Tensor truth = synthetic_nuclei(o, i).second;
    const at::Tensor decoded = objects_of(one_hot_maps(interior_boundary(truth, 2), 3), ClassScheme::kInteriorBoundary);
    const ObjectScores s = object_scores(truth, decoded);
    EXPECT_GE(s.f1(5), 0.95) << "image " << i << ": " << s.truth_objects << " objects, " << s.predicted_objects << " decoded";
  }
}

namespace {

/// A disc of `label` at (cy, cx), radius r, drawn into `labels`.
void disc(at::Tensor& labels, int64_t cy, int64_t cx, double r, int64_t label) {
  auto a = labels.accessor<int64_t, 2>();
  for (int64_t y = 0; y < labels.size(0); ++y)
    for (int64_t x = 0; x < labels.size(1); ++x)
      if ((y - cy) * (y - cy) + (x - cx) * (x - cx) <= r * r) a[y][x] = label;
}

}  // namespace

TEST(InstanceTargets, InteriorsThatPinchSplitAtTheirNecks) {
  // Two discs of radius 9 joined by a 3-pixel bridge: one interior, two cores.
  at::Tensor joined = at::zeros({30, 50}, at::kLong);
  disc(joined, 15, 12, 9, 1);
  disc(joined, 15, 37, 9, 1);
  joined.slice(0, 14, 17).slice(1, 12, 38).fill_(1);
  EXPECT_EQ(split_at_necks(joined, 0.0).max().item<int64_t>(), 1);  // off
  const at::Tensor parted = split_at_necks(joined, 3.0);
  ASSERT_EQ(std::get<0>(at::_unique(parted)).numel(), 3);  // background and two cores
  EXPECT_NE(parted[15][12].item<int64_t>(), parted[15][37].item<int64_t>());
  EXPECT_EQ(parted[15][25].item<int64_t>(), 0);  // the bridge is left to the flood
  // Deeper than the bridge's half-width but shallower than the discs: still two; deeper than the
  // discs: no core at all, and the seed stays whole (never lost).
  EXPECT_EQ(std::get<0>(at::_unique(split_at_necks(joined, 6.0))).numel(), 3);
  EXPECT_TRUE(at::equal(split_at_necks(joined, 12.0), joined));
  // The ratio: cores deeper than half the deepest pixel (about 10) part the discs as well; a
  // single disc, or a wide waist (two discs overlapping by half), stays one seed.
  EXPECT_EQ(std::get<0>(at::_unique(split_at_necks(joined, 1.0, 0.5))).numel(), 3);
  at::Tensor one = at::zeros({30, 50}, at::kLong);
  disc(one, 15, 25, 10, 1);
  EXPECT_TRUE(at::equal(split_at_necks(one, 3.0, 0.5), one));
  at::Tensor waist = at::zeros({30, 50}, at::kLong);
  disc(waist, 15, 20, 9, 1);
  disc(waist, 15, 29, 9, 1);
  EXPECT_TRUE(at::equal(split_at_necks(waist, 3.0, 0.5), waist));

  // Through objects_of: an interior/boundary map whose interior joins two nuclei across their
  // contact gives two objects with the rule and one without; each keeps its own disc.
  at::Tensor classes = at::where(joined > 0, 1, 0).to(at::kLong);
  at::Tensor outline = at::zeros_like(joined);
  disc(outline, 15, 12, 11, 1);
  disc(outline, 15, 37, 11, 1);
  classes = at::where((outline > 0) & (classes == 0), 2, classes);
  const at::Tensor maps = one_hot_maps(classes, 3);
  EXPECT_EQ(objects_of(maps, ClassScheme::kInteriorBoundary).max().item<int64_t>(), 1);
  ObjectRule rule;
  rule.neck_radius = 3.0;
  const at::Tensor objects = objects_of(maps, ClassScheme::kInteriorBoundary, InstanceMethod::kComponents, rule);
  ASSERT_EQ(objects.max().item<int64_t>(), 2);
  EXPECT_NE(objects[15][5].item<int64_t>(), objects[15][44].item<int64_t>());
  EXPECT_EQ(objects[15][2].item<int64_t>(), objects[15][12].item<int64_t>());  // the left boundary joins the left nucleus
}

TEST(InstanceTargets, FloodedObjectsKeepRimsMoreLikelyObjectThanBackground) {
  // Two touching discs whose rims (object pixels next to background) have background at 0.4 and
  // the other 0.6 shared by the two outermost object classes, the object's probability falling
  // outward as a network's does: background is the most probable single class there, which the
  // interior/boundary and distance floods leave out, yet the rims are more likely object. The
  // objects keep them, at the maps' own scale and cut at twice it (where the rims are grown at
  // the maps' pixels); cut without the growth, they lack them.
  at::Tensor truth = at::zeros({40, 60}, at::kLong);
  disc(truth, 20, 18, 10, 1);
  disc(truth, 20, 37, 10, 2);
  const at::Tensor rim = unet::test::rim_pixels(truth);
  ASSERT_GT(rim.sum().item<int64_t>(), 100);
  const int64_t area = (truth > 0).sum().item<int64_t>();
  ObjectRule twice;
  twice.scale = 2.0;
  for (const ClassScheme scheme : {ClassScheme::kInteriorBoundary, ClassScheme::kDistance}) {
    const std::string name = to_string(scheme);
    at::Tensor maps;
    if (scheme == ClassScheme::kInteriorBoundary) {
      const at::Tensor classes = interior_boundary(truth, 2);
      maps = one_hot_maps(classes, 3);
      const at::Tensor ring = (classes == 2) & ~rim;  // the boundary inside the rim: 0.3 interior
      maps[1].masked_fill_(ring, 0.3f);
      maps[2].masked_fill_(ring, 0.7f);
      maps[1].masked_fill_(rim, 0.25f);
      maps[2].masked_fill_(rim, 0.35f);
    } else {
      maps = one_hot_maps(distance_classes(truth, 4), 5);  // the rim is the edge bin, 1
      maps.masked_fill_(rim.unsqueeze(0), 0.0f);
      maps[1].masked_fill_(rim, 0.35f);
      maps[2].masked_fill_(rim, 0.25f);
    }
    maps[0].masked_fill_(rim, 0.4f);
    EXPECT_LT((cut_objects(maps, scheme, InstanceMethod::kComponents, ObjectRule{}) > 0).sum().item<int64_t>(), area - 100) << name;
    for (const ObjectRule& rule : {ObjectRule{}, twice}) {
      const at::Tensor found = objects_of(maps, scheme, InstanceMethod::kComponents, rule);
      const ObjectScores s = object_scores(truth, found);
      EXPECT_EQ(s.predicted_objects, 2) << name << ", scale " << rule.scale;
      EXPECT_EQ((found > 0).sum().item<int64_t>(), area) << name << ", scale " << rule.scale;
      EXPECT_GE(s.f1(9), 1.0) << name << ", scale " << rule.scale;  // IoU above 0.95 for both
    }
  }
}

TEST(InstanceTargets, SyntheticNucleiTouchAndAreDeterministic) {
  SyntheticOptions o;
  o.kind = SyntheticKind::kNuclei;
  int64_t touching_images = 0;
  for (int64_t i = 0; i < 4; ++i) {
    const auto [image, labels] = synthetic_nuclei(o, i);
    EXPECT_EQ(image.pixels.sizes(), (std::vector<int64_t>{1, 256, 256}));
    const int64_t n = labels.max().item<int64_t>();
    EXPECT_GE(n, 25) << "image " << i;
    // Labels are consecutive, and the nuclei are brighter than the background.
    EXPECT_EQ(std::get<0>(at::_unique(labels)).numel(), n + 1);
    const at::Tensor pixels = image.pixels[0].to(at::kFloat);
    EXPECT_GT(pixels.masked_select(labels > 0).mean().item<float>(), pixels.masked_select(labels == 0).mean().item<float>() + 50);
    if (touching_pairs(labels) > 0) ++touching_images;
  }
  EXPECT_GE(touching_images, 3);
  EXPECT_TRUE(at::equal(synthetic_nuclei(o, 2).second, synthetic_nuclei(o, 2).second));
  o.seed = 1;
  EXPECT_FALSE(at::equal(synthetic_nuclei(o, 2).second, synthetic_nuclei(SyntheticOptions{SyntheticKind::kNuclei}, 2).second));
}

TEST(InstanceTargets, FolderOfInstanceMasksLoadsWithDerivedClasses) {
  const unet::test::TempDir dir;
  SyntheticOptions o;
  o.kind = SyntheticKind::kNuclei;
  o.size = 64;
  o.train_count = 3;
  o.test_count = 1;
  write_synthetic_nuclei(dir.path(), o);
  DataOptions options;
  options.dir = dir.path();
  options.mask_encoding = MaskEncoding::kInstances;
  const DataSet three = load_data(options, 3);
  ASSERT_EQ(three.train.size(), 3u);
  EXPECT_EQ(three.test.size(), 1u);
  EXPECT_EQ(three.scheme, ClassScheme::kInteriorBoundary);
  EXPECT_EQ(three.class_names, (std::vector<std::string>{"background", "interior", "boundary"}));
  EXPECT_EQ(three.headline_class, -1);
  for (int64_t i = 0; i < 3; ++i) {
    const at::Tensor truth = synthetic_nuclei(o, i).second;
    EXPECT_TRUE(at::equal(three.train[i].instances, truth));
    EXPECT_TRUE(at::equal(three.train[i].mask, interior_boundary(truth, 2)));
  }
  const DataSet two = load_data(options, 2);
  EXPECT_EQ(two.scheme, ClassScheme::kPlain);
  EXPECT_EQ(two.class_names, (std::vector<std::string>{"background", "foreground"}));
  EXPECT_EQ(two.headline_class, 1);
  EXPECT_TRUE(at::equal(two.train[0].mask, separated_objects(two.train[0].instances)));
  // Wrong class counts are option errors before reading; float masks name the file.
  EXPECT_THROW(load_data(options, 4), OptionError);
  write_tiff(dir.file("masks/nuclei-000.png"), {at::zeros({64, 64})});
  try {
    load_data(options, 3);
    ADD_FAILURE() << "a float mask loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("nuclei-000.png: instance masks must be 8- or 16-bit"), std::string::npos) << e.what();
  }
}

TEST(InstanceTargets, InteriorBoundaryMetricsCountTheObjects) {
  at::Tensor labels = at::zeros({12, 30}, at::kLong);
  labels.slice(0, 1, 11).slice(1, 1, 10).fill_(1);
  labels.slice(0, 1, 11).slice(1, 10, 19).fill_(2);
  labels.slice(0, 2, 10).slice(1, 21, 29).fill_(3);
  const at::Tensor mask = interior_boundary(labels, 2);
  MetricAccumulator acc(3, ClassScheme::kInteriorBoundary);
  acc.add_original(one_hot_maps(mask, 3), mask, labels);
  Metrics m = acc.result();
  ASSERT_TRUE(m.has_objects);
  EXPECT_EQ(m.objects.truth_objects, 3);
  EXPECT_EQ(m.objects.true_positives[0], 3);
  // A prediction without the boundary between the touching two: one merged object.
  at::Tensor merged = mask.clone();
  merged.masked_fill_((labels == 1) | (labels == 2), 1);
  MetricAccumulator bad(3, ClassScheme::kInteriorBoundary);
  bad.add_original(one_hot_maps(merged, 3), mask, labels);
  m = bad.result();
  EXPECT_EQ(m.objects.predicted_objects, 2);
  EXPECT_EQ(m.objects.merged, 1);
  // Plain three-class models have no objects.
  EXPECT_FALSE(MetricAccumulator(3).result().has_objects);
  EXPECT_THROW(UNetOptions().classes(2).scheme(ClassScheme::kInteriorBoundary).validate(), OptionError);
}

TEST(InstanceTargets, CommandsTrainEvaluateAndPredictFromInstanceMasks) {
  const unet::test::TempDir dir;
  SyntheticOptions o;
  o.kind = SyntheticKind::kNuclei;
  o.size = 64;
  o.train_count = 5;
  o.test_count = 2;
  write_synthetic_nuclei(dir.file("data"), o);
  const std::string net = " --depth 2 --filters 4 --input-size 60 --input-mode tile --batch-size 2 --max-steps 2 --quiet";
  const std::string model = dir.file("model");
  auto r = unet::test::run_unet("train --data-dir " + dir.file("data") + " --mask-encoding instances --classes 3 --model-dir " +
                                model + net);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const CheckpointInfo info = read_checkpoint_info(checkpoint_path(model));
  EXPECT_EQ(info.model.scheme(), ClassScheme::kInteriorBoundary);
  // evaluate reads the masks as instances for such a model, and reports its objects.
  r = unet::test::run_unet("evaluate --data-dir " + dir.file("data") + " --model-dir " + model + " --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("objects (interior grown over boundary) truth"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Dice per class                         background"), std::string::npos) << r.out;
  const auto results = nlohmann::json::parse(unet::test::read_file(model + "/eval_results.json"));
  EXPECT_EQ(results["class_names"], nlohmann::json({"background", "interior", "boundary"}));
  EXPECT_TRUE(results.contains("objects")) << results.dump();
  unet::test::expect_one_line_error(
      unet::test::run_unet("evaluate --data-dir " + dir.file("data") + " --model-dir " + model + " --mask-encoding index --log-dir " +
                           dir.file("log")),
      "pass --mask-encoding instances");
  // predict --instances: 16-bit labels per test file.
  r = unet::test::run_unet("predict --input " + dir.file("data/test") + " --model-dir " + model + " --output-dir " + dir.file("out") +
                           " --no-overlays --instances --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* name : {"nuclei-005_instances.tif", "nuclei-006_instances.tif"}) {
    const auto pages = read_tiff(dir.file(std::string("out/") + name));
    ASSERT_EQ(pages.size(), 1u) << name;
    EXPECT_EQ(pages[0].format, SampleFormat::kUInt16) << name;
  }
  // A two-class model from the same masks: objects parted by background; other counts refused.
  // Border weights between touching objects alone (no class balance): a setting that resuming keeps.
  r = unet::test::run_unet("train --data-dir " + dir.file("data") + " --mask-encoding instances --classes 2 --border-weights " +
                           "--no-border-class-balance --model-dir " + dir.file("model2") + net);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_checkpoint_info(checkpoint_path(dir.file("model2"))).model.scheme(), ClassScheme::kPlain);
  r = unet::test::run_unet("train --resume --max-steps 3 --quiet --model-dir " + dir.file("model2"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string log = unet::test::read_file(dir.file("model2/log.jsonl"));
  const size_t last = log.rfind("\"border_class_balance\":");
  ASSERT_NE(last, std::string::npos) << log;
  EXPECT_EQ(log.substr(last, 28), "\"border_class_balance\":false") << "the resumed run's record";
  EXPECT_EQ(log.find("\"border_class_balance\":true"), std::string::npos) << log;
  unet::test::expect_one_line_error(unet::test::run_unet("train --data-dir " + dir.file("data") +
                                                         " --mask-encoding instances --classes 4 --model-dir " + dir.file("m4") + net),
                                    "--classes 4: instance masks train 2 classes");
  // demo --write-data --max-steps 0 writes the same data set and nothing else.
  r = unet::test::run_unet("demo --synthetic-kind nuclei --synthetic-size 64 --synthetic-count 5 --write-data " + dir.file("demo-data") +
                           " --max-steps 0 --model-dir " + dir.file("demo"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("demo/checkpoint.pt")));
  const RawImage written = read_png(dir.file("demo-data/masks/nuclei-003.png"));
  EXPECT_EQ(written.format, SampleFormat::kUInt16);
  EXPECT_TRUE(at::equal(written.pixels[0].to(at::kLong), synthetic_nuclei(o, 3).second));
  // A data set already there is not written over.
  const auto before = unet::test::snapshot(dir.file("demo-data/masks"));
  unet::test::expect_one_line_error(
      unet::test::run_unet("demo --synthetic-kind nuclei --synthetic-count 2 --write-data " + dir.file("demo-data") +
                           " --max-steps 0 --model-dir " + dir.file("demo")),
      "is not empty; the synthetic data set goes into a new or empty folder");
  EXPECT_EQ(unet::test::snapshot(dir.file("demo-data/masks")), before);
}

TEST(InstanceTargets, ScoreTakesInstanceLabelPredictions) {
  // Three touching objects. The prediction folder holds predict's mask (one blob) and its instance
  // labels (the right objects, other label values): --instances scores the labels.
  const unet::test::TempDir dir;
  std::filesystem::create_directories(dir.file("truth"));
  std::filesystem::create_directories(dir.file("pred"));
  at::Tensor truth = at::zeros({30, 40}, at::kInt);
  for (int k = 0; k < 3; ++k) truth.slice(0, 5, 25).slice(1, 5 + 10 * k, 15 + 10 * k).fill_(k + 1);
  write_png(dir.file("truth/a.png"), truth);
  write_png(dir.file("pred/a.png"), (truth > 0).to(at::kByte).mul(255));
  write_tiff(dir.file("pred/a_instances.tif"), {at::where(truth > 0, 500 - truth, truth)});
  auto objects = [&](const std::string& flags) {
    const auto r = unet::test::run_unet("score --prediction " + dir.file("pred") + " --truth " + dir.file("truth") + flags +
                                        " -o " + dir.file("s.json"));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const auto s = nlohmann::json::parse(unet::test::read_file(dir.file("s.json")));
    std::filesystem::remove(dir.file("s.json"));
    return s["overall"]["objects"];
  };
  const auto labelled = objects(" --instances");
  EXPECT_EQ(labelled["predicted"].get<int64_t>(), 3);
  EXPECT_EQ(labelled["f1_75"].get<double>(), 1.0);
  const auto blob = objects("");
  EXPECT_EQ(blob["predicted"].get<int64_t>(), 1);
  EXPECT_EQ(blob["merged"].get<int64_t>(), 1);
  // Float label images are refused with the file's name.
  write_tiff(dir.file("pred/a_instances.tif"), {at::zeros({30, 40})});
  unet::test::expect_one_line_error(
      unet::test::run_unet("score --prediction " + dir.file("pred") + " --truth " + dir.file("truth") + " --instances"),
      "a_instances.tif: instance labels must be 8- or 16-bit integer images");
}
