// Per-layer timing of a U-Net's 3x3 convolutions on the CPU: oneDNN's direct kernel against
// Winograd F(4x4, 3x3) and F(6x6, 3x3), the measurements behind `conv_kernel`'s rule.
#pragma once

#include "unet/model/conv_plan.h"

#include <cstdint>
#include <vector>

namespace unet {

/// One 3x3 convolution's times in milliseconds (median over rounds; spread: (max - min) / median)
/// with its bias and ReLU, on random float32 channels-last input of the shape the layer sees: the
/// forward pass alone, or with `training` the forward and the backward (input, filter and bias
/// gradients) of a training step.
struct LayerTiming {
  ConvStep step;
  int64_t batch = 1;
  bool training = false;
  /// winograd: F(4x4, 3x3); winograd6: F(6x6, 3x3), inference only (0 with `training`).
  double direct_ms = 0, direct_spread = 0, winograd_ms = 0, winograd_spread = 0, winograd6_ms = 0, winograd6_spread = 0;
  /// max |y - y64| / max |y64| of each kernel's output against a float64 direct convolution (with
  /// `training`: the larger of that of the input gradient and of the filter gradient).
  double direct_error = 0, winograd_error = 0, winograd6_error = 0;
  /// The kernel `ConvAlgorithm::kAuto` runs this layer with.
  ConvKernel auto_kernel = ConvKernel::kOnednnDirect;
  /// Direct-convolution arithmetic (2 x 9 x C x O x output pixels; three times that with
  /// `training`: the forward and the input and filter gradients) per second, in GFLOP/s, for both.
  double direct_gflops() const;
  double winograd_gflops() const;
  double winograd6_gflops() const;
  /// The time of `kernel` (one of the three above) on this layer.
  double ms(ConvKernel kernel) const;
};

/// Times every 3x3 convolution of `options`' network for input [batch, C, side, side] (side
/// legal): one untimed call each, then `rounds` rounds alternating direct, F(4x4) and (inference)
/// F(6x6); then measures the kernels' errors (random weights scaled as He's initialisation,
/// random input).
/// With `training`, each call is a forward and backward (oneDNN's fused convolution and
/// LibTorch's convolution backward against `winograd_conv_bias_relu`).
std::vector<LayerTiming> profile_conv_layers(const UNetOptions& options, int64_t batch, int64_t side, int rounds,
                                             bool training = false);

}  // namespace unet
