// Progress display on terminals, plain log lines elsewhere, and JSON lines for every record.
#include "unet/train/logger.h"
#include "runtime/json.h"
#include "unet/train/options.h"

#include "eval/json.h"
#include "unet/runtime/files.h"

#include <nlohmann/json.hpp>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>

namespace unet {

double eta_seconds(double elapsed, int64_t step, int64_t first_step, int64_t total) {
  const int64_t done = step - first_step, left = total - step;
  if (done <= 0 || left <= 0) return 0.0;
  return elapsed / static_cast<double>(done) * static_cast<double>(left);
}

RunLogger::RunLogger(const std::string& log_dir, bool enabled, int64_t total_steps, bool quiet, ClassNaming naming)
    : enabled_(enabled), quiet_(quiet), tty_(::isatty(STDERR_FILENO) != 0), total_steps_(total_steps),
      naming_(std::move(naming)), start_(std::chrono::steady_clock::now()) {
  if (enabled_ && !log_dir.empty()) {
    ensure_writable_directory(log_dir, "log");
    jsonl_ = std::make_unique<AppendFile>((std::filesystem::path(log_dir) / kLogFile).string(), "log file");
    events_ = std::make_unique<EventWriter>(log_dir);
  }
}

RunLogger::~RunLogger() { clear_bar(); }

void RunLogger::clear_bar() {
  if (bar_shown_) {
    std::cerr << "\r\033[K" << std::flush;
    bar_shown_ = false;
  }
}

void RunLogger::train_step(int64_t step, double ce, double dice_loss, double images_per_second, double learning_rate,
                           double loss_scale, int64_t skipped_steps) {
  if (!enabled_) return;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  nlohmann::json j = {{"type", "train"},          {"step", step},
                      {"cross_entropy", ce},      {"dice_loss", dice_loss},
                      {"total_loss", ce + dice_loss}, {"images_per_second", images_per_second},
                      {"learning_rate", learning_rate}, {"elapsed_s", elapsed}};
  if (loss_scale > 0.0) {
    j["loss_scale"] = loss_scale;
    j["skipped_steps"] = skipped_steps;
  }
  if (jsonl_) jsonl_->append(json_text(j) + "\n");
  if (events_) {
    events_->scalar("train/total_loss", ce + dice_loss, step);
    events_->scalar("train/cross_entropy", ce, step);
    events_->scalar("train/dice_loss", dice_loss, step);
    events_->scalar("train/images_per_second", images_per_second, step);
    events_->scalar("train/learning_rate", learning_rate, step);
    if (loss_scale > 0.0) {
      events_->scalar("train/loss_scale", loss_scale, step);
      events_->scalar("train/skipped_steps", static_cast<double>(skipped_steps), step);
    }
    events_->flush();
  }
  if (quiet_) return;
  const double fraction = total_steps_ > 0 ? static_cast<double>(step) / total_steps_ : 1.0;
  const double eta = eta_seconds(elapsed, step, first_step_, total_steps_);
  char stats[160];
  std::snprintf(stats, sizeof(stats), "step %lld/%lld  loss %.4f (ce %.4f, dice %.4f)  %.1f img/s  ETA %s",
                static_cast<long long>(step), static_cast<long long>(total_steps_), ce + dice_loss, ce, dice_loss,
                images_per_second, format_duration(eta).c_str());
  if (tty_) {
    constexpr int kWidth = 24;
    const int filled = static_cast<int>(std::lround(fraction * kWidth));
    std::cerr << "\r\033[K[" << std::string(static_cast<size_t>(filled), '#')
              << std::string(static_cast<size_t>(kWidth - filled), '.') << "] " << stats << std::flush;
    bar_shown_ = true;
  } else {
    std::cerr << stats << '\n' << std::flush;
  }
}

void RunLogger::evaluation(int64_t step, const Metrics& m) {
  if (!enabled_) return;
  nlohmann::json j = m;
  j["type"] = "eval";
  j["step"] = step;
  const int64_t h = naming_.headline;
  const bool headline = naming_.has_headline() && h < static_cast<int64_t>(m.class_dice.size());
  if (headline) {
    j["headline_class"] = naming_.name(h);
    j["headline_dice"] = m.class_dice[static_cast<size_t>(h)];
    j["headline_iou"] = m.class_iou[static_cast<size_t>(h)];
  }
  if (jsonl_) jsonl_->append(json_text(j) + "\n");
  if (events_) {
    for (const auto& [tag, value] : {std::pair<const char*, double>{"eval/dice_score", m.dice_score},
                                     {"eval/cross_entropy", m.cross_entropy},
                                     {"eval/pixel_error", m.pixel_error},
                                     {"eval/v_rand", m.v_rand},
                                     {"eval/v_info", m.v_info},
                                     {"eval/v_rand_thinned", m.v_rand_thinned},
                                     {"eval/v_info_thinned", m.v_info_thinned}})
      events_->scalar(tag, value, step);
    // Per class by name ("eval/foreground_dice"), so that the tags say what was scored.
    for (size_t c = 0; c < m.class_dice.size(); ++c) {
      events_->scalar("eval/" + naming_.name(static_cast<int64_t>(c)) + "_dice", m.class_dice[c], step);
      if (headline && static_cast<int64_t>(c) == h) events_->scalar("eval/headline_dice", m.class_dice[c], step);
    }
    events_->flush();
  }
  // Classes by name; objects where the model has them.
  std::string dice;
  for (size_t c = 0; c < m.class_dice.size(); ++c) {
    char value[16];
    std::snprintf(value, sizeof value, " %.4f", m.class_dice[c]);
    dice += (c ? ", " : "") + naming_.name(static_cast<int64_t>(c)) + value;
  }
  char line[512];
  std::snprintf(line, sizeof(line), "eval at step %lld: dice_score %.4f  cross_entropy %.4f  Dice per class %s  pixel error %.4f",
                static_cast<long long>(step), m.dice_score, m.cross_entropy, dice.c_str(), m.pixel_error);
  std::string text = line;
  if (m.has_objects) {
    std::snprintf(line, sizeof(line), "  object F1 %.4f", m.objects.f1(0));
    text += line;
  }
  message(text);
}

void RunLogger::record(const std::string& json) {
  if (enabled_ && jsonl_) jsonl_->append(json + "\n");
}

void RunLogger::message(const std::string& text) {
  if (!enabled_ || quiet_) return;
  clear_bar();
  std::cerr << text << '\n' << std::flush;
}

}  // namespace unet
