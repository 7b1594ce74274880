// Tests of Winograd F(4x4, 3x3) in training: the backward transforms against their references,
// the differentiable convolution + bias + ReLU and its three gradients against a float64 direct
// convolution (layer shapes of the reference network, odd and ragged sizes, both paddings, batch
// 1-3, few channels, either layout), and a U-Net trained on the CPU path with Winograd against the
// plain path: forward, gradients, and the weights after optimiser steps (no stale transforms).
// Also the up-sampling's gradients (a strided convolution and one product per kernel tap), which
// the same CPU training path uses.
#include "test_support.h"

#include "unet/cpu/winograd.h"
#include "unet/model/conv_plan.h"
#include "unet/model/onednn_ops.h"
#include "unet/model/transposed_conv_grad.h"
#include "unet/model/winograd_conv.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <torch/csrc/autograd/function.h>

#include <functional>
#include <set>
#include <torch/optim/sgd.h>

using namespace unet;

namespace {

double relative_error(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor x = a.to(at::kDouble).contiguous(), y = b.to(at::kDouble).contiguous();
  return (x - y).abs().max().item<double>() / std::max(1e-3, y.abs().max().item<double>());
}

/// The gradients of sum(relu(conv2d(x, w, b)) * r) in x, w and b: by Winograd, and in float64 by
/// the direct convolution.
struct Gradients {
  at::Tensor y, x, w, b;
};
Gradients gradients(const at::Tensor& x0, const at::Tensor& w0, const at::Tensor& b0, const at::Tensor& r,
                    int64_t padding, bool winograd) {
  const at::ScalarType type = winograd ? at::kFloat : at::kDouble;
  at::Tensor x = x0.to(type).detach().requires_grad_(), w = w0.to(type).detach().requires_grad_(),
             b = b0.to(type).detach().requires_grad_();
  const at::Tensor y = winograd ? winograd_conv_bias_relu(x, w, b, padding) : at::relu(at::conv2d(x, w, b, 1, padding));
  (y * r.to(type)).sum().backward();
  return {y.detach(), x.grad(), w.grad(), b.grad()};
}

}  // namespace

TEST(WinogradTraining, OutputGradientTransformMatchesItsReferenceWithAndWithoutTheReluMask) {
  at::manual_seed(11);
  for (const int64_t channels : {1, 5, 16, 33}) {
    for (const bool masked : {false, true}) {
      const cpu::WinogradGeometry g{2, 9, 12, 1, channels, 0};  // output 7 x 10: ragged both ways
      const at::Tensor dy = at::randn({g.batch, g.out_height(), g.out_width(), channels});
      const at::Tensor y = at::randn_like(dy);
      const float* mask = masked ? y.const_data_ptr<float>() : nullptr;
      const int64_t first = 3, count = g.tiles() - 5, plane = count * channels + 7;
      at::Tensor fast = at::full({cpu::kWinogradPoints, plane}, 99.0f), reference = fast.clone();
      cpu::winograd_output_gradient_transform(dy.const_data_ptr<float>(), mask, g, first, count,
                                              fast.mutable_data_ptr<float>(), plane);
      cpu::winograd_output_gradient_transform_reference(dy.const_data_ptr<float>(), mask, g, first, count,
                                                        reference.mutable_data_ptr<float>(), plane);
      EXPECT_LT(relative_error(fast, reference), 1e-6) << channels << " channels, mask " << masked;
    }
  }
}

TEST(WinogradTraining, InputGradientTransformAddsLikeItsReferenceAndSkipsThePadding) {
  at::manual_seed(12);
  for (const int64_t channels : {1, 3, 16, 40}) {
    for (const int64_t pad : {0, 1}) {
      const cpu::WinogradGeometry g{2, 13, 10, channels, 1, pad};
      const int64_t plane = g.tiles() * channels + 5;
      const at::Tensor dv = at::randn({cpu::kWinogradPoints, plane});
      const at::Tensor start = at::randn({g.batch, g.height, g.width, channels});  // added to, not replaced
      at::Tensor fast = start.clone(), reference = start.clone();
      cpu::winograd_input_gradient_transform(dv.const_data_ptr<float>(), plane, g, 0, g.tiles(),
                                             fast.mutable_data_ptr<float>());
      cpu::winograd_input_gradient_transform_reference(dv.const_data_ptr<float>(), plane, g, 0, g.tiles(),
                                                       reference.mutable_data_ptr<float>());
      EXPECT_LT(relative_error(fast, reference), 1e-6) << channels << " channels, padding " << pad;
      EXPECT_GT(relative_error(fast, start), 1e-2) << "the gradient was added";
    }
  }
}

TEST(WinogradTraining, FilterGradientTransformMatchesItsReferenceOverChannelRanges) {
  at::manual_seed(13);
  for (const auto& [out, in] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {5, 3}, {16, 2}, {33, 17}}) {
    const at::Tensor du = at::randn({cpu::kWinogradPoints, in, out});
    at::Tensor fast = at::full({out, in, 3, 3}, 99.0f), reference = at::empty_like(fast);
    const int64_t half = in / 2;
    cpu::winograd_filter_gradient_transform(du.const_data_ptr<float>(), out, in, fast.mutable_data_ptr<float>(), 0, half);
    cpu::winograd_filter_gradient_transform(du.const_data_ptr<float>(), out, in, fast.mutable_data_ptr<float>(), half,
                                            in - half);
    cpu::winograd_filter_gradient_transform_reference(du.const_data_ptr<float>(), out, in,
                                                      reference.mutable_data_ptr<float>());
    EXPECT_LT(relative_error(fast, reference), 1e-6) << out << " x " << in;
  }
}

TEST(WinogradTraining, ForwardTransformsTransposedAreTheBackwardOnes) {
  // <T(a), b> = <a, T'(b)> for each forward transform T and its backward T', through the
  // references: the backward really is the forward's gradient (here with one filter and one tile
  // row per image, ragged and padded).
  at::manual_seed(14);
  const cpu::WinogradGeometry g{2, 7, 9, 3, 2, 1};
  const int64_t T = g.tiles(), C = g.in_channels, O = g.out_channels;
  const at::Tensor x = at::randn({g.batch, g.height, g.width, C}), dv = at::randn({cpu::kWinogradPoints, T * C});
  at::Tensor v = at::empty_like(dv), dx = at::zeros_like(x);
  cpu::winograd_input_transform_reference(x.const_data_ptr<float>(), g, 0, T, v.mutable_data_ptr<float>(), T * C);
  cpu::winograd_input_gradient_transform_reference(dv.const_data_ptr<float>(), T * C, g, 0, T, dx.mutable_data_ptr<float>());
  EXPECT_NEAR((v * dv).sum().item<double>(), (x * dx).sum().item<double>(), 1e-3);

  const at::Tensor m = at::randn({cpu::kWinogradPoints, T * O}), dy = at::randn({g.batch, g.out_height(), g.out_width(), O});
  at::Tensor y = at::empty_like(dy), dm = at::empty_like(m);
  cpu::winograd_output_transform_reference(m.const_data_ptr<float>(), T * O, nullptr, false, g, 0, T, y.mutable_data_ptr<float>());
  cpu::winograd_output_gradient_transform_reference(dy.const_data_ptr<float>(), nullptr, g, 0, T,
                                                    dm.mutable_data_ptr<float>(), T * O);
  EXPECT_NEAR((y * dy).sum().item<double>(), (m * dm).sum().item<double>(), 1e-3);

  const at::Tensor w = at::randn({O, C, 3, 3}), du = at::randn({cpu::kWinogradPoints, C, O});
  at::Tensor u = at::empty_like(du), dw = at::empty_like(w);
  cpu::winograd_filter_transform_reference(w.const_data_ptr<float>(), O, C, u.mutable_data_ptr<float>());
  cpu::winograd_filter_gradient_transform_reference(du.const_data_ptr<float>(), O, C, dw.mutable_data_ptr<float>());
  EXPECT_NEAR((u * du).sum().item<double>(), (w * dw).sum().item<double>(), 1e-4);
}

TEST(WinogradTraining, ConvolutionAndItsGradientsMatchFloat64Direct) {
  at::manual_seed(15);
  struct Case {
    int64_t batch, in, out, height, width, pad;
    bool channels_last;
  };
  // Layer shapes of the reference network (the deep ones at small sizes), few channels, odd and
  // ragged sizes, both paddings, batch 1-3, channels-last and not.
  const std::vector<Case> cases = {{2, 128, 256, 20, 17, 0, true},  {1, 256, 256, 14, 14, 1, true},
                                   {3, 512, 256, 9, 11, 0, true},   {1, 1024, 512, 8, 8, 0, true},
                                   {2, 3, 16, 13, 10, 1, false},    {1, 1, 5, 7, 6, 0, false},
                                   {2, 40, 33, 11, 15, 1, true},    {3, 17, 20, 3, 5, 0, false}};
  for (const Case& c : cases) {
    at::Tensor x = at::randn({c.batch, c.in, c.height, c.width});
    if (c.channels_last) x = x.contiguous(at::MemoryFormat::ChannelsLast);
    const at::Tensor w = at::randn({c.out, c.in, 3, 3}) * (1.0 / std::sqrt(9.0 * c.in)), b = at::randn({c.out}) * 0.1;
    const int64_t oh = c.height + 2 * c.pad - 2, ow = c.width + 2 * c.pad - 2;
    // The output gradient, zero where the exact pre-activation is near 0: there rounding could flip
    // the ReLU's mask, a tie rather than an error.
    const at::Tensor pre = at::conv2d(x.to(at::kDouble), w.to(at::kDouble), b.to(at::kDouble), 1, c.pad);
    const at::Tensor r = at::randn({c.batch, c.out, oh, ow}) * (pre.abs() > 1e-4 * pre.abs().max()).to(at::kFloat);
    const Gradients fast = gradients(x, w, b, r, c.pad, true), exact = gradients(x, w, b, r, c.pad, false);
    const std::string what = std::to_string(c.in) + " -> " + std::to_string(c.out) + ", " + std::to_string(c.height) +
                             " x " + std::to_string(c.width) + ", padding " + std::to_string(c.pad);
    EXPECT_LT(relative_error(fast.y, exact.y), 2e-5) << what;
    EXPECT_LT(relative_error(fast.x, exact.x), 5e-5) << what;
    EXPECT_LT(relative_error(fast.w, exact.w), 5e-5) << what;
    EXPECT_LT(relative_error(fast.b, exact.b), 1e-5) << what;
  }
}

TEST(WinogradTraining, AutoPicksOnlyWideEnoughFloat32Convolutions) {
  const UNetOptions options = UNetOptions().depth(2).filters(64).padding(Padding::kSame);
  std::vector<bool> picked;
  for (const ConvStep& step : conv_steps(options, 64)) picked.push_back(runs_winograd(ConvAlgorithm::kAuto, step, at::kFloat, Pass::kTraining));
  // down.0 (1->64, 64->64), down.1 (64->128, 128->128), bottleneck (128->256, 256->256), up.0
  // (its up-sampling, then 256->128, 128->128), up.1 (up-sampling, 128->64, 64->64), head: every
  // 3x3 convolution with 64 or more channels in and out, in float32 only.
  EXPECT_EQ(picked, (std::vector<bool>{false, true, true, true, true, true, false, true, true, false, true, true, false}));
  EXPECT_FALSE(runs_winograd(ConvAlgorithm::kAuto, conv_steps(options, 64)[4], at::kBFloat16, Pass::kTraining));

}

namespace {

/// How many autograd nodes behind `out` are Winograd convolutions.
int winograd_nodes(const at::Tensor& out) {
  std::set<const torch::autograd::Node*> seen;
  int count = 0;
  std::function<void(const std::shared_ptr<torch::autograd::Node>&)> walk = [&](const auto& node) {
    if (!node || !seen.insert(node.get()).second) return;
    count += node->name().find("Winograd") != std::string::npos;
    for (const auto& edge : node->next_edges()) walk(edge.function);
  };
  walk(out.grad_fn());
  return count;
}

}  // namespace

TEST(WinogradTraining, EachAlgorithmRunsTheConvolutionsItNames) {
  if (!onednn_fusion_available()) GTEST_SKIP() << "this LibTorch lacks oneDNN's fused operators";
  at::manual_seed(16);
  // depth 1, 32 filters: 1 -> 32, 32 -> 32, bottleneck 32 -> 64, 64 -> 64, up 64 -> 32, 32 -> 32.
  UNet model(UNetOptions().depth(1).filters(32).padding(Padding::kSame));
  const at::Tensor x = at::randn({1, 1, 16, 16});
  model->use_cpu_fusion(true, ConvAlgorithm::kAuto);
  EXPECT_EQ(winograd_nodes(model->forward(x)), 1);  // 64 -> 64 only
  model->use_cpu_fusion(true, ConvAlgorithm::kWinograd);
  EXPECT_EQ(winograd_nodes(model->forward(x)), 6);
  model->use_cpu_fusion(true, ConvAlgorithm::kDirect);
  EXPECT_EQ(winograd_nodes(model->forward(x)), 0);
  // Under bfloat16 autocast the convolutions compute in bfloat16, which never takes Winograd.
  at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
  at::autocast::set_autocast_enabled(at::kCPU, true);
  const at::ScalarType type = cpu_compute_type(x);
  at::autocast::set_autocast_enabled(at::kCPU, false);
  EXPECT_EQ(type, at::kBFloat16);
  EXPECT_FALSE(runs_winograd(ConvAlgorithm::kWinograd, conv_steps(model->options(), 16)[3], type, Pass::kTraining));
}

TEST(WinogradTraining, GradientsAsWantedAndWithoutBias) {
  at::manual_seed(19);
  const at::Tensor x = at::randn({2, 20, 9, 10}), w = at::randn({24, 20, 3, 3}) * 0.1;
  // Only the filter gradient wanted, no bias: against float64 autograd.
  const at::Tensor wf = w.clone().requires_grad_(), w64 = w.to(at::kDouble).requires_grad_();
  const at::Tensor pre = at::conv2d(x.to(at::kDouble), w64.detach(), at::Tensor(), 1, 1);
  const at::Tensor r = at::randn(pre.sizes()) * (pre.abs() > 1e-4 * pre.abs().max()).to(at::kFloat);
  (winograd_conv_bias_relu(x, wf, at::Tensor(), 1) * r).sum().backward();
  (at::relu(at::conv2d(x.to(at::kDouble), w64, at::Tensor(), 1, 1)) * r.to(at::kDouble)).sum().backward();
  EXPECT_LT(relative_error(wf.grad(), w64.grad()), 5e-5);
  // Only the input gradient wanted.
  const at::Tensor xf = x.clone().requires_grad_(), x64 = x.to(at::kDouble).requires_grad_();
  (winograd_conv_bias_relu(xf, w, at::Tensor(), 1) * r).sum().backward();
  (at::relu(at::conv2d(x64, w.to(at::kDouble), at::Tensor(), 1, 1)) * r.to(at::kDouble)).sum().backward();
  EXPECT_LT(relative_error(xf.grad(), x64.grad()), 5e-5);
  // Without autograd, the forward alone.
  at::NoGradGuard no_grad;
  EXPECT_LT(relative_error(winograd_conv_bias_relu(x, w, at::Tensor(), 1), at::relu(pre)), 2e-5);
}

TEST(WinogradTraining, UNetStepsWithWinogradFollowThePlainPath) {
  if (!onednn_fusion_available()) GTEST_SKIP() << "this LibTorch lacks oneDNN's fused operators";
  at::manual_seed(17);
  const UNetOptions options = UNetOptions().depth(2).filters(8).dropout(0.0);  // valid padding, ragged levels
  UNet plain(options), winograd(options);
  for (size_t i = 0; i < plain->parameters().size(); ++i)
    winograd->parameters()[i].data().copy_(plain->parameters()[i].data());
  winograd->use_cpu_fusion(true, ConvAlgorithm::kWinograd);  // every 3x3 convolution, the first too
  std::vector<at::Tensor> start;
  for (const auto& p : plain->parameters()) start.push_back(p.detach().clone());
  torch::optim::SGD plain_opt(plain->parameters(), 0.01), winograd_opt(winograd->parameters(), 0.01);
  const at::Tensor x = at::randn({2, 1, 60, 60}), target = at::randn({2, 2, 20, 20});
  for (int step = 0; step < 4; ++step) {
    for (auto* pair : {&plain_opt, &winograd_opt}) pair->zero_grad();
    const at::Tensor yp = plain->forward(x), yw = winograd->forward(x);
    EXPECT_EQ(winograd_nodes(yw), 10) << "every 3x3 convolution by Winograd";
    EXPECT_LT(relative_error(yw, yp), 1e-4) << "step " << step;
    ((yp - target) * (yp - target)).sum().backward();
    ((yw - target) * (yw - target)).sum().backward();
    for (size_t i = 0; i < plain->parameters().size(); ++i)
      EXPECT_LT(relative_error(winograd->parameters()[i].grad(), plain->parameters()[i].grad()), 1e-3)
          << "step " << step << ", parameter " << i;
    plain_opt.step();
    winograd_opt.step();
  }
  // The weights moved (by far more than the paths differ), and stayed together.
  for (size_t i = 0; i < plain->parameters().size(); ++i) {
    const at::Tensor moved = plain->parameters()[i].detach() - start[i];
    EXPECT_GT(moved.abs().max().item<double>(), 1e-4) << i;
    EXPECT_LT((winograd->parameters()[i].detach() - plain->parameters()[i].detach()).abs().max().item<double>(),
              0.01 * moved.abs().max().item<double>())
        << i;
  }
}

TEST(WinogradTraining, UpSamplingGradientsMatchFloat64Autograd) {
  at::manual_seed(18);
  struct Case {
    int64_t batch, in, out, height, width, kernel;
    bool channels_last;
  };
  for (const Case& c : std::vector<Case>{{2, 32, 16, 7, 5, 3, true},  {1, 5, 3, 4, 9, 3, false},
                                         {3, 16, 24, 6, 6, 2, true},  {1, 3, 2, 1, 1, 2, false},
                                         {2, 64, 32, 9, 8, 3, true}}) {
    const int64_t p = c.kernel == 3 ? 1 : 0;
    at::Tensor x = at::randn({c.batch, c.in, c.height, c.width}), w = at::randn({c.in, c.out, c.kernel, c.kernel});
    at::Tensor g = at::randn({c.batch, c.out, 2 * c.height, 2 * c.width});
    if (c.channels_last) {
      x = x.contiguous(at::MemoryFormat::ChannelsLast);
      g = g.contiguous(at::MemoryFormat::ChannelsLast);
    }
    const at::Tensor x64 = x.to(at::kDouble).requires_grad_(), w64 = w.to(at::kDouble).requires_grad_();
    const at::Tensor y = at::conv_transpose2d(x64, w64, at::Tensor(), 2, p, p);
    ASSERT_EQ(y.sizes(), g.sizes());
    y.backward(g.to(at::kDouble));
    const auto [gx, gw] = transposed_conv_gradients(g, x, w, p, true, true);
    const std::string what = std::to_string(c.in) + " -> " + std::to_string(c.out) + ", kernel " + std::to_string(c.kernel);
    EXPECT_LT(relative_error(gx, x64.grad()), 1e-5) << what;
    EXPECT_LT(relative_error(gw, w64.grad()), 1e-5) << what;
    const auto [none, only_w] = transposed_conv_gradients(g, x, w, p, false, true);
    EXPECT_FALSE(none.defined());
    EXPECT_TRUE(at::equal(only_w, gw));
    const auto [only_x, no_w] = transposed_conv_gradients(g, x, w, p, true, false);
    EXPECT_FALSE(no_w.defined());
    EXPECT_TRUE(at::equal(only_x, gx));
  }
}
