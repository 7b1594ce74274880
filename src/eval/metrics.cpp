// Evaluation metrics at the network's output size and at the images' original size.
#include "unet/eval/metrics.h"

#include "unet/data/dataset.h"
#include "unet/data/preprocess.h"
#include "unet/eval/instances.h"
#include "unet/eval/isbi.h"
#include "unet/model/loss.h"

#include <ATen/ATen.h>

#include <cmath>
#include <stdexcept>
#include <tuple>
#include <utility>

namespace unet {

void MetricAccumulator::add_network_output(const at::Tensor& logits, const at::Tensor& labels) {
  const at::Tensor x = logits.to(at::kFloat).cpu();
  const at::Tensor target = one_hot_maps(labels.cpu(), x.size(1));
  const at::Tensor log_p = at::log_softmax(x, 1);
  const at::Tensor ce_per_image = -(target * log_p).sum(1).mean({1, 2});          // [N]
  const at::Tensor dice_per_image = soft_dice(log_p.exp(), target).mean(1);        // [N]
  cross_entropy_sum_ += ce_per_image.sum().item<double>();
  soft_dice_sum_ += dice_per_image.sum().item<double>();
  network_images_ += x.size(0);
}

void MetricAccumulator::add_probabilities(const at::Tensor& probabilities, const at::Tensor& mask) {
  const at::Tensor p = probabilities.to(at::kFloat).cpu().unsqueeze(0);
  const at::Tensor target = one_hot_maps(mask.cpu().unsqueeze(0), p.size(1));
  cross_entropy_sum_ += (-(target * p.clamp_min(1e-12).log()).sum(1).mean()).item<double>();
  soft_dice_sum_ += soft_dice(p, target).mean().item<double>();
  ++network_images_;
}

MetricAccumulator::MetricAccumulator(int64_t classes, ClassScheme scheme)
    : class_tp_(static_cast<size_t>(classes), 0.0), class_fp_(static_cast<size_t>(classes), 0.0),
      class_fn_(static_cast<size_t>(classes), 0.0), scheme_(scheme) {
  objects_.thresholds = object_iou_thresholds();
  objects_.true_positives.assign(objects_.thresholds.size(), 0);
}

at::Tensor objects_of_truth(const at::Tensor& mask, const at::Tensor& instances, int64_t classes, ClassScheme scheme) {
  if (instances.defined()) return instances.cpu();
  return objects_of(one_hot_maps(mask.cpu().unsqueeze(0), classes)[0], scheme);
}

void MetricAccumulator::add_original(const at::Tensor& probabilities, const at::Tensor& mask,
                                     const at::Tensor& truth_objects, const at::Tensor& predicted_objects) {
  const at::Tensor predicted = maps_to_classes(probabilities.to(at::kFloat).cpu());
  const at::Tensor truth = mask.cpu();
  TORCH_CHECK(probabilities.size(0) == static_cast<int64_t>(class_tp_.size()),
              "MetricAccumulator: maps of ", probabilities.size(0), " classes for an accumulator of ", class_tp_.size());
  for (size_t c = 0; c < class_tp_.size(); ++c) {
    const at::Tensor pc = predicted == static_cast<int64_t>(c), tc = truth == static_cast<int64_t>(c);
    class_tp_[c] += (pc & tc).sum().item<double>();
    class_fp_[c] += (pc & tc.logical_not()).sum().item<double>();
    class_fn_[c] += (pc.logical_not() & tc).sum().item<double>();
  }
  const int64_t classes = static_cast<int64_t>(class_tp_.size());
  if (has_objects(classes, scheme_)) {
    // Objects as the model's classes define them (components of class 1, or interior grown over
    // the boundary), the truth's from its one-hot maps by the same rule unless given.
    const at::Tensor truth_labels = objects_of_truth(truth, truth_objects, classes, scheme_);
    const at::Tensor found = predicted_objects.defined() ? predicted_objects.cpu() : objects_of(probabilities, scheme_, InstanceMethod::kComponents, object_rule_);
    objects_.add(object_scores(truth_labels, found));
  }
  wrong_ += (predicted != truth).sum().item<double>();
  pixels_ += static_cast<double>(truth.numel());
  ++original_images_;
  const at::Tensor non_membrane = 1.0 - probabilities[kMembraneClass].to(at::kFloat).cpu();
  const ThresholdScores s = challenge_scores(truth != kMembraneClass, non_membrane);
  for (size_t k = 0; k < s.v_rand.size(); ++k) {
    v_rand_sums_[k] += s.v_rand[k];
    v_info_sums_[k] += s.v_info[k];
    v_rand_thinned_sums_[k] += s.v_rand_thinned[k];
    v_info_thinned_sums_[k] += s.v_info_thinned[k];
  }
}

namespace {

/// The challenge's choice: the first threshold whose mean is strictly above all earlier ones
/// (starting from 0, as Fiji's loops do).
std::pair<double, double> best_over_thresholds(const std::vector<double>& sums, double n) {
  const std::vector<double> thresholds = challenge_thresholds();
  double best = 0.0, where = thresholds.front();
  for (size_t k = 0; k < sums.size(); ++k)
    if (sums[k] / n > best) best = sums[k] / n, where = thresholds[k];
  return {best, where};
}

}  // namespace

Metrics MetricAccumulator::result() const {
  Metrics m;
  if (network_images_ > 0) {
    m.dice_score = soft_dice_sum_ / network_images_;
    m.cross_entropy = cross_entropy_sum_ / network_images_;
  }
  m.pixel_error = pixels_ > 0 ? wrong_ / pixels_ : 0.0;
  if (original_images_ > 0) {
    const double n = static_cast<double>(original_images_);
    const std::vector<double> thresholds = challenge_thresholds();
    for (size_t k = 0; k < thresholds.size(); ++k)
      if (std::abs(thresholds[k] - 0.5) < 1e-9) m.v_rand = v_rand_sums_[k] / n, m.v_info = v_info_sums_[k] / n;
    std::tie(m.v_rand_best, m.v_rand_threshold) = best_over_thresholds(v_rand_sums_, n);
    std::tie(m.v_info_best, m.v_info_threshold) = best_over_thresholds(v_info_sums_, n);
    std::tie(m.v_rand_thinned, m.v_rand_thinned_threshold) = best_over_thresholds(v_rand_thinned_sums_, n);
    std::tie(m.v_info_thinned, m.v_info_thinned_threshold) = best_over_thresholds(v_info_thinned_sums_, n);
  }
  // A class absent from both the truth and the prediction scores 1 (a perfect score).
  auto dice = [&](size_t c) {
    const double t = class_tp_[c], f = class_fp_[c] + class_fn_[c];
    return 2 * t + f > 0 ? 2 * t / (2 * t + f) : 1.0;
  };
  auto iou = [&](size_t c) {
    const double t = class_tp_[c], f = class_fp_[c] + class_fn_[c];
    return t + f > 0 ? t / (t + f) : 1.0;
  };
  for (size_t c = 0; c < class_tp_.size() && original_images_ > 0; ++c) {
    m.class_dice.push_back(dice(c));
    m.class_iou.push_back(iou(c));
  }
  m.membrane_dice = dice(kMembraneClass);
  m.membrane_iou = iou(kMembraneClass);
  m.has_objects = has_objects(static_cast<int64_t>(class_tp_.size()), scheme_) && original_images_ > 0;
  if (m.has_objects) m.objects = objects_;
  m.images = std::max(network_images_, original_images_);
  return m;
}

at::Tensor MetricAccumulator::state() const {
  std::vector<double> v = {soft_dice_sum_, cross_entropy_sum_, static_cast<double>(network_images_), wrong_, pixels_,
                           static_cast<double>(original_images_)};
  for (const std::vector<double>* sums : {&v_rand_sums_, &v_info_sums_, &v_rand_thinned_sums_, &v_info_thinned_sums_})
    v.insert(v.end(), sums->begin(), sums->end());
  for (size_t c = 0; c < class_tp_.size(); ++c) v.insert(v.end(), {class_tp_[c], class_fp_[c], class_fn_[c]});
  v.insert(v.end(), {static_cast<double>(objects_.truth_objects), static_cast<double>(objects_.predicted_objects),
                     static_cast<double>(objects_.split), static_cast<double>(objects_.merged), objects_.matched_iou,
                     static_cast<double>(objects_.images), objects_.image_panoptic_quality,
                     objects_.jaccard_intersection, objects_.jaccard_union, objects_.image_jaccard});
  for (int64_t tp : objects_.true_positives) v.push_back(static_cast<double>(tp));
  return at::tensor(v, at::kDouble);
}

void MetricAccumulator::add(const MetricAccumulator& other) { set_state(state() + other.state()); }

void MetricAccumulator::set_state(const at::Tensor& state) {
  constexpr int64_t kFixed = 6;  // the sums before the per-threshold ones, as state() lists them
  constexpr int64_t kObjectCounts = 10;  // the object sums before the per-threshold matches
  const at::Tensor s = state.to(at::kDouble).cpu().contiguous();
  const double* v = s.data_ptr<double>();
  soft_dice_sum_ = v[0];
  cross_entropy_sum_ = v[1];
  network_images_ = static_cast<int64_t>(std::llround(v[2]));
  wrong_ = v[3];
  pixels_ = v[4];
  original_images_ = static_cast<int64_t>(std::llround(v[5]));
  const int64_t t = static_cast<int64_t>(challenge_thresholds().size());
  const int64_t classes = static_cast<int64_t>(class_tp_.size());
  const int64_t object_values = kObjectCounts + static_cast<int64_t>(objects_.true_positives.size());
  if (s.numel() != kFixed + 4 * t + 3 * classes + object_values) {
    throw std::invalid_argument("MetricAccumulator::set_state: wrong state size");
  }
  int64_t offset = kFixed;
  for (std::vector<double>* sums : {&v_rand_sums_, &v_info_sums_, &v_rand_thinned_sums_, &v_info_thinned_sums_}) {
    sums->assign(v + offset, v + offset + t);
    offset += t;
  }
  for (int64_t c = 0; c < classes; ++c, offset += 3) {
    class_tp_[c] = v[offset];
    class_fp_[c] = v[offset + 1];
    class_fn_[c] = v[offset + 2];
  }
  auto count = [&](int64_t i) { return static_cast<int64_t>(std::llround(v[i])); };
  objects_.truth_objects = count(offset);
  objects_.predicted_objects = count(offset + 1);
  objects_.split = count(offset + 2);
  objects_.merged = count(offset + 3);
  objects_.matched_iou = v[offset + 4];
  objects_.images = count(offset + 5);
  objects_.image_panoptic_quality = v[offset + 6];
  objects_.jaccard_intersection = v[offset + 7];
  objects_.jaccard_union = v[offset + 8];
  objects_.image_jaccard = v[offset + 9];
  for (size_t k = 0; k < objects_.true_positives.size(); ++k)
    objects_.true_positives[k] = count(offset + kObjectCounts + static_cast<int64_t>(k));
}

}  // namespace unet
