// The CPU inference path: prepacked weights, oneDNN convolutions with their ReLU fused, and
// Winograd F(4x4, 3x3) or F(6x6, 3x3) for the 3x3 convolutions where it is faster.
#pragma once

#include "unet/model/conv_plan.h"
#include "unet/model/unet.h"
#include "unet/model/winograd_conv.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <utility>
#include <vector>

namespace unet {

/// Runs a U-Net's forward pass on the CPU the way the fastest CPU runtimes do, inside LibTorch:
/// every weight is reordered once into oneDNN's preferred layout for the input shape
/// (`mkldnn::_reorder_convolution_weight`, the kernels that torch.compile's CPU backend emits),
/// and every convolution and transposed convolution runs with its bias and ReLU fused into one
/// oneDNN call (`mkldnn::_convolution_pointwise`). Activations stay channels-last, in float32 or
/// bfloat16. The prepacked weights follow the model's: when a parameter changes (training in the
/// same process), they are packed again before the next pass.
class CpuEngine {
 public:
  /// `dtype`: at::kFloat or at::kBFloat16. `model` stays shared (its weights are read, not copied).
  /// `algorithm`: how the float32 3x3 convolutions run (`conv_kernel` decides per layer).
  CpuEngine(UNet model, at::ScalarType dtype, ConvAlgorithm algorithm = ConvAlgorithm::kAuto);
  /// Not copyable: the packed layers point into this engine's own Winograd weights.
  CpuEngine(const CpuEngine&) = delete;
  CpuEngine& operator=(const CpuEngine&) = delete;

  /// Whether this LibTorch has the oneDNN operators the engine needs.
  static bool available();

  /// Logits [N, classes, S', S'] float32 (channels-last) for images [N, in_channels, S, S] (S legal).
  at::Tensor forward(const at::Tensor& images);

  /// Times the weights were (re)packed: once per input shape, and again after they change.
  int64_t packings() const { return packings_; }

  /// How many of the convolutions run by Winograd for input `shape` [N, C, S, S] (from the plan,
  /// `conv_kernels`; nothing is packed).
  int64_t winograd_layers(const std::vector<int64_t>& shape) const;
  /// The kernel each convolution (`conv_steps` order) runs with for input `shape`, read from the
  /// layers the engine packed for it (packing them first where needed).
  std::vector<ConvKernel> kernels(const std::vector<int64_t>& shape);

 private:
  struct Layer {
    at::Tensor weight, bias;  // oneDNN's prepacked weight (undefined for Winograd's layers)
    const WinogradWeights* winograd = nullptr;  // transformed filters (in winograd_) or null: oneDNN
    int64_t padding = 0;
  };
  struct Packed {
    std::vector<Layer> layers;  // in the forward order of the convolutions (conv_steps)
  };
  UNet model_;
  at::ScalarType dtype_;
  ConvAlgorithm algorithm_;
  std::map<std::vector<int64_t>, Packed> packed_;  // by input shape [N, C, H, W]
  // By layer and variant (index 2 x layer + 1 for F(6x6)), for every shape; kept until the
  // weights change.
  std::vector<WinogradWeights> winograd_;
  std::vector<std::pair<const void*, uint32_t>> versions_;  // parameters' storage and version when packed
  int64_t packings_ = 0;

  bool weights_changed() const;
  Packed pack(const std::vector<int64_t>& shape);
  /// The layers packed for `shape` (after dropping every packing if the weights changed).
  const Packed& packed_for(const std::vector<int64_t>& shape);
};

}  // namespace unet
