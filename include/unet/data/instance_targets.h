// Training targets from instance labels: what separates touching objects. Two classes with a
// background line between touching objects (the U-Net paper's masks, for its border weights),
// three classes, background / interior / boundary (Caicedo et al., Cytometry A 2019, on BBBC039),
// or distance classes: each object's pixels binned by their distance to its edge, normalised per
// object, so that every object has a centre class of its own however closely it touches another
// (Bai and Urtasun's deep watershed transform, CVPR 2017, learns its energy as such classes).
#pragma once

#include "unet/data/image_io.h"
#include "unet/model/scheme.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace unet {

/// Instance labels int64 [H, W] from a mask file's pixels (8- or 16-bit, unsigned or signed, one
/// channel or equal channels): 0 background, every other value one object. Throws `unet::Error`
/// naming `where` for float, multi-channel or MinIsWhite masks and negative labels
/// (`label_values`).
at::Tensor decode_instance_mask(const RawImage& mask, const std::string& where);

/// Two classes from instance labels [H, W]: 1 on the objects, 0 on the background and on every
/// object pixel with an 8-neighbour of another object, so that touching objects are parted by a
/// background line two pixels wide (and become separate connected components).
at::Tensor separated_objects(const at::Tensor& labels);

/// Three classes from instance labels [H, W]: 0 background, 2 boundary (object pixels within
/// `width` pixels, Chebyshev distance, of a pixel with another label, background included), 1 the
/// objects' interior. The image's edge is not a boundary (objects cut by it keep their interior).
at::Tensor interior_boundary(const at::Tensor& labels, int64_t width);

/// Euclidean distances float32 [H, W] of each object pixel to its object's edge (1 on the edge: the
/// pixels with an 8-neighbour of another label, background included; 1 + the distance to the
/// nearest edge pixel inside), 0 on the background. The image's edge is not an edge (replicated,
/// as `interior_boundary`). Exact (Felzenszwalb and Huttenlocher's linear-time transform).
at::Tensor edge_distance(const at::Tensor& labels);

/// Distance classes from instance labels [H, W]: 0 background; object pixels get
/// ceil(B * (d - 1) / (d_max - 1)) clamped to 1..B, d their `edge_distance` and d_max the largest
/// in their object (an object all rim, d_max 1, is all class B): class 1 holds each object's rim
/// and the pixels near it, class B its centre (farther than (B-1)/B of the way). `bins` B at
/// least 2.
at::Tensor distance_classes(const at::Tensor& labels, int64_t bins);

/// How instance labels become the classes of a model of more than two classes (two classes are
/// always `separated_objects`).
struct InstanceTargets {
  /// kInteriorBoundary (3 classes) or kDistance (3 or more: background and classes - 1 bins).
  ClassScheme scheme = ClassScheme::kInteriorBoundary;
  /// Width of the boundary class, pixels (interior/boundary).
  int64_t boundary_width = 2;
};

/// The classes of a distance model when none are given: background and 4 bins.
constexpr int64_t kDistanceClasses = 5;

/// Throws `OptionError` ("instance_scheme") unless `scheme` is one instance labels become:
/// interior-boundary or distance.
void validate_instance_scheme(ClassScheme scheme);

/// What the classes of a model of `classes` classes learnt from instance labels stand for: plain
/// for 2 (objects parted by background), else `targets.scheme`.
ClassScheme instance_scheme(int64_t classes, const InstanceTargets& targets);

/// Throws `OptionError` unless instance masks can train a model of `classes` classes as `targets`
/// says: 2 or 3 for interior/boundary (boundaries at least 1 pixel wide), 3 to 255 for distance
/// classes.
void require_instance_targets(int64_t classes, const InstanceTargets& targets);

/// The targets of a model of `classes` classes: 2 `separated_objects`, else `interior_boundary` or
/// `distance_classes` as `targets.scheme` says (`require_instance_targets` first).
at::Tensor instance_targets(const at::Tensor& labels, int64_t classes, const InstanceTargets& targets);

}  // namespace unet
