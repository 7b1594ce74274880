// Prediction files: masks, probabilities and instance labels as multi-page TIFFs (a stack in) or
// one file per input file (a folder in), overlays as PNGs.
#pragma once

#include "unet/data/dataset.h"
#include "unet/eval/instances.h"

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

namespace unet {

/// Which files a prediction writes besides the masks.
struct PredictionFiles {
  /// One PNG per sample in `dir/overlays` (page k of "stack.tif" as "stack_k.png"): the predicted
  /// objects tinted over the image (`overlay_image`).
  bool overlays = true;
  /// Masks hold class indices instead of 0/255 (always so for more than two classes), written as
  /// palette images (`class_palette`): programs read the indices, viewers show colours.
  bool index_masks = false;
  /// Probability maps.
  bool probabilities = true;
  /// Their samples: 32 (float32 in [0, 1]) or 8 (uint8, round(255 p): a quarter of the size,
  /// steps of 1/255), as `probability_values` makes them.
  int probability_bits = 32;
  /// Instance-label images (`objects_of`): class 1's objects of two-class models, cut by
  /// `instance_method`, or the objects of interior/boundary models; 16-bit TIFFs for programs and
  /// a coloured PNG preview of each (`instance_preview`).
  bool instances = false;
  InstanceMethod instance_method = InstanceMethod::kComponents;
  /// What the model's classes stand for (its checkpoint's `scheme`), for the instances.
  ClassScheme scheme = ClassScheme::kPlain;
  /// How the objects are cut out: the smallest kept, the necks split (`objects_of`).
  ObjectRule objects;
  /// Per sample, the scale its objects are cut at (`PredictedBatch::object_scales`); empty:
  /// `objects.scale` for all.
  std::vector<double> object_scales;
  /// Per sample, its probabilities at its object scale as predicted there (`Predictor::predict`;
  /// empty or undefined: the probabilities resized), which its objects are cut from.
  std::vector<at::Tensor> scaled_probabilities;
  /// The model's class names and headline (its checkpoint's `class_naming`), for the overlays.
  ClassNaming naming = recorded_naming({}, 2, ClassScheme::kPlain);
};

/// The colours of `classes` classes as [classes, 3] uint8: class 0 black, then red, green, blue,
/// yellow, orange, purple, cyan, magenta, lime, then golden-ratio hues.
at::Tensor class_palette(int64_t classes);

/// Probabilities (float, any shape) as a probability file stores them with `bits` 32 (float32, as
/// they are) or 8 (uint8, round(255 p)).
at::Tensor probability_values(const at::Tensor& probabilities, int bits);

/// The mask file's values of probabilities [classes, H, W] (or [N, classes, H, W]): 0 / 255 for
/// two classes (255 = class 1), else (or with `index_masks`) the class indices, uint8.
at::Tensor mask_of(const at::Tensor& probabilities, bool index_masks);
/// The palette that index masks are written with (`class_palette`), or none for 0 / 255 masks.
at::Tensor mask_palette(int64_t classes, bool index_masks);

/// The sample's image in gray [3, H, W] uint8 with its predicted objects tinted (60% colour):
/// of two classes the one that is not `naming.background()` (ISBI: the membranes, class 0; folder
/// data: the foreground, class 1) in red; of more every class but the background in its
/// `class_palette` colour (interior red, boundary green). `probabilities` is [classes, H, W].
at::Tensor overlay_image(const Sample& sample, const at::Tensor& probabilities, const ClassNaming& naming);

/// Instance labels `labels` [H, W] as a picture [3, H, W] uint8: each label in its own colour
/// (golden-ratio hues, so that neighbouring labels differ) over the image, background the image
/// dimmed.
at::Tensor instance_preview(const Sample& sample, const at::Tensor& labels);

/// Writes predictions into `dir`: `test-masks.tif` (multi-page uint8, 255 = class 1 = cell
/// interior, as the reference; class indices with a palette for more classes or `index_masks`),
/// `test-probabilities.tif` (float32 pages in [0, 1], the probability of class 1 = non-membrane:
/// the challenge's submission format; two-class models), `test-instances.tif` (16-bit labels per
/// page, `objects_of`) with a preview of each page in `dir/instances/<stack>_<k>.png`, and the
/// overlays, as `files` asks. Returns the paths written.
std::vector<std::string> write_predictions(const std::string& dir, const std::vector<Sample>& samples,
                                           const std::vector<at::Tensor>& probabilities, const PredictionFiles& files);

/// Folder out: one mask per input file, named by the file's stem, in the input's format family
/// (`<stem>.png` for PNG inputs; `<stem>.tif` otherwise, with one page per page of the input),
/// with 0/255 or class indices as `write_predictions`; `<stem>_probabilities.tif` (float32: the
/// probability of class 1 for two classes, one page per class otherwise), `<stem>_instances.tif`
/// (16-bit labels) with its preview `instances/<stem>.png` (`<stem>_<page>.png` for each page of a
/// multi-page file, as the overlays) and overlays as `files` asks. Samples of one file must be adjacent (as
/// `load_images` gives them). Returns the paths written.
std::vector<std::string> write_predictions_per_file(const std::string& dir, const std::vector<Sample>& samples,
                                                    const std::vector<at::Tensor>& probabilities,
                                                    const PredictionFiles& files);

/// The mask, probability and instance files of one prediction (empty: not written).
struct OutputNames {
  std::string masks, probabilities, instances;
};
/// Their names in `dir`: for a single input (`source` empty) `test-masks.tif`,
/// `test-probabilities.tif`, `test-instances.tif`; for the input file `source` of a folder
/// `<stem>.png` (PNG inputs) or `<stem>.tif`, `<stem>_probabilities.tif`, `<stem>_instances.tif`.
OutputNames output_names(const std::string& dir, const std::string& source, const PredictionFiles& files);

/// The files that `write_predictions` (`per_file` false) or `write_predictions_per_file` writes
/// for these samples, overlays included, to check them before predicting. Throws `unet::Error` when
/// two inputs would write the same file (a.tif and a.tiff).
std::vector<std::string> prediction_outputs(const std::string& dir, const std::vector<Sample>& samples,
                                            const PredictionFiles& files, bool per_file);

}  // namespace unet
