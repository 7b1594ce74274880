// The dynamic loss scaler: scale, unscale with an inf check, and the scale's update, all on the device.
#include "unet/train/loss_scaler.h"

#include <ATen/ATen.h>

namespace unet {

LossScaler::LossScaler(const c10::Device& device, bool enabled, double initial_scale, int64_t growth_interval)
    : enabled_(enabled), growth_interval_(growth_interval) {
  const auto f32 = at::TensorOptions(at::kFloat).device(device);
  scale_ = at::full({1}, initial_scale, f32);
  growth_tracker_ = at::zeros({1}, at::TensorOptions(at::kInt).device(device));
  found_inf_ = at::zeros({1}, f32);
  skipped_ = at::zeros({1}, f32);
}

at::Tensor LossScaler::scale(const at::Tensor& loss) const { return enabled_ ? loss * scale_ : loss; }

at::Tensor LossScaler::unscale(const std::vector<at::Tensor>& parameters) {
  found_inf_.zero_();
  if (!enabled_) return found_inf_;
  std::vector<at::Tensor> grads;
  for (const auto& p : parameters)
    if (p.grad().defined()) grads.push_back(p.grad());
  const at::Tensor inv_scale = scale_.to(at::kDouble).reciprocal().to(at::kFloat);
  at::_amp_foreach_non_finite_check_and_unscale_(grads, found_inf_, inv_scale);
  return found_inf_;
}

void LossScaler::update() {
  if (!enabled_) return;
  at::_amp_update_scale_(scale_, growth_tracker_, found_inf_, /*scale_growth_factor=*/2.0,
                         /*scale_backoff_factor=*/0.5, growth_interval_);
  skipped_.add_(found_inf_);
}

double LossScaler::current_scale() const { return scale_.item<double>(); }

int64_t LossScaler::skipped_steps() const { return static_cast<int64_t>(skipped_.item<double>()); }

at::Tensor LossScaler::state() const {
  return at::stack({scale_.to(at::kDouble).cpu()[0], growth_tracker_.to(at::kDouble).cpu()[0]});
}

void LossScaler::set_state(const at::Tensor& state) {
  const at::Tensor s = state.to(at::kDouble).cpu();
  scale_.fill_(s[0].item<double>());
  growth_tracker_.fill_(static_cast<int64_t>(s[1].item<double>()));
}

}  // namespace unet
