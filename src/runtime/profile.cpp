// Kineto-based step profiles: GPU kernels grouped by kind, or top-level CPU operators.
#include "unet/runtime/profile.h"

#include "unet/runtime/device.h"
#include "unet/runtime/error.h"

#include <torch/csrc/autograd/profiler_kineto.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <set>
#include <sstream>
#include <unordered_map>

namespace unet {
namespace {

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

/// The CPU operators that no other operator on the same thread encloses (they nest: conv2d >
/// convolution > mkldnn_convolution), so that their times add up to the busy time.
std::vector<const torch::autograd::profiler::KinetoEvent*> top_level_operators(
    const std::vector<torch::autograd::profiler::KinetoEvent>& events) {
  std::vector<const torch::autograd::profiler::KinetoEvent*> ops, top;
  for (const auto& e : events)
    if (e.deviceType() == c10::DeviceType::CPU && e.durationNs() > 0) ops.push_back(&e);
  std::sort(ops.begin(), ops.end(), [](auto* a, auto* b) {
    return a->startThreadId() != b->startThreadId() ? a->startThreadId() < b->startThreadId()
           : a->startNs() != b->startNs()           ? a->startNs() < b->startNs()
                                                    : a->durationNs() > b->durationNs();
  });
  uint64_t thread = ~0ull, open_end = 0;
  for (const auto* e : ops) {
    if (e->startThreadId() != thread) {
      thread = e->startThreadId();
      open_end = 0;
    }
    if (e->startNs() >= open_end) {
      top.push_back(e);
      open_end = e->endNs();
    }
  }
  return top;
}

}  // namespace

std::string kernel_group(const std::string& raw) {
  const std::string n = lower(raw);
  if (contains(n, "wgrad")) return "conv wgrad";
  if (contains(n, "dgrad")) return "conv dgrad";
  if (contains(n, "fprop") || contains(n, "implicit_gemm") || contains(n, "conv2d") || contains(n, "convolve"))
    return "conv fprop";
  if (contains(n, "adam")) return "optimizer";
  if (contains(n, "memcpy") || contains(n, "memset") || contains(n, "copy") || contains(n, "nchwtonhwc") ||
      contains(n, "nhwctonchw"))
    return "copy";
  if (contains(n, "reduce") || contains(n, "softmax") || contains(n, "norm")) return "reduction";
  if (contains(n, "loss_")) return "loss";
  if (contains(n, "elementwise") || contains(n, "bias_relu") || contains(n, "pool") ||
      contains(n, "cat") || contains(n, "dropout") || contains(n, "fused_"))
    return "elementwise";
  return "other";
}

StepProfile profile_steps(const std::function<void()>& step, int steps, const c10::Device& device,
                          const std::string& trace_path) {
  namespace prof = torch::autograd::profiler;
  namespace impl = torch::profiler::impl;
  if (steps < 1) throw Error("profile_steps: at least one step");
  // Without a GPU driver Kineto logs a GPU-count error line; CPU profiles do not need it.
  if (!device.is_cuda()) ::setenv("KINETO_LOG_LEVEL", "5", /*overwrite=*/0);
  std::set<impl::ActivityType> activities{impl::ActivityType::CPU};
  if (device.is_cuda()) activities.insert(impl::ActivityType::CUDA);
  synchronize(device);
  prof::prepareProfiler(impl::ProfilerConfig(impl::ProfilerState::KINETO), activities);
  prof::enableProfiler(impl::ProfilerConfig(impl::ProfilerState::KINETO), activities);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) step();
  synchronize(device);
  const double wall = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::unique_ptr<prof::ProfilerResult> result = prof::disableProfiler();
  if (!result) throw Error("the profiler returned no result");

  StepProfile p;
  p.device = device;
  p.steps = steps;
  p.wall_ms_per_step = wall / steps;
  std::unordered_map<std::string, ProfiledKernel> by_name;
  const auto add = [&](const std::string& name, const std::string& group, double ms) {
    auto& k = by_name[name];
    k.name = name;
    k.group = group;
    k.calls += 1;
    k.ms_per_step += ms / steps;
  };
  if (device.is_cuda()) {
    for (const auto& e : result->events())
      if (e.deviceType() == c10::DeviceType::CUDA && e.durationNs() > 0) add(e.name(), kernel_group(e.name()), e.durationNs() * 1e-6);
  } else {
    for (const auto* e : top_level_operators(result->events())) add(e->name(), e->name(), e->durationNs() * 1e-6);
  }
  for (auto& [name, k] : by_name) {
    k.calls /= steps;
    p.kernels.push_back(k);
    p.group_ms_per_step[k.group] += k.ms_per_step;
    p.busy_ms_per_step += k.ms_per_step;
  }
  std::sort(p.kernels.begin(), p.kernels.end(), [](const auto& a, const auto& b) { return a.ms_per_step > b.ms_per_step; });
  if (!trace_path.empty()) result->save(trace_path);
  return p;
}

std::string format_profile(const StepProfile& p, int top) {
  std::ostringstream out;
  char line[256];
  std::snprintf(line, sizeof(line), "profile of %d steps on %s: %.2f ms wall, %.2f ms %s per step\n", p.steps,
                p.device.str().c_str(), p.wall_ms_per_step, p.busy_ms_per_step,
                p.device.is_cuda() ? "in GPU kernels" : "in top-level operators");
  out << line;
  if (p.device.is_cuda()) {
    std::vector<std::pair<double, std::string>> groups;
    for (const auto& [g, ms] : p.group_ms_per_step) groups.emplace_back(ms, g);
    std::sort(groups.rbegin(), groups.rend());
    for (const auto& [ms, g] : groups) {
      std::snprintf(line, sizeof(line), "  %-12s %9.3f ms  %5.1f%%\n", g.c_str(), ms, p.busy_ms_per_step > 0 ? 100 * ms / p.busy_ms_per_step : 0.0);
      out << line;
    }
  }
  out << "  heaviest:\n";
  for (size_t i = 0; i < p.kernels.size() && static_cast<int>(i) < top; ++i) {
    const auto& k = p.kernels[i];
    std::string name = k.name.size() > 90 ? k.name.substr(0, 87) + "..." : k.name;
    std::snprintf(line, sizeof(line), "  %9.3f ms  %4lld x  %-12s %s\n", k.ms_per_step, static_cast<long long>(k.calls),
                  p.device.is_cuda() ? k.group.c_str() : "", name.c_str());
    out << line;
  }
  return out.str();
}

}  // namespace unet
