// Evaluation of a predictor: network-size terms per batch, original-size terms per image.
#include "unet/infer/evaluate.h"

#include "unet/eval/instances.h"
#include "unet/runtime/error.h"
#include "unet/runtime/text.h"

#include <algorithm>

namespace unet {

size_t ThresholdSweep::best() const {
  size_t best = 0;
  for (size_t k = 1; k < scores.size(); ++k)
    if (scores[k].mean_average_precision() > scores[best].mean_average_precision()) best = k;
  return best;
}

void check_threshold_sweep(const UNetOptions& model, const std::vector<double>& thresholds) {
  if (!has_objects(model.classes(), model.scheme()))
    throw OptionError("object_thresholds", ": a model of " + std::to_string(model.classes()) + " " + to_string(model.scheme()) +
                                           " classes has no objects");
  if (!objects_grow(model.scheme()))
    throw OptionError("object_thresholds", ": a two-class model's objects are the components of class 1, not grown to a "
                                           "threshold (interior/boundary, distance and direction models' are)");
  for (double t : thresholds)
    if (!legal_object_threshold(t)) throw OptionError("object_thresholds", ": " + number_text(t) + " is not above 0 and below 1");
}

namespace {

/// A sweep's objects of one image whose true objects are `truth`: each threshold's scored into
/// `sweep`; returns the objects at the predictor's own threshold (`rule`'s), cut in the same pass,
/// for the other metrics.
at::Tensor sweep_objects(ThresholdSweep& sweep, const at::Tensor& scaled, const at::Tensor& maps, const at::Tensor& truth,
                         ClassScheme scheme, const ObjectRule& rule) {
  std::vector<double> thresholds = sweep.thresholds;
  const auto own = std::find(thresholds.begin(), thresholds.end(), rule.object_threshold);
  const size_t own_index = static_cast<size_t>(own - thresholds.begin());
  if (own == thresholds.end()) thresholds.push_back(rule.object_threshold);
  const std::vector<at::Tensor> objects = objects_at_thresholds(scaled, maps, scheme, InstanceMethod::kComponents, rule, thresholds);
  for (size_t k = 0; k < sweep.thresholds.size(); ++k) sweep.scores[k].add(object_scores(truth, objects[k]));
  return objects[own_index];
}

}  // namespace

MetricAccumulator accumulate(Predictor& predictor, const std::vector<Sample>& samples, std::vector<double>* object_scales,
                             ThresholdSweep* sweep) {
  const UNetOptions& model = predictor.model_options();
  MetricAccumulator acc(model.classes(), model.scheme());
  if (object_scales) object_scales->assign(samples.size(), 1.0);
  if (sweep) {
    check_threshold_sweep(model, sweep->thresholds);
    sweep->scores.assign(sweep->thresholds.size(), ObjectScores{});
  }
  predictor.run(samples, [&](const PredictedBatch& batch) {
    if (batch.logits.defined()) acc.add_network_output(batch.logits, batch.labels);
    for (size_t i = 0; i < batch.probabilities.size(); ++i) {
      const Sample& sample = samples[batch.first + i];
      ObjectRule rule = predictor.object_rule();  // objects cut at the scale the image was predicted at
      rule.scale = batch.object_scales[i];
      if (object_scales) (*object_scales)[batch.first + i] = rule.scale;
      acc.use_object_rule(rule);
      if (!batch.logits.defined()) acc.add_probabilities(batch.probabilities[i], sample.mask);
      const at::Tensor scaled = i < batch.scaled_probabilities.size() ? batch.scaled_probabilities[i] : at::Tensor();
      at::Tensor found, truth = sample.instances;
      if (sweep) {
        truth = objects_of_truth(sample.mask, sample.instances, model.classes(), model.scheme());
        found = sweep_objects(*sweep, scaled, batch.probabilities[i], truth, model.scheme(), rule);
      } else if (scaled.defined()) {
        found = objects_at_scale(scaled, batch.probabilities[i], model.scheme(), InstanceMethod::kComponents, rule);
      }
      acc.add_original(batch.probabilities[i], sample.mask, truth, found);
    }
  });
  return acc;
}

Metrics evaluate(Predictor& predictor, const std::vector<Sample>& samples, std::vector<double>* object_scales,
                 ThresholdSweep* sweep) {
  return accumulate(predictor, samples, object_scales, sweep).result();
}

}  // namespace unet
