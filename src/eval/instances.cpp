// Instances from a probability map: connected components, or a seeded watershed (priority flood)
// that splits objects joined by a weak bridge. The flood pops the most probable unassigned pixel
// next to a labelled one, so labels meet where the probability is lowest. Interior/boundary
// models seed the same flood with their interior class (split at its necks where it pinches);
// distance models with their centres, flooding in order of the expected distance to the edge.
// Direction models are followed: every object pixel moves along the expected direction of its
// classes until it stops at a centre, and the pixels that stop together are one object. Then the
// objects of all three grow over their rims: the pixels more likely object than background that
// background still wins the argmax of (`with_extent`); last, objects the model barely believes in
// go (`drop_unlikely_objects`).
#include "unet/eval/instances.h"

#include "unet/data/components.h"
#include "unet/data/instance_targets.h"
#include "unet/data/object_scale.h"
#include "unet/runtime/text.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <queue>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

namespace unet {
namespace {

/// Relabels `labels` 1..n in raster order of each label's first pixel (0 stays 0).
at::Tensor raster_order(const at::Tensor& labels) {
  at::Tensor out = labels.clone();
  const int64_t* in = labels.data_ptr<int64_t>();
  int64_t* o = out.data_ptr<int64_t>();
  std::vector<int64_t> map(static_cast<size_t>(labels.max().item<int64_t>()) + 1, 0);
  int64_t next = 0;
  for (int64_t i = 0; i < labels.numel(); ++i) {
    if (in[i] == 0) continue;
    int64_t& m = map[static_cast<size_t>(in[i])];
    if (m == 0) m = ++next;
    o[i] = m;
  }
  return out;
}

/// Grows `seeds` (int64 labels, 0 unlabelled) over `foreground` in order of decreasing
/// `priority` (4-connected priority flood); foreground that no seed reaches becomes its own
/// components, labelled after the seeds'.
at::Tensor seeded_flood(const at::Tensor& priority, const at::Tensor& foreground, at::Tensor labels) {
  const int64_t h = priority.size(0), w = priority.size(1);
  labels = labels.contiguous().clone();
  const at::Tensor p = priority.contiguous(), fg_map = foreground.contiguous();
  const float* prob = p.data_ptr<float>();
  const bool* fg = fg_map.data_ptr<bool>();
  int64_t* label = labels.data_ptr<int64_t>();
  // Entries: priority, push order, pixel, the label that reached it. The highest priority first;
  // among equals the one pushed first, so that a plateau fills from all its sides at the same
  // pace and the labels meet in its middle.
  using Entry = std::tuple<float, int64_t, int64_t, int64_t>;
  auto later = [](const Entry& a, const Entry& b) {
    return std::get<0>(a) < std::get<0>(b) || (std::get<0>(a) == std::get<0>(b) && std::get<1>(a) > std::get<1>(b));
  };
  std::priority_queue<Entry, std::vector<Entry>, decltype(later)> queue(later);
  int64_t order = 0;
  auto push_neighbours = [&](int64_t i) {
    const int64_t y = i / w, x = i % w;
    const int64_t next[4] = {y > 0 ? i - w : -1, x > 0 ? i - 1 : -1, x + 1 < w ? i + 1 : -1, y + 1 < h ? i + w : -1};
    for (int64_t n : next)
      if (n >= 0 && fg[n] && label[n] == 0) queue.emplace(prob[n], order++, n, label[i]);
  };
  for (int64_t i = 0; i < h * w; ++i)
    if (label[i] != 0) push_neighbours(i);
  while (!queue.empty()) {
    const auto [value, pushed, i, from] = queue.top();
    queue.pop();
    if (label[i] != 0) continue;  // reached earlier from another side
    label[i] = from;
    push_neighbours(i);
  }
  const at::Tensor rest = connected_components(fg_map & (labels == 0));
  const int64_t seeded = labels.max().item<int64_t>();
  return at::where(rest > 0, rest + seeded, labels);
}

at::Tensor watershed(const at::Tensor& p, double seed_threshold) {
  return seeded_flood(p, p >= 0.5, connected_components(p >= seed_threshold));
}

}  // namespace

at::Tensor instance_labels(const at::Tensor& probability, InstanceMethod method, double seed_threshold) {
  TORCH_CHECK(probability.dim() == 2, "instance_labels: a probability map [H, W]");
  const at::Tensor p = probability.to(at::kFloat).cpu().contiguous();
  if (p.numel() == 0) return at::zeros(p.sizes(), at::kLong);
  const at::Tensor labels = method == InstanceMethod::kComponents ? connected_components(p >= 0.5) : watershed(p, seed_threshold);
  return raster_order(labels.contiguous());
}

bool has_objects(int64_t classes, ClassScheme scheme) {
  switch (scheme) {
    case ClassScheme::kInteriorBoundary: return classes == 3;
    case ClassScheme::kDistance: return classes >= 3;
    case ClassScheme::kDirections: return classes == kDirectionClasses;
    default: return classes == 2;
  }
}

void check_object_values(int64_t classes, ClassScheme scheme, bool threshold, bool level,
                         const std::string& threshold_field, const std::string& level_field) {
  if ((threshold || level) && !has_objects(classes, scheme))
    throw OptionError(threshold ? threshold_field : level_field,
                      ": a model of " + std::to_string(classes) + " " + to_string(scheme) + " classes has no objects");
  if (threshold && !objects_grow(scheme))
    throw OptionError(threshold_field, ": a two-class model's objects are the components of class 1, not grown to a "
                                       "threshold (interior/boundary, distance and direction models' are)");
}

double distance_seed_level(int64_t bins) { return std::max(kDistanceSeedLevel, 1.5 / static_cast<double>(bins)); }

at::Tensor distance_objects(const at::Tensor& maps, double seed_level) {
  TORCH_CHECK(maps.dim() == 3 && maps.size(0) >= 3, "distance_objects: maps [K, H, W] of K >= 3 classes");
  const at::Tensor m = maps.to(at::kFloat).cpu().contiguous();
  const int64_t bins = m.size(0) - 1;
  if (m[0].numel() == 0) return at::zeros(m[0].sizes(), at::kLong);
  const at::Tensor level = at::arange(1, bins + 1, at::kFloat).div_(static_cast<double>(bins)).view({bins, 1, 1});
  const at::Tensor height = (m.slice(0, 1) * level).sum(0).contiguous();
  const at::Tensor objects = m.argmax(0) != 0;
  const at::Tensor seeds = connected_components(objects & (height >= seed_level));
  return raster_order(seeded_flood(height, objects, seeds).contiguous());
}

at::Tensor direction_flow(const at::Tensor& maps) {
  TORCH_CHECK(maps.dim() == 3 && maps.size(0) == kDirectionClasses, "direction_flow: maps [10, H, W]");
  const at::Tensor m = maps.to(at::kFloat).cpu();
  const at::Tensor turns = at::arange(kDirections, at::kDouble).mul_(2.0 * M_PI / static_cast<double>(kDirections));
  const at::Tensor ux = turns.cos().to(at::kFloat).view({kDirections, 1, 1}), uy = -turns.sin().to(at::kFloat).view({kDirections, 1, 1});
  const at::Tensor p = m.slice(0, 2);
  const at::Tensor objects = (m.argmax(0) != 0).to(at::kFloat);
  return at::stack({(p * ux).sum(0) * objects, (p * uy).sum(0) * objects}).contiguous();
}

at::Tensor follow_flow(const at::Tensor& flow, const at::Tensor& objects, int64_t steps) {
  TORCH_CHECK(flow.dim() == 3 && flow.size(0) == 2 && objects.dim() == 2, "follow_flow: flow [2, H, W], objects [H, W]");
  const int64_t h = flow.size(1), w = flow.size(2);
  const at::Tensor f = flow.to(at::kFloat).cpu().contiguous(), o = objects.to(at::kBool).cpu().contiguous();
  const float* vx = f.data_ptr<float>();
  const float* vy = vx + h * w;
  const bool* in = o.data_ptr<bool>();
  at::Tensor ends = at::full({h, w}, -1, at::kLong);
  int64_t* end = ends.data_ptr<int64_t>();
  // The flow between pixel centres, bilinear; positions stay inside the image.
  auto at_pos = [&](const float* v, float x, float y) {
    const int64_t x0 = std::min<int64_t>(static_cast<int64_t>(x), w - 1), y0 = std::min<int64_t>(static_cast<int64_t>(y), h - 1);
    const int64_t x1 = std::min<int64_t>(x0 + 1, w - 1), y1 = std::min<int64_t>(y0 + 1, h - 1);
    const float ax = x - static_cast<float>(x0), ay = y - static_cast<float>(y0);
    return (1 - ay) * ((1 - ax) * v[y0 * w + x0] + ax * v[y0 * w + x1]) + ay * ((1 - ax) * v[y1 * w + x0] + ax * v[y1 * w + x1]);
  };
  at::parallel_for(0, h * w, 1024, [&](int64_t first, int64_t last) {
    for (int64_t i = first; i < last; ++i) {
      if (!in[i]) continue;
      float x = static_cast<float>(i % w), y = static_cast<float>(i / w);
      for (int64_t s = 0; s < steps; ++s) {
        const float dx = at_pos(vx, x, y), dy = at_pos(vy, x, y);
        if (!std::isfinite(dx) || !std::isfinite(dy)) break;  // a flow that is not a number stops here
        x = std::clamp(x + dx, 0.0f, static_cast<float>(w - 1));
        y = std::clamp(y + dy, 0.0f, static_cast<float>(h - 1));
      }
      end[i] = std::lround(y) * w + std::lround(x);
    }
  });
  return ends;
}

at::Tensor gather_at_ends(const at::Tensor& ends, int64_t radius) {
  TORCH_CHECK(ends.dim() == 2 && ends.scalar_type() == at::kLong, "gather_at_ends: int64 ends [H, W]");
  const int64_t h = ends.size(0), w = ends.size(1);
  if (ends.numel() == 0) return at::zeros({h, w}, at::kLong);
  const at::Tensor e = ends.cpu().contiguous();
  const int64_t* end = e.data_ptr<int64_t>();
  at::Tensor hit = at::zeros({h, w}, at::kFloat);
  float* hp = hit.data_ptr<float>();
  for (int64_t i = 0; i < h * w; ++i)
    if (end[i] >= 0) hp[end[i]] = 1.0f;
  const at::Tensor near = at::max_pool2d(hit.view({1, 1, h, w}), {2 * radius + 1, 2 * radius + 1}, {1, 1}, {radius, radius}).view({h, w});
  const at::Tensor groups = connected_regions((near > 0).to(at::kLong), /*diagonal=*/true).contiguous();
  const int64_t* g = groups.data_ptr<int64_t>();
  at::Tensor labels = at::zeros({h, w}, at::kLong);
  int64_t* l = labels.data_ptr<int64_t>();
  for (int64_t i = 0; i < h * w; ++i)
    if (end[i] >= 0) l[i] = g[end[i]];
  return raster_order(labels);
}

at::Tensor direction_objects(const at::Tensor& maps, int64_t steps) {
  TORCH_CHECK(maps.dim() == 3 && maps.size(0) == kDirectionClasses, "direction_objects: maps [10, H, W]");
  if (maps[0].numel() == 0) return at::zeros(maps[0].sizes(), at::kLong);
  const at::Tensor m = maps.to(at::kFloat).cpu();
  return gather_at_ends(follow_flow(direction_flow(m), m.argmax(0) != 0, steps), kEndRadius);
}

at::Tensor grow_objects(const at::Tensor& labels, const at::Tensor& background, double threshold) {
  TORCH_CHECK(labels.dim() == 2 && labels.sizes() == background.sizes(), "grow_objects: labels and background [H, W]");
  if (!legal_object_threshold(threshold))
    throw Error("object threshold " + number_text(threshold) + ": must be above 0 and below 1");
  const at::Tensor l = labels.to(at::kLong).cpu();
  const int64_t n = l.numel() == 0 ? 0 : l.max().item<int64_t>();
  if (n == 0) return l;
  const at::Tensor b = background.to(at::kFloat).cpu().contiguous();
  const at::Tensor grown = seeded_flood(1.0f - b, b < static_cast<float>(1.0 - threshold), l);
  return grown.masked_fill(grown > n, 0);
}

at::Tensor split_at_necks(const at::Tensor& seeds, double radius, double ratio) {
  TORCH_CHECK(seeds.dim() == 2 && seeds.scalar_type() == at::kLong, "split_at_necks: int64 seeds [H, W]");
  if (radius <= 0 || seeds.numel() == 0) return seeds;
  const at::Tensor s_map = seeds.contiguous();
  const int64_t n_seeds = s_map.max().item<int64_t>();
  const at::Tensor depth = edge_distance(s_map);
  at::Tensor level = at::full({}, std::max(radius, 1.0), at::kFloat);
  if (ratio > 0) {
    const at::Tensor flat = s_map.reshape({-1});
    const at::Tensor deepest = at::zeros({n_seeds + 1}, at::kFloat).scatter_reduce(0, flat, depth.reshape({-1}), "amax");
    level = at::maximum(deepest.index({flat}).view(s_map.sizes()) * ratio, level);
  }
  const at::Tensor cores = connected_components(depth > level).contiguous();
  const int64_t n_cores = cores.max().item<int64_t>();
  const int64_t* s = s_map.data_ptr<int64_t>();
  const int64_t* c = cores.data_ptr<int64_t>();
  // Each core lies inside one seed (the cores are the seeds' pixels, shrunk): count them per seed.
  std::vector<uint8_t> seen(static_cast<size_t>(n_cores) + 1, 0);
  std::vector<int64_t> cores_of(static_cast<size_t>(n_seeds) + 1, 0);
  for (int64_t i = 0; i < s_map.numel(); ++i)
    if (c[i] != 0 && !seen[static_cast<size_t>(c[i])]) {
      seen[static_cast<size_t>(c[i])] = 1;
      ++cores_of[static_cast<size_t>(s[i])];
    }
  at::Tensor out = s_map.clone();
  int64_t* o = out.data_ptr<int64_t>();
  for (int64_t i = 0; i < s_map.numel(); ++i)
    if (s[i] != 0 && cores_of[static_cast<size_t>(s[i])] >= 2) o[i] = c[i] != 0 ? n_seeds + c[i] : 0;
  return out;
}

at::Tensor cut_objects(const at::Tensor& maps, ClassScheme scheme, InstanceMethod method, const ObjectRule& rule) {
  if (!has_objects(maps.size(0), scheme))
    throw std::invalid_argument("objects: " + std::to_string(maps.size(0)) + " class maps for the " + to_string(scheme) + " scheme");
  const int64_t min_area = rule.min_area;
  const at::Tensor m = maps.to(at::kFloat).cpu().contiguous();
  if (scheme == ClassScheme::kPlain) return remove_small_objects(instance_labels(m[1], method), min_area);
  if (m[0].numel() == 0) return at::zeros(m[0].sizes(), at::kLong);
  if (scheme == ClassScheme::kDistance) return remove_small_objects(distance_objects(m, distance_seed_level(m.size(0) - 1)), min_area);
  if (scheme == ClassScheme::kDirections) return remove_small_objects(direction_objects(m, kFlowSteps), min_area);
  const at::Tensor best = m.argmax(0);
  const at::Tensor seeds = split_at_necks(connected_components(best == 1).to(at::kLong), rule.neck_radius, rule.neck_ratio);
  const at::Tensor labels = seeded_flood(m[1].contiguous(), best != 0, seeds);
  return remove_small_objects(raster_order(labels.contiguous()), min_area);
}

namespace {

/// The step before the last, at the maps' own pixels: the objects of interior/boundary, distance and
/// direction models grow over the pixels whose object probability is above `threshold` (the
/// model's, 0.5 by default: more likely object than background; `grow_objects`).
/// A direction model's flow is followed only where background is not the most probable class of
/// ten; at an object's rim, where the direction is uncertain and the eight direction classes share
/// the object's probability, background wins that argmax with a third. Measured on kromp2020's
/// validation split (the shipped 32-filter model, docs/results.md, "Objects to their rims"): mean
/// AP 0.523 -> 0.548, object F1 0.889 -> 0.892. Grown at the object scale instead, before the labels are
/// resized back: mean AP 0.535 against 0.540 (both with the object size measured on grown
/// objects). Interior/boundary and distance objects, flooded over the pixels whose most probable
/// class is not background, grow the same way: F1 up on 14 of 17 model/set pairs (+0.003 to
/// +0.030), -0.001 and -0.002 on two ("One extent for every object", same document). Two-class
/// objects stay as cut (not measured). The threshold is a property of the model, as StarDist's
/// probability threshold ("One threshold per model", same document).
at::Tensor with_extent(const at::Tensor& labels, const at::Tensor& maps, ClassScheme scheme, double threshold) {
  if (!objects_grow(scheme) || maps[0].numel() == 0) return labels;
  return raster_order(grow_objects(labels, maps[0], threshold).contiguous());
}

/// The objects of `objects_at_scale` before they grow (`with_extent`): cut at the model's
/// object size, then back to the maps' pixels by the nearest pixel. From the maps as predicted
/// there where given: maps resized to the image and back are smoothed (two 32-filter direction
/// models at 30 px, four fluorescence sets: mean AP +0.006 to +0.009 for one, +0.002 to -0.004
/// for the other; object F1 within 0.004 for both).
at::Tensor cut_at_scale(const at::Tensor& scaled, const at::Tensor& maps, ClassScheme scheme, InstanceMethod method,
                        const ObjectRule& rule) {
  ObjectRule at_scale = rule;
  at_scale.scale = 1.0;
  const int64_t height = maps.size(1), width = maps.size(2);
  if (!scaled.defined() && (rule.scale == 1.0 || height == 0 || width == 0)) return cut_objects(maps, scheme, method, at_scale);
  const at::Tensor cut_from =
      scaled.defined() ? scaled : resize_image(maps, scaled_side(height, rule.scale), scaled_side(width, rule.scale));
  return raster_order(resize_labels(cut_objects(cut_from, scheme, method, at_scale), height, width));
}

}  // namespace

bool objects_grow(ClassScheme scheme) { return scheme != ClassScheme::kPlain; }

at::Tensor objects_at_scale(const at::Tensor& scaled, const at::Tensor& maps, ClassScheme scheme, InstanceMethod method,
                            const ObjectRule& rule) {
  return objects_at_thresholds(scaled, maps, scheme, method, rule, {rule.object_threshold}).front();
}

std::vector<at::Tensor> objects_at_thresholds(const at::Tensor& scaled, const at::Tensor& maps, ClassScheme scheme,
                                              InstanceMethod method, const ObjectRule& rule,
                                              const std::vector<double>& thresholds, const std::vector<double>& levels) {
  const at::Tensor cut = cut_at_scale(scaled, maps, scheme, method, rule);
  const std::vector<double> drops = levels.empty() ? std::vector<double>{rule.min_probability} : levels;
  std::vector<at::Tensor> objects;
  for (double threshold : thresholds) {
    const at::Tensor grown = with_extent(cut, maps, scheme, threshold);
    for (double level : drops) objects.push_back(drop_unlikely_objects(grown, maps[0], level));
  }
  return objects;
}

at::Tensor objects_of(const at::Tensor& maps, ClassScheme scheme, InstanceMethod method, const ObjectRule& rule) {
  return objects_at_scale(at::Tensor(), maps, scheme, method, rule);
}

at::Tensor drop_unlikely_objects(const at::Tensor& labels, const at::Tensor& background, double min_probability) {
  TORCH_CHECK(labels.sizes() == background.sizes(), "drop_unlikely_objects: labels and background of one size");
  if (!legal_min_object_probability(min_probability))
    throw Error("smallest mean object probability " + number_text(min_probability) + ": must be at least 0 and below 1");
  if (min_probability == 0 || labels.numel() == 0) return labels;
  const at::Tensor flat = labels.reshape({-1}).to(at::kLong).cpu().contiguous();
  const at::Tensor object = 1.0 - background.reshape({-1}).to(at::kDouble).cpu();
  const at::Tensor areas = at::bincount(flat);
  const at::Tensor sums = at::bincount(flat, object, areas.numel());
  at::Tensor keep = sums.ge(areas.to(at::kDouble) * min_probability) & areas.gt(0);
  keep[0] = false;
  const at::Tensor kept = at::where(keep.index({flat}), flat, at::zeros_like(flat)).view(labels.sizes());
  return raster_order(kept.contiguous());
}

at::Tensor remove_small_objects(const at::Tensor& labels, int64_t min_area) {
  if (min_area <= 1 || labels.numel() == 0) return labels;
  const at::Tensor flat = labels.reshape({-1}).to(at::kLong).contiguous();
  const at::Tensor areas = at::bincount(flat);
  at::Tensor keep = areas.ge(min_area);
  keep[0] = false;
  const at::Tensor kept = at::where(keep.index({flat}), flat, at::zeros_like(flat)).view(labels.sizes());
  return raster_order(kept.contiguous());
}

int64_t smallest_object_area(int64_t median_area) {
  return std::llround(kSmallObjectFraction * static_cast<double>(median_area));
}

ObjectRule object_rule(const ObjectRecord& model) {
  ObjectRule rule;
  if (model.threshold > 0.0) rule.object_threshold = model.threshold;
  rule.min_probability = model.min_probability;
  rule.min_area = smallest_object_area(model.median_area);
  const auto area = static_cast<double>(model.median_area);
  rule.neck_radius = model.median_area > 0 ? kNeckFraction * std::sqrt(area / M_PI) : 0.0;
  rule.neck_ratio = kNeckRatio;
  return rule;
}

int64_t median_object_area(const std::vector<at::Tensor>& instance_maps) {
  std::vector<int64_t> areas;
  for (const at::Tensor& map : instance_maps) {
    if (!map.defined() || map.numel() == 0) continue;
    const at::Tensor counts = at::bincount(map.reshape({-1}).to(at::kLong).cpu());
    const int64_t* c = counts.data_ptr<int64_t>();
    for (int64_t k = 1; k < counts.numel(); ++k)
      if (c[k] > 0) areas.push_back(c[k]);
  }
  if (areas.empty()) return 0;
  std::nth_element(areas.begin(), areas.begin() + static_cast<std::ptrdiff_t>(areas.size() / 2), areas.end());
  return areas[areas.size() / 2];
}

const EnumNames<InstanceMethod>& instance_method_names() {
  static const EnumNames<InstanceMethod> names = {{"components", InstanceMethod::kComponents},
                                                  {"watershed", InstanceMethod::kWatershed}};
  return names;
}

}  // namespace unet
