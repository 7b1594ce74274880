// `unet demo`: the embedded default job: synthetic EM-like data, a small U-Net, train, evaluate, predict.
// With `--synthetic-kind nuclei`: touching synthetic nuclei, three classes (background, interior,
// boundary) derived from their instance labels, and instance-label predictions.
#include "choices.h"
#include "options.h"

#include "unet/dist/dist.h"
#include "unet/eval/instances.h"
#include "unet/infer/output.h"
#include "unet/model/checkpoint.h"
#include "unet/model/geometry.h"
#include "unet/runtime/signals.h"
#include "unet/train/logger.h"
#include "unet/train/trainer.h"

#include <cstdio>
#include <filesystem>
#include <memory>

namespace unet::cli {
namespace {

struct DemoCommand {
  DataOptions data;
  UNetOptions model;
  TrainOptions train;
  RuntimeOptions runtime;
  /// Also write the synthetic data set here (ISBI layout for EM, folder layout for nuclei).
  std::string write_data;
};

/// Sized to finish in a few minutes on 2 CPU cores: the small preset's network (depth 3, 16 base
/// filters, 220 -> 132 pixels, batch 4, learning rate 1e-3), 400 steps; EM slices resized as the
/// reference does (the nuclei in tiles, `register_demo`).
DemoCommand demo_defaults() {
  DemoCommand o;
  small_preset(o.model, o.train);
  o.train.input_mode = InputMode::kResize;
  o.train.model_dir = "runs/demo";
  o.train.max_steps = 400;
  o.train.log_every = 25;
  o.train.warmup_steps = 5;
  o.train.overwrite = true;
  o.train.checkpoint_every = 0;
  o.data.use_synthetic = true;
  o.data.synthetic.size = 192;
  o.data.synthetic.train_count = 30;
  return o;
}

/// What the demo predicts for `data`'s test images: masks, probabilities and overlays (the data's
/// objects tinted: membranes, or the nuclei); for the nuclei also instance labels and previews.
PredictionFiles demo_prediction_files(const DemoCommand& o, const DataSet& data) {
  PredictionFiles files;
  files.naming = data.naming();
  files.scheme = data.scheme;
  if (data.has_instances()) files.instances = has_objects(o.model.classes(), data.scheme);
  return files;
}

/// The nuclei demo's predictions (masks, probabilities, instance labels) and its last line.
void finish_nuclei_demo(const DemoCommand& o, const DataSet& data, const TrainResult& r, Predictor& predictor) {
  const std::string out = (std::filesystem::path(o.train.model_dir) / "predictions").string();
  PredictionFiles files = demo_prediction_files(o, data);
  files.objects = predictor.object_rule();
  std::string names;
  for (const auto& path : write_predictions(out, data.test, predictor.predict(data.test), files)) {
    const std::string folder = std::filesystem::path(path).parent_path().filename().string();
    if (folder == "overlays" || folder == "instances") continue;  // named once below
    names += (names.empty() ? "" : ", ") + std::filesystem::path(path).filename().string();
  }
  names += std::string(files.overlays ? ", overlays/*.png" : "") + (files.instances ? ", instances/*.png" : "");
  std::printf("predicted %zu test images into %s (%s)\n", data.test.size(), out.c_str(), names.c_str());
  std::printf("demo object F1 at IoU 0.5: %.4f\n", r.metrics.has_objects ? r.metrics.objects.f1(0) : 0.0);
}

void run_demo(DemoCommand& o) {
  const RunContext context = make_run_context(o.runtime);
  CommandFiles()
      .writes_into(o.write_data)
      .writes_into(o.train.model_dir)
      .writes_checkpoint(checkpoint_path(o.train.model_dir))
      .writes(o.train.log_outputs())
      .check();
  if (!o.write_data.empty()) {
    // The data set's files are new, or nothing of the user's could be replaced by them.
    std::error_code ec;
    if (std::filesystem::exists(o.write_data, ec) && !std::filesystem::is_empty(o.write_data, ec))
      fail_file(o.write_data, "is not empty; the synthetic data set goes into a new or empty folder");
    SyntheticOptions synthetic = o.data.synthetic;
    synthetic.seed = o.data.seed;
    if (synthetic.kind == SyntheticKind::kNuclei) {
      write_synthetic_nuclei(o.write_data, synthetic);
    } else {
      write_synthetic_isbi(o.write_data, synthetic);
    }
    std::printf("unet demo: wrote the synthetic data set into %s\n", o.write_data.c_str());
    // Train recognises the masks (instance labels: 3 classes) and sizes the network for the device.
    std::printf("  train on it: unet train --data-dir %s --model-dir runs/mine\n", o.write_data.c_str());
    if (o.train.max_steps == 0) return;  // the data only
  }
  const DataSet data = load_data(o.data, o.model.classes());
  const UNetOptions model = model_for(o.model, data, o.train.input_size);
  o.train.log_dir = o.train.model_dir;
  const std::string predictions = (std::filesystem::path(o.train.model_dir) / "predictions").string();
  CommandFiles()
      .writes_into(predictions)
      .writes_into((std::filesystem::path(predictions) / "overlays").string())
      .writes_into(data.has_instances() ? (std::filesystem::path(predictions) / "instances").string() : "")
      .writes(prediction_outputs(predictions, data.test, demo_prediction_files(o, data), /*per_file=*/false))
      .check();
  o.train.class_naming = data.naming();
  const FoldData fold = fold_data(data, o.data);
  std::printf("unet demo: %s; %zu training and %zu evaluation slices; U-Net of %s (%lld -> %lld pixels); %lld steps of batch %lld on %s\n",
              data.description.c_str(), fold.train.size(), fold.eval.size(), model.describe().c_str(),
              static_cast<long long>(o.train.input_size), static_cast<long long>(output_size(model, o.train.input_size)),
              static_cast<long long>(o.train.max_steps), static_cast<long long>(o.train.batch_size), context.device.str().c_str());
  std::fflush(stdout);
  install_stop_handlers();
  Trainer trainer(model, o.train, context);
  const TrainResult r = trainer.fit(fold.train, fold.eval);
  std::printf("trained %lld steps in %s (%.1f images/s)\n", static_cast<long long>(r.steps), format_duration(r.seconds).c_str(),
              r.images_per_second);
  print_metrics("evaluation on the held-out synthetic slices", r.metrics, data.naming(), data.scheme);
  Predictor predictor(trainer.model(), trainer.geometry(), context.device, o.train.batch_size, o.train.exec.channels_last);
  predictor.use_normalisation(o.train.normalisation);
  predictor.use_object_rule(object_rule(ObjectRecord{trainer.object_area()}));
  if (data.has_instances()) {
    finish_nuclei_demo(o, data, r, predictor);
    return;
  }
  // What predicting "no membrane anywhere" would score, for scale.
  double membrane = 0, pixels = 0;
  for (const auto& s : fold.eval) {
    membrane += (s.mask == kMembraneClass).sum().item<double>();
    pixels += static_cast<double>(s.mask.numel());
  }
  std::printf("  (all-background baseline: membrane Dice 0.0000, pixel error %.4f)\n", membrane / pixels);
  const std::string out = (std::filesystem::path(o.train.model_dir) / "predictions").string();
  write_predictions(out, data.test, predictor.predict(data.test), demo_prediction_files(o, data));
  std::printf("predicted %zu test slices into %s (test-masks.tif, test-probabilities.tif, overlays/*.png)\n",
              data.test.size(), out.c_str());
  std::printf("demo membrane Dice: %.4f\n", r.metrics.membrane_dice);
}

}  // namespace

void register_demo(CLI::App& app) {
  auto o = std::make_shared<DemoCommand>(demo_defaults());
  CLI::App* cmd = app.add_subcommand("demo", "Train, evaluate and predict on built-in synthetic EM-like data (no download)");
  add_value(*cmd, "--model-dir,--model_dir", "model_dir", o->train.model_dir, "Where the checkpoint and predictions go (replaced)");
  add_value(*cmd, "--max-steps,--max_steps", "max_steps", o->train.max_steps, "Training steps");
  add_value(*cmd, "--batch-size,--batch_size", "batch_size", o->train.batch_size, "Images per step");
  add_value(*cmd, "--learning-rate,--learning_rate", "learning_rate", o->train.learning_rate, "Adam learning rate");
  add_value(*cmd, "--log-every,--log_every", "log_every", o->train.log_every, "Log losses every N steps");
  add_model_options(*cmd, o->model, o->train);
  add_choice(*cmd, "--synthetic-kind", "synthetic.kind", o->data.synthetic.kind, synthetic_kind_names(),
             "em (membranes, as ISBI) or nuclei (touching nuclei; 3 classes background/interior/boundary unless "
             "--classes 2)");
  add_value(*cmd, "--write-data", "write_data", o->write_data,
            "Also write the synthetic data set into this directory (ISBI layout for em; images/, masks/ with 16-bit "
            "instance labels, test/ for nuclei), to look at or to train on with --data-dir; with --max-steps 0 "
            "nothing else");
  add_value(*cmd, "--synthetic-size", "synthetic.size", o->data.synthetic.size, "Side of the synthetic images, pixels");
  add_value(*cmd, "--synthetic-count", "synthetic.train_count", o->data.synthetic.train_count, "Labelled synthetic images");
  add_exec_options(*cmd, o->train.exec);
  add_runtime_options(*cmd, o->runtime, {&o->data.seed, &o->train.seed});
  check_after_parse(*cmd, [o, cmd] {
    // Nuclei: three classes and native-resolution tiles (resizing would blur the thin boundaries).
    if (o->data.synthetic.kind == SyntheticKind::kNuclei) {
      if (cmd->get_option("--classes")->count() == 0) o->model.classes(3);
      if (cmd->get_option("--input-mode")->count() == 0) o->train.input_mode = InputMode::kTile;
    }
    require_model_dir(o->train.model_dir);
    o->data.validate();
    o->model.validate();
    o->train.validate();
    o->runtime.validate();
  });
  on_run(*cmd, [o] { run_demo(*o); });
}

}  // namespace unet::cli
