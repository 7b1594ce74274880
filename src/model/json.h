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

}  // namespace unet
