// Shared command-line options: registration, validation and conversion into library configs.
#include "options.h"

#include "unet/error.h"
#include "unet/runtime.h"
#include "unet/synthetic.h"

#include <torch/cuda.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>

namespace unet::cli {

void add_data_options(CLI::App& app, Options& o) {
  app.add_option("--data-dir,--data_dir", o.data_dir,
                 "Data directory: ISBI layout (train-volume.tif, train-labels.tif, test-volume.tif) or "
                 "images/ + masks/ (+ test/); omitted: the embedded synthetic EM-like data set");
  app.add_option("--fold", o.fold, "Cross-validation fold 0-4 held out for evaluation, or 'none' to train on all")
      ->capture_default_str();
  app.add_option("--mask-encoding,--mask_encoding", o.mask_encoding, "Mask values: auto, binary (0/255) or index")
      ->capture_default_str();
  app.add_option("--synthetic-size", o.synthetic_size, "Side of the synthetic slices, pixels")->capture_default_str();
  app.add_option("--synthetic-count", o.synthetic_count, "Labelled synthetic slices")->capture_default_str();
}

void add_model_options(CLI::App& app, Options& o) {
  app.add_option("--filters", o.filters, "Filters of the top level (doubling per level)")->capture_default_str();
  app.add_option("--depth", o.depth, "Number of poolings")->capture_default_str();
  app.add_option("--padding", o.padding, "Convolution padding: valid (reference) or same")->capture_default_str();
  app.add_option("--up-kernel,--up_kernel", o.up_kernel, "Transposed-convolution kernel: 3 (reference) or 2 (paper)")
      ->capture_default_str();
  app.add_option("--classes", o.classes, "Output classes")->capture_default_str();
  app.add_option("--dropout", o.dropout, "Dropout probability on the bottleneck output")->capture_default_str();
  app.add_option("--input-size,--input_size", o.input_size, "Network input side, pixels (must be legal)")
      ->capture_default_str();
  app.add_option("--input-mode", o.input_mode, "resize (the reference) or tile (native-resolution crops)")
      ->capture_default_str();
}

void add_inference_options(CLI::App& app, Options& o) {
  o.input_mode = "auto";
  app.add_option("--input-mode", o.input_mode,
                 "resize, tile (native resolution, overlapping tiles) or auto (tile when the model was trained on tiles "
                 "or the image size differs from the training images')")
      ->capture_default_str();
  app.add_option("--tile-overlap", o.tile_overlap, "Minimum overlap of output tiles, pixels")->capture_default_str();
  app.add_option("--blend", o.blend, "Blending of overlapping tiles: gaussian or uniform")->capture_default_str();
  app.add_option("--tile-batch", o.tile_batch, "Tiles per forward pass (bounds memory)")->capture_default_str();
  app.add_option("--tile-size", o.tile_size, "Tile (network input) side; 0: the model's training input size")
      ->capture_default_str();
  app.add_flag("--tta", o.tta, "Average over the 8 flips and 90-degree rotations");
}

Predictor checkpoint_predictor(const Options& o, const std::string& checkpoint, const CheckpointInfo& info,
                               const c10::Device& device, const std::vector<Sample>& samples) {
  UNet model(info.model);
  load_checkpoint(checkpoint, model, nullptr, /*restore_rng=*/false);
  Predictor predictor(model, Geometry{info.input_size, output_size(info.model, info.input_size)}, device, o.batch_size,
                      channels_last(o));
  const auto config = nlohmann::json::parse(info.train_config, nullptr, /*allow_exceptions=*/false);
  const std::string trained = config.is_object() ? config.value("input_mode", std::string("resize")) : "resize";
  InputMode mode = InputMode::kResize;
  if (o.input_mode == "auto") {
    bool other_size = false;
    if (config.is_object() && config.contains("image_size") && config["image_size"].is_array()) {
      const int64_t h = config["image_size"][0].get<int64_t>(), w = config["image_size"][1].get<int64_t>();
      for (const auto& s : samples) other_size = other_size || s.image.size(1) != h || s.image.size(2) != w;
    }
    mode = trained == "tile" || other_size ? InputMode::kTile : InputMode::kResize;
  } else {
    mode = parse_input_mode(o.input_mode);
  }
  predictor.use_tta(o.tta);
  predictor.use_precision(parse_precision(o.precision));
  predictor.use_graphs(use_graphs(o, device));
  predictor.use_fused(use_fused(o, device));
  if (mode == InputMode::kTile) {
    if (o.tile_batch < 1) throw Error("--tile-batch must be at least 1");
    TileOptions t;
    t.input = o.tile_size > 0 ? o.tile_size : info.input_size;
    output_size(info.model, t.input);  // an illegal tile size names the nearest legal ones
    t.overlap = o.tile_overlap;
    t.blend = parse_blend(o.blend);
    t.batch = o.tile_batch;
    t.tta = o.tta;
    predictor.use_tiles(t);
  }
  return predictor;
}

void add_train_options(CLI::App& app, Options& o) {
  app.add_option("--batch-size,--batch_size", o.batch_size, "Images per step")->capture_default_str();
  app.add_option("--learning-rate,--learning_rate", o.learning_rate, "Adam learning rate")->capture_default_str();
  app.add_option("--weight-decay,--weight_decay", o.weight_decay, "L2 weight decay")->capture_default_str();
  app.add_option("--max-steps,--max_steps", o.max_steps, "Training steps")->capture_default_str();
  app.add_option("--log-every,--log_every", o.log_every, "Log losses every N steps")->capture_default_str();
  app.add_option("--evaluate-every,--evaluate_every", o.evaluate_every, "Evaluate every N steps (0: at the end)")
      ->capture_default_str();
  app.add_option("--checkpoint-every,--checkpoint_every", o.checkpoint_every, "Checkpoint every N steps (0: at the end)")
      ->capture_default_str();
  app.add_option("--warmup-steps,--warmup_steps", o.warmup_steps, "Steps left out of throughput figures")
      ->capture_default_str();
  app.add_flag("--augment,!--no-augment", o.augment, "Augment training data (flips, crop, brightness, elastic)");
  app.add_flag("--border-weights,!--no-border-weights", o.border_weights,
               "The U-Net paper's weighted cross-entropy: class balance plus weight between touching cells");
  app.add_option("--border-w0", o.border_w0, "Border weights: weight of the gap term")->capture_default_str();
  app.add_option("--border-sigma", o.border_sigma, "Border weights: width of the gap term in pixels")->capture_default_str();
  app.add_option("--elastic", o.elastic, "Elastic deformation within --augment: on or off")->capture_default_str();
  app.add_option("--lr-schedule", o.lr_schedule, "Learning-rate schedule: constant (the reference) or cosine decay")
      ->capture_default_str();
  app.add_option("--lr-warmup-steps", o.lr_warmup_steps, "Linear learning-rate warm-up over the first N steps")
      ->capture_default_str();
  app.add_option("--final-lr-factor", o.final_lr_factor, "Cosine schedule: final rate as a fraction of --learning-rate")
      ->capture_default_str();
  app.add_flag("--resume,--resume_training", o.resume, "Continue from the checkpoint in --model-dir");
  app.add_flag("--overwrite", o.overwrite, "Start over even if --model-dir holds a checkpoint (it is replaced)");
}

void add_runtime_options(CLI::App& app, Options& o) {
  app.add_option("--seed", o.seed, "Random seed")->capture_default_str();
  app.add_option("--device", o.device, "auto, cpu, cuda or cuda:N")->capture_default_str();
  app.add_option("--precision", o.precision, "fp32, tf32, fp16 (dynamic loss scaling) or bf16")->capture_default_str();
  app.add_flag_callback("--amp,--use_amp", [&o] { o.precision = "fp16"; }, "Alias of --precision fp16");
  app.add_option("--threads", o.threads, "CPU threads for LibTorch (0: all cores)")->capture_default_str();
  app.add_option("--loader-threads", o.loader_threads, "Data loader worker threads")->capture_default_str();
  app.add_option("--channels-last", o.channels_last, "Channels-last (NHWC) tensors: on or off")->capture_default_str();
  app.add_option("--graphs", o.graphs, "CUDA graphs for training and inference steps: auto (on with CUDA), on or off")
      ->capture_default_str();
  app.add_option("--fused", o.fused, "Fused CUDA kernels (bias + ReLU, loss) instead of the plain LibTorch path: on or off")
      ->capture_default_str();
  app.add_flag("--deterministic", o.deterministic,
               "Deterministic GPU algorithms (no cuDNN autotuning): same seed, same weights; slower");
  app.add_flag_callback("--xla,--use_xla", [&o] { o.graphs = "on"; }, "Alias of --graphs on (the reference's XLA flag)");
  app.add_option("--dist-timeout", o.dist_timeout, "Seconds to wait for other ranks before failing (data-parallel runs)")
      ->capture_default_str();
  app.add_flag("--quiet,-q", o.quiet, "Print only the final results");
}

c10::Device setup_runtime(const Options& o) {
  if (o.batch_size < 1) throw Error("--batch-size must be at least 1 (got " + std::to_string(o.batch_size) + ")");
  configure_cpu_threads(o.threads);
  configure_determinism(o.deterministic);
  const c10::Device device = o.device == "auto" ? (torch::cuda::is_available() ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU))
                                                : parse_device(o.device);
  require_supported(parse_precision(o.precision), device);
  return device;
}

std::shared_ptr<Distributed> setup_distributed(const Options& o, c10::Device& device) {
  const DistEnv env = detect_environment();
  // A launched job uses a process group even at world size 1, so that its cost can be measured.
  if (env.launcher == "none") return nullptr;
  if (o.dist_timeout < 1) throw Error("--dist-timeout must be at least 1 second");
  if (device.is_cuda()) {
    if (env.local_rank >= static_cast<int>(torch::cuda::device_count()))
      throw Error("LOCAL_RANK " + std::to_string(env.local_rank) + " has no GPU: only " +
                  std::to_string(torch::cuda::device_count()) + " are visible");
    device = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank));
  }
  return std::make_shared<Distributed>(env, device, std::chrono::seconds(o.dist_timeout));
}

namespace {
/// An on/off option's value; throws `unet::Error` naming the option otherwise.
bool on_off(const std::string& value, const std::string& option) {
  if (value != "on" && value != "off") throw Error(option + ": expected on or off, got '" + value + "'");
  return value == "on";
}
}  // namespace

bool use_graphs(const Options& o, const c10::Device& device) {
  if (o.graphs != "auto" && o.graphs != "on" && o.graphs != "off")
    throw Error("--graphs: expected auto, on or off, got '" + o.graphs + "'");
  return device.is_cuda() && o.graphs != "off";
}

bool use_fused(const Options& o, const c10::Device& device) {
  return on_off(o.fused, "--fused") && device.is_cuda();
}

bool channels_last(const Options& o) {
  return on_off(o.channels_last, "--channels-last");
}

int parse_fold(const std::string& text) {
  if (text == "none" || text == "None") return -1;
  try {
    size_t used = 0;
    const int fold = std::stoi(text, &used);
    if (used == text.size() && fold >= 0 && fold < fold_count()) return fold;
  } catch (const std::exception&) {
  }
  throw Error("--fold " + text + ": expected 0 to " + std::to_string(fold_count() - 1) + " or 'none'");
}

DataSet load_data(const Options& o, int64_t classes) {
  if (o.data_dir.empty()) {
    SyntheticOptions s;
    s.size = o.synthetic_size;
    s.train_count = o.synthetic_count;
    s.seed = o.seed;
    if (s.size < 16 || s.train_count < 1) throw Error("--synthetic-size must be at least 16 and --synthetic-count at least 1");
    return synthetic_dataset(s);
  }
  return load_dataset(o.data_dir, classes, parse_mask_encoding(o.mask_encoding));
}

UNetOptions model_options(const Options& o, int64_t data_channels) {
  UNetOptions m;
  m.in_channels(o.in_channels > 0 ? o.in_channels : data_channels)
      .classes(o.classes)
      .depth(o.depth)
      .filters(o.filters)
      .padding(parse_padding(o.padding))
      .up_kernel(o.up_kernel)
      .dropout(o.dropout);
  m.validate();
  output_size(m, o.input_size);  // throws with the nearest legal sizes
  return m;
}

TrainOptions train_options(const Options& o, const c10::Device& device) {
  TrainOptions t;
  t.batch_size = o.batch_size;
  t.learning_rate = o.learning_rate;
  t.weight_decay = o.weight_decay;
  t.max_steps = o.max_steps;
  t.log_every = o.log_every;
  t.evaluate_every = o.evaluate_every;
  t.checkpoint_every = o.checkpoint_every;
  t.warmup_steps = o.warmup_steps;
  t.seed = o.seed;
  t.augment = o.augment;
  t.augment_options.elastic = on_off(o.elastic, "--elastic");
  t.resume = o.resume;
  t.overwrite = o.overwrite;
  t.model_dir = o.model_dir;
  t.log_dir = o.log_dir;
  t.device = device;
  t.precision = parse_precision(o.precision);
  t.loader_threads = o.loader_threads;
  t.input_size = o.input_size;
  t.input_mode = parse_input_mode(o.input_mode);
  t.channels_last = channels_last(o);
  t.graphs = use_graphs(o, device);
  t.fused = use_fused(o, device);
  t.schedule.kind = parse_schedule(o.lr_schedule);
  t.schedule.warmup_steps = o.lr_warmup_steps;
  t.schedule.final_factor = o.final_lr_factor;
  t.schedule.validate();
  t.border_weights = o.border_weights;
  t.weight_map.w0 = o.border_w0;
  t.weight_map.sigma = o.border_sigma;
  if (!(o.border_sigma > 0.0) || o.border_w0 < 0.0)
    throw Error("--border-sigma must be positive and --border-w0 not negative");
  t.quiet = o.quiet;
  return t;
}

void print_metrics(const std::string& title, const Metrics& m) {
  std::printf("%s (%lld images)\n", title.c_str(), static_cast<long long>(m.images));
  std::printf("  dice_score (reference, 1 - soft Dice)  %.4f\n", m.dice_score);
  std::printf("  cross_entropy                          %.4f\n", m.cross_entropy);
  std::printf("  membrane Dice (hard, original size)    %.4f\n", m.membrane_dice);
  std::printf("  membrane IoU  (hard, original size)    %.4f\n", m.membrane_iou);
  std::printf("  pixel error   (original size)          %.4f\n", m.pixel_error);
  std::printf("  V_Rand (ISBI, threshold 0.5)           %.4f   best %.4f at %.1f\n", m.v_rand, m.v_rand_best, m.v_rand_threshold);
  std::printf("  V_Info (ISBI, threshold 0.5)           %.4f   best %.4f at %.1f\n", m.v_info, m.v_info_best, m.v_info_threshold);
  std::fflush(stdout);
}

}  // namespace unet::cli
