// Types shared by the host launchers of the CUDA kernels (plain C++: no CUDA headers needed to use them).
#pragma once

#include <cstdint>

typedef struct CUstream_st* cudaStream_t;

namespace unet::cuda {

/// Element type of the activations a kernel reads and writes (accumulation is always float32).
enum class DType { kFloat, kHalf, kBFloat16 };

}  // namespace unet::cuda
