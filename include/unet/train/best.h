// The best checkpoint of a run: the evaluation during training that scored highest keeps its
// checkpoint in model_dir/best, beside the last one, so that a run that went on past its best
// model (over-fitting, a learning rate too high late) loses nothing.
#pragma once

#include "unet/eval/metrics.h"

#include <cmath>
#include <cstdint>
#include <string>

namespace unet {

/// The folder of the best checkpoint inside a model directory: `unet predict --model-dir
/// MODEL/best` uses it as any model directory.
constexpr const char* kBestDir = "best";
/// Beside the best checkpoint: its step and score (JSON), read back when a run resumes.
constexpr const char* kBestRecord = "selection.json";

/// `model_dir`/best
std::string best_dir(const std::string& model_dir);

/// What ranks the evaluations of a run: the objects' F1 at IoU 0.5 when the model has objects
/// (two classes, or interior/boundary) and the truth has objects, the mean hard Dice over the
/// classes otherwise; ties (an F1 of 0 early in a run) are broken by the mean Dice. Higher is
/// better; NaN when there is neither.
struct SelectionScore {
  std::string name;
  double value = NAN;
  double mean_dice = NAN;
};
SelectionScore selection_score(const Metrics& m);

/// The best evaluation of a run so far, and its checkpoint on disk.
class BestCheckpoint {
 public:
  /// `model_dir` empty: nothing is kept. `writes`: this process writes the files (rank 0); the
  /// others only follow the scores, so that all ranks agree. A run resumed from the checkpoint of
  /// `resumed_step` continues the record in model_dir/best (unless it names a later step); a fresh
  /// one (`resumed_step` -1) starts afresh, removing an earlier run's best.
  BestCheckpoint(std::string model_dir, bool writes, int64_t resumed_step);

  /// Whether `score` beats the best so far (a NaN score never does).
  bool improves(const SelectionScore& score) const;
  /// Keeps model_dir's checkpoint, written at `step`, as the best: a hard link in model_dir/best
  /// (a copy where the file system has no links), replacing the previous best atomically, and
  /// its record. Throws `unet::Error` naming the file when it cannot be written.
  void keep(int64_t step, const SelectionScore& score);

  /// The best evaluation's step (-1: none yet) and score.
  int64_t step() const { return step_; }
  const SelectionScore& score() const { return score_; }

 private:
  std::string model_dir_;
  bool writes_ = false;
  int64_t step_ = -1;
  SelectionScore score_;
};

}  // namespace unet
