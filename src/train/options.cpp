// Range checks of the training options and the loader options they imply.
#include "unet/train/options.h"

#include "unet/data/object_scale.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

namespace unet {

void TrainOptions::validate() const {
  require_option(batch_size >= 1 && batch_size <= 65536, "batch_size", batch_size < 1 ? "must be at least 1" : "must be at most 65536", batch_size);
  require_option(input_size >= 1 && input_size <= 65536, "input_size", "must be between 1 and 65536", input_size);
  require_option(learning_rate > 0.0 && std::isfinite(learning_rate), "learning_rate", "must be positive and finite", learning_rate);
  require_option(weight_decay >= 0.0 && std::isfinite(weight_decay), "weight_decay", "must not be negative", weight_decay);
  require_option(max_steps >= 0, "max_steps", "must not be negative", max_steps);
  require_option(log_every >= 1, "log_every", "must be at least 1", log_every);
  require_option(evaluate_every >= 0 || evaluate_every == kEvaluateAuto, "evaluate_every", "must not be negative", evaluate_every);
  require_option(checkpoint_every >= 0, "checkpoint_every", "must not be negative", checkpoint_every);
  require_option(warmup_steps >= 0, "warmup_steps", "must not be negative", warmup_steps);
  require_option(input_mode != InputMode::kAuto, "input_mode", "must be resize or tile for training", to_string(input_mode));
  require_option(object_diameter == 0 || (object_diameter >= kMinObjectDiameter && object_diameter <= kMaxObjectDiameter),
                 "object_diameter", "must be 0 (none) or between " + std::to_string(static_cast<int>(kMinObjectDiameter)) +
                     " and " + std::to_string(static_cast<int>(kMaxObjectDiameter)) + " pixels", object_diameter);
  if (object_diameter > 0 && input_mode != InputMode::kTile)
    throw OptionError("object_diameter", " keeps the rescaled objects' size for the network, but {input_mode} resize "
                                         "shrinks each whole image to the network input: add {input_mode} tile");
  require_option(graph_warmup >= 1, "graph_warmup", "must be at least 1", graph_warmup);
  schedule.validate();
  normalisation.validate();
  if (border_weights) weight_map.validate();
  if (!weight_map.class_balance && !border_weights)
    throw OptionError("weight_map.class_balance", " is part of the border weights: add {border_weights} (or leave out {weight_map.class_balance})");
  if (augment_options.color && !augment)
    throw OptionError("augment_options.color", " is jitter within the augmentation: add {augment} (or leave out {augment_options.color})");
}

int64_t TrainOptions::evaluation_interval() const {
  if (evaluate_every != kEvaluateAuto) return evaluate_every;
  constexpr int64_t kEvaluations = 10, kFewestSteps = 50;
  return std::max(kFewestSteps, (max_steps + kEvaluations - 1) / kEvaluations);
}

LoaderOptions TrainOptions::loader_options(const RunContext& context, ClassScheme scheme, int64_t start_step) const {
  LoaderOptions l;
  l.scheme = scheme;
  l.batch_size = batch_size;
  l.seed = seed;
  if (augment) {
    l.augment = augment_options;
    l.augment->normalisation = normalisation;
  }
  l.threads = context.loader_threads;
  l.pin_memory = context.device.is_cuda();
  l.start_step = start_step;
  l.rank = context.rank();
  l.world_size = context.world_size();
  return l;
}

std::vector<std::string> TrainOptions::log_outputs() const {
  const std::filesystem::path dir(log_dir.empty() ? model_dir : log_dir);
  if (dir.empty()) return {};
  return {(dir / kLogFile).string(), (dir / kPlotFile).string()};
}

}  // namespace unet
