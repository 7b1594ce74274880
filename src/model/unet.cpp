// The U-Net module: contracting path, bottleneck with dropout, expanding path with crop-and-concat.
#include "unet/model/unet.h"

#include "unet/model/conv_plan.h"
#include "unet/model/onednn_ops.h"
#include "unet/model/ops.h"
#include "unet/model/winograd_conv.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <vector>

namespace unet {
namespace {

torch::nn::Conv2dOptions conv3x3(int64_t in, int64_t out, Padding padding) {
  return torch::nn::Conv2dOptions(in, out, /*kernel_size=*/3)
      .padding(padding == Padding::kSame ? 1 : 0);
}

/// The side (height or width) of each decoder level's up-sampled map, for an input side: the
/// size its skip connection is cropped to. Index = encoder level (0 = top).
std::vector<int64_t> skip_crop_sides(int64_t side, int64_t depth, int64_t shrink) {
  for (int64_t level = 0; level < depth; ++level) side = (side - shrink) / 2;
  side -= shrink;  // the bottleneck
  std::vector<int64_t> sides(static_cast<size_t>(depth));
  for (int64_t level = depth - 1; level >= 0; --level) {
    side *= 2;
    sides[static_cast<size_t>(level)] = side;
    side -= shrink;
  }
  return sides;
}

}  // namespace

at::Tensor centre_crop(const at::Tensor& skip, const at::Tensor& like) {
  const int64_t h = like.size(2), w = like.size(3);
  const int64_t top = (skip.size(2) - h) / 2, left = (skip.size(3) - w) / 2;
  return skip.narrow(2, top, h).narrow(3, left, w);
}

DoubleConvImpl::DoubleConvImpl(int64_t in_channels, int64_t out_channels, Padding padding)
    : conv1_(register_module("conv1", torch::nn::Conv2d(conv3x3(in_channels, out_channels, padding)))),
      conv2_(register_module("conv2", torch::nn::Conv2d(conv3x3(out_channels, out_channels, padding)))),
      padding_(padding == Padding::kSame ? 1 : 0) {}

at::Tensor DoubleConvImpl::forward(const at::Tensor& x) {
  const ModulePath path = module_path(x, fused_, cpu_fusion_);
  if (path == ModulePath::kCudaFused) {
    auto conv_relu = [this](const torch::nn::Conv2d& conv, const at::Tensor& in) {
      // Inference: one cuDNN call for convolution, bias and ReLU; training: a bias-free
      // convolution and the fused bias + ReLU kernel, which has a backward.
      if (auto y = cudnn_conv_bias_relu(in, conv->weight, conv->bias, padding_)) return *y;
      return fused_bias_relu(at::conv2d(in, conv->weight, /*bias=*/{}, /*stride=*/1, /*padding=*/padding_), conv->bias);
    };
    return conv_relu(conv2_, conv_relu(conv1_, x));
  }
  if (path == ModulePath::kCpuFused) return cpu_conv_relu(conv2_, cpu_conv_relu(conv1_, x));
  return at::relu(conv2_->forward(at::relu(conv1_->forward(x))));
}

at::Tensor DoubleConvImpl::cpu_conv_relu(const torch::nn::Conv2d& conv, const at::Tensor& x) const {
  ConvStep step;  // a 3x3 convolution (ConvLayer::kConv)
  step.in_channels = conv->weight.size(1);
  step.out_channels = conv->weight.size(0);
  step.padding = padding_;
  step.input_side = x.size(2);
  if (runs_winograd(algorithm_, step, cpu_compute_type(x), Pass::kTraining))
    return winograd_conv_bias_relu(x, conv->weight, conv->bias, padding_);
  return onednn_conv_bias_relu(x, conv->weight, conv->bias, padding_);
}

UNetImpl::UNetImpl(const UNetOptions& options) : options_(options) {
  options_.validate();
  const int64_t depth = options_.depth(), f = options_.filters();
  int64_t in = options_.in_channels();
  for (int64_t level = 0; level < depth; ++level) {
    const int64_t out = f << level;
    down_->push_back(DoubleConv(in, out, options_.padding()));
    in = out;
  }
  register_module("down", down_);
  bottleneck_ = register_module("bottleneck", DoubleConv(in, f << depth, options_.padding()));
  dropout_ = register_module("dropout", torch::nn::Dropout(options_.dropout()));
  for (int64_t level = depth - 1; level >= 0; --level) {
    const int64_t out = f << level;
    // Stride-2 transposed convolution that exactly doubles the side: for kernel 3 the padding of
    // 1 plus output padding of 1 gives 2H, for kernel 2 no padding is needed.
    const int64_t k = options_.up_kernel();
    auto up_options = torch::nn::ConvTranspose2dOptions(2 * out, out, k).stride(2);
    if (k == 3) up_options.padding(1).output_padding(1);
    up_sample_->push_back(torch::nn::ConvTranspose2d(up_options));
    up_->push_back(DoubleConv(2 * out, out, options_.padding()));
  }
  register_module("up_sample", up_sample_);
  register_module("up", up_);
  head_ = register_module(
      "head", torch::nn::Conv2d(torch::nn::Conv2dOptions(f, options_.classes(), /*kernel_size=*/1)));
}

at::Tensor UNetImpl::forward(const at::Tensor& input) {
  std::vector<at::Tensor> skips;
  skips.reserve(down_->size());
  // CPU training: pooling and crop as one autograd node (`max_pool_and_crop`), the skips cropped
  // here to the sizes the decoder will meet.
  const ModulePath path = module_path(input, fused_, cpu_fusion_);
  const bool pool_and_crop = path == ModulePath::kCpuFused;
  const int64_t shrink = options_.padding() == Padding::kValid ? 4 : 0;
  std::vector<int64_t> crop_h, crop_w;
  if (pool_and_crop) {
    crop_h = skip_crop_sides(input.size(2), options_.depth(), shrink);
    crop_w = skip_crop_sides(input.size(3), options_.depth(), shrink);
  }
  at::Tensor x = input;
  for (const auto& block : *down_) {
    x = block->as<DoubleConvImpl>()->forward(x);
    const size_t level = skips.size();
    if (pool_and_crop) {
      auto [pooled, skip] = max_pool_and_crop(x, crop_h[level], crop_w[level]);
      skips.push_back(skip);
      x = pooled;
    } else {
      skips.push_back(x);
      x = at::max_pool2d(x, /*kernel_size=*/{2, 2}, /*stride=*/{2, 2});
    }
  }
  x = dropout_->forward(bottleneck_->forward(x));
  for (size_t i = 0; i < up_->size(); ++i) {
    auto* up = up_sample_[i]->as<torch::nn::ConvTranspose2dImpl>();
    if (path == ModulePath::kCudaFused) {
      const int64_t pad = options_.up_kernel() == 3 ? 1 : 0;
      x = fused_bias_relu(at::conv_transpose2d(x, up->weight, /*bias=*/{}, /*stride=*/2, /*padding=*/pad,
                                               /*output_padding=*/pad),
                          up->bias);
    } else if (path == ModulePath::kCpuFused) {
      x = onednn_conv_bias_relu(x, up->weight, up->bias, options_.up_kernel() == 3 ? 1 : 0, /*transposed=*/true);
    } else {
      x = at::relu(up->forward(x));
    }
    const at::Tensor& skip = skips[skips.size() - 1 - i];
    // A skip already cropped to x's size goes in as it is (a full-size narrow would still cost
    // a zero-filled gradient).
    const bool cropped = skip.size(2) == x.size(2) && skip.size(3) == x.size(3);
    x = up_[i]->as<DoubleConvImpl>()->forward(at::cat({x, cropped ? skip : centre_crop(skip, x)}, /*dim=*/1));
  }
  return head_->forward(x);
}

void UNetImpl::use_fused(bool on) {
  if (on && !fused_kernels_built()) throw OptionError("exec.fused", ": needs a build of unet with the CUDA kernels");
  fused_ = on;
  for (const auto& block : *down_) block->as<DoubleConvImpl>()->use_fused(on);
  bottleneck_->use_fused(on);
  for (const auto& block : *up_) block->as<DoubleConvImpl>()->use_fused(on);
}

void use_channels_last(UNetImpl& model) {
  for (auto& p : model.parameters()) {
    if (p.dim() == 4) p.set_data(p.data().contiguous(at::MemoryFormat::ChannelsLast));
  }
}

void UNetImpl::use_cpu_fusion(bool on, ConvAlgorithm algorithm) {
  cpu_fusion_ = on && onednn_fusion_available();
  for (const auto& block : *down_) block->as<DoubleConvImpl>()->use_cpu_fusion(cpu_fusion_, algorithm);
  bottleneck_->use_cpu_fusion(cpu_fusion_, algorithm);
  for (const auto& block : *up_) block->as<DoubleConvImpl>()->use_cpu_fusion(cpu_fusion_, algorithm);
}

int64_t UNetImpl::parameter_count() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

}  // namespace unet
