// The gradients of the U-Net's up-sampling (a stride-2 transposed convolution) on CPUs, as one
// strided convolution and a few large matrix products instead of LibTorch's convolution backward.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <utility>

namespace unet {

/// For y = conv_transpose2d(x, w, stride 2, padding p, output padding p) with a k x k kernel
/// (k = 2, p = 0 or k = 3, p = 1: both up-samplings of the U-Net) and the gradient g of y:
/// the input gradient conv2d(g, w, stride 2, padding p) and the filter gradient, in float32 on
/// the CPU. x [N, C, H, W], w [C, O, k, k], g [N, O, 2H, 2W] (any layout). Returns (gx, gw);
/// either is skipped (undefined) when not wanted.
///
/// Why: LibTorch's convolution backward for channels-last transposed convolutions took 4-6x its
/// forward on the reference network (AMD EPYC, AVX2; 2.5x in NCHW), most of it in the filter
/// gradient. Here each kernel tap's filter gradient is one matrix product over every input pixel:
/// x and g's four stride-2 phases are laid out with one padding row and column, so that the tap's
/// shifted pixels are a contiguous range of rows (src/model/transposed_conv_grad.cpp).
std::pair<at::Tensor, at::Tensor> transposed_conv_gradients(const at::Tensor& g, const at::Tensor& x, const at::Tensor& w,
                                                            int64_t padding, bool input_grad, bool weight_grad);

}  // namespace unet
