// Per-layer timing, direct against Winograd (include/unet/infer/layer_profile.h).
//
// Each layer runs alone on random input of its shape, so the table shows the kernels' own speed;
// the whole pass adds pooling, concatenation and the
// transposed convolutions. Rounds alternate the two kernels so that the machine's drift (shared
// machines move by 10-30% within minutes) falls on both alike.
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
  return 2.0 * 9 * static_cast<double>(t.step.in_channels * t.step.out_channels) * static_cast<double>(t.batch * out * out);
}

}  // namespace

double LayerTiming::direct_gflops() const { return direct_ms > 0 ? flops(*this) / direct_ms / 1e6 : 0.0; }
double LayerTiming::winograd_gflops() const { return winograd_ms > 0 ? flops(*this) / winograd_ms / 1e6 : 0.0; }

std::vector<LayerTiming> profile_conv_layers(const UNetOptions& options, int64_t batch, int64_t side, int rounds) {
  if (rounds < 1 || batch < 1) throw Error("a layer profile needs at least one round and one image");
  if (!onednn_fusion_available()) throw Error("the layer profile compares with oneDNN's convolutions, which this LibTorch lacks");
  c10::InferenceMode guard;
  std::vector<LayerTiming> timings;
  for (const ConvStep& step : conv_steps(options, side)) {
    if (step.layer.kind != ConvLayer::kConv) continue;
    const at::Tensor x = at::randn({batch, step.in_channels, step.input_side, step.input_side})
                             .contiguous(at::MemoryFormat::ChannelsLast);
    const at::Tensor w = at::randn({step.out_channels, step.in_channels, 3, 3}) / std::sqrt(9.0 * step.in_channels);
    const at::Tensor b = at::randn({step.out_channels});
    const at::Tensor packed = onednn_pack_conv(w, step.padding, x.sizes().vec());
    const WinogradWeights transformed = winograd_pack(w, b);
    const auto direct = [&] { onednn_conv(x, packed, b, step.padding, true); };
    const auto winograd = [&] { winograd_conv(x, transformed, step.padding, true); };
    direct();
    winograd();
    std::vector<double> d, v;
    for (int r = 0; r < rounds; ++r) {
      d.push_back(milliseconds(direct));
      v.push_back(milliseconds(winograd));
    }
    LayerTiming t{step, batch};
    // Errors against a float64 direct convolution of the same operands.
    const at::Tensor exact = at::relu(at::conv2d(x.to(at::kDouble), w.to(at::kDouble), b.to(at::kDouble), 1, step.padding));
    const double scale = std::max(exact.abs().max().item<double>(), 1e-30);
    auto error = [&](const at::Tensor& y) { return (y.to(at::kDouble) - exact).abs().max().item<double>() / scale; };
    t.direct_error = error(onednn_conv(x, packed, b, step.padding, true));
    t.winograd_error = error(winograd_conv(x, transformed, step.padding, true));
    std::tie(t.direct_ms, t.direct_spread) = summary(d);
    std::tie(t.winograd_ms, t.winograd_spread) = summary(v);
    t.auto_winograd = runs_winograd(ConvAlgorithm::kAuto, step, at::kFloat);
    timings.push_back(t);
  }
  return timings;
}

}  // namespace unet
