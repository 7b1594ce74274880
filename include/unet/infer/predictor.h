// Inference: batched forward passes in evaluation mode, probabilities at the original image size.
#pragma once

#include "unet/data/dataset.h"
#include "unet/data/loader.h"
#include "unet/eval/instances.h"
#include "unet/infer/cpu_engine.h"
#include "unet/infer/export.h"
#include "unet/infer/int8_engine.h"
#include "unet/infer/quantize.h"
#include "unet/infer/tiled.h"
#include "unet/model/checkpoint.h"
#include "unet/model/geometry.h"
#include "unet/model/unet.h"
#include "unet/runtime/context.h"
#include "unet/runtime/precision.h"

#include <c10/core/Device.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace unet {

/// How a command predicts: batches, input mode, tiles, test-time augmentation, device paths.
struct InferenceOptions {
  /// Images per forward pass in resize mode.
  int64_t batch_size = kDefaultBatchSize;
  /// resize, tile, or auto: tiles when the model was trained on tiles or an image's size differs
  /// from the training images'.
  InputMode input_mode = InputMode::kAuto;
  /// The tiles of tile mode (side 0: the model's training input size, `tile_options`); their
  /// `tta` also averages the flips and rotations of whole images in resize mode.
  TileOptions tiles;
  /// Channels-last tensors, CUDA graphs, fused kernels, the CPU engine (training shares them).
  ExecOptions exec;
  /// The smallest predicted object kept, pixels (0: all); `kAutoObjectArea`: `kSmallObjectFraction`
  /// of the model's training objects' median area (all where its checkpoint records none).
  static constexpr int64_t kAutoObjectArea = -1;
  int64_t min_object_area = kAutoObjectArea;
  /// Interior/boundary models: interiors that pinch are split at necks narrower than twice this,
  /// pixels (0: never); `kAutoSplitRadius`: `kNeckFraction` of the radius of the model's median
  /// training object (never where its checkpoint records none).
  static constexpr double kAutoSplitRadius = -1.0;
  double split_radius = kAutoSplitRadius;
  /// With it: the parts must also be deeper than this fraction of their interior's deepest pixel
  /// (0: no such condition).
  double split_ratio = kNeckRatio;
  /// Interior/boundary, distance and direction models: objects extend over the connected pixels
  /// whose object probability is above this (`ObjectRule::object_threshold`);
  /// `kAutoObjectThreshold`: the model's recorded one, `kObjectThreshold` where it records none.
  static constexpr double kAutoObjectThreshold = -1.0;
  double object_threshold = kAutoObjectThreshold;
  /// Objects whose mean object probability is under this are dropped
  /// (`ObjectRule::min_probability`), at least 0 and below 1; 0: none;
  /// `kAutoMinObjectProbability`: the model's recorded one, 0 where it records none.
  static constexpr double kAutoMinObjectProbability = -1.0;
  double min_object_probability = kAutoMinObjectProbability;
  /// The median diameter of the objects in the images to predict, pixels (0: as the model's
  /// training objects, no rescaling). With a model trained at an object diameter (`train
  /// --object-diameter`), each image is rescaled by the model's diameter over this one before it
  /// is tiled, and its probabilities resized back (`Predictor::use_object_scale`);
  /// `kMeasuredObjectDiameter` (the default, "auto"): each image's own, measured by the model
  /// (`measure_object_scale`) where it was trained at an object size and predicts in tiles; the
  /// images as they are otherwise (`resolved_object_diameter`).
  static constexpr double kMeasuredObjectDiameter = -1.0;
  double object_diameter = kMeasuredObjectDiameter;
  /// Other trained models (checkpoint files, or model folders holding one) whose probabilities are
  /// averaged with the model's in every forward pass (`Predictor::add_member`): an ensemble, e.g.
  /// of training seeds. Each must agree with the model on its network, input size, normalisation
  /// and object size (`load_predictor` names the file and the difference); objects are cut as the
  /// model records them (its threshold, smallest object and probability).
  std::vector<std::string> ensemble;

  /// Throws `OptionError` for out-of-range values.
  void validate() const;
};

/// What `Predictor::run` hands over per batch: samples [first, first + n) of the input list.
struct PredictedBatch {
  size_t first = 0;
  /// float32 [n, classes, output, output] on the CPU (undefined in tile mode).
  at::Tensor logits;
  /// int64 [n, output, output] when every sample of the batch has a mask, else undefined.
  at::Tensor labels;
  /// Softmax probabilities at each sample's original size: [classes, H, W].
  std::vector<at::Tensor> probabilities;
  /// Per sample, the scale its image was predicted at, at which its objects are cut
  /// (`ObjectRule::scale`; 1 but for `use_object_scale` and `measure_object_scale`).
  std::vector<double> object_scales;
  /// Per sample, its probabilities at `object_scales` as the model predicted them (undefined at
  /// scale 1): the objects are cut from these (`objects_at_scale`), not from `probabilities` resized.
  std::vector<at::Tensor> scaled_probabilities;
};

/// Measured object size (`Predictor::measure_object_scale`): at most this many passes per image,
/// the first at this scale, ...
///
/// Small first: a model shatters objects larger than it was trained on into pieces of its own size,
/// so from above the measure stops at any scale too large (kromp2020 validation, a directions model
/// at 30 pixels: one image's nuclei 160 pixels across measured 61 from scale 1); from below, objects
/// smaller than the model's measure as they are, until tiny ones merge (from 0.125, nuclei 20 pixels
/// across measured 240). First scales 0.125, 0.18, 0.25, 0.5 and 1 gave object F1 0.53, 0.83, 0.83,
/// 0.81 and 0.79 there (each image's true diameter: 0.84); docs/results.md.
constexpr int kObjectSizePasses = 4;
constexpr double kFirstMeasuredScale = 0.25;
/// ... each next one rescaled so that the last pass's median object becomes the model's diameter,
/// unless it already is within this factor of it.
constexpr double kObjectSizeTolerance = 1.1;
/// The scales a measured object size may give an image.
constexpr double kSmallestObjectScale = 0.125, kLargestObjectScale = 4.0;
/// Last, the scale a measure settles on is confirmed from below: a model that shatters objects
/// larger than its own into pieces of its own size measures them "right" at too large a scale
/// (kromp2020 validation, seeds 1 and 2 of `nuclei-fluorescence`'s recipe: an image whose nuclei
/// are 30 pixels across at scale 0.187 settled at 0.25, where 40-pixel nuclei split into
/// 30-pixel pieces; 10 and 12 of its 28 nuclei split). At this fraction of the scale the objects
/// are smaller than the model's and measure as they are; where they imply a scale smaller than
/// this one by more than `kObjectSizeTolerance`, that one is taken and confirmed in turn: at most
/// `kBelowChecks` checks (the scale a last check takes is not checked again). Factors 0.6, 0.7
/// and 0.8 measured (docs/results.md, "Object size confirmed from below").
constexpr double kBelowFactor = 0.7;
constexpr int kBelowChecks = 3;

/// Runs a trained U-Net (or an exported one) in evaluation mode (no dropout, no autograd) in batches.
class Predictor {
 public:
  /// Moves `model` to `device` in evaluation mode; `channels_last` as `InferenceOptions::channels_last`.
  Predictor(UNet model, Geometry geometry, c10::Device device, int64_t batch_size, bool channels_last = true);
  /// An exported module (`load_export`), already on its device; no CUDA graphs or fused kernels.
  Predictor(const LoadedExport& module, c10::Device device, int64_t batch_size);

  /// Logits (float32, CPU) for preprocessed inputs [B, C, input, input].
  /// With `to_host` false: the logits stay on the device in the network's output type (for
  /// callers that continue on the device, and for timing the device work alone).
  at::Tensor forward(const at::Tensor& inputs, bool to_host = true);

  /// Predict at native resolution with overlapping tiles (geometry's input side is the tile's)
  /// instead of resizing.
  void use_tiles(const TileOptions& options);

  /// Autocast the forward passes to fp16 or bf16 (or allow TF32) as in training.
  void use_precision(Precision precision) { precision_ = precision; reset_engines(); }

  /// On CUDA, capture the forward pass once per input shape as a CUDA graph and replay it (the
  /// first batch of each shape runs eagerly); falls back to eager with a notice if capture fails.
  void use_graphs(bool on) { graphs_ = on && device_.is_cuda(); }
  /// On CUDA, the fused bias + ReLU kernels after the convolutions (see `UNetImpl::use_fused`).
  void use_fused(bool on);
  /// On CPUs, run fp32, tf32 (= fp32) and bf16 passes through the `CpuEngine` (on by default; the
  /// plain LibTorch path otherwise, and always for fp16 and exported modules).
  void use_cpu_engine(bool on, ConvAlgorithm algorithm = ConvAlgorithm::kAuto) {
    cpu_engine_ = on;
    conv_algorithm_ = algorithm;
    reset_engines();
  }
  /// int8 passes (precision int8) through `engine`, made from this predictor's model and its calibration.
  void use_int8(std::shared_ptr<Int8Engine> engine) { int8_ = std::move(engine); }
  /// While set, every network input is also observed by `calibrator` (its float32 pass) before
  /// the usual forward pass: calibration on exactly what prediction feeds the network (tiles,
  /// mirrored borders, resizing). Not owned; pass nullptr to stop.
  void observe_inputs(Calibrator* calibrator) { calibrator_ = calibrator; }
  /// How each sample's intensities are normalised before anything else (the model's, as its
  /// checkpoint or export records it; `kRange`, the samples as they are, by default).
  void use_normalisation(const Normalisation& normalisation) { normalisation_ = normalisation; }
  /// How objects are cut out of this predictor's probabilities (the smallest kept, the necks
  /// split), for its callers that do (`accumulate`, `predict --instances`), in the model's pixels:
  /// each image's object scale comes with its probabilities (`PredictedBatch::object_scales`).
  void use_object_rule(const ObjectRule& rule) { object_rule_ = rule; }
  const ObjectRule& object_rule() const { return object_rule_; }
  /// Tile mode: each image is resized by `scale` before it is tiled (objects of the model's
  /// training size) and its probabilities resized back to the image's size; each batch reports the
  /// scale (`object_scales`), at which its objects are cut. 1: images as they are. Throws `OptionError`
  /// (field "object_diameter") for scales beyond `kLargestRescale` either way, and when an
  /// image would be rescaled to more pixels than `max_image_pixels`.
  void use_object_scale(double scale);
  double object_scale() const { return object_scale_; }
  /// Tile mode: each image's scale is measured by the model: predicted at `kFirstMeasuredScale`,
  /// its objects' median diameter measured at the network's size, and predicted again rescaled so
  /// that it becomes `diameter` (the model's training object diameter), up to `kObjectSizePasses`
  /// passes, then confirmed from below (`kBelowFactor`); each batch reports the scale it kept
  /// (`object_scales`).
  void measure_object_scale(double diameter);
  bool measures_object_scale() const { return measured_diameter_ > 0; }
  /// Test-time augmentation: average the probabilities of the 8 flips and rotations (direction
  /// classes turned back with them, `dihedral_maps`).
  void use_tta(bool on) { tta_ = on; if (tiles_) tiles_->tta = on; }
  /// An ensemble: another trained model of this one's architecture and classes (`model_options()`
  /// equal; throws `unet::Error` otherwise, and for a predictor of an exported module) whose
  /// probabilities are averaged with this one's in every forward pass, on the same device and
  /// path (precision, CPU engine, fused kernels, CUDA graphs). `forward` then returns the log of
  /// the members' mean probabilities, whose softmax is that mean. Not in int8 (each model has its
  /// own calibration).
  void add_member(UNet model);
  /// Models averaged in each forward pass: 1 + those added by `add_member`.
  size_t member_count() const { return 1 + members_.size(); }

  /// Preprocesses, predicts and resizes back every sample (or tiles it, see `use_tiles`), calling
  /// `consume` once per batch; in tile mode each batch is one image and `logits` stays undefined.
  void run(const std::vector<Sample>& samples, const std::function<void(const PredictedBatch&)>& consume);

  /// Probabilities [classes, H, W] at each sample's original size; with `object_scales`, also the
  /// scale each sample's objects are to be cut at (`PredictedBatch::object_scales`).
  /// With `scaled_probabilities`, also each sample's probabilities at that scale
  /// (`PredictedBatch::scaled_probabilities`), to cut its objects from (`objects_at_scale`).
  std::vector<at::Tensor> predict(const std::vector<Sample>& samples, std::vector<double>* object_scales = nullptr,
                                  std::vector<at::Tensor>* scaled_probabilities = nullptr);

  /// Tile mode only: `predict_tiled_rows` with this predictor's passes over an image of `height`
  /// x `width` whose network intensities (this predictor's normalisation applied) `source` gives.
  void predict_rows(int64_t height, int64_t width, const RowSource& source, const RowSink& sink, int64_t from_y = 0,
                    int64_t to_y = 0, const TileProgress& progress = {});
  /// The tiles of tile mode (`use_tiles`); throws `unet::Error` in resize mode.
  const TileOptions& tile_options() const;
  const Normalisation& normalisation() const { return normalisation_; }

  const Geometry& geometry() const { return geometry_; }
  const UNetOptions& model_options() const { return options_; }

 private:
  UNet model_{nullptr};
  /// The exported module's forward pass, when there is no `model_`.
  std::function<at::Tensor(const at::Tensor&)> module_forward_;
  UNetOptions options_;
  Geometry geometry_;
  c10::Device device_;
  int64_t batch_size_;
  bool channels_last_;
  std::optional<TileOptions> tiles_;
  bool tta_ = false;
  Normalisation normalisation_;
  ObjectRule object_rule_;
  double object_scale_ = 1.0;
  /// `measure_object_scale`'s diameter (0: the scale is not measured).
  double measured_diameter_ = 0.0;
  Precision precision_ = Precision::kFP32;
  bool graphs_ = false;
  bool cpu_engine_ = true;
  ConvAlgorithm conv_algorithm_ = ConvAlgorithm::kAuto;
  /// Made at the first CPU pass (shared: predictors are copied).
  std::shared_ptr<CpuEngine> engine_;
  /// `add_member`'s models, and their CPU engines as `engine_` (one per member, made at the first
  /// CPU pass).
  std::vector<UNet> members_;
  std::vector<std::shared_ptr<CpuEngine>> member_engines_;
  std::shared_ptr<Int8Engine> int8_;
  Calibrator* calibrator_ = nullptr;
  struct CapturedForward;
  /// One captured forward pass per input shape (shared: predictors are copied).
  std::map<std::vector<int64_t>, std::shared_ptr<CapturedForward>> captured_;

  at::Tensor eager_forward(const at::Tensor& x);
  /// One model's logits on the path this predictor's settings give (`eager_forward`'s part).
  at::Tensor model_forward(UNet& model, std::shared_ptr<CpuEngine>& engine, const at::Tensor& x);
  /// Tile mode: probabilities of a network-intensity image resized by `scale`, at that size.
  at::Tensor tiled_at(const at::Tensor& image, double scale);
  /// The scale (from `object_scale_`) at which `measure_object_scale` leaves an image, and its
  /// probabilities at that size.
  std::pair<double, at::Tensor> measured_scale(const at::Tensor& image);
  /// The median diameter of the objects this predictor's rule cuts from `probs` (0: none).
  double diameter_of(const at::Tensor& probs) const;
  /// The scale that brings objects measured `found` pixels across at scale `at` to the model's
  /// diameter, within the scales a measure may give.
  double scale_for(double at, double found) const;
  /// `measured_scale`'s last step: `scale` is confirmed from below (`kBelowFactor`), or replaced by
  /// the smaller scale measured there (with `probs` predicted again at it).
  void confirm_from_below(const at::Tensor& image, double& scale, at::Tensor& probs);
  at::Tensor graph_forward(const at::Tensor& x, bool to_host);
  /// The CPU engines are made again at the next pass (their precision or algorithm changed).
  void reset_engines() {
    engine_.reset();
    for (auto& e : member_engines_) e.reset();
  }
};

/// The checkpoint files of `options.ensemble`: each a file as given, or a folder's `checkpoint.pt`.
std::vector<std::string> ensemble_checkpoints(const InferenceOptions& options);

/// The input mode that `requested` means for `samples` of a model whose header is `info`: auto
/// tiles when the model was trained on tiles or a sample's size differs from its training images'.
InputMode resolved_input_mode(InputMode requested, const CheckpointInfo& info, const std::vector<Sample>& samples);

/// The tiles of tile mode for `options` and a network whose training input side is `input_size`.
TileOptions tile_options(const InferenceOptions& options, int64_t input_size);

/// What `given` (an `InferenceOptions::object_diameter`) means for a model trained at an object
/// diameter of `model_diameter` pixels (0: at its images' own sizes) predicting in `mode`:
/// `kMeasuredObjectDiameter` stays for such a model in tile mode and becomes 0 (the images as they
/// are) otherwise; other values stay.
double resolved_object_diameter(double given, double model_diameter, InputMode mode);

/// The objects `options` cut for a model that records `model`: `object_rule(model)` with the
/// options' smallest area, neck radius, neck ratio, object threshold and smallest object
/// probability where they are given (the `auto` values keep the model's).
ObjectRule object_rule(const ObjectRecord& model, const InferenceOptions& options);

/// Throws `OptionError` where `options` give an object threshold or a smallest mean object
/// probability that `model`'s objects do not take (`check_object_values`: a model without objects,
/// or a threshold for a two-class model's), rather than ignore it.
void check_object_options(const UNetOptions& model, const InferenceOptions& options);

/// Sets `predictor`'s object size for the diameter `given` and a model trained at `model_diameter`
/// predicting in `mode` (`resolved_object_diameter` first): 0 leaves the images as they are, a
/// diameter rescales them by `model_diameter` / it (`Predictor::use_object_scale`), and
/// `kMeasuredObjectDiameter` measures each image's (`Predictor::measure_object_scale`). Throws
/// `OptionError` (field "object_diameter") for a diameter given to a model that records none, and
/// in resize mode (`require_tiles_for_object_scale`).
void use_object_diameter(Predictor& predictor, double given, double model_diameter, InputMode mode);

/// Throws `OptionError` (field "object_diameter") when `rescaled`: images predicted by rows
/// (`predict_rows`, streamed) are not rescaled to a model's object size.
void refuse_object_scale_by_rows(bool rescaled);

/// Throws `OptionError` (field "object_diameter") when images would be `rescaled` to the model's
/// object size but `mode` resizes each whole image to the network input.
void require_tiles_for_object_scale(InputMode mode, bool rescaled);

/// A predictor with the weights of the checkpoint at `path` (whose header is `info`) on
/// `context`'s device and precision, configured by `options` for `samples` (the auto input mode
/// is decided here, from the checkpoint's training images and the samples' sizes).
Predictor load_predictor(const std::string& path, const CheckpointInfo& info, const InferenceOptions& options,
                         const RunContext& context, const std::vector<Sample>& samples);

}  // namespace unet
