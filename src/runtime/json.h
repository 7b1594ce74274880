// JSON forms of the runtime part's types (private to the build: nlohmann stays out of public headers).
#pragma once

#include "unet/runtime/timing.h"

#include <nlohmann/json.hpp>

namespace unet {

inline void to_json(nlohmann::json& j, const LatencyStats& s) {
  j = {{"batch_size", s.batch_size},     {"steps", s.steps},           {"images_per_second", s.images_per_second},
       {"latency_ms_mean", s.mean_ms},   {"latency_ms_p50", s.p50_ms}, {"latency_ms_p90", s.p90_ms},
       {"latency_ms_p95", s.p95_ms},     {"latency_ms_p99", s.p99_ms}};
}

}  // namespace unet
