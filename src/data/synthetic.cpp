// Synthetic EM-like slices: Voronoi cells separated by thin dark membranes, with texture and noise.
#include "unet/data/synthetic.h"

#include "unet/data/preprocess.h"

#include "unet/runtime/files.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <filesystem>

namespace unet {
namespace {

at::Tensor gaussian_blur(const at::Tensor& image /*[1, 1, H, W]*/, double sigma) {
  const int64_t radius = static_cast<int64_t>(std::ceil(3.0 * sigma));
  at::Tensor x = at::arange(-radius, radius + 1, at::kFloat);
  at::Tensor k = at::exp(-(x * x) / (2.0 * sigma * sigma));
  k = k / k.sum();
  at::Tensor padded = at::reflection_pad2d(image, {radius, radius, radius, radius});
  at::Tensor out = at::conv2d(padded, k.view({1, 1, 1, -1}));
  return at::conv2d(out, k.view({1, 1, -1, 1}));
}

}  // namespace

std::pair<RawImage, RawImage> synthetic_slice(const SyntheticOptions& o, int64_t index) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(o.seed * 1000003ULL + static_cast<uint64_t>(index));
  const int64_t s = o.size;
  const auto f32 = at::TensorOptions(at::kFloat);
  // Cell centres, jittered on a grid so that cells have similar sizes, plus a margin so that cells
  // also cross the border.
  const int64_t per_side = std::max<int64_t>(2, static_cast<int64_t>(std::lround(s / o.cell_size)) + 2);
  const double step = static_cast<double>(s) / (per_side - 2);
  at::Tensor grid = at::arange(per_side, f32).sub_(1.0).mul_(step);
  at::Tensor cy = grid.view({per_side, 1}).expand({per_side, per_side}).reshape({-1});
  at::Tensor cx = grid.view({1, per_side}).expand({per_side, per_side}).reshape({-1});
  cy = cy + at::rand({cy.numel()}, gen, f32).mul_(step);
  cx = cx + at::rand({cx.numel()}, gen, f32).mul_(step);
  const at::Tensor py = at::arange(s, f32).view({1, s, 1}), px = at::arange(s, f32).view({1, 1, s});
  const at::Tensor dist = at::sqrt((py - cy.view({-1, 1, 1})).pow(2) + (px - cx.view({-1, 1, 1})).pow(2));
  const auto nearest = at::topk(dist, /*k=*/2, /*dim=*/0, /*largest=*/false);
  const at::Tensor d = std::get<0>(nearest);
  const at::Tensor cell = std::get<1>(nearest)[0];
  // Distance to the boundary between the two nearest cells, approximately (d2 - d1) / 2.
  const at::Tensor boundary = (d[1] - d[0]) / 2.0;
  const at::Tensor membrane = boundary < (o.membrane_width / 2.0);

  // Intensities: per-cell brightness, smooth texture, a few dark organelles (not membrane).
  at::Tensor cell_level = at::rand({cy.numel()}, gen, f32).mul_(0.25).add_(0.55);
  at::Tensor image = cell_level.index({cell});
  at::Tensor texture = gaussian_blur(at::randn({1, 1, s, s}, gen, f32), 3.0)[0][0];
  image = image + texture.mul(0.6);
  const int64_t organelles = std::max<int64_t>(1, cy.numel() / 3);
  at::Tensor oy = at::rand({organelles}, gen, f32).mul_(s), ox = at::rand({organelles}, gen, f32).mul_(s);
  at::Tensor radius = at::rand({organelles}, gen, f32).mul_(3.0).add_(2.0);
  at::Tensor od = at::sqrt((py - oy.view({-1, 1, 1})).pow(2) + (px - ox.view({-1, 1, 1})).pow(2));
  at::Tensor organelle = (od < radius.view({-1, 1, 1})).any(0) & membrane.logical_not() & (boundary > o.membrane_width * 2);
  image = at::where(organelle, image * 0.55, image);
  image = at::where(membrane, at::full_like(image, 0.18), image);
  image = gaussian_blur(image.view({1, 1, s, s}), 0.8)[0][0];
  image = image + at::randn({s, s}, gen, f32).mul_(o.noise);
  const at::Tensor pixels = image.clamp(0.0, 1.0).mul(255.0).round().to(at::kByte).unsqueeze(0);

  RawImage img{pixels.contiguous(), SampleFormat::kUInt8};
  RawImage mask{membrane.logical_not().to(at::kByte).mul(255).unsqueeze(0).contiguous(), SampleFormat::kUInt8};
  return {img, mask};
}

DataSet synthetic_dataset(const SyntheticOptions& options) {
  DataSet data;
  for (int64_t i = 0; i < options.train_count + options.test_count; ++i) {
    auto [image, mask] = synthetic_slice(options, i);
    Sample s;
    s.image = normalise(image);
    const bool train = i < options.train_count;
    s.source = train ? "synthetic-train" : "synthetic-test";
    s.page = train ? i : i - options.train_count;
    if (train) {
      s.mask = (mask.pixels[0] == 255).to(at::kLong);
      data.train.push_back(std::move(s));
    } else {
      data.test.push_back(std::move(s));
    }
  }
  data.channels = 1;
  data.layout = DataLayout::kSynthetic;
  data.description = "synthetic EM-like data (" + std::to_string(options.train_count) + " labelled " +
                     std::to_string(options.size) + "x" + std::to_string(options.size) + " slices, seed " +
                     std::to_string(options.seed) + ")";
  return data;
}

void write_synthetic_isbi(const std::string& dir, const SyntheticOptions& options) {
  ensure_writable_directory(dir, "data");
  std::vector<at::Tensor> images, masks, tests;
  for (int64_t i = 0; i < options.train_count + options.test_count; ++i) {
    auto [image, mask] = synthetic_slice(options, i);
    if (i < options.train_count) {
      images.push_back(image.pixels);
      masks.push_back(mask.pixels);
    } else {
      tests.push_back(image.pixels);
    }
  }
  const std::filesystem::path d(dir);
  write_tiff((d / "train-volume.tif").string(), images, /*deflate=*/false);
  write_tiff((d / "train-labels.tif").string(), masks, /*deflate=*/false);
  if (!tests.empty()) write_tiff((d / "test-volume.tif").string(), tests, /*deflate=*/false);
}

}  // namespace unet
