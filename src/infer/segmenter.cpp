// The embedding API: a Predictor in tile mode that segments image tensors and buffers.
#include "unet/infer/segmenter.h"

#include "unet/data/image_io.h"
#include "unet/data/preprocess.h"
#include "unet/infer/export.h"
#include "unet/infer/predictor.h"
#include "unet/model/checkpoint.h"
#include "unet/runtime/device.h"
#include "unet/runtime/error.h"

#include <filesystem>

#include <ATen/ATen.h>

namespace unet {

Segmenter Segmenter::from_checkpoint(const std::string& path, const std::string& device, const std::string& precision) {
  // `load` with predict's defaults, in tiles, one image at a time.
  RunContext context;
  context.device = parse_device_name(device);
  require_available(context.device);
  context.precision = resolve_precision(parse_precision(precision), context.device);
  InferenceOptions options;
  options.input_mode = InputMode::kTile;
  options.batch_size = 1;
  return load(path, options, context);
}

Segmenter Segmenter::from_export(const std::string& path, const std::string& device) {
  const c10::Device where = parse_device_name(device);
  require_available(where);
  const LoadedExport loaded = load_export(path, where);
  Segmenter s;
  s.predictor_ = std::make_shared<Predictor>(loaded, where, /*batch_size=*/1);
  s.tiles_.input = loaded.input_size;
  s.object_diameter_ = loaded.object_diameter;
  s.objects_ = loaded.objects;
  s.predictor_->use_object_rule(object_rule(loaded.objects));
  use_object_diameter(*s.predictor_, InferenceOptions::kMeasuredObjectDiameter, s.object_diameter_, InputMode::kTile);
  return s;
}

Segmenter Segmenter::load(const std::string& path, const InferenceOptions& options, const RunContext& context) {
  options.validate();
  const std::string file = std::filesystem::is_directory(path) ? checkpoint_path(path) : path;
  CheckpointInfo info;
  try {
    info = read_checkpoint_info(file);
  } catch (const Error& not_checkpoint) {
    // Not a checkpoint: a TorchScript export, or neither (then the checkpoint reader's words).
    Segmenter s;
    try {
      s = from_export(file, context.device.str());
    } catch (const std::exception&) {
      throw not_checkpoint;
    }
    if (!options.ensemble.empty())
      throw OptionError("ensemble", " averages trained checkpoints; " + file + " is an export, which predicts alone");
    check_object_options(s.model_options(), options);
    s.input_mode_ = options.input_mode == InputMode::kResize ? InputMode::kResize : InputMode::kTile;
    s.tiles_ = tile_options(options, s.tiles_.input);
    s.predictor_->use_tta(options.tiles.tta);
    s.predictor_->use_object_rule(object_rule(s.objects_, options));
    use_object_diameter(*s.predictor_, options.object_diameter, s.object_diameter_, s.input_mode_);
    s.resizing_ = std::make_shared<Predictor>(*s.predictor_);
    s.predictor_->use_tiles(s.tiles_);
    return s;
  }
  Segmenter s;
  InferenceOptions resize = options;
  resize.input_mode = InputMode::kResize;
  resize.object_diameter = 0;  // whole images resized to the network input: no object size
  s.resizing_ = std::make_shared<Predictor>(load_predictor(file, info, resize, context, {}));
  s.predictor_ = std::make_shared<Predictor>(*s.resizing_);
  s.tiles_ = tile_options(options, info.input_size);
  s.predictor_->use_tiles(s.tiles_);
  // The tiling predictor's object size (an image that resolves to resize mode takes `resizing_`).
  use_object_diameter(*s.predictor_, options.object_diameter, info.object_diameter,
                      options.input_mode == InputMode::kResize ? InputMode::kResize : InputMode::kTile);
  s.object_diameter_ = info.object_diameter;
  s.input_mode_ = options.input_mode;
  s.naming_ = info.class_naming;
  s.info_ = std::make_shared<CheckpointInfo>(std::move(info));
  return s;
}

Segmentation Segmenter::segment(const RawImage& image, bool instances, InstanceMethod method) const {
  if (image.pixels.dim() != 3 || image.height() < 1 || image.width() < 1)
    throw Error("segment: expected a non-empty [C, H, W] or [H, W] image");
  const UNetOptions& model = model_options();
  if (image.channels() != model.in_channels())
    throw Error("the image has " + std::to_string(image.channels()) + " channels, the model expects " +
                std::to_string(model.in_channels()));
  if (instances && !has_objects(model.classes(), model.scheme()))
    throw Error("instances: objects are cut out of class 1 of a two-class model, or of a model trained on "
                "interior/boundary classes; this model has " + std::to_string(model.classes()) + " classes");
  Sample sample;
  sample.image = normalise(image);
  // `load`'s Segmenters resolve the input mode per image; the others always tile.
  const InputMode mode = !resizing_ ? InputMode::kTile : info_ ? resolved_input_mode(input_mode_, *info_, {sample}) : input_mode_;
  if (mode == InputMode::kTile) predictor_->use_tiles(tiles_);  // as `tiles()` left them
  Predictor& predictor = mode == InputMode::kTile ? *predictor_ : *resizing_;
  Segmentation out;
  std::vector<double> scales;
  std::vector<at::Tensor> scaled;
  out.probabilities = predictor.predict({sample}, &scales, &scaled).front();
  out.mask = maps_to_classes(out.probabilities).to(at::kByte);
  ObjectRule rule = predictor.object_rule();
  rule.scale = scales.front();
  if (instances) out.labels = objects_at_scale(scaled.front(), out.probabilities, model.scheme(), method, rule).to(at::kInt);
  return out;
}

const UNetOptions& Segmenter::model_options() const { return predictor_->model_options(); }

Segmentation Segmenter::segment(const at::Tensor& image_in) const {
  const at::Tensor image = image_in.dim() == 2 ? image_in.unsqueeze(0) : image_in;
  const auto type = image.scalar_type();
  const SampleFormat format = type == at::kByte                          ? SampleFormat::kUInt8
                              : type == at::kFloat || type == at::kDouble ? SampleFormat::kFloat32
                                                                         : SampleFormat::kUInt16;
  return segment(RawImage{image.cpu(), format}, false);
}

Segmentation Segmenter::segment(const uint8_t* pixels, int64_t height, int64_t width, int64_t channels) const {
  if (!pixels || height < 1 || width < 1 || channels < 1) throw Error("segment: empty image buffer");
  const at::Tensor hwc = at::from_blob(const_cast<uint8_t*>(pixels), {height, width, channels}, at::kByte);
  return segment(hwc.permute({2, 0, 1}).contiguous());
}

}  // namespace unet
