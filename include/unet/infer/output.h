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
/// probability file. `index_masks` writes class indices instead of 0/255 (always so for more
/// than two classes).
std::vector<std::string> write_predictions(const std::string& dir, const std::vector<Sample>& samples,
                                           const std::vector<at::Tensor>& probabilities, bool overlays,
                                           bool index_masks = false);

}  // namespace unet
