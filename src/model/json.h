// JSON forms of the model part's types (private to the build: nlohmann stays out of public headers).
#pragma once

#include "unet/model/geometry.h"
#include "unet/model/unet.h"

#include <nlohmann/json.hpp>

namespace unet {

inline void to_json(nlohmann::json& j, const UNetOptions& o) {
  j = {{"in_channels", o.in_channels()}, {"classes", o.classes()},     {"depth", o.depth()},
       {"filters", o.filters()},         {"padding", to_string(o.padding())}, {"up_kernel", o.up_kernel()},
       {"dropout", o.dropout()}};
  // Written only when not plain, so that plain models' records read as before.
  if (o.scheme() != ClassScheme::kPlain) j["class_scheme"] = to_string(o.scheme());
}

/// Throws nlohmann's exceptions for missing or mistyped keys and `OptionError` for bad values.
inline void from_json(const nlohmann::json& j, UNetOptions& o) {
  o.in_channels(j.at("in_channels").get<int64_t>())
      .classes(j.at("classes").get<int64_t>())
      .depth(j.at("depth").get<int64_t>())
      .filters(j.at("filters").get<int64_t>())
      .padding(parse_padding(j.at("padding").get<std::string>()))
      .up_kernel(j.at("up_kernel").get<int64_t>())
      .dropout(j.at("dropout").get<double>())
      .scheme(parse_class_scheme(j.value("class_scheme", std::string("plain"))));
  o.validate();
}

inline void to_json(nlohmann::json& j, const Normalisation& n) {
  j = {{"mode", to_string(n.mode)}, {"low", n.low}, {"high", n.high}};
}

/// Throws nlohmann's exceptions for missing or mistyped keys and `OptionError` for bad values.
inline void from_json(const nlohmann::json& j, Normalisation& n) {
  n.mode = parse_intensity_mode(j.at("mode").get<std::string>());
  n.low = j.at("low").get<double>();
  n.high = j.at("high").get<double>();
  n.validate();
}

/// The largest image side a record may state, pixels: beyond it a value is damage, not training.
constexpr int64_t kMaxRecordedSide = int64_t{1} << 20;

/// The object record in a training record `record` (a JSON object: "object_area_median",
/// "object_threshold", "min_object_probability"; each absent: 0, not recorded). Throws `Error`
/// naming the field whose value is of the wrong type or out of its range.
inline ObjectRecord read_object_record(const nlohmann::json& record) {
  ObjectRecord out;
  if (const auto a = record.find("object_area_median"); a != record.end()) {
    if (!a->is_number_integer() || a->get<int64_t>() < 0 || a->get<int64_t>() > kMaxRecordedSide * kMaxRecordedSide)
      throw Error("object area");
    out.median_area = a->get<int64_t>();
  }
  if (const auto t = record.find("object_threshold"); t != record.end()) {
    if (!t->is_number() || !legal_object_threshold(t->get<double>())) throw Error("object threshold not above 0 and below 1");
    out.threshold = t->get<double>();
  }
  if (const auto p = record.find("min_object_probability"); p != record.end()) {
    if (!p->is_number() || !legal_min_object_probability(p->get<double>()))
      throw Error("smallest mean object probability not at least 0 and below 1");
    out.min_probability = p->get<double>();
  }
  return out;
}

}  // namespace unet
