// Overlap-tile prediction at native resolution: the U-Net paper's strategy for images of any size.
#pragma once

#include "unet/model/geometry.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace unet {

enum class Blend { kGaussian, kUniform };
/// "gaussian", "uniform".
const EnumNames<Blend>& blend_names();
/// Throws `OptionError` (field "blend") for other names.
Blend parse_blend(const std::string& text);

struct TileOptions {
  /// Network input side of a tile (must be legal); its output side follows.
  int64_t input = 572;
  /// Minimum overlap of neighbouring output tiles, pixels. The stride is then rounded down to a
  /// multiple of 2^depth, the shift under which a valid U-Net is exactly translation-equivariant,
  /// so that tiles agree where they overlap.
  int64_t overlap = 0;
  Blend blend = Blend::kGaussian;
  /// Tiles per forward pass: memory is bounded by this, not by the image.
  int64_t batch = 4;
  /// Average over the 8 flips and 90-degree rotations of every tile.
  bool tta = false;
};

/// Transform k (0-7) of the 8 flips and 90-degree rotations of square maps [..., S, S], or its
/// inverse: dihedral(dihedral(x, k, false), k, true) == x.
at::Tensor dihedral(const at::Tensor& x, int k, bool inverse);

/// The output-tile origins along an axis of `size` pixels for output tiles of side `output` and
/// stride `stride` (the last tile is pulled back to end at the border).
std::vector<int64_t> tile_origins(int64_t size, int64_t output, int64_t stride);

/// The stride that `options` gives for a model: output side minus overlap, rounded down to a
/// multiple of 2^depth (at least 2^depth). Throws `OptionError` (field "tile_overlap") for an
/// overlap outside [0, output side).
int64_t tile_stride(const UNetOptions& model, const TileOptions& options);

/// Runs `forward` (a batch [B, C, input, input] -> logits [B, classes, output, output]) over
/// mirror-padded tiles of `image` [C, H, W] and blends their softmax probabilities into
/// [classes, H, W] float32. Memory beyond the image and the result: one batch of tiles.
at::Tensor predict_tiled(const std::function<at::Tensor(const at::Tensor&)>& forward, const UNetOptions& model,
                         const at::Tensor& image, const TileOptions& options);

}  // namespace unet
