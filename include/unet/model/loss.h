// The reference's training loss: softmax cross-entropy plus (1 - soft Dice); plain and fused.
#pragma once

#include <ATen/core/Tensor.h>

namespace unet {

/// The epsilon of every soft Dice in unet (loss, fused loss kernel, metrics).
constexpr double kDiceEpsilon = 1e-6;

/// Scalar float32 terms of the loss (computed in fp32 whatever the logits' dtype).
struct LossTerms {
  /// Mean over pixels and images of -sum_c onehot_c * log softmax_c (times the pixel weight when
  /// weights are given).
  at::Tensor cross_entropy;
  /// 1 - soft Dice, the Dice taken per image and class over pixels, averaged over images, then
  /// 1 - Dice averaged over classes.
  at::Tensor dice_loss;
  /// cross_entropy + dice_loss (the L2 weight decay is applied by the optimizer).
  at::Tensor total;
};

/// Soft Dice per image and class, [N, C]: (2 sum p*t + eps) / (sum p^2 + sum t^2 + eps), eps = kDiceEpsilon.
at::Tensor soft_dice(const at::Tensor& probabilities, const at::Tensor& one_hot_target);

/// The loss of `logits` [N, C, H, W] against class indices `labels` [N, H, W] (int64). With
/// `weights` [N, H, W] the cross-entropy is the mean of weights * per-pixel cross-entropy (the
/// U-Net paper's weighted loss); the Dice term is unweighted. The reference path of the fused loss.
LossTerms segmentation_loss(const at::Tensor& logits, const at::Tensor& labels, const at::Tensor& weights = {});

/// `segmentation_loss` with softmax, both loss terms and the gradient each computed in one CUDA
/// kernel over the logits. CUDA tensors, at most 8 classes; differentiable in the logits.
/// Throws `unet::Error` in builds without the kernels.
LossTerms fused_segmentation_loss(const at::Tensor& logits, const at::Tensor& labels, const at::Tensor& weights = {});

}  // namespace unet
