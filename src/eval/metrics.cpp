// Evaluation metrics at the network's output size and at the images' original size.
#include "unet/eval/metrics.h"

#include "unet/data/components.h"
#include "unet/data/dataset.h"
#include "unet/data/preprocess.h"
#include "unet/eval/isbi.h"
#include "unet/model/loss.h"

#include <ATen/ATen.h>

#include <cmath>

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

void MetricAccumulator::add_original(const at::Tensor& probabilities, const at::Tensor& mask) {
  const at::Tensor predicted = maps_to_classes(probabilities.to(at::kFloat).cpu());
  const at::Tensor truth = mask.cpu();
  const at::Tensor p = predicted == kMembraneClass, t = truth == kMembraneClass;
  true_positive_ += (p & t).sum().item<double>();
  false_positive_ += (p & t.logical_not()).sum().item<double>();
  false_negative_ += (p.logical_not() & t).sum().item<double>();
  wrong_ += (predicted != truth).sum().item<double>();
  pixels_ += static_cast<double>(truth.numel());
  ++original_images_;
  const at::Tensor truth_segments = connected_components(truth != kMembraneClass);
  const at::Tensor non_membrane = 1.0 - probabilities[kMembraneClass].to(at::kFloat).cpu();
  const auto thresholds = score_thresholds();
  for (size_t k = 0; k < thresholds.size(); ++k) {
    const SegmentationScores s = segmentation_scores(truth_segments, connected_components(non_membrane >= thresholds[k]));
    v_rand_sums_[k] += s.v_rand;
    v_info_sums_[k] += s.v_info;
  }
}

Metrics MetricAccumulator::result() const {
  Metrics m;
  if (network_images_ > 0) {
    m.dice_score = soft_dice_sum_ / network_images_;
    m.cross_entropy = cross_entropy_sum_ / network_images_;
  }
  const double tp = true_positive_, fp = false_positive_, fn = false_negative_;
  // An image set without membrane that is predicted without membrane is a perfect score.
  m.membrane_dice = (2 * tp + fp + fn) > 0 ? 2 * tp / (2 * tp + fp + fn) : 1.0;
  m.membrane_iou = (tp + fp + fn) > 0 ? tp / (tp + fp + fn) : 1.0;
  m.pixel_error = pixels_ > 0 ? wrong_ / pixels_ : 0.0;
  if (original_images_ > 0) {
    const auto thresholds = score_thresholds();
    const double n = static_cast<double>(original_images_);
    m.v_rand_best = m.v_info_best = -1.0;
    for (size_t k = 0; k < thresholds.size(); ++k) {
      if (std::abs(thresholds[k] - 0.5) < 1e-9) {
        m.v_rand = v_rand_sums_[k] / n;
        m.v_info = v_info_sums_[k] / n;
      }
      if (v_rand_sums_[k] / n > m.v_rand_best) m.v_rand_best = v_rand_sums_[k] / n, m.v_rand_threshold = thresholds[k];
      if (v_info_sums_[k] / n > m.v_info_best) m.v_info_best = v_info_sums_[k] / n, m.v_info_threshold = thresholds[k];
    }
  }
  m.images = std::max(network_images_, original_images_);
  return m;
}

at::Tensor MetricAccumulator::state() const {
  std::vector<double> v = {soft_dice_sum_, cross_entropy_sum_, static_cast<double>(network_images_), true_positive_,
                           false_positive_, false_negative_, wrong_, pixels_, static_cast<double>(original_images_), 0.0};
  v.insert(v.end(), v_rand_sums_.begin(), v_rand_sums_.end());
  v.insert(v.end(), v_info_sums_.begin(), v_info_sums_.end());
  return at::tensor(v, at::kDouble);
}

void MetricAccumulator::set_state(const at::Tensor& state) {
  const at::Tensor s = state.to(at::kDouble).cpu().contiguous();
  const double* v = s.data_ptr<double>();
  soft_dice_sum_ = v[0];
  cross_entropy_sum_ = v[1];
  network_images_ = static_cast<int64_t>(std::llround(v[2]));
  true_positive_ = v[3];
  false_positive_ = v[4];
  false_negative_ = v[5];
  wrong_ = v[6];
  pixels_ = v[7];
  original_images_ = static_cast<int64_t>(std::llround(v[8]));
  v_rand_sums_.assign(v + 10, v + 19);
  v_info_sums_.assign(v + 19, v + 28);
}

}  // namespace unet
