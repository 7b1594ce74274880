// Prediction files: masks and probabilities as multi-page TIFFs, overlays as PNGs.
#pragma once

#include "unet/data/dataset.h"

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

namespace unet {

/// Writes predictions into `dir`: `test-masks.tif` (multi-page uint8, 255 = class 1 = cell
/// interior, as the reference), `test-probabilities.tif` (float32 pages in [0, 1], the probability
/// of class 1 = non-membrane: the challenge's submission format) and, when `overlays` is set, one
/// PNG per sample in `dir/overlays` (page k of "stack.tif" as "stack_k.png") with the predicted
/// membrane tinted red over the image. Returns the paths written. Only two-class models write the
/// probability file, and only with `probabilities_file`. `index_masks` writes class indices
/// instead of 0/255 (always so for more than two classes).
std::vector<std::string> write_predictions(const std::string& dir, const std::vector<Sample>& samples,
                                           const std::vector<at::Tensor>& probabilities, bool overlays,
                                           bool index_masks = false, bool probabilities_file = true);

/// Folder out: one mask per input file, named by the file's stem, in the input's format family
/// (`<stem>.png` for PNG inputs; `<stem>.tif` otherwise, with one page per page of the input),
/// with 0/255 or class indices as `write_predictions`; with `probabilities`, `<stem>_probabilities.tif`
/// (float32: the probability of class 1 for two classes, one page per class otherwise; one page
/// per input page for stacks of two-class maps); overlays as `write_predictions`. Samples of one
/// file must be adjacent (as `load_images` gives them). Throws `unet::Error` when two inputs would
/// write the same file (a.tif and a.tiff). Returns the paths written.
std::vector<std::string> write_predictions_per_file(const std::string& dir, const std::vector<Sample>& samples,
                                                    const std::vector<at::Tensor>& probabilities, bool overlays,
                                                    bool index_masks, bool probabilities_files);

/// The files `write_predictions_per_file` writes for these samples, overlays aside (to check them
/// before predicting).
std::vector<std::string> per_file_outputs(const std::string& dir, const std::vector<Sample>& samples,
                                          bool probabilities_files);

}  // namespace unet
