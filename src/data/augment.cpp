// Augmentation of an image and its mask with one shared random geometry.
#include "unet/data/augment.h"

#include "unet/data/preprocess.h"

#include <ATen/ATen.h>

#include <algorithm>

#include <cmath>

namespace unet {

double uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

double normal01(std::mt19937_64& rng) {
  const double u1 = 1.0 - uniform01(rng);  // (0, 1]: log is finite
  const double u2 = uniform01(rng);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

void augment_sample(at::Tensor& image, at::Tensor& mask, int64_t classes, const AugmentOptions& options,
                    std::mt19937_64& rng, at::Tensor* weights, const at::Tensor* intensity) {
  const int64_t h = image.size(1), w = image.size(2);
  const bool has_mask = mask.defined();
  const bool has_weights = weights && weights->defined();
  // Draw every random number up front, in a fixed order, so that the stream does not depend on
  // which transforms are enabled further down.
  const bool flip_h = uniform01(rng) < 0.5, flip_v = uniform01(rng) < 0.5;
  const double left = uniform01(rng) * options.crop, right = 1.0 - uniform01(rng) * options.crop;
  const double top = uniform01(rng) * options.crop, bottom = 1.0 - uniform01(rng) * options.crop;
  const double delta = (2.0 * uniform01(rng) - 1.0) * options.brightness;
  const int64_t g = options.elastic_grid;
  std::vector<float> displacement(static_cast<size_t>(2 * g * g));
  for (auto& d : displacement) d = static_cast<float>(normal01(rng) * options.elastic_sigma);
  // The photometric jitter's own stream, drawn only when it is on (runs without it keep theirs).
  std::mt19937_64 color_rng(options.color ? rng() : 0);

  if (options.flips && flip_h) {
    image = image.flip({2});
    if (has_mask) mask = mask.flip({1});
    if (has_weights) *weights = weights->flip({1});
  }
  if (options.flips && flip_v) {
    image = image.flip({1});
    if (has_mask) mask = mask.flip({0});
    if (has_weights) *weights = weights->flip({0});
  }

  const bool crop = options.crop > 0.0, elastic = options.elastic && options.elastic_sigma > 0.0;
  if (crop || elastic) {
    // One sampling grid (normalised coordinates, align_corners) for the crop and the warp.
    const auto opts = at::TensorOptions(at::kFloat);
    at::Tensor xs = at::linspace(-1.0, 1.0, w, opts), ys = at::linspace(-1.0, 1.0, h, opts);
    if (crop) {
      xs = (xs + 1.0) * (right - left) + (2.0 * left - 1.0);
      ys = (ys + 1.0) * (bottom - top) + (2.0 * top - 1.0);
    }
    at::Tensor gx = xs.view({1, w}).expand({h, w}), gy = ys.view({h, 1}).expand({h, w});
    if (elastic) {
      at::Tensor coarse = at::from_blob(displacement.data(), {1, 2, g, g}, opts).clone();
      at::Tensor field = at::upsample_bicubic2d(coarse, {h, w}, /*align_corners=*/true)[0];
      gx = gx + field[0] * (2.0 / std::max<int64_t>(w - 1, 1));
      gy = gy + field[1] * (2.0 / std::max<int64_t>(h - 1, 1));
    }
    const at::Tensor grid = at::stack({gx, gy}, /*dim=*/-1).unsqueeze(0);  // [1, H, W, 2]
    auto sample = [&](const at::Tensor& x) {
      return at::grid_sampler(x.unsqueeze(0), grid, /*interpolation_mode=*/0, /*padding_mode=*/2,
                              /*align_corners=*/true)[0];
    };
    image = sample(image);
    if (has_mask) mask = maps_to_classes(sample(one_hot_maps(mask, classes)));
    if (has_weights) *weights = sample(weights->unsqueeze(0))[0];
  }
  const bool normalised = intensity && intensity->defined();
  if (options.brightness > 0.0) {
    // Clipped to [-1, 1], or, after a per-image normalisation, to the image's own extremes where
    // it lies beyond them (its outliers stay as they were).
    double lo = -1.0, hi = 1.0;
    if (normalised) lo = std::min(lo, image.min().item<double>()), hi = std::max(hi, image.max().item<double>());
    image = (image + delta).clamp(lo, hi);
  }
  if (options.color) {
    // The jitter works on intensities: a normalised image goes back to them, and is normalised
    // anew from the jittered image's statistics (what prediction would do with such an image).
    if (normalised) {
      const at::Tensor gain = intensity->select(1, 0).view({-1, 1, 1}), offset = intensity->select(1, 1).view({-1, 1, 1});
      image = network_intensities(color_augment((image - offset) / gain, options.color_options, color_rng),
                                  options.normalisation);
    } else {
      image = color_augment(image, options.color_options, color_rng);
    }
  }
  image = image.contiguous();
  if (has_mask) mask = mask.contiguous();
  if (has_weights) *weights = weights->contiguous();
}

}  // namespace unet
