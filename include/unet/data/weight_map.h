// The U-Net paper's pixel weights: class balance plus a large weight in gaps between touching cells.
#pragma once

#include "unet/runtime/error.h"

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace unet {

struct WeightMapOptions {
  /// Weight of the separation term (the paper: 10).
  double w0 = 10.0;
  /// Width of the separation term in pixels (the paper: about 5).
  double sigma = 5.0;
  /// Pixels farther than this from a cell get no separation weight (exp(-(2r)^2 / 2 sigma^2) is
  /// negligible there); bounds the work per cell.
  int64_t radius = 20;

  /// Throws `OptionError` for out-of-range values.
  void validate() const;
};

/// w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))^2 / (2 sigma^2)) for a label map `mask` (int64 [H, W],
/// class indices): w_c balances the class frequencies of this label (w_c = H*W / (classes *
/// pixels of that class), 0 for absent classes), d1 and d2 are the Euclidean distances to the
/// nearest and second-nearest cell. Cells are the 4-connected components of non-zero classes
/// (`connected_components` of mask != 0; class 0 is the background or membrane); the separation
/// term applies to background pixels.
/// Returns float32 [H, W].
at::Tensor border_weight_map(const at::Tensor& mask, int64_t classes, const WeightMapOptions& options = {});

}  // namespace unet
