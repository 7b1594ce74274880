// The configurable U-Net (Ronneberger et al., 2015): its options and its modules.
#pragma once

#include "unet/model/scheme.h"
#include "unet/runtime/error.h"

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <string>

namespace unet {

/// Convolution padding: `kValid` is the paper's and the reference's unpadded 3x3 convolution (the
/// output is smaller than the input); `kSame` keeps the size at every level.
enum class Padding { kValid, kSame };
/// "valid", "same".
const EnumNames<Padding>& padding_names();
std::string to_string(Padding padding);
/// Throws `OptionError` (field "padding") for other names.
Padding parse_padding(const std::string& text);

/// How CPUs compute the 3x3 convolutions in float32, in inference (the CPU engine) and training
/// (`use_cpu_fusion`). `kDirect`: oneDNN's direct kernels (in inference the engine before
/// Winograd, bit for bit). `kWinograd`: F(4x4, 3x3) for every 3x3 convolution. `kWinograd6`:
/// F(6x6, 3x3) for every 3x3 convolution in inference (F(4x4) in training). `kAuto`: the variant
/// that measured fastest per layer (`conv_kernel` in conv_plan.h), direct where Winograd loses.
enum class ConvAlgorithm { kAuto, kDirect, kWinograd, kWinograd6 };
/// "auto", "direct", "winograd", "winograd6".
const EnumNames<ConvAlgorithm>& conv_algorithm_names();

/// Architecture of a U-Net. The defaults are the reference network exactly: 1 input channel,
/// 2 classes, 4 poolings, 64 base filters doubling per level, valid padding, 3x3 stride-2
/// transposed-convolution up-sampling followed by ReLU, dropout 0.5 on the bottleneck output;
/// 34,512,258 parameters, input 572x572, output 388x388.
struct UNetOptions {
  TORCH_ARG(int64_t, in_channels) = 1;
  TORCH_ARG(int64_t, classes) = 2;
  /// Number of 2x2 max-poolings (levels below the top one).
  TORCH_ARG(int64_t, depth) = 4;
  /// Filters of the top level; level k has filters * 2^k.
  TORCH_ARG(int64_t, filters) = 64;
  TORCH_ARG(Padding, padding) = Padding::kValid;
  /// Kernel of the stride-2 transposed convolution that up-samples: 3 (reference) or 2 (paper).
  TORCH_ARG(int64_t, up_kernel) = 3;
  /// Dropout probability applied to the bottleneck output during training.
  TORCH_ARG(double, dropout) = 0.5;
  /// What the output classes mean (not architecture: set from the data set by the commands).
  TORCH_ARG(ClassScheme, scheme) = ClassScheme::kPlain;

 public:  // TORCH_ARG leaves the access at private
  /// Throws `OptionError` naming the first field that is out of range.
  void validate() const;
  bool operator==(const UNetOptions& other) const;
  /// e.g. "depth 4, filters 64, valid padding, 3x3 up-sampling, 1 -> 2 channels".
  std::string describe() const;
};

/// The options as a JSON object text (as stored in checkpoints and logs).
std::string to_json(const UNetOptions& options);
/// Parses `to_json`'s output; throws `unet::Error` on a malformed or incomplete object.
UNetOptions unet_options_from_json(const std::string& json);

/// Two 3x3 convolutions, each followed by ReLU.
class DoubleConvImpl : public torch::nn::Module {
 public:
  DoubleConvImpl(int64_t in_channels, int64_t out_channels, Padding padding);
  /// [N, in, H, W] -> [N, out, H', W'] with H' = H - 4 for valid padding, H for same.
  at::Tensor forward(const at::Tensor& x);
  /// CUDA inputs: bias-free convolutions followed by the fused bias + ReLU kernel (`ops.h`).
  void use_fused(bool on) { fused_ = on; }
  /// CPU inputs: each convolution with its bias and ReLU fused, by oneDNN (`onednn_ops.h`) or,
  /// where `conv_kernel` says so for `algorithm`, by Winograd F(4x4) (`winograd_conv_bias_relu`).
  void use_cpu_fusion(bool on, ConvAlgorithm algorithm = ConvAlgorithm::kAuto) {
    cpu_fusion_ = on;
    algorithm_ = algorithm;
  }

 private:
  /// relu(conv(x)) on the CPU training path, by the kernel `algorithm_` chooses.
  at::Tensor cpu_conv_relu(const torch::nn::Conv2d& conv, const at::Tensor& x) const;

  torch::nn::Conv2d conv1_{nullptr};
  torch::nn::Conv2d conv2_{nullptr};
  int64_t padding_ = 0;
  bool fused_ = false;
  bool cpu_fusion_ = false;
  ConvAlgorithm algorithm_ = ConvAlgorithm::kAuto;
};
TORCH_MODULE(DoubleConv);

/// The U-Net. `forward` maps images [N, in_channels, S, S] (S legal, see `output_size` in
/// geometry.h) to per-class logits [N, classes, output_size(S), output_size(S)] in the input's dtype.
class UNetImpl : public torch::nn::Module {
 public:
  explicit UNetImpl(const UNetOptions& options = {});
  at::Tensor forward(const at::Tensor& x);
  const UNetOptions& options() const { return options_; }
  int64_t parameter_count() const;
  /// On CUDA, run every convolution + bias + ReLU as a bias-free convolution and the fused
  /// bias + ReLU kernel (forward and backward); the plain LibTorch path otherwise. The weights
  /// and results are the same (within rounding).
  void use_fused(bool on);
  bool fused() const { return fused_; }
  /// On CPUs, run every convolution and transposed convolution with its bias and ReLU fused into
  /// one oneDNN call, differentiable (`onednn_conv_bias_relu`): the training path of CPUs, where
  /// no weights can be prepacked. Ignored for CUDA inputs and where oneDNN's operators are
  /// missing (`onednn_fusion_available`). The 3x3 convolutions `conv_kernel` picks for
  /// `algorithm` (float32 only) run by Winograd F(4x4, 3x3) instead, forward and backward. Same
  /// results as the plain path within rounding.
  void use_cpu_fusion(bool on, ConvAlgorithm algorithm = ConvAlgorithm::kAuto);
  bool cpu_fusion() const { return cpu_fusion_; }

 private:
  UNetOptions options_;
  bool fused_ = false;
  bool cpu_fusion_ = false;
  torch::nn::ModuleList down_;
  DoubleConv bottleneck_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
  torch::nn::ModuleList up_sample_;
  torch::nn::ModuleList up_;
  torch::nn::Conv2d head_{nullptr};
};
TORCH_MODULE(UNet);

/// Stores every 4-D weight in channels-last (NHWC) layout, which oneDNN on CPUs and cuDNN on GPUs
/// run faster; results are unchanged. Feed channels-last inputs too (`at::MemoryFormat::ChannelsLast`).
void use_channels_last(UNetImpl& model);

/// Centre crop of `skip` [N, C, Hs, Ws] to the spatial size of `like` (a view, no copy): the
/// skip connection's crop before the concatenation.
at::Tensor centre_crop(const at::Tensor& skip, const at::Tensor& like);

}  // namespace unet
