// Fused bias + ReLU after a bias-free convolution, and its backward in one pass: host launchers.
#pragma once

#include "kernel_types.h"

namespace unet::cuda {

/// Layout of an activation tensor as the kernels see it: `numel` elements of which element i
/// belongs to channel (i / inner) % channels; inner 1 for channels-last (NHWC) memory, H*W for
/// contiguous NCHW.
struct ChannelLayout {
  int64_t numel = 0;
  int64_t channels = 0;
  int64_t inner = 1;
};

/// y[i] = relu(x[i] + bias[channel(i)]), computed in float32 and rounded once; NaN propagates as
/// in at::relu. `x` and `y` may be the same buffer. `bias` is float32 [channels].
void launch_bias_relu_forward(DType dtype, const void* x, const float* bias, void* y, const ChannelLayout& layout,
                              cudaStream_t stream);

/// grad_x[i] = y[i] > 0 ? grad_y[i] : 0 and grad_bias[c] += sum of grad_x over channel c
/// (float32; zero it first), reading grad_y and y once. Throws std::invalid_argument when the
/// channel count exceeds the shared-memory partial sums (12,288 channels).
void launch_bias_relu_backward(DType dtype, const void* grad_y, const void* y, void* grad_x, float* grad_bias,
                               const ChannelLayout& layout, cudaStream_t stream);

}  // namespace unet::cuda
