// Fused operations of the network's hot path, each beside the plain ATen path it must match.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>

namespace unet {

/// Whether this build has the fused CUDA kernels (the optional unet_cuda part).
bool fused_kernels_built();

/// relu(x + bias) for activations x [N, C, H, W] (float32, fp16 or bf16; channels-last or
/// contiguous) and a bias [C]: one pass forward, and one pass backward for the ReLU mask and the
/// bias gradient (float32 accumulation). CUDA tensors only; differentiable in both arguments.
/// Throws `unet::Error` in builds without the kernels.
at::Tensor fused_bias_relu(const at::Tensor& x, const at::Tensor& bias);
/// The plain ATen path that fused_bias_relu must match.
at::Tensor bias_relu_reference(const at::Tensor& x, const at::Tensor& bias);

/// Inference only (no autograd): relu(conv2d(x, weight, padding) + bias) as one cuDNN call (its
/// fused convolution-bias-activation), in the autocast type when CUDA autocast is on. Returns
/// nullopt where that call is unavailable (no CUDA kernels in the build, or cuDNN refused it
/// once: then it is not tried again in this process, after a one-line notice).
std::optional<at::Tensor> cudnn_conv_bias_relu(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                                               int64_t padding);

}  // namespace unet
