// Augmentation of an image and its mask with one shared random geometry: of the whole image
// (`augment_sample`), or of a training tile only (`augment_tile`: the tile's pixels are mapped back
// through the flips, crop and elastic field, and only the source region they cover is sampled).
#include "unet/data/augment.h"

#include "unet/data/preprocess.h"
#include "unet/data/tiles.h"

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

namespace {

/// Every random number of one augmentation, drawn up front in a fixed order, so that the stream
/// does not depend on which transforms are enabled.
struct Draws {
  bool flip_h = false, flip_v = false;
  double left = 0, right = 1, top = 0, bottom = 1, delta = 0;
  std::vector<float> displacement;  // [2, g, g] pixels
  uint64_t color_seed = 0;
};

Draws draw(const AugmentOptions& options, std::mt19937_64& rng) {
  Draws d;
  d.flip_h = uniform01(rng) < 0.5;
  d.flip_v = uniform01(rng) < 0.5;
  d.left = uniform01(rng) * options.crop, d.right = 1.0 - uniform01(rng) * options.crop;
  d.top = uniform01(rng) * options.crop, d.bottom = 1.0 - uniform01(rng) * options.crop;
  d.delta = (2.0 * uniform01(rng) - 1.0) * options.brightness;
  const int64_t g = options.elastic_grid;
  d.displacement.resize(static_cast<size_t>(2 * g * g));
  for (auto& v : d.displacement) v = static_cast<float>(normal01(rng) * options.elastic_sigma);
  // The photometric jitter's own stream, drawn only when it is on (runs without it keep theirs).
  d.color_seed = options.color ? rng() : 0;
  return d;
}

/// Coordinates reflected into [0, size - 1] about the edge pixels' centres, as the grid sampler's
/// reflection padding with aligned corners does.
at::Tensor reflect(const at::Tensor& p, int64_t size) {
  if (size == 1) return at::zeros_like(p);
  const double span = static_cast<double>(size - 1);
  const at::Tensor a = p.abs();
  const at::Tensor flips = (a / span).floor();
  const at::Tensor extra = a - flips * span;
  return at::where(at::remainder(flips, 2) == 0, extra, span - extra).clamp(0.0, span);
}

/// Normalised coordinate (aligned corners) of pixel positions `p` on an axis of `size` pixels.
at::Tensor normalised(const at::Tensor& p, int64_t size) {
  return size > 1 ? p * (2.0 / static_cast<double>(size - 1)) - 1.0 : at::full_like(p, -1.0);
}

/// The one sampling grid of `d`'s geometry, [1, n, m, 2] (normalised source coordinates, aligned
/// corners), at the augmented image's pixel rows [n] and columns [m] (float) of an h x w image:
/// the crop's affine map, the elastic field (bicubic from its coarse grid: `upsample_bicubic2d`'s
/// values at those pixels) and the flips (a flipped image sampled at u is the image at -u).
at::Tensor sampling_grid(const Draws& d, const AugmentOptions& options, const at::Tensor& rows, const at::Tensor& cols,
                         int64_t h, int64_t w) {
  const int64_t n = rows.numel(), m = cols.numel();
  const at::Tensor bx = normalised(cols, w).view({1, m}).expand({n, m}), by = normalised(rows, h).view({n, 1}).expand({n, m});
  at::Tensor gx = bx, gy = by;
  if (options.crop > 0.0) {
    gx = (gx + 1.0) * (d.right - d.left) + (2.0 * d.left - 1.0);
    gy = (gy + 1.0) * (d.bottom - d.top) + (2.0 * d.top - 1.0);
  }
  if (options.elastic && options.elastic_sigma > 0.0) {
    const int64_t g = options.elastic_grid;
    const at::Tensor coarse = at::from_blob(const_cast<float*>(d.displacement.data()), {1, 2, g, g}, at::kFloat);
    const at::Tensor at_pixels = at::stack({bx, by}, -1).unsqueeze(0);
    const at::Tensor field = at::grid_sampler(coarse, at_pixels, /*bicubic*/ 2, /*border*/ 1, /*align_corners=*/true)[0];
    gx = gx + field[0] * (2.0 / static_cast<double>(std::max<int64_t>(w - 1, 1)));
    gy = gy + field[1] * (2.0 / static_cast<double>(std::max<int64_t>(h - 1, 1)));
  }
  if (options.flips && d.flip_h) gx = -gx;
  if (options.flips && d.flip_v) gy = -gy;
  return at::stack({gx, gy}, -1).unsqueeze(0);
}

/// The brightness shift, clipped to [-1, 1], or after a per-image normalisation to the source
/// image's own extremes where they lie beyond (its outliers stay as they were).
at::Tensor brighten(const at::Tensor& x, const at::Tensor& source, double delta, const AugmentOptions& options,
                    bool normalised) {
  if (options.brightness <= 0.0) return x;
  double lo = -1.0, hi = 1.0;
  if (normalised) lo = std::min(lo, source.min().item<double>()), hi = std::max(hi, source.max().item<double>());
  return (x + delta).clamp(lo, hi);
}

/// Instance labels [H, W] sampled at `grid` ([1, h, w, 2], as `at::grid_sampler` takes it) by
/// nearest neighbour: float64 holds every int64 label up to 2^53 exactly.
at::Tensor nearest_labels(const at::Tensor& labels, const at::Tensor& grid, int64_t padding) {
  return at::grid_sampler(labels.to(at::kDouble).view({1, 1, labels.size(0), labels.size(1)}), grid.to(at::kDouble),
                          /*nearest*/ 1, padding, /*align_corners=*/true)[0][0].to(at::kLong);
}

bool warps(const AugmentOptions& options) {
  return options.crop > 0.0 || (options.elastic && options.elastic_sigma > 0.0);
}

}  // namespace

void augment_sample(at::Tensor& image, at::Tensor& mask, int64_t classes, const AugmentOptions& options,
                    std::mt19937_64& rng, at::Tensor* weights, const at::Tensor* intensity) {
  const int64_t h = image.size(1), w = image.size(2);
  const bool has_mask = mask.defined();
  const bool has_weights = weights && weights->defined();
  const bool normalised = intensity && intensity->defined();
  const Draws d = draw(options, rng);
  const at::Tensor source = image;
  if (warps(options)) {
    const at::Tensor grid = sampling_grid(d, options, at::arange(h, at::kFloat), at::arange(w, at::kFloat), h, w);
    auto sample = [&](const at::Tensor& x) {
      return at::grid_sampler(x.unsqueeze(0), grid, /*bilinear*/ 0, /*reflection*/ 2, /*align_corners=*/true)[0];
    };
    image = sample(image);
    if (has_mask)
      mask = classes == kInstanceLabels ? nearest_labels(mask, grid, /*reflection*/ 2)
                                        : maps_to_classes(sample(one_hot_maps(mask, classes)));
    if (has_weights) *weights = sample(weights->unsqueeze(0))[0];
  } else if (options.flips) {
    std::vector<int64_t> axes;  // image axes; the mask's are one lower
    if (d.flip_v) axes.push_back(1);
    if (d.flip_h) axes.push_back(2);
    if (!axes.empty()) {
      image = image.flip(axes);
      for (auto& a : axes) --a;
      if (has_mask) mask = mask.flip(axes);
      if (has_weights) *weights = weights->flip(axes);
    }
  }
  image = brighten(image, source, d.delta, options, normalised);
  if (options.color) {
    // The jitter works on intensities: a normalised image goes back to them, and is normalised
    // anew from the jittered image's statistics (what prediction would do with such an image).
    std::mt19937_64 color_rng(d.color_seed);
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

std::pair<at::Tensor, at::Tensor> augment_tile(const at::Tensor& image, const at::Tensor& mask, int64_t classes,
                                               const AugmentOptions& options, int64_t input, int64_t output,
                                               std::mt19937_64& rng, const at::Tensor& weights, at::Tensor* weights_window,
                                               const at::Tensor* intensity, at::Tensor* mask_input) {
  if (options.color) {  // the jitter's statistics are the whole image's
    at::Tensor img = image, m = mask, w = weights;
    augment_sample(img, m, classes, options, rng, w.defined() ? &w : nullptr, intensity);
    return random_tile(img, m, input, output, rng, w, weights_window, mask_input);
  }
  const int64_t h = image.size(1), w = image.size(2), margin = Geometry{input, output}.margin();
  const Draws d = draw(options, rng);
  // The tile's window in the augmented image (same size as the source), as `random_tile` draws it.
  auto origin = [&](int64_t size) {
    return static_cast<int64_t>(std::floor(uniform01(rng) * static_cast<double>(std::max<int64_t>(size - output, 0) + 1)));
  };
  const int64_t y = origin(h), x = origin(w);
  const at::Tensor rows = mirror_indices(h, y - margin, input), cols = mirror_indices(w, x - margin, input);
  at::Tensor tile, labels, wts;
  if (!warps(options)) {
    // Flips alone: the window's pixels, read from the mirrored positions.
    const at::Tensor r = options.flips && d.flip_v ? (h - 1) - rows : rows, c = options.flips && d.flip_h ? (w - 1) - cols : cols;
    tile = image.index_select(1, r).index_select(2, c);
    if (mask.defined()) labels = mask.index_select(0, r).index_select(1, c);
    if (weights.defined()) wts = weights.index_select(0, r).index_select(1, c);
  } else {
    // Source pixel positions of the tile, reflected into the image; only the region they cover
    // is sampled.
    const at::Tensor grid = sampling_grid(d, options, rows.to(at::kFloat), cols.to(at::kFloat), h, w)[0];
    const at::Tensor px = reflect((grid.select(-1, 0) + 1.0) * (0.5 * static_cast<double>(w - 1)), w);
    const at::Tensor py = reflect((grid.select(-1, 1) + 1.0) * (0.5 * static_cast<double>(h - 1)), h);
    const int64_t x0 = static_cast<int64_t>(std::floor(px.min().item<float>()));
    const int64_t x1 = std::min<int64_t>(static_cast<int64_t>(std::ceil(px.max().item<float>())), w - 1);
    const int64_t y0 = static_cast<int64_t>(std::floor(py.min().item<float>()));
    const int64_t y1 = std::min<int64_t>(static_cast<int64_t>(std::ceil(py.max().item<float>())), h - 1);
    const at::Tensor region_grid = at::stack({normalised(px - static_cast<double>(x0), x1 - x0 + 1),
                                              normalised(py - static_cast<double>(y0), y1 - y0 + 1)}, -1).unsqueeze(0);
    auto cut = [&](const at::Tensor& src) { return src.slice(-2, y0, y1 + 1).slice(-1, x0, x1 + 1); };
    auto sample = [&](const at::Tensor& region) {  // [C, h, w] of the region -> [C, input, input]
      return at::grid_sampler(region.unsqueeze(0), region_grid, /*bilinear*/ 0, /*border*/ 1, /*align_corners=*/true)[0];
    };
    tile = sample(cut(image));
    if (mask.defined())
      labels = classes == kInstanceLabels ? nearest_labels(cut(mask), region_grid, /*border*/ 1)
                                          : maps_to_classes(sample(one_hot_maps(cut(mask).contiguous(), classes)));
    if (weights.defined()) wts = sample(cut(weights).unsqueeze(0))[0];
  }
  tile = brighten(tile, image, d.delta, options, intensity && intensity->defined());
  if (labels.defined() && mask_input) *mask_input = labels.contiguous();
  if (labels.defined()) labels = labels.slice(0, margin, margin + output).slice(1, margin, margin + output).contiguous();
  if (wts.defined() && weights_window) *weights_window = wts.slice(0, margin, margin + output).slice(1, margin, margin + output).contiguous();
  return {tile.contiguous(), labels};
}

}  // namespace unet
