// Object size. U-Nets learn objects at the sizes they were shown: a nucleus model trained on
// objects 30 pixels across shatters nuclei 80 pixels across and merges ones 10 across (kromp2020,
// docs/results.md: object F1 0.72-0.76 at native size, 0.84 with every image rescaled to one
// nucleus size). Cellpose's answer is ours: training images are rescaled so that their median
// object is one diameter, and an image to predict is rescaled by that diameter over its own.
#include "unet/data/object_scale.h"

#include "unet/data/image_io.h"
#include "unet/data/preprocess.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <tuple>

namespace unet {
namespace {

/// Index of the source pixel nearest to each of `out` pixels spanning `in` (half-pixel centres).
at::Tensor nearest_indices(int64_t in, int64_t out) {
  at::Tensor centre = (at::arange(out, at::kDouble) + 0.5) * (static_cast<double>(in) / static_cast<double>(out));
  return centre.floor().to(at::kLong).clamp(0, in - 1);
}

}  // namespace

double median_object_diameter(const at::Tensor& labels) {
  const at::Tensor flat = labels.reshape({-1}).to(at::kLong);
  if (flat.numel() == 0 || flat.max().item<int64_t>() <= 0) return 0.0;
  const at::Tensor areas = at::bincount(flat).slice(0, 1);
  const at::Tensor present = std::get<0>(areas.index({areas.gt(0)}).to(at::kDouble).sort());
  const int64_t n = present.numel();
  if (n == 0) return 0.0;
  // The median of an even count is the mean of the middle two, as numpy's.
  const double median = n % 2 == 1 ? present[n / 2].item<double>()
                                    : 0.5 * (present[n / 2 - 1].item<double>() + present[n / 2].item<double>());
  return 2.0 * std::sqrt(median / M_PI);
}

int64_t scaled_side(int64_t side, double scale) {
  return std::max<int64_t>(1, std::llround(static_cast<double>(side) * scale));
}

at::Tensor resize_image(const at::Tensor& image, int64_t height, int64_t width) {
  const bool shrinks = height < image.size(-2) || width < image.size(-1);
  if (!shrinks) return resize_maps(image.to(at::kFloat), height, width).contiguous();  // plain bilinear (or as it is)
  return at::_upsample_bilinear2d_aa(image.to(at::kFloat).unsqueeze(0), {height, width}, /*align_corners=*/false).squeeze(0).contiguous();
}

at::Tensor resize_labels(const at::Tensor& labels, int64_t height, int64_t width) {
  if (labels.size(-2) == height && labels.size(-1) == width) return labels;
  return labels.index_select(-2, nearest_indices(labels.size(-2), height))
      .index_select(-1, nearest_indices(labels.size(-1), width))
      .contiguous();
}

double rescale_to_object_diameter(Sample& sample, double diameter, int64_t classes, const InstanceTargets& targets) {
  if (!sample.instances.defined())
    throw Error(sample.name() + ": rescaling to an object diameter needs instance labels (mask encoding 'instances')");
  const double own = median_object_diameter(sample.instances);
  if (own <= 0.0) return 1.0;
  const double scale = diameter / own;
  const int64_t height = scaled_side(sample.image.size(1), scale), width = scaled_side(sample.image.size(2), scale);
  auto number = [](double v) {
    char text[32];
    std::snprintf(text, sizeof text, "%.3g", v);
    return std::string(text);
  };
  if (scale > kLargestRescale || scale < 1.0 / kLargestRescale || height * width > max_image_pixels())
    throw Error(sample.name() + ": its median object is " + number(own) + " pixels across; rescaling it to " + number(diameter) +
                " would scale the image by " + number(scale) + " to " + std::to_string(width) + "x" + std::to_string(height) +
                " (at most " + number(kLargestRescale) + "x either way, " + std::to_string(max_image_pixels()) + " pixels)");
  sample.image = resize_image(sample.image, height, width);
  if (sample.weights.defined()) sample.weights = resize_image(sample.weights.unsqueeze(0), height, width).squeeze(0);
  attach_instances(sample, resize_labels(sample.instances, height, width), classes, targets);
  return scale;
}

std::vector<double> rescale_to_object_diameter(std::vector<Sample>& samples, double diameter, int64_t classes,
                                               const InstanceTargets& targets) {
  std::vector<double> scales;
  scales.reserve(samples.size());
  for (Sample& s : samples) scales.push_back(rescale_to_object_diameter(s, diameter, classes, targets));
  return scales;
}

}  // namespace unet
