// Dynamic loss scaling for fp16 (the reference's LossScaleOptimizer), with its state on the device.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <vector>

namespace unet {

/// Dynamic loss scaling for fp16 (the reference's LossScaleOptimizer): the loss is multiplied by
/// `scale` (initially 2^16) before backward; gradients are unscaled and checked for inf/NaN; a
/// step with non-finite gradients is skipped and halves the scale; 2,000 good steps in a row
/// double it. Scale, growth count and the inf flag live in device tensors.
class LossScaler {
 public:
  LossScaler(const c10::Device& device, bool enabled, double initial_scale = 65536.0, int64_t growth_interval = 2000);

  bool enabled() const { return enabled_; }
  /// loss * scale (loss itself when disabled).
  at::Tensor scale(const at::Tensor& loss) const;
  /// Divides the gradients by the scale in place and sets the found-inf flag; returns the flag
  /// (a device tensor, 1 when a gradient was not finite).
  at::Tensor unscale(const std::vector<at::Tensor>& parameters);
  /// Halves the scale after an inf, doubles it after `growth_interval` clean steps, and counts a
  /// skipped step; all on the device (safe inside a CUDA graph).
  void update();

  /// Host reads of the device state (they synchronise: call them at logging time).
  double current_scale() const;
  int64_t skipped_steps() const;

  /// Scale and growth tracker as a float64 tensor [2] (for checkpoints), and back.
  at::Tensor state() const;
  void set_state(const at::Tensor& state);

 private:
  bool enabled_;
  int64_t growth_interval_;
  at::Tensor scale_;           // float32 [1]
  at::Tensor growth_tracker_;  // int32 [1]
  at::Tensor found_inf_;       // float32 [1]
  at::Tensor skipped_;         // float32 [1]
};

}  // namespace unet
