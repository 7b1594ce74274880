// Latency percentiles and throughput from per-batch timings.
#include "unet/benchmark.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>

namespace unet {

std::string LatencyStats::to_json() const {
  return nlohmann::json{{"batch_size", batch_size}, {"steps", steps},   {"images_per_second", images_per_second},
                        {"latency_ms_mean", mean_ms}, {"latency_ms_p50", p50_ms}, {"latency_ms_p90", p90_ms},
                        {"latency_ms_p95", p95_ms}, {"latency_ms_p99", p99_ms}}
      .dump();
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

}  // namespace unet
