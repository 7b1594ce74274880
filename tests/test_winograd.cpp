// Tests of the Winograd F(4x4, 3x3) and F(6x6, 3x3) convolutions: the optimised transforms against
// their plain references, and whole convolutions against a float64 direct convolution on every
// layer shape of the reference network (at small spatial sizes), ragged and odd sizes, padding,
// bias and ReLU. Each test runs both variants (`kTiles`).
#include "test_support.h"

#include "unet/cpu/winograd.h"
#include "unet/model/winograd_conv.h"
#include "unet/runtime/precision.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <stdexcept>
#include <vector>

using namespace unet;

namespace {

/// max |a - b| relative to the largest |b| (at least 1e-3).
double relative_error(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor x = a.to(at::kDouble).contiguous(), y = b.to(at::kDouble).contiguous();
  return (x - y).abs().max().item<double>() / std::max(1e-3, y.abs().max().item<double>());
}

/// The direct convolution in float64: the reference.
at::Tensor direct64(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, int64_t padding, bool relu) {
  const at::Tensor y = at::conv2d(x.to(at::kDouble), w.to(at::kDouble), b.defined() ? b.to(at::kDouble) : at::Tensor(),
                                  1, padding);
  return relu ? at::relu(y) : y;
}

/// The output tile sides of the two variants: 4, F(4x4, 3x3); 6, F(6x6, 3x3).
constexpr int64_t kTiles[] = {cpu::kWinogradTile, cpu::kWinograd6Tile};

/// The variant's filter transform (optimised, or the reference).
void filter_transform(int64_t tile, bool reference, const at::Tensor& w, at::Tensor& u, int64_t first = 0,
                      int64_t count = -1) {
  const int64_t out = w.size(0), in = w.size(1);
  const auto fn = tile == cpu::kWinograd6Tile ? (reference ? cpu::winograd6_filter_transform_reference
                                                           : cpu::winograd6_filter_transform)
                                              : (reference ? cpu::winograd_filter_transform_reference
                                                           : cpu::winograd_filter_transform);
  fn(w.const_data_ptr<float>(), out, in, u.mutable_data_ptr<float>(), first, count);
}

/// The largest relative error each variant may have against float64 on a layer of the reference
/// network (random He-scaled weights and input; `benchmark --exec-mode layers` at 572 measured
/// F(4x4) 4e-6 to 1e-5 and F(6x6) 7e-6 to 1.8e-5 relative to the largest output).
double conv_tolerance(int64_t tile) { return tile == cpu::kWinograd6Tile ? 1e-4 : 2e-5; }

}  // namespace

TEST(Winograd, GeometryCountsTilesOverTheRaggedEdge) {
  const cpu::WinogradGeometry g{2, 11, 7, 3, 5, 0};  // output 9 x 5
  EXPECT_EQ(g.out_height(), 9);
  EXPECT_EQ(g.out_width(), 5);
  EXPECT_EQ(g.tiles_y(), 3);
  EXPECT_EQ(g.tiles_x(), 2);
  EXPECT_EQ(g.tiles(), 12);
  EXPECT_EQ((cpu::WinogradGeometry{1, 8, 8, 1, 1, 1}.tiles()), 4);  // same padding: 8 x 8 output
  const cpu::WinogradGeometry six{2, 11, 7, 3, 5, 0, 6};  // F(6x6): tiles of 6
  EXPECT_EQ(six.points(), 64);
  EXPECT_EQ(six.tiles_y(), 2);
  EXPECT_EQ(six.tiles_x(), 1);
  EXPECT_EQ(six.tiles(), 4);
}

TEST(Winograd, InputTransformMatchesItsReference) {
  at::manual_seed(1);
  for (const int64_t tile : kTiles)
  for (const int64_t channels : {1, 3, 16, 17, 40}) {
    for (const int64_t pad : {0, 1}) {
      const cpu::WinogradGeometry g{2, 19, 16, channels, 1, pad, tile};
      const at::Tensor x = at::randn({g.batch, g.height, g.width, channels});  // NHWC
      // A block in the middle of the tile list, crossing from the first image into the second.
      const int64_t first = g.tiles() / 2 - 3, count = 7;
      const int64_t plane = count * channels + 5;
      at::Tensor fast = at::full({g.points(), plane}, 99.0f);
      at::Tensor reference = at::full_like(fast, 99.0f);
      cpu::winograd_input_transform(x.const_data_ptr<float>(), g, first, count, fast.mutable_data_ptr<float>(), plane);
      cpu::winograd_input_transform_reference(x.const_data_ptr<float>(), g, first, count,
                                              reference.mutable_data_ptr<float>(), plane);
      EXPECT_LT(relative_error(fast, reference), 1e-6) << "tile " << tile << ", " << channels << " channels, padding " << pad;
    }
  }
}

TEST(Winograd, OutputTransformMatchesItsReferenceAndWritesOnlyInsideTheOutput) {
  at::manual_seed(2);
  for (const int64_t tile : kTiles)
  for (const int64_t channels : {1, 5, 16, 33}) {
    for (const bool relu : {false, true}) {
      const cpu::WinogradGeometry g{2, 9, 12, 1, channels, 0, tile};  // output 7 x 10: ragged both ways
      const int64_t plane = g.tiles() * channels + 3;
      const at::Tensor m = at::randn({g.points(), plane});
      const at::Tensor bias = at::randn({channels});
      at::Tensor fast = at::full({g.batch, g.out_height(), g.out_width(), channels}, 77.0f);
      at::Tensor reference = fast.clone();
      cpu::winograd_output_transform(m.const_data_ptr<float>(), plane, bias.const_data_ptr<float>(), relu, g, 0,
                                     g.tiles(), fast.mutable_data_ptr<float>());
      cpu::winograd_output_transform_reference(m.const_data_ptr<float>(), plane, bias.const_data_ptr<float>(), relu, g,
                                               0, g.tiles(), reference.mutable_data_ptr<float>());
      EXPECT_LT(relative_error(fast, reference), 1e-6) << "tile " << tile << ", " << channels << " channels";
      EXPECT_FALSE((fast == 77.0f).any().item<bool>()) << "every output pixel written once";
      if (relu) EXPECT_GE(fast.min().item<float>(), 0.0f);
    }
  }
}

TEST(Winograd, FilterTransformTimesInputTransformIsTheConvolutionOfOneTile) {
  // One (tile + 2)^2 input, one filter: A^T [(G g G^T) . (B^T d B)] A, through the references,
  // equals the tile x tile valid convolution.
  at::manual_seed(3);
  for (const int64_t tile : kTiles) {
    const int64_t side = tile + 2;
    const at::Tensor d = at::randn({1, side, side, 1}), w = at::randn({1, 1, 3, 3});
    const cpu::WinogradGeometry g{1, side, side, 1, 1, 0, tile};
    at::Tensor u = at::empty({g.points(), 1, 1}), v = at::empty_like(u), y = at::empty({1, tile, tile, 1});
    filter_transform(tile, /*reference=*/true, w, u);
    cpu::winograd_input_transform_reference(d.const_data_ptr<float>(), g, 0, 1, v.mutable_data_ptr<float>(), 1);
    const at::Tensor m = (u * v).contiguous();
    cpu::winograd_output_transform_reference(m.const_data_ptr<float>(), 1, nullptr, false, g, 0, 1,
                                             y.mutable_data_ptr<float>());
    const at::Tensor expected = direct64(d.permute({0, 3, 1, 2}), w, at::Tensor(), 0, false).permute({0, 2, 3, 1});
    // float32 transforms and products: F(6x6)'s matrices (entries up to 32) round more.
    EXPECT_LT(relative_error(y, expected), tile == 6 ? 5e-6 : 1e-6) << "tile " << tile;
  }
}

TEST(Winograd, FilterTransformMatchesItsReference) {
  at::manual_seed(7);
  for (const int64_t tile : kTiles)
  for (const auto& [out, in] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {5, 3}, {16, 2}, {33, 17}}) {
    const at::Tensor w = at::randn({out, in, 3, 3});
    at::Tensor fast = at::full({cpu::winograd_points(tile), in, out}, 99.0f), reference = at::empty_like(fast);
    filter_transform(tile, false, w, fast);
    filter_transform(tile, true, w, reference);
    EXPECT_LT(relative_error(fast, reference), 1e-6) << "tile " << tile << ", " << out << " x " << in;
  }
}

TEST(Winograd, FilterTransformByInputChannelRangesEqualsTheWhole) {
  at::manual_seed(6);
  const int64_t out = 5, in = 7;
  const at::Tensor w = at::randn({out, in, 3, 3});
  for (const int64_t tile : kTiles) {
    at::Tensor whole = at::empty({cpu::winograd_points(tile), in, out}), parts = at::full_like(whole, 99.0f);
    filter_transform(tile, false, w, whole);
    filter_transform(tile, false, w, parts, 0, 3);
    filter_transform(tile, false, w, parts, 3, 4);
    EXPECT_TRUE(at::equal(whole, parts)) << "tile " << tile;
  }
}

TEST(Winograd, ConvolutionMatchesFloat64DirectOnTheReferenceNetworksLayerShapes) {
  c10::InferenceMode guard;
  at::manual_seed(4);
  // (in, out) of the reference network's 3x3 convolutions after the first (1 -> 64), at sizes that
  // give a few blocks of tiles, ragged edges and both paddings; the expanding path's first
  // convolutions take the concatenation (twice the channels).
  const std::vector<std::pair<int64_t, int64_t>> layers = {{64, 64},   {64, 128},  {128, 128}, {128, 256},
                                                           {256, 256}, {256, 512}, {512, 512}, {512, 1024},
                                                           {1024, 1024}, {1024, 512}, {512, 256}, {256, 128},
                                                           {128, 64}};
  int64_t i = 0;
  for (const int64_t tile : kTiles)
  for (const auto& [in, out] : layers) {
    const int64_t batch = 1 + i % 3, size = in >= 512 ? 10 + i % 4 : 19 + i % 5, pad = i % 2;
    const bool relu = i % 3 != 2;
    ++i;
    const at::Tensor x = at::randn({batch, in, size, size + 3}).contiguous(at::MemoryFormat::ChannelsLast);
    const at::Tensor w = at::randn({out, in, 3, 3}) * (1.0 / std::sqrt(9.0 * in)), b = at::randn({out});
    const at::Tensor y = winograd_conv(x, winograd_pack(w, b, tile), pad, relu);
    const at::Tensor expected = direct64(x, w, b, pad, relu);
    ASSERT_EQ(y.sizes(), expected.sizes());
    EXPECT_TRUE(y.is_contiguous(at::MemoryFormat::ChannelsLast));
    EXPECT_LT(relative_error(y, expected), conv_tolerance(tile))
        << "tile " << tile << ", " << in << " -> " << out << ", batch " << batch << ", " << size;
  }
}

TEST(Winograd, BlocksCoverEveryTileOnceEvenlyAndInMultiplesOfTheThreads) {
  struct Case {
    int64_t tiles, block, threads, count;
  };
  // 169 tiles in blocks of 64 on 2 threads: 3 blocks would run as 2 + 1, so 4 of 42-43; 4160 in
  // 64s on 2 threads: 65 -> 66; fewer tiles than a block: one; fewer blocks than threads: as
  // they are; one thread: no rounding.
  for (const Case& c : std::vector<Case>{{169, 64, 2, 4}, {4160, 64, 2, 66}, {25, 64, 2, 1}, {200, 64, 16, 4},
                                         {200, 64, 1, 4}, {1, 64, 2, 1}, {5041, 64, 16, 80}}) {
    const WinogradBlocks b = winograd_blocks(c.tiles, c.block, c.threads);
    EXPECT_EQ(b.count, c.count) << c.tiles << " tiles, block " << c.block << ", " << c.threads << " threads";
    int64_t covered = 0, smallest = c.tiles;
    for (int64_t k = 0; k < b.count; ++k) {
      const int64_t n = b.first(k + 1) - b.first(k);
      EXPECT_EQ(b.first(k), covered);
      EXPECT_LE(n, b.largest);
      covered += n;
      smallest = std::min(smallest, n);
    }
    EXPECT_EQ(covered, c.tiles);
    EXPECT_GE(smallest, b.largest - 1) << "blocks differ by at most one tile";
  }
}

TEST(Winograd, ConvolutionOverManyBlocksOnThreeThreadsMatchesFloat64) {
  c10::InferenceMode guard;
  at::manual_seed(8);
  const int threads = at::get_num_threads();
  at::set_num_threads(3);
  for (const int64_t tile : kTiles) {
    // 64 -> 64 channels (blocks of 64 tiles before the split), 2 x 70 x 75: 2 x 17 x 19 tiles of 4,
    // 2 x 12 x 13 of 6: several blocks, their count rounded up to a multiple of 3.
    const at::Tensor x = at::randn({2, 64, 70, 75}).contiguous(at::MemoryFormat::ChannelsLast);
    const at::Tensor w = at::randn({64, 64, 3, 3}) * (1.0 / std::sqrt(9.0 * 64)), b = at::randn({64});
    EXPECT_LT(relative_error(winograd_conv(x, winograd_pack(w, b, tile), 0, true), direct64(x, w, b, 0, true)),
              conv_tolerance(tile))
        << "tile " << tile;
  }
  at::set_num_threads(threads);
}

TEST(Winograd, ConvolutionTakesAnyLayoutFewChannelsNoBiasAndTheSmallestInputs) {
  c10::InferenceMode guard;
  at::manual_seed(5);
  struct Case {
    int64_t batch, in, out, height, width, pad;
  };
  for (const int64_t tile : kTiles)
  for (const Case& c : std::vector<Case>{{1, 1, 3, 3, 3, 0}, {4, 3, 8, 5, 9, 0}, {2, 2, 17, 1, 1, 1}, {3, 7, 5, 6, 6, 1}}) {
    const at::Tensor x = at::randn({c.batch, c.in, c.height, c.width});  // contiguous, not channels-last
    const at::Tensor w = at::randn({c.out, c.in, 3, 3});
    const at::Tensor y = winograd_conv(x, winograd_pack(w, at::Tensor(), tile), c.pad, false);
    EXPECT_LT(relative_error(y, direct64(x, w, at::Tensor(), c.pad, false)), tile == 6 ? 5e-5 : 1e-5)
        << "tile " << tile << ", " << c.in << " -> " << c.out << ", " << c.height << " x " << c.width;
  }
}

TEST(Winograd, RefusesWhatItCannotCompute) {
  EXPECT_THROW(winograd_pack(at::zeros({4, 2, 2, 2}), at::Tensor()), Error);
  EXPECT_THROW(winograd_pack(at::zeros({4, 2, 3, 3}), at::Tensor(), 5), Error);  // tiles of 4 or 6
  // The transforms refuse a geometry of a variant they do not compute.
  std::vector<float> image(8 * 8), points(64 * 4);
  const cpu::WinogradGeometry five{1, 8, 8, 1, 1, 0, 5}, six{1, 8, 8, 1, 1, 0, 6};
  EXPECT_THROW(cpu::winograd_input_transform(image.data(), five, 0, 1, points.data(), 1), std::invalid_argument);
  EXPECT_THROW(cpu::winograd_output_gradient_transform(image.data(), nullptr, six, 0, 1, points.data(), 1),
               std::invalid_argument)
      << "training's transforms are F(4x4)'s only";
  const WinogradWeights w = winograd_pack(at::zeros({4, 2, 3, 3}), at::Tensor());
  EXPECT_THROW(winograd_conv(at::zeros({1, 3, 8, 8}), w, 0, true), Error);  // channels
  EXPECT_THROW(winograd_conv(at::zeros({1, 2, 2, 8}), w, 0, true), Error);  // smaller than the filter
}

TEST(Winograd, TransformsRunWithTheWidestInstructionSetTheCpuHas) {
  // The copy is chosen from the CPU's feature flags, not its model: a CPU with AVX2 and FMA (and
  // not the full AVX-512 set) must get the AVX2 copy.
  const std::string isa = cpu::winograd_isa();
  const bool avx512 = cpu_has_flag("avx512f") && cpu_has_flag("avx512vl") && cpu_has_flag("avx512bw") &&
                      cpu_has_flag("avx512dq");
  const bool avx2 = cpu_has_flag("avx2") && cpu_has_flag("fma");
  if (cpu_flags().empty()) GTEST_SKIP() << "no /proc/cpuinfo flags to compare with";
  EXPECT_EQ(isa, avx512 ? "AVX-512" : avx2 ? "AVX2+FMA" : "x86-64 (no AVX2)");
  EXPECT_EQ(std::string(winograd_instruction_set()), isa);
}
