// Border weight maps: windowed exact distance transforms to each cell, the two nearest cells per pixel.
#include "unet/data/weight_map.h"

#include "unet/runtime/error.h"
#include "unet/data/components.h"
#include "unet/data/dataset.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace unet {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

/// Squared distance transform of a sampled function along one line (Felzenszwalb & Huttenlocher's
/// lower envelope of parabolas): out[q] = min_p (q - p)^2 + f[p].
void distance_1d(const float* f, float* out, int64_t n, std::vector<int64_t>& v, std::vector<float>& z) {
  v.assign(static_cast<size_t>(n), 0);
  z.assign(static_cast<size_t>(n) + 1, 0.0f);
  int64_t k = -1;
  for (int64_t q = 0; q < n; ++q) {
    if (f[q] == kInf) continue;
    while (k >= 0) {
      const int64_t p = v[static_cast<size_t>(k)];
      const float s = ((f[q] + static_cast<float>(q * q)) - (f[p] + static_cast<float>(p * p))) / static_cast<float>(2 * (q - p));
      if (s <= z[static_cast<size_t>(k)]) --k;
      else break;
    }
    ++k;
    v[static_cast<size_t>(k)] = q;
    z[static_cast<size_t>(k)] = k == 0 ? -kInf : [&] {
      const int64_t p = v[static_cast<size_t>(k - 1)];
      return ((f[q] + static_cast<float>(q * q)) - (f[p] + static_cast<float>(p * p))) / static_cast<float>(2 * (q - p));
    }();
    z[static_cast<size_t>(k) + 1] = kInf;
  }
  if (k < 0) {
    std::fill(out, out + n, kInf);
    return;
  }
  int64_t j = 0;
  for (int64_t q = 0; q < n; ++q) {
    while (z[static_cast<size_t>(j) + 1] < static_cast<float>(q)) ++j;
    const int64_t p = v[static_cast<size_t>(j)];
    out[q] = static_cast<float>((q - p) * (q - p)) + f[p];
  }
}

/// A cell's bounding box.
struct Box {
  int64_t top, bottom, left, right;
};

/// Bounding box of every cell 1..cells of the component map `comp` [h, w].
std::vector<Box> cell_boxes(const int64_t* comp, int64_t h, int64_t w, int64_t cells) {
  std::vector<Box> boxes(static_cast<size_t>(cells) + 1, Box{h, -1, w, -1});
  for (int64_t i = 0; i < h * w; ++i) {
    if (comp[i] == 0) continue;
    Box& b = boxes[static_cast<size_t>(comp[i])];
    const int64_t y = i / w, x = i % w;
    b = {std::min(b.top, y), std::max(b.bottom, y), std::min(b.left, x), std::max(b.right, x)};
  }
  return boxes;
}

/// Exact squared Euclidean distance to the zero cells of `grid` [wh, ww] (inf elsewhere), in place:
/// columns, then rows.
void distance_transform(std::vector<float>& grid, int64_t wh, int64_t ww) {
  std::vector<float> line_in(static_cast<size_t>(std::max(wh, ww))), line_out(line_in.size()), z;
  std::vector<int64_t> v;
  for (int64_t x = 0; x < ww; ++x) {
    for (int64_t y = 0; y < wh; ++y) line_in[static_cast<size_t>(y)] = grid[static_cast<size_t>(y * ww + x)];
    distance_1d(line_in.data(), line_out.data(), wh, v, z);
    for (int64_t y = 0; y < wh; ++y) grid[static_cast<size_t>(y * ww + x)] = line_out[static_cast<size_t>(y)];
  }
  for (int64_t y = 0; y < wh; ++y) {
    float* row = grid.data() + y * ww;
    distance_1d(row, line_out.data(), ww, v, z);
    std::copy(line_out.begin(), line_out.begin() + ww, row);
  }
}

/// The squared distances d1 <= d2 of every pixel to its two nearest cells of `components` [h, w]
/// (inf beyond `radius`), each cell's distances computed in its bounding box grown by `radius`.
std::pair<std::vector<float>, std::vector<float>> two_nearest_cells(const at::Tensor& components, int64_t radius) {
  const int64_t h = components.size(0), w = components.size(1), cells = components.max().item<int64_t>();
  const int64_t* comp = components.data_ptr<int64_t>();
  const std::vector<Box> boxes = cell_boxes(comp, h, w, cells);
  std::vector<float> d1(static_cast<size_t>(h * w), kInf), d2(d1.size(), kInf), grid;
  for (int64_t c = 1; c <= cells; ++c) {
    const Box& b = boxes[static_cast<size_t>(c)];
    if (b.bottom < 0) continue;  // a label that no pixel carries (instance labels need not be consecutive)
    const int64_t top = std::max<int64_t>(0, b.top - radius), bottom = std::min(h - 1, b.bottom + radius);
    const int64_t left = std::max<int64_t>(0, b.left - radius), right = std::min(w - 1, b.right + radius);
    const int64_t wh = bottom - top + 1, ww = right - left + 1;
    grid.assign(static_cast<size_t>(wh * ww), kInf);
    for (int64_t y = top; y <= bottom; ++y)
      for (int64_t x = left; x <= right; ++x)
        if (comp[y * w + x] == c) grid[static_cast<size_t>((y - top) * ww + (x - left))] = 0.0f;
    distance_transform(grid, wh, ww);
    for (int64_t y = 0; y < wh; ++y)
      for (int64_t x = 0; x < ww; ++x) {
        const float d = grid[static_cast<size_t>(y * ww + x)];
        if (d > static_cast<float>(radius * radius)) continue;  // beyond the radius: as if infinitely far
        const auto i = static_cast<size_t>((y + top) * w + (x + left));
        if (d < d1[i]) {
          d2[i] = d1[i];
          d1[i] = d;
        } else if (d < d2[i]) {
          d2[i] = d;
        }
      }
  }
  return {std::move(d1), std::move(d2)};
}

}  // namespace

void WeightMapOptions::validate() const {
  require_option(w0 >= 0.0, "weight_map.w0", "must not be negative", w0);
  require_option(sigma > 0.0, "weight_map.sigma", "must be positive", sigma);
  require_option(radius >= 1, "weight_map.radius", "must be at least 1 pixel", radius);
}

at::Tensor border_weight_map(const at::Tensor& mask, int64_t classes, const WeightMapOptions& options, const at::Tensor& instances) {
  if (mask.dim() != 2) throw Error("border_weight_map: expected a [H, W] label map");
  if (instances.defined()) {
    if (instances.sizes() != mask.sizes())
      throw Error(c10::str("border_weight_map: instance labels of size ", instances.sizes(), " for a mask of size ", mask.sizes()));
    if (instances.numel() > 0 && instances.min().item<int64_t>() < 0) throw Error("border_weight_map: negative instance labels");
  }
  options.validate();
  const at::Tensor m = mask.to(at::kLong).contiguous();
  const int64_t h = m.size(0), w = m.size(1), n = h * w;
  at::Tensor weights = at::ones({h, w}, at::kFloat);
  if (options.class_balance) {
    // Class balance of this label.
    const at::Tensor counts = at::bincount(m.flatten(), /*weights=*/{}, /*minlength=*/classes).to(at::kDouble);
    const at::Tensor class_weight =
        at::where(counts > 0, static_cast<double>(n) / (static_cast<double>(classes) * counts.clamp_min(1.0)), at::zeros_like(counts));
    weights = class_weight.index_select(0, m.flatten()).view({h, w}).to(at::kFloat).contiguous();
  }
  if (options.w0 == 0.0) return weights;
  // The separation term: on background pixels between two cells, or near where two objects meet.
  const bool objects = instances.defined();
  const auto [d1, d2] = two_nearest_cells(objects ? instances.to(at::kLong).contiguous() : connected_components(m.ne(0)), options.radius);
  const int64_t* labels = m.data_ptr<int64_t>();
  float* out = weights.data_ptr<float>();
  const double two_sigma2 = 2.0 * options.sigma * options.sigma;
  for (int64_t i = 0; i < n; ++i) {
    const auto k = static_cast<size_t>(i);
    if ((!objects && labels[i] != 0) || d2[k] == kInf) continue;
    const double s = std::sqrt(static_cast<double>(d1[k])) + std::sqrt(static_cast<double>(d2[k]));
    out[i] += static_cast<float>(options.w0 * std::exp(-s * s / two_sigma2));
  }
  return weights;
}

at::Tensor sample_weight_map(const Sample& sample, int64_t classes, const WeightMapOptions& options) {
  if (!sample.mask.defined()) throw Error("border weights need labelled training images (" + sample.name() + " has no mask)");
  return border_weight_map(sample.mask, classes, options, sample.instances);
}

}  // namespace unet
