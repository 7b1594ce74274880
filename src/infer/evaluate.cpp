// Evaluation of a predictor: network-size terms per batch, original-size terms per image.
#include "unet/infer/evaluate.h"

#include "unet/eval/instances.h"
#include "unet/runtime/error.h"
#include "unet/runtime/text.h"

#include <algorithm>

namespace unet {

size_t ObjectSweep::best() const {
  size_t best = 0;
  for (size_t k = 1; k < scores.size(); ++k)
    if (scores[k].mean_average_precision() > scores[best].mean_average_precision()) best = k;
  return best;
}

void check_object_sweep(const UNetOptions& model, const std::vector<double>& thresholds, const std::vector<double>& levels) {
  check_object_values(model.classes(), model.scheme(), !thresholds.empty(), !levels.empty(), "object_thresholds",
                      "min_object_probabilities");
  for (double t : thresholds)
    if (!legal_object_threshold(t)) throw OptionError("object_thresholds", ": " + number_text(t) + " is not above 0 and below 1");
  for (double p : levels)
    if (!legal_min_object_probability(p))
      throw OptionError("min_object_probabilities", ": " + number_text(p) + " is not at least 0 and below 1");
}

namespace {

/// The index of `value` in `values`, appended where it is not there.
size_t index_in(std::vector<double>& values, double value) {
  const auto at = static_cast<size_t>(std::find(values.begin(), values.end(), value) - values.begin());
  if (at == values.size()) values.push_back(value);
  return at;
}

/// A sweep's objects of one image whose true objects are `truth`: each pair's scored into
/// `sweep`; returns the objects at the predictor's own threshold and level (`rule`'s), cut in
/// the same pass, for the other metrics.
at::Tensor sweep_objects(ObjectSweep& sweep, const at::Tensor& scaled, const at::Tensor& maps, const at::Tensor& truth,
                         ClassScheme scheme, const ObjectRule& rule) {
  std::vector<double> thresholds = sweep.thresholds, levels = sweep.levels;
  const size_t own_threshold = index_in(thresholds, rule.object_threshold), own_level = index_in(levels, rule.min_probability);
  const std::vector<at::Tensor> objects =
      objects_at_thresholds(scaled, maps, scheme, InstanceMethod::kComponents, rule, thresholds, levels);
  for (size_t t = 0; t < sweep.thresholds.size(); ++t)
    for (size_t l = 0; l < sweep.levels.size(); ++l)
      sweep.scores[t * sweep.levels.size() + l].add(object_scores(truth, objects[t * levels.size() + l]));
  return objects[own_threshold * levels.size() + own_level];
}

}  // namespace

MetricAccumulator accumulate(Predictor& predictor, const std::vector<Sample>& samples, std::vector<double>* object_scales,
                             ObjectSweep* sweep) {
  const UNetOptions& model = predictor.model_options();
  MetricAccumulator acc(model.classes(), model.scheme());
  if (object_scales) object_scales->assign(samples.size(), 1.0);
  if (sweep) {
    check_object_sweep(model, sweep->thresholds, sweep->levels);
    if (sweep->thresholds.empty()) sweep->thresholds = {predictor.object_rule().object_threshold};
    if (sweep->levels.empty()) sweep->levels = {predictor.object_rule().min_probability};
    sweep->scores.assign(sweep->thresholds.size() * sweep->levels.size(), ObjectScores{});
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
                 ObjectSweep* sweep) {
  return accumulate(predictor, samples, object_scales, sweep).result();
}

}  // namespace unet
