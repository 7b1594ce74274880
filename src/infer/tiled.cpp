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

at::Tensor dihedral_maps(const at::Tensor& maps, int k, ClassScheme scheme) {
  const at::Tensor back = dihedral(maps, k, true);
  if (scheme != ClassScheme::kDirections) return back;
  TORCH_CHECK(maps.dim() == 4 && maps.size(1) == kDirectionClasses, "dihedral_maps: direction maps [N, 10, S, S]");
  // Sector s (counter-clockwise from east, 45 degrees each) of the image is, in view k, mirrored
  // left-right (s -> 4 - s) when k >= 4, then turned k % 4 quarter turns counter-clockwise (+2 each).
  std::vector<int64_t> source = {0, 1};
  for (int64_t s = 0; s < kDirections; ++s) {
    const int64_t mirrored = k >= 4 ? kDirections / 2 - s : s;
    source.push_back(2 + (((mirrored + 2 * (k % 4)) % kDirections) + kDirections) % kDirections);
  }
  return back.index_select(1, at::tensor(source, at::kLong).to(back.device()));
}

at::Tensor view_probabilities(const std::function<at::Tensor(const at::Tensor&)>& forward, const at::Tensor& batch, bool tta,
                              ClassScheme scheme) {
  if (!tta) return at::softmax(forward(batch).to(at::kFloat), 1);
  at::Tensor probs;
  for (int k = 0; k < 8; ++k) {
    const at::Tensor p = dihedral_maps(at::softmax(forward(dihedral(batch, k, false)).to(at::kFloat), 1), k, scheme);
    probs = probs.defined() ? probs + p : p;
  }
  return probs / 8;
}

namespace {

/// The tile rows that rows [from_y, to_y) need: [first, last).
struct TileRowRange {
  std::vector<int64_t> ys, xs;
  int64_t output = 0, first = 0, last = 0, to_y = 0;
};

TileRowRange tile_rows(const UNetOptions& model, int64_t height, int64_t width, const TileOptions& options,
                       int64_t from_y, int64_t to_y) {
  if (height < 1 || width < 1) throw Error("cannot predict a zero-size image");
  TileRowRange r;
  r.output = output_size(model, options.input);
  const int64_t stride = tile_stride(model, options);
  r.ys = tile_origins(height, r.output, stride);
  r.xs = tile_origins(width, r.output, stride);
  r.to_y = to_y <= 0 ? height : std::min(to_y, height);
  TORCH_CHECK(from_y >= 0 && from_y < r.to_y, "predict_tiled_rows: empty row range");
  const auto n = static_cast<int64_t>(r.ys.size());
  while (r.first < n && r.ys[static_cast<size_t>(r.first)] + r.output <= from_y) ++r.first;
  r.last = r.first;
  while (r.last < n && r.ys[static_cast<size_t>(r.last)] < r.to_y) ++r.last;
  return r;
}

}  // namespace

int64_t tiles_for_rows(const UNetOptions& model, int64_t height, int64_t width, const TileOptions& options,
                       int64_t from_y, int64_t to_y) {
  const TileRowRange r = tile_rows(model, height, width, options, from_y, to_y);
  return (r.last - r.first) * static_cast<int64_t>(r.xs.size());
}

namespace {

/// The blended sums of the rows [base, base + filled) that some tile has touched and that are not
/// yet handed over: at most one tile's output rows, kept in two buffers of that size (the rows
/// still open move to the other one's top as a tile row finishes), so that memory stays put.
class RowSums {
 public:
  RowSums(int64_t classes, int64_t output, int64_t width, int64_t height, int64_t base)
      : sum_(at::zeros({classes, output, width})), weight_(at::zeros({output, width})), spare_sum_(at::zeros_like(sum_)),
        spare_weight_(at::zeros_like(weight_)), height_(height), base_(base) {}

  /// A tile row starts at `y`: its rows are open.
  void open(int64_t y) { filled_ = std::max(filled_, std::min(height_, y + sum_.size(1)) - base_); }
  /// Adds tile probabilities `p` [classes, h, w] with weights `wt` [h, w] at (y, x).
  void add(int64_t y, int64_t x, const at::Tensor& p, const at::Tensor& wt) {
    sum_.narrow(1, y - base_, p.size(1)).narrow(2, x, p.size(2)).add_(p * wt);
    weight_.narrow(0, y - base_, p.size(1)).narrow(1, x, p.size(2)).add_(wt);
  }
  /// Rows above `finished` are complete: those of [from_y, to_y) go to `sink`, all are dropped.
  void finish(int64_t finished, int64_t from_y, int64_t to_y, const RowSink& sink) {
    const int64_t end = std::min({finished, to_y, base_ + filled_}), begin = std::max(base_, from_y);
    if (end > begin)
      sink(begin, sum_.narrow(1, begin - base_, end - begin) / weight_.narrow(0, begin - base_, end - begin).unsqueeze(0));
    const int64_t drop = std::min(finished, base_ + filled_) - base_;
    if (drop <= 0) return;
    const int64_t keep = filled_ - drop;
    spare_sum_.zero_();
    spare_weight_.zero_();
    spare_sum_.narrow(1, 0, keep).copy_(sum_.narrow(1, drop, keep));
    spare_weight_.narrow(0, 0, keep).copy_(weight_.narrow(0, drop, keep));
    std::swap(sum_, spare_sum_);
    std::swap(weight_, spare_weight_);
    base_ += drop;
    filled_ = keep;
  }

 private:
  at::Tensor sum_, weight_, spare_sum_, spare_weight_;
  int64_t height_, base_, filled_ = 0;
};


}  // namespace

void predict_tiled_rows(const std::function<at::Tensor(const at::Tensor&)>& forward, const UNetOptions& model,
                        int64_t height, int64_t width, const TileOptions& options, const RowSource& source,
                        const RowSink& sink, int64_t from_y, int64_t to_y, const TileProgress& progress) {
  const TileRowRange range = tile_rows(model, height, width, options, from_y, to_y);
  const int64_t output = range.output, margin = Geometry{options.input, output}.margin();
  const at::Tensor weights = blend_weights(output, options.blend);
  const int64_t total = (range.last - range.first) * static_cast<int64_t>(range.xs.size());
  int64_t done = 0;
  RowSums sums(model.classes(), output, width, height, range.ys[static_cast<size_t>(range.first)]);
  std::vector<int64_t> pending;  // the x origins of the batch's tiles
  std::vector<at::Tensor> inputs;
  for (int64_t r = range.first; r < range.last; ++r) {
    const int64_t y = range.ys[static_cast<size_t>(r)];
    sums.open(y);
    const at::Tensor rows = mirror_indices(height, y - margin, options.input);
    const int64_t lo = rows.min().item<int64_t>(), hi = rows.max().item<int64_t>();
    const at::Tensor rows_image = source(lo, hi - lo + 1).index_select(1, rows - lo);
    auto flush = [&] {
      if (inputs.empty()) return;
      const at::Tensor probs = view_probabilities(forward, at::stack(inputs), options.tta, model.scheme());
      for (size_t i = 0; i < pending.size(); ++i) {
        const int64_t h = std::min(output, height - y), w = std::min(output, width - pending[i]);
        sums.add(y, pending[i], probs[static_cast<int64_t>(i)].narrow(1, 0, h).narrow(2, 0, w),
                 weights.narrow(0, 0, h).narrow(1, 0, w));
      }
      done += static_cast<int64_t>(pending.size());
      inputs.clear();
      pending.clear();
      if (progress) progress(done, total);
    };
    for (const int64_t x : range.xs) {
      inputs.push_back(rows_image.index_select(2, mirror_indices(width, x - margin, options.input)));
      pending.push_back(x);
      if (static_cast<int64_t>(inputs.size()) >= options.batch) flush();
    }
    flush();  // a batch never spans two tile rows
    // Rows above the next tile row's origin are finished.
    sums.finish(r + 1 < static_cast<int64_t>(range.ys.size()) ? range.ys[static_cast<size_t>(r + 1)] : height, from_y,
                range.to_y, sink);
  }
}

at::Tensor predict_tiled(const std::function<at::Tensor(const at::Tensor&)>& forward, const UNetOptions& model,
                         const at::Tensor& image, const TileOptions& options) {
  const int64_t height = image.size(1), width = image.size(2);
  if (height < 1 || width < 1) throw Error("cannot predict a zero-size image");
  at::Tensor result = at::empty({model.classes(), height, width});
  predict_tiled_rows(
      forward, model, height, width, options, [&](int64_t y, int64_t h) { return image.narrow(1, y, h); },
      [&](int64_t y, const at::Tensor& p) { result.narrow(1, y, p.size(1)).copy_(p); });
  return result;
}

}  // namespace unet
