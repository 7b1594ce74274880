// Tests of overlap-tile prediction: mirroring, tile placement, equality with one whole-image pass.
#include "test_support.h"

#include "unet/data/tiles.h"
#include "unet/infer/output.h"
#include "unet/infer/predictor.h"
#include "unet/infer/tiled.h"
#include "unet/runtime/error.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

using namespace unet;

TEST(Tiling, MirrorIndicesReflectWithoutRepeatingTheEdge) {
  EXPECT_TRUE(at::equal(mirror_indices(5, -2, 9), at::tensor({2, 1, 0, 1, 2, 3, 4, 3, 2}, at::kLong)));
  EXPECT_TRUE(at::equal(mirror_indices(1, -3, 4), at::zeros({4}, at::kLong)));
  EXPECT_TRUE(at::equal(mirror_indices(2, -3, 6), at::tensor({1, 0, 1, 0, 1, 0}, at::kLong)));
}

TEST(Tiling, OriginsCoverTheImage) {
  EXPECT_EQ(tile_origins(1000, 388, 384), (std::vector<int64_t>{0, 384, 612}));
  EXPECT_EQ(tile_origins(388, 388, 384), (std::vector<int64_t>{0}));
  EXPECT_EQ(tile_origins(10, 388, 384), (std::vector<int64_t>{0}));
  // The stride is rounded down to a multiple of 2^depth.
  TileOptions t;
  t.input = 572;  // the reference network's tile (388 out)
  t.overlap = 10;
  EXPECT_EQ(tile_stride(UNetOptions(), t), 368);
  t.overlap = 400;
  EXPECT_THROW(tile_stride(UNetOptions(), t), Error);
}

namespace {

/// Softmax of one pass over a 68x68 image mirror-padded by the 20-pixel margin of 60 -> 20 tiles
/// (108, a legal size whose output is 68): what tiling must reproduce.
at::Tensor whole_image_pass(UNet& net, const at::Tensor& image) {
  const at::Tensor idx = mirror_indices(68, -20, 108);
  return at::softmax(net->forward(image.index_select(1, idx).index_select(2, idx).unsqueeze(0)), 1)[0];
}

}  // namespace

TEST(Tiling, TilesEqualOneWholeImagePass) {
  at::manual_seed(2);
  // The paper's 2x2 up-convolution keeps the network exactly shift-equivariant (by 2^depth);
  // the reference's padded 3x3 one does not at tile edges (see the next test).
  UNet net(UNetOptions().depth(2).filters(4).up_kernel(2));
  net->eval();
  c10::InferenceMode guard;
  // Tiles of 60 -> 20 with stride 16 at 0, 16, 32, 48 cover 68 pixels exactly.
  const at::Tensor image = at::rand({1, 68, 68}) * 2 - 1;
  TileOptions t;
  t.input = 60;
  t.overlap = 4;
  t.batch = 3;
  auto forward = [&](const at::Tensor& x) { return net->forward(x); };
  const at::Tensor whole = whole_image_pass(net, image);
  ASSERT_EQ(whole.sizes(), (std::vector<int64_t>{2, 68, 68}));
  for (Blend blend : {Blend::kUniform, Blend::kGaussian}) {
    t.blend = blend;
    const at::Tensor tiled = predict_tiled(forward, net->options(), image, t);
    EXPECT_LT((tiled - whole).abs().max().item<float>(), 1e-5);
  }
}

TEST(Tiling, ReferenceUpSamplingStaysCloseToOneWholeImagePass) {
  at::manual_seed(2);
  UNet net(UNetOptions().depth(2).filters(4));  // 3x3 stride-2 transposed convolution, 'same' padding
  net->eval();
  c10::InferenceMode guard;
  const at::Tensor image = at::rand({1, 68, 68}) * 2 - 1;
  TileOptions t;
  t.input = 60;
  t.overlap = 4;
  const at::Tensor tiled = predict_tiled([&](const at::Tensor& x) { return net->forward(x); }, net->options(), image, t);
  const at::Tensor whole = whole_image_pass(net, image);
  // The last row and column of each up-sampled map miss the contribution of the pixel beyond
  // the tile, so tiles differ slightly from the whole pass near their far edges; the Gaussian
  // blend gives those edges little weight.
  const float difference = (tiled - whole).abs().max().item<float>();
  EXPECT_GT(difference, 0.0f);
  EXPECT_LT(difference, 1e-3f);
}

TEST(Tiling, AnySizeFromOnePixelUpAndNonSquare) {
  UNet net(UNetOptions().depth(2).filters(4));
  net->eval();
  c10::InferenceMode guard;
  TileOptions t;
  t.input = 60;
  auto forward = [&](const at::Tensor& x) { return net->forward(x); };
  for (auto [h, w] : {std::pair<int64_t, int64_t>{1, 1}, {7, 300}, {45, 21}}) {
    const at::Tensor p = predict_tiled(forward, net->options(), at::rand({1, h, w}), t);
    EXPECT_EQ(p.sizes(), (std::vector<int64_t>{2, h, w}));
    EXPECT_TRUE(at::allclose(p.sum(0), at::ones({h, w}), 1e-5, 1e-5));
  }
  EXPECT_THROW(predict_tiled(forward, net->options(), at::rand({1, 0, 5}), t), Error);
}

TEST(Tiling, DihedralTransformsInvert) {
  const at::Tensor x = at::rand({2, 3, 5, 5});
  std::vector<at::Tensor> seen;
  for (int k = 0; k < 8; ++k) {
    const at::Tensor y = dihedral(x, k, false);
    EXPECT_TRUE(at::equal(dihedral(y, k, true), x)) << k;
    for (const auto& s : seen) EXPECT_FALSE(at::equal(s, y)) << "transform " << k << " repeats";
    seen.push_back(y);
  }
}

TEST(Tiling, TtaAveragesTheEightViews) {
  at::manual_seed(5);
  UNet net(UNetOptions().depth(2).filters(4));
  net->eval();
  c10::InferenceMode guard;
  TileOptions t;
  t.input = 60;
  auto forward = [&](const at::Tensor& x) { return net->forward(x); };
  const at::Tensor image = at::rand({1, 20, 20});
  at::Tensor expected = at::zeros({2, 20, 20});
  for (int k = 0; k < 8; ++k) {
    // Transforming a square image transforms its prediction: predict each view, map it back.
    expected += dihedral(predict_tiled(forward, net->options(), dihedral(image, k, false), t), k, true);
  }
  t.tta = true;
  EXPECT_TRUE(at::allclose(predict_tiled(forward, net->options(), image, t), expected / 8, 1e-4, 1e-5));
}

// Resize mode with test-time augmentation against an independent reference: the image (already
// the output side, so that resizing keeps it) padded by the margin with zeros as resize mode does,
// the network run on each of the 8 flips and rotations (at::flip and at::rot90 here, not the
// library's `dihedral`), each softmax mapped back, and the 8 averaged.
TEST(Tiling, ResizeModeTtaAveragesTheEightViewsOfTheWholeImage) {
  at::manual_seed(6);
  UNet net(UNetOptions().depth(2).filters(4));
  net->eval();
  Sample s;
  s.image = at::rand({1, 20, 20}) * 2 - 1;
  const auto predict = [&](bool tta) {
    Predictor predictor(net, geometry_of(net->options(), 60), c10::Device(c10::kCPU), /*batch_size=*/1, /*channels_last=*/false);
    predictor.use_cpu_engine(false);  // the modules' path, as the reference below runs them
    predictor.use_tta(tta);
    return predictor.predict({s})[0];
  };
  const at::Tensor got = predict(true), plain = predict(false);
  c10::InferenceMode guard;
  const at::Tensor x = at::constant_pad_nd(s.image, {20, 20, 20, 20}, 0.0).unsqueeze(0);
  at::Tensor sum = at::zeros({2, 20, 20});
  for (int k = 0; k < 8; ++k) {
    const int64_t turns = k % 4;
    const bool flip = k >= 4;
    const at::Tensor view = at::rot90(flip ? x.flip({3}) : x, turns, {2, 3});
    const at::Tensor back = at::rot90(at::softmax(net->forward(view), 1), -turns, {2, 3});
    sum += (flip ? back.flip({3}) : back)[0];
  }
  ASSERT_EQ(got.sizes(), sum.sizes());
  EXPECT_TRUE(at::allclose(got, sum / 8, 1e-4, 1e-5)) << "max difference " << (got - sum / 8).abs().max().item<double>();
  EXPECT_GT((got - plain).abs().max().item<double>(), 1e-3) << "TTA changed nothing: the views were not averaged";
}

TEST(Tiling, RandomTrainingTileKeepsImageAndLabelsAligned) {
  const at::Tensor image = at::rand({1, 50, 70}) * 2 - 1;
  const at::Tensor mask = (image[0] > 0).to(at::kLong);
  std::mt19937_64 rng(1);
  for (int i = 0; i < 10; ++i) {
    const auto [tile, labels] = random_tile(image, mask, 60, 20, rng);
    EXPECT_EQ(tile.sizes(), (std::vector<int64_t>{1, 60, 60}));
    EXPECT_EQ(labels.sizes(), (std::vector<int64_t>{20, 20}));
    // The labels are those of the tile's centre window (the network's output region).
    EXPECT_TRUE(at::equal((tile[0].narrow(0, 20, 20).narrow(1, 20, 20) > 0).to(at::kLong), labels));
  }
}
