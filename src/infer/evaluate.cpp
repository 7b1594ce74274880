// Evaluation of a predictor: network-size terms per batch, original-size terms per image.
#include "unet/infer/evaluate.h"

#include "unet/eval/instances.h"

namespace unet {

MetricAccumulator accumulate(Predictor& predictor, const std::vector<Sample>& samples, std::vector<double>* object_scales) {
  MetricAccumulator acc(predictor.model_options().classes(), predictor.model_options().scheme());
  if (object_scales) object_scales->assign(samples.size(), 1.0);
  predictor.run(samples, [&](const PredictedBatch& batch) {
    if (batch.logits.defined()) acc.add_network_output(batch.logits, batch.labels);
    for (size_t i = 0; i < batch.probabilities.size(); ++i) {
      const at::Tensor& mask = samples[batch.first + i].mask;
      ObjectRule rule = predictor.object_rule();  // objects cut at the scale the image was predicted at
      rule.scale = batch.object_scales[i];
      if (object_scales) (*object_scales)[batch.first + i] = rule.scale;
      acc.use_object_rule(rule);
      if (!batch.logits.defined()) acc.add_probabilities(batch.probabilities[i], mask);
      at::Tensor found;
      if (i < batch.scaled_probabilities.size() && batch.scaled_probabilities[i].defined())
        found = objects_at_scale(batch.scaled_probabilities[i], batch.probabilities[i], predictor.model_options().scheme(),
                                 InstanceMethod::kComponents, rule);
      acc.add_original(batch.probabilities[i], mask, samples[batch.first + i].instances, found);
    }
  });
  return acc;
}

Metrics evaluate(Predictor& predictor, const std::vector<Sample>& samples, std::vector<double>* object_scales) {
  return accumulate(predictor, samples, object_scales).result();
}

}  // namespace unet
