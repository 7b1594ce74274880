// What `train --resume` continues: the checkpoint's network, optimisation and data, not the defaults.
#pragma once

#include "unet/data/source.h"
#include "unet/model/checkpoint.h"
#include "unet/train/options.h"

#include <CLI/CLI.hpp>

namespace unet::cli {

/// Records in `train.data_record` where the data come from and how they are read (directory as an
/// absolute path, or the synthetic options; fold, seed, mask encoding, boundary width, class
/// names), for the checkpoint. A directory whose name is not UTF-8 is not recorded.
void record_data(const DataOptions& data, TrainOptions& train);

/// Where the checkpoint `info` was trained, in words (its absolute data directory, or "the synthetic
/// data"), when that is not what `data` names; "" when it is, or when the checkpoint records none.
std::string other_training_data(const CheckpointInfo& info, const DataOptions& data);

/// The data set `options` names, its masks read as the model of `info` learnt them: an
/// interior/boundary model's truth is instance labels (so read unless told otherwise); other
/// schemes are a clear error. Other masks are recognised as train recognises them.
DataSet model_data(const DataOptions& options, const CheckpointInfo& info);

/// For commands that work on a model's own data (quantize): the data source, fold, seed and
/// reading the checkpoint records, each unless the command line gives it.
void adopt_training_data(const CLI::App& command, const CheckpointInfo& info, const std::string& ckpt, DataOptions& data,
                         bool verbose);

/// The data directory that `info` records (absolute), or "" (synthetic data, or none recorded).
std::string recorded_data_dir(const CheckpointInfo& info);

/// Sets what a resumed run keeps from the checkpoint `info` (read from `ckpt`), each unless
/// `command` was given its flag (a `--no-` form counts):
/// - the architecture, input size and mode: a flag given with another value is an `OptionError`
///   naming both;
/// - the optimisation (batch, rates, steps, schedule, augmentation, border weights): given values win;
/// - the data: the recorded directory or synthetic data set, fold, seed, mask encoding, boundary
///   width and class names (said on stderr when `verbose`); other data named on the command line
///   are used with a note. A checkpoint that records no data asks for them.
void adopt_checkpoint(const CLI::App& command, const CheckpointInfo& info, const std::string& ckpt, DataOptions& data,
                      UNetOptions& model, TrainOptions& train, bool verbose);

}  // namespace unet::cli
