// Prediction of images larger than memory: a TIFF/BigTIFF read band by band, predicted with the
// same overlapping tiles as an image in memory, written as tiled OME-TIFF pyramids.
//
// Method. The tiles and their blending are `predict_tiled_rows`'s, so a streamed mask equals the
// in-memory one bit for bit. The output is cut into bands of `TiledTiffSpec::tile` rows; each
// finished band is kept as a small file in a work folder beside the outputs
// (`.<name>.unet-bands/`, with a manifest naming the input, the model and every setting that
// changes a pixel). A stopped or killed run resumes after the last complete band (`resume`): the
// tile rows that cover the first missing band run again, in the same batches, so the result equals
// an uninterrupted run byte for byte. Processes share an image by bands (each takes a contiguous
// run of them, `predict_stream_share`), and one joins the bands once all are done (`join_stream`,
// `assemble_tiled_tiff`). Instance labels cross the seams as unet/infer/band_objects.h says.
#pragma once

#include "unet/data/tiff_region.h"
#include "unet/eval/instances.h"
#include "unet/infer/predictor.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace unet {

/// What a streamed prediction writes: the full paths of the outputs (empty: not written).
struct StreamedOutputs {
  /// uint8 masks: 0 / 255 for two classes, class indices (palette) otherwise or with `index_masks`.
  std::string masks;
  /// Probabilities: class 1's for two classes, one page per class otherwise, float32 or with
  /// `probability_bits` 8 uint8 (`probability_values`).
  std::string probabilities;
  int probability_bits = 32;
  /// uint32 instance labels (`objects_of` by `scheme`, `method` and `objects`, across bands as
  /// unet/infer/band_objects.h says).
  std::string instances;
  bool index_masks = false;
  ClassScheme scheme = ClassScheme::kPlain;
  InstanceMethod method = InstanceMethod::kComponents;
  ObjectRule objects;
};

struct StreamOptions {
  /// Continue a stopped run from its work folder (refused when its manifest differs).
  bool resume = false;
  /// This process's share of the bands: [rank * n / world, (rank + 1) * n / world).
  int rank = 0;
  int world = 1;
  /// Rows per band and tile side of the outputs (a multiple of 16).
  int64_t band = 256;
  /// Rows above and below a band that its objects are cut out with (at most `band`): objects up
  /// to this tall come out as the whole image gives them.
  int64_t object_margin = 128;
  /// Decoded input blocks kept, bytes (at least those of two rows of tiles).
  int64_t cache_bytes = int64_t{64} << 20;
  /// Called with a line of progress (tiles, tiles per second, time left) at most every
  /// `progress_seconds`, and once at the end (`last` true).
  std::function<void(const std::string& line, bool last)> progress;
  double progress_seconds = 2.0;
};

/// What a streamed prediction did.
struct StreamedResult {
  int64_t bands = 0;
  /// Bands of this process's share found complete in the work folder and not predicted again.
  int64_t resumed_bands = 0;
  int64_t tiles = 0;
  double seconds = 0;
  /// The files written (by `join_stream`).
  std::vector<std::string> written;
  /// Objects in the instance labels (by `join_stream`).
  int64_t objects = 0;
};

/// The work folder of a streamed prediction into `outputs`: `.<mask file name>.unet-bands` beside
/// the mask file.
std::string stream_work_dir(const StreamedOutputs& outputs);

/// What `prepare_stream` found.
struct StreamStart {
  /// A stopped run's folder, continued.
  bool resumed = false;
  int64_t bands = 0;
  int64_t complete_bands = 0;
};

/// Step 1, in one process: checks the input and the free space, and prepares the work folder: a
/// fresh one, or under `resume` the stopped run's when its manifest matches (otherwise an error
/// naming what differs). A stopped run's folder without `resume` is an error (its bands are never
/// removed silently). `model_id` names the model and every setting of the predictor that changes a
/// pixel (its path, step, precision, kernels).
StreamStart prepare_stream(const Predictor& predictor, const std::string& input, const StreamedOutputs& outputs,
                           const std::string& model_id, const StreamOptions& options);
/// How many bands of the work folder are complete (all processes' shares), for a process waiting
/// to join them.
int64_t stream_bands_done(const std::string& input, const StreamedOutputs& outputs, const StreamOptions& options);
/// Step 2, in every process: predicts this process's share of the bands (those not complete yet)
/// into the work folder.
StreamedResult predict_stream_share(Predictor& predictor, const std::string& input, const StreamedOutputs& outputs,
                                    const StreamOptions& options);
/// Step 3, in one process once every share is done: joins the bands into the outputs (atomically)
/// and removes the work folder. Throws `unet::Error` naming a missing band.
StreamedResult join_stream(const std::string& input, const StreamedOutputs& outputs, const StreamOptions& options);

/// The three steps in one process (`options.world` 1).
StreamedResult predict_streamed(Predictor& predictor, const std::string& input, const StreamedOutputs& outputs,
                                const std::string& model_id, const StreamOptions& options);

}  // namespace unet
