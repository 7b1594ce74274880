// Throughput and latency statistics for the benchmark command.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace unet {

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

  std::string to_json() const;
};

/// Statistics of per-batch durations (seconds): images/s = batch / mean; percentiles by the
/// nearest-rank method (the smallest sample with at least q of the samples at or below it).
LatencyStats summarize_latencies(std::vector<double> seconds, int64_t batch_size);

}  // namespace unet
