// The embedding API: a trained model (checkpoint or export) that segments image buffers.
#include "unet/segmenter.h"

#include "unet/checkpoint.h"
#include "unet/error.h"
#include "unet/image_io.h"
#include "unet/preprocess.h"
#include "unet/runtime.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <memory>

namespace unet {

Segmenter Segmenter::from_checkpoint(const std::string& path, const std::string& device) {
  const CheckpointInfo info = read_checkpoint_info(path);
  Segmenter s;
  s.device_ = parse_device(device);
  s.options_ = info.model;
  s.tiles_.input = info.input_size;
  auto model = std::make_shared<UNet>(info.model);
  load_checkpoint(path, *model, nullptr, /*restore_rng=*/false);
  (*model)->to(s.device_);
  (*model)->eval();
  s.forward_ = [model](const at::Tensor& x) { return (*model)->forward(x); };
  return s;
}

Segmenter Segmenter::from_export(const std::string& path, const std::string& device) {
  Segmenter s;
  s.device_ = parse_device(device);
  LoadedExport loaded = load_export(path, s.device_);
  s.options_ = loaded.options;
  s.tiles_.input = loaded.input_size;
  s.forward_ = loaded.forward;
  return s;
}

Segmentation Segmenter::segment(const at::Tensor& image_in) const {
  at::Tensor image = image_in.dim() == 2 ? image_in.unsqueeze(0) : image_in;
  if (image.dim() != 3 || image.size(1) < 1 || image.size(2) < 1) throw Error("segment: expected a non-empty [C, H, W] or [H, W] image");
  if (image.size(0) != options_.in_channels())
    throw Error("segment: the image has " + std::to_string(image.size(0)) + " channels, the model expects " +
                std::to_string(options_.in_channels()));
  RawImage raw{image.cpu(), image.scalar_type() == at::kByte   ? SampleFormat::kUInt8
                            : image.scalar_type() == at::kFloat || image.scalar_type() == at::kDouble ? SampleFormat::kFloat32
                                                                                                       : SampleFormat::kUInt16};
  const at::Tensor normalised = to_unit_range(raw).mul_(2.0).sub_(1.0);
  c10::InferenceMode guard;
  const c10::Device device = device_;
  auto forward = [this, device](const at::Tensor& x) { return forward_(x.to(device)).to(at::kFloat).cpu(); };
  Segmentation out;
  out.probabilities = predict_tiled(forward, options_, normalised, tiles_);
  out.mask = maps_to_classes(out.probabilities).to(at::kByte);
  return out;
}

Segmentation Segmenter::segment(const uint8_t* pixels, int64_t height, int64_t width, int64_t channels) const {
  if (!pixels || height < 1 || width < 1 || channels < 1) throw Error("segment: empty image buffer");
  const at::Tensor hwc = at::from_blob(const_cast<uint8_t*>(pixels), {height, width, channels}, at::kByte);
  return segment(hwc.permute({2, 0, 1}).contiguous());
}

}  // namespace unet
