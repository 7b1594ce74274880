// The int8 CPU inference path: a calibrated U-Net on oneDNN's int8 convolutions, u8 from layer to layer.
#pragma once

#include "unet/model/int8_ops.h"
#include "unet/model/unet.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <map>
#include <vector>

namespace unet {

/// Runs a U-Net's forward pass in int8 on the CPU: weights int8 per output channel (symmetric),
/// activations u8 per tensor with the calibrated `Int8Scales`, every convolution with its bias,
/// ReLU and requantization fused in one oneDNN call (`int8_conv`), max pooling and the skip
/// connections' crop-and-concatenate on u8 (the up-sampling and its skip share a scale), the head
/// writing float32 logits. The weights are quantized once, from the model's at construction, and
/// reordered once per input shape.
class Int8Engine {
 public:
  /// Throws `unet::Error` (one line) where this LibTorch or this CPU cannot run int8, or when
  /// `scales` does not fit the model.
  Int8Engine(const UNet& model, Int8Scales scales);

  /// Whether this LibTorch has the int8 operators and the CPU int8 units (`cpu_int8_units`).
  static bool available();

  /// Logits [N, classes, S', S'] float32 for images [N, in_channels, S, S] (float, S legal).
  at::Tensor forward(const at::Tensor& images);

  const Int8Scales& scales() const { return scales_; }

  /// A quantized convolution: int8 weights (the sub-pixel form for up-sampling layers) and their
  /// float32 bias per output channel.
  struct Layer {
    QuantizedWeight weight;
    at::Tensor bias;
    ConvLayer::Kind kind;
  };

 private:
  UNetOptions options_;
  Int8Scales scales_;
  std::vector<Layer> layers_;
  std::map<std::vector<int64_t>, std::vector<at::Tensor>> packed_;  // by input shape [N, C, H, W]

  const std::vector<at::Tensor>& packed_for(const std::vector<int64_t>& shape);
};

/// The float32 forward pass of `model` (evaluation mode, plain LibTorch operators) calling
/// `observe(k, y)` with each convolution's output in `conv_layers` order (after its ReLU; the
/// head's logits), then returning the logits. What calibration measures.
at::Tensor observed_forward(const UNet& model, const at::Tensor& images,
                            const std::function<void(size_t, const at::Tensor&)>& observe);

}  // namespace unet
