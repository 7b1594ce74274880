// Kernels of the fused segmentation loss: one pass for the loss sums, one pass for the gradient.
#include "device_math.cuh"
#include "dispatch.cuh"
#include "fused_loss.h"

#include <stdexcept>
#include <string>

namespace unet::cuda {
namespace {

constexpr int kThreads = 256;

/// Softmax of one pixel's logits into p[0..classes); returns log of the softmax denominator
/// relative to the maximum, so that log p_k = z_k - max - log_sum.
template <typename T>
__device__ __forceinline__ float pixel_softmax(const T* logits, int64_t base, const LogitsLayout& l, float* p,
                                               float* max_out) {
  float z[kMaxLossClasses];
  float m = -INFINITY;
  for (int k = 0; k < l.classes; ++k) {
    z[k] = load(logits, base + k * l.stride_c);
    m = fmaxf(m, z[k]);
  }
  float sum = 0.0f;
  for (int k = 0; k < l.classes; ++k) {
    p[k] = expf(z[k] - m);
    sum += p[k];
  }
  const float inv = 1.0f / sum;
  for (int k = 0; k < l.classes; ++k) p[k] *= inv;
  *max_out = m;
  return logf(sum);
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

template <typename T>
__global__ void loss_forward_kernel(const T* logits, LogitsLayout l, const int64_t* labels, const float* weights,
                                    float* sums, float* ce_sum) {
  // blockIdx.y is the image; the block's partial sums go through shared memory to global atomics.
  __shared__ float block_sums[3 * kMaxLossClasses + 1];
  const int values = 3 * static_cast<int>(l.classes) + 1;
  for (int v = threadIdx.x; v < values; v += blockDim.x) block_sums[v] = 0.0f;
  __syncthreads();
  const int64_t image = blockIdx.y, pixels = l.height * l.width;
  float acc[3 * kMaxLossClasses + 1];
  for (int v = 0; v < values; ++v) acc[v] = 0.0f;
  for (int64_t q = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; q < pixels;
       q += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t y = q / l.width, x = q % l.width;
    const int64_t base = image * l.stride_n + y * l.stride_h + x * l.stride_w;
    float p[kMaxLossClasses], m;
    const float log_sum = pixel_softmax(logits, base, l, p, &m);
    const int64_t label = labels[image * pixels + q];
    const float w = weights ? weights[image * pixels + q] : 1.0f;
    if (label >= 0 && label < l.classes)
      acc[3 * l.classes] += w * -(load(logits, base + label * l.stride_c) - m - log_sum);
    for (int k = 0; k < l.classes; ++k) {
      const float t = label == k ? 1.0f : 0.0f;
      acc[3 * k] += p[k] * t;
      acc[3 * k + 1] += p[k] * p[k];
      acc[3 * k + 2] += t;
    }
  }
  for (int v = 0; v < values; ++v) {
    const float s = warp_sum(acc[v]);
    if ((threadIdx.x & 31) == 0) atomicAdd(&block_sums[v], s);
  }
  __syncthreads();
  for (int v = threadIdx.x; v < values; v += blockDim.x) {
    if (v < 3 * l.classes) atomicAdd(&sums[image * 3 * l.classes + v], block_sums[v]);
    else atomicAdd(ce_sum, block_sums[v]);
  }
}

template <typename T>
__global__ void loss_backward_kernel(const T* logits, LogitsLayout l, const int64_t* labels, const float* weights,
                                     const float* sums, const float* grad_ce, const float* grad_dice, float eps,
                                     T* grad_logits) {
  const int64_t image = blockIdx.y, pixels = l.height * l.width;
  const float ce_scale = grad_ce[0] / static_cast<float>(l.n * pixels);
  const float dice_scale = -grad_dice[0] / static_cast<float>(l.classes * l.n);
  const float* s = sums + image * 3 * l.classes;
  for (int64_t q = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; q < pixels;
       q += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t y = q / l.width, x = q % l.width;
    const int64_t base = image * l.stride_n + y * l.stride_h + x * l.stride_w;
    float p[kMaxLossClasses], m;
    pixel_softmax(logits, base, l, p, &m);
    const int64_t label = labels[image * pixels + q];
    // A label outside the classes contributes no cross-entropy (as in the forward pass).
    const float w = label >= 0 && label < l.classes ? (weights ? weights[image * pixels + q] : 1.0f) : 0.0f;
    // g_k = d(loss)/d(p_k) of the Dice term; Dice = (2I + eps) / (U + eps), U = sum p^2 + sum t.
    float g[kMaxLossClasses], gp = 0.0f;
    for (int k = 0; k < l.classes; ++k) {
      const float t = label == k ? 1.0f : 0.0f;
      const float numerator = 2.0f * s[3 * k] + eps;
      const float denominator = s[3 * k + 1] + s[3 * k + 2] + eps;
      g[k] = dice_scale * (2.0f * t * denominator - numerator * 2.0f * p[k]) / (denominator * denominator);
      gp += g[k] * p[k];
    }
    for (int k = 0; k < l.classes; ++k) {
      const float t = label == k ? 1.0f : 0.0f;
      store(grad_logits, base + k * l.stride_c, ce_scale * w * (p[k] - t) + p[k] * (g[k] - gp));
    }
  }
}

void check(const LogitsLayout& l) {
  if (l.classes < 1 || l.classes > kMaxLossClasses)
    throw std::invalid_argument("fused loss: " + std::to_string(l.classes) + " classes (at most " +
                                std::to_string(kMaxLossClasses) + ")");
  if (l.n > 65535) throw std::invalid_argument("fused loss: batch larger than 65,535");
}

dim3 loss_grid(const LogitsLayout& l) {
  // Spread each image's pixels over enough blocks to fill the device together.
  const int64_t per_image = (grid_size(l.n * l.height * l.width, kThreads) + l.n - 1) / l.n;
  return dim3(static_cast<unsigned>(per_image > 0 ? per_image : 1), static_cast<unsigned>(l.n));
}

}  // namespace

void launch_fused_loss_forward(DType dtype, const void* logits, const LogitsLayout& layout, const int64_t* labels,
                               const float* weights, float* sums, float* ce_sum, cudaStream_t stream) {
  check(layout);
  if (layout.n == 0 || layout.height * layout.width == 0) return;
  const dim3 grid = loss_grid(layout);
  dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    loss_forward_kernel<<<grid, kThreads, 0, stream>>>(static_cast<const T*>(logits), layout, labels, weights, sums, ce_sum);
  });
  check_launch("fused_loss_forward");
}

void launch_fused_loss_backward(DType dtype, const void* logits, const LogitsLayout& layout, const int64_t* labels,
                                const float* weights, const float* sums, const float* grad_ce, const float* grad_dice,
                                double dice_epsilon, void* grad_logits, cudaStream_t stream) {
  check(layout);
  if (layout.n == 0 || layout.height * layout.width == 0) return;
  const dim3 grid = loss_grid(layout);
  dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    loss_backward_kernel<<<grid, kThreads, 0, stream>>>(static_cast<const T*>(logits), layout, labels, weights, sums, grad_ce,
                                                        grad_dice, static_cast<float>(dice_epsilon), static_cast<T*>(grad_logits));
  });
  check_launch("fused_loss_backward");
}

}  // namespace unet::cuda
