// The arithmetic of a U-Net's legal input sizes, and how images meet the network.
#pragma once

#include "unet/model/unet.h"

#include <cstdint>
#include <utility>

namespace unet {

/// Output side for an input side, or -1 when the input side is not legal for this architecture
/// (a pooling would see an odd size, or a feature map would vanish).
int64_t output_size_or_invalid(const UNetOptions& options, int64_t input_size);

/// Output side for a legal input side; throws `unet::Error` naming the nearest legal sizes.
int64_t output_size(const UNetOptions& options, int64_t input_size);

/// The nearest legal input sides below and above `input_size` (-1 where none exists below).
std::pair<int64_t, int64_t> nearest_legal_inputs(const UNetOptions& options, int64_t input_size);

/// The smallest legal input side. For the reference network: 188 (output 4).
int64_t minimum_input_size(const UNetOptions& options);

/// The smallest legal input side whose output side is at least `output`.
int64_t input_size_for_output(const UNetOptions& options, int64_t output);

/// How images meet the network: `kResize` (the reference: resize to the output size, pad) or
/// `kTile` (native resolution: mirror-padded tiles whose outputs cover the image). `kAuto`, for
/// inference only: tiles when the model was trained on tiles or an image's size differs from the
/// training images', resizing otherwise.
enum class InputMode { kResize, kTile, kAuto };
/// "resize", "tile" and, with `with_auto`, "auto".
const EnumNames<InputMode>& input_mode_names(bool with_auto = false);
std::string to_string(InputMode mode);
/// Throws `OptionError` (field "input_mode") for other names (and for "auto" unless `with_auto`).
InputMode parse_input_mode(const std::string& text, bool with_auto = false);

/// How an image's intensities become the network's input, computed per image (so that prediction
/// repeats on every image what training did). `kRange` (the reference): intensity / the type's
/// largest value * 2 - 1 (8-bit: x / 127.5 - 1), in [-1, 1]. `kPercentile`: per channel, its `low`
/// and `high` percentiles (linear interpolation, as numpy's default) to -1 and 1, the rest in
/// proportion and not clipped (bioimage.io's scale_range, then * 2 - 1): for dim or unevenly
/// exposed images. `kMeanStd`: per channel, zero mean and unit (population) standard deviation
/// (bioimage.io's zero_mean_unit_variance).
enum class IntensityMode { kRange, kPercentile, kMeanStd };
/// "range", "percentile", "meanstd".
const EnumNames<IntensityMode>& intensity_mode_names();
std::string to_string(IntensityMode mode);
/// Throws `OptionError` (field "normalize") for other names.
IntensityMode parse_intensity_mode(const std::string& text);

struct Normalisation {
  IntensityMode mode = IntensityMode::kRange;
  /// Percentiles, 0-100 (`kPercentile` only).
  double low = 1.0;
  double high = 99.8;
  /// Guards the divisions against an image of one value (bioimage.io's default).
  static constexpr double kEpsilon = 1e-6;

  /// Throws `OptionError` ("percentiles") unless 0 <= low < high <= 100.
  void validate() const;
  /// "range", "percentile 1-99.8", "meanstd".
  std::string describe() const;
  bool operator==(const Normalisation& o) const { return mode == o.mode && low == o.low && high == o.high; }
};

/// The reference network's input side (its output side is 388): the default of training runs.
inline constexpr int64_t kReferenceInputSize = 572;

/// Network sides: input `input` x `input` in, `output` x `output` out, as `geometry_of` pairs them.
/// In `tile` input mode the same sides are those of a training or prediction tile.
struct Geometry {
  int64_t input = 0;
  int64_t output = 0;
  /// Native-resolution tiles instead of resizing.
  bool tile = false;

  /// The context on each side of the output window: the input pixels that valid convolutions
  /// consume (0 with same padding).
  int64_t margin() const { return (input - output) / 2; }
};

/// The sides of `model` for a legal `input_size` (the one place that pairs an input side with its
/// output side); throws as `output_size` does, naming the nearest legal sizes.
inline Geometry geometry_of(const UNetOptions& model, int64_t input_size, bool tile = false) {
  return Geometry{input_size, output_size(model, input_size), tile};
}

}  // namespace unet
