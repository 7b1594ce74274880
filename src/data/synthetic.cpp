// Synthetic data: EM-like slices (Voronoi cells separated by thin dark membranes, with texture and
// noise), and fluorescence-like nuclei (clustered ellipses, many touching, with instance labels) to
// train and compare the targets that separate touching objects.
#include "unet/data/synthetic.h"

#include "unet/data/preprocess.h"
#include "unet/data/instance_targets.h"

#include "unet/runtime/files.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numbers>
#include <vector>

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

/// Nucleus centres, semi-axes and orientations: clustered, a new centre never deep inside an
/// earlier ellipse (elliptic distance at least 0.75), so that nuclei touch and overlap a little.
struct Ellipses {
  std::vector<float> y, x, a, b, angle;
};

Ellipses place_nuclei(const SyntheticOptions& o, at::Generator& gen) {
  const double s = static_cast<double>(o.size), r = o.nucleus_size / 2.0;
  const auto wanted = static_cast<int64_t>(std::lround(0.35 * s * s / (std::numbers::pi * r * r)));
  const int64_t clusters = std::max<int64_t>(1, wanted / 5);
  const at::Tensor cluster = at::rand({clusters, 2}, gen, at::kDouble).mul_(s);
  auto uniform = [&](double lo, double hi) { return lo + (hi - lo) * at::rand({1}, gen, at::kDouble).item<double>(); };
  auto normal = [&] { return at::randn({1}, gen, at::kDouble).item<double>(); };
  Ellipses e;
  for (int64_t tries = 0; tries < 20 * wanted && static_cast<int64_t>(e.y.size()) < wanted; ++tries) {
    const auto c = static_cast<int64_t>(uniform(0.0, static_cast<double>(clusters) - 1e-9));
    const double y = cluster[c][0].item<double>() + 1.3 * r * normal(), x = cluster[c][1].item<double>() + 1.3 * r * normal();
    if (y < -r || y > s + r || x < -r || x > s + r) continue;
    bool deep = false;
    for (size_t k = 0; k < e.y.size() && !deep; ++k) {
      const double dy = y - e.y[k], dx = x - e.x[k], ca = std::cos(e.angle[k]), sa = std::sin(e.angle[k]);
      const double u = (dx * ca + dy * sa) / e.a[k], v = (-dx * sa + dy * ca) / e.b[k];
      deep = u * u + v * v < 0.75 * 0.75;
    }
    if (deep) continue;
    const double a = r * uniform(0.8, 1.25);
    e.y.push_back(static_cast<float>(y));
    e.x.push_back(static_cast<float>(x));
    e.a.push_back(static_cast<float>(a));
    e.b.push_back(static_cast<float>(a * uniform(0.65, 1.0)));
    e.angle.push_back(static_cast<float>(uniform(0.0, std::numbers::pi)));
  }
  return e;
}

}  // namespace

const EnumNames<SyntheticKind>& synthetic_kind_names() {
  static const EnumNames<SyntheticKind> names = {{"em", SyntheticKind::kMembranes}, {"nuclei", SyntheticKind::kNuclei}};
  return names;
}

std::pair<RawImage, at::Tensor> synthetic_nuclei(const SyntheticOptions& o, int64_t index) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(o.seed * 1000003ULL + 7919ULL * static_cast<uint64_t>(index) + 17ULL);
  const int64_t s = o.size;
  const auto f32 = at::TensorOptions(at::kFloat);
  const Ellipses e = place_nuclei(o, gen);
  const auto n = static_cast<int64_t>(e.y.size());
  at::Tensor labels = at::zeros({s, s}, at::kLong);
  at::Tensor image = at::full({s, s}, 0.06, f32);
  if (n > 0) {
    auto column = [&](const std::vector<float>& v) { return at::tensor(v, f32).view({-1, 1, 1}); };
    const at::Tensor dy = at::arange(s, f32).view({1, s, 1}) - column(e.y), dx = at::arange(s, f32).view({1, 1, s}) - column(e.x);
    const at::Tensor ca = at::cos(column(e.angle)), sa = at::sin(column(e.angle));
    const at::Tensor u = (dx * ca + dy * sa) / column(e.a), v = (dy * ca - dx * sa) / column(e.b);
    const auto nearest = at::min(u * u + v * v, 0);  // squared elliptic distance to the nearest nucleus
    const at::Tensor rho2 = std::get<0>(nearest), inside = rho2 < 1.0;
    labels = at::where(inside, std::get<1>(nearest) + 1, labels);
    // Nuclei that another one almost covers leave slivers: below a third of their ellipse, background.
    const at::Tensor area = at::bincount(labels.flatten(), {}, n + 1).to(at::kFloat);
    const at::Tensor full_area = at::tensor(e.a, f32) * at::tensor(e.b, f32) * static_cast<float>(std::numbers::pi);
    const at::Tensor keep = at::cat({at::zeros({1}, at::kBool), area.slice(0, 1) >= full_area / 3.0});
    labels = at::where(keep.index({labels}), labels, at::zeros_like(labels));
    // Brightness per nucleus, dimmer towards its rim, textured.
    const at::Tensor level = at::rand({n + 1}, gen, f32).mul_(0.45).add_(0.45);
    const at::Tensor texture = gaussian_blur(at::randn({1, 1, s, s}, gen, f32), 2.0)[0][0].mul_(0.5);
    const at::Tensor nucleus = level.index({labels}) * (1.0 - 0.35 * rho2.clamp_max(1.0)) * (1.0 + texture);
    image = at::where(labels > 0, nucleus, image);
  }
  image = gaussian_blur(image.view({1, 1, s, s}), 1.0)[0][0];
  image = image + at::randn({s, s}, gen, f32).mul_(o.noise * 0.5);
  const at::Tensor pixels = image.clamp(0.0, 1.0).mul(255.0).round().to(at::kByte).unsqueeze(0);
  // Consecutive labels 1..m.
  const at::Tensor present = std::get<0>(at::_unique(labels, /*sorted=*/true));
  const at::Tensor lookup = at::zeros({n + 1}, at::kLong);
  lookup.index_put_({present}, at::arange(present.numel(), at::kLong));
  return {RawImage{pixels.contiguous(), SampleFormat::kUInt8}, lookup.index({labels}).contiguous()};
}

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

namespace {

/// Image `i` of a synthetic set, unlabelled: "<name>-train" page i, or "<name>-test" page
/// i - train_count for the test images after the training ones.
Sample synthetic_sample(const RawImage& image, const SyntheticOptions& options, int64_t i, const std::string& name) {
  Sample s;
  s.image = normalise(image);
  const bool train = i < options.train_count;
  s.source = name + (train ? "-train" : "-test");
  s.page = train ? i : i - options.train_count;
  return s;
}

DataSet nuclei_dataset(const SyntheticOptions& options, int64_t classes, const InstanceTargets& targets) {
  require_instance_targets(classes, targets);
  DataSet data;
  for (int64_t i = 0; i < options.train_count + options.test_count; ++i) {
    auto [image, labels] = synthetic_nuclei(options, i);
    Sample s = synthetic_sample(image, options, i, "synthetic-nuclei");
    const bool train = i < options.train_count;
    if (train) attach_instances(s, labels, classes, targets);
    (train ? data.train : data.test).push_back(std::move(s));
  }
  data.channels = 1;
  data.layout = DataLayout::kSynthetic;
  data.scheme = instance_scheme(classes, targets);
  data.description = "synthetic nuclei (" + std::to_string(options.train_count) + " labelled " + std::to_string(options.size) +
                     "x" + std::to_string(options.size) + " images, seed " + std::to_string(options.seed) + ")";
  return data;
}

}  // namespace

DataSet synthetic_dataset(const SyntheticOptions& options, int64_t classes, const InstanceTargets& targets) {
  if (options.kind == SyntheticKind::kNuclei) return nuclei_dataset(options, classes, targets);
  DataSet data;
  for (int64_t i = 0; i < options.train_count + options.test_count; ++i) {
    auto [image, mask] = synthetic_slice(options, i);
    Sample s = synthetic_sample(image, options, i, "synthetic");
    const bool train = i < options.train_count;
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

void write_synthetic_nuclei(const std::string& dir, const SyntheticOptions& options) {
  const std::filesystem::path d(dir);
  for (const char* sub : {"images", "masks", "test"}) ensure_writable_directory((d / sub).string(), "data");
  for (int64_t i = 0; i < options.train_count + options.test_count; ++i) {
    auto [image, labels] = synthetic_nuclei(options, i);
    char name[32];
    std::snprintf(name, sizeof name, "nuclei-%03lld.png", static_cast<long long>(i));
    if (i < options.train_count) {
      write_png((d / "images" / name).string(), image.pixels);
      write_png((d / "masks" / name).string(), labels.to(at::kInt));  // 16-bit labels
    } else {
      write_png((d / "test" / name).string(), image.pixels);
    }
  }
}

}  // namespace unet
