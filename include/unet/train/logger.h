// Run logging: a progress bar on terminals, plain lines otherwise, and JSON lines in --log-dir.
#pragma once

#include "unet/eval/metrics.h"
#include "unet/model/scheme.h"
#include "unet/runtime/files.h"
#include "unet/runtime/timing.h"
#include "unet/train/tensorboard.h"

#include <chrono>
#include <cstdint>
#include <fstream>
#include <memory>
#include <string>

namespace unet {

/// Seconds left to reach step `total`, at the pace of the steps done since this process started at
/// `first_step` (a resumed run's earlier steps took no time here): `elapsed` / (`step` -
/// `first_step`) per step; 0 before the first step of the run and after the last.
double eta_seconds(double elapsed, int64_t step, int64_t first_step, int64_t total);

class RunLogger {
 public:
  /// `log_dir` empty: no files; otherwise `log_dir`/log.jsonl is appended to (a resumed run
  /// continues the same file) and the scalars go to a TensorBoard event file there too. Records
  /// are written whole or not at all; a failed write (a full disk) throws `unet::Error`.
  /// `enabled` false silences everything (ranks other than 0). `naming` (the model's class names
  /// and headline) names the evaluation records' headline scores.
  RunLogger(const std::string& log_dir, bool enabled, int64_t total_steps, bool quiet, ClassNaming naming = {});
  ~RunLogger();

  /// A logged training step: losses (fp32 values read from the device only now), throughput.
  /// `learning_rate` is the rate of the latest update; `loss_scale` 0: no loss scaling (its
  /// fields are then left out).
  void train_step(int64_t step, double cross_entropy, double dice_loss, double images_per_second,
                  double learning_rate, double loss_scale = 0.0, int64_t skipped_steps = 0);
  /// An evaluation: a log.jsonl "eval" record with the metrics, `class_dice` (label order) and,
  /// when the naming has a headline class, `headline_dice`, `headline_iou` and `headline_class`
  /// (its name); TensorBoard scalars eval/<class name>_dice for each class.
  void evaluation(int64_t step, const Metrics& metrics);
  /// A free-form record, e.g. {"type": "summary", ...}; `json` must be an object text.
  void record(const std::string& json);
  /// A line for the user, printed above the progress bar.
  void message(const std::string& text);
  /// The run continues a checkpoint saved at `step`: the time left is estimated from the steps
  /// of this run only (`eta_seconds`).
  void resumed_at(int64_t step) { first_step_ = step; }

 private:
  void clear_bar();
  bool enabled_;
  bool quiet_;
  bool tty_;
  bool bar_shown_ = false;
  int64_t total_steps_;
  int64_t first_step_ = 0;
  ClassNaming naming_;
  std::unique_ptr<AppendFile> jsonl_;
  std::unique_ptr<EventWriter> events_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace unet
