// The reference's `resize` preprocessing: images and masks to and from the network's sizes.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace unet {

/// Network sides: input `input` x `input` in, `output` x `output` out (572 and 388 by default).
/// In `tile` input mode the same sides are those of a training or prediction tile.
struct Geometry {
  int64_t input = 572;
  int64_t output = 388;
  /// Native-resolution tiles instead of resizing (see unet/tiling.h).
  bool tile = false;
};

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
