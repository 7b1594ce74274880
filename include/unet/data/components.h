// Connected components: the cells of a label map (weight maps) and of a segmentation (ISBI scores).
#pragma once

#include <ATen/core/Tensor.h>

namespace unet {

/// 4-connected components of a boolean map [H, W]: int64 labels 1..n, 0 where `foreground` is false.
at::Tensor connected_components(const at::Tensor& foreground);

/// Connected regions of equal non-zero value of an integer map [H, W] (4-connected, or 8 with
/// `diagonal`): int64 labels 1..n in raster order of first pixel, 0 where the value is 0.
/// `connected_components` is this for a map of 0 and 1.
at::Tensor connected_regions(const at::Tensor& values, bool diagonal = false);

}  // namespace unet
