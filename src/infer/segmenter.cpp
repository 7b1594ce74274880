// The embedding API: a Predictor in tile mode that segments image tensors and buffers.
#include "unet/infer/segmenter.h"

#include "unet/data/image_io.h"
#include "unet/data/preprocess.h"
#include "unet/infer/export.h"
#include "unet/infer/predictor.h"
#include "unet/model/checkpoint.h"
#include "unet/runtime/device.h"

#include <ATen/ATen.h>

namespace unet {

Segmenter Segmenter::from_checkpoint(const std::string& path, const std::string& device, const std::string& precision) {
  const CheckpointInfo info = read_checkpoint_info(path);
  const c10::Device where = parse_device_name(device);
  require_available(where);
  const Precision p = resolve_precision(parse_precision(precision), where);
  const UNet model = load_model(path, info);
  Segmenter s;
  s.predictor_ = std::make_shared<Predictor>(model, Geometry{info.input_size, output_size(info.model, info.input_size)},
                                             where, /*batch_size=*/1);
  s.predictor_->use_precision(p);
  s.predictor_->use_normalisation(info.normalisation);
  if (p == Precision::kInt8) {
    if (!where.is_cpu()) throw Error("int8 runs on CPUs only");
    s.predictor_->use_int8(std::make_shared<Int8Engine>(model, load_int8_scales(path, model, info.step)));
  }
  s.tiles_.input = info.input_size;
  return s;
}

Segmenter Segmenter::from_export(const std::string& path, const std::string& device) {
  const c10::Device where = parse_device_name(device);
  require_available(where);
  const LoadedExport loaded = load_export(path, where);
  Segmenter s;
  s.predictor_ = std::make_shared<Predictor>(loaded, where, /*batch_size=*/1);
  s.tiles_.input = loaded.input_size;
  return s;
}

const UNetOptions& Segmenter::model_options() const { return predictor_->model_options(); }

Segmentation Segmenter::segment(const at::Tensor& image_in) const {
  const at::Tensor image = image_in.dim() == 2 ? image_in.unsqueeze(0) : image_in;
  if (image.dim() != 3 || image.size(1) < 1 || image.size(2) < 1) throw Error("segment: expected a non-empty [C, H, W] or [H, W] image");
  if (image.size(0) != model_options().in_channels())
    throw Error("segment: the image has " + std::to_string(image.size(0)) + " channels, the model expects " +
                std::to_string(model_options().in_channels()));
  const auto type = image.scalar_type();
  const SampleFormat format = type == at::kByte                          ? SampleFormat::kUInt8
                              : type == at::kFloat || type == at::kDouble ? SampleFormat::kFloat32
                                                                         : SampleFormat::kUInt16;
  Sample sample;
  sample.image = normalise(RawImage{image.cpu(), format});
  predictor_->use_tiles(tiles_);
  Segmentation out;
  out.probabilities = predictor_->predict({sample}).front();
  out.mask = maps_to_classes(out.probabilities).to(at::kByte);
  return out;
}

Segmentation Segmenter::segment(const uint8_t* pixels, int64_t height, int64_t width, int64_t channels) const {
  if (!pixels || height < 1 || width < 1 || channels < 1) throw Error("segment: empty image buffer");
  const at::Tensor hwc = at::from_blob(const_cast<uint8_t*>(pixels), {height, width, channels}, at::kByte);
  return segment(hwc.permute({2, 0, 1}).contiguous());
}

}  // namespace unet
