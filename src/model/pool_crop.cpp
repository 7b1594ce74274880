// The encoder's hand-over (max-pooling for the next level, centre crop for the skip connection)
// as one autograd node.
//
// Why: a U-Net level's activation x feeds two consumers, the 2x2 max-pooling and the crop of
// the skip connection. Left to autograd, the crop's backward allocates an x-sized zero tensor and
// copies its gradient into the centre, the pooling's backward writes another x-sized tensor, and
// the engine adds the two into a third: five x-sized passes over the largest activations of the
// network (the top level's is 165 MB at 572x572, batch 2, fp32). Here the pooling's backward
// writes x's gradient and the crop's gradient is added into its centre in place: one x-sized
// pass and one crop-sized one. The values are the same sums in the same order.
#include "unet/model/ops.h"

#include "unet/runtime/error.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

namespace unet {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr int64_t kPool = 2;

struct MaxPoolAndCropFunction : public torch::autograd::Function<MaxPoolAndCropFunction> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, int64_t top, int64_t left, int64_t crop_h,
                               int64_t crop_w) {
    auto [pooled, indices] = at::max_pool2d_with_indices(x, {kPool, kPool}, {kPool, kPool});
    ctx->save_for_backward({x, indices});
    ctx->saved_data["top"] = top;
    ctx->saved_data["left"] = left;
    return {pooled, x.narrow(2, top, crop_h).narrow(3, left, crop_w)};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &indices = saved[1];
    const at::Tensor &grad_pooled = grads[0], &grad_crop = grads[1];
    at::Tensor grad_x = grad_pooled.defined()
                            ? at::max_pool2d_with_indices_backward(grad_pooled, x, {kPool, kPool}, {kPool, kPool}, {0, 0},
                                                                   {1, 1}, /*ceil_mode=*/false, indices)
                            : at::zeros_like(x);
    if (grad_crop.defined()) {
      grad_x.narrow(2, ctx->saved_data["top"].toInt(), grad_crop.size(2))
          .narrow(3, ctx->saved_data["left"].toInt(), grad_crop.size(3))
          .add_(grad_crop);
    }
    return {grad_x, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

std::pair<at::Tensor, at::Tensor> max_pool_and_crop(const at::Tensor& x, int64_t crop_h, int64_t crop_w) {
  if (x.dim() != 4 || crop_h < 1 || crop_w < 1 || crop_h > x.size(2) || crop_w > x.size(3))
    throw Error("max_pool_and_crop: the crop " + std::to_string(crop_h) + "x" + std::to_string(crop_w) +
                " does not fit the [N, C, H, W] input");
  const int64_t top = (x.size(2) - crop_h) / 2, left = (x.size(3) - crop_w) / 2;
  if (!at::GradMode::is_enabled() || !x.requires_grad()) {
    return {at::max_pool2d(x, {kPool, kPool}, {kPool, kPool}), x.narrow(2, top, crop_h).narrow(3, left, crop_w)};
  }
  auto outputs = MaxPoolAndCropFunction::apply(x, top, left, crop_h, crop_w);
  return {outputs[0], outputs[1]};
}

}  // namespace unet
