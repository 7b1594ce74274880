// Graph-safe Adam: step counter, learning rate and the fp16 skip decision live in device memory.
#pragma once

#include "unet/runtime/error.h"

#include <ATen/core/Tensor.h>
#include <torch/optim/adam.h>

#include <cstdint>
#include <string>
#include <vector>

namespace unet {

/// Learning-rate schedule as a factor of the base rate, evaluated on the device from the step
/// counter so that a replayed CUDA graph sees the current rate.
enum class ScheduleKind { kConstant, kCosine };
/// "constant", "cosine".
const EnumNames<ScheduleKind>& schedule_names();
struct LrSchedule {
  ScheduleKind kind = ScheduleKind::kConstant;
  /// Linear warm-up from base/warmup_steps to base over the first warmup_steps steps (0: none).
  int64_t warmup_steps = 0;
  /// Cosine decay from the end of the warm-up to `final_factor` * base at `total_steps`.
  int64_t total_steps = 0;
  double final_factor = 0.0;

  /// Throws `OptionError` (fields "schedule.warmup_steps", "schedule.total_steps",
  /// "schedule.final_factor") on negative lengths or a factor outside [0, 1].
  void validate() const;
  /// The factor at 1-based step `step` (host-side, for documentation and tests).
  double factor(int64_t step) const;
  std::string to_string() const;
};
/// "constant" or "cosine"; throws `OptionError` (field "schedule.kind") otherwise.
ScheduleKind parse_schedule(const std::string& text);

/// Adam (L2 weight decay added to the gradient, like torch::optim::Adam) whose update is one call
/// of ATen's fused multi-tensor Adam with the learning rate as a device tensor. Nothing in
/// `update` reads device values on the host, so it can be captured in a CUDA graph. The moments
/// live in torch::optim::Adam's state, so checkpoints keep LibTorch's Adam format.
class GraphSafeAdam : public torch::optim::Adam {
 public:
  GraphSafeAdam(const std::vector<at::Tensor>& parameters, const torch::optim::AdamOptions& options,
                LrSchedule schedule = {});

  /// One update from the parameters' current gradients. `found_inf` (float32 [1] on the
  /// parameters' device, optional): when it holds a non-zero value nothing changes, not even
  /// the step counter.
  void update(const at::Tensor& found_inf = {});
  /// torch::optim::Optimizer's entry point: update() without an inf flag (no closure allowed).
  at::Tensor step(LossClosure closure = nullptr) override;

  /// Completed updates (float32 [1], on the device).
  const at::Tensor& step_count() const { return step_; }
  /// The rate of the latest update (float32 [1], on the device).
  const at::Tensor& learning_rate() const { return lr_; }
  /// Host read of step_count() (synchronises).
  int64_t steps_taken() const;

  /// Moves the moments to the parameters' current devices and strides (after the model moved).
  void align_state();

  void save(torch::serialize::OutputArchive& archive) const override;
  /// Restores moments and step onto the parameters' devices and memory formats.
  void load(torch::serialize::InputArchive& archive) override;

 private:
  std::vector<at::Tensor> params_, exp_avg_, exp_avg_sq_;
  LrSchedule schedule_;
  double base_lr_;
  at::Tensor step_;  // float32 [1]
  at::Tensor lr_;    // float32 [1]

  /// lr_ = base * factor(step_), with tensor arithmetic only.
  void refresh_learning_rate();
};

}  // namespace unet
