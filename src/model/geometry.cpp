// Legal input sizes of a U-Net: which sides survive every pooling and what side comes out.
#include "unet/model/geometry.h"
#include "unet/runtime/text.h"

#include <string>

namespace unet {
int64_t output_size_or_invalid(const UNetOptions& options, int64_t input_size) {
  const int64_t shrink = options.padding() == Padding::kValid ? 4 : 0;
  int64_t s = input_size;
  if (s < 1) return -1;
  for (int64_t level = 0; level < options.depth(); ++level) {
    s -= shrink;
    if (s < 2 || s % 2 != 0) return -1;
    s /= 2;
  }
  s -= shrink;  // bottleneck
  if (s < 1) return -1;
  for (int64_t level = 0; level < options.depth(); ++level) {
    s = 2 * s - shrink;
    if (s < 1) return -1;
  }
  return s;
}

std::pair<int64_t, int64_t> nearest_legal_inputs(const UNetOptions& options, int64_t input_size) {
  int64_t below = -1;
  for (int64_t s = input_size - 1; s >= 1; --s) {
    if (output_size_or_invalid(options, s) > 0) {
      below = s;
      break;
    }
  }
  int64_t above = std::max<int64_t>(input_size + 1, 1);
  while (output_size_or_invalid(options, above) <= 0) ++above;
  return {below, above};
}

int64_t output_size(const UNetOptions& options, int64_t input_size) {
  const int64_t out = output_size_or_invalid(options, input_size);
  if (out > 0) return out;
  const auto [below, above] = nearest_legal_inputs(options, input_size);
  std::string message = "input size " + std::to_string(input_size) + " is not legal for a U-Net of " +
                        options.describe() + "; the nearest legal sizes are ";
  message += below > 0 ? std::to_string(below) + " and " + std::to_string(above)
                       : std::to_string(above) + " (the smallest)";
  throw Error(message);
}

int64_t minimum_input_size(const UNetOptions& options) {
  return nearest_legal_inputs(options, 0).second;
}

int64_t input_size_for_output(const UNetOptions& options, int64_t output) {
  int64_t s = minimum_input_size(options);
  while (output_size_or_invalid(options, s) < output) s = nearest_legal_inputs(options, s).second;
  return s;
}

const EnumNames<InputMode>& input_mode_names(bool with_auto) {
  static const EnumNames<InputMode> training = {{"resize", InputMode::kResize}, {"tile", InputMode::kTile}};
  static const EnumNames<InputMode> inference = {
      {"resize", InputMode::kResize}, {"tile", InputMode::kTile}, {"auto", InputMode::kAuto}};
  return with_auto ? inference : training;
}

std::string to_string(InputMode mode) { return name_of(input_mode_names(true), mode); }

InputMode parse_input_mode(const std::string& text, bool with_auto) {
  return parse_name(input_mode_names(with_auto), "input_mode", text);
}

const EnumNames<IntensityMode>& intensity_mode_names() {
  static const EnumNames<IntensityMode> names = {{"range", IntensityMode::kRange},
                                                 {"percentile", IntensityMode::kPercentile},
                                                 {"meanstd", IntensityMode::kMeanStd}};
  return names;
}

std::string to_string(IntensityMode mode) { return name_of(intensity_mode_names(), mode); }

IntensityMode parse_intensity_mode(const std::string& text) { return parse_name(intensity_mode_names(), "normalize", text); }

void Normalisation::validate() const {
  require_option(low >= 0.0 && low < high && high <= 100.0, "percentiles",
                 "must be two percentiles 0 <= low < high <= 100", number_text(low) + " " + number_text(high));
}

std::string Normalisation::describe() const {
  if (mode != IntensityMode::kPercentile) return to_string(mode);
  return "percentile " + number_text(low) + "-" + number_text(high);
}

}  // namespace unet
