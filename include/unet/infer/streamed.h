// Prediction of images larger than memory: a TIFF/BigTIFF read band by band, predicted with the
// same overlapping tiles as an image in memory, written as tiled OME-TIFF pyramids.
//
// Method. The tiles and their blending are `predict_tiled_rows`'s, so a streamed mask equals the
// in-memory one bit for bit. The output is cut into bands of `TiledTiffSpec::tile` rows; each
// finished band is kept as a small file in a work folder beside the outputs
// (`.<name>.unet-bands/`, with a manifest naming the input, the model and every setting that
// changes a pixel). A stopped or killed run resumes after the last complete band (`resume`): the
// tile rows that cover the first missing band run again, in the same batches, so the result equals
// an uninterrupted run byte for byte. Ranks share an image by bands (rank r takes a contiguous
// run of them) and the last rank to finish, or rank 0 after a barrier, joins the bands
// (`assemble_tiled_tiff`).
#pragma once

#include "unet/data/tiff_region.h"
#include "unet/infer/predictor.h"

#include <cstdint>
#include <functional>
#include <string>

namespace unet {

/// What a streamed prediction writes: the full paths of the outputs (empty: not written).
struct StreamedOutputs {
  /// uint8 masks: 0 / 255 for two classes, class indices (palette) otherwise or with `index_masks`.
  std::string masks;
  /// float32 probabilities: class 1's for two classes, one page per class otherwise.
  std::string probabilities;
  bool index_masks = false;
};

struct StreamOptions {
  /// Continue a stopped run from its work folder (refused when its manifest differs).
  bool resume = false;
  /// This process's share: bands [rank * n / world, (rank + 1) * n / world).
  int rank = 0;
  int world = 1;
  /// Rows per band and tile side of the outputs.
  int64_t band = 256;
  /// Decoded input blocks kept, bytes.
  int64_t cache_bytes = int64_t{256} << 20;
  /// Called with a line of progress (tiles, tiles per second, time left) at most every
  /// `progress_seconds`, and once at the end.
  std::function<void(const std::string&)> progress;
  double progress_seconds = 2.0;
};

/// What `predict_streamed` did.
struct StreamedResult {
  int64_t bands = 0;
  /// Bands found complete in the work folder and not predicted again.
  int64_t resumed_bands = 0;
  int64_t tiles = 0;
  double seconds = 0;
  /// The files written (by the process that joined the bands; empty for the others).
  std::vector<std::string> written;
};

/// The work folder of a streamed prediction into `outputs`: `.<mask file name>.unet-bands` beside
/// the mask file.
std::string stream_work_dir(const StreamedOutputs& outputs);

/// Predicts page 0 of the TIFF `input` with `predictor` (tile mode; its normalisation's statistics
/// come from a first pass over the image when it needs them) into `outputs`. `model_id` names the
/// model in the manifest (the checkpoint's path and step). Throws `unet::Error` naming the file for
/// unreadable input, a manifest that does not match under `resume`, and full disks; nothing is left
/// under an output's name unless it is complete.
StreamedResult predict_streamed(Predictor& predictor, const std::string& input, const StreamedOutputs& outputs,
                                const std::string& model_id, const StreamOptions& options);

}  // namespace unet
