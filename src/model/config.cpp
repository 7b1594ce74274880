// UNetOptions: validation, description and JSON form (stored in checkpoints).
#include "unet/error.h"
#include "unet/model.h"

#include <nlohmann/json.hpp>

namespace unet {

std::string to_string(Padding padding) { return padding == Padding::kValid ? "valid" : "same"; }

Padding parse_padding(const std::string& text) {
  if (text == "valid") return Padding::kValid;
  if (text == "same") return Padding::kSame;
  throw Error("--padding: expected 'valid' or 'same', got '" + text + "'");
}

void UNetOptions::validate() const {
  auto require = [](bool ok, const std::string& what) {
    if (!ok) throw Error(what);
  };
  require(in_channels() >= 1, "--in-channels must be at least 1");
  require(classes() >= 2, "--classes must be at least 2");
  require(depth() >= 1 && depth() <= 8, "--depth must be between 1 and 8");
  require(filters() >= 1 && (filters() << depth()) <= (int64_t{1} << 20),
          "--filters must be at least 1 and filters * 2^depth at most 2^20");
  require(up_kernel() == 2 || up_kernel() == 3, "the up-sampling kernel must be 2 or 3");
  require(dropout() >= 0.0 && dropout() < 1.0, "--dropout must be in [0, 1)");
}

bool UNetOptions::operator==(const UNetOptions& o) const {
  return in_channels() == o.in_channels() && classes() == o.classes() && depth() == o.depth() &&
         filters() == o.filters() && padding() == o.padding() && up_kernel() == o.up_kernel() &&
         dropout() == o.dropout();
}

std::string UNetOptions::describe() const {
  return "depth " + std::to_string(depth()) + ", filters " + std::to_string(filters()) + ", " +
         to_string(padding()) + " padding, " + std::to_string(up_kernel()) + "x" +
         std::to_string(up_kernel()) + " up-sampling, " + std::to_string(in_channels()) + " -> " +
         std::to_string(classes()) + " channels";
}

std::string to_json(const UNetOptions& o) {
  nlohmann::json j = {{"in_channels", o.in_channels()}, {"classes", o.classes()},
                      {"depth", o.depth()},             {"filters", o.filters()},
                      {"padding", to_string(o.padding())}, {"up_kernel", o.up_kernel()},
                      {"dropout", o.dropout()}};
  return j.dump();
}

UNetOptions unet_options_from_json(const std::string& text) {
  try {
    const auto j = nlohmann::json::parse(text);
    UNetOptions o;
    o.in_channels(j.at("in_channels").get<int64_t>())
        .classes(j.at("classes").get<int64_t>())
        .depth(j.at("depth").get<int64_t>())
        .filters(j.at("filters").get<int64_t>())
        .padding(parse_padding(j.at("padding").get<std::string>()))
        .up_kernel(j.at("up_kernel").get<int64_t>())
        .dropout(j.at("dropout").get<double>());
    o.validate();
    return o;
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("malformed model configuration: ") + e.what());
  }
}

}  // namespace unet
