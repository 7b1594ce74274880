// Which convolutions a U-Net's forward pass runs, with the shapes each one sees, and which CPU
// kernel runs each: oneDNN's direct convolution or Winograd F(4x4, 3x3). The one place that says it.
#pragma once

#include "unet/model/unet.h"
#include "unet/runtime/error.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace unet {

/// The convolutions of a U-Net in the order its forward pass runs them: every level's two, the
/// bottleneck's two, each level's up-sampling (a transposed convolution) and two, the 1x1 head.
/// Their parameters are `name + ".weight"` and `name + ".bias"`.
struct ConvLayer {
  std::string name;
  enum Kind { kConv, kUpSample, kHead } kind = kConv;
};
std::vector<ConvLayer> conv_layers(const UNetOptions& options);

/// Pairs (up-sampling layer, skip layer) of `conv_layers` indices whose outputs are concatenated:
/// in int8 both must share one scale.
std::vector<std::pair<size_t, size_t>> concatenated_layers(const UNetOptions& options);

/// One convolution of the forward pass on an input [N, in_channels, side, side] of legal `side`:
/// its layer, channels, kernel size, padding and the side of the feature map it reads.
struct ConvStep {
  ConvLayer layer;
  int64_t in_channels = 0, out_channels = 0, kernel = 3, padding = 0, input_side = 0;
};
/// The steps in `conv_layers` order.
std::vector<ConvStep> conv_steps(const UNetOptions& options, int64_t input_side);

/// Whether `step` runs by Winograd under `algorithm` in `dtype`, in inference or (`training`) in a
/// training step's forward and backward: never for bfloat16, the transposed and 1x1
/// convolutions; for `kAuto`, by the per-layer measurements (`unet benchmark --exec-mode layers`
/// and `train-layers`, docs/performance.md; AMD EPYC, AVX2):
///  - inference: both channel counts at least `kWinogradMinChannels` and one at least
///    `kWinogradWideChannels` (Winograd 1.3-2.2x direct there on the reference network at 572,
///    level at 128 -> 128, slower with 64 channels, whose large images make the transforms cost
///    more than the products they save);
///  - training: both at least `kWinogradTrainMinChannels` (Winograd 1.2-4.2x direct with 64 to
///    1024 channels, because LibTorch's direct backward kernels run far below its forward ones;
///    0.2-1.0x with 1 to 32 channels).
bool runs_winograd(ConvAlgorithm algorithm, const ConvStep& step, at::ScalarType dtype, bool training = false);
inline constexpr int64_t kWinogradMinChannels = 128, kWinogradWideChannels = 256, kWinogradTrainMinChannels = 64;

}  // namespace unet
