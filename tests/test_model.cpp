// Tests of the U-Net architecture: reference shapes and parameter count, legal-size arithmetic.
#include "test_support.h"

#include "cuda/channel_cursor.cuh"
#include "unet/model/geometry.h"
#include "unet/model/loss.h"
#include "unet/model/ops.h"
#include "unet/model/unet.h"
#include "unet/runtime/error.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

using namespace unet;

TEST(Model, ReferenceNetworkHasTheReferenceParameterCount) {
  UNet net;  // defaults are the reference network
  EXPECT_EQ(net->parameter_count(), 34512258);
}

TEST(Model, PaperUpSamplingChangesOnlyTheTransposedConvolutions) {
  UNet ref, paper(UNetOptions().up_kernel(2));
  // Each 3x3 transposed convolution (c -> c/2) has 9c^2/2 weights, a 2x2 one 4c^2/2.
  int64_t difference = 0;
  for (int64_t c : {1024, 512, 256, 128}) difference += (9 - 4) * c * (c / 2);
  EXPECT_EQ(ref->parameter_count() - paper->parameter_count(), difference);
}

TEST(Model, ReferenceNetworkMaps572To388) {
  UNet net;
  net->eval();
  c10::InferenceMode guard;
  const at::Tensor y = net->forward(at::randn({1, 1, 572, 572}));
  EXPECT_EQ(y.sizes(), (std::vector<int64_t>{1, 2, 388, 388}));
}

TEST(Model, OutputShapeFollowsOptions) {
  UNet net(UNetOptions().in_channels(3).classes(4).depth(2).filters(4).padding(Padding::kSame));
  net->eval();
  c10::InferenceMode guard;
  const at::Tensor y = net->forward(at::randn({2, 3, 64, 48}));
  EXPECT_EQ(y.sizes(), (std::vector<int64_t>{2, 4, 64, 48}));
}

TEST(Geometry, ReferenceSizes) {
  const UNetOptions ref;
  EXPECT_EQ(output_size(ref, 572), 388);
  EXPECT_EQ(minimum_input_size(ref), 188);
  EXPECT_EQ(output_size(ref, 188), 4);
  // Valid padding shrinks by 184 at every legal size of this depth; legal sizes step by 16.
  EXPECT_EQ(output_size(ref, 572 + 16), 388 + 16);
  EXPECT_EQ(input_size_for_output(ref, 388), 572);
  EXPECT_EQ(input_size_for_output(ref, 389), 588);
}

TEST(Geometry, IllegalSizeNamesNearestLegalOnes) {
  const UNetOptions ref;
  EXPECT_EQ(output_size_or_invalid(ref, 573), -1);
  EXPECT_EQ(nearest_legal_inputs(ref, 573), std::make_pair(int64_t{572}, int64_t{588}));
  try {
    output_size(ref, 573);
    FAIL() << "573 must be rejected";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("572"), std::string::npos) << m;
    EXPECT_NE(m.find("588"), std::string::npos) << m;
  }
  try {
    output_size(ref, 100);
    FAIL() << "100 is below the minimum";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("188 (the smallest)"), std::string::npos) << e.what();
  }
}

TEST(Geometry, EveryLegalSizeRunsAndMatchesTheArithmetic) {
  // Check the arithmetic against real forward passes of a small network.
  const UNetOptions o = UNetOptions().depth(2).filters(2);
  UNet net(o);
  net->eval();
  c10::InferenceMode guard;
  int legal = 0;
  for (int64_t s = 30; s <= 80; ++s) {
    const int64_t out = output_size_or_invalid(o, s);
    if (out < 0) continue;
    ++legal;
    EXPECT_EQ(net->forward(at::zeros({1, 1, s, s})).size(2), out) << "input " << s;
  }
  EXPECT_GT(legal, 5);
}

TEST(Geometry, SamePaddingNeedsMultiplesOfTwoToTheDepth) {
  const UNetOptions o = UNetOptions().padding(Padding::kSame);
  EXPECT_EQ(output_size(o, 512), 512);
  EXPECT_EQ(output_size_or_invalid(o, 100), -1);
  EXPECT_EQ(nearest_legal_inputs(o, 100), std::make_pair(int64_t{96}, int64_t{112}));
}

TEST(Model, OptionsRoundTripThroughJson) {
  const UNetOptions o = UNetOptions().in_channels(3).classes(5).depth(3).filters(16).padding(Padding::kSame).up_kernel(2);
  EXPECT_TRUE(unet_options_from_json(to_json(o)) == o);
  EXPECT_THROW(unet_options_from_json("{\"depth\": 3}"), Error);
  EXPECT_THROW(UNet(UNetOptions().classes(1)), Error);
}

TEST(Model, ChannelsLastGivesTheSameLogits) {
  at::manual_seed(4);
  UNet net(UNetOptions().depth(2).filters(4));
  net->eval();
  c10::InferenceMode guard;
  const at::Tensor x = at::randn({2, 1, 60, 60});
  const at::Tensor plain = net->forward(x);
  use_channels_last(*net);
  EXPECT_TRUE(net->parameters()[0].is_contiguous(at::MemoryFormat::ChannelsLast));
  const at::Tensor nhwc = net->forward(x.contiguous(at::MemoryFormat::ChannelsLast));
  EXPECT_TRUE(at::allclose(plain, nhwc, /*rtol=*/1e-4, /*atol=*/1e-5));
}

TEST(Model, TheFusedSwitchLeavesCpuResultsAlone) {
  at::manual_seed(12);
  UNet a(UNetOptions().depth(2).filters(8).dropout(0.0));
  const at::Tensor x = at::randn({1, 1, 60, 60});
  a->eval();
  const at::Tensor plain = a->forward(x);
  if (!fused_kernels_built()) GTEST_SKIP() << "built without CUDA kernels";
  a->use_fused(true);  // CPU tensors keep the plain path
  EXPECT_TRUE(a->fused());
  EXPECT_TRUE(at::equal(a->forward(x), plain));
}

TEST(Model, TheKernelsChannelCursorMatchesDivision) {
  // The fused bias + ReLU kernels find each element's channel incrementally (no division per
  // element); the arithmetic is plain C++, checked here against the definition.
  for (int64_t inner : {1, 7, 64 * 64})
    for (int64_t channels : {1, 3, 64, 1024})
      for (int64_t stride : {1, 5, 256 * 1056, 999983}) {
        const int64_t numel = 3 * stride + 12345;
        for (int64_t start : {int64_t{0}, int64_t{1}, stride - 1}) {
          unet::cuda::ChannelCursor c(start, stride, inner, channels);
          for (int64_t i = start; i < numel; i += stride, c.advance())
            ASSERT_EQ(c.channel, (i / inner) % channels) << "i " << i << " inner " << inner << " channels " << channels;
        }
      }
}
