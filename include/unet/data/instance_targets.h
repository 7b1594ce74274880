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

/// Each object's centre: its pixel nearest its centroid (the first in raster order among equals),
/// int64 [L + 1, 2] of (y, x) rows indexed by label, L the largest label; (-1, -1) for labels
/// without pixels and for the background (row 0). Labels must not be negative; memory grows with
/// the largest label (relabel sparse ones: `connected_regions`).
at::Tensor object_centres(const at::Tensor& labels);

/// Pixels this close to their object's centre (Euclidean, pixels) are its centre class: the
/// centre and its 8 neighbours.
constexpr double kCentreRadius = 1.5;
/// The class of an object pixel whose centre lies `dx`, `dy` pixels away (x to the right, y down):
/// 1 within `kCentreRadius`, else 2 + k for the sector k of the direction to the centre, k = 0
/// east (+x), 2 north (-y, up), 4 west, 6 south, counter-clockwise, each 45 degrees wide and
/// centred on its direction.
int64_t direction_class(double dx, double dy);

/// Direction classes from instance labels [H, W]: 0 background; each object pixel the
/// `direction_class` of the way to its object's centre (`object_centres`), so that pixels of
/// touching objects point apart where the objects meet and every object gathers at a centre of
/// its own (Cellpose's flows, Stringer et al. 2021, as classes; and their following, in
/// eval/instances.h). Objects are assumed star-shaped around their centre (nuclei): the way from
/// a pixel of a ring to its centre leaves the object.
at::Tensor direction_classes(const at::Tensor& labels);

/// How instance labels become the classes of a model of more than two classes (two classes are
/// always `separated_objects`).
struct InstanceTargets {
  /// kInteriorBoundary (3 classes), kDistance (3 or more: background and classes - 1 bins) or
  /// kDirections (`kDirectionClasses`).
  ClassScheme scheme = ClassScheme::kInteriorBoundary;
  /// Width of the boundary class, pixels (interior/boundary).
  int64_t boundary_width = 2;
};

/// The classes of a distance model when none are given: background and 4 bins.
constexpr int64_t kDistanceClasses = 5;

/// Throws `OptionError` ("instance_scheme") unless `scheme` is one instance labels become:
/// interior-boundary, distance or directions.
void validate_instance_scheme(ClassScheme scheme);

/// What the classes of a model of `classes` classes learnt from instance labels stand for: plain
/// for 2 (objects parted by background), else `targets.scheme`.
ClassScheme instance_scheme(int64_t classes, const InstanceTargets& targets);

/// Throws `OptionError` unless instance masks can train a model of `classes` classes as `targets`
/// says: 2 or 3 for interior/boundary (boundaries at least 1 pixel wide), 3 to 255 for distance
/// classes, `kDirectionClasses` for directions.
void require_instance_targets(int64_t classes, const InstanceTargets& targets);

/// The targets of a model of `classes` classes: 2 `separated_objects`, else `interior_boundary`,
/// `distance_classes` or `direction_classes` as `targets.scheme` says (`require_instance_targets` first).
at::Tensor instance_targets(const at::Tensor& labels, int64_t classes, const InstanceTargets& targets);

}  // namespace unet
