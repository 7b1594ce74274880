// The training loop: batches from the loader, steps, and the logging, evaluation and checkpoints due after them.
#include "unet/train/trainer.h"
#include "runtime/json.h"

#include "eval/json.h"
#include "model/json.h"
#include "train/json.h"
#include "unet/data/preprocess.h"
#include "unet/eval/instances.h"
#include "unet/infer/evaluate.h"
#include "unet/infer/predictor.h"
#include "unet/model/checkpoint.h"
#include "unet/runtime/device.h"
#include "unet/runtime/files.h"
#include "unet/runtime/signals.h"
#include "unet/runtime/timing.h"
#include "unet/train/logger.h"
#include "unet/train/plot.h"
#include "unet/train/prefetcher.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>

namespace unet {
namespace fs = std::filesystem;
namespace {

/// "step 1 of 6400 took 2.1s; about 3h44m for the whole run at this pace (the first steps are slower)".
std::string first_step_note(int64_t step, int64_t max_steps, int64_t first_step, double seconds) {
  char took[32];
  if (seconds < 60) std::snprintf(took, sizeof took, "%.1fs", seconds);
  const std::string duration = seconds < 60 ? std::string(took) : format_duration(seconds);
  const int64_t left = max_steps - first_step;
  const std::string whole = first_step == 0 ? "for the whole run" : "for the " + std::to_string(left) + " steps of this run";
  return "step " + std::to_string(step) + " of " + std::to_string(max_steps) + " took " + duration + "; about " +
         format_duration(seconds * static_cast<double>(left)) + " " + whole + " at this pace (the first steps are slower)";
}

}  // namespace

/// The timed steps' throughput (after the warm-up; evaluations and checkpoints left out, device
/// work waited for) and the current logging window's.
struct Trainer::LoopClock {
  explicit LoopClock(const c10::Device& device) : timed(device) {}
  DeviceStopwatch timed;
  int64_t timed_steps = 0;
  double window_start = steady_seconds();
  int64_t window_steps = 0;
};

Trainer::Trainer(const UNetOptions& model_options, const TrainOptions& options, const RunContext& context)
    : model_options_(model_options), options_(options), context_(context) {
  model_options_.validate();
  options_.validate();
  if (context_.precision == Precision::kInt8)
    throw OptionError("precision", " int8 is for inference only: train in fp32 or bf16, then quantize the model (unet quantize)");
  if (options_.schedule.kind == ScheduleKind::kCosine && options_.schedule.total_steps == 0)
    options_.schedule.total_steps = options_.max_steps;
  geometry_ = geometry_of(model_options_, options_.input_size, options_.input_mode == InputMode::kTile);
  seed_everything(options_.seed);
  model_ = UNet(model_options_);
  model_->to(context_.device);
  if (options_.exec.channels_last) use_channels_last(*model_);
  const bool fused = options_.exec.fused && context_.device.is_cuda();
  if (fused) model_->use_fused(true);
  model_->use_cpu_fusion(options_.exec.cpu_engine && context_.device.is_cpu(), options_.exec.conv_algorithm);
  optimizer_ = std::make_unique<GraphSafeAdam>(
      model_->parameters(), torch::optim::AdamOptions(options_.learning_rate).weight_decay(options_.weight_decay),
      options_.schedule);
  scaler_ = std::make_unique<LossScaler>(context_.device, context_.precision == Precision::kFP16);
  if (context_.dist) {
    reducer_ = std::make_unique<GradientReducer>(*context_.dist, model_->parameters());
    synchronise_ranks();
  }
  body_ = std::make_unique<TrainStep>(model_, *optimizer_, *scaler_, reducer_.get(), context_.device, context_.precision,
                                      fused);
  setup_graphs();
}

Trainer::~Trainer() = default;

void Trainer::setup_graphs() {
  if (!options_.exec.graphs || !context_.device.is_cuda()) return;
  if (!cuda_graphs_built()) {
    notice("this build has no CUDA graph support; training without CUDA graphs");
  } else if (reducer_) {
    // The bucketed all-reduce launches from gradient hooks and waits on c10d work objects on
    // the host, which a capture cannot record.
    notice("CUDA graphs are not used in data-parallel runs; training eagerly");
  } else {
    graphed_ = std::make_unique<GraphedStep>(*body_, *optimizer_, context_.device, options_.graph_warmup);
  }
}

void Trainer::notice(const std::string& text) const {
  if (context_.verbose()) unet::notice(text);
}

void Trainer::synchronise_ranks() {
  if (!reducer_) return;
  auto parameters = model_->parameters();
  {
    at::NoGradGuard no_grad;
    context_.dist->broadcast(parameters, 0);
  }
  if (context_.rank() > 0)
    seed_everything(options_.seed * 7919 + static_cast<uint64_t>(context_.rank()) * 104729 + static_cast<uint64_t>(step_));
}

LossTerms Trainer::step(const Batch& batch) {
  model_->train();
  at::Tensor images = batch.images.to(context_.device, /*non_blocking=*/true);
  if (options_.exec.channels_last) images = images.contiguous(at::MemoryFormat::ChannelsLast);
  const at::Tensor labels = batch.labels.to(context_.device, /*non_blocking=*/true);
  const at::Tensor weights = batch.weights.defined() ? batch.weights.to(context_.device, /*non_blocking=*/true) : at::Tensor();
  if (graphed_) {
    const auto terms = graphed_->run(images, labels, weights, context_.verbose());
    if (graphed_->failed()) graphed_.reset();
    if (terms) {
      ++step_;
      return *terms;
    }
  }
  optimizer_->zero_grad(/*set_to_none=*/true);
  const LossTerms terms = (*body_)(images, labels, weights);
  ++step_;
  return terms;
}

Metrics Trainer::evaluate(const std::vector<Sample>& samples) {
  // Each rank evaluates every world_size-th image; the metric sums are then added up.
  std::vector<Sample> mine;
  for (size_t i = static_cast<size_t>(context_.rank()); i < samples.size(); i += static_cast<size_t>(context_.world_size()))
    mine.push_back(samples[i]);
  Predictor predictor(model_, geometry_, context_.device, options_.batch_size, options_.exec.channels_last);
  predictor.use_precision(context_.precision);
  predictor.use_normalisation(options_.normalisation);
  predictor.use_object_rule(object_rule(ObjectRecord{object_area_}));
  if (geometry_.tile) {
    TileOptions tiles;
    tiles.input = options_.input_size;
    tiles.batch = options_.batch_size;
    predictor.use_tiles(tiles);
  }
  MetricAccumulator acc = accumulate(predictor, mine);
  if (reducer_) {
    at::Tensor state = acc.state().to(context_.device);
    context_.dist->all_reduce_sum(state);
    acc.set_state(state);
  }
  model_->train();
  return acc.result();
}

void Trainer::save() {
  if (!context_.leader() || options_.model_dir.empty()) return;
  // Never replace a good checkpoint with diverged weights.
  for (const auto& p : model_->parameters())
    if (!at::isfinite(p).all().item<bool>()) diverged("the weights are no longer finite");
  CheckpointInfo info;
  info.model = model_options_;
  info.input_size = options_.input_size;
  info.step = step_;
  info.input_mode = options_.input_mode;
  info.normalisation = options_.normalisation;
  info.objects.median_area = object_area_;
  info.object_diameter = options_.object_diameter;
  info.image_height = image_height_;
  info.image_width = image_width_;
  info.data_record = options_.data_record;
  info.class_naming = options_.class_naming;
  info.training_record = json_text(training_record(options_, context_));
  if (scaler_->enabled()) info.scaler_state = scaler_->state();
  save_checkpoint(checkpoint_path(options_.model_dir), model_, optimizer_.get(), info);
  saved_step_ = step_;
}

void prepare_model_dir(const TrainOptions& options, const RunContext& context) {
  if (options.model_dir.empty()) return;
  ensure_writable_directory(options.model_dir, "model");
  const std::string ckpt = checkpoint_path(options.model_dir);
  if (!context.leader() || options.overwrite) return;
  if (fs::exists(ckpt)) {
    if (options.resume) return;
    throw OptionError("", ckpt + ": a checkpoint is already there; pass {resume} to continue it or {overwrite} to start over");
  }
  if (const std::string best = checkpoint_path(best_dir(options.model_dir)); fs::exists(best))
    throw OptionError("", best + ": an earlier run's best checkpoint is there; pass {overwrite} to start over (it is "
                              "removed) or choose another model directory");
}

TrainResult Trainer::fit(const std::vector<Sample>& train, const std::vector<Sample>& eval) {
  if (train.empty()) throw Error("no training images");
  image_height_ = train.front().image.size(1);
  image_width_ = train.front().image.size(2);
  std::vector<at::Tensor> objects;
  for (const Sample& s : train) objects.push_back(s.instances);
  object_area_ = median_object_area(objects);
  prepare_model_dir(options_, context_);
  // The checkpoint is checked before anything (logs, event files) is written.
  const std::string resumed = resume();
  // Only a run that continues a checkpoint continues its ranking (a record beyond its step is not its own).
  best_ = std::make_unique<BestCheckpoint>(options_.model_dir, context_.leader(), saved_step_ >= 0 ? saved_step_ : -1);
  RunLogger log(options_.log_dir, context_.leader(), options_.max_steps, context_.quiet, options_.class_naming);
  log.resumed_at(step_);
  if (!resumed.empty()) log.message(resumed);
  require_same_ranks(train);
  log.record(config_record());
  const auto samples = training_samples(train, log);
  TrainResult result;
  result.first_step = step_;
  LoopClock clock(context_.device);
  const double start = steady_seconds();
  {
    BatchLoader loader(samples, geometry_, model_options_.classes(), options_.loader_options(context_, model_options_.scheme(), step_));
    DevicePrefetcher batches([&loader] { return loader.next(); }, context_.device, options_.exec.channels_last);
    if (step_ < options_.max_steps)
      log.message("step " + std::to_string(step_ + 1) + " of " + std::to_string(options_.max_steps) +
                  " under way (the first also prepares the batches and the network's memory)");
    while (step_ < options_.max_steps) {
      if (step_ - result.first_step == options_.warmup_steps) clock.timed.start();
      const LossTerms terms = step(batches.next());
      if (step_ == result.first_step + 1) {
        synchronize(context_.device);
        log.message(first_step_note(step_, options_.max_steps, result.first_step, steady_seconds() - start));
      }
      if (step_ < options_.max_steps) batches.prefetch();  // the upload overlaps the step just launched
      if (clock.timed.running()) ++clock.timed_steps;
      after_step(terms, eval, log, result, clock);
    }
    clock.timed.stop();
  }
  synchronize(context_.device);
  result.steps = step_ - result.first_step;
  result.seconds = steady_seconds() - start;
  const bool timed = clock.timed_steps > 0 && clock.timed.seconds() > 0;
  const double images = static_cast<double>((timed ? clock.timed_steps : result.steps) * options_.batch_size * context_.world_size());
  const double seconds = timed ? clock.timed.seconds() : result.seconds;
  result.images_per_second = seconds > 0 ? images / seconds : 0.0;
  finish(result, eval, log);
  return result;
}

std::string Trainer::resume() {
  if (!options_.resume) return "";
  const std::string ckpt = options_.model_dir.empty() ? "" : checkpoint_path(options_.model_dir);
  if (ckpt.empty() || !fs::exists(ckpt)) return "no checkpoint in " + options_.model_dir + "; starting at step 0";
  const CheckpointInfo info = load_checkpoint(ckpt, model_, optimizer_.get(), /*restore_rng=*/true);
  if (info.input_size != options_.input_size)
    fail_file(ckpt, "checkpoint was trained with input size " + std::to_string(info.input_size) + ", not " +
                        std::to_string(options_.input_size));
  step_ = info.step;
  if (scaler_->enabled() && info.scaler_state.defined()) scaler_->set_state(info.scaler_state);
  model_->to(context_.device);
  if (options_.exec.channels_last) use_channels_last(*model_);
  optimizer_->align_state();
  synchronise_ranks();
  saved_step_ = step_;
  return "resuming from " + ckpt + " at step " + std::to_string(step_);
}

void Trainer::require_same_ranks(const std::vector<Sample>& train) {
  if (!reducer_) return;
  nlohmann::json fingerprint = training_record(options_, context_);
  fingerprint.erase("device");
  context_.dist->require_same("configuration", json_text(nlohmann::json(model_options_)) + json_text(fingerprint));
  double pixel_sum = 0.0;
  for (const auto& s : train) pixel_sum += s.image.sum().item<double>() + (s.mask.defined() ? s.mask.sum().item<double>() : 0.0);
  char data[64];
  std::snprintf(data, sizeof(data), "%zu:%.6e", train.size(), pixel_sum);
  context_.dist->require_same("training data", data);
}

std::string Trainer::config_record() const {
  return json_text(nlohmann::json{
      {"type", "config"}, {"model", model_options_}, {"train", training_record(options_, context_)}, {"start_step", step_}});
}

std::shared_ptr<const std::vector<Sample>> Trainer::training_samples(const std::vector<Sample>& train, RunLogger& log) const {
  std::vector<Sample> samples = train;
  if (options_.normalisation.mode != IntensityMode::kRange) {
    // Each whole image normalised once, before augmentation and tiling (as prediction does).
    at::parallel_for(0, static_cast<int64_t>(samples.size()), /*grain_size=*/1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        Sample& s = samples[static_cast<size_t>(i)];
        s.intensity = normalisation_affine(s.image, options_.normalisation);
        s.image = apply_affine(s.image, s.intensity);
      }
    });
  }
  if (options_.border_weights) {
    const double t0 = steady_seconds();
    // One map per label, computed once; augmentation then warps it with the mask.
    at::parallel_for(0, static_cast<int64_t>(samples.size()), /*grain_size=*/1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        Sample& s = samples[static_cast<size_t>(i)];
        s.weights = sample_weight_map(s, model_options_.classes(), options_.weight_map);
      }
    });
    log.message("border weight maps for " + std::to_string(samples.size()) + " labels in " +
                format_duration(steady_seconds() - t0));
  }
  return std::make_shared<const std::vector<Sample>>(std::move(samples));
}

void Trainer::after_step(const LossTerms& terms, const std::vector<Sample>& eval, RunLogger& log, TrainResult& result,
                         LoopClock& clock) {
  ++clock.window_steps;
  const bool last = step_ == options_.max_steps;
  // A stop request (SIGINT, SIGTERM, SIGHUP) ends the run after this step; data-parallel ranks
  // agree on it at the logged steps, where they exchange their losses anyway.
  int stop = reducer_ ? 0 : stop_requested();
  if (step_ % options_.log_every == 0 || last) stop = log_losses(terms, log, result, clock);
  if (stop != 0) stop_now(stop);
  auto due = [&](int64_t every) { return every > 0 && step_ % every == 0 && !last; };
  // Evaluations and checkpoints stay out of the throughput (the stopwatch waits for the steps first).
  auto untimed = [&](const std::function<void()>& work) {
    const bool timing = clock.timed.running();
    clock.timed.stop();
    work();
    if (timing) clock.timed.start();
  };
  if (due(options_.evaluation_interval()) && !eval.empty()) untimed([&] { evaluated(evaluate(eval), log); });
  if (due(options_.checkpoint_every) && saved_step_ != step_) untimed([&] { save(); });
}

int Trainer::log_losses(const LossTerms& terms, RunLogger& log, TrainResult& result, LoopClock& clock) {
  // A stop request travels with the losses as one flag per stop signal (`kStopSignals`; any other
  // request counts as SIGTERM), so that every rank stops as the rank that was asked.
  const int stop = stop_requested();
  const bool listed = std::find(kStopSignals.begin(), kStopSignals.end(), stop) != kStopSignals.end();
  const int asked = stop == 0 || listed ? stop : SIGTERM;
  std::vector<at::Tensor> values = {terms.cross_entropy.detach().to(at::kFloat), terms.dice_loss.detach().to(at::kFloat)};
  for (const int s : kStopSignals)
    values.push_back(at::full({}, asked == s ? 1.0f : 0.0f, terms.total.options().dtype(at::kFloat)));
  at::Tensor losses = at::stack(values);
  if (reducer_) {
    context_.dist->all_reduce_sum(losses);
    losses = losses / context_.world_size();
  }
  const at::Tensor host = losses.cpu();  // waits for the steps
  const double ce = host[0].item<double>(), dice = host[1].item<double>();
  // With fp16 loss scaling a non-finite step is skipped (weights unchanged) and the scale backs
  // off; elsewhere it means the run has diverged.
  if (!std::isfinite(ce + dice) && !scaler_->enabled()) diverged("the loss is " + std::to_string(ce + dice));
  result.last_loss = ce + dice;
  const double now = steady_seconds(), window = now - clock.window_start;
  const double images = static_cast<double>(clock.window_steps * options_.batch_size * context_.world_size());
  log.train_step(step_, ce, dice, window > 0 ? images / window : 0.0, optimizer_->learning_rate().item<double>(),
                 scaler_->enabled() ? scaler_->current_scale() : 0.0, scaler_->skipped_steps());
  if (options_.on_log && context_.leader())
    options_.on_log({step_, options_.max_steps, ce + dice, window > 0 ? images / window : 0.0});
  clock.window_start = now;
  clock.window_steps = 0;
  // Any rank's request stops every rank: with this rank's own signal, or the one another rank was
  // asked by (the flags are averaged over ranks: above 0 where some rank set them).
  if (stop != 0) return stop;
  for (size_t i = 0; i < kStopSignals.size(); ++i)
    if (host[static_cast<int64_t>(2 + i)].item<double>() > 0) return kStopSignals[i];
  return 0;
}

void Trainer::stop_now(int signal) {
  save();
  const std::string where = options_.model_dir.empty() ? "no checkpoint (no model directory)"
                                                       : "checkpoint " + checkpoint_path(options_.model_dir);
  throw Stopped(signal, "stopped by " + signal_name(signal) + " at step " + std::to_string(step_) + "; " + where);
}

void Trainer::diverged(const std::string& what) {
  const std::string kept = saved_step_ < 0 ? "no checkpoint was written"
                                           : "the last checkpoint (step " + std::to_string(saved_step_) + ", " +
                                                 checkpoint_path(options_.model_dir) + ") is kept";
  throw Error("training diverged at step " + std::to_string(step_) + ": " + what + "; " + kept +
              " (a smaller learning rate may help)");
}

void Trainer::evaluated(const Metrics& m, RunLogger& log) {
  log.evaluation(step_, m);
  const SelectionScore score = selection_score(m);
  if (!best_->improves(score)) return;
  if (saved_step_ != step_) save();  // the best is kept as the checkpoint of its step (rank 0)
  best_->keep(step_, score);          // the other ranks only follow the ranking
  log.record(json_text(nlohmann::json{{"type", "best"}, {"step", step_}, {"criterion", score.name}, {"value", score.value}}));
}

void Trainer::finish(TrainResult& result, const std::vector<Sample>& eval, RunLogger& log) {
  save();
  if (!eval.empty()) {
    result.metrics = evaluate(eval);
    result.evaluated = true;
    evaluated(result.metrics, log);
  }
  result.best_step = best_->step();
  result.best = best_->score();
  if (context_.leader() && !options_.log_dir.empty()) {
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
}

}  // namespace unet
