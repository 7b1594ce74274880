// Instances: objects as label images, from a probability map of the object class. What nucleus
// and cell users count, and what `predict --instances` writes.
#pragma once

#include "unet/model/scheme.h"
#include "unet/runtime/error.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace unet {

/// How objects are cut out of the foreground.
enum class InstanceMethod {
  kComponents,  ///< the 4-connected components of the foreground (probability >= 0.5)
  kWatershed,   ///< the same foreground, split between seeds by a watershed on the probability
};

/// "components", "watershed".
const EnumNames<InstanceMethod>& instance_method_names();

/// Instance labels int64 [H, W] (0 background, objects 1..n in raster order of their first pixel)
/// of `probability` (float [H, W], the object class's, in [0, 1]). The foreground is where the
/// probability is at least 0.5, as the masks threshold it. kWatershed: the seeds are the
/// 4-connected components of probability >= `seed_threshold`; each grows over the foreground in
/// order of decreasing probability (a priority flood, 4-connected; equal probabilities in the
/// order they were reached, so a plateau fills from its sides alike), so that objects joined by a
/// weak bridge of foreground are split where the probability is lowest; a foreground component
/// without a seed stays one object.
at::Tensor instance_labels(const at::Tensor& probability, InstanceMethod method, double seed_threshold = 0.8);

/// The object probability above which a pixel joins an object where a model records no other
/// (`ObjectRule::object_threshold`): object more likely than background.
constexpr double kObjectThreshold = 0.5;

/// The rules, besides a model's classes, by which objects are cut out of its prediction; what a
/// model's training objects make of them is `object_rule`.
struct ObjectRule {
  /// Objects smaller than this many pixels are dropped (0: none).
  int64_t min_area = 0;
  /// Interior/boundary models: an interior region with two or more cores (its pixels farther from
  /// its edge than `neck_radius` pixels and than `neck_ratio` of its deepest pixel's distance,
  /// 4-connected) is seeded by its cores instead, so that nuclei whose interiors the network joined
  /// part at the neck (`split_at_necks`; `neck_radius` 0: never).
  double neck_radius = 0.0;
  double neck_ratio = 0.0;
  /// The maps are resized by this factor before the objects are cut (the model's object size:
  /// `min_area` and `neck_radius` are pixels at that size), and the labels resized back to the
  /// maps' size by the nearest pixel (objects that vanish there are dropped, the rest renumbered).
  /// Where the maps as predicted at that size are at hand, `objects_at_scale` cuts from those.
  double scale = 1.0;
  /// Interior/boundary, distance and direction models: their objects grow over the connected
  /// pixels whose object probability (1 - background's) is above this (`grow_objects`).
  double object_threshold = kObjectThreshold;
  /// Last, objects whose mean object probability is under this are dropped
  /// (`drop_unlikely_objects`; 0: none), as StarDist keeps only objects above its probability
  /// threshold.
  double min_probability = 0.0;
};

/// Instance labels int64 [H, W] (raster order, as `instance_labels`) of a model's per-class maps
/// `maps` [K, H, W] (probabilities, or one-hot masks), by what its classes stand for:
/// - `kPlain`, two classes: `instance_labels(maps[1], method)`.
/// - `kInteriorBoundary`: the seeds are the 4-connected components of the pixels whose most
///   probable class is the interior; each grows over the objects (background not the most
///   probable class) in order of decreasing interior probability, as the watershed above; object
///   pixels no seed reaches are their own objects; interior regions that pinch are seeded by
///   their cores (`rule.neck_radius`). `method` does not apply.
/// - `kDistance` (background and B = K - 1 distance bins): each pixel's height is its expected
///   normalised distance to its object's edge, sum over c of maps[c] * c / B; the seeds are the
///   4-connected components of the object pixels (background not the most probable class) whose
///   height is at least `distance_seed_level(B)`; each grows over the objects in order of
///   decreasing height, as above. `method` does not apply.
/// - `kDirections` (background, centre, 8 directions): `direction_objects` with `kFlowSteps`
///   steps. `method` and the neck rule do not apply.
/// Throws `std::invalid_argument` for other class counts of a plain scheme.
/// Objects smaller than `rule.min_area` pixels are dropped (background), the rest renumbered.
/// Then the objects of every scheme but `kPlain` grow over the pixels more likely object than
/// background connected to them (`grow_objects`, so a dropped piece touching an object joins
/// it), at the maps' own pixels, also when `rule.scale` is not 1; last, every scheme's objects
/// under `rule.min_probability` are dropped (`drop_unlikely_objects`).
at::Tensor objects_of(const at::Tensor& maps, ClassScheme scheme, InstanceMethod method = InstanceMethod::kComponents,
                      const ObjectRule& rule = {});

/// The objects of `maps` as `objects_of` cuts them at the maps' own pixels (`rule.scale` not
/// applied), before they grow over their rims (and before `drop_unlikely_objects`): the objects whose
/// size `Predictor` measures. Measured (docs/results.md, "Objects to their rims") against
/// measuring the grown objects: mean AP higher on three of four model/set pairs (+0.002 to
/// +0.008, -0.004 on the fourth).
at::Tensor cut_objects(const at::Tensor& maps, ClassScheme scheme, InstanceMethod method, const ObjectRule& rule);

/// The objects of an image's class maps `maps` [K, H, W] cut at `rule.scale` (`ObjectRule::scale`)
/// from `scaled` [K, h, w], the maps as the model predicted them at that scale (undefined: `maps`
/// resized to it, as `objects_of` does; at scale 1 `objects_of` itself), as labels of `maps`' size [H, W].
at::Tensor objects_at_scale(const at::Tensor& scaled, const at::Tensor& maps, ClassScheme scheme, InstanceMethod method,
                            const ObjectRule& rule);

/// `objects_at_scale`'s objects at each object threshold of `thresholds` (`ObjectRule::
/// object_threshold`) and each smallest mean object probability of `levels`
/// (`ObjectRule::min_probability`; empty: the rule's own), threshold-major (`thresholds[t]` with
/// `levels[l]` at `t * levels.size() + l`): cut once, grown once per threshold, dropped once per
/// level. Equal, pair by pair, to `objects_at_scale` with the rule's threshold and level set to
/// them; what `evaluate --object-thresholds --min-object-probabilities` scores from one prediction.
std::vector<at::Tensor> objects_at_thresholds(const at::Tensor& scaled, const at::Tensor& maps, ClassScheme scheme,
                                              InstanceMethod method, const ObjectRule& rule,
                                              const std::vector<double>& thresholds, const std::vector<double>& levels = {});

/// Whether a scheme's objects grow to an object threshold (`ObjectRule::object_threshold`): every
/// scheme's but two plain classes', whose objects are the components of class 1.
bool objects_grow(ClassScheme scheme);

/// Seeds (int64 labels [H, W], 0 none) with each seed that has two or more cores (its pixels whose
/// `edge_distance` exceeds both `radius` and `ratio` times the seed's largest, 4-connected)
/// replaced by those cores, labelled after the seeds; seeds with one core or none stay whole, so
/// that small and thin seeds are never lost. `radius` 0: the seeds as they are. A core is always
/// deeper than the edge (depth above 1), so seeds that touch never share one.
at::Tensor split_at_necks(const at::Tensor& seeds, double radius, double ratio = 0.0);

/// Instance labels `labels` (int64 [H, W]) without the objects whose mean object probability,
/// 1 - `background` (float [H, W], the background's probability) averaged over their pixels, is
/// under `min_probability`, renumbered in raster order (0: the labels as they are); throws `Error`
/// for a level not at least 0 and below 1. Measured in docs/results.md ("Where kromp2020's
/// objects are lost").
at::Tensor drop_unlikely_objects(const at::Tensor& labels, const at::Tensor& background, double min_probability);

/// Instance labels without the objects smaller than `min_area` pixels, renumbered in raster order.
at::Tensor remove_small_objects(const at::Tensor& labels, int64_t min_area);

/// The median area, pixels, of the objects of instance-label maps (int64 [H, W] each; 0 where
/// there are none): what a model's training objects look like, recorded in its checkpoint.
int64_t median_object_area(const std::vector<at::Tensor>& instance_maps);

/// The default smallest object a model's prediction keeps: this fraction of its training objects'
/// median area. Pixels of class "object" in specks and slivers (a few pixels of boundary class in
/// the background, a fragment beside a nucleus) are not objects a person would count; on the
/// nucleus sets of docs/results.md a tenth of the median nucleus removed them (object F1 0.35 ->
/// 0.75 and 0.74 -> 0.86 on validation) without losing true nuclei.
constexpr double kSmallObjectFraction = 0.1;
/// That smallest area, pixels, for a model whose training objects' median area is `median_area`
/// (0: none recorded, keep every object).
int64_t smallest_object_area(int64_t median_area);

/// The default neck radius: this fraction of the radius of a disc of the training objects' median
/// area; and the default neck ratio. Chosen on the validation splits of kromp2020 and dsb2018-he
/// (two interior/boundary models each, docs/results.md): fixed radii of 2-4 pixels split
/// irregular nuclei (kromp2020 object F1 0.73 -> 0.69); 0.65 of the median radius (10 pixels on
/// kromp2020, 6 on dsb2018-he) parted merged ones (mean F1 0.718 -> 0.745, 0.544 -> 0.555); with
/// cores also deeper than half their interior's deepest pixel, 0.778 and 0.562.
constexpr double kNeckFraction = 0.65;
constexpr double kNeckRatio = 0.5;
/// The objects of a model that records `model`: of its median training object's area,
/// `smallest_object_area` and `kNeckFraction` of the median radius (both 0, none dropped and no
/// neck split, where none is recorded) with `kNeckRatio`; its objects extend to its recorded
/// object threshold (`kObjectThreshold` where none) and are dropped under its recorded smallest
/// mean object probability (0: none).
ObjectRule object_rule(const ObjectRecord& model);

/// The objects of distance maps [K, H, W] (K >= 3), as `objects_of` cuts them, seeded where the
/// height is at least `seed_level` (0 to 1; nothing removed).
at::Tensor distance_objects(const at::Tensor& maps, double seed_level);

/// The height (expected normalised distance to the edge, 0 to 1) from which distance classes seed
/// an object: low, so that the rim parts touching objects and no object splits where its centre
/// class breaks up (a ring, an elongated nucleus). Chosen by measurement: on the synthetic nuclei's
/// one-hot truth seeds at 0.8 split 19 of 334 nuclei in six images, at 0.3-0.5 one; on kromp2020's
/// validation split (two 5-class models, docs/results.md) 0.3, 0.4, 0.5 and 0.6 gave object F1
/// 0.724, 0.726, 0.615 and 0.597 (mean of the two).
constexpr double kDistanceSeedLevel = 0.4;
/// The seed level of B bins: `kDistanceSeedLevel`, but above the rim class's height (1/B) by half
/// a bin, so that with few bins (B = 2, 3) the rim never seeds and touching objects still part.
double distance_seed_level(int64_t bins);

/// The flow of direction maps [10, H, W] (unet/data/instance_targets.h): float32 [2, H, W], x
/// (to the right) and y (down) of each pixel's expected direction to its centre, the sum over the
/// directions' classes of their probability times their unit vector (the centre class counts 0,
/// so the flow fades where the network sees a centre); 0 where background is the most probable
/// class.
at::Tensor direction_flow(const at::Tensor& maps);

/// Where each pixel of `objects` (bool [H, W]) ends after `steps` steps along `flow` ([2, H, W],
/// pixels per step, interpolated bilinearly between pixel centres; positions kept in the image):
/// int64 [H, W] of the flat index (y * W + x) of the pixel nearest its end, -1 off the objects.
at::Tensor follow_flow(const at::Tensor& flow, const at::Tensor& objects, int64_t steps);

/// Objects from `follow_flow`'s ends: the pixels where some pixel ended, grown by `radius`
/// (a square), form 8-connected groups; each pixel gets its end's group. Int64 labels [H, W] in
/// raster order, 0 off the objects (end -1).
at::Tensor gather_at_ends(const at::Tensor& ends, int64_t radius);

/// The objects of direction maps [10, H, W]: `direction_flow` followed for `steps` steps, gathered
/// at its ends (`kEndRadius`). Objects joined only by a rim stay apart where their pixels point
/// away from each other; pixels of one object end within a few pixels of its centre.
at::Tensor direction_objects(const at::Tensor& maps, int64_t steps);

/// `labels` (int64 [H, W], 0 background) grown over the pixels whose object probability is above
/// `threshold` (`background`, its probability [H, W], under 1 - `threshold`; at 0.5: more likely
/// object than background) that connect to them, most likely first (a
/// seeded watershed, 4-connected): two objects meet where background is most probable. Not
/// limited to a rim: a piece that `min_area` dropped joins the object it touches. Such pixels
/// that no object reaches stay 0; labels keep their numbers. Int64 [H, W] on the CPU. Throws
/// `Error` for a threshold not above 0 and below 1.
at::Tensor grow_objects(const at::Tensor& labels, const at::Tensor& background, double threshold = kObjectThreshold);

/// Steps along a direction model's flow: at most a pixel each, enough to cross a nucleus 400
/// pixels wide (Cellpose follows its flows 200 steps too).
constexpr int64_t kFlowSteps = 200;
/// How far (pixels, a square) the pixels where ends lie are grown before they are grouped: ends
/// up to 2 * kEndRadius + 1 pixels apart (Chebyshev) join, and chains of them too; the centre
/// class's 3x3 block stops an object's pixels around it, not at one point.
constexpr int64_t kEndRadius = 2;

/// Whether `objects_of` applies: two plain classes, interior/boundary, distance or direction classes.
bool has_objects(int64_t classes, ClassScheme scheme);

/// Throws `OptionError` where a model of `classes` classes of `scheme` does not take an object
/// threshold (`threshold`: one is given, field `threshold_field`) or a smallest mean object
/// probability (`level`: one is given, field `level_field`): neither without objects
/// (`has_objects`; the threshold's field named where both are given), no threshold where the
/// objects do not grow (`objects_grow`: two plain classes). The one rule for export's recorded
/// values and evaluate's sweeps.
void check_object_values(int64_t classes, ClassScheme scheme, bool threshold, bool level,
                         const std::string& threshold_field, const std::string& level_field);

}  // namespace unet
