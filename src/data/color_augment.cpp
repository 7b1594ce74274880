// Photometric augmentation on [0, 1] intensities. Every random number is drawn up front in a fixed
// order (the stream does not depend on which jitters are on or on the channel count); the noise
// field comes from a generator seeded from the stream.
#include "unet/data/color_augment.h"

#include "unet/data/augment.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

namespace unet {
namespace {

/// Ruifrok and Johnston's stain vectors (rows: haematoxylin, eosin, DAB), each normalised, as
/// optical density per RGB channel.
at::Tensor stains_from_rgb_matrix() {
  const at::Tensor m = at::tensor({0.650, 0.704, 0.286, 0.072, 0.990, 0.105, 0.268, 0.570, 0.776}, at::kDouble).view({3, 3});
  return m / m.norm(2, 1, true);
}

/// A value in [-1, 1) from `rng`.
double symmetric(std::mt19937_64& rng) { return 2.0 * uniform01(rng) - 1.0; }

/// Separable Gaussian blur of x [C, H, W] with reflected borders.
at::Tensor gaussian_blur(const at::Tensor& x, double sigma) {
  const int64_t radius = std::min<int64_t>(static_cast<int64_t>(std::ceil(3.0 * sigma)), std::min(x.size(1), x.size(2)) - 1);
  if (radius < 1) return x;
  const at::Tensor t = at::arange(-radius, radius + 1, at::kFloat);
  at::Tensor k = at::exp(-t * t / (2.0 * sigma * sigma));
  k = k / k.sum();
  const int64_t c = x.size(0);
  at::Tensor y = at::reflection_pad2d(x.unsqueeze(0), {radius, radius, radius, radius});
  y = at::conv2d(y, k.view({1, 1, 1, -1}).expand({c, 1, 1, 2 * radius + 1}).contiguous(), std::nullopt, at::IntArrayRef{1, 1}, at::IntArrayRef{0, 0}, at::IntArrayRef{1, 1}, c);
  y = at::conv2d(y, k.view({1, 1, -1, 1}).expand({c, 1, 2 * radius + 1, 1}).contiguous(), std::nullopt, at::IntArrayRef{1, 1}, at::IntArrayRef{0, 0}, at::IntArrayRef{1, 1}, c);
  return y[0];
}

/// RGB [3, H, W] in [0, 1]: chroma (YIQ's I and Q) rotated by `turns` and scaled by `scale`.
at::Tensor hue_saturation(const at::Tensor& rgb, double turns, double scale) {
  const at::Tensor to_yiq =
      at::tensor({0.299, 0.587, 0.114, 0.596, -0.274, -0.322, 0.211, -0.523, 0.312}, at::kFloat).view({3, 3});
  const double a = 2.0 * M_PI * turns;
  const at::Tensor chroma = at::tensor({1.0, 0.0, 0.0, 0.0, std::cos(a) * scale, -std::sin(a) * scale, 0.0,
                                        std::sin(a) * scale, std::cos(a) * scale},
                                       at::kFloat)
                                .view({3, 3});
  const at::Tensor m = at::linalg_inv(to_yiq).matmul(chroma).matmul(to_yiq);
  return at::einsum("ij,jhw->ihw", {m, rgb});
}

}  // namespace

at::Tensor rgb_to_stains(const at::Tensor& rgb) {
  const at::Tensor od = -at::log(rgb.to(at::kFloat).clamp(1.0 / 255.0, 1.0));
  const at::Tensor unmix = at::linalg_inv(stains_from_rgb_matrix()).to(at::kFloat);  // od = stains @ M
  return at::einsum("ji,jhw->ihw", {unmix, od});
}

at::Tensor stains_to_rgb(const at::Tensor& stains) {
  const at::Tensor mix = stains_from_rgb_matrix().to(at::kFloat);
  return at::exp(-at::einsum("ji,jhw->ihw", {mix, stains.to(at::kFloat)})).clamp(0.0, 1.0);
}

at::Tensor color_augment(const at::Tensor& image, const ColorAugmentOptions& o, std::mt19937_64& rng) {
  // Every draw, in a fixed order.
  const double contrast = 1.0 + symmetric(rng) * o.contrast;
  const double gamma = std::exp(symmetric(rng) * o.gamma);
  const bool blur = uniform01(rng) < 0.5;
  const double sigma = uniform01(rng) * o.blur;
  const double noise = uniform01(rng) * o.noise;
  const uint64_t noise_seed = rng();
  double stain_scale[3], stain_shift[3];
  for (int s = 0; s < 3; ++s) {
    stain_scale[s] = 1.0 + symmetric(rng) * o.stain;
    stain_shift[s] = symmetric(rng) * o.stain;
  }
  const double hue = symmetric(rng) * o.hue, saturation = 1.0 + symmetric(rng) * o.saturation;

  at::Tensor x = image.to(at::kFloat).add(1.0).mul_(0.5).clamp_(0.0, 1.0);
  if (x.size(0) == 3) {
    if (o.stain > 0.0) {
      at::Tensor stains = rgb_to_stains(x);
      const at::Tensor scale = at::tensor({stain_scale[0], stain_scale[1], stain_scale[2]}, at::kFloat).view({3, 1, 1});
      const at::Tensor shift = at::tensor({stain_shift[0], stain_shift[1], stain_shift[2]}, at::kFloat).view({3, 1, 1});
      x = stains_to_rgb(stains * scale + shift);
    }
    if (o.hue > 0.0 || o.saturation > 0.0) x = hue_saturation(x, hue, saturation).clamp_(0.0, 1.0);
  }
  if (o.contrast > 0.0) x = (x - x.mean()).mul_(contrast).add_(x.mean()).clamp_(0.0, 1.0);
  if (o.gamma > 0.0) x = x.pow(gamma);
  if (o.blur > 0.0 && blur && sigma > 0.3) x = gaussian_blur(x, sigma);
  if (o.noise > 0.0 && noise > 0.0) {
    at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(noise_seed);
    x = x + at::randn(x.sizes(), generator, at::TensorOptions(at::kFloat)) * noise;
  }
  return x.clamp(0.0, 1.0).mul(2.0).sub(1.0).contiguous();
}

}  // namespace unet
