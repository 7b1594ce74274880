// Checkpoints: model, optimizer state, step, RNG state and configuration, written atomically.
#pragma once

#include "unet/model/geometry.h"
#include "unet/model/unet.h"

#include <torch/optim/optimizer.h>

#include <cstdint>
#include <string>

namespace unet {

/// File name of the checkpoint inside a model directory.
constexpr const char* kCheckpointFile = "checkpoint.pt";

/// `model_dir`/checkpoint.pt
std::string checkpoint_path(const std::string& model_dir);

/// What a checkpoint says about itself (read without loading the weights).
struct CheckpointInfo {
  UNetOptions model;
  /// Network input side the model was trained with (its geometry for evaluation and prediction).
  int64_t input_size = 0;
  /// Optimisation steps completed.
  int64_t step = 0;
  /// How the training images met the network (resize or tile).
  InputMode input_mode = InputMode::kResize;
  /// Side of the training images, pixels (0: not recorded): prediction predicts images of another
  /// size by tiles.
  int64_t image_height = 0, image_width = 0;
  /// The training options as a JSON object text: a record of the run, for people and tools (unet
  /// reads the typed fields above, not this).
  std::string training_record = "{}";
  /// The classes' names and headline, from the training data (not secret: exports carry them).
  /// Checkpoints that recorded none get `recorded_naming`'s defaults (membrane, cell for two classes):
  /// what unet called their classes when they were written.
  ClassNaming class_naming;
  /// The fp16 loss scaler's state (undefined when not scaling).
  at::Tensor scaler_state;
  /// Where the training data came from and how it was read (a JSON object text: directory or
  /// synthetic options, fold, seed, mask encoding; "" when not recorded, as in checkpoints before
  /// this field), for `train --resume`. Kept apart from `training_record`, which exports embed: a
  /// data path is not for sharing.
  std::string data_record;
  /// How each image's intensities were normalised (`kRange` in checkpoints before this field).
  Normalisation normalisation;
  /// What the model records about its objects: its training objects' median area, pixels (instance
  /// labels; predictions drop objects far smaller, `kSmallObjectFraction`), and the object
  /// threshold and smallest mean object probability chosen for it (`export --format checkpoint
  /// --object-threshold --min-object-probability`); 0: not recorded.
  ObjectRecord objects;
  /// The median object diameter every training image was rescaled to, pixels (`train
  /// --object-diameter`; 0: the images' own sizes): prediction rescales images by it over their
  /// objects' diameter. `objects.median_area` is then in pixels at this size.
  double object_diameter = 0.0;
};

/// `info.training_record` with the typed fields above (input mode, normalisation, object record
/// and diameter, training image size) set as they are in `info`: the record a checkpoint
/// stores, and that exports carry.
std::string training_record_text(const CheckpointInfo& info);

/// Writes a checkpoint atomically (a temporary file renamed onto `path`), so that an interrupted
/// write leaves the previous checkpoint intact. `optimizer` may be null (weights only).
void save_checkpoint(const std::string& path, UNet& model, torch::optim::Optimizer* optimizer,
                     const CheckpointInfo& info);

/// Reads and checks a checkpoint's header; throws `unet::Error` naming the file when it is missing,
/// truncated or not a unet checkpoint.
CheckpointInfo read_checkpoint_info(const std::string& path);

/// Restores weights (into a model of the checkpoint's architecture: throws `unet::Error` when
/// `model`'s differs), the optimizer state when `optimizer` is given, and LibTorch's CPU random
/// generator when `restore_rng` is set.
CheckpointInfo load_checkpoint(const std::string& path, UNet& model, torch::optim::Optimizer* optimizer,
                               bool restore_rng);

/// A model with the checkpoint's architecture and weights.
UNet load_model(const std::string& path, const CheckpointInfo& info);

}  // namespace unet
