// Evaluation of a predictor on labelled images: every metric of unet/eval/metrics.h.
#pragma once

#include "unet/data/dataset.h"
#include "unet/eval/metrics.h"
#include "unet/infer/predictor.h"

#include <cstddef>
#include <vector>

namespace unet {

/// Object scores at several object thresholds (`ObjectRule::object_threshold`) from one
/// prediction of each image: its objects cut once and grown to each threshold
/// (`objects_at_thresholds`). How a model's threshold is chosen on validation images, as
/// StarDist's `optimize_thresholds` chooses its probability threshold, by mean AP.
struct ThresholdSweep {
  /// The thresholds, each above 0 and below 1.
  std::vector<double> thresholds;
  /// One per threshold, pooled over the images as `Metrics::objects`.
  std::vector<ObjectScores> scores;
  /// The index of the threshold with the highest mean AP (the first of equals; 0 when empty).
  size_t best() const;
};

/// Throws `OptionError` ("object_thresholds") unless a model of `model`'s classes grows its
/// objects to a threshold (`objects_grow`; interior/boundary, distance and direction models) and
/// each of `thresholds` is above 0 and below 1: what `accumulate` requires of a sweep, to be
/// checked before any image is read.
void check_threshold_sweep(const UNetOptions& model, const std::vector<double>& thresholds);

/// Runs `predictor` over labelled `samples` and accumulates every metric. `object_scales`
/// (optional): each sample's object scale, in order (`PredictedBatch::object_scales`: 1 where the
/// images are taken at their own size). `sweep` (optional; its `thresholds` set): also scores the
/// objects at each of its thresholds into its `scores` (`check_threshold_sweep` first). The other
/// metrics are the same with it or without.
MetricAccumulator accumulate(Predictor& predictor, const std::vector<Sample>& samples,
                             std::vector<double>* object_scales = nullptr, ThresholdSweep* sweep = nullptr);

/// `accumulate(...).result()`.
Metrics evaluate(Predictor& predictor, const std::vector<Sample>& samples, std::vector<double>* object_scales = nullptr,
                 ThresholdSweep* sweep = nullptr);

}  // namespace unet
