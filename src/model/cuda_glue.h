// What the autograd functions around the CUDA kernels share: the kernels' view of a tensor's type and stream.
#pragma once

#ifdef UNET_HAS_CUDA_KERNELS

#include "cuda/kernel_types.h"
#include "unet/runtime/error.h"

#include <ATen/core/Tensor.h>
#include <c10/cuda/CUDAStream.h>

namespace unet {

inline cuda::DType kernel_dtype(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat: return cuda::DType::kFloat;
    case at::kHalf: return cuda::DType::kHalf;
    case at::kBFloat16: return cuda::DType::kBFloat16;
    default: throw Error(std::string("fused kernels take float32, fp16 or bf16 tensors, not ") + c10::toString(t.scalar_type()));
  }
}

inline cudaStream_t stream_of(const at::Tensor& t) { return c10::cuda::getCurrentCUDAStream(t.device().index()).stream(); }

}  // namespace unet

#endif
