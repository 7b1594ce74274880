// ATen reference paths of the fused operations, and their stand-ins in builds without CUDA.
#include "unet/fused.h"

#include "unet/error.h"

#include <ATen/ATen.h>

namespace unet {

at::Tensor bias_relu_reference(const at::Tensor& x, const at::Tensor& bias) {
  return at::relu(x + bias.to(x.scalar_type()).view({1, -1, 1, 1}));
}

#ifndef UNET_TORCH_HAS_CUDA
bool fused_kernels_built() { return false; }

at::Tensor fused_bias_relu(const at::Tensor&, const at::Tensor&) {
  throw Error("this build of unet has no CUDA kernels: --fused needs a CUDA build");
}

LossTerms fused_segmentation_loss(const at::Tensor&, const at::Tensor&, const at::Tensor&) {
  throw Error("this build of unet has no CUDA kernels: --fused needs a CUDA build");
}
#endif

}  // namespace unet
