// Evaluation of a predictor on labelled images: every metric of unet/eval/metrics.h.
#pragma once

#include "unet/data/dataset.h"
#include "unet/eval/metrics.h"
#include "unet/infer/predictor.h"

#include <vector>

namespace unet {

/// Runs `predictor` over labelled `samples` and accumulates every metric. `object_scales`
/// (optional): each sample's object scale, in order (`PredictedBatch::object_scales`: 1 where the
/// images are taken at their own size).
MetricAccumulator accumulate(Predictor& predictor, const std::vector<Sample>& samples,
                             std::vector<double>* object_scales = nullptr);

/// `accumulate(...).result()`.
Metrics evaluate(Predictor& predictor, const std::vector<Sample>& samples, std::vector<double>* object_scales = nullptr);

}  // namespace unet
