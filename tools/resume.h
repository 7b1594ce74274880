// What `train --resume` continues: the checkpoint's network, input and data, not the defaults.
#pragma once

#include "unet/data/source.h"
#include "unet/model/checkpoint.h"
#include "unet/train/options.h"

#include <CLI/CLI.hpp>

namespace unet::cli {

/// Sets what a resumed run must keep from the checkpoint `info` (read from `ckpt`): the
/// architecture, the input size and mode, and the mask encoding of interior/boundary models take
/// the checkpoint's values unless `command` was given their flags; a flag given with another value
/// is an `OptionError` naming both. The optimisation (batch, rates, steps, augmentation, border
/// weights) takes the checkpoint's training record unless given (given values win). Without a data option, the data directory the checkpoint
/// records is used (and said on stderr); a checkpoint that records none asks for one.
void adopt_checkpoint(const CLI::App& command, const CheckpointInfo& info, const std::string& ckpt, DataOptions& data,
                      UNetOptions& model, TrainOptions& train, bool verbose);

}  // namespace unet::cli
