// The fused operations in builds without the CUDA kernels: clear errors (callers check first).
#include "unet/fused.h"

#include "unet/error.h"

namespace unet {

bool fused_kernels_built() { return false; }

at::Tensor fused_bias_relu(const at::Tensor&, const at::Tensor&) {
  throw Error("this build of unet has no CUDA kernels: --fused needs a CUDA build");
}

std::optional<at::Tensor> cudnn_conv_bias_relu(const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t) {
  return std::nullopt;
}

LossTerms fused_segmentation_loss(const at::Tensor&, const at::Tensor&, const at::Tensor&) {
  throw Error("this build of unet has no CUDA kernels: --fused needs a CUDA build");
}

}  // namespace unet
