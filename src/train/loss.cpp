// Cross-entropy plus soft-Dice loss, as the reference defines it.
#include "unet/loss.h"

#include <ATen/ATen.h>

namespace unet {

at::Tensor soft_dice(const at::Tensor& p, const at::Tensor& t) {
  constexpr double kEps = 1e-6;
  const at::Tensor intersection = (p * t).sum({2, 3});
  const at::Tensor union_ = (p * p + t * t).sum({2, 3});
  return (2.0 * intersection + kEps) / (union_ + kEps);
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

}  // namespace unet
