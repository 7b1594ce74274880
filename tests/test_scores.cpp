// The ISBI 2012 challenge's scores as Fiji computes them: threshold grid, boundary thinning,
// conventions, and agreement with an independent implementation (tests/isbi_reference.py).
#include "test_support.h"

#include "unet/data/image_io.h"
#include "unet/eval/instances.h"
#include "unet/eval/isbi.h"
#include "unet/eval/metrics.h"
#include "unet/eval/objects.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

using namespace unet;

namespace {

/// A bool map [h, w] from rows of '.' (cell) and '#' (boundary).
at::Tensor cells_from(const std::vector<std::string>& rows) {
  at::Tensor t = at::zeros({static_cast<int64_t>(rows.size()), static_cast<int64_t>(rows[0].size())}, at::kBool);
  for (size_t y = 0; y < rows.size(); ++y)
    for (size_t x = 0; x < rows[y].size(); ++x) t[y][x] = rows[y][x] == '.';
  return t;
}

/// UNET_TEST_PYTHON when it can import numpy and scikit-image, else "".
std::string python_with_skimage() { return unet::test::python_with("numpy, skimage"); }

std::string picture(const at::Tensor& labels) {
  std::string s;
  for (int64_t y = 0; y < labels.size(0); ++y) {
    for (int64_t x = 0; x < labels.size(1); ++x) s += std::to_string(labels[y][x].item<int64_t>());
    s += '\n';
  }
  return s;
}

}  // namespace

TEST(IsbiScores, ThresholdsAreFijisLoopInDoubleArithmetic) {
  const std::vector<double> t = challenge_thresholds();
  ASSERT_EQ(t.size(), 11u);
  EXPECT_EQ(t[0], 0.0);
  EXPECT_EQ(t[3], 0.1 + 0.1 + 0.1);  // 0.30000000000000004
  EXPECT_EQ(t[5], 0.5);
  EXPECT_LT(t[10], 1.0);  // 0.9999999999999999: only probabilities of exactly 1 count as cell there
  EXPECT_GT(t[10], 0.99999);
}

TEST(IsbiScores, ThinningLeavesOnePixelLinesWhereBasinsMeet) {
  // A band of odd width becomes its middle column; in one of even width the line takes the
  // column reached second in Fiji's column-major order (scikit-image's watershed draws this one
  // differently); a one-pixel line stays.
  const at::Tensor odd = thin_boundaries(cells_from({"..###..", "..###..", "..###.."}));
  EXPECT_EQ(picture(odd), "1110222\n1110222\n1110222\n");
  const at::Tensor even = thin_boundaries(cells_from({"..##..", "..##..", "..##.."}));
  EXPECT_EQ(picture(even), "111022\n111022\n111022\n");
  const at::Tensor one = thin_boundaries(cells_from({"..#..", "..#..", "..#.."}));
  EXPECT_EQ(picture(one), "11022\n11022\n11022\n");
}

TEST(IsbiScores, ThinningRemovesBoundariesThatSeparateNothing) {
  // A dangling stub and an isolated boundary pixel inside one cell join the cell.
  const at::Tensor t = thin_boundaries(cells_from({"..#....", "..#....", "..#..#.", "......."}));
  EXPECT_EQ(t.min().item<int64_t>(), 1);
  EXPECT_EQ(t.max().item<int64_t>(), 1);
  // All boundary: one segment.
  EXPECT_EQ(thin_boundaries(cells_from({"###", "###"})).max().item<int64_t>(), 1);
}

TEST(IsbiScores, ThickMembranesWithTheRightTopologyScoreHighOnlyWhenThinned) {
  // Four 15x15 cells separated by one-pixel membranes in the truth; the proposal has the same
  // topology with 5-pixel-thick membranes.
  at::Tensor truth = at::ones({31, 31}, at::kBool), probability = at::ones({31, 31});
  truth.select(0, 15).fill_(false);
  truth.select(1, 15).fill_(false);
  probability.narrow(0, 13, 5).fill_(0.0);
  probability.narrow(1, 13, 5).fill_(0.0);
  const ThresholdScores s = challenge_scores(truth, probability);
  ASSERT_EQ(s.v_rand.size(), challenge_thresholds().size());
  for (size_t k = 0; k < s.v_rand.size(); ++k) {
    EXPECT_LT(s.v_rand[k], 0.9) << k;  // 16% of each cell's pixels become one-pixel segments
    EXPECT_GT(s.v_rand_thinned[k], 0.999) << k;
    EXPECT_GT(s.v_info_thinned[k], 0.999) << k;
  }
}

TEST(IsbiScores, OneSegmentConventionsFollowFiji) {
  const at::Tensor one = at::ones({2, 3}, at::kLong);
  // H(truth) = H(proposal) = 0: Fiji's V_Info is 0 (precision 1, recall 0); V_Rand is 1.
  const SegmentationScores s = segmentation_scores(one, one);
  EXPECT_NEAR(s.v_rand, 1.0, 1e-12);
  EXPECT_EQ(s.v_info, 0.0);
}

TEST(IsbiScores, TheAccumulatorReportsTheChallengesChoiceOfThreshold) {
  // Probabilities of the membrane class: a cell map whose best threshold is known.
  at::Tensor truth = at::ones({31, 31}, at::kLong);  // class 1 = cell, 0 = membrane
  truth.select(0, 15).fill_(0);
  at::Tensor cell = at::full({31, 31}, 0.9);
  cell.select(0, 15).fill_(0.35);  // a membrane the proposal only draws for thresholds >= 0.35
  const at::Tensor probabilities = at::stack({1.0 - cell, cell});
  MetricAccumulator acc;
  acc.add_original(probabilities.to(at::kFloat), truth);
  const Metrics m = acc.result();
  EXPECT_NEAR(m.v_rand_thinned, 1.0, 1e-12);
  EXPECT_NEAR(m.v_rand_thinned_threshold, 0.1 + 0.1 + 0.1 + 0.1, 1e-12);  // first threshold above 0.35
  EXPECT_NEAR(m.v_rand, 1.0, 1e-12);  // at 0.5 the membrane is drawn
  // The state round trip keeps every threshold's sums.
  MetricAccumulator copy;
  copy.set_state(acc.state());
  EXPECT_EQ(copy.result().v_info_thinned, m.v_info_thinned);
}

TEST(Metrics, PerClassDiceAndObjectsByHand) {
  // Truth: two square objects (class 1) on background; the prediction finds the first exactly,
  // misses the second and adds a false one, and labels 4 background pixels as class 1.
  at::Tensor truth = at::zeros({20, 20}, at::kLong);
  truth.slice(0, 2, 6).slice(1, 2, 6).fill_(1);      // object A, 16 pixels
  truth.slice(0, 10, 14).slice(1, 10, 14).fill_(1);  // object B, 16 pixels
  at::Tensor predicted = at::zeros({20, 20}, at::kLong);
  predicted.slice(0, 2, 6).slice(1, 2, 6).fill_(1);     // A
  predicted.slice(0, 16, 18).slice(1, 2, 4).fill_(1);   // a false object, 4 pixels
  const at::Tensor probabilities = at::one_hot(predicted, 2).permute({2, 0, 1}).to(at::kFloat);
  MetricAccumulator acc(2);
  acc.add_original(probabilities, truth);
  const Metrics m = acc.result();
  // Class 1: TP 16, FP 4, FN 16 -> Dice 32 / 52; class 0: TP 364, FP 16, FN 4 -> 728 / 748.
  ASSERT_EQ(m.class_dice.size(), 2u);
  EXPECT_NEAR(m.class_dice[1], 32.0 / 52.0, 1e-12);
  EXPECT_NEAR(m.class_iou[1], 16.0 / 36.0, 1e-12);
  EXPECT_NEAR(m.class_dice[0], 728.0 / 748.0, 1e-12);
  EXPECT_EQ(m.class_dice[0], m.membrane_dice);
  ASSERT_TRUE(m.has_objects);
  EXPECT_EQ(m.objects.truth_objects, 2);
  EXPECT_EQ(m.objects.predicted_objects, 2);
  EXPECT_EQ(m.objects.true_positives[0], 1);
  EXPECT_NEAR(m.objects.f1(0), 0.5, 1e-12);  // 2 TP / (2 TP + FP + FN) = 2 / 4
  // The state round trip keeps them; three classes have no objects.
  MetricAccumulator copy(2);
  copy.set_state(acc.state());
  EXPECT_EQ(copy.result().class_dice, m.class_dice);
  EXPECT_EQ(copy.result().objects.true_positives, m.objects.true_positives);
  // Panoptic quality survives the round trip and pooling: SQ 1 (A matched exactly), RQ = F1 0.5.
  EXPECT_NEAR(m.objects.panoptic_quality(), 0.5, 1e-12);
  EXPECT_NEAR(copy.result().objects.panoptic_quality(), 0.5, 1e-12);
  EXPECT_NEAR(copy.result().objects.mean_image_panoptic_quality(), 0.5, 1e-12);
  // So does the aggregated Jaccard index: A's 16 over A's 16, B missed (16) and the false object
  // (4) added to the union: 16 / 36.
  EXPECT_NEAR(copy.result().objects.aggregated_jaccard_index(), 16.0 / 36.0, 1e-12);
  EXPECT_NEAR(copy.result().objects.mean_image_aggregated_jaccard_index(), 16.0 / 36.0, 1e-12);
  MetricAccumulator pooled(2);
  pooled.add(acc);
  pooled.add(copy);
  EXPECT_EQ(pooled.result().objects.images, 2);
  EXPECT_NEAR(pooled.result().objects.panoptic_quality(), 0.5, 1e-12);
  EXPECT_NEAR(pooled.result().objects.mean_image_panoptic_quality(), 0.5, 1e-12);
  EXPECT_NEAR(pooled.result().objects.aggregated_jaccard_index(), 16.0 / 36.0, 1e-12);
  MetricAccumulator three(3);
  three.add_original(at::one_hot(predicted, 3).permute({2, 0, 1}).to(at::kFloat), truth);
  EXPECT_FALSE(three.result().has_objects);
  EXPECT_EQ(three.result().class_dice.size(), 3u);
  EXPECT_EQ(three.result().class_dice[2], 1.0);  // absent in both: perfect
  EXPECT_THROW(copy.set_state(three.state()), std::invalid_argument);
}

TEST(Instances, WatershedSplitsObjectsJoinedByAWeakBridge) {
  // Two confident blobs joined by a bridge that is foreground (>= 0.5) but not confident, and a
  // third, separate blob that is foreground but never confident (no seed).
  at::Tensor p = at::zeros({12, 30});
  p.slice(0, 2, 8).slice(1, 2, 8).fill_(0.95);
  p.slice(0, 2, 8).slice(1, 12, 18).fill_(0.9);
  p.slice(0, 4, 6).slice(1, 8, 12).fill_(0.6);    // the bridge
  p.slice(0, 2, 5).slice(1, 24, 28).fill_(0.55);  // seedless
  const at::Tensor components = instance_labels(p, InstanceMethod::kComponents);
  EXPECT_EQ(components.max().item<int64_t>(), 2);  // the joined pair and the seedless blob
  const at::Tensor split = instance_labels(p, InstanceMethod::kWatershed);
  EXPECT_EQ(split.max().item<int64_t>(), 3);
  // Raster order of first pixels (all on row 2): left blob, right blob, seedless blob.
  EXPECT_EQ(split[3][3].item<int64_t>(), 1);
  EXPECT_EQ(split[3][14].item<int64_t>(), 2);
  EXPECT_EQ(split[3][25].item<int64_t>(), 3);
  EXPECT_TRUE(at::equal(split > 0, p >= 0.5));  // every foreground pixel belongs to an object, nothing else
  // The bridge is shared between the two blobs, each taking its side.
  EXPECT_NE(split[4][8].item<int64_t>(), split[4][11].item<int64_t>());
  EXPECT_EQ(split[4][8].item<int64_t>(), split[3][3].item<int64_t>());
  EXPECT_EQ(instance_labels(at::zeros({5, 5}), InstanceMethod::kWatershed).max().item<int64_t>(), 0);
}

TEST(IsbiScores, AgreeWithAnIndependentImplementation) {
  const std::string python = python_with_skimage();
  if (python.empty()) GTEST_SKIP() << "no UNET_TEST_PYTHON with numpy and scikit-image (pip install scikit-image); skipping";
  // Smooth random probability maps against a smooth random truth: many cells, gaps and
  // thick boundaries, at every threshold.
  const unet::test::TempDir dir;
  const std::string script = std::string(UNET_TEST_DATA_DIR) + "/../isbi_reference.py";
  // And a real truth: a 160x160 crop of the first ISBI training label, with a proposal made from it
  // (blurred, noised: thick and broken membranes), when the data is there.
  std::vector<at::Tensor> real;
  if (std::filesystem::exists(unet::test::isbi_dir() + "/train-labels.tif"))
    real.push_back(read_tiff(unet::test::isbi_dir() + "/train-labels.tif")[0].pixels[0].narrow(0, 0, 160).narrow(1, 0, 160) > 127);
  at::manual_seed(3);
  for (size_t image = 0; image < 3 + real.size(); ++image) {
    at::Tensor probability, truth_cells;
    if (image < 3) {
      const at::Tensor noise = at::avg_pool2d(at::rand({1, 1, 104, 88}, at::kDouble), 9, 1).squeeze();
      probability = ((noise - noise.min()) / (noise.max() - noise.min())).to(at::kFloat).contiguous();
      truth_cells = (at::avg_pool2d(at::rand({1, 1, 100, 84}, at::kDouble), 5, 1).squeeze() > 0.47).contiguous();
    } else {
      truth_cells = real[image - 3].contiguous();
      const at::Tensor blurred = at::avg_pool2d(truth_cells.to(at::kDouble).view({1, 1, 160, 160}), 5, 1, 2).squeeze();
      probability = (blurred + 0.3 * at::randn({160, 160}, at::kDouble)).clamp(0, 1).to(at::kFloat).contiguous();
    }
    const int64_t h = truth_cells.size(0), w = truth_cells.size(1);
    const std::string name = std::to_string(image);
    std::ofstream(dir.file("probability-" + name + ".f32"), std::ios::binary)
        .write(static_cast<const char*>(probability.data_ptr()), probability.numel() * 4);
    std::ofstream(dir.file("truth-" + name + ".u8"), std::ios::binary)
        .write(static_cast<const char*>(truth_cells.to(at::kByte).contiguous().data_ptr()), truth_cells.numel());
    const ThresholdScores ours = challenge_scores(truth_cells, probability);
    const std::string out = dir.file("scores-" + name + ".json");
    const std::string command = python + " " + script + " " + dir.file("truth-" + name + ".u8") + " " +
                                dir.file("probability-" + name + ".f32") + " " + std::to_string(h) + " " +
                                std::to_string(w) + " " + out;
    ASSERT_EQ(std::system(command.c_str()), 0) << command;
    const nlohmann::json ref = nlohmann::json::parse(std::ifstream(out));
    for (size_t k = 0; k < ours.v_rand.size(); ++k) {
      EXPECT_NEAR(ours.v_rand[k], ref["v_rand"][k].get<double>(), 1e-6) << "image " << image << " threshold " << k;
      EXPECT_NEAR(ours.v_info[k], ref["v_info"][k].get<double>(), 1e-6) << "image " << image << " threshold " << k;
      EXPECT_NEAR(ours.v_rand_thinned[k], ref["v_rand_thinned"][k].get<double>(), 1e-6) << "image " << image << " threshold " << k;
      EXPECT_NEAR(ours.v_info_thinned[k], ref["v_info_thinned"][k].get<double>(), 1e-6) << "image " << image << " threshold " << k;
    }
    // scikit-image's watershed places some lines differently (see isbi_reference.py): per threshold
    // the thinned scores differ by up to about 0.06 on these noisy maps; their best agree closely.
    const auto skimage = ref["v_rand_thinned_skimage"].get<std::vector<double>>();
    EXPECT_NEAR(*std::max_element(ours.v_rand_thinned.begin(), ours.v_rand_thinned.end()),
                *std::max_element(skimage.begin(), skimage.end()), 0.02) << "image " << image;
  }
}

namespace {

/// A truth (cells 255, one-pixel boundaries 0) and a noisy cell-probability map of it.
std::pair<at::Tensor, at::Tensor> truth_and_prediction(int64_t seed) {
  at::manual_seed(seed);
  at::Tensor truth = at::full({64, 64}, 255, at::kByte);
  truth.select(0, 20 + seed).fill_(0);
  truth.select(1, 30 - seed).fill_(0);
  const at::Tensor blurred = at::avg_pool2d((truth.to(at::kFloat) / 255).view({1, 1, 64, 64}), 3, 1, 1).squeeze();
  return {truth, (blurred + 0.2 * at::randn({64, 64})).clamp(0, 1).contiguous()};
}

}  // namespace

TEST(ScoreCommand, ScoresAStackAndTheSameImagesAsFoldersAlike) {
  const unet::test::TempDir dir;
  std::filesystem::create_directories(dir.file("pred"));
  std::filesystem::create_directories(dir.file("truth"));
  std::vector<at::Tensor> truths, predictions;
  MetricAccumulator expected;
  for (int k = 0; k < 2; ++k) {
    auto [truth, prediction] = truth_and_prediction(k);
    truths.push_back(truth);
    predictions.push_back(prediction);
    expected.add_original(at::stack({1.0 - prediction, prediction}), (truth > 0).to(at::kLong));
    // The folder form: 8-bit maps of the boundary class (--invert-prediction), PNG truths.
    write_png(dir.file("pred/slice-" + std::to_string(k) + ".png"), ((1.0 - prediction) * 255).round().to(at::kByte));
    write_png(dir.file("truth/slice-" + std::to_string(k) + ".png"), truth);
  }
  write_tiff(dir.file("pred.tif"), predictions);
  write_tiff(dir.file("truth.tif"), truths);

  const auto r = unet::test::run_unet("score --prediction " + dir.file("pred.tif") + " --truth " + dir.file("truth.tif") +
                                      " -o " + dir.file("stack.json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json stack = nlohmann::json::parse(unet::test::read_file(dir.file("stack.json")));
  const Metrics m = expected.result();
  EXPECT_EQ(stack["images"].size(), 2u);
  EXPECT_NEAR(stack["overall"]["v_rand_thinned"].get<double>(), m.v_rand_thinned, 1e-12);
  EXPECT_NEAR(stack["overall"]["v_info_thinned"].get<double>(), m.v_info_thinned, 1e-12);
  EXPECT_NEAR(stack["overall"]["pixel_error"].get<double>(), m.pixel_error, 1e-12);
  EXPECT_FALSE(stack["overall"].contains("dice_score"));
  EXPECT_EQ(stack["images"][0]["objects"]["truth"].get<int64_t>(), 4);  // the truth's four cells
  EXPECT_EQ(stack["overall"]["objects"]["truth"].get<int64_t>(), 8);
  EXPECT_NE(r.out.find("V_Rand (ISBI challenge, thinned)"), std::string::npos) << r.out;

  const auto f = unet::test::run_unet("score --prediction " + dir.file("pred") + " --truth " + dir.file("truth") +
                                      " --invert-prediction -o " + dir.file("folders.json"));
  ASSERT_EQ(f.exit_code, 0) << f.err;
  const nlohmann::json folders = nlohmann::json::parse(unet::test::read_file(dir.file("folders.json")));
  EXPECT_EQ(folders["images"].size(), 2u);
  // 8-bit rounding of the maps moves the scores a little, not more.
  EXPECT_NEAR(folders["overall"]["v_rand_thinned"].get<double>(), m.v_rand_thinned, 0.02);
  EXPECT_NEAR(folders["overall"]["pixel_error"].get<double>(), m.pixel_error, 0.01);
}

TEST(ScoreCommand, BadInputGetsOneLineNamingTheFile) {
  const unet::test::TempDir dir;
  auto [truth, prediction] = truth_and_prediction(0);
  write_tiff(dir.file("truth.tif"), {truth});
  write_tiff(dir.file("small.tif"), {prediction.narrow(0, 0, 32)});
  write_tiff(dir.file("loud.tif"), {prediction * 255});
  write_tiff(dir.file("two.tif"), {prediction, prediction});
  const std::string t = " --truth " + dir.file("truth.tif");
  unet::test::expect_one_line_error(unet::test::run_unet("score --prediction " + dir.file("small.tif") + t), "is 64x32 but the truth");
  unet::test::expect_one_line_error(unet::test::run_unet("score --prediction " + dir.file("loud.tif") + t), "must be probabilities in [0, 1]");
  unet::test::expect_one_line_error(unet::test::run_unet("score --prediction " + dir.file("two.tif") + t), "has 2 pages but");
  unet::test::expect_one_line_error(unet::test::run_unet("score --prediction " + dir.file("none.tif") + t), "does not exist");
  std::filesystem::create_directories(dir.file("p"));
  std::filesystem::create_directories(dir.file("t"));
  write_png(dir.file("t/a.png"), truth);
  unet::test::expect_one_line_error(unet::test::run_unet("score --prediction " + dir.file("p") + " --truth " + dir.file("t")),
                                    "has no prediction for");
  // The output never replaces an input.
  unet::test::expect_one_line_error(
      unet::test::run_unet("score --prediction " + dir.file("two.tif") + t + " -o " + dir.file("truth.tif")), "truth.tif");
  EXPECT_EQ(read_tiff(dir.file("truth.tif")).size(), 1u);
}

TEST(ObjectScores, MatchesSplitsAndMergesByHand) {
  // Identical maps with three objects (labels need not agree or be consecutive).
  at::Tensor truth = at::zeros({8, 8}, at::kLong);
  truth.narrow(0, 0, 2).narrow(1, 0, 2).fill_(1);
  truth.narrow(0, 4, 2).narrow(1, 0, 3).fill_(7);
  truth.narrow(0, 0, 3).narrow(1, 5, 3).fill_(3);
  ObjectScores s = object_scores(truth, truth * 10);
  EXPECT_EQ(s.truth_objects, 3);
  EXPECT_EQ(s.predicted_objects, 3);
  for (size_t k = 0; k < s.thresholds.size(); ++k) EXPECT_EQ(s.true_positives[k], 3);
  EXPECT_EQ(s.f1(0), 1.0);
  EXPECT_EQ(s.mean_average_precision(), 1.0);
  EXPECT_EQ(s.split + s.merged, 0);

  // One 4x4 object predicted one column to the right: IoU 12/20 = 0.6, a match at 0.5 and 0.55 only.
  at::Tensor a = at::zeros({6, 6}, at::kLong), b = at::zeros({6, 6}, at::kLong);
  a.narrow(0, 0, 4).narrow(1, 0, 4).fill_(1);
  b.narrow(0, 0, 4).narrow(1, 1, 4).fill_(1);
  s = object_scores(a, b);
  EXPECT_EQ(s.true_positives[0], 1);
  EXPECT_EQ(s.true_positives[1], 1);
  EXPECT_EQ(s.true_positives[2], 0);
  EXPECT_NEAR(s.mean_average_precision(), 0.2, 1e-12);

  // A truth object cut in two equal halves: IoU 0.5 each, no match above 0.5; one split.
  b = a.clone();
  b.narrow(1, 2, 2).mul_(2);
  s = object_scores(a, b);
  EXPECT_EQ(s.true_positives[0], 0);
  EXPECT_EQ(s.split, 1);
  EXPECT_EQ(s.merged, 0);
  EXPECT_NEAR(s.f1(0), 0.0, 1e-12);  // TP 0, FP 2, FN 1
  // The other way round: two truth objects in one prediction, one merge.
  s = object_scores(b, a);
  EXPECT_EQ(s.merged, 1);
  EXPECT_EQ(s.split, 0);

  // Nothing on either side is a perfect score; pooling adds counts.
  ObjectScores empty = object_scores(at::zeros({3, 3}, at::kLong), at::zeros({3, 3}, at::kLong));
  EXPECT_EQ(empty.f1(0), 1.0);
  empty.add(object_scores(a, b));
  EXPECT_EQ(empty.truth_objects, 1);
  EXPECT_EQ(empty.predicted_objects, 2);
}

namespace {

/// Truth and prediction (8x8): a 4x4 truth object predicted one column to the right, a 2x2 truth
/// object missed and a 2x2 prediction where there is none.
std::pair<at::Tensor, at::Tensor> shifted_missed_spurious() {
  at::Tensor a = at::zeros({8, 8}, at::kLong), b = at::zeros({8, 8}, at::kLong);
  a.narrow(0, 0, 4).narrow(1, 0, 4).fill_(1);
  b.narrow(0, 0, 4).narrow(1, 1, 4).fill_(5);
  a.narrow(0, 6, 2).narrow(1, 0, 2).fill_(2);
  b.narrow(0, 6, 2).narrow(1, 5, 2).fill_(9);
  return {a, b};
}

}  // namespace

TEST(ObjectScores, PanopticQualityByHand) {
  // Image 1: a 4x4 object predicted one column to the right (IoU 12/20 = 0.6, matched), a truth
  // object missed (FN) and a spurious prediction (FP): SQ 0.6, RQ 1 / (1 + 0.5 + 0.5), PQ 0.3.
  const auto [a, b] = shifted_missed_spurious();
  ObjectScores s = object_scores(a, b);
  EXPECT_NEAR(s.segmentation_quality(), 0.6, 1e-12);
  EXPECT_NEAR(s.f1(0), 0.5, 1e-12);
  EXPECT_NEAR(s.panoptic_quality(), 0.3, 1e-12);
  // A match at IoU exactly 0.5 is no match (as every other object score here).
  at::Tensor c = at::zeros({4, 4}, at::kLong), d = at::zeros({4, 4}, at::kLong);
  c.narrow(1, 0, 2).fill_(1);
  d.fill_(1);
  EXPECT_EQ(object_scores(c, d).panoptic_quality(), 0.0);
  // Image 2, a perfect one: pooled TP 2, FP 1, FN 1, IoU sum 1.6: SQ 0.8, RQ 2/3, PQ 0.5333;
  // per image 0.3 and 1, averaged 0.65.
  s.add(object_scores(c, c));
  EXPECT_NEAR(s.segmentation_quality(), 0.8, 1e-12);
  EXPECT_NEAR(s.panoptic_quality(), 0.8 * 2.0 / 3.0, 1e-12);
  EXPECT_NEAR(s.mean_image_panoptic_quality(), 0.65, 1e-12);
  // Nothing on either side: a perfect score.
  EXPECT_EQ(object_scores(at::zeros({3, 3}, at::kLong), at::zeros({3, 3}, at::kLong)).panoptic_quality(), 1.0);
}

TEST(ObjectScores, AggregatedJaccardIndexByHand) {
  // Image 1 (PanopticQualityByHand's): the 4x4 object and its prediction one column over
  // (intersection 12, union 20); the missed 2x2 truth object (4) and the spurious 2x2 prediction
  // (4) join the union whole: AJI 12 / 28.
  const auto [a, b] = shifted_missed_spurious();
  ObjectScores s = object_scores(a, b);
  EXPECT_NEAR(s.aggregated_jaccard_index(), 12.0 / 28.0, 1e-12);
  // A merge: two 2x2 truth objects side by side, one 2x4 prediction over both. Each truth object's
  // best is the merged one (IoU 4 / 8), its union counted for each: AJI (4 + 4) / (8 + 8).
  at::Tensor c = at::zeros({2, 4}, at::kLong), d = at::ones({2, 4}, at::kLong);
  c.narrow(1, 0, 2).fill_(1);
  c.narrow(1, 2, 2).fill_(2);
  EXPECT_NEAR(object_scores(c, d).aggregated_jaccard_index(), 0.5, 1e-12);
  // The best match is by IoU, not by overlap: a 2x6 truth object (12) whose two left columns are a
  // small prediction (4 inside: IoU 4 / 12) and whose four right columns lie in a 6x4 one (8
  // inside: IoU 8 / 28). The small one is chosen though it overlaps less and has the higher label,
  // and the large one joins the union whole: AJI 4 / (12 + 24); by overlap it would be 8 / 32.
  at::Tensor e = at::zeros({8, 8}, at::kLong), f = at::zeros({8, 8}, at::kLong);
  e.narrow(0, 0, 2).narrow(1, 0, 6).fill_(1);
  f.narrow(0, 0, 2).narrow(1, 0, 2).fill_(9);
  f.narrow(0, 0, 6).narrow(1, 2, 4).fill_(2);
  EXPECT_NEAR(object_scores(e, f).aggregated_jaccard_index(), 4.0 / 36.0, 1e-12);
  // Pooled with a perfect image (8 of 8): (12 + 8) / (28 + 8); per image (12/28 + 1) / 2.
  s.add(object_scores(c, c));
  EXPECT_NEAR(s.aggregated_jaccard_index(), 20.0 / 36.0, 1e-12);
  EXPECT_NEAR(s.mean_image_aggregated_jaccard_index(), (12.0 / 28.0 + 1.0) / 2.0, 1e-12);
  // Nothing on either side: a perfect score.
  EXPECT_EQ(object_scores(at::zeros({3, 3}, at::kLong), at::zeros({3, 3}, at::kLong)).aggregated_jaccard_index(), 1.0);
}

TEST(ScoreCommand, SixteenBitInstanceLabelsAreCellsAndObjects) {
  // Four touching objects labelled 1000..1003 in a 16-bit image: every label is a cell (no
  // boundary), each label one object; a prediction that finds the cells but not the splits.
  const unet::test::TempDir dir;
  at::Tensor truth = at::zeros({40, 40}, at::kInt);
  for (int k = 0; k < 4; ++k) truth.narrow(0, 10 * k, 10).fill_(1000 + k);
  write_png(dir.file("truth.png"), truth);
  write_tiff(dir.file("pred.tif"), {at::ones({40, 40})});
  const auto r = unet::test::run_unet("score --prediction " + dir.file("pred.tif") + " --truth " + dir.file("truth.png") +
                                      " -o " + dir.file("s.json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json s = nlohmann::json::parse(unet::test::read_file(dir.file("s.json")));
  EXPECT_EQ(s["overall"]["pixel_error"].get<double>(), 0.0);
  EXPECT_EQ(s["overall"]["objects"]["truth"].get<int64_t>(), 4);
  EXPECT_EQ(s["overall"]["objects"]["predicted"].get<int64_t>(), 1);
  EXPECT_EQ(s["overall"]["objects"]["merged"].get<int64_t>(), 1);  // all four truth objects lie inside the one found
}

TEST(Instances, SpecksBelowTheSmallestObjectAreaAreNotObjects) {
  // Interior/boundary maps: a 6 x 6 nucleus (interior 4 x 4 in a boundary ring), a 2-pixel speck of
  // boundary class in the background, and a 3 x 3 interior fragment.
  at::Tensor best = at::zeros({20, 20}, at::kLong);
  best.slice(0, 2, 8).slice(1, 2, 8).fill_(2);
  best.slice(0, 3, 7).slice(1, 3, 7).fill_(1);
  best.slice(0, 12, 13).slice(1, 15, 17).fill_(2);
  best.slice(0, 15, 18).slice(1, 3, 6).fill_(1);
  const at::Tensor maps = at::one_hot(best, 3).permute({2, 0, 1}).to(at::kFloat);
  const at::Tensor all = objects_of(maps, ClassScheme::kInteriorBoundary);
  EXPECT_EQ(all.max().item<int64_t>(), 3);
  const at::Tensor kept = objects_of(maps, ClassScheme::kInteriorBoundary, InstanceMethod::kComponents, ObjectRule{10});
  EXPECT_EQ(kept.max().item<int64_t>(), 1);                   // renumbered: the nucleus alone
  EXPECT_EQ(kept.eq(1).sum().item<int64_t>(), 36);            // whole, ring included
  EXPECT_EQ(kept[12][15].item<int64_t>(), 0);                 // the speck is background
  EXPECT_EQ(kept[16][4].item<int64_t>(), 0);                  // the 9-pixel fragment too
  EXPECT_TRUE(at::equal(objects_of(maps, ClassScheme::kInteriorBoundary, InstanceMethod::kComponents, ObjectRule{2}), all));
  EXPECT_EQ(objects_of(maps, ClassScheme::kInteriorBoundary, InstanceMethod::kComponents, ObjectRule{9}).max().item<int64_t>(), 2);
  // Raster order after removal: the later object becomes 1.
  at::Tensor labels = at::zeros({4, 6}, at::kLong);
  labels[0][0] = 5;                          // 1 pixel, first in raster order
  labels.slice(0, 2, 4).slice(1, 2, 5).fill_(3);  // 6 pixels
  const at::Tensor r = remove_small_objects(labels, 2);
  EXPECT_EQ(r[0][0].item<int64_t>(), 0);
  EXPECT_EQ(r[2][2].item<int64_t>(), 1);
  // The median training object: areas 1, 6 and 36 -> 6; none -> 0.
  EXPECT_EQ(median_object_area({labels, all.eq(1).to(at::kLong)}), 6);
  EXPECT_EQ(median_object_area({at::zeros({3, 3}, at::kLong), at::Tensor()}), 0);
  // The accumulator counts the predicted objects that are kept; the truth's all.
  MetricAccumulator plain(3, ClassScheme::kInteriorBoundary);
  plain.use_object_rule(ObjectRule{10});
  plain.add_original(maps, best);
  EXPECT_EQ(plain.result().objects.predicted_objects, 1);
  EXPECT_EQ(plain.result().objects.truth_objects, 3);
}
