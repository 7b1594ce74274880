// Tests of the Winograd F(4x4, 3x3) convolution: the optimised transforms against their plain
// references, and whole convolutions against a float64 direct convolution on every layer shape of
// the reference network (at small spatial sizes), ragged and odd sizes, padding, bias and ReLU.
#include "test_support.h"

#include "unet/cpu/winograd.h"
#include "unet/model/winograd_conv.h"
#include "unet/runtime/precision.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

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

}  // namespace

TEST(Winograd, GeometryCountsTilesOverTheRaggedEdge) {
  const cpu::WinogradGeometry g{2, 11, 7, 3, 5, 0};  // output 9 x 5
  EXPECT_EQ(g.out_height(), 9);
  EXPECT_EQ(g.out_width(), 5);
  EXPECT_EQ(g.tiles_y(), 3);
  EXPECT_EQ(g.tiles_x(), 2);
  EXPECT_EQ(g.tiles(), 12);
  EXPECT_EQ((cpu::WinogradGeometry{1, 8, 8, 1, 1, 1}.tiles()), 4);  // same padding: 8 x 8 output
}

TEST(Winograd, InputTransformMatchesItsReference) {
  at::manual_seed(1);
  for (const int64_t channels : {1, 3, 16, 17, 40}) {
    for (const int64_t pad : {0, 1}) {
      const cpu::WinogradGeometry g{2, 13, 10, channels, 1, pad};
      const at::Tensor x = at::randn({g.batch, g.height, g.width, channels});  // NHWC
      // A block in the middle of the tile list, crossing from the first image into the second.
      const int64_t first = g.tiles() / 2 - 3, count = 7;
      const int64_t plane = count * channels + 5;
      at::Tensor fast = at::full({cpu::kWinogradPoints, plane}, 99.0f);
      at::Tensor reference = at::full_like(fast, 99.0f);
      cpu::winograd_input_transform(x.const_data_ptr<float>(), g, first, count, fast.mutable_data_ptr<float>(), plane);
      cpu::winograd_input_transform_reference(x.const_data_ptr<float>(), g, first, count,
                                              reference.mutable_data_ptr<float>(), plane);
      EXPECT_LT(relative_error(fast, reference), 1e-6) << channels << " channels, padding " << pad;
    }
  }
}

TEST(Winograd, OutputTransformMatchesItsReferenceAndWritesOnlyInsideTheOutput) {
  at::manual_seed(2);
  for (const int64_t channels : {1, 5, 16, 33}) {
    for (const bool relu : {false, true}) {
      const cpu::WinogradGeometry g{2, 9, 12, 1, channels, 0};  // output 7 x 10: ragged both ways
      const int64_t plane = g.tiles() * channels + 3;
      const at::Tensor m = at::randn({cpu::kWinogradPoints, plane});
      const at::Tensor bias = at::randn({channels});
      at::Tensor fast = at::full({g.batch, g.out_height(), g.out_width(), channels}, 77.0f);
      at::Tensor reference = fast.clone();
      cpu::winograd_output_transform(m.const_data_ptr<float>(), plane, bias.const_data_ptr<float>(), relu, g, 0,
                                     g.tiles(), fast.mutable_data_ptr<float>());
      cpu::winograd_output_transform_reference(m.const_data_ptr<float>(), plane, bias.const_data_ptr<float>(), relu, g,
                                               0, g.tiles(), reference.mutable_data_ptr<float>());
      EXPECT_LT(relative_error(fast, reference), 1e-6) << channels << " channels";
      EXPECT_FALSE((fast == 77.0f).any().item<bool>()) << "every output pixel written once";
      if (relu) EXPECT_GE(fast.min().item<float>(), 0.0f);
    }
  }
}

TEST(Winograd, FilterTransformTimesInputTransformIsTheConvolutionOfOneTile) {
  // One 6x6 input, one filter: A^T [(G g G^T) . (B^T d B)] A, through the references, equals the
  // 4x4 valid convolution.
  at::manual_seed(3);
  const at::Tensor d = at::randn({1, 6, 6, 1}), w = at::randn({1, 1, 3, 3});
  const cpu::WinogradGeometry g{1, 6, 6, 1, 1, 0};
  at::Tensor u = at::empty({cpu::kWinogradPoints, 1, 1}), v = at::empty_like(u), y = at::empty({1, 4, 4, 1});
  cpu::winograd_filter_transform(w.const_data_ptr<float>(), 1, 1, u.mutable_data_ptr<float>());
  cpu::winograd_input_transform_reference(d.const_data_ptr<float>(), g, 0, 1, v.mutable_data_ptr<float>(), 1);
  const at::Tensor m = (u * v).contiguous();
  cpu::winograd_output_transform_reference(m.const_data_ptr<float>(), 1, nullptr, false, g, 0, 1,
                                           y.mutable_data_ptr<float>());
  const at::Tensor expected = direct64(d.permute({0, 3, 1, 2}), w, at::Tensor(), 0, false).permute({0, 2, 3, 1});
  EXPECT_LT(relative_error(y, expected), 1e-6);
}

TEST(Winograd, FilterTransformMatchesItsReference) {
  at::manual_seed(7);
  for (const auto& [out, in] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {5, 3}, {16, 2}, {33, 17}}) {
    const at::Tensor w = at::randn({out, in, 3, 3});
    at::Tensor fast = at::full({cpu::kWinogradPoints, in, out}, 99.0f), reference = at::empty_like(fast);
    cpu::winograd_filter_transform(w.const_data_ptr<float>(), out, in, fast.mutable_data_ptr<float>());
    cpu::winograd_filter_transform_reference(w.const_data_ptr<float>(), out, in, reference.mutable_data_ptr<float>());
    EXPECT_LT(relative_error(fast, reference), 1e-6) << out << " x " << in;
  }
}

TEST(Winograd, FilterTransformByInputChannelRangesEqualsTheWhole) {
  at::manual_seed(6);
  const int64_t out = 5, in = 7;
  const at::Tensor w = at::randn({out, in, 3, 3});
  at::Tensor whole = at::empty({cpu::kWinogradPoints, in, out}), parts = at::full_like(whole, 99.0f);
  cpu::winograd_filter_transform(w.const_data_ptr<float>(), out, in, whole.mutable_data_ptr<float>());
  cpu::winograd_filter_transform(w.const_data_ptr<float>(), out, in, parts.mutable_data_ptr<float>(), 0, 3);
  cpu::winograd_filter_transform(w.const_data_ptr<float>(), out, in, parts.mutable_data_ptr<float>(), 3, 4);
  EXPECT_TRUE(at::equal(whole, parts));
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
  for (const auto& [in, out] : layers) {
    const int64_t batch = 1 + i % 3, size = in >= 512 ? 10 + i % 4 : 19 + i % 5, pad = i % 2;
    const bool relu = i % 3 != 2;
    ++i;
    const at::Tensor x = at::randn({batch, in, size, size + 3}).contiguous(at::MemoryFormat::ChannelsLast);
    const at::Tensor w = at::randn({out, in, 3, 3}) * (1.0 / std::sqrt(9.0 * in)), b = at::randn({out});
    const at::Tensor y = winograd_conv(x, winograd_pack(w, b), pad, relu);
    const at::Tensor expected = direct64(x, w, b, pad, relu);
    ASSERT_EQ(y.sizes(), expected.sizes());
    EXPECT_TRUE(y.is_contiguous(at::MemoryFormat::ChannelsLast));
    EXPECT_LT(relative_error(y, expected), 2e-5) << in << " -> " << out << ", batch " << batch << ", " << size;
  }
}

TEST(Winograd, ConvolutionTakesAnyLayoutFewChannelsNoBiasAndTheSmallestInputs) {
  c10::InferenceMode guard;
  at::manual_seed(5);
  struct Case {
    int64_t batch, in, out, height, width, pad;
  };
  for (const Case& c : std::vector<Case>{{1, 1, 3, 3, 3, 0}, {4, 3, 8, 5, 9, 0}, {2, 2, 17, 1, 1, 1}, {3, 7, 5, 6, 6, 1}}) {
    const at::Tensor x = at::randn({c.batch, c.in, c.height, c.width});  // contiguous, not channels-last
    const at::Tensor w = at::randn({c.out, c.in, 3, 3});
    const at::Tensor y = winograd_conv(x, winograd_pack(w, at::Tensor()), c.pad, false);
    EXPECT_LT(relative_error(y, direct64(x, w, at::Tensor(), c.pad, false)), 1e-5)
        << c.in << " -> " << c.out << ", " << c.height << " x " << c.width;
  }
}

TEST(Winograd, RefusesWhatItCannotCompute) {
  EXPECT_THROW(winograd_pack(at::zeros({4, 2, 2, 2}), at::Tensor()), Error);
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
