// JSON forms of the training part's types (private to the build: nlohmann stays out of public headers).
#pragma once

#include "model/json.h"
#include "unet/runtime/context.h"
#include "unet/train/options.h"

#include <nlohmann/json.hpp>

namespace unet {

/// The record of a run's training options (log.jsonl's "config" record, the checkpoint's
/// training record, cv_results.json), with the context's precision, device and world size and the
/// device paths as they were used (graphs and fused kernels only on CUDA).
inline nlohmann::json training_record(const TrainOptions& t, const RunContext& c) {
  nlohmann::json record = {{"batch_size", t.batch_size},
          {"learning_rate", t.learning_rate},
          {"weight_decay", t.weight_decay},
          {"max_steps", t.max_steps},
          {"seed", t.seed},
          {"augment", t.augment},
          {"elastic", t.augment_options.elastic},
          {"color_augment", t.augment_options.color},
          {"precision", to_string(c.precision)},
          {"input_mode", to_string(t.input_mode)},
          {"normalisation", t.normalisation},
          {"input_size", t.input_size},
          {"world_size", c.world_size()},
          {"device", c.device.str()},
          {"channels_last", t.exec.channels_last},
          {"lr_schedule", t.schedule.to_string()},
          {"fused", t.exec.fused && c.device.is_cuda()},
          {"cpu_engine", t.exec.cpu_engine && c.device.is_cpu()},
          {"conv_algorithm", t.exec.cpu_engine && c.device.is_cpu() ? name_of(conv_algorithm_names(), t.exec.conv_algorithm) : "none"},
          {"border_weights", t.border_weights},
          {"border_w0", t.weight_map.w0},
          {"border_sigma", t.weight_map.sigma},
          {"border_class_balance", t.weight_map.class_balance},
          {"graphs", t.exec.graphs && c.device.is_cuda()},
          {"lr_warmup_steps", t.schedule.warmup_steps},
          {"final_lr_factor", t.schedule.final_factor}};
  // Rescaled to an object size: the run's scores are at that size (each image's own labels').
  if (t.object_diameter > 0) record["object_diameter"] = t.object_diameter;
  return record;
}

}  // namespace unet
