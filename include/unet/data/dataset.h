// Data sets: the ISBI 2012 layout, folders of images and masks, mask decoding and fold splits.
#pragma once

#include "unet/data/image_io.h"
#include "unet/data/instance_targets.h"
#include "unet/model/scheme.h"
#include "unet/runtime/error.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace unet {

/// One slice. `image` is float32 [C, H, W] with intensities in [-1, 1] (`normalise`) at the
/// file's resolution; `mask` is int64 [H, W] class indices (undefined for unlabelled test slices).
struct Sample {
  at::Tensor image;
  at::Tensor mask;
  /// The truth's objects, int64 [H, W] (0 background, one label per object), when the masks are
  /// instance labels (undefined otherwise): `mask` then holds the classes derived from them.
  at::Tensor instances;
  /// Per-pixel loss weights, float [H, W] (undefined: uniform), e.g. `border_weight_map(mask)`.
  at::Tensor weights;
  /// Training only: the per-image normalisation `image` went through (`normalisation_affine`,
  /// float32 [C, 2], from the whole image), which the colour jitter undoes and redoes (undefined:
  /// none, `image` as `normalise` gave it).
  at::Tensor intensity;
  /// The file the slice comes from (its name, without directories) and its page in a stack
  /// (-1: the file's only image).
  std::string source;
  int64_t page = -1;

  /// How messages name the slice: "train-volume.tif#3" for a page of a stack, else the file name.
  std::string name() const { return page >= 0 ? source + "#" + std::to_string(page) : source; }
};

/// The class whose hard Dice and IoU are reported and that overlays tint: in the ISBI labels class 0
/// is the membrane (0 in the mask files).
constexpr int64_t kMembraneClass = 0;

/// How mask files encode classes: `kBinary` 0 / 255 (or 0 / 65535) for two classes, as the ISBI
/// labels (0 = membrane = class 0, 255 = cell interior = class 1); `kIndex` the class index itself;
/// `kAuto` decides once per data set from all its masks (`MaskSurveyor`, unet/data/mask_survey.h:
/// binary, index, or instance labels when the values exceed the classes and form one connected
/// region per label); `decode_mask` alone decides per mask (binary or index); `kInstances`
/// instance labels (0 background, one value per object), from which the classes are derived
/// (unet/data/instance_targets.h: 2 classes objects parted by background, 3 interior/boundary).
enum class MaskEncoding { kAuto, kBinary, kIndex, kInstances };
/// "auto", "binary", "index", "instances".
const EnumNames<MaskEncoding>& mask_encoding_names();
/// Throws `OptionError` (field "mask_encoding") for other names.
MaskEncoding parse_mask_encoding(const std::string& text);

/// A labelled training set and an optional unlabelled test set.
/// Where a data set comes from: the layout says what its classes are by default.
enum class DataLayout {
  kIsbi,       ///< train-volume.tif + train-labels.tif: class 0 membrane, class 1 cell
  kFolder,     ///< images/ + masks/: class 0 background, the others the objects
  kSynthetic,  ///< the embedded synthetic slices: EM-like (labelled as ISBI) or nuclei (instances)
};

struct DataSet {
  std::vector<Sample> train;
  std::vector<Sample> test;
  int64_t channels = 1;
  std::string description;
  DataLayout layout = DataLayout::kIsbi;
  /// One name per class (`load_data` fills them: the given names, or the layout's defaults).
  std::vector<std::string> class_names;
  /// The class whose hard Dice and IoU head the reports: 0 (membrane) for ISBI-style data, 1 (the
  /// objects) for two-class folder data, -1 (none: every class alike) beyond two classes.
  int64_t headline_class = 0;
  /// What the classes stand for: interior/boundary or distance when more than 2 classes come from
  /// instance labels (`instance_scheme`).
  ClassScheme scheme = ClassScheme::kPlain;
  /// `class_names` and `headline_class` together, as checkpoints record them.
  ClassNaming naming() const { return {class_names, headline_class}; }
  /// Whether the labelled samples carry `instances` (instance-label masks).
  bool has_instances() const { return !train.empty() && train.front().instances.defined(); }
};

/// The layout of the data directory `dir` (`kIsbi` or `kFolder`); throws `unet::Error` naming it
/// when it does not exist, is no directory or holds neither layout.
DataLayout data_layout(const std::string& dir);

/// Loads `dir` in the ISBI 2012 layout (`train-volume.tif`, `train-labels.tif`, optional
/// `test-volume.tif`) or the folder layout (`images/` and `masks/` matched by file stem, optional
/// `test/`). Throws `unet::Error` naming the file and the problem for missing files, non-images,
/// differing counts, sizes or channels, and unexpected mask values. Instance masks get their
/// classes from `instance_targets(labels, classes, targets)`. `kAuto` surveys the masks
/// first (`survey_masks`: one more read of them); callers that surveyed pass the result.
DataSet load_dataset(const std::string& dir, int64_t classes, MaskEncoding encoding = MaskEncoding::kAuto,
                     const InstanceTargets& targets = {});

/// Images only, for prediction: a TIFF stack, a single image, or a folder of images.
std::vector<Sample> load_images(const std::string& path);

/// The files that `load_images(path)` reads: `path` itself, or the images in the folder `path`.
std::vector<std::string> image_files(const std::string& path);

/// The files that `load_dataset(dir)` may read, listed without reading them (what a command's
/// outputs must never replace): the ISBI layout's three stacks and the images of images/, masks/
/// and test/, whichever exist (names that do not exist are listed too and harmless).
std::vector<std::string> dataset_files(const std::string& dir);

/// Decodes a mask file's pixels into class indices [H, W] int64; `where` names it in errors.
/// `encoding` is not `kInstances` (see `attach_instances`). Signed masks read as their values;
/// float, MinIsWhite and differing-channel masks and negative values are refused (`label_values`).
at::Tensor decode_mask(const RawImage& mask, int64_t classes, MaskEncoding encoding, const std::string& where);

/// Sets `sample.instances` to `labels` (int64 [H, W]) and `sample.mask` to the classes derived from
/// them for a model of `classes` classes (`instance_targets`).
void attach_instances(Sample& sample, const at::Tensor& labels, int64_t classes, const InstanceTargets& targets);

/// Indices of a cross-validation fold.
struct FoldSplit {
  std::vector<int64_t> train;
  std::vector<int64_t> eval;
};

/// The reference's split: the indices 0..count-1 shuffled with NumPy's legacy generator seeded with
/// `seed` (bit-identical to `np.random.seed(seed); np.random.shuffle`), rotated right by
/// fold * (count - n_train), first n_train = round(ratio * count) train, the rest evaluation.
/// fold -1 puts everything in train. Throws `OptionError` (field "fold") for a fold outside
/// -1..folds-1.
FoldSplit fold_split(int64_t count, int fold, uint64_t seed, double ratio = 0.8);

/// Number of folds that `ratio` implies (5 for 0.8).
int fold_count(double ratio = 0.8);

/// "0".."4" or "none" (-1); throws `OptionError` (field "fold") otherwise.
int parse_fold(const std::string& text);

/// Picks `indices` out of `samples`.
std::vector<Sample> select(const std::vector<Sample>& samples, const std::vector<int64_t>& indices);

}  // namespace unet
