// Object-level scores from the contingency table of two instance-label maps.
#include "unet/eval/objects.h"

#include <ATen/ATen.h>

#include <map>
#include <unordered_map>
#include <unordered_set>

namespace unet {

std::vector<double> object_iou_thresholds() {
  std::vector<double> t;
  for (int k = 0; k < 10; ++k) t.push_back(0.5 + 0.05 * k);
  return t;
}

double ObjectScores::f1(size_t k) const {
  const double tp = static_cast<double>(true_positives[k]);
  const double d = 2 * tp + static_cast<double>(false_positives(k) + false_negatives(k));
  return d > 0 ? 2 * tp / d : 1.0;
}

double ObjectScores::average_precision(size_t k) const {
  const double tp = static_cast<double>(true_positives[k]);
  const double d = tp + static_cast<double>(false_positives(k) + false_negatives(k));
  return d > 0 ? tp / d : 1.0;
}

double ObjectScores::mean_average_precision() const {
  double sum = 0;
  for (size_t k = 0; k < thresholds.size(); ++k) sum += average_precision(k);
  return thresholds.empty() ? 0.0 : sum / static_cast<double>(thresholds.size());
}

double ObjectScores::segmentation_quality() const {
  return true_positives.empty() || true_positives[0] == 0 ? (truth_objects + predicted_objects == 0 ? 1.0 : 0.0)
                                                          : matched_iou / static_cast<double>(true_positives[0]);
}

double ObjectScores::panoptic_quality() const {
  return true_positives.empty() ? 0.0 : segmentation_quality() * f1(0);
}

double ObjectScores::mean_image_panoptic_quality() const {
  return images > 0 ? image_panoptic_quality / static_cast<double>(images) : 0.0;
}

double ObjectScores::aggregated_jaccard_index() const {
  return jaccard_union > 0 ? jaccard_intersection / jaccard_union : 1.0;
}

double ObjectScores::mean_image_aggregated_jaccard_index() const {
  return images > 0 ? image_jaccard / static_cast<double>(images) : 0.0;
}

void ObjectScores::add(const ObjectScores& o) {
  if (thresholds.empty()) {
    *this = o;
    return;
  }
  truth_objects += o.truth_objects;
  predicted_objects += o.predicted_objects;
  for (size_t k = 0; k < true_positives.size(); ++k) true_positives[k] += o.true_positives[k];
  split += o.split;
  merged += o.merged;
  matched_iou += o.matched_iou;
  images += o.images;
  image_panoptic_quality += o.image_panoptic_quality;
  jaccard_intersection += o.jaccard_intersection;
  jaccard_union += o.jaccard_union;
  image_jaccard += o.image_jaccard;
}

namespace {

/// A truth object's predicted object of highest IoU (ties to the lower label) and their overlap.
struct BestMatch {
  double iou = 0.0;
  int64_t predicted = 0;
  int64_t overlap = 0;
};

/// The aggregated Jaccard index's sums (`ObjectScores::jaccard_intersection`, `jaccard_union`)
/// of one image from its objects' areas and each truth object's best match.
void add_jaccard(ObjectScores& s, const std::unordered_map<int64_t, int64_t>& area_a,
                 const std::unordered_map<int64_t, int64_t>& area_b, const std::unordered_map<int64_t, BestMatch>& best) {
  std::unordered_set<int64_t> chosen;
  for (const auto& [i, area] : area_a) {
    const auto found = best.find(i);
    if (found == best.end()) {
      s.jaccard_union += static_cast<double>(area);  // met no prediction
      continue;
    }
    const BestMatch& m = found->second;
    s.jaccard_intersection += static_cast<double>(m.overlap);
    s.jaccard_union += static_cast<double>(area + area_b.at(m.predicted) - m.overlap);
    chosen.insert(m.predicted);
  }
  for (const auto& [j, area] : area_b)
    if (!chosen.count(j)) s.jaccard_union += static_cast<double>(area);
}

}  // namespace

ObjectScores object_scores(const at::Tensor& truth_in, const at::Tensor& predicted_in) {
  const at::Tensor truth = truth_in.to(at::kLong).cpu().contiguous();
  const at::Tensor predicted = predicted_in.to(at::kLong).cpu().contiguous();
  const int64_t* a = truth.data_ptr<int64_t>();
  const int64_t* b = predicted.data_ptr<int64_t>();
  std::unordered_map<int64_t, int64_t> area_a, area_b;
  std::map<std::pair<int64_t, int64_t>, int64_t> overlap;  // both labels non-zero
  for (int64_t i = 0; i < truth.numel(); ++i) {
    if (a[i] != 0) ++area_a[a[i]];
    if (b[i] != 0) ++area_b[b[i]];
    if (a[i] != 0 && b[i] != 0) ++overlap[{a[i], b[i]}];
  }
  ObjectScores s;
  s.truth_objects = static_cast<int64_t>(area_a.size());
  s.predicted_objects = static_cast<int64_t>(area_b.size());
  s.thresholds = object_iou_thresholds();
  s.true_positives.assign(s.thresholds.size(), 0);
  std::unordered_map<int64_t, int> halves_in_truth, halves_in_predicted;  // split / merge evidence
  std::unordered_map<int64_t, BestMatch> best;  // per truth object, for the aggregated Jaccard index
  for (const auto& [ab, n] : overlap) {
    const auto [i, j] = ab;
    const double iou = static_cast<double>(n) / static_cast<double>(area_a[i] + area_b[j] - n);
    const auto found = best.find(i);
    if (found == best.end() || iou > found->second.iou) best[i] = {iou, j, n};  // pairs in label order
    for (size_t k = 0; k < s.thresholds.size(); ++k)
      if (iou > s.thresholds[k]) ++s.true_positives[k];
    if (iou > s.thresholds[0]) s.matched_iou += iou;
    if (2 * n >= area_b[j]) ++halves_in_truth[i];      // predicted object j mostly inside truth i
    if (2 * n >= area_a[i]) ++halves_in_predicted[j];  // truth object i mostly inside predicted j
  }
  for (const auto& [i, count] : halves_in_truth) s.split += count >= 2;
  for (const auto& [j, count] : halves_in_predicted) s.merged += count >= 2;
  add_jaccard(s, area_a, area_b, best);
  s.images = 1;
  s.image_panoptic_quality = s.panoptic_quality();
  s.image_jaccard = s.aggregated_jaccard_index();
  return s;
}

}  // namespace unet
