// Instances: objects as label images, from a probability map of the object class. What nucleus
// and cell users count, and what `predict --instances` writes.
#pragma once

#include "unet/model/scheme.h"

#include <ATen/core/Tensor.h>

namespace unet {

/// How objects are cut out of the foreground.
enum class InstanceMethod {
  kComponents,  ///< the 4-connected components of the foreground (probability >= 0.5)
  kWatershed,   ///< the same foreground, split between seeds by a watershed on the probability
};

/// Instance labels int64 [H, W] (0 background, objects 1..n in raster order of their first pixel)
/// of `probability` (float [H, W], the object class's, in [0, 1]). The foreground is where the
/// probability is at least 0.5, as the masks threshold it. kWatershed: the seeds are the
/// 4-connected components of probability >= `seed_threshold`; each grows over the foreground in
/// order of decreasing probability (a priority flood, 4-connected; equal probabilities in the
/// order they were reached, so a plateau fills from its sides alike), so that objects joined by a
/// weak bridge of foreground are split where the probability is lowest; a foreground component
/// without a seed stays one object.
at::Tensor instance_labels(const at::Tensor& probability, InstanceMethod method, double seed_threshold = 0.8);

/// Instance labels int64 [H, W] (raster order, as `instance_labels`) of a model's per-class maps
/// `maps` [K, H, W] (probabilities, or one-hot masks), by what its classes stand for:
/// - `kPlain`, two classes: `instance_labels(maps[1], method)`.
/// - `kInteriorBoundary`: the seeds are the 4-connected components of the pixels whose most
///   probable class is the interior; each grows over the objects (background not the most
///   probable class) in order of decreasing interior probability, as the watershed above; object
///   pixels no seed reaches are their own objects. `method` does not apply.
/// Throws `std::invalid_argument` for other class counts of a plain scheme.
at::Tensor objects_of(const at::Tensor& maps, ClassScheme scheme, InstanceMethod method = InstanceMethod::kComponents);

/// Whether `objects_of` applies: two plain classes, or interior/boundary.
bool has_objects(int64_t classes, ClassScheme scheme);

}  // namespace unet
