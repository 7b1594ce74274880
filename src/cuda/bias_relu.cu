// Kernels of the fused bias + ReLU: forward in one pass, ReLU mask and bias gradient in one pass.
#include "bias_relu.h"
#include "channel_cursor.cuh"
#include "device_math.cuh"
#include "dispatch.cuh"

#include <stdexcept>

namespace unet::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxChannels = 12288;  // 48 KB of float partial sums per block

template <typename T>
__global__ void bias_relu_forward_kernel(const T* x, const float* bias, T* y, ChannelLayout layout) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t start = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  ChannelCursor cursor(start, stride, layout.inner, layout.channels);
  for (int64_t i = start; i < layout.numel; i += stride, cursor.advance()) {
    const float v = load(x, i) + bias[cursor.channel];
    store(y, i, (v > 0.0f || v != v) ? v : 0.0f);
  }
}

template <typename T>
__global__ void bias_relu_backward_kernel(const T* grad_y, const T* y, T* grad_x, float* grad_bias, ChannelLayout layout) {
  extern __shared__ float partial[];  // [channels]: this block's share of the bias gradient
  for (int64_t c = threadIdx.x; c < layout.channels; c += blockDim.x) partial[c] = 0.0f;
  __syncthreads();
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t start = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  ChannelCursor cursor(start, stride, layout.inner, layout.channels);
  for (int64_t i = start; i < layout.numel; i += stride, cursor.advance()) {
    const float g = load(y, i) > 0.0f ? load(grad_y, i) : 0.0f;
    store(grad_x, i, g);
    if (g != 0.0f) atomicAdd(&partial[cursor.channel], g);
  }
  __syncthreads();
  for (int64_t c = threadIdx.x; c < layout.channels; c += blockDim.x)
    if (partial[c] != 0.0f) atomicAdd(&grad_bias[c], partial[c]);
}

}  // namespace

void launch_bias_relu_forward(DType dtype, const void* x, const float* bias, void* y, const ChannelLayout& layout,
                              cudaStream_t stream) {
  if (layout.numel == 0) return;
  const int blocks = grid_size(layout.numel, kThreads);
  dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    bias_relu_forward_kernel<<<blocks, kThreads, 0, stream>>>(static_cast<const T*>(x), bias, static_cast<T*>(y), layout);
  });
  check_launch("bias_relu_forward");
}

void launch_bias_relu_backward(DType dtype, const void* grad_y, const void* y, void* grad_x, float* grad_bias,
                               const ChannelLayout& layout, cudaStream_t stream) {
  if (layout.channels > kMaxChannels) throw std::invalid_argument("bias_relu_backward: too many channels");
  if (layout.numel == 0) return;
  const int blocks = grid_size(layout.numel, kThreads);
  const size_t shared = static_cast<size_t>(layout.channels) * sizeof(float);
  dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    bias_relu_backward_kernel<<<blocks, kThreads, shared, stream>>>(static_cast<const T*>(grad_y), static_cast<const T*>(y),
                                                                    static_cast<T*>(grad_x), grad_bias, layout);
  });
  check_launch("bias_relu_backward");
}

}  // namespace unet::cuda
