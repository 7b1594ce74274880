// Overlap-tile prediction: mirrored borders, tile batches, Gaussian or uniform blending, 8-fold TTA.
#include "unet/infer/tiled.h"

#include "unet/data/tiles.h"

#include <ATen/ATen.h>

#include <cmath>

namespace unet {

const EnumNames<Blend>& blend_names() {
  static const EnumNames<Blend> names = {{"gaussian", Blend::kGaussian}, {"uniform", Blend::kUniform}};
  return names;
}

Blend parse_blend(const std::string& text) { return parse_name(blend_names(), "blend", text); }

std::vector<int64_t> tile_origins(int64_t size, int64_t output, int64_t stride) {
  std::vector<int64_t> origins;
  if (size <= output) return {0};
  for (int64_t o = 0;; o += stride) {
    if (o + output >= size) {
      origins.push_back(size - output);
      break;
    }
    origins.push_back(o);
  }
  return origins;
}

int64_t tile_stride(const UNetOptions& model, const TileOptions& options) {
  const int64_t output = output_size(model, options.input);
  const int64_t step = int64_t{1} << model.depth();
  require_option(options.overlap >= 0 && options.overlap < output, "tile_overlap",
                 "must be between 0 and the tile's output side " + std::to_string(output - 1), options.overlap);
  return std::max(step, (output - options.overlap) / step * step);
}

namespace {

at::Tensor blend_weights(int64_t output, Blend blend) {
  if (blend == Blend::kUniform) return at::ones({output, output});
  // Gaussian over the tile (sigma = side / 8), floored so that tile corners still count.
  const double sigma = output / 8.0, centre = (output - 1) / 2.0;
  at::Tensor d = at::arange(output, at::kFloat).sub_(centre);
  at::Tensor g = at::exp(-(d * d) / (2 * sigma * sigma));
  at::Tensor w = g.view({-1, 1}) * g.view({1, -1});
  return w.clamp_min(1e-3);
}

}  // namespace

at::Tensor dihedral(const at::Tensor& x, int k, bool inverse) {
  const int64_t h = x.dim() - 2, w = x.dim() - 1;
  const bool flip = k >= 4;
  const int64_t turns = k % 4;
  at::Tensor y = x;
  if (!inverse) {
    if (flip) y = y.flip({w});
    return turns ? at::rot90(y, turns, {h, w}) : y;
  }
  if (turns) y = at::rot90(y, -turns, {h, w});
  return flip ? y.flip({w}) : y;
}

at::Tensor predict_tiled(const std::function<at::Tensor(const at::Tensor&)>& forward, const UNetOptions& model,
                         const at::Tensor& image, const TileOptions& options) {
  const int64_t height = image.size(1), width = image.size(2);
  if (height < 1 || width < 1) throw Error("cannot predict a zero-size image");
  const int64_t output = output_size(model, options.input);
  const int64_t margin = (options.input - output) / 2;
  const int64_t stride = tile_stride(model, options);
  const auto ys = tile_origins(height, output, stride), xs = tile_origins(width, output, stride);
  const at::Tensor weights = blend_weights(output, options.blend);
  at::Tensor sum = at::zeros({model.classes(), height, width});
  at::Tensor weight_sum = at::zeros({height, width});
  std::vector<std::pair<int64_t, int64_t>> pending;
  std::vector<at::Tensor> inputs;
  auto flush = [&] {
    if (inputs.empty()) return;
    const at::Tensor batch = at::stack(inputs);  // [B, C, input, input]
    at::Tensor probs;
    const int variants = options.tta ? 8 : 1;
    for (int k = 0; k < variants; ++k) {
      const at::Tensor p = dihedral(at::softmax(forward(dihedral(batch, k, false)).to(at::kFloat), 1), k, true);
      probs = probs.defined() ? probs + p : p;
    }
    if (variants > 1) probs = probs / variants;
    for (size_t i = 0; i < pending.size(); ++i) {
      const auto [y, x] = pending[i];
      const int64_t h = std::min(output, height - y), w = std::min(output, width - x);
      const at::Tensor wt = weights.narrow(0, 0, h).narrow(1, 0, w);
      sum.narrow(1, y, h).narrow(2, x, w).add_(probs[static_cast<int64_t>(i)].narrow(1, 0, h).narrow(2, 0, w) * wt);
      weight_sum.narrow(0, y, h).narrow(1, x, w).add_(wt);
    }
    inputs.clear();
    pending.clear();
  };
  for (const int64_t y : ys) {
    const at::Tensor rows = mirror_indices(height, y - margin, options.input);
    const at::Tensor rows_image = image.index_select(1, rows);
    for (const int64_t x : xs) {
      inputs.push_back(rows_image.index_select(2, mirror_indices(width, x - margin, options.input)));
      pending.emplace_back(y, x);
      if (static_cast<int64_t>(inputs.size()) >= options.batch) flush();
    }
  }
  flush();
  return sum / weight_sum.unsqueeze(0);
}

}  // namespace unet
