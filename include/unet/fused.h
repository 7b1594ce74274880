// Fused CUDA operations of the training and inference hot path, each beside its ATen reference.
#pragma once

#include "unet/loss.h"

#include <ATen/core/Tensor.h>

namespace unet {

/// Whether this build has the fused CUDA kernels (src/cuda, built when LibTorch has CUDA).
bool fused_kernels_built();

/// relu(x + bias) for activations x [N, C, H, W] (float32, fp16 or bf16; channels-last or
/// contiguous) and a bias [C]: one pass forward, and one pass backward for the ReLU mask and the
/// bias gradient (float32 accumulation). CUDA tensors only; differentiable in both arguments.
at::Tensor fused_bias_relu(const at::Tensor& x, const at::Tensor& bias);
/// The plain ATen path that fused_bias_relu must match.
at::Tensor bias_relu_reference(const at::Tensor& x, const at::Tensor& bias);

/// `segmentation_loss` (cross-entropy, optionally pixel-weighted, plus soft Dice) with softmax,
/// both loss terms and the gradient each computed in one kernel over the logits. CUDA tensors,
/// at most 8 classes; differentiable in the logits. The reference is `segmentation_loss`.
LossTerms fused_segmentation_loss(const at::Tensor& logits, const at::Tensor& labels, const at::Tensor& weights = {});

}  // namespace unet
