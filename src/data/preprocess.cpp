// Intensity normalisation and resize-mode preprocessing: images and masks to network sizes and back.
#include "unet/data/preprocess.h"

#include <ATen/ATen.h>

namespace unet {

at::Tensor normalise(const RawImage& raw) { return to_unit_range(raw).mul_(2.0).sub_(1.0); }

at::Tensor denormalise(const at::Tensor& image) { return image.add(1.0).mul_(0.5); }

at::Tensor one_hot_maps(const at::Tensor& labels, int64_t classes) {
  at::Tensor oh = at::one_hot(labels, classes).to(at::kFloat);  // [..., H, W, C]
  return labels.dim() == 2 ? oh.permute({2, 0, 1}).contiguous() : oh.permute({0, 3, 1, 2}).contiguous();
}

at::Tensor resize_maps(const at::Tensor& maps, int64_t height, int64_t width) {
  if (maps.size(-2) == height && maps.size(-1) == width) return maps;
  const bool single = maps.dim() == 3;
  at::Tensor x = single ? maps.unsqueeze(0) : maps;
  x = at::upsample_bilinear2d(x, {height, width}, /*align_corners=*/false);
  return single ? x.squeeze(0) : x;
}

at::Tensor maps_to_classes(const at::Tensor& maps) {
  const int64_t channel_dim = maps.dim() - 3;
  if (maps.size(channel_dim) == 2) return maps.select(channel_dim, 1).ge(0.5).to(at::kLong);
  return maps.argmax(channel_dim);
}

at::Tensor image_to_input(const at::Tensor& image, const Geometry& geometry) {
  at::Tensor x = resize_maps(image, geometry.output, geometry.output);
  const int64_t pad = (geometry.input - geometry.output) / 2;
  if (pad == 0) return x.contiguous();
  return at::constant_pad_nd(x, {pad, pad, pad, pad}, 0.0);
}

at::Tensor mask_to_output(const at::Tensor& mask, const Geometry& geometry, int64_t classes) {
  if (mask.size(0) == geometry.output && mask.size(1) == geometry.output) return mask;
  return maps_to_classes(resize_maps(one_hot_maps(mask, classes), geometry.output, geometry.output));
}

}  // namespace unet
