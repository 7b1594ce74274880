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

/// Whether `step` runs by Winograd under `algorithm` in `dtype`, in inference and in a training
/// step's forward and backward alike: never for bfloat16, the transposed and 1x1 convolutions; for
/// `kAuto`, where both channel counts are at least `kWinogradMinChannels`. Measured per layer
/// (`unet benchmark --exec-mode layers` and `train-layers`, docs/performance.md; 2-core AMD EPYC,
/// AVX2): with 64 to 1024 channels Winograd is 1.15-2.7x direct in inference and 2.4-6.1x in
/// training (LibTorch's direct backward kernels run far below its forward ones); with 1 to 32
/// channels 0.1-0.8x in inference and 0.55x for the first convolution in training.
bool runs_winograd(ConvAlgorithm algorithm, const ConvStep& step, at::ScalarType dtype);
inline constexpr int64_t kWinogradMinChannels = 64;

}  // namespace unet
