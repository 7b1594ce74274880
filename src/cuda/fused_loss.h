// Softmax, cross-entropy and soft Dice over the logits in one forward and one backward kernel: host launchers.
#pragma once

#include "kernel_types.h"

namespace unet::cuda {

/// Most classes the loss kernels handle (per-pixel arrays live in registers).
constexpr int kMaxLossClasses = 8;

/// Logits [n, classes, height, width] with element strides (any memory format).
struct LogitsLayout {
  int64_t n = 0, classes = 0, height = 0, width = 0;
  int64_t stride_n = 0, stride_c = 0, stride_h = 0, stride_w = 0;
};

/// Per pixel: softmax p over the classes and the one-hot target t of `labels` (int64 [n, h, w],
/// contiguous). Accumulates (float32, zero them first) sums[(image * classes + k) * 3 + {0, 1, 2}]
/// += {p_k t_k, p_k^2, t_k} and ce_sum[0] += w * -log p_label, with w = weights[pixel] (float32
/// [n, h, w], contiguous) or 1 when `weights` is null.
void launch_fused_loss_forward(DType dtype, const void* logits, const LogitsLayout& layout, const int64_t* labels,
                               const float* weights, float* sums, float* ce_sum, cudaStream_t stream);

/// The gradient of grad_ce * CE + grad_dice * (1 - mean_k mean_n Dice[n, k]) with CE = ce_sum /
/// (n h w) and Dice = (2 sum p t + eps) / (sum p^2 + sum t + eps) with eps = `dice_epsilon`,
/// written to `grad_logits` with the logits' layout. grad_ce and grad_dice are float32 device
/// scalars (read on the device, so the launch can be captured in a CUDA graph).
void launch_fused_loss_backward(DType dtype, const void* logits, const LogitsLayout& layout, const int64_t* labels,
                                const float* weights, const float* sums, const float* grad_ce, const float* grad_dice,
                                double dice_epsilon, void* grad_logits, cudaStream_t stream);

}  // namespace unet::cuda
