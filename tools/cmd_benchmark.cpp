// `unet benchmark`: training or inference throughput and latency percentiles, or loader throughput.
#include "options.h"

#include "unet/benchmark.h"
#include "unet/error.h"
#include "unet/loader.h"
#include "unet/predictor.h"
#include "unet/profile.h"
#include "unet/runtime.h"
#include "unet/step_graph.h"

#include <ATen/ATen.h>
#include <torch/cuda.h>
#ifdef UNET_TORCH_HAS_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

namespace unet::cli {
namespace {

/// Peak bytes the caching allocator has held on `device` (0 in builds without CUDA).
int64_t peak_device_memory(const c10::Device& device) {
#ifdef UNET_TORCH_HAS_CUDA
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
  return stats.reserved_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)].peak;
#else
  (void)device;
  return 0;
#endif
}

void synchronize(const c10::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

/// Times `run` for `warmup` untimed and `steps` timed calls.
std::vector<double> time_steps(int64_t warmup, int64_t steps, const c10::Device& device, const std::function<void()>& run) {
  for (int64_t i = 0; i < warmup; ++i) run();
  synchronize(device);
  std::vector<double> seconds;
  for (int64_t i = 0; i < steps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    run();
    synchronize(device);
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return seconds;
}

}  // namespace

void register_benchmark(CLI::App& app) {
  auto o = std::make_shared<Options>();
  auto mode = std::make_shared<std::string>("train");
  auto synthetic = std::make_shared<bool>(false);
  auto output = std::make_shared<std::string>();
  auto baseline = std::make_shared<std::string>();
  auto profile = std::make_shared<std::string>();
  o->warmup_steps = 10;
  o->max_steps = 50;
  CLI::App* cmd = app.add_subcommand("benchmark", "Measure training or inference speed (images/s, latency percentiles)");
  cmd->add_option("--exec-mode,--exec_mode", *mode, "train, predict, or loader (the data pipeline alone)")
      ->capture_default_str();
  cmd->add_flag("--synthetic", *synthetic, "Random tensors already on the device instead of the data pipeline");
  cmd->add_option("--batch-size,--batch_size", o->batch_size, "Images per batch")->capture_default_str();
  cmd->add_option("--warmup-steps,--warmup_steps", o->warmup_steps, "Untimed steps first")->capture_default_str();
  cmd->add_option("--max-steps,--max_steps", o->max_steps, "Timed steps")->capture_default_str();
  cmd->add_flag("--augment", o->augment, "Augment (train and loader modes)");
  cmd->add_option("--output", *output, "JSON file for the results (default: <model-dir>/benchmark_<mode>.json)");
  cmd->add_option("--model-dir,--model_dir", o->model_dir, "Default location of the JSON output")->capture_default_str();
  cmd->add_option("--baseline", *baseline, "JSON of the same benchmark with one process: report weak-scaling efficiency");
  cmd->add_option("--profile", *profile,
                  "After timing, profile 5 more steps: time per kernel group (GPU) or operator (CPU), and a Chrome trace to this file");
  add_data_options(*cmd, *o);
  add_model_options(*cmd, *o);
  add_runtime_options(*cmd, *o);
  cmd->callback([o, mode, synthetic, output, baseline, profile] {
    if (*mode != "train" && *mode != "predict" && *mode != "loader")
      throw Error("--exec-mode: expected train, predict or loader, got '" + *mode + "'");
    if (o->max_steps < 1 || o->warmup_steps < 0) throw Error("--max-steps must be at least 1 and --warmup-steps at least 0");
    c10::Device device = setup_runtime(*o);
    const DistEnv env = detect_environment();
    if (env.rank > 0 && *mode != "train") return;  // inference and loader benchmarks run in one process
    const std::string out = output->empty()
                                ? (std::filesystem::path(o->model_dir) / ("benchmark_" + *mode + ".json")).string()
                                : *output;
    auto ensure_parent = [](const std::string& file, const std::string& what) {
      const std::filesystem::path parent = std::filesystem::path(file).parent_path();
      ensure_writable_directory(parent.empty() ? "." : parent.string(), what);
    };
    ensure_parent(out, "output");
    if (!profile->empty()) ensure_parent(*profile, "profile");
    const int fold = parse_fold(o->fold);
    DataSet data;
    if (!*synthetic) data = load_data(*o, o->classes);
    const UNetOptions model = model_options(*o, *synthetic ? 1 : data.channels);
    const Geometry geometry{o->input_size, output_size(model, o->input_size),
                            parse_input_mode(o->input_mode) == InputMode::kTile};
    std::vector<Sample> train;
    if (!*synthetic) train = select(data.train, fold_split(static_cast<int64_t>(data.train.size()), fold, o->seed).train);

    LatencyStats stats;
    // The profile reuses the timed step of whichever mode runs.
    auto measure = [&](const c10::Device& where, const std::function<void()>& run) {
      stats = summarize_latencies(time_steps(o->warmup_steps, o->max_steps, where, run), o->batch_size);
      if (!profile->empty()) {
        const StepProfile p = profile_steps(run, /*steps=*/5, where, *profile);
        std::printf("%s  wrote trace %s\n", format_profile(p).c_str(), profile->c_str());
      }
    };
    if (*mode == "loader") {
      if (*synthetic) throw Error("--exec-mode loader measures the data pipeline; drop --synthetic");
      TrainOptions t = train_options(*o, c10::Device(c10::kCPU));
      BatchLoader loader(std::make_shared<const std::vector<Sample>>(train), geometry, model.classes(), t.loader_options());
      measure(c10::Device(c10::kCPU), [&] { loader.next(); });
    } else if (*mode == "train") {
      TrainOptions t = train_options(*o, device);
      t.model_dir.clear();
      t.log_dir.clear();
      t.dist = setup_distributed(*o, device);
      t.device = device;
      Trainer trainer(model, t);
      if (*synthetic) {
        Batch batch;
        batch.images = at::randn({o->batch_size, model.in_channels(), geometry.input, geometry.input}).to(device);
        batch.labels = at::randint(model.classes(), {o->batch_size, geometry.output, geometry.output}, at::kLong).to(device);
        measure(device, [&] { trainer.step(batch); });
      } else {
        BatchLoader loader(std::make_shared<const std::vector<Sample>>(train), geometry, model.classes(), t.loader_options());
        DevicePrefetcher batches([&loader] { return loader.next(); }, device, t.channels_last);
        measure(device, [&] {
          trainer.step(batches.next());
          batches.prefetch();
        });
      }
    } else {
      seed_everything(o->seed);
      Predictor predictor(UNet(model), geometry, device, o->batch_size, channels_last(*o));
      predictor.use_precision(parse_precision(o->precision));
      predictor.use_graphs(use_graphs(*o, device));
      predictor.use_fused(use_fused(*o, device));
      at::Tensor inputs;
      if (*synthetic) {
        inputs = at::randn({o->batch_size, model.in_channels(), geometry.input, geometry.input}).to(device);
      } else {
        std::vector<Sample> chunk;
        for (int64_t i = 0; i < o->batch_size; ++i) chunk.push_back(train[static_cast<size_t>(i) % train.size()]);
        inputs = make_eval_batch(chunk, geometry, model.classes()).images.to(device);
      }
      // Probabilities left on the device, as the PyTorch reference's inference step does.
      measure(device, [&] { at::softmax(predictor.forward(inputs, /*to_host=*/false), 1); });
    }
    const int world = *mode == "train" ? env.world_size : 1;
    if (env.rank > 0) return;
    std::printf("benchmark %s: %s, batch %lld, %lld timed steps after %lld warm-up, %s, %s on %s\n", mode->c_str(),
                model.describe().c_str(), static_cast<long long>(o->batch_size), static_cast<long long>(stats.steps),
                static_cast<long long>(o->warmup_steps), *synthetic ? "synthetic tensors" : "data pipeline",
                (o->precision + (use_graphs(*o, device) ? ", CUDA graphs" : "") + (use_fused(*o, device) ? ", fused kernels" : "")).c_str(), device.str().c_str());
    std::printf("  throughput  %.2f images/s%s\n", stats.images_per_second * world,
                world > 1 ? (" (global, " + std::to_string(world) + " processes)").c_str() : "");
    std::printf("  latency ms  mean %.2f  p50 %.2f  p90 %.2f  p95 %.2f  p99 %.2f\n", stats.mean_ms, stats.p50_ms, stats.p90_ms,
                stats.p95_ms, stats.p99_ms);
    auto j = nlohmann::json::parse(stats.to_json());
    j["exec_mode"] = *mode;
    j["world_size"] = world;
    j["global_images_per_second"] = stats.images_per_second * world;
    if (!baseline->empty()) {
      std::ifstream in(*baseline);
      if (!in) fail_file(*baseline, "cannot read the baseline benchmark");
      nlohmann::json b;
      try {
        b = nlohmann::json::parse(in);
      } catch (const nlohmann::json::exception&) {
        fail_file(*baseline, "not a benchmark JSON file");
      }
      const double single = b.value("global_images_per_second", b.value("images_per_second", 0.0));
      const double efficiency = single > 0 ? stats.images_per_second * world / (single * world) : 0.0;
      j["weak_scaling_efficiency"] = efficiency;
      std::printf("  weak scaling %.1f%% of %d x %.2f images/s (baseline %s)\n", 100 * efficiency, world, single, baseline->c_str());
    }
    j["synthetic"] = *synthetic;
    j["device"] = device.str();
    j["device_name"] = device.is_cuda() ? "cuda" : "cpu";
    j["precision"] = o->precision;
    j["graphs"] = use_graphs(*o, device);
    j["fused"] = use_fused(*o, device);
    j["cpu_threads"] = at::get_num_threads();
    if (device.is_cuda()) j["peak_memory_bytes"] = peak_device_memory(device);
    j["model"] = nlohmann::json::parse(to_json(model));
    j["input_size"] = geometry.input;
    write_atomically(out, [&](const std::string& tmp) { std::ofstream(tmp) << j.dump(2) << '\n'; });
    std::printf("  wrote %s\n", out.c_str());
  });
}

}  // namespace unet::cli
