// The training step's body, and its capture and replay as a CUDA graph.
#include "unet/train/step.h"

#include "unet/runtime/device.h"

#include <ATen/ATen.h>

namespace unet {

TrainStep::TrainStep(UNet model, GraphSafeAdam& optimizer, LossScaler& scaler, GradientReducer* reducer,
                     c10::Device device, Precision precision, bool fused)
    : model_(std::move(model)),
      optimizer_(optimizer),
      scaler_(scaler),
      reducer_(reducer),
      device_(device),
      precision_(precision),
      fused_(fused) {}

LossTerms TrainStep::operator()(const at::Tensor& images, const at::Tensor& labels, const at::Tensor& weights) {
  LossTerms terms;
  {
    PrecisionScope precision(device_, precision_);
    const at::Tensor logits = model_->forward(images);
    // The loss itself is fp32 either way (the fused kernel accumulates in float32).
    terms = fused_ ? fused_segmentation_loss(logits, labels, weights) : segmentation_loss(logits, labels, weights);
  }
  scaler_.scale(terms.total).backward();
  // Ranks average the scaled gradients first, so every rank sees the same inf flag and makes
  // the same skip decision.
  if (reducer_) reducer_->finish();
  if (scaler_.enabled()) {
    // The skip decision stays on the device: the optimizer leaves everything unchanged when the
    // flag is set, so no host read interrupts the step (or breaks a graph capture).
    optimizer_.update(scaler_.unscale(model_->parameters()));
    scaler_.update();
  } else {
    optimizer_.update();
  }
  return terms;
}

GraphedStep::GraphedStep(TrainStep& body, GraphSafeAdam& optimizer, c10::Device device, int64_t warmup)
    : body_(body), optimizer_(optimizer), eager_left_(warmup), graph_(std::make_unique<StepGraph>(device)) {}

bool GraphedStep::same_shapes(const at::Tensor& images, const at::Tensor& labels, const at::Tensor& weights) const {
  return images.sizes() == images_.sizes() && labels.sizes() == labels_.sizes() &&
         weights.defined() == weights_.defined() && (!weights.defined() || weights.sizes() == weights_.sizes());
}

std::optional<LossTerms> GraphedStep::run(const at::Tensor& images, const at::Tensor& labels, const at::Tensor& weights,
                                          bool notify) {
  if (failed_) return std::nullopt;
  if (!captured_ && eager_left_ > 0) {
    // Eager warm-up on the capture's stream: cuDNN autotuning and workspaces outside the capture.
    --eager_left_;
    LossTerms terms;
    graph_->warmup([&] {
      optimizer_.zero_grad(/*set_to_none=*/true);
      terms = body_(images, labels, weights);
    });
    return terms;
  }
  if (!captured_) {
    images_ = images.clone(at::MemoryFormat::Preserve);
    labels_ = labels.clone();
    weights_ = weights.defined() ? weights.clone() : at::Tensor();
    // Gradients must be allocated inside the capture (from the graph's pool), so that every
    // replay writes them in place.
    optimizer_.zero_grad(/*set_to_none=*/true);
    try {
      graph_->capture([this] {
        const LossTerms t = body_(images_, labels_, weights_);
        terms_ = {t.cross_entropy.detach(), t.dice_loss.detach(), t.total.detach()};
      });
      captured_ = true;
    } catch (const Error& e) {
      if (notify) notice(std::string(e.what()) + "; training continues without CUDA graphs");
      failed_ = true;
      graph_.reset();
      images_ = labels_ = weights_ = at::Tensor();
      return std::nullopt;
    }
  }
  // A batch of another shape (none in a normal run) takes the eager path; the graph stays valid.
  if (!same_shapes(images, labels, weights)) return std::nullopt;
  images_.copy_(images, /*non_blocking=*/true);
  labels_.copy_(labels, /*non_blocking=*/true);
  if (weights.defined()) weights_.copy_(weights, /*non_blocking=*/true);
  graph_->replay();
  return terms_;
}

}  // namespace unet
