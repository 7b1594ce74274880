// `unet cross-validate`: train and evaluate every fold; per-fold and mean +- std metrics.
#include "choices.h"
#include "embed.h"
#include "options.h"
#include "resume.h"
#include "runtime/json.h"

#include "eval/json.h"
#include "model/json.h"
#include "train/json.h"
#include "unet/model/checkpoint.h"
#include "unet/dist/dist.h"
#include "unet/runtime/files.h"
#include "unet/runtime/signals.h"
#include "unet/train/logger.h"
#include "unet/train/trainer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <sstream>

namespace unet::cli {
namespace {

std::pair<double, double> mean_std(const std::vector<double>& v) {
  double mean = 0.0, var = 0.0;
  for (const double x : v) mean += x;
  mean /= static_cast<double>(v.size());
  for (const double x : v) var += (x - mean) * (x - mean);
  // Sample standard deviation (n - 1), as usually reported for k-fold results.
  return {mean, v.size() > 1 ? std::sqrt(var / static_cast<double>(v.size() - 1)) : 0.0};
}

/// "all" or a comma-separated list of distinct folds ("0,2"); throws `OptionError` otherwise.
std::vector<int> parse_folds(const std::string& text) {
  std::vector<int> folds;
  if (text == "all") {
    for (int f = 0; f < fold_count(); ++f) folds.push_back(f);
    return folds;
  }
  std::string item;
  std::stringstream in(text);
  while (std::getline(in, item, ',')) {
    const bool digits = !item.empty() && item.find_first_not_of("0123456789") == std::string::npos;
    const int f = digits && item.size() < 3 ? std::stoi(item) : -1;
    if (f < 0 || f >= fold_count() || std::find(folds.begin(), folds.end(), f) != folds.end())
      throw OptionError("folds", ": expected 'all' or distinct folds 0-" + std::to_string(fold_count() - 1) +
                                     " separated by commas, got '" + text + "'");
    folds.push_back(f);
  }
  if (folds.empty()) throw OptionError("folds", ": no fold given");
  return folds;
}

struct CrossValidateCommand {
  DataOptions data;
  UNetOptions model;
  TrainOptions train;
  RuntimeOptions runtime;
  std::vector<int> folds = parse_folds("all");
  Preset preset = Preset::kAuto;
};

/// One line per fold on stdout, its metrics in cv_results.json.
struct FoldResults {
  /// The classes as the data set names them: the headline class's Dice heads each line (every
  /// class's without a headline class); class 1's objects count ("the" objects for interior/
  /// boundary classes, whose interior and boundary make them).
  FoldResults(const ClassNaming& naming, ClassScheme scheme)
      : naming(naming),
        object_name(scheme != ClassScheme::kPlain ? "the" : naming.name(1)) {}
  ClassNaming naming;
  std::string object_name;
  nlohmann::json folds = nlohmann::json::array();
  std::vector<double> dice, headline_dice, headline_iou, object_f1, error, v_rand, v_info, v_rand_thinned, v_info_thinned;

  /// "foreground Dice 0.8123", or "Dice per class background 0.9, interior 0.7, boundary 0.4".
  std::string class_text(const Metrics& m) const {
    char value[32];
    if (naming.has_headline() && naming.headline < static_cast<int64_t>(m.class_dice.size())) {
      std::snprintf(value, sizeof value, " Dice %.4f", m.class_dice[static_cast<size_t>(naming.headline)]);
      return naming.name(naming.headline) + value;
    }
    std::string text = "Dice per class";
    for (size_t c = 0; c < m.class_dice.size(); ++c) {
      std::snprintf(value, sizeof value, " %.4f", m.class_dice[c]);
      text += (c ? ", " : " ") + naming.name(static_cast<int64_t>(c)) + value;
    }
    return text;
  }

  void add(int fold, const TrainResult& r) {
    const Metrics& m = r.metrics;
    dice.push_back(m.dice_score);
    if (naming.has_headline() && naming.headline < static_cast<int64_t>(m.class_dice.size())) {
      headline_dice.push_back(m.class_dice[static_cast<size_t>(naming.headline)]);
      headline_iou.push_back(m.class_iou[static_cast<size_t>(naming.headline)]);
    }
    if (m.has_objects) object_f1.push_back(m.objects.f1(0));
    error.push_back(m.pixel_error);
    v_rand.push_back(m.v_rand);
    v_info.push_back(m.v_info);
    v_rand_thinned.push_back(m.v_rand_thinned);
    v_info_thinned.push_back(m.v_info_thinned);
    std::printf("fold %d: dice_score %.4f  %s  pixel error %.4f  V_Rand %.4f  V_Info %.4f (challenge, thinned)", fold,
                m.dice_score, class_text(m).c_str(), m.pixel_error, m.v_rand_thinned, m.v_info_thinned);
    if (m.has_objects) std::printf("  object F1 %.4f", m.objects.f1(0));
    std::printf("  (%s)\n", format_duration(r.seconds).c_str());
    std::fflush(stdout);
    nlohmann::json j = m;
    j.update(class_record(m, naming));
    j["fold"] = fold;
    j["seconds"] = r.seconds;
    j["steps"] = r.steps;
    folds.push_back(j);
  }

  /// Prints the mean +- std lines and returns the summary object: "class_names" and, with a
  /// headline class, "headline": {class, index, dice_mean, dice_std, iou_mean, iou_std}.
  nlohmann::json summary() const {
    const auto [dm, ds] = mean_std(dice);
    const auto [em, es] = mean_std(error);
    const auto [rm, rs] = mean_std(v_rand);
    const auto [im, is] = mean_std(v_info);
    const auto [rtm, rts] = mean_std(v_rand_thinned);
    const auto [itm, its] = mean_std(v_info_thinned);
    nlohmann::json out = {{"class_names", naming.names}};
    std::string headline;
    if (!headline_dice.empty()) {
      const auto [hm, hs] = mean_std(headline_dice);
      const auto [um, us] = mean_std(headline_iou);
      char text[96];
      std::snprintf(text, sizeof text, " Dice %.4f +- %.4f", hm, hs);
      headline = "  " + naming.name(naming.headline) + text;
      out["headline"] = {{"class", naming.name(naming.headline)}, {"index", naming.headline}, {"dice_mean", hm},
                         {"dice_std", hs}, {"iou_mean", um}, {"iou_std", us}};
    }
    std::printf("mean +- std over %zu folds: dice_score %.4f +- %.4f%s  pixel error %.4f +- %.4f\n", dice.size(), dm, ds,
                headline.c_str(), em, es);
    std::printf("                            V_Rand %.4f +- %.4f  V_Info %.4f +- %.4f (challenge, thinned)\n", rtm, rts, itm, its);
    std::printf("                            V_Rand %.4f +- %.4f  V_Info %.4f +- %.4f (unthinned, threshold 0.5)\n", rm, rs, im, is);
    if (!object_f1.empty()) {
      const auto [fm, fs] = mean_std(object_f1);
      std::printf("                            %s objects: F1 at IoU 0.5 %.4f +- %.4f\n", object_name.c_str(), fm, fs);
      out["object_f1_50_mean"] = fm;
      out["object_f1_50_std"] = fs;
    }
    out.update(nlohmann::json{{"folds", folds},          {"dice_score_mean", dm},    {"dice_score_std", ds},
            {"pixel_error_mean", em},   {"pixel_error_std", es}, {"v_rand_mean", rm},
            {"v_rand_std", rs},        {"v_info_mean", im},        {"v_info_std", is},
            {"v_rand_thinned_mean", rtm}, {"v_rand_thinned_std", rts}, {"v_info_thinned_mean", itm},
            {"v_info_thinned_std", its}});
    return out;
  }
};

void run_cross_validate(CrossValidateCommand& o, const CLI::App& command) {
  RunContext context = make_run_context(o.runtime);
  // As train: the preset's sizes where no option was given, the masks read as recognised (the
  // folds' checkpoints record the result, so that --resume reads the data the same way).
  // A resumed cross-validation goes on with its folds' network, optimisation and data, as train --resume.
  std::string resumed_from;
  for (int fold : o.folds) {
    const std::string ckpt = checkpoint_path((std::filesystem::path(o.train.model_dir) / ("fold-" + std::to_string(fold))).string());
    if (o.train.resume && resumed_from.empty() && std::filesystem::exists(ckpt)) resumed_from = ckpt;
  }
  std::string preset;
  if (!resumed_from.empty()) {
    adopt_checkpoint(command, read_checkpoint_info(resumed_from), resumed_from, o.data, o.model, o.train, context.verbose());
  } else {
    preset = apply_preset(command, o.preset, context.device, o.model, o.train);
  }
  o.model.validate();
  o.train.validate();
  announce_reading(o.data, "unet cross-validate", context.verbose());
  const bool classes_open = resumed_from.empty() && command.count("--classes") == 0 && o.data.class_names.empty();
  const std::string recognised = recognise_masks(o.data, o.model, classes_open);
  const std::string root = o.train.model_dir;
  ClassNaming naming;  // the data set's, once it is read
  auto fold_options = [&](int fold) {
    TrainOptions t = o.train;
    record_data(o.data, t);
    t.class_naming = naming;
    t.model_dir = (std::filesystem::path(root) / ("fold-" + std::to_string(fold))).string();
    t.log_dir = t.model_dir;
    return t;
  };
  const std::string out = (std::filesystem::path(root) / "cv_results.json").string();
  CommandFiles files;
  files.reads(data_files(o.data)).writes_into(root).writes(out);
  for (int fold : o.folds) {
    const TrainOptions t = fold_options(fold);
    files.writes_into(t.model_dir).writes_into(best_dir(t.model_dir)).writes_checkpoint(checkpoint_path(t.model_dir)).writes(t.log_outputs());
  }
  files.check();
  DataSet data = load_data(o.data, o.model.classes());
  rescale_training_objects(data, o.data, o.model.classes(), o.train.object_diameter, "unet cross-validate", context.verbose());
  naming = data.naming();
  const UNetOptions model = model_for(o.model, data, o.train.input_size);
  ensure_writable_directory(root, "model");
  // Check every fold's directory before hours of training, not when its turn comes.
  for (int fold : o.folds) prepare_model_dir(fold_options(fold), context);
  install_stop_handlers();
  connect(context, o.runtime.dist_timeout_s);
  for (const std::string& note : {preset, recognised})
    if (context.verbose() && !note.empty()) std::fprintf(stderr, "unet cross-validate: %s\n", note.c_str());
  FoldResults results(naming, data.scheme);
  for (int fold : o.folds) {
    DataOptions d = o.data;
    d.fold = fold;
    const FoldData split = fold_data(data, d);
    if (context.verbose())
      std::fprintf(stderr, "fold %d (of %d): %zu training, %zu evaluation images\n", fold, fold_count(), split.train.size(),
                   split.eval.size());
    Trainer trainer(model, fold_options(fold), context);
    const TrainResult r = trainer.fit(split.train, split.eval);
    if (context.leader()) results.add(fold, r);
  }
  if (!context.leader()) return;
  nlohmann::json summary = results.summary();
  summary["model"] = model;
  summary["train"] = training_record(o.train, context);
  write_text_atomically(out, json_text(summary, 2) + "\n");
  report_results(out);
  std::printf("wrote %s\n", out.c_str());
}

}  // namespace

void register_cross_validate(CLI::App& app) {
  auto o = std::make_shared<CrossValidateCommand>();
  o->train.model_dir = kDefaultModelDir;
  CLI::App* cmd = app.add_subcommand("cross-validate", "Train and evaluate all 5 folds; per-fold and mean +- std Dice");
  add_data_options(*cmd, o->data);
  add_model_options(*cmd, o->model, o->train);
  add_value(*cmd, "--model-dir,--model_dir", "model_dir", o->train.model_dir, "Fold k goes to <model-dir>/fold-k");
  add_train_options(*cmd, o->train);
  add_preset_option(*cmd, o->preset);  // after the options it sets (their help names it)
  add_runtime_options(*cmd, o->runtime, {&o->data.seed, &o->train.seed});
  CLI::Option* folds = cmd->add_option_function<std::string>(
      "--folds", [o](const std::string& text) { o->folds = parse_folds(text); },
      "Folds to run, e.g. 0,1 (with --resume, finished folds are only evaluated again)");
  folds->default_str("all");
  name_field("folds", folds->get_name());
  check_after_parse(*cmd, [o, cmd] {
    refuse_two_data_sources(*cmd);
    require_model_dir(o->train.model_dir);
    imply_tiles_for_object_size(*cmd, o->train);
    o->data.validate();
    o->model.validate();
    o->train.validate();
    o->runtime.validate();
  });
  on_run(*cmd, [o, cmd] { run_cross_validate(*o, *cmd); });
}

}  // namespace unet::cli
