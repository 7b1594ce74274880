// Distance classes from instance labels: the exact distance to each object's edge (against brute
// force), the bins, the objects grown back from their centres (two touching discs split, a ring
// not split, objects cut by the image's edge kept whole), from one-hot and from blurred maps, and
// the commands end to end with `--instance-targets distance`.
#include "test_support.h"

#include "unet/data/instance_targets.h"
#include "unet/data/preprocess.h"
#include "unet/data/synthetic.h"
#include "unet/eval/instances.h"
#include "unet/eval/objects.h"
#include "unet/model/checkpoint.h"
#include "unet/model/unet.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <array>
#include <cmath>
#include <filesystem>
#include <limits>
#include <random>

using namespace unet;

namespace {

using unet::test::blurred;

/// Labels [h, w] with discs (centre y, x, radius, label) painted in order.
at::Tensor discs(int64_t h, int64_t w, const std::vector<std::array<double, 4>>& list) {
  std::vector<std::array<double, 5>> round;
  for (const auto& d : list) round.push_back({d[0], d[1], d[2], d[2], d[3]});
  return unet::test::ellipses(h, w, round);
}

/// The definition, by brute force: an edge pixel is background or an object pixel with an
/// 8-neighbour (inside the image) of another label; an object pixel's distance is 1 + the
/// Euclidean distance to the nearest edge pixel.
at::Tensor brute_edge_distance(const at::Tensor& labels) {
  const int64_t h = labels.size(0), w = labels.size(1);
  const auto l = labels.accessor<int64_t, 2>();
  std::vector<std::pair<int64_t, int64_t>> edge;
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      bool is_edge = l[y][x] == 0;
      for (int64_t dy = -1; dy <= 1; ++dy)
        for (int64_t dx = -1; dx <= 1; ++dx) {
          const int64_t yy = y + dy, xx = x + dx;
          if (yy >= 0 && yy < h && xx >= 0 && xx < w && l[yy][xx] != l[y][x]) is_edge = true;
        }
      if (is_edge) edge.emplace_back(y, x);
    }
  at::Tensor out = at::zeros({h, w}, at::kFloat);
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      if (l[y][x] == 0) continue;
      double best = std::numeric_limits<double>::infinity();
      for (const auto& [ey, ex] : edge) best = std::min(best, std::hypot(double(y - ey), double(x - ex)));
      out[y][x] = static_cast<float>(best + 1.0);
    }
  return out;
}

}  // namespace

TEST(DistanceTargets, EdgeDistanceMatchesBruteForce) {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 4; ++trial) {
    std::vector<std::array<double, 4>> list;
    for (int k = 1; k <= 6; ++k)
      list.push_back({double(rng() % 23), double(rng() % 31), 2.0 + double(rng() % 60) / 10.0, double(k)});
    const at::Tensor labels = discs(23, 31, list);
    const at::Tensor fast = edge_distance(labels), slow = brute_edge_distance(labels);
    EXPECT_TRUE(at::allclose(fast, slow, 1e-5, 1e-5)) << "trial " << trial << ": largest difference "
                                                      << (fast - slow).abs().max().item<float>();
  }
  EXPECT_EQ(edge_distance(at::zeros({0, 5}, at::kLong)).numel(), 0);
  // No edge anywhere (one object fills the image): finite, and all of it is the centre class.
  const at::Tensor full = at::ones({6, 7}, at::kLong);
  EXPECT_TRUE(at::isfinite(edge_distance(full)).all().item<bool>());
  EXPECT_TRUE((distance_classes(full, 4) == 4).all().item<bool>());
}

TEST(DistanceTargets, BinsRunFromTheRimToOneCentrePerObject) {
  // A disc of radius 8 and a small one of radius 2.5: each has rim class 1 and centre class B.
  const at::Tensor labels = discs(30, 40, {{{14, 12, 8, 1}}, {{14, 32, 2.5, 2}}});
  const at::Tensor classes = distance_classes(labels, 4);
  EXPECT_TRUE(at::equal(classes == 0, labels == 0));
  EXPECT_EQ(classes[14][12].item<int64_t>(), 4);
  EXPECT_EQ(classes[14][32].item<int64_t>(), 4);
  EXPECT_EQ(classes[14][4].item<int64_t>(), 1);   // the big disc's left rim
  EXPECT_EQ(classes[14][30].item<int64_t>(), 1);  // the small one's
  // Along a radius the class never falls towards the centre.
  for (int64_t x = 5; x < 12; ++x) EXPECT_LE(classes[14][x].item<int64_t>(), classes[14][x + 1].item<int64_t>()) << x;
  // The centre class is small: a few percent of the big disc.
  const int64_t centre = ((classes == 4) & (labels == 1)).sum().item<int64_t>(), area = (labels == 1).sum().item<int64_t>();
  EXPECT_GT(centre, 0);
  EXPECT_LT(centre * 10, area);
  EXPECT_THROW(distance_classes(labels, 1), OptionError);
}

TEST(DistanceTargets, TouchingDiscsSplitARingDoesNot) {
  // Two discs overlapping by a third of a radius (the later paints over the earlier), and a ring.
  const at::Tensor touching = discs(40, 60, {{{20, 18, 10, 1}}, {{20, 37, 10, 2}}});
  at::Tensor ring = discs(40, 60, {{{20, 30, 15, 1}}});
  ring.masked_fill_(discs(40, 60, {{{20, 30, 8, 1}}}) > 0, 0);
  // With few bins (3 classes) the rim still never seeds: the discs part.
  for (int64_t bins : {2, 3}) {
    const at::Tensor few = objects_of(one_hot_maps(distance_classes(touching, bins), bins + 1), ClassScheme::kDistance);
    EXPECT_EQ(object_scores(touching, few).f1(5), 1.0) << bins << " bins";
  }
  for (const at::Tensor& truth : {touching, ring}) {
    const at::Tensor one_hot = one_hot_maps(distance_classes(truth, 4), 5);
    for (const at::Tensor& maps : {one_hot, blurred(one_hot)}) {
      const at::Tensor objects = objects_of(maps, ClassScheme::kDistance);
      const ObjectScores s = object_scores(truth, objects);
      EXPECT_EQ(s.predicted_objects, s.truth_objects);
      EXPECT_GE(s.f1(5), 1.0) << s.truth_objects << " objects, " << s.predicted_objects << " found";  // all matched at IoU 0.75
    }
  }
}

TEST(DistanceTargets, ObjectsCutByTheImageEdgeStayWhole) {
  // A half disc against the left edge: the edge is not an object edge, so its centre lies on it.
  const at::Tensor labels = discs(30, 30, {{{15, 0, 9, 1}}, {{15, 22, 6, 2}}});
  const at::Tensor classes = distance_classes(labels, 4);
  EXPECT_EQ(classes[15][0].item<int64_t>(), 4);
  const at::Tensor objects = objects_of(one_hot_maps(classes, 5), ClassScheme::kDistance);
  EXPECT_EQ(object_scores(labels, objects).f1(9), 1.0);  // IoU above 0.95 for both
}

TEST(DistanceTargets, SyntheticNucleiDecodeFromTheirDistanceClasses) {
  SyntheticOptions o;
  o.kind = SyntheticKind::kNuclei;
  for (int64_t i = 0; i < 3; ++i) {
    const at::Tensor truth = synthetic_nuclei(o, i).second;
    const at::Tensor decoded = objects_of(one_hot_maps(distance_classes(truth, 4), 5), ClassScheme::kDistance);
    const ObjectScores s = object_scores(truth, decoded);
    EXPECT_GE(s.f1(5), 0.97) << "image " << i << ": " << s.truth_objects << " objects, " << s.predicted_objects << " decoded";
  }
}

TEST(DistanceTargets, OptionsAndNamesFollowTheScheme) {
  const InstanceTargets distance{ClassScheme::kDistance, 2};
  EXPECT_EQ(instance_scheme(5, distance), ClassScheme::kDistance);
  EXPECT_EQ(instance_scheme(2, InstanceTargets{}), ClassScheme::kPlain);
  EXPECT_THROW(require_instance_targets(2, distance), OptionError);
  EXPECT_NO_THROW(require_instance_targets(9, distance));
  EXPECT_THROW(UNetOptions().classes(2).scheme(ClassScheme::kDistance).validate(), OptionError);
  EXPECT_NO_THROW(UNetOptions().classes(5).scheme(ClassScheme::kDistance).validate());
  EXPECT_EQ(default_class_naming(5, ClassScheme::kDistance, false).names,
            (std::vector<std::string>{"background", "distance1", "distance2", "distance3", "distance4"}));
  EXPECT_TRUE(has_objects(4, ClassScheme::kDistance));
  EXPECT_FALSE(has_objects(2, ClassScheme::kDistance));
}

TEST(DistanceTargets, CommandsTrainEvaluatePredictAndResume) {
  const unet::test::TempDir dir;
  SyntheticOptions o;
  o.kind = SyntheticKind::kNuclei;
  o.size = 64;
  o.train_count = 4;
  o.test_count = 1;
  write_synthetic_nuclei(dir.file("data"), o);
  const std::string net = " --depth 2 --filters 4 --input-size 60 --input-mode tile --batch-size 2 --quiet";
  const std::string model = dir.file("model");
  auto r = unet::test::run_unet("train --data-dir " + dir.file("data") + " --instance-targets distance --model-dir " + model +
                                net + " --max-steps 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const CheckpointInfo info = read_checkpoint_info(checkpoint_path(model));
  EXPECT_EQ(info.model.scheme(), ClassScheme::kDistance);
  EXPECT_EQ(info.model.classes(), kDistanceClasses);
  r = unet::test::run_unet("evaluate --data-dir " + dir.file("data") + " --model-dir " + model + " --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("objects (grown from their centres)     truth 4"), std::string::npos) << r.out;
  const auto results = nlohmann::json::parse(unet::test::read_file(model + "/eval_results.json"));
  EXPECT_EQ(results["class_names"][4], "distance4");
  r = unet::test::run_unet("predict --input " + dir.file("data/test") + " --model-dir " + model + " --output-dir " +
                           dir.file("out") + " --no-overlays --instances --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_tiff(dir.file("out/nuclei-004_instances.tif")).size(), 1u);
  // The model alone (export --format checkpoint): a third of the size, the same evaluation, and a
  // clear refusal to resume from it.
  r = unet::test::run_unet("export --model-dir " + model + " --format checkpoint -o " + dir.file("shared/checkpoint.pt"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_LT(std::filesystem::file_size(dir.file("shared/checkpoint.pt")) * 2, std::filesystem::file_size(checkpoint_path(model)));
  r = unet::test::run_unet("evaluate --data-dir " + dir.file("data") + " --model-dir " + dir.file("shared") + " --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto shared = nlohmann::json::parse(unet::test::read_file(dir.file("shared/eval_results.json")));
  EXPECT_EQ(shared["objects"], results["objects"]);
  EXPECT_EQ(shared["dice_score"], results["dice_score"]);
  unet::test::expect_one_line_error(
      unet::test::run_unet("train --model-dir " + dir.file("shared") + " --resume --max-steps 3 --quiet"),
      "holds the model without its optimizer state");
  // An object threshold recorded by the export is evaluate's default; --object-threshold overrides
  // it; out of (0, 1) is refused.
  EXPECT_DOUBLE_EQ(shared["object_rule"]["object_threshold"].get<double>(), kObjectThreshold);
  r = unet::test::run_unet("export --model-dir " + model + " --format checkpoint --object-threshold 0.35 -o " +
                           dir.file("tuned/checkpoint.pt"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("object threshold: 0.35"), std::string::npos) << r.out;
  EXPECT_DOUBLE_EQ(read_checkpoint_info(dir.file("tuned/checkpoint.pt")).objects.threshold, 0.35);
  EXPECT_DOUBLE_EQ(read_checkpoint_info(checkpoint_path(model)).objects.threshold, 0.0);
  // Exported again: auto (the default) keeps the recorded threshold, 0 removes it.
  r = unet::test::run_unet("export --model-dir " + dir.file("tuned") + " --format checkpoint --object-threshold auto -o " +
                           dir.file("kept/checkpoint.pt"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_DOUBLE_EQ(read_checkpoint_info(dir.file("kept/checkpoint.pt")).objects.threshold, 0.35);
  r = unet::test::run_unet("export --model-dir " + dir.file("tuned") + " --format checkpoint --object-threshold 0 -o " +
                           dir.file("cleared/checkpoint.pt"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.find("object threshold:"), std::string::npos) << r.out;
  EXPECT_DOUBLE_EQ(read_checkpoint_info(dir.file("cleared/checkpoint.pt")).objects.threshold, 0.0);
  auto threshold_of = [&](const std::string& flags) {
    const auto e = unet::test::run_unet("evaluate --data-dir " + dir.file("data") + " --model-dir " + dir.file("tuned") +
                                        " --quiet" + flags);
    EXPECT_EQ(e.exit_code, 0) << e.err;
    return nlohmann::json::parse(unet::test::read_file(dir.file("tuned/eval_results.json")))["object_rule"]["object_threshold"].get<double>();
  };
  auto objects_in = [&](const std::string& file) { return nlohmann::json::parse(unet::test::read_file(file))["objects"]; };
  EXPECT_DOUBLE_EQ(threshold_of(""), 0.35);
  const auto at_recorded = objects_in(dir.file("tuned/eval_results.json"));
  EXPECT_DOUBLE_EQ(threshold_of(" --object-threshold 0.6"), 0.6);
  const auto at_06 = objects_in(dir.file("tuned/eval_results.json"));
  // --object-thresholds scores several from one prediction: each row is the evaluation at that
  // threshold alone (sorted), the other scores stay at the model's own, and the best is named.
  // (This model is barely trained: Pretrained.ThresholdSweepOnItsSampleChoosesItsRecordedThreshold
  // sweeps thresholds whose objects differ.)
  r = unet::test::run_unet("evaluate --data-dir " + dir.file("data") + " --model-dir " + dir.file("tuned") +
                           " --quiet --object-thresholds 0.6,0.35");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("best mean AP at object threshold"), std::string::npos) << r.out;
  const auto swept = nlohmann::json::parse(unet::test::read_file(dir.file("tuned/eval_results.json")));
  ASSERT_EQ(swept["object_sweep"].size(), 2u) << swept.dump();
  auto row = [&](size_t k) {
    nlohmann::json scores = swept["object_sweep"][k];
    scores.erase("object_threshold");
    scores.erase("min_probability");
    return scores;
  };
  EXPECT_DOUBLE_EQ(swept["object_sweep"][0]["object_threshold"].get<double>(), 0.35);
  EXPECT_EQ(row(0), at_recorded);
  EXPECT_EQ(row(1), at_06);
  EXPECT_EQ(swept["objects"], at_recorded);
  unet::test::expect_one_line_error(
      unet::test::run_unet("evaluate --data-dir " + dir.file("data") + " --model-dir " + model + " --object-thresholds 0.3,1"),
      "--object-thresholds: 1 is not above 0 and below 1");
  unet::test::expect_one_line_error(
      unet::test::run_unet("evaluate --data-dir " + dir.file("data") + " --model-dir " + model + " --object-thresholds 0.3,x"),
      "--object-thresholds: x is not a number");
  unet::test::expect_one_line_error(
      unet::test::run_unet("export --model-dir " + model + " --format checkpoint --object-threshold 1 -o " + dir.file("x.pt")),
      "--object-threshold must be auto, 0 (none), or above 0 and below 1");
  unet::test::expect_one_line_error(
      unet::test::run_unet("evaluate --data-dir " + dir.file("data") + " --model-dir " + model + " --object-threshold 0"),
      "--object-threshold must be auto or above 0 and below 1");
  // Resuming keeps the scheme; naming the other one is refused in one line.
  r = unet::test::run_unet("train --model-dir " + model + " --resume --max-steps 3 --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_checkpoint_info(checkpoint_path(model)).model.scheme(), ClassScheme::kDistance);
  unet::test::expect_one_line_error(
      unet::test::run_unet("train --model-dir " + model + " --resume --max-steps 4 --instance-targets interior-boundary"),
      "contradicts the checkpoint");
  // Distance targets need instance masks, and more than two classes.
  unet::test::expect_one_line_error(
      unet::test::run_unet("train --synthetic --instance-targets distance --model-dir " + dir.file("m2") + net + " --max-steps 1"),
      "distance needs instance masks");
  unet::test::expect_one_line_error(
      unet::test::run_unet("train --data-dir " + dir.file("data") + " --instance-targets distance --classes 2 --model-dir " +
                           dir.file("m3") + net + " --max-steps 1"),
      "3 to 255 classes as distance targets");
  // A two-class model's objects are its components, never grown: no object threshold to choose.
  r = unet::test::run_unet("train --synthetic --model-dir " + dir.file("plain") + net + " --max-steps 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  unet::test::expect_one_line_error(
      unet::test::run_unet("evaluate --synthetic --model-dir " + dir.file("plain") + " --object-thresholds 0.5"),
      "--object-thresholds: a two-class model's objects are the components of class 1");
}
