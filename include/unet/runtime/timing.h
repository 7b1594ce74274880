// Timing device work: latency statistics for benchmarks and a stopwatch that waits for the device.
#pragma once

#include <c10/core/Device.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace unet {

/// "1h02m", "3m20s", "12s" (negative: "0s"): times left and taken, as progress lines print them.
std::string format_duration(double seconds);

struct LatencyStats {
  int64_t batch_size = 0;
  int64_t steps = 0;
  double images_per_second = 0.0;
  /// Per-batch latency, milliseconds.
  double mean_ms = 0.0;
  double p50_ms = 0.0;
  double p90_ms = 0.0;
  double p95_ms = 0.0;
  double p99_ms = 0.0;
};

/// Statistics of per-batch durations (seconds): images/s = batch / mean; percentiles by the
/// nearest-rank method (the smallest sample with at least q of the samples at or below it).
LatencyStats summarize_latencies(std::vector<double> seconds, int64_t batch_size);

/// Runs `run` `warmup` times untimed, then `steps` times, each timed to the end of its device work.
std::vector<double> time_steps(int64_t warmup, int64_t steps, const c10::Device& device, const std::function<void()>& run);

/// Seconds on the steady clock.
double steady_seconds();

/// The throughput a benchmark's JSON result records ("global_images_per_second", else
/// "images_per_second"), from the text `json` of the file `path`. Throws `unet::Error` naming
/// `path` unless it is a JSON object whose field is a positive, finite number.
double parse_baseline_images_per_second(const std::string& json, const std::string& path);
/// The same, read from `path`: it must be a regular, readable file (a folder or a FIFO is refused
/// before it is opened) of at most 16 MiB.
double read_baseline_images_per_second(const std::string& path);

/// Accumulates the wall-clock time of device work over start/stop intervals. `start` and `stop`
/// wait for the device first (`synchronize`), so that work queued asynchronously (CUDA launches,
/// graph replays) is counted in the interval that queued it, not in the next one.
class DeviceStopwatch {
 public:
  explicit DeviceStopwatch(std::function<void()> synchronize, std::function<double()> clock = steady_seconds);
  /// A stopwatch for `device` (synchronises CUDA devices; nothing to wait for on CPUs).
  explicit DeviceStopwatch(const c10::Device& device);

  void start();
  void stop();
  bool running() const { return running_; }
  /// Total of the finished intervals.
  double seconds() const { return total_; }

 private:
  std::function<void()> synchronize_;
  std::function<double()> clock_;
  bool running_ = false;
  double started_ = 0.0, total_ = 0.0;
};

}  // namespace unet
