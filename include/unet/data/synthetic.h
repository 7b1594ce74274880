// The embedded default data set: synthetic EM-like slices with exact membrane masks.
#pragma once

#include "unet/data/dataset.h"

#include <cstdint>
#include <string>

namespace unet {

struct SyntheticOptions {
  int64_t train_count = 30;
  int64_t test_count = 6;
  /// Side of each square slice, pixels.
  int64_t size = 256;
  /// Mean cell diameter, pixels.
  double cell_size = 40.0;
  /// Membrane thickness, pixels.
  double membrane_width = 3.0;
  /// Standard deviation of the additive noise, in [0, 1] intensity units.
  double noise = 0.08;
  uint64_t seed = 0;
};

/// One slice: uint8 image [1, S, S] (dark membranes around bright textured cells, dark organelles,
/// blur and noise) and its exact uint8 mask (0 = membrane, 255 = cell interior, as ISBI).
std::pair<RawImage, RawImage> synthetic_slice(const SyntheticOptions& options, int64_t index);

/// A whole data set of such slices (test slices unlabelled), deterministic in `options.seed`.
DataSet synthetic_dataset(const SyntheticOptions& options);

/// Writes a synthetic data set in the ISBI layout (train-volume.tif, train-labels.tif,
/// test-volume.tif) into `dir`.
void write_synthetic_isbi(const std::string& dir, const SyntheticOptions& options);

}  // namespace unet
