// What a training run chooses when the user did not say: the network's size for the device (a
// preset) and how the data's masks are read (binary, class indices or instance labels, and for
// instance labels the measured best target). Each choice is said on stderr with how to choose otherwise.
#pragma once

#include "unet/data/source.h"
#include "unet/model/unet.h"
#include "unet/runtime/error.h"
#include "unet/train/options.h"

#include <CLI/CLI.hpp>
#include <c10/core/Device.h>

#include <string>

namespace unet::cli {

/// Sizes of a training run: `kReference` the reference's (the option structures' defaults: depth 4,
/// filters 64, input 572, batch 8, 6,400 steps), `kSmall` a network that trains in minutes on a
/// few CPU cores, `kAuto` reference on CUDA devices and small elsewhere.
enum class Preset { kAuto, kReference, kSmall };
/// "auto", "reference", "small".
const EnumNames<Preset>& preset_names();

/// --preset auto|reference|small.
void add_preset_option(CLI::App& app, Preset& preset);

/// Sets every field of the small preset (the demo's network: depth 3, filters 16, input 220 in
/// native-resolution tiles, batch 4, learning rate 1e-3; 1,500 steps).
void small_preset(UNetOptions& model, TrainOptions& train);

/// Applies `preset` (`kAuto` resolved for `device`) to the fields of `model` and `train` whose flags
/// `command` was not given. Returns the line that says which preset was used, the resulting sizes
/// and how to get the other (printed once the data have loaded: a failing run says one line).
std::string apply_preset(const CLI::App& command, Preset preset, const c10::Device& device, UNetOptions& model,
                         TrainOptions& train);

/// Resolves `data.mask_encoding` `kAuto` for a data directory by surveying its masks with
/// `model`'s classes (`survey_masks`). Instance labels, of a directory or the synthetic nuclei, get
/// 3 classes (background/interior/boundary), `kDistanceClasses` with distance targets or
/// `kDirectionClasses` with direction targets, when
/// `classes_open` (no --classes or --class-names given, no checkpoint to follow). Throws
/// `OptionError` for distance or direction targets without instance labels. Returns the line that says what was
/// recognised, the classes trained and how to choose otherwise ("" when nothing was recognised or chosen).
std::string recognise_masks(DataOptions& data, UNetOptions& model, bool classes_open);

}  // namespace unet::cli
