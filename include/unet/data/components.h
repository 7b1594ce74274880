// Connected components: the cells of a label map (weight maps) and of a segmentation (ISBI scores).
#pragma once

#include <ATen/core/Tensor.h>

namespace unet {

/// 4-connected components of a boolean map [H, W]: int64 labels 1..n, 0 where `foreground` is false.
at::Tensor connected_components(const at::Tensor& foreground);

}  // namespace unet
