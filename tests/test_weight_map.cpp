// Tests of the border weight maps and the weighted loss (hand cases and a brute-force reference).
#include "test_support.h"

#include "unet/data/augment.h"
#include "unet/data/components.h"
#include "unet/data/dataset.h"
#include "unet/data/instance_targets.h"
#include "unet/data/loader.h"
#include "unet/data/weight_map.h"
#include "unet/eval/isbi.h"
#include "unet/model/loss.h"
#include "unet/runtime/error.h"

#include <ATen/ATen.h>
#include <gtest/gtest-spi.h>

#include <cmath>
#include <limits>
#include <optional>
#include <string>

using namespace unet;

namespace {

/// The weight map by definition: distances to every pixel of every cell, no windows. Cells are the
/// objects of `instances` when given (the term then on every pixel), else the components of mask != 0.
at::Tensor brute_force(const at::Tensor& mask, int64_t classes, const WeightMapOptions& o, const at::Tensor& instances = {}) {
  const bool objects = instances.defined();
  const at::Tensor comp = objects ? instances : connected_components(mask.ne(0));
  const int64_t cells = comp.max().item<int64_t>();
  const int64_t h = mask.size(0), w = mask.size(1);
  // Class balance: each pixel weighs (pixels) / (classes * pixels of its class); else 1.
  const at::Tensor counts = at::bincount(mask.flatten(), {}, classes);
  at::Tensor out = at::empty({h, w}, at::kFloat);
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x)
      out[y][x] = o.class_balance ? static_cast<double>(h * w) / (static_cast<double>(classes) * counts[mask[y][x].item<int64_t>()].item<double>())
                                  : 1.0;
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      if (!objects && mask[y][x].item<int64_t>() != 0) continue;
      std::vector<double> nearest(static_cast<size_t>(cells) + 1, std::numeric_limits<double>::infinity());
      for (int64_t v = 0; v < h; ++v)
        for (int64_t u = 0; u < w; ++u) {
          const int64_t c = comp[v][u].item<int64_t>();
          if (c > 0) nearest[static_cast<size_t>(c)] = std::min(nearest[static_cast<size_t>(c)], std::hypot(double(v - y), double(u - x)));
        }
      std::sort(nearest.begin() + 1, nearest.end());  // labels no pixel carries stay infinitely far
      if (cells < 2 || nearest[2] > static_cast<double>(o.radius)) continue;
      const double s = nearest[1] + nearest[2];
      out[y][x] += o.w0 * std::exp(-s * s / (2 * o.sigma * o.sigma));
    }
  return out;
}

}  // namespace

TEST(WeightMap, ClassBalanceAloneWeighsEachClassByItsRarity) {
  at::Tensor mask = at::zeros({8, 8}, at::kLong);
  mask.narrow(0, 0, 4).narrow(1, 0, 4).fill_(1);  // a quarter is class 1
  WeightMapOptions o;
  o.w0 = 0.0;
  const at::Tensor w = border_weight_map(mask, 2, o);
  EXPECT_FLOAT_EQ(w[0][0].item<float>(), 64.0f / (2 * 16));  // 2
  EXPECT_FLOAT_EQ(w[7][7].item<float>(), 64.0f / (2 * 48));  // 2/3
}

TEST(WeightMap, TheGapBetweenTwoCellsGetsThePapersSeparationWeight) {
  // Two 5x5 cells side by side, two background columns apart, and a far corner.
  at::Tensor mask = at::zeros({12, 40}, at::kLong);
  mask.narrow(0, 2, 5).narrow(1, 2, 5).fill_(1);   // columns 2..6
  mask.narrow(0, 2, 5).narrow(1, 9, 5).fill_(1);   // columns 9..13; the gap is columns 7 and 8
  WeightMapOptions o;
  const at::Tensor w = border_weight_map(mask, 2, o);
  const double background_weight = 480.0 / (2 * 430), cell_weight = 480.0 / (2 * 50);
  // Column 7: 1 px from the left cell, 2 px from the right one.
  EXPECT_NEAR(w[4][7].item<double>(), background_weight + 10.0 * std::exp(-9.0 / 50.0), 1e-5);
  EXPECT_NEAR(w[4][8].item<double>(), background_weight + 10.0 * std::exp(-9.0 / 50.0), 1e-5);
  // Inside a cell: only the class weight.
  EXPECT_NEAR(w[4][4].item<double>(), cell_weight, 1e-5);
  // Farther than the radius from the second cell: only the class weight.
  EXPECT_NEAR(w[11][39].item<double>(), background_weight, 1e-5);
}

TEST(WeightMap, MatchesTheDefinitionOnRandomCells) {
  at::manual_seed(3);
  // Random blobs: thresholded smoothed noise gives touching and separate cells of many shapes.
  const at::Tensor noise = at::avg_pool2d(at::randn({1, 1, 36, 36}), 5, 1, 2)[0][0];
  const at::Tensor mask = (noise > 0.1).to(at::kLong);
  const int64_t cells = connected_components(mask.ne(0)).max().item<int64_t>();
  ASSERT_GE(cells, 3);
  WeightMapOptions o;
  o.radius = 12;
  const at::Tensor fast = border_weight_map(mask, 2, o), slow = brute_force(mask, 2, o);
  EXPECT_TRUE(at::allclose(fast, slow, /*rtol=*/1e-5, /*atol=*/1e-4)) << (fast - slow).abs().max().item<double>();
}

TEST(WeightMap, TouchingObjectsAreTwoCellsWhenTheirInstanceLabelsAreGiven) {
  // Two 5x5 objects touching along a column (no background between them) and a lone one far off;
  // the three-class targets' boundary would make them one region of non-zero classes.
  at::Tensor instances = at::zeros({12, 64}, at::kLong);
  instances.narrow(0, 2, 5).narrow(1, 2, 5).fill_(1);    // columns 2..6
  instances.narrow(0, 2, 5).narrow(1, 7, 5).fill_(2);    // columns 7..11
  instances.narrow(0, 2, 5).narrow(1, 55, 5).fill_(4);   // label 3 unused: labels need not be consecutive
  const at::Tensor mask = instances.ne(0).to(at::kLong);
  WeightMapOptions o;
  o.class_balance = false;
  // From the class mask alone: no gap, so no separation weight anywhere.
  EXPECT_TRUE(at::equal(border_weight_map(mask, 2, o), at::ones({12, 64}))) << "one region, weight 1 everywhere";
  const at::Tensor w = border_weight_map(mask, 2, o, instances);
  // On the shared boundary a pixel is 1 px from the other object; 2 px in, 3 px from it.
  EXPECT_NEAR(w[4][6].item<double>(), 1.0 + 10.0 * std::exp(-1.0 / 50.0), 1e-5);
  EXPECT_NEAR(w[4][7].item<double>(), 1.0 + 10.0 * std::exp(-1.0 / 50.0), 1e-5);
  EXPECT_NEAR(w[4][4].item<double>(), 1.0 + 10.0 * std::exp(-9.0 / 50.0), 1e-5);
  // Background beside the pair: 1 px from the left object, 6 px from the right one.
  EXPECT_NEAR(w[4][1].item<double>(), 1.0 + 10.0 * std::exp(-49.0 / 50.0), 1e-5);
  // The lone object and the background around it are farther than the radius (20) from any other.
  EXPECT_FLOAT_EQ(w[4][57].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(w[4][62].item<float>(), 1.0f);
  // The class balance comes on top of the same separation term.
  o.class_balance = true;
  const at::Tensor balanced = border_weight_map(mask, 2, o, instances);
  EXPECT_NEAR(balanced[4][6].item<double>(), 768.0 / (2 * 75) + 10.0 * std::exp(-1.0 / 50.0), 1e-5);
  EXPECT_THROW(border_weight_map(mask, 2, o, instances.narrow(1, 0, 63)), Error);
}

TEST(WeightMap, ATrainingSamplesMapUsesItsInstanceLabels) {
  // The map training computes for a sample from instance masks: two touching objects, three classes.
  at::Tensor labels = at::zeros({12, 24}, at::kLong);
  labels.narrow(0, 2, 5).narrow(1, 2, 5).fill_(1);
  labels.narrow(0, 2, 5).narrow(1, 7, 5).fill_(2);
  Sample s;
  s.source = "touching.png";
  attach_instances(s, labels, 3, InstanceTargets{});
  WeightMapOptions o;
  o.class_balance = false;
  const at::Tensor w = sample_weight_map(s, 3, o);
  EXPECT_NEAR(w[4][6].item<double>(), 1.0 + 10.0 * std::exp(-1.0 / 50.0), 1e-5) << "the shared boundary";
  EXPECT_TRUE(at::allclose(w, border_weight_map(s.mask, 3, o, labels)));
  s.mask = at::Tensor();
  try {
    sample_weight_map(s, 3, o);
    ADD_FAILURE() << "a sample without a mask was weighted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("touching.png has no mask"), std::string::npos) << e.what();
  }
  EXPECT_THROW(border_weight_map(labels.ne(0).to(at::kLong), 2, o, labels - 1), Error) << "negative labels";
}

TEST(WeightMap, MatchesTheDefinitionOnRandomTouchingObjects) {
  at::manual_seed(8);
  // Random blobs cut into touching objects by a grid of 8-pixel squares, labels spread out (gaps).
  const at::Tensor blobs = at::avg_pool2d(at::randn({1, 1, 30, 30}), 5, 1, 2)[0][0] > 0.0;
  const at::Tensor square = at::arange(30).div(8, "floor").view({30, 1}) * 4 + at::arange(30).div(8, "floor").view({1, 30});
  const at::Tensor instances = at::where(blobs, square * 3 + 1, at::zeros_like(square));
  const at::Tensor mask = interior_boundary(instances, 1);
  ASSERT_GE(std::get<0>(at::_unique(instances)).size(0), 6);
  WeightMapOptions o;
  o.radius = 12;
  for (const bool balance : {false, true}) {
    o.class_balance = balance;
    const at::Tensor fast = border_weight_map(mask, 3, o, instances), slow = brute_force(mask, 3, o, instances);
    EXPECT_TRUE(at::allclose(fast, slow, /*rtol=*/1e-5, /*atol=*/1e-4)) << (fast - slow).abs().max().item<double>();
  }
}

TEST(WeightMap, ComponentsAreFourConnected) {
  at::Tensor mask = at::zeros({3, 3}, at::kLong);
  mask[0][0] = 1;
  mask[1][1] = 1;  // touches the first only diagonally
  mask[1][2] = 1;
  const at::Tensor c = connected_components(mask.ne(0));
  const int64_t n = c.max().item<int64_t>();
  EXPECT_EQ(n, 2);
  EXPECT_EQ(c[1][1].item<int64_t>(), c[1][2].item<int64_t>());
  EXPECT_NE(c[0][0].item<int64_t>(), c[1][1].item<int64_t>());
}

TEST(WeightMap, FlipsMoveTheMapWithTheMask) {
  at::manual_seed(4);
  const at::Tensor mask = (at::avg_pool2d(at::randn({1, 1, 32, 32}), 5, 1, 2)[0][0] > 0).to(at::kLong);
  at::Tensor image = at::rand({1, 32, 32}), m = mask.clone(), w = border_weight_map(mask, 2);
  AugmentOptions geometric_only;
  geometric_only.crop = 0.0;
  geometric_only.brightness = 0.0;
  geometric_only.elastic = false;
  for (uint64_t seed = 0; seed < 4; ++seed) {
    std::mt19937_64 rng(seed);
    at::Tensor i2 = image, m2 = mask, w2 = w;
    augment_sample(i2, m2, 2, geometric_only, rng, &w2);
    EXPECT_TRUE(at::allclose(w2, border_weight_map(m2, 2), 1e-5, 1e-5)) << "seed " << seed;
  }
}

TEST(WeightMap, WeightedCrossEntropyIsTheWeightedMeanOfPixelLosses) {
  at::manual_seed(5);
  const at::Tensor logits = at::randn({2, 2, 4, 4}), labels = at::randint(2, {2, 4, 4}, at::kLong);
  const at::Tensor ones = at::ones({2, 4, 4});
  EXPECT_NEAR(segmentation_loss(logits, labels, ones).cross_entropy.item<double>(),
              segmentation_loss(logits, labels).cross_entropy.item<double>(), 1e-6);
  // Weight 3 on one pixel and 0 elsewhere: the mean is 3 * that pixel's loss / 32.
  at::Tensor one = at::zeros({2, 4, 4});
  one[1][2][3] = 3.0;
  const at::Tensor log_p = at::log_softmax(logits, 1);
  const double pixel = -log_p[1][labels[1][2][3].item<int64_t>()][2][3].item<double>();
  const LossTerms t = segmentation_loss(logits, labels, one);
  EXPECT_NEAR(t.cross_entropy.item<double>(), 3.0 * pixel / 32.0, 1e-6);
  EXPECT_NEAR(t.dice_loss.item<double>(), segmentation_loss(logits, labels).dice_loss.item<double>(), 1e-7);
}

namespace {

/// Whether each batch's weight map still lies on its labels: weights drawn as 1 + 3 * label must
/// read 1 + 3 * label wherever a pixel's whole 3x3 neighbourhood has one label (the map is
/// resampled smoothly, the labels as classes, so they may differ by a pixel at edges between
/// labels, and at the border, where the neighbourhood is cut). Returns the share of pixels checked.
double expect_weights_on_labels(const Batch& b, const std::string& what) {
  const at::Tensor labels = b.labels.to(at::kFloat).unsqueeze(1);
  const int64_t s = b.labels.size(1);
  const at::Tensor uniform = at::max_pool2d(labels, 3, 1, 0).eq(-at::max_pool2d(-labels, 3, 1, 0)).squeeze(1);
  const at::Tensor inner = [&](const at::Tensor& x) { return x.slice(1, 1, s - 1).slice(2, 1, s - 1); }(b.labels);
  const at::Tensor expected = 1.0 + 3.0 * inner.to(at::kFloat);
  const at::Tensor off = (b.weights.slice(1, 1, s - 1).slice(2, 1, s - 1) - expected).abs().masked_select(uniform);
  EXPECT_GT(off.numel(), 0) << what;
  if (off.numel() > 0) EXPECT_LT(off.max().item<double>(), 0.05) << what << ": the weight map left its labels";
  return static_cast<double>(off.numel()) / static_cast<double>(b.labels.numel());
}

}  // namespace

TEST(WeightMap, BatchesCarryWeightMapsAlignedWithTheirLabels) {
  at::manual_seed(6);
  std::vector<Sample> samples(3);
  for (auto& s : samples) {
    s.image = at::rand({1, 96, 96});
    // Large asymmetric shapes (a flip or a shifted crop moves them): a rectangle and a disc.
    const at::Tensor y = at::arange(96).view({96, 1}), x = at::arange(96).view({1, 96});
    s.mask = ((x.lt(40) & y.lt(60)) | ((x - 70) * (x - 70) + (y - 68) * (y - 68)).lt(18 * 18)).to(at::kLong);
    s.weights = 1.0f + 3.0f * s.mask.to(at::kFloat);
  }
  LoaderOptions o;
  o.batch_size = 2;
  AugmentOptions every;  // flips, crop-and-resize, brightness and elastic warps
  every.elastic = true;
  // Resize mode (the whole image resized to the network) and tile mode (random windows), each
  // plain and augmented, over several steps (other flips, crops and warps).
  for (const Geometry& g : {Geometry{60, 20}, Geometry{60, 20, /*tile=*/true}})
    for (const bool augmented : {false, true}) {
      o.augment = augmented ? std::optional<AugmentOptions>(every) : std::nullopt;
      for (int64_t step = 0; step < 4; ++step) {
        const std::string what = std::string(g.tile ? "tile" : "resize") + (augmented ? " augmented" : "") + " step " +
                                 std::to_string(step);
        const Batch b = make_batch(samples, g, 2, o, step);
        ASSERT_TRUE(b.weights.defined()) << what;
        EXPECT_EQ(b.weights.sizes(), (std::vector<int64_t>{2, 20, 20})) << what;
        EXPECT_GT(expect_weights_on_labels(b, what), 0.3) << what << ": too few interior pixels to check";
      }
    }
  samples[1].weights = at::Tensor();
  o.batch_size = 3;
  EXPECT_THROW(make_batch(samples, Geometry{60, 20}, 2, o, 0), Error);
}

// The check above fails for a map that does not follow its labels (here: flipped).
TEST(WeightMap, AMisalignedWeightMapWouldBeCaught) {
  at::manual_seed(7);
  Batch b;
  b.labels = (at::avg_pool2d(at::randn({2, 1, 40, 40}), 9, 1, 4).squeeze(1) > 0).to(at::kLong);
  b.weights = 1.0f + 3.0f * b.labels.flip({2}).to(at::kFloat);
  ::testing::TestPartResultArray failures;
  {
    ::testing::ScopedFakeTestPartResultReporter reporter(&failures);
    expect_weights_on_labels(b, "flipped");
  }
  EXPECT_GT(failures.size(), 0) << "a flipped weight map passed";
}
