// `unet train`: train a U-Net on one fold (or all) of a data set and write its checkpoint.
#include "options.h"

#include "unet/logger.h"

#include <cstdio>
#include <memory>

namespace unet::cli {

void register_train(CLI::App& app) {
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("train", "Train a U-Net; evaluates on the held-out fold at the end");
  add_data_options(*cmd, *o);
  add_model_options(*cmd, *o);
  cmd->add_option("--model-dir,--model_dir", o->model_dir, "Where the checkpoint goes")->capture_default_str();
  cmd->add_option("--log-dir,--log_dir", o->log_dir, "Where log.jsonl goes (default: --model-dir)");
  add_train_options(*cmd, *o);
  add_runtime_options(*cmd, *o);
  cmd->callback([o] {
    c10::Device device = setup_runtime(*o);
    const int fold = parse_fold(o->fold);
    const DataSet data = load_data(*o, o->classes);
    const UNetOptions model = model_options(*o, data.channels);
    TrainOptions train = train_options(*o, device);
    if (train.log_dir.empty()) train.log_dir = train.model_dir;
    const int rank = detect_environment().rank;
    train.rank = rank;
    if (rank > 0) train.quiet = true;
    if (train.input_mode == InputMode::kResize)
      require_min_size(data.train, minimum_input_size(model), "use smaller --depth, --input-mode tile, or larger images");
    const FoldSplit split = fold_split(static_cast<int64_t>(data.train.size()), fold, o->seed);
    prepare_model_dir(train);
    // Every local check is done: only now wait for the other ranks.
    train.dist = setup_distributed(*o, device);
    train.device = device;
    if (!train.quiet)
      std::fprintf(stderr, "unet train: %s; fold %s: %zu training, %zu evaluation images; U-Net of %s, input %lld -> output %lld; %s on %s\n",
                   data.description.c_str(), o->fold.c_str(), split.train.size(), split.eval.size(), model.describe().c_str(),
                   static_cast<long long>(o->input_size), static_cast<long long>(output_size(model, o->input_size)),
                   o->precision.c_str(), device.str().c_str());
    if (!train.quiet && train.dist)
      std::fprintf(stderr, "unet train: data-parallel over %d processes (%s), batch %lld per process\n", train.dist->world_size(),
                   train.dist->env().launcher.c_str(), static_cast<long long>(train.batch_size));
    Trainer trainer(model, train);
    const TrainResult r = trainer.fit(select(data.train, split.train), select(data.train, split.eval));
    if (rank > 0) return;
    std::printf("trained %lld steps (to step %lld) in %s, %.2f images/s; checkpoint %s\n", static_cast<long long>(r.steps),
                static_cast<long long>(trainer.global_step()), format_duration(r.seconds).c_str(), r.images_per_second,
                checkpoint_path(train.model_dir).c_str());
    if (r.evaluated) print_metrics("evaluation on fold " + o->fold, r.metrics);
  });
}

}  // namespace unet::cli
