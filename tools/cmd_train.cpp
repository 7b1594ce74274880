// `unet train`: train a U-Net on one fold (or all) of a data set and write its checkpoint.
#include "choices.h"
#include "embed.h"
#include "options.h"
#include "resume.h"

#include "unet/dist/dist.h"
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

struct TrainCommand {
  DataOptions data;
  UNetOptions model;
  TrainOptions train;
  RuntimeOptions runtime;
  Preset preset = Preset::kAuto;
};

void run_train(TrainCommand& o, const CLI::App& command) {
  RunContext context = make_run_context(o.runtime);
  TrainOptions& train = o.train;
  // A resumed run goes on with the checkpoint's network, input, optimisation and data; a new one
  // takes the preset's sizes where no option was given.
  const std::string ckpt = checkpoint_path(train.model_dir);
  const bool resumed = train.resume && std::filesystem::exists(ckpt);
  std::string preset;
  if (resumed) {
    if (command.count("--preset") > 0 && context.verbose())
      std::fprintf(stderr, "unet train: note: --preset is ignored: a resumed run keeps the network of %s\n", ckpt.c_str());
    adopt_checkpoint(command, read_checkpoint_info(ckpt), ckpt, o.data, o.model, train, context.verbose());
  } else {
    preset = apply_preset(command, o.preset, context.device, o.model, train);
  }
  o.model.validate();
  train.validate();
  announce_reading(o.data, "unet train", context.verbose());
  const bool classes_open = !resumed && command.count("--classes") == 0 && o.data.class_names.empty();
  const std::string recognised = recognise_masks(o.data, o.model, classes_open);
  record_data(o.data, train);
  if (train.log_dir.empty()) train.log_dir = train.model_dir;
  CommandFiles()
      .reads(data_files(o.data))
      .writes_into(train.model_dir)
      .writes_into(train.log_dir)
      .writes_checkpoint(checkpoint_path(train.model_dir))
      .writes_into(best_dir(train.model_dir))
      .writes(train.log_outputs())
      .check();
  DataSet data = load_data(o.data, o.model.classes());
  rescale_training_objects(data, o.data, o.model.classes(), train.object_diameter, "unet train", context.verbose());
  train.class_naming = data.naming();
  const UNetOptions model = model_for(o.model, data, o.train.input_size);
  const FoldData fold = fold_data(data, o.data);
  prepare_model_dir(train, context);
  install_stop_handlers();
  // Every local check is done: only now wait for the other ranks.
  connect(context, o.runtime.dist_timeout_s);
  const std::string fold_name = o.data.fold < 0 ? "none" : std::to_string(o.data.fold);
  for (const std::string& note : {preset, recognised})
    if (context.verbose() && !note.empty()) std::fprintf(stderr, "unet train: %s\n", note.c_str());
  if (context.verbose())
    std::fprintf(stderr, "unet train: %s; fold %s: %zu training, %zu evaluation images; U-Net of %s, input %lld -> output %lld; %s on %s\n",
                 data.description.c_str(), fold_name.c_str(), fold.train.size(), fold.eval.size(), model.describe().c_str(),
                 static_cast<long long>(train.input_size), static_cast<long long>(output_size(model, train.input_size)),
                 to_string(context.precision).c_str(), context.device.str().c_str());
  if (context.verbose() && context.dist)
    std::fprintf(stderr, "unet train: data-parallel over %d processes (%s), batch %lld per process\n", context.world_size(),
                 context.env.launcher.c_str(), static_cast<long long>(train.batch_size));
  train.on_log = command_hooks().train_progress;
  Trainer trainer(model, train, context);
  const TrainResult r = trainer.fit(fold.train, fold.eval);
  if (!context.leader()) return;
  std::printf("trained %lld steps (to step %lld) in %s, %.2f images/s; checkpoint %s\n", static_cast<long long>(r.steps),
              static_cast<long long>(trainer.global_step()), format_duration(r.seconds).c_str(), r.images_per_second,
              checkpoint_path(train.model_dir).c_str());
  if (r.evaluated) print_metrics("evaluation on fold " + fold_name, r.metrics, data.naming(), data.scheme);
  if (r.best_step >= 0 && r.best_step != trainer.global_step())
    std::printf("best evaluation at step %lld (%s %.4f), kept in %s: use it with --model-dir %s\n",
                static_cast<long long>(r.best_step), r.best.name.c_str(), r.best.value,
                checkpoint_path(best_dir(train.model_dir)).c_str(), best_dir(train.model_dir).c_str());
}

}  // namespace

void register_train(CLI::App& app) {
  auto o = std::make_shared<TrainCommand>();
  o->train.model_dir = kDefaultModelDir;
  CLI::App* cmd = app.add_subcommand("train", "Train a U-Net; evaluates on the held-out fold as it goes and at the end, keeping the best checkpoint");
  add_data_options(*cmd, o->data);
  add_model_options(*cmd, o->model, o->train);
  add_value(*cmd, "--model-dir,--model_dir", "model_dir", o->train.model_dir, "Where the checkpoint goes");
  add_value(*cmd, "--log-dir,--log_dir", "log_dir", o->train.log_dir, "Where log.jsonl goes (default: --model-dir)");
  add_train_options(*cmd, o->train);
  add_preset_option(*cmd, o->preset);  // after the options it sets (their help names it)
  add_runtime_options(*cmd, o->runtime, {&o->data.seed, &o->train.seed});
  check_after_parse(*cmd, [o, cmd] {
    refuse_two_data_sources(*cmd);
    require_model_dir(o->train.model_dir);
    imply_tiles_for_object_size(*cmd, o->train);
    o->data.validate();
    o->model.validate();
    o->train.validate();
    o->runtime.validate();
  });
  on_run(*cmd, [o, cmd] { run_train(*o, *cmd); });
}

}  // namespace unet::cli
