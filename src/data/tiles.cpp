// Mirrored tiles: the index arithmetic of mirror-padding, and random training crops at native resolution.
#include "unet/data/tiles.h"

#include "unet/data/augment.h"

#include <ATen/ATen.h>

#include <cmath>

namespace unet {

at::Tensor mirror_indices(int64_t size, int64_t start, int64_t length) {
  at::Tensor p = at::arange(start, start + length, at::kLong);
  if (size == 1) return at::zeros_like(p);
  const int64_t period = 2 * (size - 1);
  p = at::remainder(p, period);  // into [0, period)
  return at::where(p >= size, period - p, p);
}

std::pair<at::Tensor, at::Tensor> random_tile(const at::Tensor& image, const at::Tensor& mask, int64_t input,
                                              int64_t output, std::mt19937_64& rng, const at::Tensor& weights,
                                              at::Tensor* weights_window, at::Tensor* mask_input) {
  const int64_t height = image.size(1), width = image.size(2), margin = Geometry{input, output}.margin();
  auto origin = [&](int64_t size) {
    const int64_t range = std::max<int64_t>(size - output, 0);
    return static_cast<int64_t>(std::floor(uniform01(rng) * static_cast<double>(range + 1)));
  };
  const int64_t y = origin(height), x = origin(width);
  const at::Tensor tile =
      image.index_select(1, mirror_indices(height, y - margin, input)).index_select(2, mirror_indices(width, x - margin, input));
  at::Tensor labels;
  if (mask.defined())
    labels = mask.index_select(0, mirror_indices(height, y, output)).index_select(1, mirror_indices(width, x, output));
  if (mask.defined() && mask_input)
    *mask_input = mask.index_select(0, mirror_indices(height, y - margin, input))
                      .index_select(1, mirror_indices(width, x - margin, input))
                      .contiguous();
  if (weights.defined() && weights_window)
    *weights_window = weights.index_select(0, mirror_indices(height, y, output))
                          .index_select(1, mirror_indices(width, x, output))
                          .contiguous();
  return {tile.contiguous(), labels.defined() ? labels.contiguous() : labels};
}

}  // namespace unet
