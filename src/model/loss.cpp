// Cross-entropy plus soft-Dice loss as the reference defines it, and its fused CUDA version (autograd
// function around the kernels; a clear error in builds without them).
#include "unet/model/loss.h"

#include "unet/runtime/error.h"

#include <ATen/ATen.h>

#ifdef UNET_HAS_CUDA_KERNELS
#include "cuda/fused_loss.h"
#include "model/cuda_glue.h"

#include <c10/cuda/CUDAGuard.h>
#include <torch/csrc/autograd/custom_function.h>
#endif

namespace unet {

at::Tensor soft_dice(const at::Tensor& p, const at::Tensor& t) {
  const at::Tensor intersection = (p * t).sum({2, 3});
  const at::Tensor union_ = (p * p + t * t).sum({2, 3});
  return (2.0 * intersection + kDiceEpsilon) / (union_ + kDiceEpsilon);
}

LossTerms segmentation_loss(const at::Tensor& logits, const at::Tensor& labels, const at::Tensor& weights) {
  const at::Tensor x = logits.to(at::kFloat);
  const int64_t classes = x.size(1);
  // One-hot by comparison with the class indices: no host read of the labels (at::one_hot may
  // check their range on the host), so the loss can run inside a CUDA graph.
  const at::Tensor lab = labels.to(x.device());
  const at::Tensor target = lab.unsqueeze(1).eq(at::arange(classes, lab.options()).view({1, classes, 1, 1})).to(at::kFloat);
  const at::Tensor log_p = at::log_softmax(x, /*dim=*/1);
  LossTerms terms;
  const at::Tensor pixel_ce = -(target * log_p).sum(1);  // [N, H, W]
  terms.cross_entropy = weights.defined() ? (pixel_ce * weights.to(x.device(), at::kFloat)).mean() : pixel_ce.mean();
  const at::Tensor dice = soft_dice(log_p.exp(), target).mean(0);  // [C], averaged over the batch
  terms.dice_loss = (1.0 - dice).mean();
  terms.total = terms.cross_entropy + terms.dice_loss;
  return terms;
}

#ifdef UNET_HAS_CUDA_KERNELS

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

cuda::LogitsLayout logits_layout(const at::Tensor& logits) {
  cuda::LogitsLayout l;
  l.n = logits.size(0);
  l.classes = logits.size(1);
  l.height = logits.size(2);
  l.width = logits.size(3);
  l.stride_n = logits.stride(0);
  l.stride_c = logits.stride(1);
  l.stride_h = logits.stride(2);
  l.stride_w = logits.stride(3);
  return l;
}

struct FusedLossFunction : public torch::autograd::Function<FusedLossFunction> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& logits, const at::Tensor& labels,
                               const at::Tensor& weights) {
    const c10::cuda::CUDAGuard guard(logits.device());
    const cuda::LogitsLayout l = logits_layout(logits);
    const at::Tensor lab = labels.to(logits.device(), at::kLong).contiguous();
    // An empty `weights` means no weight map (see fused_segmentation_loss).
    const at::Tensor w = weights.numel() > 0 ? weights.to(logits.device(), at::kFloat).contiguous() : at::Tensor();
    const auto f32 = logits.options().dtype(at::kFloat);
    at::Tensor sums = at::zeros({l.n, l.classes, 3}, f32), ce_sum = at::zeros({1}, f32);
    cuda::launch_fused_loss_forward(kernel_dtype(logits), logits.data_ptr(), l, lab.data_ptr<int64_t>(),
                                    w.defined() ? w.data_ptr<float>() : nullptr, sums.data_ptr<float>(),
                                    ce_sum.data_ptr<float>(), stream_of(logits));
    const at::Tensor ce = ce_sum.squeeze(0) / static_cast<double>(l.n * l.height * l.width);
    const at::Tensor dice = (2.0 * sums.select(2, 0) + kDiceEpsilon) /
                            (sums.select(2, 1) + sums.select(2, 2) + kDiceEpsilon);  // [N, K]
    const at::Tensor dice_loss = (1.0 - dice.mean(0)).mean();
    ctx->save_for_backward({logits, lab, sums, w});
    return {ce, dice_loss};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &logits = saved[0], &labels = saved[1], &sums = saved[2], &w = saved[3];
    const c10::cuda::CUDAGuard guard(logits.device());
    const auto f32 = logits.options().dtype(at::kFloat);
    const at::Tensor grad_ce = grads[0].defined() ? grads[0].to(at::kFloat).reshape({1}).contiguous() : at::zeros({1}, f32);
    const at::Tensor grad_dice = grads[1].defined() ? grads[1].to(at::kFloat).reshape({1}).contiguous() : at::zeros({1}, f32);
    // The kernel writes the gradient with the strides it reads the logits with.
    const at::Tensor source = logits.is_non_overlapping_and_dense() ? logits : logits.contiguous();
    at::Tensor grad_logits = at::empty_like(source, at::MemoryFormat::Preserve);
    cuda::launch_fused_loss_backward(kernel_dtype(source), source.data_ptr(), logits_layout(source), labels.data_ptr<int64_t>(),
                                     w.defined() ? w.data_ptr<float>() : nullptr, sums.data_ptr<float>(),
                                     grad_ce.data_ptr<float>(), grad_dice.data_ptr<float>(), kDiceEpsilon,
                                     grad_logits.data_ptr(), stream_of(source));
    return {grad_logits, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

LossTerms fused_segmentation_loss(const at::Tensor& logits, const at::Tensor& labels, const at::Tensor& weights) {
  if (!logits.is_cuda()) throw Error("fused_segmentation_loss needs CUDA tensors");
  if (logits.dim() != 4 || labels.dim() != 3) throw Error("fused_segmentation_loss: logits [N, C, H, W], labels [N, H, W]");
  if (logits.size(1) > cuda::kMaxLossClasses)
    throw Error("fused_segmentation_loss handles at most " + std::to_string(cuda::kMaxLossClasses) + " classes");
  // LibTorch records every input of a custom function (VariableInfo), which fails on an undefined
  // tensor: "no weight map" travels as an empty one.
  const at::Tensor w = weights.defined() ? weights : at::empty({0}, logits.options().dtype(at::kFloat));
  const variable_list out = FusedLossFunction::apply(logits, labels, w);
  LossTerms terms;
  terms.cross_entropy = out[0];
  terms.dice_loss = out[1];
  terms.total = out[0] + out[1];
  return terms;
}

#else  // no CUDA kernels in this build

LossTerms fused_segmentation_loss(const at::Tensor&, const at::Tensor&, const at::Tensor&) {
  throw Error("this build of unet has no CUDA kernels: the fused operations need a CUDA build");
}

#endif

}  // namespace unet
