// The training loop: batches from the loader, Adam steps, logging, evaluation, checkpoints.
#include "unet/trainer.h"

#include "unet/error.h"
#include "unet/fused.h"
#include "unet/logger.h"
#include "unet/plot.h"
#include "unet/predictor.h"
#include "unet/runtime.h"
#include "unet/step_graph.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>

#include <filesystem>

namespace unet {
namespace fs = std::filesystem;

std::string TrainOptions::to_json() const {
  nlohmann::json j = {{"batch_size", batch_size},   {"learning_rate", learning_rate},
                      {"weight_decay", weight_decay}, {"max_steps", max_steps},
                      {"seed", seed},               {"augment", augment},
                      {"elastic", augment_options.elastic}, {"precision", unet::to_string(precision)},
                      {"input_mode", unet::to_string(input_mode)},
                      {"input_size", input_size},   {"world_size", world_size},
                      {"device", device.str()}, {"channels_last", channels_last},
                      {"lr_schedule", schedule.to_string()}, {"fused", fused}, {"border_weights", border_weights},
                      {"border_w0", weight_map.w0}, {"border_sigma", weight_map.sigma}, {"graphs", graphs}, {"lr_warmup_steps", schedule.warmup_steps},
                      {"final_lr_factor", schedule.final_factor}};
  return j.dump();
}

std::string TrainOptions::fingerprint() const {
  auto j = nlohmann::json::parse(to_json());
  j.erase("device");
  return j.dump();
}

LoaderOptions TrainOptions::loader_options(int64_t start_step) const {
  LoaderOptions l;
  l.batch_size = batch_size;
  l.seed = seed;
  l.augment = augment;
  l.augment_options = augment_options;
  l.threads = loader_threads;
  l.pin_memory = device.is_cuda();
  l.start_step = start_step;
  l.rank = dist ? dist->rank() : rank;
  l.world_size = dist ? dist->world_size() : world_size;
  return l;
}

Trainer::Trainer(const UNetOptions& model_options, const TrainOptions& options)
    : model_options_(model_options), options_(options) {
  model_options_.validate();
  require_supported(options_.precision, options_.device);
  if (options_.batch_size < 1) throw Error("--batch-size must be at least 1 (got " + std::to_string(options_.batch_size) + ")");
  if (options_.max_steps < 0) throw Error("--max-steps must not be negative");
  if (!(options_.learning_rate > 0.0)) throw Error("--learning-rate must be positive");
  if (options_.weight_decay < 0.0) throw Error("--weight-decay must not be negative");
  if (options_.log_every < 1) throw Error("--log-every must be at least 1");
  if (options_.schedule.kind == ScheduleKind::kCosine && options_.schedule.total_steps == 0)
    options_.schedule.total_steps = options_.max_steps;
  options_.schedule.validate();
  if (options_.dist) {
    options_.rank = options_.dist->rank();
    options_.world_size = options_.dist->world_size();
  }
  geometry_.input = options_.input_size;
  geometry_.output = output_size(model_options_, options_.input_size);
  geometry_.tile = options_.input_mode == InputMode::kTile;
  seed_everything(options_.seed);
  model_ = UNet(model_options_);
  model_->to(options_.device);
  if (options_.channels_last) use_channels_last(*model_);
  use_fused_ = options_.fused && options_.device.is_cuda();
  if (use_fused_) model_->use_fused(true);
  optimizer_ = std::make_unique<GraphSafeAdam>(
      model_->parameters(), torch::optim::AdamOptions(options_.learning_rate).weight_decay(options_.weight_decay),
      options_.schedule);
  scaler_ = std::make_unique<LossScaler>(options_.device, options_.precision == Precision::kFP16);
  if (options_.dist) {
    reducer_ = std::make_unique<GradientReducer>(*options_.dist, model_->parameters());
    synchronise_ranks();
  }
  if (options_.graphs && options_.device.is_cuda()) {
    if (!cuda_graphs_built()) {
      notice("this build has no CUDA graph support; training without CUDA graphs");
    } else if (reducer_) {
      // The bucketed all-reduce launches from gradient hooks and waits on c10d work objects on
      // the host, which a capture cannot record.
      notice("CUDA graphs are not used in data-parallel runs; training eagerly");
    } else {
      use_graphs_ = true;
      eager_before_capture_ = options_.graph_warmup;
      graph_ = std::make_unique<StepGraph>(options_.device);
    }
  }
}

void Trainer::notice(const std::string& text) const {
  if (options_.rank == 0 && !options_.quiet) unet::notice(text);
}

void Trainer::synchronise_ranks() {
  if (!reducer_) return;
  auto parameters = model_->parameters();
  {
    at::NoGradGuard no_grad;
    options_.dist->broadcast(parameters, 0);
  }
  if (options_.rank > 0) seed_everything(options_.seed * 7919 + static_cast<uint64_t>(options_.rank) * 104729 + static_cast<uint64_t>(step_));
}

LossTerms Trainer::step(const Batch& batch) {
  model_->train();
  at::Tensor images = batch.images.to(options_.device, /*non_blocking=*/true);
  if (options_.channels_last) images = images.contiguous(at::MemoryFormat::ChannelsLast);
  const at::Tensor labels = batch.labels.to(options_.device, /*non_blocking=*/true);
  const at::Tensor weights = batch.weights.defined() ? batch.weights.to(options_.device, /*non_blocking=*/true) : at::Tensor();
  if (use_graphs_) {
    if (auto terms = graph_step(images, labels, weights)) return *terms;
  }
  optimizer_->zero_grad(/*set_to_none=*/true);
  const LossTerms terms = run_step(images, labels, weights);
  ++step_;
  return terms;
}

LossTerms Trainer::run_step(const at::Tensor& images, const at::Tensor& labels, const at::Tensor& weights) {
  LossTerms terms;
  {
    PrecisionScope precision(options_.device, options_.precision);
    const at::Tensor logits = model_->forward(images);
    // The loss itself is fp32 either way (the fused kernel accumulates in float32).
    terms = use_fused_ ? fused_segmentation_loss(logits, labels, weights) : segmentation_loss(logits, labels, weights);
  }
  scaler_->scale(terms.total).backward();
  // Ranks average the scaled gradients first, so every rank sees the same inf flag and makes
  // the same skip decision.
  if (reducer_) reducer_->finish();
  if (scaler_->enabled()) {
    // The skip decision stays on the device: the optimizer leaves everything unchanged when the
    // flag is set, so no host read interrupts the step (or breaks a graph capture).
    optimizer_->update(scaler_->unscale(model_->parameters()));
    scaler_->update();
  } else {
    optimizer_->update();
  }
  return terms;
}

std::optional<LossTerms> Trainer::graph_step(const at::Tensor& images, const at::Tensor& labels,
                                             const at::Tensor& weights) {
  if (!graph_captured_) {
    if (eager_before_capture_ > 0) {
      // Eager warm-up on the capture's stream: cuDNN autotuning and workspaces outside the capture.
      --eager_before_capture_;
      LossTerms terms;
      graph_->warmup([&] {
        optimizer_->zero_grad(/*set_to_none=*/true);
        terms = run_step(images, labels, weights);
      });
      ++step_;
      return terms;
    }
    static_images_ = images.clone(at::MemoryFormat::Preserve);
    static_labels_ = labels.clone();
    static_weights_ = weights.defined() ? weights.clone() : at::Tensor();
    // Gradients must be allocated inside the capture (from the graph's pool), so that every
    // replay writes them in place.
    optimizer_->zero_grad(/*set_to_none=*/true);
    try {
      graph_->capture([this] {
        const LossTerms t = run_step(static_images_, static_labels_, static_weights_);
        graph_terms_ = {t.cross_entropy.detach(), t.dice_loss.detach(), t.total.detach()};
      });
      graph_captured_ = true;
    } catch (const Error& e) {
      notice(std::string(e.what()) + "; training continues without CUDA graphs");
      use_graphs_ = false;
      graph_.reset();
      static_images_ = at::Tensor();
      static_labels_ = at::Tensor();
      static_weights_ = at::Tensor();
      return std::nullopt;
    }
  }
  // A batch of another shape (none in a normal run) takes the eager path; the graph stays valid.
  if (images.sizes() != static_images_.sizes() || labels.sizes() != static_labels_.sizes() ||
      weights.defined() != static_weights_.defined() || (weights.defined() && weights.sizes() != static_weights_.sizes()))
    return std::nullopt;
  static_images_.copy_(images, /*non_blocking=*/true);
  static_labels_.copy_(labels, /*non_blocking=*/true);
  if (weights.defined()) static_weights_.copy_(weights, /*non_blocking=*/true);
  graph_->replay();
  ++step_;
  return graph_terms_;
}

Metrics Trainer::evaluate(const std::vector<Sample>& samples) {
  // Each rank evaluates every world_size-th image; the metric sums are then added up.
  std::vector<Sample> mine;
  for (size_t i = static_cast<size_t>(options_.rank); i < samples.size(); i += static_cast<size_t>(options_.world_size))
    mine.push_back(samples[i]);
  Predictor predictor(model_, geometry_, options_.device, options_.batch_size, options_.channels_last);
  predictor.use_precision(options_.precision);
  if (geometry_.tile) {
    TileOptions tiles;
    tiles.input = options_.input_size;
    tiles.batch = options_.batch_size;
    predictor.use_tiles(tiles);
  }
  MetricAccumulator acc = accumulate(predictor, mine);
  if (reducer_) {
    at::Tensor state = acc.state().to(options_.device);
    options_.dist->all_reduce_sum(state);
    acc.set_state(state);
  }
  model_->train();
  return acc.result();
}

void Trainer::save() {
  if (options_.rank != 0 || options_.model_dir.empty()) return;
  CheckpointInfo info;
  info.model = model_options_;
  info.input_size = options_.input_size;
  info.step = step_;
  auto config = nlohmann::json::parse(options_.to_json());
  config["image_size"] = {image_height_, image_width_};
  info.train_config = config.dump();
  if (scaler_->enabled()) info.scaler_state = scaler_->state();
  save_checkpoint(checkpoint_path(options_.model_dir), model_, optimizer_.get(), info);
}

void prepare_model_dir(const TrainOptions& options) {
  if (options.model_dir.empty()) return;
  ensure_writable_directory(options.model_dir, "model");
  const std::string ckpt = checkpoint_path(options.model_dir);
  if (options.rank == 0 && fs::exists(ckpt) && !options.resume && !options.overwrite)
    fail_file(ckpt, "a checkpoint is already there; pass --resume to continue it or --overwrite to start over");
}

TrainResult Trainer::fit(const std::vector<Sample>& train, const std::vector<Sample>& eval) {
  if (train.empty()) throw Error("no training images");
  image_height_ = train.front().image.size(1);
  image_width_ = train.front().image.size(2);
  prepare_model_dir(options_);
  const std::string ckpt = options_.model_dir.empty() ? "" : checkpoint_path(options_.model_dir);
  RunLogger log(options_.log_dir, options_.rank == 0, options_.max_steps, options_.quiet);
  if (options_.resume && !ckpt.empty() && fs::exists(ckpt)) {
    const CheckpointInfo info = load_checkpoint(ckpt, model_, optimizer_.get(), /*restore_rng=*/true);
    if (info.input_size != options_.input_size)
      fail_file(ckpt, "checkpoint was trained with input size " + std::to_string(info.input_size) + ", not " +
                          std::to_string(options_.input_size));
    step_ = info.step;
    if (scaler_->enabled() && info.scaler_state.defined()) scaler_->set_state(info.scaler_state);
    model_->to(options_.device);
    if (options_.channels_last) use_channels_last(*model_);
    optimizer_->align_state();
    synchronise_ranks();
    log.message("resuming from " + ckpt + " at step " + std::to_string(step_));
  } else if (options_.resume) {
    log.message("no checkpoint in " + options_.model_dir + "; starting at step 0");
  }
  if (reducer_) {
    options_.dist->require_same("configuration", to_json(model_options_) + options_.fingerprint());
    double pixel_sum = 0.0;
    for (const auto& s : train) pixel_sum += s.image.sum().item<double>() + (s.mask.defined() ? s.mask.sum().item<double>() : 0.0);
    char data[64];
    std::snprintf(data, sizeof(data), "%zu:%.6e", train.size(), pixel_sum);
    options_.dist->require_same("training data", data);
  }
  log.record(nlohmann::json{{"type", "config"}, {"model", nlohmann::json::parse(to_json(model_options_))},
                            {"train", nlohmann::json::parse(options_.to_json())}, {"start_step", step_}}
                 .dump());

  const LoaderOptions loader_options = options_.loader_options(step_);
  std::vector<Sample> samples = train;
  if (options_.border_weights) {
    const auto t0 = std::chrono::steady_clock::now();
    // One map per label, computed once; augmentation then warps it with the mask.
    at::parallel_for(0, static_cast<int64_t>(samples.size()), /*grain_size=*/1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        Sample& s = samples[static_cast<size_t>(i)];
        if (!s.mask.defined()) throw Error("border weights need labelled training images (" + s.name + " has no mask)");
        s.weights = border_weight_map(s.mask, model_options_.classes(), options_.weight_map);
      }
    });
    log.message("border weight maps for " + std::to_string(samples.size()) + " labels in " +
                format_duration(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()));
  }
  auto shared = std::make_shared<const std::vector<Sample>>(std::move(samples));

  TrainResult result;
  result.first_step = step_;
  double timed_seconds = 0.0;
  int64_t timed_steps = 0;
  auto window_start = std::chrono::steady_clock::now();
  int64_t window_steps = 0;
  const auto run_start = std::chrono::steady_clock::now();
  {
    BatchLoader loader(shared, geometry_, model_options_.classes(), loader_options);
    DevicePrefetcher batches([&loader] { return loader.next(); }, options_.device, options_.channels_last);
    while (step_ < options_.max_steps) {
      const auto t0 = std::chrono::steady_clock::now();
      const Batch batch = batches.next();
      const LossTerms terms = step(batch);
      // The upload of the next batch overlaps the step just launched.
      if (step_ < options_.max_steps) batches.prefetch();
      const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (step_ - result.first_step > options_.warmup_steps) {
        timed_seconds += dt;
        ++timed_steps;
      }
      ++window_steps;
      if (step_ % options_.log_every == 0 || step_ == options_.max_steps) {
        const double window = std::chrono::duration<double>(std::chrono::steady_clock::now() - window_start).count();
        at::Tensor losses = at::stack({terms.cross_entropy.detach(), terms.dice_loss.detach()});
        if (reducer_) {
          options_.dist->all_reduce_sum(losses);
          losses = losses / options_.world_size;
        }
        const double ce = losses[0].item<double>(), dice = losses[1].item<double>();
        result.last_loss = ce + dice;
        log.train_step(step_, ce, dice, window > 0 ? window_steps * options_.batch_size * options_.world_size / window : 0.0,
                       optimizer_->learning_rate().item<double>(),
                       scaler_->enabled() ? scaler_->current_scale() : 0.0, scaler_->skipped_steps());
        window_start = std::chrono::steady_clock::now();
        window_steps = 0;
      }
      if (options_.evaluate_every > 0 && step_ % options_.evaluate_every == 0 && step_ < options_.max_steps && !eval.empty())
        log.evaluation(step_, evaluate(eval));
      if (options_.checkpoint_every > 0 && step_ % options_.checkpoint_every == 0 && step_ < options_.max_steps) save();
    }
  }
  result.steps = step_ - result.first_step;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count();
  if (timed_steps == 0) {
    timed_seconds = result.seconds;
    timed_steps = result.steps;
  }
  result.images_per_second = timed_seconds > 0 ? timed_steps * options_.batch_size * options_.world_size / timed_seconds : 0.0;
  save();
  if (!eval.empty()) {
    result.metrics = evaluate(eval);
    result.evaluated = true;
    log.evaluation(step_, result.metrics);
  }
  if (options_.rank == 0 && !options_.log_dir.empty()) {
    try {
      log.message("learning curves: " + plot_training_log(options_.log_dir));
    } catch (const Error& e) {
      log.message(std::string("unet: notice: no learning-curve plot: ") + e.what());
    }
  }
  log.record(nlohmann::json{{"type", "summary"},
                            {"steps", result.steps},
                            {"final_step", step_},
                            {"seconds", result.seconds},
                            {"images_per_second", result.images_per_second},
                            {"last_loss", result.last_loss},
                            {"skipped_steps", scaler_->skipped_steps()}}
                 .dump());
  return result;
}

}  // namespace unet
