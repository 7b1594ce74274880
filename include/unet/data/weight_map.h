// The U-Net paper's pixel weights: class balance plus a large weight in gaps between touching cells
// (with instance labels: where touching objects meet).
#pragma once

#include "unet/runtime/error.h"

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace unet {

struct Sample;

struct WeightMapOptions {
  /// Weight of the separation term (the paper: 10).
  double w0 = 10.0;
  /// Width of the separation term in pixels (the paper: about 5).
  double sigma = 5.0;
  /// Pixels farther than this from a cell get no separation weight (exp(-(2r)^2 / 2 sigma^2) is
  /// negligible there); bounds the work per cell.
  int64_t radius = 20;
  /// Include the class-balance term w_c (the paper does); off: every pixel's base weight is 1.
  bool class_balance = true;

  /// Throws `OptionError` for out-of-range values.
  void validate() const;
};

/// w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))^2 / (2 sigma^2)) for a label map `mask` (int64 [H, W],
/// class indices): w_c balances the class frequencies of this label (w_c = H*W / (classes *
/// pixels of that class), 0 for absent classes; 1 everywhere without `class_balance`), d1 and d2
/// are the Euclidean distances to the nearest and second-nearest cell.
/// - Without `instances` (class masks such as ISBI's): cells are the 4-connected components of
///   non-zero classes (`connected_components` of mask != 0; class 0 is the background or
///   membrane) and the separation term applies to background pixels.
/// - With `instances` (int64 [H, W], 0 background, one positive label per object, not necessarily
///   consecutive; the labels `mask` was derived from): cells are the objects, so touching objects
///   stay two cells, and the term applies to every pixel, a pixel's own object at distance 0: the
///   shared boundary of touching objects and the pixels near it weigh most, whatever classes
///   encode that boundary.
/// Returns float32 [H, W].
/// Throws `Error` for a mask that is not [H, W], instance labels of another size or negative ones.
at::Tensor border_weight_map(const at::Tensor& mask, int64_t classes, const WeightMapOptions& options = {},
                             const at::Tensor& instances = {});

/// A training sample's map: `border_weight_map` of its mask, with its instance labels when it has
/// them. Throws `Error` naming the sample when it has no mask.
at::Tensor sample_weight_map(const Sample& sample, int64_t classes, const WeightMapOptions& options);

}  // namespace unet
