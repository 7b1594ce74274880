// `unet demo`: the embedded default job: synthetic EM-like data, a small U-Net, train, evaluate, predict.
#include "options.h"

#include "unet/logger.h"
#include "unet/predictor.h"
#include "unet/synthetic.h"

#include <cstdio>
#include <filesystem>
#include <memory>

namespace unet::cli {

void register_demo(CLI::App& app) {
  auto o = std::make_shared<Options>();
  // Sized to finish in a few minutes on 2 CPU cores: depth 3, 16 base filters, 220 -> 132 pixels.
  o->model_dir = "runs/demo";
  o->depth = 3;
  o->filters = 16;
  o->input_size = 220;
  o->batch_size = 4;
  o->max_steps = 400;
  o->log_every = 25;
  o->learning_rate = 1e-3;
  o->synthetic_size = 192;
  o->synthetic_count = 30;
  o->warmup_steps = 5;
  CLI::App* cmd = app.add_subcommand("demo", "Train, evaluate and predict on built-in synthetic EM-like data (no download)");
  cmd->add_option("--model-dir,--model_dir", o->model_dir, "Where the checkpoint and predictions go (replaced)")
      ->capture_default_str();
  cmd->add_option("--max-steps,--max_steps", o->max_steps, "Training steps")->capture_default_str();
  cmd->add_option("--batch-size,--batch_size", o->batch_size, "Images per step")->capture_default_str();
  cmd->add_option("--learning-rate,--learning_rate", o->learning_rate, "Adam learning rate")->capture_default_str();
  cmd->add_option("--log-every,--log_every", o->log_every, "Log losses every N steps")->capture_default_str();
  add_model_options(*cmd, *o);
  add_runtime_options(*cmd, *o);
  cmd->callback([o] {
    const c10::Device device = setup_runtime(*o);
    o->data_dir.clear();
    const DataSet data = load_data(*o, o->classes);
    const UNetOptions model = model_options(*o, data.channels);
    TrainOptions t = train_options(*o, device);
    t.overwrite = true;
    t.log_dir = o->model_dir;
    t.checkpoint_every = 0;
    const FoldSplit split = fold_split(static_cast<int64_t>(data.train.size()), /*fold=*/0, o->seed);
    std::printf("unet demo: %s; %zu training and %zu evaluation slices; U-Net of %s (%lld -> %lld pixels); %lld steps of batch %lld on %s\n",
                data.description.c_str(), split.train.size(), split.eval.size(), model.describe().c_str(),
                static_cast<long long>(o->input_size), static_cast<long long>(output_size(model, o->input_size)),
                static_cast<long long>(o->max_steps), static_cast<long long>(o->batch_size), device.str().c_str());
    std::fflush(stdout);
    Trainer trainer(model, t);
    const auto eval = select(data.train, split.eval);
    const TrainResult r = trainer.fit(select(data.train, split.train), eval);
    std::printf("trained %lld steps in %s (%.1f images/s)\n", static_cast<long long>(r.steps), format_duration(r.seconds).c_str(),
                r.images_per_second);
    print_metrics("evaluation on the held-out synthetic slices", r.metrics);
    // What predicting "no membrane anywhere" would score, for scale.
    double membrane = 0, pixels = 0;
    for (const auto& s : eval) {
      membrane += (s.mask == kMembraneClass).sum().item<double>();
      pixels += static_cast<double>(s.mask.numel());
    }
    std::printf("  (all-background baseline: membrane Dice 0.0000, pixel error %.4f)\n", membrane / pixels);
    Predictor predictor(trainer.model(), trainer.geometry(), device, o->batch_size, channels_last(*o));
    const std::string out = (std::filesystem::path(o->model_dir) / "predictions").string();
    write_predictions(out, data.test, predictor.predict(data.test), /*overlays=*/true);
    std::printf("predicted %zu test slices into %s (test-masks.tif, test-probabilities.tif, overlays/*.png)\n",
                data.test.size(), out.c_str());
    std::printf("demo membrane Dice: %.4f\n", r.metrics.membrane_dice);
  });
}

}  // namespace unet::cli
