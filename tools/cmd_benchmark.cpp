// `unet benchmark`: training or inference throughput and latency percentiles, or loader throughput.
#include "allocator.h"
#include "embed.h"
#include "options.h"

#include "model/json.h"
#include "runtime/json.h"
#include "unet/dist/dist.h"
#include "unet/infer/layer_profile.h"
#include "unet/model/winograd_conv.h"
#include "unet/model/geometry.h"
#include "unet/runtime/device.h"
#include "unet/runtime/files.h"
#include "unet/runtime/precision.h"
#include "unet/runtime/profile.h"
#include "unet/runtime/timing.h"
#include "unet/train/prefetcher.h"
#include "unet/train/trainer.h"

#include <ATen/ATen.h>
#ifdef UNET_TORCH_HAS_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

namespace unet::cli {
namespace {

enum class Mode { kTrain, kPredict, kLoader, kLayers, kTrainLayers };
const EnumNames<Mode>& mode_names() {
  static const EnumNames<Mode> names = {
      {"train", Mode::kTrain}, {"predict", Mode::kPredict}, {"loader", Mode::kLoader}, {"layers", Mode::kLayers}, {"train-layers", Mode::kTrainLayers}};
  return names;
}

struct BenchmarkCommand {
  DataOptions data;
  UNetOptions model;
  TrainOptions train;
  RuntimeOptions runtime;
  Mode mode = Mode::kTrain;
  /// Random tensors already on the device instead of the data pipeline.
  bool synthetic = false;
  int64_t warmup_steps = 10;
  int64_t steps = 50;
  std::string output, baseline, profile;

  void validate() const {
    data.validate();
    model.validate();
    train.validate();
    runtime.validate();
    require_option(steps >= 1, "benchmark.steps", "must be at least 1", steps);
    require_option(warmup_steps >= 0, "benchmark.warmup_steps", "must not be negative", warmup_steps);
    if (synthetic && mode == Mode::kLoader) throw OptionError("exec_mode", " loader measures the data pipeline; drop --synthetic");
  }
};

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

/// What every mode measures: the timed steps, then (when asked) a profile of 5 more.
LatencyStats measure(const BenchmarkCommand& o, const c10::Device& where, const std::function<void()>& run) {
  const LatencyStats stats = summarize_latencies(time_steps(o.warmup_steps, o.steps, where, run), o.train.batch_size);
  if (!o.profile.empty()) {
    const StepProfile p = profile_steps(run, /*steps=*/5, where, o.profile);
    std::printf("%s  wrote trace %s\n", format_profile(p).c_str(), o.profile.c_str());
  }
  return stats;
}

Batch random_batch(const BenchmarkCommand& o, const UNetOptions& model, const Geometry& g, const c10::Device& device) {
  Batch batch;
  batch.images = at::randn({o.train.batch_size, model.in_channels(), g.input, g.input}).to(device);
  batch.labels = at::randint(model.classes(), {o.train.batch_size, g.output, g.output}, at::kLong).to(device);
  return batch;
}

LatencyStats benchmark_training(const BenchmarkCommand& o, RunContext& context, const UNetOptions& model, const Geometry& g,
                                const std::vector<Sample>& train) {
  TrainOptions t = o.train;
  t.model_dir.clear();
  t.log_dir.clear();
  connect(context, o.runtime.dist_timeout_s);
  Trainer trainer(model, t, context);
  if (o.synthetic) {
    const Batch batch = random_batch(o, model, g, context.device);
    return measure(o, context.device, [&] { trainer.step(batch); });
  }
  BatchLoader loader(std::make_shared<const std::vector<Sample>>(train), g, model.classes(), t.loader_options(context, model.scheme()));
  DevicePrefetcher batches([&loader] { return loader.next(); }, context.device, t.exec.channels_last);
  return measure(o, context.device, [&] {
    trainer.step(batches.next());
    batches.prefetch();
  });
}

LatencyStats benchmark_inference(const BenchmarkCommand& o, const RunContext& context, const UNetOptions& model,
                                 const Geometry& g, const std::vector<Sample>& train) {
  seed_everything(o.train.seed);
  const UNet net(model);
  const ExecOptions& exec = o.train.exec;
  Predictor predictor(net, g, context.device, o.train.batch_size, exec.channels_last);
  predictor.use_precision(context.precision);
  predictor.use_graphs(exec.graphs);
  predictor.use_fused(exec.fused);
  predictor.use_cpu_engine(exec.cpu_engine, exec.conv_algorithm);
  at::Tensor inputs;
  if (o.synthetic) {
    inputs = random_batch(o, model, g, context.device).images;
  } else {
    std::vector<Sample> chunk;
    for (int64_t i = 0; i < o.train.batch_size; ++i) chunk.push_back(train[static_cast<size_t>(i) % train.size()]);
    inputs = make_eval_batch(chunk, g, model.classes()).images.to(context.device);
  }
  if (context.precision == Precision::kInt8) {
    // Calibrated on the measured inputs themselves (min-max): a speed measurement, as the peers'
    // int8 models calibrated on random inputs are; `unet quantize` calibrates trained models.
    if (!context.device.is_cpu()) throw OptionError("precision", " int8 runs on CPUs only: add {device} cpu");
    Calibrator calibrator(model);
    calibrator.observe(net, inputs);
    predictor.use_int8(std::make_shared<Int8Engine>(net, calibrator.scales(CalibrationMethod::kMinMax)));
  }
  // Probabilities left on the device, as the PyTorch reference's inference step does.
  return measure(o, context.device, [&] { at::softmax(predictor.forward(inputs, /*to_host=*/false), 1); });
}

LatencyStats benchmark_loader(const BenchmarkCommand& o, const RunContext& context, const UNetOptions& model,
                              const Geometry& g, const std::vector<Sample>& train) {
  RunContext cpu = context;
  cpu.device = c10::Device(c10::kCPU);
  BatchLoader loader(std::make_shared<const std::vector<Sample>>(train), g, model.classes(), o.train.loader_options(cpu, model.scheme()));
  return measure(o, cpu.device, [&] { loader.next(); });
}

/// The CPU's vector and matrix flags (avx*, fma, amx*), which decide the kernels' speed.
std::string vector_flags() {
  std::istringstream words(cpu_flags());
  std::string word, out;
  while (words >> word)
    if (word.rfind("avx", 0) == 0 || word == "fma" || word.rfind("amx", 0) == 0) out += (out.empty() ? "" : " ") + word;
  return out.empty() ? "unknown" : out;
}

/// Layers modes: each 3x3 convolution alone (forward, or with `training` forward and backward),
/// direct against Winograd, on stdout and in the JSON file.
void benchmark_layers(const BenchmarkCommand& o, const UNetOptions& model, const std::string& out, bool training) {
  const int64_t side = o.train.input_size, batch = o.train.batch_size;
  output_size(model, side);  // legal, or the error naming the nearest sizes
  std::printf("benchmark %s: %s, input %lld, batch %lld, float32, %lld rounds, %d threads (unet's own loops: %d), CPU flags: %s; "
              "Winograd transforms: %s\n",
              training ? "train-layers (forward + backward)" : "layers (forward)", model.describe().c_str(), static_cast<long long>(side), static_cast<long long>(batch),
              static_cast<long long>(o.steps), at::get_num_threads(), parallel_loop_threads(), vector_flags().c_str(),
              winograd_instruction_set());
  std::printf("  %-18s %11s %5s %18s %18s %18s %8s %8s %26s  %s\n", "layer", "channels", "side", "direct ms (spread)",
              "F(4x4) ms", "F(6x6) ms", "F4/dir", "F6/dir", "error direct/F4/F6", "auto");
  nlohmann::json layers = nlohmann::json::array();
  double direct = 0, winograd = 0, winograd6 = 0, chosen = 0;
  for (const LayerTiming& t : profile_conv_layers(model, batch, side, static_cast<int>(o.steps), training)) {
    const std::string channels = std::to_string(t.step.in_channels) + " -> " + std::to_string(t.step.out_channels);
    char six_ms[32] = "                 -", six_ratio[16] = "       -", six_error[16] = "       -";  // training
    if (!training) {  // F(6x6): inference only
      std::snprintf(six_ms, sizeof six_ms, "%9.2f (%4.0f%%)", t.winograd6_ms, 100 * t.winograd6_spread);
      std::snprintf(six_ratio, sizeof six_ratio, "%7.2fx", t.direct_ms / t.winograd6_ms);
      std::snprintf(six_error, sizeof six_error, "%8.1e", t.winograd6_error);
    }
    std::printf("  %-18s %11s %5lld %9.2f (%4.0f%%) %9.2f (%4.0f%%) %s %7.2fx %s %8.1e/%8.1e/%s  %s\n",
                t.step.layer.name.c_str(), channels.c_str(), static_cast<long long>(t.step.input_side), t.direct_ms,
                100 * t.direct_spread, t.winograd_ms, 100 * t.winograd_spread, six_ms, t.direct_ms / t.winograd_ms,
                six_ratio, t.direct_error, t.winograd_error, six_error, conv_kernel_name(t.auto_kernel));
    direct += t.direct_ms;
    winograd += t.winograd_ms;
    winograd6 += t.winograd6_ms;
    chosen += t.ms(t.auto_kernel);
    layers.push_back({{"name", t.step.layer.name}, {"in_channels", t.step.in_channels},
                      {"out_channels", t.step.out_channels}, {"input_side", t.step.input_side},
                      {"direct_ms", t.direct_ms}, {"direct_spread", t.direct_spread}, {"winograd_ms", t.winograd_ms},
                      {"winograd_spread", t.winograd_spread}, {"winograd6_ms", t.winograd6_ms},
                      {"winograd6_spread", t.winograd6_spread}, {"direct_gflops", t.direct_gflops()},
                      {"winograd_gflops", t.winograd_gflops()}, {"winograd6_gflops", t.winograd6_gflops()},
                      {"direct_error", t.direct_error}, {"winograd_error", t.winograd_error},
                      {"winograd6_error", t.winograd6_error}, {"auto", conv_kernel_name(t.auto_kernel)}});
  }
  std::printf("  3x3 convolutions in all: direct %.1f ms, F(4x4) %.1f ms, F(6x6) %.1f ms, auto %.1f ms (%.2fx direct)\n",
              direct, winograd, winograd6, chosen, direct / chosen);
  nlohmann::json j = {{"exec_mode", training ? "train-layers" : "layers"}, {"model", model}, {"input_size", side}, {"batch_size", batch},
                      {"rounds", o.steps}, {"cpu_threads", at::get_num_threads()},
                      {"parallel_loop_threads", parallel_loop_threads()}, {"cpu_flags", vector_flags()},
                      {"winograd_instruction_set", winograd_instruction_set()}, {"layers", layers},
                      {"direct_ms", direct}, {"winograd_ms", winograd}, {"winograd6_ms", winograd6}, {"auto_ms", chosen}};
  write_text_atomically(out, json_text(j, 2) + "\n");
  report_results(out);
  std::printf("  wrote %s\n", out.c_str());
}

/// The results on stdout and in the JSON file.
void report(const BenchmarkCommand& o, const RunContext& context, const UNetOptions& model, const Geometry& g,
            const LatencyStats& stats, double baseline, const std::string& out) {
  const int world = o.mode == Mode::kTrain ? context.world_size() : 1;
  const bool graphs = o.train.exec.graphs && context.device.is_cuda(), fused = o.train.exec.fused && context.device.is_cuda();
  std::printf("benchmark %s: %s, batch %lld, %lld timed steps after %lld warm-up, %s, %s on %s\n",
              name_of(mode_names(), o.mode).c_str(), model.describe().c_str(), static_cast<long long>(o.train.batch_size),
              static_cast<long long>(stats.steps), static_cast<long long>(o.warmup_steps),
              o.synthetic ? "synthetic tensors" : "data pipeline",
              (to_string(context.precision) + (graphs ? ", CUDA graphs" : "") + (fused ? ", fused kernels" : "")).c_str(),
              context.device.str().c_str());
  std::printf("  throughput  %.2f images/s%s\n", stats.images_per_second * world,
              world > 1 ? (" (global, " + std::to_string(world) + " processes)").c_str() : "");
  std::printf("  latency ms  mean %.2f  p50 %.2f  p90 %.2f  p95 %.2f  p99 %.2f\n", stats.mean_ms, stats.p50_ms, stats.p90_ms,
              stats.p95_ms, stats.p99_ms);
  const int64_t peak_host = peak_host_memory_bytes();
  const std::string allocator = memory_allocator();
  std::printf("  host memory peak %.2f GiB (%s)\n", static_cast<double>(peak_host) / (1 << 30), allocator.c_str());
  nlohmann::json j = stats;
  j["allocator"] = allocator;
  j["peak_host_memory_bytes"] = peak_host;
  j["exec_mode"] = name_of(mode_names(), o.mode);
  j["world_size"] = world;
  j["global_images_per_second"] = stats.images_per_second * world;
  if (baseline > 0) {
    const double efficiency = stats.images_per_second / baseline;  // per process against the one-process run
    j["weak_scaling_efficiency"] = efficiency;
    std::printf("  weak scaling %.1f%% of %d x %.2f images/s (baseline %s)\n", 100 * efficiency, world, baseline, o.baseline.c_str());
  }
  j["synthetic"] = o.synthetic;
  j["device"] = context.device.str();
  j["device_name"] = context.device.is_cuda() ? "cuda" : "cpu";
  j["precision"] = to_string(context.precision);
  j["graphs"] = graphs;
  j["fused"] = fused;
  j["cpu_engine"] = o.mode != Mode::kLoader && o.train.exec.cpu_engine && context.device.is_cpu();
  j["cpu_threads"] = at::get_num_threads();
  j["parallel_loop_threads"] = parallel_loop_threads();
  if (context.device.is_cuda()) j["peak_memory_bytes"] = peak_device_memory(context.device);
  j["model"] = model;
  j["input_size"] = g.input;
  write_text_atomically(out, json_text(j, 2) + "\n");
  report_results(out);
  std::printf("  wrote %s\n", out.c_str());
}

void run_benchmark(const BenchmarkCommand& o) {
  RunContext context = make_run_context(o.runtime);
  if (!context.leader() && o.mode != Mode::kTrain) return;  // inference, loader and layer benchmarks run in one process
  const std::string out = o.output.empty() ? (std::filesystem::path(o.train.model_dir) /
                                              ("benchmark_" + name_of(mode_names(), o.mode) + ".json")).string()
                                           : o.output;
  auto parent = [](const std::string& file) {
    const std::filesystem::path p = std::filesystem::path(file).parent_path();
    return p.empty() ? std::string(".") : p.string();
  };
  CommandFiles()
      .reads(o.synthetic ? std::vector<std::string>{} : data_files(o.data))
      .reads(o.baseline)
      .writes_into(parent(out))
      .writes_into(o.profile.empty() ? "" : parent(o.profile))
      .writes(out)
      .writes(o.profile)
      .check();
  // The baseline is read before minutes of timing, not after.
  const double baseline = o.baseline.empty() ? 0.0 : read_baseline_images_per_second(o.baseline);
  ensure_writable_directory(parent(out), "output");
  if (!o.profile.empty()) ensure_writable_directory(parent(o.profile), "profile");
  if (o.mode == Mode::kLayers || o.mode == Mode::kTrainLayers)
    return benchmark_layers(o, o.model, out, o.mode == Mode::kTrainLayers);
  DataSet data;
  if (!o.synthetic) data = load_data(o.data, o.model.classes());
  UNetOptions model = o.model;
  if (!o.synthetic) model = model_for(o.model, data, o.train.input_size);
  const Geometry g = geometry_of(model, o.train.input_size, o.train.input_mode == InputMode::kTile);
  std::vector<Sample> train;
  if (!o.synthetic) train = fold_data(data, o.data).train;
  LatencyStats stats;
  switch (o.mode) {
    case Mode::kTrain: stats = benchmark_training(o, context, model, g, train); break;
    case Mode::kPredict: stats = benchmark_inference(o, context, model, g, train); break;
    case Mode::kLoader: stats = benchmark_loader(o, context, model, g, train); break;
    case Mode::kLayers:
    case Mode::kTrainLayers: break;
  }
  if (context.leader()) report(o, context, model, g, stats, baseline, out);
}

}  // namespace

void register_benchmark(CLI::App& app) {
  auto o = std::make_shared<BenchmarkCommand>();
  o->train.model_dir = kDefaultModelDir;
  CLI::App* cmd = app.add_subcommand("benchmark", "Measure training or inference speed (images/s, latency percentiles)");
  add_choice(*cmd, "--exec-mode,--exec_mode", "exec_mode", o->mode, mode_names(),
             "train, predict, loader (the data pipeline alone), layers (each 3x3 convolution on the CPU, direct against Winograd; --max-steps rounds) or train-layers (the same with each convolution's backward)");
  cmd->add_flag("--synthetic", o->synthetic, "Random tensors already on the device instead of the data pipeline");
  add_value(*cmd, "--batch-size,--batch_size", "batch_size", o->train.batch_size, "Images per batch");
  add_value(*cmd, "--warmup-steps,--warmup_steps", "benchmark.warmup_steps", o->warmup_steps, "Untimed steps first");
  add_value(*cmd, "--max-steps,--max_steps", "benchmark.steps", o->steps, "Timed steps");
  add_switch(*cmd, "--augment", "augment", o->train.augment, "Augment (train and loader modes)");
  add_value(*cmd, "--output", "output", o->output, "JSON file for the results (default: <model-dir>/benchmark_<mode>.json)");
  add_value(*cmd, "--model-dir,--model_dir", "model_dir", o->train.model_dir, "Default location of the JSON output");
  add_value(*cmd, "--baseline", "baseline", o->baseline, "JSON of the same benchmark with one process: report weak-scaling efficiency");
  add_value(*cmd, "--profile", "profile", o->profile,
            "After timing, profile 5 more steps: time per kernel group (GPU) or operator (CPU), and a Chrome trace to this file");
  // Speed is measured on the built-in synthetic data unless --data-dir names other data.
  o->data.use_synthetic = true;
  add_data_options(*cmd, o->data, /*synthetic_flag=*/false);
  add_model_options(*cmd, o->model, o->train);
  add_exec_options(*cmd, o->train.exec);
  add_runtime_options(*cmd, o->runtime, {&o->data.seed, &o->train.seed});
  check_after_parse(*cmd, [o] { o->validate(); });
  on_run(*cmd, [o] { run_benchmark(*o); });
}

}  // namespace unet::cli
