// Evaluation of a predictor on labelled images: every metric of unet/eval/metrics.h.
#pragma once

#include "unet/data/dataset.h"
#include "unet/eval/metrics.h"
#include "unet/infer/predictor.h"

#include <cstddef>
#include <vector>

namespace unet {

/// Object scores at several object thresholds (`ObjectRule::object_threshold`) and smallest mean
/// object probabilities (`ObjectRule::min_probability`) from one prediction of each image: its
/// objects cut once, grown to each threshold and dropped at each level (`objects_at_thresholds`).
/// How a model's two values are chosen on validation images, as StarDist's
/// `optimize_thresholds` chooses its probability and overlap thresholds, by mean AP.
struct ObjectSweep {
  /// The object thresholds, each above 0 and below 1 (empty: the predictor's own, set by `accumulate`).
  std::vector<double> thresholds;
  /// The smallest mean object probabilities, each at least 0 and below 1 (empty: the predictor's own).
  std::vector<double> levels;
  /// One per pair, threshold-major (`threshold(k)`, `level(k)`: both lists set, as `accumulate`
  /// leaves them), pooled over the images as `Metrics::objects`.
  std::vector<ObjectScores> scores;
  double threshold(size_t k) const { return thresholds[k / levels.size()]; }
  double level(size_t k) const { return levels[k % levels.size()]; }
  /// The index of the pair with the highest mean AP (the first of equals; 0 when empty).
  size_t best() const;
};

/// Throws `OptionError` unless a model of `model`'s classes has objects and, where `thresholds`
/// is not empty, grows them to a threshold (`objects_grow`; interior/boundary, distance and
/// direction models; field "object_thresholds"), and each threshold is above 0 and below 1 and
/// each of `levels` at least 0 and below 1 ("min_object_probabilities"): what `accumulate`
/// requires of a sweep, to be checked before any image is read.
void check_object_sweep(const UNetOptions& model, const std::vector<double>& thresholds, const std::vector<double>& levels);

/// Runs `predictor` over labelled `samples` and accumulates every metric. `object_scales`
/// (optional): each sample's object scale, in order (`PredictedBatch::object_scales`: 1 where the
/// images are taken at their own size). `sweep` (optional): also scores the objects at each pair
/// of its thresholds and levels into its `scores` (`check_object_sweep` first; an empty list
/// becomes the predictor's own value). The other metrics are the same with it or without.
MetricAccumulator accumulate(Predictor& predictor, const std::vector<Sample>& samples,
                             std::vector<double>* object_scales = nullptr, ObjectSweep* sweep = nullptr);

/// `accumulate(...).result()`.
Metrics evaluate(Predictor& predictor, const std::vector<Sample>& samples, std::vector<double>* object_scales = nullptr,
                 ObjectSweep* sweep = nullptr);

}  // namespace unet
