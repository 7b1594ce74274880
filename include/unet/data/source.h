// Where a command's labelled data comes from: a data directory, or the embedded synthetic data set.
#pragma once

#include "unet/data/dataset.h"
#include "unet/data/synthetic.h"

#include <cstdint>
#include <string>

namespace unet {

struct DataOptions {
  /// ISBI layout (train-volume.tif, train-labels.tif, test-volume.tif) or folder layout (images/,
  /// masks/, test/); empty with `use_synthetic`: the built-in synthetic data set.
  std::string dir;
  MaskEncoding mask_encoding = MaskEncoding::kAuto;
  /// Width of the boundary class, pixels, when 3 classes come from instance masks.
  int64_t boundary_width = 2;
  /// What more than two classes learnt from instance masks stand for: interior-boundary (3
  /// classes) or distance (background and classes - 1 distance bins).
  ClassScheme instance_scheme = ClassScheme::kInteriorBoundary;
  /// `instance_scheme` and `boundary_width` together.
  InstanceTargets instance_targets() const { return {instance_scheme, boundary_width}; }
  /// The cross-validation fold held out for evaluation (0 to fold_count() - 1), or -1: none
  /// (train on every image, evaluate nothing).
  int fold = 0;
  /// Seeds the fold split's shuffle and the synthetic data.
  uint64_t seed = kDefaultSeed;
  /// The built-in synthetic data set instead of a directory: used only when asked for (`dir` empty
  /// and `use_synthetic` set), never as a fallback for a forgotten directory. Its seed is `seed`.
  bool use_synthetic = false;
  SyntheticOptions synthetic;
  /// One name per class, in label order (empty: membrane, cell for ISBI-style and synthetic EM
  /// data; background, foreground for two-class folder or instance data; background, interior,
  /// boundary for three classes from instances; class0, class1, ... otherwise).
  std::vector<std::string> class_names;

  /// Throws `OptionError` for out-of-range values.
  void validate() const;
};

/// Throws `OptionError` (field "class_names") for an empty name, one that is not UTF-8 text or holds
/// a control character, or a name given twice.
void validate_class_names(const std::vector<std::string>& names);

/// The data set that `options` names, masks decoded for `classes` classes, its classes named
/// (`OptionError` for `class_names` when their count is not `classes`, and for instance masks
/// with other than 2 or 3 classes). The synthetic nuclei are instance labels whatever
/// `mask_encoding` says.
DataSet load_data(const DataOptions& options, int64_t classes);

/// The labelled images of `options.fold`: its training and held-out evaluation images.
struct FoldData {
  std::vector<Sample> train;
  std::vector<Sample> eval;
};
FoldData fold_data(const DataSet& data, const DataOptions& options);

}  // namespace unet
