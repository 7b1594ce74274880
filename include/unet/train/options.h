// What a training run does: the optimisation, its schedule and data, and what it writes where.
#pragma once

#include "unet/data/augment.h"
#include "unet/data/loader.h"
#include "unet/data/weight_map.h"
#include "unet/model/conv_plan.h"
#include "unet/model/geometry.h"
#include "unet/model/unet.h"
#include "unet/model/scheme.h"
#include "unet/runtime/context.h"
#include "unet/train/optimizer.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace unet {

/// The files of a training run in its log folder: the JSON-lines log and the learning-curve plot.
constexpr const char* kLogFile = "log.jsonl";
constexpr const char* kPlotFile = "training_curves.png";

/// A logged training step, for an embedding program's progress display (`TrainOptions::on_log`).
struct TrainProgress {
  int64_t step = 0;
  int64_t max_steps = 0;
  /// Cross-entropy plus Dice loss of the step.
  double loss = 0.0;
  /// Over the steps since the last logged one.
  double images_per_second = 0.0;
};

/// The training options, with the reference's defaults (batch 8, Adam 1e-4, L2 5e-4, 6,400
/// steps). Where and in which precision the run happens is the `RunContext`'s.
struct TrainOptions {
  /// Images per step and process.
  int64_t batch_size = kDefaultBatchSize;
  double learning_rate = 1e-4;
  /// L2 penalty 0.5 * weight_decay * |w|^2 on every weight and bias (added to the gradient).
  double weight_decay = 5e-4;
  int64_t max_steps = 6400;
  /// Learning-rate warm-up and decay (constant, the reference's, by default).
  LrSchedule schedule;
  /// Losses are read from the device and logged every `log_every` steps.
  int64_t log_every = 100;
  /// Evaluate on the held-out fold every N steps (0: only at the end; `kEvaluateAuto`: about ten
  /// times per run, see `evaluation_interval`). Each evaluation can become the best checkpoint.
  static constexpr int64_t kEvaluateAuto = -1;
  int64_t evaluate_every = kEvaluateAuto;
  /// Write a checkpoint every N steps (0: only at the end).
  int64_t checkpoint_every = 500;
  /// Steps left out of the reported throughput (start-up, cuDNN autotuning, graph capture).
  int64_t warmup_steps = 200;
  uint64_t seed = kDefaultSeed;
  /// Flips, crop-and-resize, brightness and elastic warps (`augment_options`).
  bool augment = false;
  AugmentOptions augment_options;
  /// The U-Net paper's weighted cross-entropy: a weight map per training label (class balance
  /// plus w0 * exp(-(d1 + d2)^2 / 2 sigma^2) between cells), computed once when training starts.
  bool border_weights = false;
  WeightMapOptions weight_map;
  /// Continue from model_dir's checkpoint (step, weights, optimizer and RNG state).
  bool resume = false;
  /// Allow starting a fresh run in a model_dir that already holds a checkpoint (replacing it).
  bool overwrite = false;
  /// Where the checkpoint goes (empty: nowhere) and the logs (empty: none).
  std::string model_dir;
  std::string log_dir;
  /// Where the training data comes from, as a JSON object text recorded in the checkpoint for
  /// `train --resume` (`CheckpointInfo::data_record`; "" records nothing).
  std::string data_record;
  /// The training data's class names and headline (`DataSet::naming`), recorded in the checkpoint
  /// and naming the evaluation records (empty: the checkpoint records none).
  ClassNaming class_naming;
  /// Network input side (the reference's by default).
  int64_t input_size = kReferenceInputSize;
  /// `resize` (the reference) or `tile` (native-resolution random crops; evaluation by tiles).
  InputMode input_mode = InputMode::kResize;
  /// Instance data: each labelled image (and its labels) is rescaled so that its median object is
  /// this many pixels across before training (`rescale_to_object_diameter`), and the checkpoint
  /// records it for prediction (`CheckpointInfo::object_diameter`); 0: the images' own sizes.
  /// Needs tile mode.
  double object_diameter = 0.0;
  /// How each image's intensities are normalised (the reference's range by default); recorded in
  /// the checkpoint, so that prediction and every export repeat it.
  Normalisation normalisation;
  /// Channels-last tensors, CUDA graphs, fused kernels, the CPU engine (prediction shares them).
  /// With graphs, the whole training step (forward, loss, backward, loss-scale check, Adam) is
  /// captured after `graph_warmup` eager steps and replayed; unavailable in data-parallel runs
  /// (eager with a notice).
  ExecOptions exec;
  int64_t graph_warmup = 3;

  /// Called on rank 0 with every logged step (every `log_every` steps and the last), after the log
  /// line; none by default. What it throws ends the run unsaved: to stop cleanly, `request_stop`.
  std::function<void(const TrainProgress&)> on_log;

  /// Throws `OptionError` naming the first field that is out of range.
  void validate() const;
  /// Steps between evaluations during training (0: only at the end): `evaluate_every`, or for
  /// `kEvaluateAuto` a tenth of `max_steps` but at least 50 steps (a small budget: at most ten
  /// evaluations of the held-out images per run).
  int64_t evaluation_interval() const;
  /// The batch loader's options for this run on `context` for a model whose classes stand for
  /// `scheme`, starting at `start_step`.
  LoaderOptions loader_options(const RunContext& context, ClassScheme scheme, int64_t start_step = 0) const;
  /// The files this run appends to or replaces besides its checkpoint: log_dir's kLogFile and
  /// kPlotFile (log_dir empty: model_dir's). The TensorBoard event file is new in every run.
  std::vector<std::string> log_outputs() const;
};

}  // namespace unet
