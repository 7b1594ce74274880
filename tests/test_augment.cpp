// Tests that augmentation keeps images and masks aligned and is deterministic.
#include "test_support.h"

#include "unet/data/augment.h"
#include "unet/data/color_augment.h"
#include "unet/data/tiles.h"

#include <algorithm>
#include <filesystem>
#include <set>
#include <vector>

#include <ATen/ATen.h>

using namespace unet;

namespace {

/// An image whose mask is a function of its pixels: bright blobs (mask 1) on a dark ground (mask 0).
std::pair<at::Tensor, at::Tensor> blob_image(int64_t h, int64_t w) {
  at::manual_seed(11);
  at::Tensor field = at::upsample_bicubic2d(at::randn({1, 1, 6, 8}), {h, w}, /*align_corners=*/true)[0][0];
  const at::Tensor mask = (field > 0).to(at::kLong);
  const at::Tensor image = at::where(mask.to(at::kBool), at::full({h, w}, 0.9f), at::full({h, w}, -0.9f)).unsqueeze(0);
  return {image, mask};
}

/// Share of pixels whose mask disagrees with (image > 0), ignoring a 1-pixel band around edges
/// where interpolation legitimately mixes the two levels.
double disagreement(const at::Tensor& image, const at::Tensor& mask) {
  const at::Tensor from_image = (image[0] > 0).to(at::kLong);
  const at::Tensor edge = at::max_pool2d(mask.to(at::kFloat).unsqueeze(0), {3, 3}, {1, 1}, {1, 1})[0] !=
                          -at::max_pool2d(-mask.to(at::kFloat).unsqueeze(0), {3, 3}, {1, 1}, {1, 1})[0];
  const at::Tensor wrong = (from_image != mask) & edge.logical_not();
  return wrong.to(at::kDouble).mean().item<double>();
}

}  // namespace

TEST(Augment, ImageAndMaskStayAlignedUnderEveryTransform) {
  const auto [image0, mask0] = blob_image(96, 80);
  ASSERT_EQ(disagreement(image0, mask0), 0.0);
  int changed = 0;
  for (uint64_t seed = 0; seed < 12; ++seed) {
    at::Tensor image = image0.clone(), mask = mask0.clone();
    std::mt19937_64 rng(seed);
    augment_sample(image, mask, 2, AugmentOptions{}, rng);
    EXPECT_EQ(image.sizes(), image0.sizes());
    EXPECT_EQ(mask.sizes(), mask0.sizes());
    EXPECT_LT(disagreement(image, mask), 0.002) << "seed " << seed;
    const at::Tensor values = std::get<0>(at::_unique(mask));
    EXPECT_TRUE(((values == 0) | (values == 1)).all().item<bool>()) << "mask must stay binary";
    changed += !at::equal(mask, mask0);
  }
  EXPECT_EQ(changed, 12) << "every draw changes the geometry";
}

TEST(Augment, MisalignmentWouldBeCaught) {
  // The check above would fail if only the image were transformed.
  const auto [image0, mask0] = blob_image(96, 80);
  EXPECT_GT(disagreement(image0.flip({2}), mask0), 0.05);
}

TEST(Augment, DeterministicForTheSameRngState) {
  const auto [image0, mask0] = blob_image(64, 64);
  at::Tensor a = image0.clone(), am = mask0.clone(), b = image0.clone(), bm = mask0.clone();
  std::mt19937_64 r1(42), r2(42);
  augment_sample(a, am, 2, AugmentOptions{}, r1);
  augment_sample(b, bm, 2, AugmentOptions{}, r2);
  EXPECT_TRUE(at::equal(a, b));
  EXPECT_TRUE(at::equal(am, bm));
}

TEST(Augment, BrightnessShiftIsBoundedAndClipped) {
  AugmentOptions o;
  o.flips = false;
  o.crop = 0.0;
  o.elastic = false;
  std::vector<float> shifts;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    at::Tensor image = at::zeros({1, 8, 8}), mask;
    std::mt19937_64 rng(seed);
    augment_sample(image, mask, 2, o, rng);
    const float shift = image[0][0][0].item<float>();
    shifts.push_back(shift);
    EXPECT_LE(std::abs(shift), 0.2f + 1e-6f);
    EXPECT_TRUE(at::allclose(image, at::full_like(image, shift)));
    // The same draw on a white image: raised pixels clip at 1, lowered ones move by the shift.
    at::Tensor bright = at::ones({1, 4, 4});
    std::mt19937_64 rng2(seed);
    augment_sample(bright, mask, 2, o, rng2);
    EXPECT_TRUE(at::allclose(bright, at::full_like(bright, std::min(1.0f, 1.0f + shift)), 0, 1e-6)) << "seed " << seed;
  }
  // The shift happens: drawn anew per seed, of both signs, and spread over most of [-0.2, 0.2]
  // (20 uniform draws: all in [-0.1, 0.1] has probability 2^-20). A brightness that does nothing fails here.
  const auto [low, high] = std::minmax_element(shifts.begin(), shifts.end());
  EXPECT_LT(*low, 0.0f);
  EXPECT_GT(*high, 0.0f);
  EXPECT_GT(std::max(-*low, *high), 0.1f);
  EXPECT_EQ(std::set<float>(shifts.begin(), shifts.end()).size(), shifts.size()) << "one shift for several seeds";
}

TEST(Augment, ElasticDeformationMovesPixelsByAboutSigma) {
  AugmentOptions o;
  o.flips = false;
  o.crop = 0.0;
  o.brightness = 0.0;
  // A horizontal ramp: the warped value minus the original is the horizontal displacement.
  const int64_t w = 201;
  at::Tensor ramp = at::linspace(-1, 1, w).view({1, 1, w}).expand({1, 101, w}).contiguous();
  double total = 0;
  for (uint64_t seed = 0; seed < 8; ++seed) {
    at::Tensor image = ramp.clone(), mask;
    std::mt19937_64 rng(seed);
    augment_sample(image, mask, 2, o, rng);
    const at::Tensor inner = (image - ramp).narrow(2, 40, w - 80) * ((w - 1) / 2.0);  // pixels
    total += inner.abs().mean().item<double>();
  }
  // Mean |N(0, 10)| is 8; bicubic interpolation between grid nodes shrinks it somewhat.
  const double mean_shift = total / 8;
  EXPECT_GT(mean_shift, 2.0);
  EXPECT_LT(mean_shift, 15.0);
}

TEST(ColorAugment, StainUnmixingRoundTripsAndFindsAPureStain) {
  at::manual_seed(3);
  const at::Tensor rgb = at::rand({3, 5, 7}) * (1.0 - 1.0 / 255.0) + 1.0 / 255.0;
  EXPECT_LT((stains_to_rgb(rgb_to_stains(rgb)) - rgb).abs().max().item<float>(), 1e-4);
  // Haematoxylin alone, optical density 0.5 along its (normalised) vector: unmixed as (0.5, 0, 0).
  const at::Tensor h = at::tensor({0.650, 0.704, 0.286}, at::kFloat);
  const at::Tensor pure = at::exp(-0.5 * h / h.norm()).view({3, 1, 1});
  const at::Tensor stains = rgb_to_stains(pure).flatten();
  EXPECT_NEAR(stains[0].item<float>(), 0.5, 1e-4);
  EXPECT_NEAR(stains[1].item<float>(), 0.0, 1e-4);
  EXPECT_NEAR(stains[2].item<float>(), 0.0, 1e-4);
}

TEST(ColorAugment, ChangesIntensitiesNotGeometryAndIsDeterministic) {
  const auto [gray, mask0] = blob_image(64, 48);
  const at::Tensor rgb0 = at::cat({gray, gray * 0.5, -gray}, 0);  // a coloured version of the blobs
  AugmentOptions geometry_only;
  AugmentOptions with_color = geometry_only;
  with_color.color = true;
  for (const at::Tensor& image0 : {gray, rgb0}) {
    at::Tensor a = image0.clone(), b = image0.clone(), c = image0.clone(), ma = mask0.clone(), mb = mask0.clone(), mc = mask0.clone();
    std::mt19937_64 r1(5), r2(5), r3(5);
    augment_sample(a, ma, 2, geometry_only, r1);
    augment_sample(b, mb, 2, with_color, r2);
    augment_sample(c, mc, 2, with_color, r3);
    // The geometric draws are the same with and without the jitter: the same masks.
    EXPECT_TRUE(at::equal(ma, mb));
    EXPECT_TRUE(at::equal(b, c));  // the same rng state, the same image
    EXPECT_GT((a - b).abs().max().item<float>(), 1e-3);  // the jitter did something
    EXPECT_LE(b.abs().max().item<float>(), 1.0f);
    // Alignment survives: bright blobs stay where the mask says (the jitter keeps their order).
    EXPECT_LT(disagreement(b.mean(0, true) - b.mean(), mb), 0.02);
  }
}

TEST(ColorAugment, ColourJittersLeaveOneChannelImagesAlone) {
  const auto [gray, mask] = blob_image(32, 32);
  ColorAugmentOptions only_colour;
  only_colour.contrast = only_colour.gamma = only_colour.blur = only_colour.noise = 0.0;
  std::mt19937_64 rng(1);
  EXPECT_TRUE(at::allclose(color_augment(gray, only_colour, rng), gray, 1e-6, 1e-6));
  // On RGB they act.
  const at::Tensor rgb = at::cat({gray, gray * 0.3, gray * -0.2}, 0);
  EXPECT_GT((color_augment(rgb, only_colour, rng) - rgb).abs().max().item<float>(), 1e-3);
}

TEST(ColorAugment, NeedsTheAugmentation) {
  unet::test::TempDir dir;
  const auto r = unet::test::run_unet("train --synthetic --max-steps 1 --depth 2 --filters 4 --input-size 60 --quiet --color-augment --model-dir " +
                                      dir.file("m"));
  unet::test::expect_one_line_error(r, "--color-augment is jitter within the augmentation: add --augment");
  EXPECT_FALSE(std::filesystem::exists(dir.file("m/checkpoint.pt")));
}

TEST(Augment, TileEqualsTheTileOfTheAugmentedImage) {
  // augment_tile warps only the tile's region; it must give what augmenting the whole image and
  // cutting the tile gives (same draws): images to float rounding, masks and weights alike, for
  // tiles inside, across the edge (mirrored) and larger than the image, with each transform.
  const auto [image3, mask] = blob_image(70, 90);
  const at::Tensor image = at::cat({image3, image3.flip({1}), image3 * 0.5}, 0);  // three channels
  const at::Tensor weights = at::rand({70, 90});
  struct Case {
    int64_t input, output;
    bool crop, elastic;
  };
  for (const Case& c : {Case{44, 20, true, true}, Case{44, 44, true, true}, Case{124, 100, true, true},
                        Case{44, 20, false, true}, Case{44, 20, true, false}, Case{60, 36, false, false}}) {
    AugmentOptions o;
    o.crop = c.crop ? 0.3 : 0.0;
    o.elastic = c.elastic;
    for (uint64_t seed = 0; seed < 8; ++seed) {
      std::mt19937_64 a(seed), b(seed);
      at::Tensor img = image, m = mask, w = weights, w_window, w_tile;
      augment_sample(img, m, 3, o, a, &w);
      const auto [want, want_mask] = random_tile(img, m, c.input, c.output, a, w, &w_window);
      const auto [got, got_mask] = augment_tile(image, mask, 3, o, c.input, c.output, b, weights, &w_tile);
      const std::string what = "tile " + std::to_string(c.input) + ", seed " + std::to_string(seed);
      ASSERT_EQ(got.sizes(), want.sizes()) << what;
      EXPECT_LT((got - want).abs().max().item<float>(), 1e-4) << what;
      // Class ties at a blob's edge may round either way: a handful of pixels at most.
      EXPECT_LE((got_mask != want_mask).sum().item<int64_t>(), 2) << what;
      EXPECT_LT((w_tile - w_window).abs().max().item<float>(), 1e-4) << what;
      EXPECT_EQ(a(), b()) << what;  // the same draws were made
    }
  }
}
