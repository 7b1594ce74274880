// Fused CUDA operations of the training and inference hot path, each beside its ATen reference.
#pragma once

#include "unet/loss.h"

#include <ATen/core/Tensor.h>

#include <optional>

namespace unet {

/// Whether this build has the fused CUDA kernels (src/cuda, built when LibTorch has CUDA).
bool fused_kernels_built();

/// relu(x + bias) for activations x [N, C, H, W] (float32, fp16 or bf16; channels-last or
/// contiguous) and a bias [C]: one pass forward, and one pass backward for the ReLU mask and the
/// bias gradient (float32 accumulation). CUDA tensors only; differentiable in both arguments.
at::Tensor fused_bias_relu(const at::Tensor& x, const at::Tensor& bias);
/// The plain ATen path that fused_bias_relu must match.
at::Tensor bias_relu_reference(const at::Tensor& x, const at::Tensor& bias);

/// Inference only (no autograd): relu(conv2d(x, weight, padding) + bias) as one cuDNN call (its
/// fused convolution-bias-activation), in the autocast type when CUDA autocast is on. Returns
/// nullopt where that call is unavailable (no CUDA kernels in the build, or cuDNN refused it
/// once: then it is not tried again in this process, after a one-line notice).
std::optional<at::Tensor> cudnn_conv_bias_relu(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                                               int64_t padding);

/// `segmentation_loss` (cross-entropy, optionally pixel-weighted, plus soft Dice) with softmax,
/// both loss terms and the gradient each computed in one kernel over the logits. CUDA tensors,
/// at most 8 classes; differentiable in the logits. The reference is `segmentation_loss`.
LossTerms fused_segmentation_loss(const at::Tensor& logits, const at::Tensor& labels, const at::Tensor& weights = {});

}  // namespace unet
