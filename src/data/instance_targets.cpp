// Targets from instance labels. Each is a comparison of every pixel's label with the largest and
// smallest label in a window around it (max-pooling with replicated edges), so no loops over
// objects: a pixel whose window holds only its own label is interior.
#include "unet/data/instance_targets.h"

#include "unet/runtime/error.h"

#include <ATen/ATen.h>

namespace unet {
namespace {

/// Largest value in the (2r+1) x (2r+1) window around each pixel of `x` [H, W] (float64), the
/// image's edge replicated.
at::Tensor window_max(const at::Tensor& x, int64_t r) {
  const at::Tensor padded = at::replication_pad2d(x.view({1, 1, x.size(0), x.size(1)}), {r, r, r, r});
  return at::max_pool2d(padded, {2 * r + 1, 2 * r + 1}, {1, 1}).view({x.size(0), x.size(1)});
}

at::Tensor window_min(const at::Tensor& x, int64_t r) { return -window_max(-x, r); }

void check_labels(const at::Tensor& labels) {
  TORCH_CHECK(labels.dim() == 2 && labels.scalar_type() == at::kLong, "instance labels: int64 [H, W]");
}

}  // namespace

at::Tensor decode_instance_mask(const RawImage& mask, const std::string& where) {
  return label_values(mask, where, "instance masks");
}

at::Tensor separated_objects(const at::Tensor& labels) {
  check_labels(labels);
  if (labels.numel() == 0) return labels.clone();
  // Float64 holds every label exactly; the background counts as +inf for the smallest neighbour.
  const at::Tensor l = labels.to(at::kDouble);
  const at::Tensor objects = labels > 0;
  const at::Tensor largest = window_max(l, 1);
  const at::Tensor smallest = window_min(at::where(objects, l, at::full_like(l, 1e300)), 1);
  const at::Tensor touching = objects & ((largest > l) | (smallest < l));
  return (objects & touching.logical_not()).to(at::kLong);
}

at::Tensor interior_boundary(const at::Tensor& labels, int64_t width) {
  check_labels(labels);
  require_option(width >= 1, "boundary_width", "must be at least 1", width);
  if (labels.numel() == 0) return labels.clone();
  const at::Tensor l = labels.to(at::kDouble);
  const at::Tensor uniform = (window_max(l, width) == l) & (window_min(l, width) == l);
  const at::Tensor objects = labels > 0;
  at::Tensor out = at::zeros_like(labels);
  out.masked_fill_(objects, 2);
  out.masked_fill_(objects & uniform, 1);
  return out;
}

void require_instance_targets(int64_t classes, int64_t boundary_width) {
  if (classes != 2 && classes != 3)
    throw OptionError("classes", " " + std::to_string(classes) +
                                     ": instance masks train 2 classes (background, objects) or 3 (background, "
                                     "interior, boundary)");
  require_option(boundary_width >= 1, "boundary_width", "must be at least 1", boundary_width);
}

at::Tensor instance_targets(const at::Tensor& labels, int64_t classes, int64_t boundary_width) {
  require_instance_targets(classes, boundary_width);
  return classes == 2 ? separated_objects(labels) : interior_boundary(labels, boundary_width);
}

}  // namespace unet
