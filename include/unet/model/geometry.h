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

/// Network sides: input `input` x `input` in, `output` x `output` out (572 and 388 by default).
/// In `tile` input mode the same sides are those of a training or prediction tile.
struct Geometry {
  int64_t input = 572;
  int64_t output = 388;
  /// Native-resolution tiles instead of resizing.
  bool tile = false;
};

}  // namespace unet
