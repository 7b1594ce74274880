// Where a step's time goes: LibTorch's Kineto profiler around a few steps, grouped for the README.
#pragma once

#include <c10/core/Device.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace unet {

struct ProfiledKernel {
  std::string name;
  /// "conv fprop", "conv dgrad", "conv wgrad", "elementwise", "reduction", "loss", "optimizer",
  /// "copy", "other" (GPU kernels, by their names); CPU operators keep their own names.
  std::string group;
  int64_t calls = 0;
  /// Milliseconds per profiled step.
  double ms_per_step = 0.0;
};

struct StepProfile {
  c10::Device device{c10::kCPU};
  int steps = 0;
  /// Sum of the kernels' (GPU) or top-level operators' (CPU) time per step, milliseconds.
  double busy_ms_per_step = 0.0;
  /// Wall-clock time per step, milliseconds.
  double wall_ms_per_step = 0.0;
  std::map<std::string, double> group_ms_per_step;
  /// Heaviest first.
  std::vector<ProfiledKernel> kernels;
};

/// The group of a GPU kernel by its name (cuDNN's and CUTLASS's fprop / dgrad / wgrad names,
/// PyTorch's elementwise and reduction kernels, the fused Adam, copies).
std::string kernel_group(const std::string& name);

/// Runs `step` `steps` times under the profiler (after the caller's warm-up) and sums GPU kernel
/// time on CUDA devices, top-level operator time on CPUs. Writes a Chrome trace (chrome://tracing,
/// Perfetto) to `trace_path` unless it is empty.
StepProfile profile_steps(const std::function<void()>& step, int steps, const c10::Device& device,
                          const std::string& trace_path = "");

/// A text table: per-group milliseconds and shares, then the `top` heaviest kernels.
std::string format_profile(const StepProfile& profile, int top = 12);

}  // namespace unet
