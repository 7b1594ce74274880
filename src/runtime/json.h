// JSON forms of the runtime part's types (private to the build: nlohmann stays out of public headers).
#pragma once

#include "unet/runtime/timing.h"

#include <nlohmann/json.hpp>

#include <string>

namespace unet {

/// `j` as JSON text. Strings that are not UTF-8 (a file name in another encoding, a name typed in
/// one) are written with U+FFFD in place of their invalid bytes instead of failing; `indent` as
/// nlohmann's dump (-1: one line).
inline std::string json_text(const nlohmann::json& j, int indent = -1) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

/// Whether `text` is valid UTF-8.
inline bool is_utf8(const std::string& text) {
  try {
    (void)nlohmann::json(text).dump();
    return true;
  } catch (const nlohmann::json::exception&) {
    return false;
  }
}

inline void to_json(nlohmann::json& j, const LatencyStats& s) {
  j = {{"batch_size", s.batch_size},     {"steps", s.steps},           {"images_per_second", s.images_per_second},
       {"latency_ms_mean", s.mean_ms},   {"latency_ms_p50", s.p50_ms}, {"latency_ms_p90", s.p90_ms},
       {"latency_ms_p95", s.p95_ms},     {"latency_ms_p99", s.p99_ms}};
}

}  // namespace unet
