// Latency percentiles, timed steps and the synchronising stopwatch.
#include "unet/runtime/timing.h"

#include "unet/runtime/device.h"
#include "unet/runtime/error.h"
#include "unet/runtime/files.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <cmath>
#include <numeric>

namespace unet {

std::string format_duration(double seconds) {
  const auto s = static_cast<int64_t>(std::llround(std::max(0.0, seconds)));
  char buffer[32];
  if (s >= 3600)
    std::snprintf(buffer, sizeof(buffer), "%lldh%02lldm", static_cast<long long>(s / 3600), static_cast<long long>((s / 60) % 60));
  else if (s >= 60)
    std::snprintf(buffer, sizeof(buffer), "%lldm%02llds", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  else
    std::snprintf(buffer, sizeof(buffer), "%llds", static_cast<long long>(s));
  return buffer;
}

LatencyStats summarize_latencies(std::vector<double> seconds, int64_t batch_size) {
  LatencyStats s;
  s.batch_size = batch_size;
  s.steps = static_cast<int64_t>(seconds.size());
  if (seconds.empty()) return s;
  std::sort(seconds.begin(), seconds.end());
  const double mean = std::accumulate(seconds.begin(), seconds.end(), 0.0) / static_cast<double>(seconds.size());
  auto percentile = [&](double q) {
    const auto rank = static_cast<size_t>(std::ceil(q * static_cast<double>(seconds.size())));
    return 1e3 * seconds[std::min(seconds.size(), std::max<size_t>(rank, 1)) - 1];
  };
  s.mean_ms = 1e3 * mean;
  s.p50_ms = percentile(0.50);
  s.p90_ms = percentile(0.90);
  s.p95_ms = percentile(0.95);
  s.p99_ms = percentile(0.99);
  s.images_per_second = mean > 0 ? static_cast<double>(batch_size) / mean : 0.0;
  return s;
}

std::vector<double> time_steps(int64_t warmup, int64_t steps, const c10::Device& device, const std::function<void()>& run) {
  for (int64_t i = 0; i < warmup; ++i) run();
  synchronize(device);
  std::vector<double> seconds;
  for (int64_t i = 0; i < steps; ++i) {
    const double t0 = steady_seconds();
    run();
    synchronize(device);
    seconds.push_back(steady_seconds() - t0);
  }
  return seconds;
}

double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

DeviceStopwatch::DeviceStopwatch(std::function<void()> synchronize, std::function<double()> clock)
    : synchronize_(std::move(synchronize)), clock_(std::move(clock)) {}

DeviceStopwatch::DeviceStopwatch(const c10::Device& device)
    : DeviceStopwatch([device] { synchronize(device); }) {}

void DeviceStopwatch::start() {
  if (running_) return;
  synchronize_();
  started_ = clock_();
  running_ = true;
}

void DeviceStopwatch::stop() {
  if (!running_) return;
  synchronize_();
  total_ += clock_() - started_;
  running_ = false;
}

double parse_baseline_images_per_second(const std::string& json, const std::string& path) {
  const auto j = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) fail_file(path, "not a benchmark JSON file (no JSON object)");
  const char* key = j.contains("global_images_per_second") ? "global_images_per_second" : "images_per_second";
  if (!j.contains(key)) fail_file(path, "not a benchmark JSON file (no images_per_second)");
  const auto& value = j[key];
  if (!value.is_number()) fail_file(path, std::string(key) + " is not a number");
  const double speed = value.get<double>();
  if (!(speed > 0) || !std::isfinite(speed)) fail_file(path, std::string(key) + " must be a positive number (got " + value.dump() + ")");
  return speed;
}

double read_baseline_images_per_second(const std::string& path) {
  require_readable_file(path);
  std::error_code ec;
  if (std::filesystem::file_size(path, ec) > (16u << 20)) fail_file(path, "too large for a benchmark JSON file (over 16 MiB)");
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  if (!in || !(text << in.rdbuf())) fail_file(path, "cannot read the baseline benchmark");
  return parse_baseline_images_per_second(text.str(), path);
}

}  // namespace unet
