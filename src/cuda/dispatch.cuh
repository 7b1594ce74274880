// Device-side helpers of every kernel file: the element-type dispatch and the launch check.
#pragma once

#include "kernel_types.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace unet::cuda {

/// Calls `launch(T{})` with T the element type that `dtype` names (float, __half, __nv_bfloat16).
template <typename Launch>
void dispatch_dtype(DType dtype, Launch&& launch) {
  switch (dtype) {
    case DType::kFloat: launch(float{}); break;
    case DType::kHalf: launch(__half{}); break;
    case DType::kBFloat16: launch(__nv_bfloat16{}); break;
  }
}

/// Throws std::runtime_error naming `what` when the last launch failed.
inline void check_launch(const char* what) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

}  // namespace unet::cuda
