// Intensity normalisation and resize-mode preprocessing: images and masks to network sizes and back.
#include "unet/data/preprocess.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

namespace unet {

at::Tensor normalise(const RawImage& raw) { return to_unit_range(raw).mul_(2.0).sub_(1.0); }

at::Tensor denormalise(const at::Tensor& image) { return image.add(1.0).mul_(0.5); }

namespace {

/// numpy's default ("linear") percentile of `n` values, `ranked(r)` giving the value of rank r
/// (0-based): the two neighbouring ranks, interpolated. 0 for no values.
template <typename Ranked>
double interpolated_percentile(int64_t n, double percent, const Ranked& ranked) {
  if (n == 0) return 0.0;
  const double position = percent / 100.0 * static_cast<double>(n - 1);
  const int64_t below = std::min<int64_t>(static_cast<int64_t>(std::floor(position)), n - 1);
  const int64_t above = std::min<int64_t>(below + 1, n - 1);
  const double low = ranked(below);
  const double high = above == below ? low : ranked(above);
  return low + (position - static_cast<double>(below)) * (high - low);
}

/// The percentile of a tensor's values (k-th smallest values, no full sort).
double percentile_of(const at::Tensor& values, double percent) {
  return interpolated_percentile(values.numel(), percent,
                                 [&](int64_t r) { return std::get<0>(values.kthvalue(r + 1)).item<double>(); });
}

/// Gain and offset of one channel from its statistics: percentiles `low`, `high` or moments
/// `mean`, `std` (whichever the mode uses).
std::pair<double, double> gain_offset(const Normalisation& n, double low, double high, double mean, double std) {
  if (n.mode == IntensityMode::kPercentile) {
    const double gain = 2.0 / (high - low + Normalisation::kEpsilon);  // low -> -1, high -> 1
    return {gain, -low * gain - 1.0};
  }
  if (n.mode == IntensityMode::kMeanStd) {
    const double gain = 1.0 / (std + Normalisation::kEpsilon);
    return {gain, -mean * gain};
  }
  return {1.0, 0.0};
}

}  // namespace

at::Tensor normalisation_affine(const at::Tensor& image, const Normalisation& n) {
  const int64_t channels = image.size(0);
  at::Tensor affine = at::zeros({channels, 2}, at::kFloat);
  for (int64_t c = 0; c < channels; ++c) {
    // In float64, as the statistics of a large image need it.
    const at::Tensor v = image[c].reshape({-1}).to(at::kDouble);
    double low = 0, high = 0, mean = 0, std = 0;
    if (n.mode == IntensityMode::kPercentile) {
      low = percentile_of(v, n.low);
      high = percentile_of(v, n.high);
    } else if (n.mode == IntensityMode::kMeanStd && v.numel() > 0) {
      mean = v.mean().item<double>();
      std = (v - mean).square().mean().sqrt().item<double>();
    } else {
      affine[c][0] = 1.0;  // range, or no pixels: as they are
      continue;
    }
    const auto [gain, offset] = gain_offset(n, low, high, mean, std);
    affine[c][0] = gain;
    affine[c][1] = offset;
  }
  return affine;
}

at::Tensor normalisation_affine_from_histograms(const at::Tensor& counts, SampleFormat format, const Normalisation& n) {
  TORCH_CHECK(counts.dim() == 2 && (format == SampleFormat::kUInt8 || format == SampleFormat::kUInt16),
              "normalisation_affine_from_histograms: [C, levels] counts of 8/16-bit values");
  const int64_t channels = counts.size(0), levels = counts.size(1);
  // What `normalise` makes of each stored value, as float64: the values the whole image would hold.
  RawImage all;
  all.format = format;
  all.pixels = at::arange(levels, format == SampleFormat::kUInt8 ? at::kByte : at::kInt).view({1, 1, levels});
  const at::Tensor value = normalise(all).reshape({-1}).to(at::kDouble).contiguous();
  const double* v = value.data_ptr<double>();
  at::Tensor affine = at::zeros({channels, 2}, at::kFloat);
  for (int64_t c = 0; c < channels; ++c) {
    const at::Tensor counted = counts[c].to(at::kLong).contiguous();
    const int64_t* k = counted.data_ptr<int64_t>();
    int64_t total = 0;
    for (int64_t i = 0; i < levels; ++i) total += k[i];
    // The value of rank r (0-based) in sorted order.
    auto ranked = [&](int64_t r) {
      int64_t seen = 0;
      for (int64_t i = 0; i < levels; ++i)
        if ((seen += k[i]) > r) return v[i];
      return v[levels - 1];
    };
    double low = 0, high = 0, mean = 0, var = 0;
    if (n.mode == IntensityMode::kPercentile) {
      low = interpolated_percentile(total, n.low, ranked);
      high = interpolated_percentile(total, n.high, ranked);
    } else if (n.mode == IntensityMode::kMeanStd && total > 0) {
      for (int64_t i = 0; i < levels; ++i) mean += static_cast<double>(k[i]) * v[i];
      mean /= static_cast<double>(total);
      for (int64_t i = 0; i < levels; ++i) var += static_cast<double>(k[i]) * (v[i] - mean) * (v[i] - mean);
      var /= static_cast<double>(total);
    } else {
      affine[c][0] = 1.0;
      continue;
    }
    const auto [gain, offset] = gain_offset(n, low, high, mean, std::sqrt(var));
    affine[c][0] = gain;
    affine[c][1] = offset;
  }
  return affine;
}

at::Tensor apply_affine(const at::Tensor& image, const at::Tensor& affine) {
  const at::Tensor a = affine.to(image.device());
  return image * a.select(1, 0).view({-1, 1, 1}) + a.select(1, 1).view({-1, 1, 1});
}

at::Tensor network_intensities(const at::Tensor& image, const Normalisation& n) {
  if (n.mode == IntensityMode::kRange) return image;
  return apply_affine(image, normalisation_affine(image, n));
}

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
  const int64_t pad = geometry.margin();
  if (pad == 0) return x.contiguous();
  return at::constant_pad_nd(x, {pad, pad, pad, pad}, 0.0);
}

at::Tensor mask_to_output(const at::Tensor& mask, const Geometry& geometry, int64_t classes) {
  if (mask.size(0) == geometry.output && mask.size(1) == geometry.output) return mask;
  return maps_to_classes(resize_maps(one_hot_maps(mask, classes), geometry.output, geometry.output));
}

}  // namespace unet
