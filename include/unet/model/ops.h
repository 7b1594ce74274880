// Fused operations of the network's hot path, each beside the plain ATen path it must match.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <utility>

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

/// The encoder's hand-over at one level: {max_pool2d(x, 2, 2), the centre crop of x to
/// crop_h x crop_w} (the next level's input and the skip connection's part of the decoder's
/// concatenation), as one autograd node. x [N, C, H, W] (any floating type, any device,
/// channels-last or not); crop_h <= H, crop_w <= W; the crop is a view of x.
/// Its backward writes x's gradient once: the pooling's backward, then the crop's gradient added
/// into the centre in place. The plain path (`at::max_pool2d` and `centre_crop` as separate
/// nodes) zero-fills an x-sized gradient per narrowed dimension of the crop, copies into it, and
/// sums with the pooling's: 0.6 s of a 572x572, batch-2 CPU training step, against 0.07 s here.
/// The same values, bit for bit (where the two gradients overlap, the same one addition).
/// Without gradient mode it is the two plain operations.
std::pair<at::Tensor, at::Tensor> max_pool_and_crop(const at::Tensor& x, int64_t crop_h, int64_t crop_w);

}  // namespace unet
