// The embedded data sets: synthetic EM-like slices with exact membrane masks (the default), and
// synthetic fluorescence nuclei, many touching, with exact instance labels.
#pragma once

#include "unet/data/dataset.h"
#include "unet/runtime/context.h"

#include <cstdint>
#include <string>

namespace unet {

/// Which synthetic data: EM-like membranes (as ISBI) or fluorescence nuclei (instance labels).
enum class SyntheticKind { kMembranes, kNuclei };
/// "em", "nuclei".
const EnumNames<SyntheticKind>& synthetic_kind_names();

struct SyntheticOptions {
  SyntheticKind kind = SyntheticKind::kMembranes;
  int64_t train_count = 30;
  int64_t test_count = 6;
  /// Side of each square slice, pixels.
  int64_t size = 256;
  /// Mean cell diameter, pixels.
  double cell_size = 40.0;
  /// Membrane thickness, pixels.
  double membrane_width = 3.0;
  /// Mean nucleus diameter (nuclei), pixels.
  double nucleus_size = 22.0;
  /// Standard deviation of the additive noise, in [0, 1] intensity units.
  double noise = 0.08;
  uint64_t seed = kDefaultSeed;
};

/// One slice: uint8 image [1, S, S] (dark membranes around bright textured cells, dark organelles,
/// blur and noise) and its exact uint8 mask (0 = membrane, 255 = cell interior, as ISBI).
std::pair<RawImage, RawImage> synthetic_slice(const SyntheticOptions& options, int64_t index);

/// One nuclei image: uint8 image [1, S, S] (bright textured ellipses on a dark background, in
/// clusters so that many touch, blur and noise) and its exact instance labels int64 [S, S]
/// (touching nuclei meet where their elliptic distances are equal).
std::pair<RawImage, at::Tensor> synthetic_nuclei(const SyntheticOptions& options, int64_t index);

/// A whole data set of `options.kind` (test images unlabelled), deterministic in `options.seed`.
/// Nuclei carry their instance labels, and classes derived for a model of `classes` classes
/// (`attach_instances`).
DataSet synthetic_dataset(const SyntheticOptions& options, int64_t classes = 2, const InstanceTargets& targets = {});

/// Writes a synthetic data set in the ISBI layout (train-volume.tif, train-labels.tif,
/// test-volume.tif) into `dir`.
void write_synthetic_isbi(const std::string& dir, const SyntheticOptions& options);

/// Writes synthetic nuclei in the folder layout into `dir`: images/nuclei-NNN.png (8-bit),
/// masks/nuclei-NNN.png (16-bit instance labels), test/nuclei-NNN.png.
void write_synthetic_nuclei(const std::string& dir, const SyntheticOptions& options);

}  // namespace unet
