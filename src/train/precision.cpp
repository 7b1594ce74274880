// Autocast scopes, TF32 switches and the dynamic loss scaler.
#include "unet/precision.h"

#include "unet/error.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>

namespace unet {

Precision parse_precision(const std::string& text) {
  if (text == "fp32") return Precision::kFP32;
  if (text == "tf32") return Precision::kTF32;
  if (text == "fp16" || text == "amp") return Precision::kFP16;
  if (text == "bf16") return Precision::kBF16;
  throw Error("--precision: expected fp32, tf32, fp16 or bf16, got '" + text + "'");
}

std::string to_string(Precision p) {
  switch (p) {
    case Precision::kFP32: return "fp32";
    case Precision::kTF32: return "tf32";
    case Precision::kFP16: return "fp16";
    case Precision::kBF16: return "bf16";
  }
  return "fp32";
}

void require_supported(Precision, const c10::Device&) {
  // Every precision runs on CPUs (fp16 and bf16 through CPU autocast, tf32 as fp32) and CUDA GPUs.
}

PrecisionScope::PrecisionScope(const c10::Device& device, Precision precision)
    : device_type_(device.type()),
      was_enabled_(at::autocast::is_autocast_enabled(device_type_)),
      old_dtype_(at::autocast::get_autocast_dtype(device_type_)),
      autocast_(precision == Precision::kFP16 || precision == Precision::kBF16) {
  if (device.is_cuda()) {
    at::globalContext().setAllowTF32CuDNN(precision == Precision::kTF32);
    at::globalContext().setAllowTF32CuBLAS(precision == Precision::kTF32);
  }
  if (autocast_) {
    // The cast-weight cache would keep tensors made inside a CUDA graph capture alive across
    // replays; every weight is used once per pass anyway, so caching saves nothing.
    was_caching_ = at::autocast::is_autocast_cache_enabled();
    at::autocast::set_autocast_cache_enabled(false);
    at::autocast::set_autocast_dtype(device_type_, precision == Precision::kFP16 ? at::kHalf : at::kBFloat16);
    at::autocast::set_autocast_enabled(device_type_, true);
  }
}

PrecisionScope::~PrecisionScope() {
  if (autocast_) {
    at::autocast::set_autocast_enabled(device_type_, was_enabled_);
    at::autocast::set_autocast_dtype(device_type_, old_dtype_);
    at::autocast::set_autocast_cache_enabled(was_caching_);
  }
}

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
