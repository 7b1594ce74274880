// Device-side loads and stores that widen fp16/bf16 to float32 and round back once.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace unet::cuda {

__device__ __forceinline__ float load(const float* p, int64_t i) { return p[i]; }
__device__ __forceinline__ float load(const __half* p, int64_t i) { return __half2float(p[i]); }
__device__ __forceinline__ float load(const __nv_bfloat16* p, int64_t i) { return __bfloat162float(p[i]); }
__device__ __forceinline__ void store(float* p, int64_t i, float v) { p[i] = v; }
__device__ __forceinline__ void store(__half* p, int64_t i, float v) { p[i] = __float2half_rn(v); }
__device__ __forceinline__ void store(__nv_bfloat16* p, int64_t i, float v) { p[i] = __float2bfloat16_rn(v); }

/// Blocks for a grid-stride loop over `work` items: enough to fill the device (8 per SM), no more.
inline int grid_size(int64_t work, int threads) {
  static const int blocks_per_device = [] {
    int device = 0, sms = 0;
    cudaGetDevice(&device);
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
    return (sms > 0 ? sms : 80) * 8;
  }();
  const int64_t needed = (work + threads - 1) / threads;
  return static_cast<int>(needed < blocks_per_device ? (needed > 0 ? needed : 1) : blocks_per_device);
}

}  // namespace unet::cuda
