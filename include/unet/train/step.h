// One optimisation step on device tensors, run eagerly or replayed from a captured CUDA graph.
#pragma once

#include "unet/dist/dist.h"
#include "unet/model/loss.h"
#include "unet/model/unet.h"
#include "unet/runtime/graph.h"
#include "unet/runtime/precision.h"
#include "unet/train/loss_scaler.h"
#include "unet/train/optimizer.h"

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <memory>
#include <optional>

namespace unet {

/// The body of a training step: forward (autocast to `precision`), loss (fused or plain), scaled
/// backward, gradient reduction over ranks, loss-scale check and Adam, with no host read of
/// device values, so that a CUDA graph can capture it. Gradients must be cleared before.
class TrainStep {
 public:
  /// Keeps references: the caller owns the model, optimizer, scaler and (optional) reducer.
  TrainStep(UNet model, GraphSafeAdam& optimizer, LossScaler& scaler, GradientReducer* reducer, c10::Device device,
            Precision precision, bool fused);
  LossTerms operator()(const at::Tensor& images, const at::Tensor& labels, const at::Tensor& weights);

 private:
  UNet model_;
  GraphSafeAdam& optimizer_;
  LossScaler& scaler_;
  GradientReducer* reducer_;
  c10::Device device_;
  Precision precision_;
  bool fused_;
};

/// A `TrainStep` captured as one CUDA graph after `warmup` eager runs on the capture's stream, then
/// replayed from static input buffers (the reference's XLA). Random numbers (dropout) are drawn
/// afresh at every replay.
class GraphedStep {
 public:
  GraphedStep(TrainStep& body, GraphSafeAdam& optimizer, c10::Device device, int64_t warmup);
  GraphedStep(const GraphedStep&) = delete;
  GraphedStep& operator=(const GraphedStep&) = delete;

  /// One step: eager while warming up, then captured once and replayed. nullopt: run this step
  /// eagerly instead (a batch of another shape; or the capture failed, after a one-line notice
  /// when `notify`, and then `failed()` is true and every later call returns nullopt).
  /// With a captured graph the same loss tensors are overwritten by the next replay.
  std::optional<LossTerms> run(const at::Tensor& images, const at::Tensor& labels, const at::Tensor& weights,
                               bool notify = true);
  bool captured() const { return captured_; }
  bool failed() const { return failed_; }

 private:
  TrainStep& body_;
  GraphSafeAdam& optimizer_;
  int64_t eager_left_;
  std::unique_ptr<StepGraph> graph_;
  bool captured_ = false, failed_ = false;
  at::Tensor images_, labels_, weights_;
  LossTerms terms_;

  bool same_shapes(const at::Tensor& images, const at::Tensor& labels, const at::Tensor& weights) const;
};

}  // namespace unet
