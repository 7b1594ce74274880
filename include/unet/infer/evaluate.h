// Evaluation of a predictor on labelled images: every metric of unet/eval/metrics.h.
#pragma once

#include "unet/data/dataset.h"
#include "unet/eval/metrics.h"
#include "unet/infer/predictor.h"

#include <vector>

namespace unet {

/// Runs `predictor` over labelled `samples` and accumulates every metric.
MetricAccumulator accumulate(Predictor& predictor, const std::vector<Sample>& samples);

/// `accumulate(...).result()`.
Metrics evaluate(Predictor& predictor, const std::vector<Sample>& samples);

}  // namespace unet
