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
  /// Network input side of a tile (must be legal); its output side follows. `kModelInputSide`
  /// (the default): the model's training input side, which `tile_options` puts in.
  static constexpr int64_t kModelInputSide = 0;
  int64_t input = kModelInputSide;
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

/// Class maps [N, K, S, S] predicted for view k of an image (`dihedral(x, k, false)`), in the
/// image's own frame: `dihedral(maps, k, true)`, and for direction classes, which turn with the
/// image, each direction's map taken from the direction it became in the view (a quarter turn
/// counter-clockwise makes east north; a left-right flip makes east west).
at::Tensor dihedral_maps(const at::Tensor& maps, int k, ClassScheme scheme);

/// Softmax probabilities (float32) of a batch [B, C, S, S] through `forward` (logits), with `tta`
/// averaged over the 8 flips and rotations, each view's maps brought back by `dihedral_maps`.
at::Tensor view_probabilities(const std::function<at::Tensor(const at::Tensor&)>& forward, const at::Tensor& batch, bool tta,
                              ClassScheme scheme);

/// The output-tile origins along an axis of `size` pixels for output tiles of side `output` and
/// stride `stride` (the last tile is pulled back to end at the border).
std::vector<int64_t> tile_origins(int64_t size, int64_t output, int64_t stride);

/// The stride that `options` gives for a model: output side minus overlap, rounded down to a
/// multiple of 2^depth (at least 2^depth). Throws `OptionError` (field "tile_overlap") for an
/// overlap outside [0, output side).
int64_t tile_stride(const UNetOptions& model, const TileOptions& options);

/// Where `predict_tiled_rows` reads its input: the network's intensities [C, h, W] of image rows
/// [y, y + h) over the whole width.
using RowSource = std::function<at::Tensor(int64_t y, int64_t h)>;
/// Where it hands the finished probabilities [classes, h, W] of image rows [y, y + h), top to
/// bottom, each row once.
using RowSink = std::function<void(int64_t y, const at::Tensor& probabilities)>;
/// Progress of `predict_tiled_rows`: tiles done, tiles in all (of the rows asked for).
using TileProgress = std::function<void(int64_t done, int64_t total)>;

/// Overlap-tile prediction row of tiles by row of tiles, for images that need not be in memory:
/// runs `forward` (a batch [B, C, input, input] -> logits [B, classes, output, output]) over the
/// mirror-padded tiles of an image of `height` x `width` pixels and blends their softmax
/// probabilities (Gaussian or uniform weights), reading the rows each tile row needs from `source`
/// and handing rows to `sink` as soon as no later tile covers them. Memory: the input rows of one
/// tile row, and the sums of the rows not yet finished (about two tile rows), over the width.
///
/// Only image rows [from_y, to_y) are handed over (to_y <= 0: to the bottom), and only the tile rows
/// that cover them run. A row's value does not depend on which rows were asked for: every tile
/// covering it runs, in the same batches (a batch never spans two tile rows) and the same order, so
/// a run resumed at a band, or an image shared out by bands, equals a whole run bit for bit.
void predict_tiled_rows(const std::function<at::Tensor(const at::Tensor&)>& forward, const UNetOptions& model,
                        int64_t height, int64_t width, const TileOptions& options, const RowSource& source,
                        const RowSink& sink, int64_t from_y = 0, int64_t to_y = 0, const TileProgress& progress = {});

/// The tiles that `predict_tiled_rows` runs for rows [from_y, to_y) of an image of `height` x
/// `width` (to_y <= 0: to the bottom).
int64_t tiles_for_rows(const UNetOptions& model, int64_t height, int64_t width, const TileOptions& options,
                       int64_t from_y = 0, int64_t to_y = 0);

/// `predict_tiled_rows` over an image in memory: `image` [C, H, W] (network intensities) ->
/// probabilities [classes, H, W] float32. Memory beyond the image and the result: one tile row.
at::Tensor predict_tiled(const std::function<at::Tensor(const at::Tensor&)>& forward, const UNetOptions& model,
                         const at::Tensor& image, const TileOptions& options);

}  // namespace unet
