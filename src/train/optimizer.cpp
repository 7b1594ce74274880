// Graph-safe Adam on ATen's fused multi-tensor kernel, with a device-side learning-rate schedule.
#include "unet/train/optimizer.h"

#include <ATen/ATen.h>
#include <torch/serialize/archive.h>

#include <cmath>
#include <numbers>

namespace unet {

void LrSchedule::validate() const {
  require_option(warmup_steps >= 0, "schedule.warmup_steps", "must not be negative", warmup_steps);
  require_option(total_steps >= 0, "schedule.total_steps", "must not be negative", total_steps);
  require_option(final_factor >= 0.0 && final_factor <= 1.0, "schedule.final_factor", "must lie in [0, 1]", final_factor);
}

double LrSchedule::factor(int64_t step) const {
  double f = 1.0;
  if (warmup_steps > 0) f = std::min(1.0, static_cast<double>(step) / static_cast<double>(warmup_steps));
  if (kind == ScheduleKind::kCosine) {
    const double span = static_cast<double>(std::max<int64_t>(1, total_steps - warmup_steps));
    const double progress = std::clamp(static_cast<double>(step - warmup_steps) / span, 0.0, 1.0);
    f *= final_factor + (1.0 - final_factor) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
  }
  return f;
}

const EnumNames<ScheduleKind>& schedule_names() {
  static const EnumNames<ScheduleKind> names = {{"constant", ScheduleKind::kConstant}, {"cosine", ScheduleKind::kCosine}};
  return names;
}

std::string LrSchedule::to_string() const { return name_of(schedule_names(), kind); }

ScheduleKind parse_schedule(const std::string& text) { return parse_name(schedule_names(), "schedule.kind", text); }

GraphSafeAdam::GraphSafeAdam(const std::vector<at::Tensor>& parameters, const torch::optim::AdamOptions& options,
                             LrSchedule schedule)
    : torch::optim::Adam(parameters, options), params_(parameters), schedule_(schedule), base_lr_(options.lr()) {
  schedule_.validate();
  if (options.amsgrad()) throw Error("GraphSafeAdam does not implement AMSGrad");
  if (params_.empty()) throw Error("GraphSafeAdam needs at least one parameter");
  const auto f32 = at::TensorOptions(at::kFloat).device(params_.front().device());
  step_ = at::zeros({1}, f32);
  lr_ = at::full({1}, base_lr_ * schedule_.factor(1), f32);
  align_state();
}

void GraphSafeAdam::align_state() {
  exp_avg_.clear();
  exp_avg_sq_.clear();
  for (const auto& p : params_) {
    auto& slot = state_[p.unsafeGetTensorImpl()];
    if (!slot) {
      auto s = std::make_unique<torch::optim::AdamParamState>();
      s->step(0);
      s->exp_avg(at::zeros_like(p, at::MemoryFormat::Preserve));
      s->exp_avg_sq(at::zeros_like(p, at::MemoryFormat::Preserve));
      slot = std::move(s);
    }
    auto& s = static_cast<torch::optim::AdamParamState&>(*slot);
    if (!s.exp_avg().defined() || !s.exp_avg_sq().defined() || s.exp_avg().sizes() != p.sizes() ||
        s.exp_avg_sq().sizes() != p.sizes())
      throw Error("the optimizer state does not match the parameters");
    // The fused kernel walks every tensor of a parameter as one flat array: the moments must
    // share the parameter's device and strides (channels-last included).
    if (s.exp_avg().device() != p.device() || s.exp_avg().strides() != p.strides())
      s.exp_avg(at::empty_like(p, at::MemoryFormat::Preserve).copy_(s.exp_avg()));
    if (s.exp_avg_sq().device() != p.device() || s.exp_avg_sq().strides() != p.strides())
      s.exp_avg_sq(at::empty_like(p, at::MemoryFormat::Preserve).copy_(s.exp_avg_sq()));
    exp_avg_.push_back(s.exp_avg());
    exp_avg_sq_.push_back(s.exp_avg_sq());
  }
}

void GraphSafeAdam::refresh_learning_rate() {
  // The same arithmetic as LrSchedule::factor, on a one-element device tensor.
  at::Tensor f = at::ones_like(step_);
  if (schedule_.warmup_steps > 0) f = at::clamp_max(step_ / static_cast<double>(schedule_.warmup_steps), 1.0);
  if (schedule_.kind == ScheduleKind::kCosine) {
    const double span = static_cast<double>(std::max<int64_t>(1, schedule_.total_steps - schedule_.warmup_steps));
    const at::Tensor progress = at::clamp((step_ - static_cast<double>(schedule_.warmup_steps)) / span, 0.0, 1.0);
    const double ff = schedule_.final_factor;
    f = f * (ff + (1.0 - ff) * 0.5 * (1.0 + at::cos(progress * std::numbers::pi)));
  }
  lr_.copy_(f * base_lr_);
}

void GraphSafeAdam::update(const at::Tensor& found_inf) {
  std::vector<at::Tensor> params, grads, exp_avg, exp_avg_sq;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!params_[i].grad().defined()) continue;
    params.push_back(params_[i]);
    grads.push_back(params_[i].grad());
    exp_avg.push_back(exp_avg_[i]);
    exp_avg_sq.push_back(exp_avg_sq_[i]);
  }
  if (params.empty()) return;
  // Like torch.optim.Adam(fused=True): count the step first (the kernel reads it for the bias
  // corrections), then take it back where the kernel skipped because of an inf.
  step_.add_(1.0);
  refresh_learning_rate();
  const std::vector<at::Tensor> steps(params.size(), step_);
  const auto& o = static_cast<const torch::optim::AdamOptions&>(param_groups().front().options());
  const auto [beta1, beta2] = o.betas();
  std::optional<at::Tensor> inf;
  if (found_inf.defined()) inf = found_inf;
  at::_fused_adam_(params, grads, exp_avg, exp_avg_sq, /*max_exp_avg_sqs=*/{}, steps, lr_, beta1, beta2,
                   o.weight_decay(), o.eps(), /*amsgrad=*/false, /*maximize=*/false, /*grad_scale=*/std::nullopt, inf);
  if (found_inf.defined()) step_.sub_(found_inf);
}

at::Tensor GraphSafeAdam::step(LossClosure closure) {
  if (closure) throw Error("GraphSafeAdam does not take a closure");
  update();
  return {};
}

int64_t GraphSafeAdam::steps_taken() const { return static_cast<int64_t>(step_.item<double>()); }

void GraphSafeAdam::save(torch::serialize::OutputArchive& archive) const {
  // LibTorch's Adam format keeps a host step per parameter: copy the device counter there.
  const int64_t steps = steps_taken();
  for (const auto& p : params_) {
    auto it = state_.find(p.unsafeGetTensorImpl());
    if (it != state_.end()) static_cast<torch::optim::AdamParamState&>(*it->second).step(steps);
  }
  torch::optim::Adam::save(archive);
}

void GraphSafeAdam::load(torch::serialize::InputArchive& archive) {
  torch::optim::Adam::load(archive);
  align_state();
  int64_t steps = 0;
  for (const auto& p : params_) {
    auto it = state_.find(p.unsafeGetTensorImpl());
    if (it == state_.end()) continue;
    const auto& s = static_cast<torch::optim::AdamParamState&>(*it->second);
    if (s.step() < 0 || !at::isfinite(s.exp_avg()).all().item<bool>() || !at::isfinite(s.exp_avg_sq()).all().item<bool>())
      throw Error("the optimizer state is not finite or its step is negative");
    steps = std::max(steps, s.step());
  }
  step_.fill_(static_cast<double>(steps));
  refresh_learning_rate();
}

}  // namespace unet
