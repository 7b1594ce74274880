// Per-layer timing, direct against Winograd F(4x4) and F(6x6) (include/unet/infer/layer_profile.h).
//
// Each layer runs alone on random input of its shape, so the table shows the kernels' own speed;
// the whole pass adds pooling, concatenation and the
// transposed convolutions. Rounds alternate the kernels so that the machine's drift (shared
// machines move by 10-30% within minutes) falls on all alike.
#include "unet/infer/layer_profile.h"

#include "unet/model/onednn_ops.h"
#include "unet/model/winograd_conv.h"
#include "unet/runtime/error.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <memory>
#include <optional>
#include <tuple>

namespace unet {
namespace {

double milliseconds(const std::function<void()>& run) {
  const auto start = std::chrono::steady_clock::now();
  run();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

/// (median, (max - min) / median).
std::pair<double, double> summary(std::vector<double> times) {
  std::sort(times.begin(), times.end());
  const double median = times[times.size() / 2];
  return {median, median > 0 ? (times.back() - times.front()) / median : 0.0};
}

double flops(const LayerTiming& t) {
  const int64_t out = t.step.input_side + 2 * t.step.padding - 2;
  const double forward =
      2.0 * 9 * static_cast<double>(t.step.in_channels * t.step.out_channels) * static_cast<double>(t.batch * out * out);
  return t.training ? 3 * forward : forward;  // training: the forward and two gradients of its size
}

}  // namespace

double LayerTiming::direct_gflops() const { return direct_ms > 0 ? flops(*this) / direct_ms / 1e6 : 0.0; }
double LayerTiming::winograd_gflops() const { return winograd_ms > 0 ? flops(*this) / winograd_ms / 1e6 : 0.0; }
double LayerTiming::ms(ConvKernel kernel) const {
  switch (kernel) {
    case ConvKernel::kOnednnDirect:
      return direct_ms;
    case ConvKernel::kWinograd4:
      return winograd_ms;
    case ConvKernel::kWinograd6:
      return winograd6_ms;
  }
  return 0;
}
double LayerTiming::winograd6_gflops() const { return winograd6_ms > 0 ? flops(*this) / winograd6_ms / 1e6 : 0.0; }

namespace {

/// One layer's kernels on x: timed calls and errors (against a float64 direct convolution); F(6x6)
/// in inference only (empty functions in training).
struct Kernels {
  std::function<void()> direct, winograd, winograd6;
  std::function<double()> direct_error, winograd_error, winograd6_error;
};

Kernels inference_kernels(const ConvStep& step, const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  const at::Tensor packed = onednn_pack_conv(w, step.padding, x.sizes().vec());
  const auto transformed = std::make_shared<WinogradWeights>(winograd_pack(w, b));
  const auto transformed6 = std::make_shared<WinogradWeights>(winograd_pack(w, b, 6));
  const at::Tensor exact = at::relu(at::conv2d(x.to(at::kDouble), w.to(at::kDouble), b.to(at::kDouble), 1, step.padding));
  const double scale = std::max(exact.abs().max().item<double>(), 1e-30);
  auto error = [exact, scale](const at::Tensor& y) { return (y.to(at::kDouble) - exact).abs().max().item<double>() / scale; };
  auto direct = [=] { return onednn_conv(x, packed, b, step.padding, true); };
  auto winograd = [=] { return winograd_conv(x, *transformed, step.padding, true); };
  auto winograd6 = [=] { return winograd_conv(x, *transformed6, step.padding, true); };
  return {[=] { direct(); },
          [=] { winograd(); },
          [=] { winograd6(); },
          [=] { return error(direct()); },
          [=] { return error(winograd()); },
          [=] { return error(winograd6()); }};
}

/// The gradients of sum(conv_relu(x, w, b) * r) in x and w: a training step's forward and backward.
std::pair<at::Tensor, at::Tensor> input_and_filter_gradients(const at::Tensor& x0, const at::Tensor& w0, const at::Tensor& b0,
                                                             const at::Tensor& r, bool winograd, int64_t padding) {
  const at::Tensor x = x0.detach().requires_grad_(), w = w0.detach().requires_grad_(), b = b0.detach().requires_grad_();
  const at::Tensor y = winograd   ? winograd_conv_bias_relu(x, w, b, padding)
                       : x.scalar_type() == at::kDouble ? at::relu(at::conv2d(x, w, b, 1, padding))
                                                        : onednn_conv_bias_relu(x, w, b, padding);
  y.backward(r);
  return {x.grad(), w.grad()};
}

Kernels training_kernels(const ConvStep& step, const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  const int64_t out = step.input_side + 2 * step.padding - 2;
  // The output gradient, zero where the exact output is near 0: there a kernel's rounding could
  // flip the ReLU's mask and count as an error what is only a tie.
  const at::Tensor exact = at::conv2d(x.to(at::kDouble), w.to(at::kDouble), b.to(at::kDouble), 1, step.padding);
  const at::Tensor clear = exact.abs() > 1e-3 * exact.abs().max();
  const at::Tensor r = (at::randn({x.size(0), step.out_channels, out, out}) * clear.to(at::kFloat))
                           .contiguous(at::MemoryFormat::ChannelsLast);
  // Named tensors, not a structured binding: C++17 (clang) cannot capture a binding in a lambda.
  const std::pair<at::Tensor, at::Tensor> exact_gradients = input_and_filter_gradients(
      x.to(at::kDouble), w.to(at::kDouble), b.to(at::kDouble), r.to(at::kDouble), false, step.padding);
  const at::Tensor gx = exact_gradients.first, gw = exact_gradients.second;
  auto error = [gx, gw](bool winograd, const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, const at::Tensor& r,
                        int64_t padding) {
    const auto [fx, fw] = input_and_filter_gradients(x, w, b, r, winograd, padding);
    return std::max((fx.to(at::kDouble) - gx).abs().max().item<double>() / std::max(gx.abs().max().item<double>(), 1e-30),
                    (fw.to(at::kDouble) - gw).abs().max().item<double>() / std::max(gw.abs().max().item<double>(), 1e-30));
  };
  const int64_t p = step.padding;
  return {[=] { input_and_filter_gradients(x, w, b, r, false, p); },
          [=] { input_and_filter_gradients(x, w, b, r, true, p); },
          {},
          [=] { return error(false, x, w, b, r, p); },
          [=] { return error(true, x, w, b, r, p); },
          {}};
}

}  // namespace

std::vector<LayerTiming> profile_conv_layers(const UNetOptions& options, int64_t batch, int64_t side, int rounds,
                                             bool training) {
  if (rounds < 1 || batch < 1) throw Error("a layer profile needs at least one round and one image");
  if (!onednn_fusion_available()) throw Error("the layer profile compares with oneDNN's convolutions, which this LibTorch lacks");
  std::optional<c10::InferenceMode> guard;
  if (!training) guard.emplace();
  std::vector<LayerTiming> timings;
  for (const ConvStep& step : conv_steps(options, side)) {
    if (step.layer.kind != ConvLayer::kConv) continue;
    const at::Tensor x = at::randn({batch, step.in_channels, step.input_side, step.input_side})
                             .contiguous(at::MemoryFormat::ChannelsLast);
    const at::Tensor w = at::randn({step.out_channels, step.in_channels, 3, 3}) / std::sqrt(9.0 * step.in_channels);
    const at::Tensor b = at::randn({step.out_channels});
    const Kernels k = training ? training_kernels(step, x, w, b) : inference_kernels(step, x, w, b);
    k.direct();
    k.winograd();
    if (k.winograd6) k.winograd6();
    std::vector<double> d, v, v6;
    for (int r = 0; r < rounds; ++r) {
      d.push_back(milliseconds(k.direct));
      v.push_back(milliseconds(k.winograd));
      if (k.winograd6) v6.push_back(milliseconds(k.winograd6));
    }
    LayerTiming t{step, batch, training};
    t.direct_error = k.direct_error();
    t.winograd_error = k.winograd_error();
    std::tie(t.direct_ms, t.direct_spread) = summary(d);
    std::tie(t.winograd_ms, t.winograd_spread) = summary(v);
    if (k.winograd6) {
      t.winograd6_error = k.winograd6_error();
      std::tie(t.winograd6_ms, t.winograd6_spread) = summary(v6);
    }
    t.auto_kernel = conv_kernel(ConvAlgorithm::kAuto, step, at::kFloat, training ? Pass::kTraining : Pass::kInference);
    timings.push_back(t);
  }
  return timings;
}

}  // namespace unet
