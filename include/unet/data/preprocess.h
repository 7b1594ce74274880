// Intensity normalisation, and the reference's `resize` preprocessing: images and masks to and
// from the network's sizes.
#pragma once

#include "unet/data/image_io.h"
#include "unet/model/geometry.h"

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace unet {

/// What the network sees: float32 [C, H, W] intensities in [-1, 1], `to_unit_range(raw) * 2 - 1`
/// (8-bit: x / 127.5 - 1).
at::Tensor normalise(const RawImage& raw);
/// The inverse of `normalise` for display: [-1, 1] -> [0, 1].
at::Tensor denormalise(const at::Tensor& image);

/// The model's per-image normalisation of a `normalise`d image [C, H, W] (in [-1, 1]) as a gain
/// and an offset per channel, float32 [C, 2], from the whole image's statistics; [1, 0] per
/// channel for `kRange`. Percentiles and moments are those of the stored intensities (the
/// mapping to [-1, 1] is linear), so the result is what bioimage.io's scale_range /
/// zero_mean_unit_variance give on the file's values, but for their epsilon's unit.
at::Tensor normalisation_affine(const at::Tensor& image, const Normalisation& normalisation);
/// `normalisation_affine` of an image known only by the counts of its stored values, `counts`
/// [C, levels] (levels 256 for 8-bit, 65536 for 16-bit `format`; after MinIsWhite inversion), as
/// a streamed read gathers them: percentiles exactly those of the whole image, mean and deviation
/// within float64 rounding.
at::Tensor normalisation_affine_from_histograms(const at::Tensor& counts, SampleFormat format, const Normalisation& normalisation);
/// image [C, H, W] * gain + offset per channel (`affine` [C, 2]).
at::Tensor apply_affine(const at::Tensor& image, const at::Tensor& affine);
/// What the network sees of a `normalise`d image under `normalisation`: both of the above (the
/// image itself for `kRange`).
at::Tensor network_intensities(const at::Tensor& image, const Normalisation& normalisation);

/// Image(s) [C, H, W] or [N, C, H, W] in [-1, 1] to the network input: resized (bilinear, half-pixel
/// centres, as tf.image.resize) to output x output, then zero-padded on every side to input x input.
at::Tensor image_to_input(const at::Tensor& image, const Geometry& geometry);

/// Class indices [H, W] (int64) to [output, output]: per-class bilinear resize of the one-hot map,
/// then re-thresholded (for two classes: class 1 where its share >= 0.5, as the reference).
at::Tensor mask_to_output(const at::Tensor& mask, const Geometry& geometry, int64_t classes);

/// Resizes maps [C, h, w] or [N, C, h, w] (bilinear, half-pixel centres) to height x width.
at::Tensor resize_maps(const at::Tensor& maps, int64_t height, int64_t width);

/// Class per pixel of class maps [C, H, W] or [N, C, H, W] (probabilities or one-hot shares):
/// for two classes class 1 where its share >= 0.5 (the reference's threshold), argmax otherwise.
at::Tensor maps_to_classes(const at::Tensor& maps);

/// One-hot float32 [C, H, W] (or [N, C, H, W]) of class indices [H, W] (or [N, H, W]).
at::Tensor one_hot_maps(const at::Tensor& labels, int64_t classes);

}  // namespace unet
