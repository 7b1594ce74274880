// Training: the optimisation loop with periodic logging, evaluation and atomic checkpoints.
#pragma once

#include "unet/augment.h"
#include "unet/checkpoint.h"
#include "unet/dataset.h"
#include "unet/dist.h"
#include "unet/loader.h"
#include "unet/loss.h"
#include "unet/metrics.h"
#include "unet/model.h"
#include "unet/optimizer.h"
#include "unet/precision.h"
#include "unet/step_graph.h"
#include "unet/tiling.h"
#include "unet/weight_map.h"

#include <c10/core/Device.h>
#include <torch/optim/adam.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace unet {

struct TrainOptions {
  /// Images per step and process.
  int64_t batch_size = 8;
  double learning_rate = 1e-4;
  /// L2 penalty 0.5 * weight_decay * |w|^2 on every weight and bias (added to the gradient).
  double weight_decay = 5e-4;
  int64_t max_steps = 6400;
  /// Learning-rate warm-up and decay (constant, the reference's, by default).
  LrSchedule schedule;
  /// Losses are read from the device and logged every `log_every` steps.
  int64_t log_every = 100;
  /// Evaluate on the held-out fold every N steps (0: only at the end).
  int64_t evaluate_every = 0;
  /// Write a checkpoint every N steps (0: only at the end).
  int64_t checkpoint_every = 500;
  /// Steps excluded from the reported throughput.
  int64_t warmup_steps = 10;
  uint64_t seed = 0;
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
  std::string model_dir;
  std::string log_dir;
  c10::Device device{c10::kCPU};
  Precision precision = Precision::kFP32;
  /// The process group of a data-parallel run (null: one process). rank and world_size follow it.
  std::shared_ptr<Distributed> dist;
  int rank = 0;
  int world_size = 1;
  int loader_threads = 2;
  /// Network input side (572 for the reference).
  int64_t input_size = 572;
  /// `resize` (the reference) or `tile` (native-resolution random crops; evaluation by tiles).
  InputMode input_mode = InputMode::kResize;
  /// Channels-last (NHWC) weights and activations: faster convolutions on CPUs and GPUs.
  bool channels_last = true;
  /// On CUDA: capture the whole training step (forward, loss, backward, loss-scale check, Adam)
  /// as a CUDA graph after `graph_warmup` eager steps and replay it (the reference's XLA).
  /// Unavailable in data-parallel runs (eager with a notice).
  bool graphs = false;
  int64_t graph_warmup = 3;
  /// On CUDA: the fused kernels (bias + ReLU after every convolution, the loss in one kernel each
  /// way) instead of the plain LibTorch path.
  bool fused = false;
  bool quiet = false;

  std::string to_json() const;
  /// What must agree across the ranks of a data-parallel run (to_json without per-rank fields).
  std::string fingerprint() const;
  /// The batch loader's options for this run, starting at `start_step`.
  LoaderOptions loader_options(int64_t start_step = 0) const;
};

struct TrainResult {
  int64_t first_step = 0;
  int64_t steps = 0;
  double seconds = 0.0;
  double images_per_second = 0.0;
  double last_loss = 0.0;
  bool evaluated = false;
  Metrics metrics;
};

/// Creates `options.model_dir` if needed and checks that it is writable and that a fresh run (no
/// --resume, no --overwrite) would not replace a checkpoint there; throws `unet::Error` otherwise.
void prepare_model_dir(const TrainOptions& options);

class Trainer {
 public:
  /// Validates the options (throws `unet::Error`), builds the model and the Adam optimizer.
  Trainer(const UNetOptions& model_options, const TrainOptions& options);

  /// Trains from step 0, or from model_dir's checkpoint when resuming, up to max_steps; evaluates
  /// on `eval` (when not empty) every evaluate_every steps and at the end; checkpoints.
  TrainResult fit(const std::vector<Sample>& train, const std::vector<Sample>& eval);

  /// One optimisation step on `batch` (moved to the training device); returns the loss terms
  /// (device tensors; with CUDA graphs the same tensors are overwritten by the next step).
  LossTerms step(const Batch& batch);
  /// Whether steps are replayed from a captured CUDA graph (after the warm-up steps).
  bool graph_captured() const { return graph_captured_; }

  /// Metrics of the current weights on labelled `samples`.
  Metrics evaluate(const std::vector<Sample>& samples);

  /// Writes the checkpoint of the current state to model_dir.
  void save() ;

  UNet& model() { return model_; }
  const TrainOptions& options() const { return options_; }
  const Geometry& geometry() const { return geometry_; }
  int64_t global_step() const { return step_; }
  /// The fp16 loss scaler (disabled in other precisions).
  LossScaler& loss_scaler() { return *scaler_; }

 private:
  UNetOptions model_options_;
  TrainOptions options_;
  Geometry geometry_;
  UNet model_{nullptr};
  std::unique_ptr<GraphSafeAdam> optimizer_;
  std::unique_ptr<GradientReducer> reducer_;
  std::unique_ptr<LossScaler> scaler_;
  int64_t step_ = 0;
  /// Side of the training images (recorded in checkpoints: prediction compares against it).
  int64_t image_height_ = 0, image_width_ = 0;

  bool use_fused_ = false;
  bool use_graphs_ = false;
  bool graph_captured_ = false;
  int64_t eager_before_capture_ = 0;
  std::unique_ptr<StepGraph> graph_;
  at::Tensor static_images_, static_labels_, static_weights_;
  LossTerms graph_terms_;

  /// Rank 0's weights to every rank; other ranks then draw their own dropout masks.
  void synchronise_ranks();
  /// Forward, loss, backward, gradient reduction, loss-scale check and Adam on device tensors
  /// (gradients already cleared): the body that a CUDA graph captures.
  LossTerms run_step(const at::Tensor& images, const at::Tensor& labels, const at::Tensor& weights);
  /// The step through the captured graph (capturing it first); nullopt: take the eager path.
  std::optional<LossTerms> graph_step(const at::Tensor& images, const at::Tensor& labels, const at::Tensor& weights);
  void notice(const std::string& text) const;
};

}  // namespace unet
