// Training: the optimisation loop with periodic logging, evaluation and atomic checkpoints.
#pragma once

#include "unet/data/dataset.h"
#include "unet/data/loader.h"
#include "unet/dist/dist.h"
#include "unet/eval/metrics.h"
#include "unet/model/geometry.h"
#include "unet/model/loss.h"
#include "unet/model/unet.h"
#include "unet/runtime/context.h"
#include "unet/train/best.h"
#include "unet/train/loss_scaler.h"
#include "unet/train/optimizer.h"
#include "unet/train/options.h"
#include "unet/train/step.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace unet {

class RunLogger;

struct TrainResult {
  int64_t first_step = 0;
  int64_t steps = 0;
  double seconds = 0.0;
  /// Over the steps after the warm-up, evaluations and checkpoints left out, timed to the end of
  /// their device work.
  double images_per_second = 0.0;
  double last_loss = 0.0;
  bool evaluated = false;
  Metrics metrics;
  /// The best evaluation of the run (resumed runs: of all their parts): its step (-1: none) and
  /// score; its checkpoint is in model_dir/best (`BestCheckpoint`).
  int64_t best_step = -1;
  SelectionScore best;
};

/// Creates `options.model_dir` if needed and checks that it is writable and that a fresh run (no
/// resume, no overwrite) would not replace a checkpoint there (the last or the best); throws
/// `unet::Error` otherwise.
void prepare_model_dir(const TrainOptions& options, const RunContext& context = {});

class Trainer {
 public:
  /// Validates the options (throws `OptionError`), builds the model and the Adam optimizer on
  /// `context`'s device; in a data-parallel context, rank 0's initial weights go to every rank.
  Trainer(const UNetOptions& model_options, const TrainOptions& options, const RunContext& context = {});
  ~Trainer();

  /// Trains from step 0, or from model_dir's checkpoint when resuming, up to max_steps; evaluates
  /// on `eval` (when not empty) every `evaluation_interval()` steps and at the end, keeping the
  /// best evaluation's checkpoint in model_dir/best; checkpoints. A stop
  /// request (`install_stop_handlers`) ends the run after the current step with a checkpoint and
  /// `Stopped`; a loss or weights that are no longer finite end it with `unet::Error`, keeping
  /// the last checkpoint.
  TrainResult fit(const std::vector<Sample>& train, const std::vector<Sample>& eval);

  /// One optimisation step on `batch` (moved to the training device); returns the loss terms
  /// (device tensors; with CUDA graphs the same tensors are overwritten by the next step).
  LossTerms step(const Batch& batch);
  /// Whether steps are replayed from a captured CUDA graph (after the warm-up steps).
  bool graph_captured() const { return graphed_ && graphed_->captured(); }

  /// Metrics of the current weights on labelled `samples` (shared out over the ranks).
  Metrics evaluate(const std::vector<Sample>& samples);

  /// Writes the checkpoint of the current state to model_dir (rank 0; nothing without model_dir).
  void save();

  UNet& model() { return model_; }
  const TrainOptions& options() const { return options_; }
  const RunContext& context() const { return context_; }
  const Geometry& geometry() const { return geometry_; }
  /// The training objects' median area, pixels, once `fit` has seen them (0: not instance labels).
  int64_t object_area() const { return object_area_; }
  int64_t global_step() const { return step_; }
  /// The fp16 loss scaler (disabled in other precisions).
  LossScaler& loss_scaler() { return *scaler_; }

 private:
  UNetOptions model_options_;
  TrainOptions options_;
  RunContext context_;
  Geometry geometry_;
  UNet model_{nullptr};
  std::unique_ptr<GraphSafeAdam> optimizer_;
  std::unique_ptr<GradientReducer> reducer_;
  std::unique_ptr<LossScaler> scaler_;
  std::unique_ptr<TrainStep> body_;
  std::unique_ptr<GraphedStep> graphed_;
  std::unique_ptr<BestCheckpoint> best_;
  int64_t step_ = 0;
  /// The step of the last checkpoint written or resumed from (-1: none).
  int64_t saved_step_ = -1;
  /// Side of the training images (recorded in checkpoints: prediction compares against it).
  int64_t image_height_ = 0, image_width_ = 0;
  /// The training objects' median area, pixels (0: the masks are not instance labels).
  int64_t object_area_ = 0;

  /// Rank 0's weights to every rank; other ranks then draw their own dropout masks.
  void synchronise_ranks();
  void setup_graphs();
  void notice(const std::string& text) const;
  /// The parts of `fit`: restore a checkpoint, check that ranks agree, attach weight maps, the
  /// work due after a step, and the end of the run.
  /// Restores model_dir's checkpoint when resuming; returns the line to log ("" when not resuming).
  std::string resume();
  void require_same_ranks(const std::vector<Sample>& train);
  std::shared_ptr<const std::vector<Sample>> training_samples(const std::vector<Sample>& train, RunLogger& log) const;
  struct LoopClock;
  void after_step(const LossTerms& terms, const std::vector<Sample>& eval, RunLogger& log, TrainResult& result,
                  LoopClock& clock);
  /// Reads and logs the losses; returns the stop signal any rank asked for (0: none).
  int log_losses(const LossTerms& terms, RunLogger& log, TrainResult& result, LoopClock& clock);
  /// Saves and throws `Stopped`.
  [[noreturn]] void stop_now(int signal);
  /// Throws `unet::Error`: the loss or the weights stopped being finite; the last checkpoint stays.
  [[noreturn]] void diverged(const std::string& what);
  /// Logs an evaluation of the current weights and keeps their checkpoint when it is the best.
  void evaluated(const Metrics& m, RunLogger& log);
  void finish(TrainResult& result, const std::vector<Sample>& eval, RunLogger& log);
  std::string config_record() const;
};

}  // namespace unet
