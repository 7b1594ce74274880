// The choices a training run makes when the user did not: a preset sized for the device, and the
// masks' encoding recognised from the data (instance labels train the measured best target).
// The reference's network on 2 CPU cores takes 45 s to its first step and writes a 414 MB
// checkpoint; the small preset is the demo's recipe, measured in docs/results.md#touching-nuclei.
#include "choices.h"

#include "flags.h"

#include "unet/data/mask_survey.h"

#include <cstdio>
#include <string>
#include <functional>

namespace unet::cli {
namespace {

/// One field of the small preset: the flag that overrides it, and how it is set.
struct PresetRow {
  const char* flag;
  std::function<void(UNetOptions&, TrainOptions&)> set;
};

/// The small preset, the one table of its values: the demo's network and rate (tools/cmd_demo.cpp)
/// with the touching-nuclei measurement's schedule (1,500 steps of batch 4; measured in
/// docs/results.md#the-small-preset). Tiles keep native resolution: 220 -> 132 pixel windows of
/// images of any size, where resizing whole images to 132 pixels would blur thin boundaries.
const std::vector<PresetRow>& small_rows() {
  static const std::vector<PresetRow> rows = {
      {"--depth", [](UNetOptions& m, TrainOptions&) { m.depth(3); }},
      {"--filters", [](UNetOptions& m, TrainOptions&) { m.filters(16); }},
      {"--input-size", [](UNetOptions&, TrainOptions& t) { t.input_size = 220; }},
      {"--input-mode", [](UNetOptions&, TrainOptions& t) { t.input_mode = InputMode::kTile; }},
      {"--batch-size", [](UNetOptions&, TrainOptions& t) { t.batch_size = 4; }},
      {"--learning-rate", [](UNetOptions&, TrainOptions& t) { t.learning_rate = 1e-3; }},
      {"--max-steps", [](UNetOptions&, TrainOptions& t) { t.max_steps = 1500; }},
  };
  return rows;
}

std::string sizes(const UNetOptions& model, const TrainOptions& train) {
  char text[200];
  std::snprintf(text, sizeof text, "depth %lld, filters %lld, input %lld (%s), batch %lld, learning rate %g, %lld steps",
                static_cast<long long>(model.depth()), static_cast<long long>(model.filters()),
                static_cast<long long>(train.input_size), to_string(train.input_mode).c_str(),
                static_cast<long long>(train.batch_size), train.learning_rate, static_cast<long long>(train.max_steps));
  return text;
}

/// The sizes a preset gives, from the option structures' defaults (and the small rows).
std::string preset_sizes(bool small) {
  UNetOptions model;
  TrainOptions train;
  if (small)
    for (const auto& row : small_rows()) row.set(model, train);
  return sizes(model, train);
}

}  // namespace

const EnumNames<Preset>& preset_names() {
  static const EnumNames<Preset> names = {
      {"auto", Preset::kAuto}, {"reference", Preset::kReference}, {"small", Preset::kSmall}};
  return names;
}

void add_preset_option(CLI::App& app, Preset& preset) {
  add_choice(app, "--preset", "preset", preset, preset_names(),
             "Network and schedule: reference (" + preset_sizes(false) + ": sized for a GPU), small (" + preset_sizes(true) +
                 ": minutes on a CPU), or auto (reference on CUDA devices, small elsewhere); options given explicitly "
                 "override it");
  // The defaults that help shows are the reference's: say that the preset sets them.
  for (const auto& row : small_rows()) {
    if (CLI::Option* option = app.get_option_no_throw(row.flag))
      option->description(option->get_description() + " (default: the --preset's; shown: reference)");
  }
}

void small_preset(UNetOptions& model, TrainOptions& train) {
  for (const auto& row : small_rows()) row.set(model, train);
}

std::string apply_preset(const CLI::App& command, Preset preset, const c10::Device& device, UNetOptions& model,
                         TrainOptions& train) {
  const bool chosen = preset == Preset::kAuto;
  if (chosen) preset = device.is_cuda() ? Preset::kReference : Preset::kSmall;
  if (preset == Preset::kSmall) {
    for (const auto& row : small_rows()) {
      if (command.count(row.flag) > 0) continue;  // given explicitly: the user's value wins
      row.set(model, train);
    }
  }
  const std::string why = chosen ? std::string(" (auto on ") + (device.is_cuda() ? "a CUDA device" : "a CPU") + ")" : "";
  if (preset == Preset::kSmall)
    return "preset small" + why + ": " + sizes(model, train) + "; --preset reference trains the reference's network (GPU-sized)";
  return "preset reference" + why + ": " + sizes(model, train) + "; --preset small trains a network sized for CPUs";
}

std::string recognise_masks(DataOptions& data, UNetOptions& model, bool classes_open) {
  std::string evidence;  // set when the encoding was recognised here
  if (!data.dir.empty() && data.mask_encoding == MaskEncoding::kAuto) {
    const MaskSurvey survey = survey_masks(data.dir, model.classes());
    data.mask_encoding = survey.encoding;
    evidence = survey.evidence;
  }
  const bool instances = data.dir.empty() ? data.use_synthetic && data.synthetic.kind == SyntheticKind::kNuclei
                                          : data.mask_encoding == MaskEncoding::kInstances;
  const bool other_targets = data.instance_scheme == ClassScheme::kDistance || data.instance_scheme == ClassScheme::kDirections;
  const std::string scheme = to_string(data.instance_scheme);
  if (!instances && other_targets)
    throw OptionError("instance_scheme", data.dir.empty()
                                             ? " " + scheme + " needs instance masks: the synthetic EM slices have none "
                                                              "(the synthetic nuclei do)"
                                             : " " + scheme + " needs instance masks (each object its own value): the masks of " +
                                                   data.dir + " are not; pass {mask_encoding} instances if they are");
  if (instances && other_targets && !classes_open) require_instance_targets(model.classes(), data.instance_targets());
  if (!instances || (evidence.empty() && !classes_open)) return "";  // nothing recognised, nothing chosen
  const std::string what = data.dir.empty() ? "the synthetic nuclei are instance labels"
                                            : "the masks of " + data.dir + " are instance labels (" +
                                                  (evidence.empty() ? "as given" : evidence) + ")";
  if (data.instance_scheme == ClassScheme::kDirections) {
    if (classes_open) model.classes(kDirectionClasses);
    return what + ": training " + std::to_string(model.classes()) + " classes, background, each object's centre and the " +
           std::to_string(kDirections) + " directions to it (each pixel's way is followed to its centre)";
  }
  if (data.instance_scheme == ClassScheme::kDistance) {
    if (classes_open) model.classes(kDistanceClasses);
    return what + ": training " + std::to_string(model.classes()) + " classes, background and " +
           std::to_string(model.classes() - 1) + " bins of the distance to each object's edge (objects grow from their centres)";
  }
  if (classes_open) model.classes(3);
  if (model.classes() == 3)
    return what + ": training 3 classes, background/interior/boundary, the best target for touching objects; --classes 2 "
                  "trains objects parted by background, --mask-encoding index reads the values as classes";
  return what + ": training " + std::to_string(model.classes()) +
         " classes, objects parted by background; --classes 3 (background/interior/boundary) separates touching objects "
         "better";
}

}  // namespace unet::cli
