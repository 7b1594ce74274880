// Models shipped with unet (models/, listed in models/models.json), chosen by name with --model:
// a user predicts on their own nuclei without training. Their cards are in docs/models.md.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace unet::cli {

/// One shipped model, as models/models.json lists it.
struct PretrainedModel {
  std::string name;
  /// Its checkpoint, relative to `models_dir()`.
  std::string file;
  /// The file's size in bytes and its CRC-32C, checked before each use.
  uint64_t bytes = 0;
  uint32_t crc32c = 0;
  /// One line about what it segments.
  std::string summary;
};

/// Where the shipped models are: $UNET_MODELS_DIR, else this source tree's models/ (compiled in).
std::string models_dir();

/// The shipped models (models.json). Throws `unet::Error` naming the file when it is missing or
/// malformed.
std::vector<PretrainedModel> pretrained_models();

/// The folder that holds shipped model `name`'s checkpoint.pt, its file checked against
/// models.json (size and CRC-32C). Throws `OptionError` ("model") naming the shipped models for
/// another name, `unet::Error` naming the file when it is missing or differs.
std::string pretrained_model_dir(const std::string& name);

/// The model `given` to an option (`field`, e.g. "ensemble") that takes model folders, checkpoint
/// files or shipped names: as given when it is a file or a folder holding checkpoint.pt (so a
/// user's own model wins, while a folder that `--model NAME` wrote its outputs to does not hide
/// that model), else shipped model `given`'s checked folder. Throws `OptionError` naming the
/// shipped models when it is neither (with the list's own problem when models.json is unreadable),
/// `unet::Error` naming the file when the shipped file is missing or differs.
std::string model_folder_or_name(const std::string& given, const std::string& field);

/// Adds `--model NAME` to `cmd` (excluding --model-dir): `model_dir` becomes the shipped model's
/// folder, and `outputs` (what would go into --model-dir), unless given, ./NAME, so that the
/// shipped folder stays as shipped; `name` (optional) the name given.
void add_model_option(CLI::App& cmd, std::string& model_dir, std::string& outputs, std::string* name = nullptr);

}  // namespace unet::cli
