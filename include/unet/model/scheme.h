// What a network's output classes stand for: light enough for the data part's headers.
#pragma once

#include "unet/runtime/error.h"

#include <cstdint>
#include <string>
#include <vector>

namespace unet {

/// What a network's classes stand for, so that objects can be cut out of its output.
enum class ClassScheme {
  kPlain,             ///< the masks' own classes (two classes: 0 background or membrane, 1 the objects)
  kInteriorBoundary,  ///< derived from instance labels: 0 background, 1 object interior, 2 object boundary
  /// Derived from instance labels: 0 background, 1..B the object pixels binned by their distance to
  /// the object's edge, normalised per object (B = classes - 1; class B holds each object's centre):
  /// objects are grown from their centres (the watershed of Bai and Urtasun's deep watershed
  /// transform, CVPR 2017, whose energy is likewise learnt as classes).
  kDistance,
  /// Derived from instance labels: 0 background, 1 each object's centre, 2..9 its other pixels by
  /// the direction (8 sectors) of the way to their centre (unet/data/instance_targets.h): objects
  /// gather the pixels whose ways, followed, end at their centre (Cellpose's flows as classes).
  kDirections,
};
/// The directions of direction classes: sectors of 45 degrees.
constexpr int64_t kDirections = 8;
/// The classes of a direction model: background, centre and `kDirections` directions.
constexpr int64_t kDirectionClasses = 2 + kDirections;

/// "plain", "interior-boundary", "distance", "directions".
const EnumNames<ClassScheme>& class_scheme_names();
std::string to_string(ClassScheme scheme);
/// Throws `OptionError` (field "class_scheme") for other names.
ClassScheme parse_class_scheme(const std::string& text);

/// What a model's classes are called, and which class heads the reports (its hard Dice and IoU
/// first, its pixels tinted in overlays). Recorded in checkpoints and carried by exports.
struct ClassNaming {
  /// One name per class, in label order.
  std::vector<std::string> names;
  /// The headline class: 0 (membrane) for ISBI-style data, 1 (the objects) for two-class folder
  /// or instance data, -1 (none: every class alike) beyond two classes.
  int64_t headline = -1;

  /// `names[c]`, or "class<c>" when there is no such name.
  std::string name(int64_t c) const;
  bool has_headline() const { return headline >= 0 && headline < static_cast<int64_t>(names.size()); }
  /// The class that stands for "nothing here", left untinted in overlays and previews: class 0,
  /// or class 1 when class 0 is the headline of two classes (ISBI membranes); -1 when every class
  /// of more than two is tinted (class 0 is the headline).
  int64_t background() const;
};

/// The default naming of `classes` classes, the one place for it: background, interior, boundary
/// (headline none) for interior/boundary classes; background, distance1 (the objects' edges), ...,
/// distanceB (their centres) for distance classes; background, centre, east, north-east, ...,
/// south-east (counter-clockwise, as `direction_class` numbers them) for direction classes; for two classes membrane, cell (headline 0)
/// when `membranes` (ISBI-style data, and checkpoints that recorded no names) and background,
/// foreground (headline 1) otherwise; class0, class1, ... (headline none) beyond.
ClassNaming default_class_naming(int64_t classes, ClassScheme scheme, bool membranes);

/// `recorded` (a checkpoint's naming), or when it names no classes (checkpoints written before names
/// were recorded, an info made in code) the naming unet gave such models: membrane, cell for two
/// plain classes (`default_class_naming` with membranes).
ClassNaming recorded_naming(const ClassNaming& recorded, int64_t classes, ClassScheme scheme);

/// `names` with the headline of `base` (names given on the command line rename a model's classes;
/// the headline stays its own). Empty `names`: `base`. Throws `OptionError` (field "class_names")
/// when `names` does not give one name per class of `base`.
ClassNaming rename_classes(const ClassNaming& base, const std::vector<std::string>& names);

/// What a model records about its objects (its checkpoint's training record, which its exports
/// carry): the defaults by which evaluate, predict and the API cut them (`object_rule` in
/// unet/eval/instances.h). 0 in a field: not recorded.
struct ObjectRecord {
  /// The median area of the training objects, pixels (instance-label masks; at the model's object
  /// size where it was trained at one): objects far smaller are dropped, necks split by it.
  int64_t median_area = 0;
  /// The object probability to which objects grow (`export --object-threshold`), in (0, 1).
  double threshold = 0.0;
  /// The mean object probability under which an object is dropped (`export
  /// --min-object-probability`), in [0, 1).
  double min_probability = 0.0;
};

/// Whether `t` can be an object threshold (`ObjectRule::object_threshold`): above 0 and below 1.
constexpr bool legal_object_threshold(double t) { return t > 0.0 && t < 1.0; }
/// Whether `p` can be a smallest mean object probability (`ObjectRule::min_probability`): at
/// least 0 (0: keep every object) and below 1.
constexpr bool legal_min_object_probability(double p) { return p >= 0.0 && p < 1.0; }

}  // namespace unet
