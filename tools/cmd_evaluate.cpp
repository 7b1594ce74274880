// `unet evaluate`: metrics of a trained checkpoint on a fold's held-out images.
#include "embed.h"
#include "options.h"
#include "pretrained.h"
#include "resume.h"
#include "runtime/json.h"

#include "eval/json.h"
#include "unet/dist/dist.h"
#include "unet/infer/evaluate.h"
#include "unet/model/checkpoint.h"
#include "unet/runtime/files.h"
#include "unet/runtime/text.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <memory>

namespace unet::cli {
namespace {

struct EvaluateCommand {
  DataOptions data;
  InferenceOptions infer;
  RuntimeOptions runtime;
  std::string model_dir = kDefaultModelDir;
  std::string log_dir;
  std::string model_name;  // --model's, if given
  /// --object-thresholds and --min-object-probabilities as given, and as numbers (sorted, once
  /// each; their ranges are `check_object_sweep`'s).
  std::vector<std::string> object_thresholds_text, levels_text;
  std::vector<double> object_thresholds, levels;
};

/// A list option's items (`field`'s) as numbers, sorted, once each; else an `OptionError` naming the item.
std::vector<double> parse_probabilities(const std::vector<std::string>& items, const char* field) {
  std::vector<double> values;
  for (const std::string& item : items) {
    double v = 0.0;
    if (!CLI::detail::lexical_cast(item, v))
      throw OptionError(field, ": " + item + " is not a number (probabilities, comma-separated)");
    values.push_back(v);
  }
  std::sort(values.begin(), values.end());
  values.erase(std::unique(values.begin(), values.end()), values.end());
  return values;
}

/// What a sweep's best pair, or the pair the other scores used, reads as: the swept values only.
std::string pair_text(bool thresholds, bool levels, double threshold, double level) {
  std::string s = thresholds ? "object threshold " + number_text(threshold) : "";
  if (levels) s += (thresholds ? " and " : "") + std::string("smallest mean object probability ") + number_text(level);
  return s;
}

/// The sweep's table, its best pair by mean AP, and how to record it in the model (`model`: the
/// export's options that name it; `recorded`: what the model records). `thresholds` / `levels`:
/// whether the command swept them (the other list holds the predictor's own value); a value the
/// rows were scored with that the model does not record (`--object-threshold`'s, where its
/// objects grow; `--min-object-probability`'s) is named too, so that the command records the pair.
/// Where the objects do not grow (two-class models), the threshold column is "-": none applies.
void print_sweep(const ObjectSweep& sweep, bool thresholds, bool levels, const ObjectRule& used, const std::string& model,
                 const ObjectRecord& recorded, bool grows) {
  std::printf(grows ? "  objects at each object threshold and smallest mean object probability (level; one prediction: objects "
                      "cut once, grown to each threshold, dropped under each level):\n"
                    : "  objects at each smallest mean object probability (level; one prediction: objects cut once, dropped "
                      "under each level; a two-class model's are not grown to a threshold):\n");
  std::printf("    threshold   level  predicted  F1 at 0.5  F1 at 0.75  mean AP      PQ\n");
  for (size_t k = 0; k < sweep.scores.size(); ++k) {
    const ObjectScores& o = sweep.scores[k];
    std::printf("    %9s  %6s  %9lld  %9.4f  %10.4f  %7.4f  %6.4f%s\n", grows ? number_text(sweep.threshold(k)).c_str() : "-",
                number_text(sweep.level(k)).c_str(), static_cast<long long>(o.predicted_objects), o.f1(0), o.f1(5),
                o.mean_average_precision(), o.panoptic_quality(), k == sweep.best() ? "  best" : "");
  }
  const double best_threshold = sweep.threshold(sweep.best()), best_level = sweep.level(sweep.best());
  const double recorded_threshold = object_rule(recorded).object_threshold;  // the model's, or the default
  std::string flags;
  if (thresholds || (grows && used.object_threshold != recorded_threshold))
    flags = " --object-threshold " + number_text(best_threshold);
  if (levels || used.min_probability > 0 || recorded.min_probability > 0)
    flags += " --min-object-probability " + number_text(best_level);
  std::printf("  best mean AP at %s (the scores above the table are at %s); on validation images, record it with: "
              "unet export %s --format checkpoint%s\n",
              pair_text(thresholds, levels, best_threshold, best_level).c_str(),
              pair_text(thresholds, levels, used.object_threshold, used.min_probability).c_str(), model.c_str(), flags.c_str());
}

/// A name for data other than the model's, for its results file: the data folder's name (other
/// characters than letters, digits, '.', '-' and '_' as '_'), or "synthetic".
std::string data_name(const DataOptions& data) {
  if (data.dir.empty()) return "synthetic";
  std::error_code ec;
  std::string name = std::filesystem::absolute(data.dir, ec).lexically_normal().filename().string();
  if (name.empty()) name = std::filesystem::absolute(data.dir, ec).lexically_normal().parent_path().filename().string();
  for (char& c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') c = '_';
  return name.empty() ? "data" : name;
}

/// eval_results.json, or eval_results_<name>.json for other data; int8 evaluations add "_int8"
/// and the model with `ensemble` more "_ensemble<N>" (N models; the model's own fp32 results stay).
std::string results_name(const std::string& other, Precision precision, size_t ensemble) {
  // An ensemble's scores are not the model's own: they go beside them (eval_results_ensemble3.json).
  const std::string suffix = std::string(precision == Precision::kInt8 ? "_int8" : "") +
                             (ensemble > 0 ? "_ensemble" + std::to_string(ensemble + 1) : "");
  return other.empty() ? "eval_results" + suffix + ".json" : "eval_results_" + other + suffix + ".json";
}

/// One line on the images' object scales: their range and median, and how they were found.
void print_object_scales(std::vector<double> scales, double given, double model_diameter) {
  std::sort(scales.begin(), scales.end());
  const double median = scales[scales.size() / 2];
  std::printf("  object size: images rescaled by %.2f to %.2f (median %.2f) to the model's %g pixels across, %s\n",
              scales.front(), scales.back(), median, model_diameter,
              given == InferenceOptions::kMeasuredObjectDiameter ? "each image's measured (auto)" : "as stated");
}

void run_evaluate(const EvaluateCommand& o) {
  const RunContext context = make_run_context(o.runtime);
  // One process does the work when a launcher started several (they would write the same files).
  if (!context.leader()) return;
  const std::string ckpt = checkpoint_path(o.model_dir);
  const std::string dir = o.log_dir.empty() ? o.model_dir : o.log_dir;
  const CheckpointInfo info = read_checkpoint_info(ckpt);
  const bool sweeping = !o.object_thresholds.empty() || !o.levels.empty();
  const bool grows = objects_grow(info.model.scheme());  // whether an object threshold applies
  if (sweeping) check_object_sweep(info.model, o.object_thresholds, o.levels);
  // eval_results.json is the model's own evaluation: a run on other data writes beside it.
  const std::string trained_on = other_training_data(info, o.data);
  const std::string out = (std::filesystem::path(dir) / results_name(trained_on.empty() ? "" : data_name(o.data), context.precision,
                                                                      o.infer.ensemble.size())).string();
  const std::vector<std::string> members = ensemble_checkpoints(o.infer);
  // Each seed draws its own fold split (train --seed): a fold held out from one member is another's
  // training data, which would flatter the ensemble.
  if (!members.empty() && o.data.fold >= 0)
    throw OptionError("ensemble", " scores models whose fold splits differ (each seed draws its own): evaluate an "
                                  "ensemble with {fold} none on images none of its models trained on");
  CommandFiles().reads(ckpt).reads(members).reads(data_files(o.data)).writes_into(dir).writes(out).check();
  const DataSet data = model_data(o.data, info);
  if (data.channels != info.model.in_channels())
    throw Error(o.data.dir + ": images have " + std::to_string(data.channels) + " channels, but the model expects " +
                std::to_string(info.model.in_channels()));
  // The model's names for its classes (what it learnt), unless --class-names renames them.
  const ClassNaming naming = model_naming(info, o.data.class_names);
  const FoldData fold = fold_data(data, o.data);
  const auto& samples = o.data.fold < 0 ? fold.train : fold.eval;
  if (samples.empty())
    throw OptionError("fold", " " + std::to_string(o.data.fold) + " holds no evaluation images: the data set has only " +
                                  std::to_string(data.train.size()) + " labelled images (use {fold} none to evaluate on all)");
  Predictor predictor = load_predictor(ckpt, info, o.infer, context, samples);
  std::vector<double> scales;
  ObjectSweep sweep{o.object_thresholds, o.levels, {}};
  const Metrics m = evaluate(predictor, samples, &scales, sweeping ? &sweep : nullptr);
  const std::string fold_name = o.data.fold < 0 ? "none" : std::to_string(o.data.fold);
  const std::string averaged = members.empty() ? "" : " and " + std::to_string(members.size()) + " more (an ensemble)";
  print_metrics("evaluation of " + ckpt + " (step " + std::to_string(info.step) + ")" + averaged + " on " +
                    data.description + ", fold " + fold_name, m, naming, info.model.scheme());
  const bool rescaled = predictor.measures_object_scale() || predictor.object_scale() != 1.0;
  if (rescaled) print_object_scales(scales, o.infer.object_diameter, info.object_diameter);
  if (sweeping)
    print_sweep(sweep, !o.object_thresholds.empty(), !o.levels.empty(), predictor.object_rule(),
                o.model_name.empty() ? "--model-dir '" + o.model_dir + "'" : "--model " + o.model_name, info.objects, grows);
  ensure_writable_directory(dir, "log");
  nlohmann::json j = m;
  j.update(class_record(m, naming));
  j["checkpoint"] = ckpt;
  if (!members.empty()) j["ensemble"] = members;  // averaged with the checkpoint's probabilities
  j["step"] = info.step;
  j["fold"] = fold_name;
  j["seed"] = o.data.seed;  // of the fold split
  j["data"] = data.description;
  nlohmann::json evaluated = nlohmann::json::array();  // the held-out images, to score them again elsewhere
  for (const auto& s : samples) evaluated.push_back(s.name());
  j["evaluated_images"] = evaluated;
  // How the predicted objects were cut, so that the object scores can be repeated.
  if (m.has_objects) {
    const ObjectRule& rule = predictor.object_rule();
    const double d = o.infer.object_diameter;  // as given: auto measures only for a model trained at a size
    j["object_rule"] = {{"min_area", rule.min_area},
                        {"split_radius", rule.neck_radius},
                        {"split_ratio", rule.neck_ratio},
                        {"min_probability", rule.min_probability},
                        {"object_diameter", d == InferenceOptions::kMeasuredObjectDiameter ? nlohmann::json("auto") : nlohmann::json(d)},
                        {"model_object_diameter", info.object_diameter}};
    if (grows) j["object_rule"]["object_threshold"] = rule.object_threshold;  // two-class objects do not grow
    // Each image's scale (model's object size / the image's), to repeat a measured evaluation with stated sizes.
    if (rescaled) {
      nlohmann::json per_image = nlohmann::json::object();
      for (size_t i = 0; i < samples.size(); ++i) per_image[samples[i].name()] = scales[i];
      j["object_rule"]["image_scales"] = per_image;
    }
  }
  if (sweeping) {
    nlohmann::json rows = nlohmann::json::array();
    for (size_t k = 0; k < sweep.scores.size(); ++k) {
      nlohmann::json row = sweep.scores[k];
      if (grows) row["object_threshold"] = sweep.threshold(k);
      row["min_probability"] = sweep.level(k);
      rows.push_back(row);
    }
    j["object_sweep"] = rows;
    if (grows) j["best_object_threshold"] = sweep.threshold(sweep.best());
    j["best_min_object_probability"] = sweep.level(sweep.best());
  }
  if (!trained_on.empty() && context.verbose())
    std::fprintf(stderr, "unet evaluate: note: %s was trained on %s, not on %s: the results go to %s (eval_results.json is "
                         "left as it is)\n", ckpt.c_str(), trained_on.c_str(),
                 o.data.dir.empty() ? "the synthetic data" : o.data.dir.c_str(), out.c_str());
  write_text_atomically(out, json_text(j, 2) + "\n");
  report_results(out);
}

}  // namespace

void register_evaluate(CLI::App& app) {
  auto o = std::make_shared<EvaluateCommand>();
  CLI::App* cmd = app.add_subcommand("evaluate", "Evaluate a checkpoint on the held-out fold (or every image with --fold none)");
  add_data_options(*cmd, o->data);
  add_value(*cmd, "--model-dir,--model_dir", "model_dir", o->model_dir, "Directory with checkpoint.pt");
  add_value(*cmd, "--log-dir,--log_dir", "log_dir", o->log_dir, "Where eval_results.json goes (default: --model-dir)");
  add_model_option(*cmd, o->model_dir, o->log_dir, &o->model_name);
  add_value(*cmd, "--batch-size,--batch_size", "batch_size", o->infer.batch_size, "Images per forward pass");
  add_inference_options(*cmd, o->infer);
  add_ensemble_option(*cmd, o->infer);
  add_list(*cmd, "--object-thresholds", "object_thresholds", o->object_thresholds_text,
           "Also score the objects at each of these object thresholds (comma-separated, each above 0 and below 1; "
           "one prediction) and name the best by mean AP: how an interior/boundary, distance or direction model's "
           "threshold is chosen on validation images (--object-threshold sets the one the other scores use)");
  add_list(*cmd, "--min-object-probabilities", "min_object_probabilities", o->levels_text,
           "Also score the objects at each of these smallest mean object probabilities (comma-separated, each at least "
           "0 and below 1; with --object-thresholds, each pair) from the same prediction, and name the best by mean AP: "
           "how a model's --min-object-probability is chosen on validation images");
  add_runtime_options(*cmd, o->runtime, {&o->data.seed}, /*training=*/false);
  check_after_parse(*cmd, [o, cmd] {
    refuse_two_data_sources(*cmd);
    o->object_thresholds = parse_probabilities(o->object_thresholds_text, "object_thresholds");
    o->levels = parse_probabilities(o->levels_text, "min_object_probabilities");
    o->data.validate();
    o->infer.validate();
    o->runtime.validate();
  });
  on_run(*cmd, [o] { run_evaluate(*o); });
}

}  // namespace unet::cli
