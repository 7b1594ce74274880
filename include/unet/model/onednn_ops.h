// oneDNN's fused convolutions on CPUs, reached through LibTorch's `mkldnn` operators (the kernels
// torch.compile's CPU backend emits): the raw calls, for the inference engine, and convolution +
// bias + ReLU with a backward, for training.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace unet {

/// Whether this LibTorch has oneDNN and its fused convolution operators
/// (`mkldnn::_convolution_pointwise`, `_convolution_transpose_pointwise`, and the weight reorders).
bool onednn_fusion_available();

/// conv2d(x, w, b), stride 1, square `padding`, with the ReLU inside the same oneDNN call when
/// `relu`. x [N, C, H, W] channels-last or contiguous (float32 or bfloat16, as w and b); w plain
/// [O, C, k, k] or prepacked (`onednn_pack_conv`); b [O]. No autograd.
at::Tensor onednn_conv(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, int64_t padding, bool relu);

/// relu(conv_transpose2d(x, w, b)), stride 2, padding = output padding = `padding`, one oneDNN
/// call. w plain [C, O, k, k] or prepacked (`onednn_pack_conv_transpose`). No autograd.
at::Tensor onednn_conv_transpose_relu(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, int64_t padding);

/// w reordered once into oneDNN's preferred layout for inputs of shape `input` (inference only).
at::Tensor onednn_pack_conv(const at::Tensor& w, int64_t padding, const std::vector<int64_t>& input);
at::Tensor onednn_pack_conv_transpose(const at::Tensor& w, int64_t padding, const std::vector<int64_t>& input);

/// Training on CPUs: relu(conv2d(x, w, b, stride 1, padding)) (or, with `transposed`,
/// relu(conv_transpose2d(x, w, b, stride 2, padding, output padding = padding))) with the bias
/// and ReLU inside oneDNN's convolution: one call and one activation forward instead of three
/// passes. Backward: the ReLU's mask, then the convolution's gradients in one
/// `at::convolution_backward` (input, weight and bias, as needed), or for a float32 transposed
/// convolution `transposed_conv_gradients`. Differentiable in x, w, b.
/// Under CPU autocast it computes in the autocast type, as at::conv2d would; float32 and
/// bfloat16 only (`onednn_trainable`). Matches the plain path within rounding.
at::Tensor onednn_conv_bias_relu(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, int64_t padding,
                                 bool transposed = false);

/// The dtype a CPU convolution of `x` computes in: CPU autocast's type where autocast is on,
/// x's own otherwise.
at::ScalarType cpu_compute_type(const at::Tensor& x);

/// Whether `onednn_conv_bias_relu` takes `x`: a CPU tensor, float32 or bfloat16 after autocast,
/// and the operators available.
bool onednn_trainable(const at::Tensor& x);

}  // namespace unet
