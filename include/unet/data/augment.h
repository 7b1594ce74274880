// Training augmentation: flips, crop-and-resize, brightness (the reference set), elastic warps and,
// optionally, photometric jitter (contrast, gamma, blur, noise; stains, hue and saturation for RGB).
#pragma once

#include "unet/data/color_augment.h"
#include "unet/model/geometry.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <random>

namespace unet {

struct AugmentOptions {
  /// Random horizontal and vertical flips, each with probability 1/2.
  bool flips = true;
  /// Crop up to this fraction from each side (drawn uniformly per side), resized back.
  double crop = 0.3;
  /// Add a uniform brightness shift in [-brightness, brightness], then clip to [-1, 1].
  double brightness = 0.2;
  /// The paper's elastic deformation: displacements on a coarse `elastic_grid` x `elastic_grid`
  /// grid drawn from N(0, elastic_sigma^2) pixels, interpolated bicubically to every pixel.
  bool elastic = true;
  double elastic_sigma = 10.0;
  int64_t elastic_grid = 3;
  /// Photometric jitter (`color_augment`, with `color_options`), after the geometry and the
  /// brightness shift. Off by default: the reference's set stays as it was.
  bool color = false;
  ColorAugmentOptions color_options;
  /// How the training images were normalised (`TrainOptions::normalisation`, set by
  /// `loader_options`): after the colour jitter an image is normalised anew, as prediction would.
  Normalisation normalisation;
};

/// Uniform double in [0, 1) from 53 random bits (the same on every platform, unlike <random>'s
/// distributions).
double uniform01(std::mt19937_64& rng);
/// Standard normal draw (Box-Muller on `uniform01`).
double normal01(std::mt19937_64& rng);

/// `classes` for a mask of instance labels (any int64 values, 0 background), which the geometry
/// moves by nearest neighbour instead of by its classes' maps: for targets that are derived after
/// the geometry (direction classes turn with the image).
constexpr int64_t kInstanceLabels = 0;

/// Transforms `image` (float [C, H, W] in [-1, 1]) and `mask` (int64 [H, W], may be undefined)
/// together with the same random geometry; the mask stays a map of class indices (or of instance
/// labels, `classes` `kInstanceLabels`). `weights`
/// (float [H, W], optional: a pixel weight map such as `border_weight_map`) follows the same
/// geometry, interpolated bilinearly. `intensity` (optional, float32 [C, 2]): the per-image
/// normalisation `image` went through (`normalisation_affine`): the brightness shift then clips to
/// the image's own extremes where they lie beyond [-1, 1], and the colour jitter, which works on
/// intensities, undoes it; the jittered image is normalised anew (`options.normalisation`), from
/// its own statistics as prediction would. Deterministic for a given `rng` state.
void augment_sample(at::Tensor& image, at::Tensor& mask, int64_t classes, const AugmentOptions& options,
                    std::mt19937_64& rng, at::Tensor* weights = nullptr, const at::Tensor* intensity = nullptr);

/// A training tile of an augmented sample: what `augment_sample` followed by `random_tile` gives
/// (the same random draws and sampling grid, so the same tile up to float rounding), with the
/// geometry evaluated only where the tile reads: the tile's pixels are mapped through the flips,
/// crop and elastic field to the source image, and only the region they cover is interpolated (a
/// 220-pixel tile of a 1280x1024 image warps 1/25 of the pixels). With the colour jitter on
/// (which needs the whole image's statistics) it is `augment_sample` and `random_tile`. Returns the input tile [C, input, input] and the mask's
/// window [output, output] (undefined without a mask); `weights_window` and `mask_input` as
/// `random_tile`'s.
std::pair<at::Tensor, at::Tensor> augment_tile(const at::Tensor& image, const at::Tensor& mask, int64_t classes,
                                               const AugmentOptions& options, int64_t input, int64_t output,
                                               std::mt19937_64& rng, const at::Tensor& weights = {},
                                               at::Tensor* weights_window = nullptr, const at::Tensor* intensity = nullptr,
                                               at::Tensor* mask_input = nullptr);

}  // namespace unet
