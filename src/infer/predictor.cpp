// Batched inference: resize mode, tile mode, test-time augmentation, per-shape CUDA graphs.
#include "unet/infer/predictor.h"

#include "unet/data/image_io.h"
#include "unet/data/loader.h"
#include "unet/data/object_scale.h"
#include "unet/data/preprocess.h"
#include "unet/eval/instances.h"
#include "unet/model/conv_plan.h"
#include "unet/runtime/device.h"
#include "unet/runtime/graph.h"
#include "unet/runtime/text.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>

namespace unet {

void InferenceOptions::validate() const {
  require_option(batch_size >= 1 && batch_size <= 65536, "batch_size", batch_size < 1 ? "must be at least 1" : "must be at most 65536", batch_size);
  require_option(tiles.input >= 0 && tiles.input <= 65536, "tile_size", "must be between 0 and 65536", tiles.input);
  require_option(tiles.overlap >= 0, "tile_overlap", "must not be negative", tiles.overlap);
  require_option(tiles.batch >= 1, "tile_batch", "must be at least 1", tiles.batch);
  require_option(min_object_area >= 0 || min_object_area == kAutoObjectArea, "min_object_area", "must not be negative",
                 min_object_area);
  require_option((split_radius >= 0 && split_radius <= 65536) || split_radius == kAutoSplitRadius, "split_radius",
                 "must be between 0 and 65536", split_radius);
  require_option(split_ratio >= 0 && split_ratio < 1, "split_ratio", "must be at least 0 and below 1", split_ratio);
  require_option(legal_object_threshold(object_threshold) || object_threshold == kAutoObjectThreshold,
                 "object_threshold", "must be auto or above 0 and below 1", object_threshold);
  require_option(legal_min_object_probability(min_object_probability) || min_object_probability == kAutoMinObjectProbability,
                 "min_object_probability", "must be auto, or at least 0 and below 1", min_object_probability);
  require_option(object_diameter == 0 || object_diameter == kMeasuredObjectDiameter || (object_diameter >= kMinObjectDiameter && object_diameter <= kMaxObjectDiameter),
                 "object_diameter", "must be auto, 0 (none) or between " + std::to_string(static_cast<int>(kMinObjectDiameter)) +
                     " and " + std::to_string(static_cast<int>(kMaxObjectDiameter)) + " pixels", object_diameter);
}

Predictor::Predictor(UNet model, Geometry geometry, c10::Device device, int64_t batch_size, bool channels_last)
    : model_(std::move(model)),
      geometry_(geometry),
      device_(device),
      batch_size_(std::max<int64_t>(1, batch_size)),
      channels_last_(channels_last) {
  options_ = model_->options();
  model_->to(device_);
  if (channels_last_) use_channels_last(*model_);
  model_->eval();
}

Predictor::Predictor(const LoadedExport& module, c10::Device device, int64_t batch_size)
    : module_forward_(module.forward),
      options_(module.options),
      geometry_(geometry_of(module.options, module.input_size)),
      device_(device),
      batch_size_(std::max<int64_t>(1, batch_size)),
      channels_last_(false) {
  normalisation_ = module.normalisation;
}

void Predictor::use_fused(bool on) {
  if (model_) model_->use_fused(on && device_.is_cuda());
  for (UNet& m : members_) m->use_fused(on && device_.is_cuda());
}

namespace {

/// Whether two models compute the same kind of maps: their options equal but for dropout, which
/// evaluation mode leaves out.
bool same_network(UNetOptions a, const UNetOptions& b) {
  a.dropout(b.dropout());
  return a == b;
}

}  // namespace

void Predictor::add_member(UNet model) {
  if (!model_) throw Error("an ensemble averages trained checkpoints; this predictor runs an exported module");
  if (!same_network(model->options(), options_))
    throw Error("an ensemble's models must share architecture and classes: " + model->options().describe() + " against " +
                options_.describe());
  model->to(device_);
  if (channels_last_) use_channels_last(*model);
  model->eval();
  model->use_fused(model_->fused());
  members_.push_back(std::move(model));
  member_engines_.emplace_back();
  captured_.clear();  // a captured pass ran without it
}

struct Predictor::CapturedForward {
  at::Tensor input, output;
  std::unique_ptr<StepGraph> graph;
};

at::Tensor Predictor::eager_forward(const at::Tensor& x) {
  if (calibrator_ && model_) calibrator_->observe(model_, x);
  if (members_.empty()) return model_forward(model_, engine_, x);
  if (precision_ == Precision::kInt8) throw Error("int8 prediction runs one model (each has its own calibration): an ensemble runs in fp32 or bf16");
  // The members' mean probabilities, handed on as their log: the softmax every caller takes gives
  // the mean back (it sums to 1), and its argmax and cross-entropy are the ensemble's (the log
  // floored at float's smallest normal, about -87, where a mean underflows).
  at::Tensor mean = model_forward(model_, engine_, x).to(at::kFloat).softmax(1);
  for (size_t i = 0; i < members_.size(); ++i) mean.add_(model_forward(members_[i], member_engines_[i], x).to(at::kFloat).softmax(1));
  return mean.div_(static_cast<double>(member_count())).clamp_min_(std::numeric_limits<float>::min()).log_();
}

at::Tensor Predictor::model_forward(UNet& model, std::shared_ptr<CpuEngine>& engine, const at::Tensor& x) {
  const bool engine_precision = precision_ == Precision::kFP32 || precision_ == Precision::kTF32 || precision_ == Precision::kBF16;
  const InferencePath path = inference_path(precision_ == Precision::kInt8, device_.is_cpu(), engine_precision,
                                            static_cast<bool>(model), cpu_engine_, model && model->fused(),
                                            CpuEngine::available());
  if (path == InferencePath::kInt8Engine) {
    if (!int8_) throw Error("int8 prediction needs the model's int8 calibration (unet quantize)");
    return int8_->forward(x);
  }
  if (path == InferencePath::kCpuEngine) {
    if (!engine) engine = std::make_shared<CpuEngine>(model, precision_ == Precision::kBF16 ? at::kBFloat16 : at::kFloat, conv_algorithm_);
    return engine->forward(x);
  }
  PrecisionScope precision(device_, precision_);
  return model ? model->forward(x) : module_forward_(x);
}

at::Tensor Predictor::forward(const at::Tensor& inputs, bool to_host) {
  c10::InferenceMode guard;
  at::Tensor x = inputs.to(device_, /*non_blocking=*/true);
  if (channels_last_) x = x.contiguous(at::MemoryFormat::ChannelsLast);
  if (graphs_) return graph_forward(x, to_host);
  const at::Tensor logits = eager_forward(x);
  return to_host ? logits.to(at::kFloat).cpu().contiguous() : logits;
}

at::Tensor Predictor::graph_forward(const at::Tensor& x, bool to_host) {
  auto finish = [to_host](const at::Tensor& logits) { return to_host ? logits.to(at::kFloat).cpu().contiguous() : logits; };
  const std::vector<int64_t> shape = x.sizes().vec();
  auto it = captured_.find(shape);
  if (it == captured_.end()) {
    // The first batch of a shape runs eagerly on the capture's stream (cuDNN picks its
    // algorithms), then is captured.
    auto captured = std::make_shared<CapturedForward>();
    // All shapes share the first graph's memory pool: they run one after another and each
    // output is copied out before the next replay.
    const StepGraph* first = captured_.empty() ? nullptr : captured_.begin()->second->graph.get();
    captured->graph = std::make_unique<StepGraph>(device_, first);
    at::Tensor out;
    captured->graph->warmup([&] { out = eager_forward(x); });
    out = finish(out);
    captured->input = x.clone(at::MemoryFormat::Preserve);
    try {
      captured->graph->capture([&] { captured->output = eager_forward(captured->input); });
      captured_.emplace(shape, std::move(captured));
    } catch (const Error& e) {
      notice(std::string(e.what()) + "; predicting without CUDA graphs");
      graphs_ = false;
    }
    return out;
  }
  it->second->input.copy_(x, /*non_blocking=*/true);
  it->second->graph->replay();
  // On the device the caller gets a copy: the graph's output buffer is overwritten by the next replay.
  return to_host ? finish(it->second->output) : it->second->output.clone();
}

void Predictor::use_tiles(const TileOptions& options) {
  const Geometry tile = geometry_of(options_, options.input, /*tile=*/true);  // a legal tile (the error names the nearest)
  tile_stride(options_, options);                                             // and overlap
  tiles_ = options;
  tiles_->tta = tiles_->tta || tta_;
  geometry_ = tile;
}

void Predictor::use_object_scale(double scale) {
  require_option(scale >= 1.0 / kLargestRescale && scale <= kLargestRescale, "object_diameter",
                 "gives an object scale outside 1/" + std::to_string(static_cast<int>(kLargestRescale)) + " to " +
                     std::to_string(static_cast<int>(kLargestRescale)), scale);
  object_scale_ = scale;
  measured_diameter_ = 0.0;  // a stated scale ends measuring
}

void Predictor::measure_object_scale(double diameter) {
  require_option(diameter > 0, "object_diameter", "is measured to the model's training object diameter, which is not positive", diameter);
  if (!has_objects(options_.classes(), options_.scheme()))
    throw OptionError("object_diameter", " is measured on the model's objects, and this model cuts none");
  measured_diameter_ = diameter;
}

at::Tensor Predictor::tiled_at(const at::Tensor& image, double scale) {
  const int64_t height = scaled_side(image.size(1), scale), width = scaled_side(image.size(2), scale);
  if (scale != 1.0 && height * width > max_image_pixels())
    throw OptionError("object_diameter", " would rescale a " + std::to_string(image.size(2)) + "x" + std::to_string(image.size(1)) +
                                         " image by " + std::to_string(scale).substr(0, 5) + " to " + std::to_string(width) + "x" +
                                         std::to_string(height) + ", more pixels than {max_image_pixels} allows");
  return predict_tiled([this](const at::Tensor& x) { return forward(x); }, options_, resize_image(image, height, width), *tiles_);
}

// The objects the model cuts at this scale, measured in its pixels; its smallest kept area drops
// specks that would pull the median down (measured without it, kromp2020 validation F1 fell from
// 0.825 to 0.794).
double Predictor::diameter_of(const at::Tensor& probs) const {
  return median_object_diameter(cut_objects(probs, options_.scheme(), InstanceMethod::kComponents, object_rule_));
}

double Predictor::scale_for(double at, double found) const {
  return std::clamp(at * measured_diameter_ / found, kSmallestObjectScale, kLargestObjectScale);
}

std::pair<double, at::Tensor> Predictor::measured_scale(const at::Tensor& image) {
  double scale = measured_diameter_ > 0 ? kFirstMeasuredScale : object_scale_;
  at::Tensor probs = tiled_at(image, scale);
  if (measured_diameter_ <= 0) return {scale, probs};
  bool found_any = false;  // some pass found objects: the scale is checked from below
  for (int pass = 1; pass < kObjectSizePasses; ++pass) {
    const double found = diameter_of(probs);
    if (found <= 0) {
      // Nothing to measure: objects too small to keep at the first scale (those of the model's
      // own size fall under its smallest kept area there) are looked for at the image's own; an
      // image without any stays there.
      if (scale == 1.0) break;
      scale = 1.0;
      probs = tiled_at(image, scale);
      continue;
    }
    found_any = true;
    const double next = scale_for(scale, found);
    if (std::abs(std::log(next / scale)) < std::log(kObjectSizeTolerance)) break;
    scale = next;
    probs = tiled_at(image, scale);
  }
  if (found_any) confirm_from_below(image, scale, probs);
  return {scale, probs};
}

void Predictor::confirm_from_below(const at::Tensor& image, double& scale, at::Tensor& probs) {
  // Below the smallest scale times the tolerance no implied scale could replace this one.
  for (int check = 0; check < kBelowChecks && scale > kSmallestObjectScale * kObjectSizeTolerance; ++check) {
    const double below = scale * kBelowFactor;
    const double found = diameter_of(tiled_at(image, below));
    if (found <= 0) return;
    const double implied = scale_for(below, found);
    if (implied * kObjectSizeTolerance >= scale) return;  // confirmed
    scale = implied;
    probs = tiled_at(image, scale);
  }
}

void Predictor::run(const std::vector<Sample>& samples, const std::function<void(const PredictedBatch&)>& consume) {
  const int64_t classes = options_.classes();
  // The model's normalisation of each whole image, before it is tiled or resized.
  auto image_of = [this](const Sample& s) { return network_intensities(s.image, normalisation_); };
  if (tiles_) {
    for (size_t i = 0; i < samples.size(); ++i) {
      PredictedBatch out;
      out.first = i;
      const at::Tensor image = image_of(samples[i]);
      // Objects of the model's training size (`use_object_scale`, `measure_object_scale`), then
      // back to the image's pixels.
      auto [scale, probs] = measured_scale(image);
      out.probabilities.push_back(resize_image(probs, image.size(1), image.size(2)));
      out.object_scales.push_back(scale);
      out.scaled_probabilities.push_back(scale != 1.0 ? probs : at::Tensor());
      consume(out);
    }
    return;
  }
  require_tiles_for_object_scale(InputMode::kResize, object_scale_ != 1.0 || measured_diameter_ > 0);
  for (size_t first = 0; first < samples.size(); first += static_cast<size_t>(batch_size_)) {
    const size_t n = std::min(samples.size() - first, static_cast<size_t>(batch_size_));
    std::vector<Sample> chunk(samples.begin() + static_cast<std::ptrdiff_t>(first),
                              samples.begin() + static_cast<std::ptrdiff_t>(first + n));
    for (Sample& s : chunk) s.image = image_of(s);
    const Batch batch = make_eval_batch(chunk, geometry_, classes);
    PredictedBatch out;
    out.first = first;
    at::Tensor probs;
    if (tta_) {
      probs = view_probabilities([this](const at::Tensor& x) { return forward(x); }, batch.images, true, options_.scheme());
      c10::InferenceMode guard;
      out.logits = probs.clamp_min(1e-12).log();  // log-probabilities: softmax gives probs back
    } else {
      out.logits = forward(batch.images);
      c10::InferenceMode guard;
      probs = at::softmax(out.logits, /*dim=*/1);
    }
    out.labels = batch.labels;
    out.object_scales.assign(n, 1.0);
    c10::InferenceMode guard;
    for (size_t i = 0; i < n; ++i)
      out.probabilities.push_back(resize_maps(probs[static_cast<int64_t>(i)], chunk[i].image.size(1), chunk[i].image.size(2)));
    consume(out);
  }
}

void Predictor::predict_rows(int64_t height, int64_t width, const RowSource& source, const RowSink& sink, int64_t from_y,
                             int64_t to_y, const TileProgress& progress) {
  refuse_object_scale_by_rows(object_scale_ != 1.0 || measured_diameter_ > 0);
  predict_tiled_rows([this](const at::Tensor& x) { return forward(x); }, options_, height, width, tile_options(), source,
                     sink, from_y, to_y, progress);
}

const TileOptions& Predictor::tile_options() const {
  if (!tiles_) throw OptionError("", "this prediction resizes its images: predicting by rows needs tiles ({input_mode} tile)");
  return *tiles_;
}

std::vector<at::Tensor> Predictor::predict(const std::vector<Sample>& samples, std::vector<double>* object_scales,
                                           std::vector<at::Tensor>* scaled_probabilities) {
  std::vector<at::Tensor> all;
  if (object_scales) object_scales->clear();
  if (scaled_probabilities) scaled_probabilities->clear();
  run(samples, [&](const PredictedBatch& b) {
    all.insert(all.end(), b.probabilities.begin(), b.probabilities.end());
    if (object_scales) object_scales->insert(object_scales->end(), b.object_scales.begin(), b.object_scales.end());
    if (scaled_probabilities) {
      for (size_t i = 0; i < b.probabilities.size(); ++i)
        scaled_probabilities->push_back(i < b.scaled_probabilities.size() ? b.scaled_probabilities[i] : at::Tensor());
    }
  });
  return all;
}

ObjectRule object_rule(const ObjectRecord& model, const InferenceOptions& options) {
  ObjectRule objects = object_rule(model);
  if (options.object_threshold != InferenceOptions::kAutoObjectThreshold) objects.object_threshold = options.object_threshold;
  if (options.min_object_probability != InferenceOptions::kAutoMinObjectProbability)
    objects.min_probability = options.min_object_probability;
  if (options.min_object_area != InferenceOptions::kAutoObjectArea) objects.min_area = options.min_object_area;
  if (options.split_radius != InferenceOptions::kAutoSplitRadius) objects.neck_radius = options.split_radius;
  objects.neck_ratio = options.split_ratio;
  return objects;
}

void check_object_options(const UNetOptions& model, const InferenceOptions& options) {
  check_object_values(model.classes(), model.scheme(), options.object_threshold != InferenceOptions::kAutoObjectThreshold,
                      options.min_object_probability > 0, "object_threshold", "min_object_probability");
}

std::vector<std::string> ensemble_checkpoints(const InferenceOptions& options) {
  std::vector<std::string> files;
  for (const std::string& given : options.ensemble)
    files.push_back(std::filesystem::is_directory(given) ? checkpoint_path(given) : given);
  return files;
}

namespace {

/// A member of an ensemble from `path` (a checkpoint file), which must have been trained as the
/// model `first` describes: the same network, input size, normalisation and object size.
UNet load_member(const std::string& path, const CheckpointInfo& first) {
  const CheckpointInfo info = read_checkpoint_info(path);
  auto differs = [&path](const std::string& what, const std::string& theirs, const std::string& ours) {
    fail_file(path, "cannot join the ensemble: its " + what + " is " + theirs + ", the first model's " + ours);
  };
  if (!same_network(info.model, first.model)) differs("network", info.model.describe(), first.model.describe());
  if (info.input_size != first.input_size)
    differs("input size", std::to_string(info.input_size), std::to_string(first.input_size));
  if (!(info.normalisation == first.normalisation))
    differs("normalisation", info.normalisation.describe(), first.normalisation.describe());
  if (info.object_diameter != first.object_diameter)
    differs("object diameter", number_text(info.object_diameter), number_text(first.object_diameter));
  return load_model(path, info);
}

}  // namespace

Predictor load_predictor(const std::string& path, const CheckpointInfo& info, const InferenceOptions& options,
                         const RunContext& context, const std::vector<Sample>& samples) {
  options.validate();
  check_object_options(info.model, options);
  const UNet model = load_model(path, info);
  std::shared_ptr<Int8Engine> int8;
  if (context.precision == Precision::kInt8 && !options.ensemble.empty())
    throw OptionError("ensemble", " averages models in fp32 or bf16; int8 runs one model with its own calibration "
                                  "(drop {precision} int8, or the ensemble)");
  if (context.precision == Precision::kInt8) {
    if (!context.device.is_cpu()) throw OptionError("precision", " int8 runs on CPUs only: add {device} cpu, or use fp16 or bf16 on GPUs");
    int8 = std::make_shared<Int8Engine>(model, load_int8_scales(path, model, info.step));
  }
  Predictor predictor(model, geometry_of(info.model, info.input_size),
                      context.device, options.batch_size, options.exec.channels_last);
  for (const std::string& member : ensemble_checkpoints(options)) predictor.add_member(load_member(member, info));
  const InputMode mode = resolved_input_mode(options.input_mode, info, samples);
  predictor.use_tta(options.tiles.tta);
  predictor.use_normalisation(info.normalisation);
  predictor.use_object_rule(object_rule(info.objects, options));
  predictor.use_cpu_engine(options.exec.cpu_engine, options.exec.conv_algorithm);
  predictor.use_precision(context.precision);
  if (int8) predictor.use_int8(int8);
  predictor.use_graphs(options.exec.graphs);
  predictor.use_fused(options.exec.fused);
  use_object_diameter(predictor, options.object_diameter, info.object_diameter, mode);
  if (mode == InputMode::kTile) predictor.use_tiles(tile_options(options, info.input_size));
  return predictor;
}

void refuse_object_scale_by_rows(bool rescaled) {
  if (rescaled)
    throw OptionError("object_diameter", " is not supported for images predicted band by band (TIFFs larger than a "
                                         "whole-image read, or {stream}): rescale the image first");
}

void require_tiles_for_object_scale(InputMode mode, bool rescaled) {
  if (mode == InputMode::kResize && rescaled)
    throw OptionError("object_diameter", " rescales images to the model's object size for tiled prediction, but this "
                                         "prediction resizes each whole image to the network input: use {input_mode} tile");
}

double resolved_object_diameter(double given, double model_diameter, InputMode mode) {
  if (given != InferenceOptions::kMeasuredObjectDiameter) return given;
  return model_diameter > 0 && mode == InputMode::kTile ? given : 0.0;
}

void use_object_diameter(Predictor& predictor, double given, double model_diameter, InputMode mode) {
  const double diameter = resolved_object_diameter(given, model_diameter, mode);
  if (diameter == 0) return predictor.use_object_scale(1.0);
  if (model_diameter <= 0)
    throw OptionError("object_diameter", " rescales images to the object size a model was trained at, but this model was "
                                         "trained at its images' own sizes (train it with {object_diameter} D)");
  require_tiles_for_object_scale(mode, true);
  if (diameter == InferenceOptions::kMeasuredObjectDiameter) {
    predictor.use_object_scale(1.0);
    predictor.measure_object_scale(model_diameter);
    return;
  }
  const double scale = model_diameter / diameter;
  if (scale < 1.0 / kLargestRescale || scale > kLargestRescale)
    throw OptionError("object_diameter", " " + std::to_string(diameter).substr(0, 6) + " with a model trained at " +
                                         std::to_string(model_diameter).substr(0, 6) + " pixels would rescale the images by " +
                                         std::to_string(scale).substr(0, 6) + "; at most " +
                                         std::to_string(static_cast<int>(kLargestRescale)) + "x either way");
  predictor.use_object_scale(scale);
}

InputMode resolved_input_mode(InputMode requested, const CheckpointInfo& info, const std::vector<Sample>& samples) {
  if (requested != InputMode::kAuto) return requested;
  bool other_size = false;
  if (info.image_height > 0 && info.image_width > 0)
    for (const auto& s : samples) other_size = other_size || s.image.size(1) != info.image_height || s.image.size(2) != info.image_width;
  return info.input_mode == InputMode::kTile || other_size ? InputMode::kTile : InputMode::kResize;
}

TileOptions tile_options(const InferenceOptions& options, int64_t input_size) {
  TileOptions t = options.tiles;
  if (t.input == TileOptions::kModelInputSide) t.input = input_size;
  return t;
}

}  // namespace unet
