// Targets from instance labels. Each is a comparison of every pixel's label with the largest and
// smallest label in a window around it (max-pooling with replicated edges), so no loops over
// objects: a pixel whose window holds only its own label is interior. Distance classes add one
// exact Euclidean distance transform of the whole image to those edges (Felzenszwalb and
// Huttenlocher, Theory of Computing 8, 2012: the lower envelope of parabolas, one pass per row and
// one per column) and a per-object maximum (a scatter). Direction classes find each object's
// centre (its pixel nearest its centroid, one pass over the pixels) and bin the angle from every
// pixel to it.
#include "unet/data/instance_targets.h"

#include "unet/runtime/error.h"

#include <ATen/ATen.h>

#include <cmath>
#include <vector>

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

/// Where no feature is: larger than any squared distance of an image, small enough that sums of
/// two stay finite.
constexpr double kFar = 1e20;

/// The squared distance transform of one line in place: `f[i]` becomes min_j (i - j)^2 + f[j]
/// over the `n` samples `stride` apart (the lower envelope of the parabolas rooted at each j).
void squared_distance_1d(double* f, int64_t n, int64_t stride, std::vector<double>& copy, std::vector<int64_t>& root,
                         std::vector<double>& cut) {
  for (int64_t i = 0; i < n; ++i) copy[i] = f[i * stride];
  auto meet = [&](int64_t q, int64_t r) {  // where the parabolas rooted at q and r (q > r) cross
    return ((copy[q] + double(q * q)) - (copy[r] + double(r * r))) / (2.0 * double(q - r));
  };
  int64_t k = 0;
  root[0] = 0;
  cut[0] = -INFINITY;
  cut[1] = INFINITY;
  for (int64_t q = 1; q < n; ++q) {
    double s = meet(q, root[k]);
    while (s <= cut[k]) s = meet(q, root[--k]);
    root[++k] = q;
    cut[k] = s;
    cut[k + 1] = INFINITY;
  }
  k = 0;
  for (int64_t i = 0; i < n; ++i) {
    while (cut[k + 1] < double(i)) ++k;
    const double d = double(i - root[k]);
    f[i * stride] = d * d + copy[root[k]];
  }
}

/// Squared Euclidean distances [H, W] (float64) of every pixel to the nearest `feature` pixel.
at::Tensor squared_distance(const at::Tensor& feature) {
  const int64_t h = feature.size(0), w = feature.size(1), n = std::max(h, w);
  at::Tensor d = at::where(feature, at::zeros({}, at::kDouble), at::full({}, kFar, at::kDouble)).contiguous();
  double* p = d.data_ptr<double>();
  std::vector<double> copy(n), cut(n + 1);
  std::vector<int64_t> root(n);
  for (int64_t x = 0; x < w; ++x) squared_distance_1d(p + x, h, w, copy, root, cut);
  for (int64_t y = 0; y < h; ++y) squared_distance_1d(p + y * w, w, 1, copy, root, cut);
  return d;
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

at::Tensor edge_distance(const at::Tensor& labels) {
  check_labels(labels);
  if (labels.numel() == 0) return at::zeros(labels.sizes(), at::kFloat);
  const at::Tensor l = labels.to(at::kDouble);
  const at::Tensor objects = labels > 0;
  const at::Tensor uniform = (window_max(l, 1) == l) & (window_min(l, 1) == l);
  const at::Tensor edge = objects.logical_not() | uniform.logical_not();
  const at::Tensor distance = squared_distance(edge).sqrt_() + 1.0;
  // An object with no edge at all (it fills the image) is its own centre everywhere.
  return at::where(objects, distance.clamp_max(1e9), at::zeros({}, at::kDouble)).to(at::kFloat);
}

at::Tensor distance_classes(const at::Tensor& labels, int64_t bins) {
  check_labels(labels);
  require_option(bins >= 2, "classes", "must be at least 3 (background and 2 or more distance bins)", bins + 1);
  if (labels.numel() == 0) return labels.clone();
  const at::Tensor d = edge_distance(labels).reshape({-1});
  const at::Tensor flat = labels.reshape({-1});
  const at::Tensor largest =
      at::zeros({labels.max().item<int64_t>() + 1}, at::kFloat).scatter_reduce_(0, flat, d, "amax", /*include_self=*/true);
  // (d - 1) / (d_max - 1): the rim 0, the farthest pixels 1; an object all rim is all centre.
  const at::Tensor span = largest.index_select(0, flat) - 1.0f;
  const at::Tensor relative = at::where(span > 0, (d - 1.0f) / span.clamp_min(1e-6f), at::ones_like(d));
  const at::Tensor bin = (relative * static_cast<float>(bins)).ceil_().clamp_(1, static_cast<double>(bins)).to(at::kLong);
  return at::where(flat > 0, bin, at::zeros_like(bin)).view(labels.sizes());
}

at::Tensor object_centres(const at::Tensor& labels) {
  check_labels(labels);
  TORCH_CHECK(labels.numel() == 0 || labels.min().item<int64_t>() >= 0, "object_centres: labels must not be negative");
  const at::Tensor l = labels.contiguous();
  const int64_t h = l.size(0), w = l.size(1);
  const int64_t n = l.numel() == 0 ? 1 : l.max().item<int64_t>() + 1;
  const int64_t* p = l.data_ptr<int64_t>();
  std::vector<double> sx(n, 0.0), sy(n, 0.0), count(n, 0.0), best(n, INFINITY);
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      const int64_t k = p[y * w + x];
      sx[k] += double(x), sy[k] += double(y), count[k] += 1.0;
    }
  at::Tensor centres = at::full({n, 2}, -1, at::kLong);
  int64_t* c = centres.data_ptr<int64_t>();
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      const int64_t k = p[y * w + x];
      if (k == 0) continue;
      const double dx = double(x) - sx[k] / count[k], dy = double(y) - sy[k] / count[k], d = dx * dx + dy * dy;
      if (d < best[k]) best[k] = d, c[2 * k] = y, c[2 * k + 1] = x;  // the first in raster order among equals
    }
  return centres;
}

int64_t direction_class(double dx, double dy) {
  if (dx * dx + dy * dy <= kCentreRadius * kCentreRadius) return 1;
  const double turns = std::atan2(-dy, dx) / (2.0 * M_PI);  // counter-clockwise from east, y pointing down
  const auto sector = static_cast<int64_t>(std::lround(turns * double(kDirections)));
  return 2 + ((sector % kDirections) + kDirections) % kDirections;
}

at::Tensor direction_classes(const at::Tensor& labels) {
  check_labels(labels);
  const at::Tensor l = labels.contiguous();
  const at::Tensor centres = object_centres(l);
  const int64_t h = l.size(0), w = l.size(1);
  const int64_t* p = l.data_ptr<int64_t>();
  const int64_t* c = centres.data_ptr<int64_t>();
  at::Tensor out = at::zeros_like(l);
  int64_t* o = out.data_ptr<int64_t>();
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      const int64_t k = p[y * w + x];
      if (k != 0) o[y * w + x] = direction_class(double(c[2 * k + 1] - x), double(c[2 * k] - y));
    }
  return out;
}

void validate_instance_scheme(ClassScheme scheme) {
  if (scheme != ClassScheme::kInteriorBoundary && scheme != ClassScheme::kDistance && scheme != ClassScheme::kDirections)
    throw OptionError("instance_scheme", " " + to_string(scheme) + ": interior-boundary, distance or directions");
}

ClassScheme instance_scheme(int64_t classes, const InstanceTargets& targets) {
  return classes == 2 ? ClassScheme::kPlain : targets.scheme;
}

void require_instance_targets(int64_t classes, const InstanceTargets& targets) {
  validate_instance_scheme(targets.scheme);
  const std::string given = " " + std::to_string(classes) + ": instance masks train ";
  if (targets.scheme == ClassScheme::kDirections) {
    if (classes != kDirectionClasses)
      throw OptionError("classes", given + std::to_string(kDirectionClasses) +
                                       " classes as direction targets (background, centre and " +
                                       std::to_string(kDirections) + " directions)");
  } else if (targets.scheme == ClassScheme::kDistance) {
    if (classes < 3 || classes > 255)
      throw OptionError("classes", given + "3 to 255 classes as distance targets (background and 2 or more bins)");
  } else if (classes != 2 && classes != 3) {
    throw OptionError("classes", given + "2 classes (background, objects) or 3 (background, interior, boundary); "
                                         "more with {instance_scheme} distance");
  }
  require_option(targets.boundary_width >= 1, "boundary_width", "must be at least 1", targets.boundary_width);
}

at::Tensor instance_targets(const at::Tensor& labels, int64_t classes, const InstanceTargets& targets) {
  require_instance_targets(classes, targets);
  switch (instance_scheme(classes, targets)) {
    case ClassScheme::kDistance: return distance_classes(labels, classes - 1);
    case ClassScheme::kDirections: return direction_classes(labels);
    case ClassScheme::kInteriorBoundary: return interior_boundary(labels, targets.boundary_width);
    default: return separated_objects(labels);
  }
}

}  // namespace unet
