// `unet cross-validate`: train and evaluate every fold; per-fold and mean +- std metrics.
#include "options.h"

#include "unet/error.h"
#include "unet/logger.h"
#include "unet/runtime.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
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

/// "all" or a comma-separated list of distinct folds ("0,2"); throws `unet::Error` otherwise.
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
      throw Error("--folds: expected 'all' or distinct folds 0-" + std::to_string(fold_count() - 1) +
                  " separated by commas, got '" + text + "'");
    folds.push_back(f);
  }
  if (folds.empty()) throw Error("--folds: no fold given");
  return folds;
}

}  // namespace

void register_cross_validate(CLI::App& app) {
  auto o = std::make_shared<Options>();
  auto folds_text = std::make_shared<std::string>("all");
  CLI::App* cmd = app.add_subcommand("cross-validate", "Train and evaluate all 5 folds; per-fold and mean +- std Dice");
  add_data_options(*cmd, *o);
  add_model_options(*cmd, *o);
  cmd->add_option("--model-dir,--model_dir", o->model_dir, "Fold k goes to <model-dir>/fold-k")->capture_default_str();
  add_train_options(*cmd, *o);
  add_runtime_options(*cmd, *o);
  cmd->add_option("--folds", *folds_text,
                  "Folds to run, e.g. 0,1 (with --resume, finished folds are only evaluated again)")
      ->capture_default_str();
  cmd->callback([o, folds_text] {
    const std::vector<int> chosen = parse_folds(*folds_text);
    c10::Device device = setup_runtime(*o);
    const int rank = detect_environment().rank;
    const DataSet data = load_data(*o, o->classes);
    const UNetOptions model = model_options(*o, data.channels);
    TrainOptions base = train_options(*o, device);  // validates before any fold starts
    if (base.input_mode == InputMode::kResize)
      require_min_size(data.train, minimum_input_size(model), "use smaller --depth, --input-mode tile, or larger images");
    base.rank = rank;
    if (rank > 0) base.quiet = true;
    ensure_writable_directory(o->model_dir, "model");
    auto fold_options = [&](int fold) {
      TrainOptions t = base;
      t.model_dir = (std::filesystem::path(o->model_dir) / ("fold-" + std::to_string(fold))).string();
      t.log_dir = t.model_dir;
      return t;
    };
    // Check every fold's directory before hours of training, not when its turn comes.
    for (int fold : chosen) prepare_model_dir(fold_options(fold));
    base.dist = setup_distributed(*o, device);
    base.device = device;
    nlohmann::json folds = nlohmann::json::array();
    std::vector<double> dice, membrane, error, v_rand, v_info, seconds;
    for (int fold : chosen) {
      const FoldSplit split = fold_split(static_cast<int64_t>(data.train.size()), fold, o->seed);
      const TrainOptions t = fold_options(fold);
      if (!t.quiet) std::fprintf(stderr, "fold %d (of %d): %zu training, %zu evaluation images\n", fold, fold_count(), split.train.size(), split.eval.size());
      Trainer trainer(model, t);
      const TrainResult r = trainer.fit(select(data.train, split.train), select(data.train, split.eval));
      if (rank > 0) continue;
      dice.push_back(r.metrics.dice_score);
      membrane.push_back(r.metrics.membrane_dice);
      error.push_back(r.metrics.pixel_error);
      v_rand.push_back(r.metrics.v_rand);
      v_info.push_back(r.metrics.v_info);
      seconds.push_back(r.seconds);
      std::printf("fold %d: dice_score %.4f  membrane dice %.4f  pixel error %.4f  V_Rand %.4f  V_Info %.4f  (%s)\n", fold,
                  r.metrics.dice_score, r.metrics.membrane_dice, r.metrics.pixel_error, r.metrics.v_rand, r.metrics.v_info,
                  format_duration(r.seconds).c_str());
      std::fflush(stdout);
      auto j = nlohmann::json::parse(r.metrics.to_json());
      j["fold"] = fold;
      j["seconds"] = r.seconds;
      j["steps"] = r.steps;
      folds.push_back(j);
    }
    if (rank > 0) return;
    const auto [dm, ds] = mean_std(dice);
    const auto [mm, ms] = mean_std(membrane);
    const auto [em, es] = mean_std(error);
    const auto [rm, rs] = mean_std(v_rand);
    const auto [im, is] = mean_std(v_info);
    std::printf("mean +- std over %zu folds: dice_score %.4f +- %.4f  membrane dice %.4f +- %.4f  pixel error %.4f +- %.4f\n",
                chosen.size(), dm, ds, mm, ms, em, es);
    std::printf("                            V_Rand %.4f +- %.4f  V_Info %.4f +- %.4f (threshold 0.5)\n", rm, rs, im, is);
    const nlohmann::json summary = {{"folds", folds},
                                    {"dice_score_mean", dm}, {"dice_score_std", ds},
                                    {"membrane_dice_mean", mm}, {"membrane_dice_std", ms},
                                    {"pixel_error_mean", em}, {"pixel_error_std", es},
                                    {"v_rand_mean", rm}, {"v_rand_std", rs},
                                    {"v_info_mean", im}, {"v_info_std", is},
                                    {"model", nlohmann::json::parse(to_json(model))},
                                    {"train", nlohmann::json::parse(base.to_json())}};
    const std::string out = (std::filesystem::path(o->model_dir) / "cv_results.json").string();
    write_atomically(out, [&](const std::string& tmp) { std::ofstream(tmp) << summary.dump(2) << '\n'; });
    std::printf("wrote %s\n", out.c_str());
  });
}

}  // namespace unet::cli
