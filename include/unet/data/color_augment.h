// Photometric augmentation: what varies between microscopes, stains and labs rather than between
// objects. Contrast, gamma, blur and noise for every image; for RGB images also the stains' amounts
// (H&E-DAB colour deconvolution, Ruifrok and Johnston 2001, jittered as Tellez et al. 2018 do),
// hue and saturation. A model trained on one lab's staining then sees others' during training.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <random>

namespace unet {

/// Strengths of each jitter (0 turns one off). The defaults are moderate: a slide a little paler
/// or darker, a camera a little noisier or softer.
struct ColorAugmentOptions {
  /// Contrast about the image's mean, scaled by a factor in [1 - contrast, 1 + contrast].
  double contrast = 0.2;
  /// Intensities in [0, 1] raised to exp(u), u in [-gamma, gamma].
  double gamma = 0.2;
  /// Half of the images blurred by a Gaussian of sigma in [0, blur] pixels.
  double blur = 1.0;
  /// Gaussian noise of standard deviation in [0, noise] (intensities in [0, 1]).
  double noise = 0.03;
  /// RGB: each stain's optical density (haematoxylin, eosin, DAB) scaled by [1 - stain, 1 + stain]
  /// and shifted by [-stain, stain].
  double stain = 0.05;
  /// RGB: chroma rotated by up to `hue` of a full turn (YIQ space).
  double hue = 0.03;
  /// RGB: chroma scaled by a factor in [1 - saturation, 1 + saturation].
  double saturation = 0.2;
};

/// RGB intensities [3, H, W] in [0, 1] to the optical densities of the three stains
/// (haematoxylin, eosin, DAB) [3, H, W]: -log(max(rgb, 1/255)) unmixed by Ruifrok and Johnston's
/// stain vectors.
at::Tensor rgb_to_stains(const at::Tensor& rgb);
/// The inverse of `rgb_to_stains` (RGB clamped to [0, 1]).
at::Tensor stains_to_rgb(const at::Tensor& stains);

/// `image` (float [C, H, W] in [-1, 1]) with every jitter of `options` drawn from `rng`, in
/// [-1, 1]; the stain, hue and saturation jitters only for 3 channels. Deterministic for a given
/// `rng` state; the geometry is untouched (masks stay valid).
at::Tensor color_augment(const at::Tensor& image, const ColorAugmentOptions& options, std::mt19937_64& rng);

}  // namespace unet
