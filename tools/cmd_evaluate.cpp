// `unet evaluate`: metrics of a trained checkpoint on a fold's held-out images.
#include "options.h"

#include "unet/checkpoint.h"
#include "unet/error.h"
#include "unet/predictor.h"
#include "unet/runtime.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

namespace unet::cli {

void register_evaluate(CLI::App& app) {
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("evaluate", "Evaluate a checkpoint on the held-out fold (or every image with --fold none)");
  add_data_options(*cmd, *o);
  cmd->add_option("--model-dir,--model_dir", o->model_dir, "Directory with checkpoint.pt")->capture_default_str();
  cmd->add_option("--log-dir,--log_dir", o->log_dir, "Where eval_results.json goes (default: --model-dir)");
  cmd->add_option("--batch-size,--batch_size", o->batch_size, "Images per forward pass")->capture_default_str();
  add_inference_options(*cmd, *o);
  add_runtime_options(*cmd, *o);
  cmd->callback([o] {
    const c10::Device device = setup_runtime(*o);
    // One process does the work when a launcher started several (they would write the same files).
    if (detect_environment().rank > 0) return;
    const int fold = parse_fold(o->fold);
    const std::string ckpt = checkpoint_path(o->model_dir);
    const CheckpointInfo info = read_checkpoint_info(ckpt);
    const DataSet data = load_data(*o, info.model.classes());
    if (data.channels != info.model.in_channels())
      throw Error(o->data_dir + ": images have " + std::to_string(data.channels) + " channels, but the model expects " +
                  std::to_string(info.model.in_channels()));
    const FoldSplit split = fold_split(static_cast<int64_t>(data.train.size()), fold, o->seed);
    const auto& indices = fold < 0 ? split.train : split.eval;
    const auto samples = select(data.train, indices);
    Predictor predictor = checkpoint_predictor(*o, ckpt, info, device, samples);
    const Metrics m = evaluate(predictor, samples);
    print_metrics("evaluation of " + ckpt + " (step " + std::to_string(info.step) + ") on fold " + o->fold, m);
    const std::string dir = o->log_dir.empty() ? o->model_dir : o->log_dir;
    ensure_writable_directory(dir, "log");
    const std::string out = (std::filesystem::path(dir) / "eval_results.json").string();
    auto j = nlohmann::json::parse(m.to_json());
    j["checkpoint"] = ckpt;
    j["step"] = info.step;
    j["fold"] = o->fold;
    write_atomically(out, [&](const std::string& tmp) { std::ofstream(tmp) << j.dump(2) << '\n'; });
  });
}

}  // namespace unet::cli
