// The best checkpoint of a run, kept as a hard link to the checkpoint written at its step: the
// main checkpoint is replaced by renames (write_atomically), so the link keeps the old file's
// content without a second copy on disk while the best is also the last.
#include "unet/train/best.h"
#include "runtime/json.h"

#include "unet/model/checkpoint.h"
#include "unet/runtime/error.h"
#include "unet/runtime/files.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <numeric>
#include <unistd.h>

namespace unet {
namespace fs = std::filesystem;

std::string best_dir(const std::string& model_dir) { return (fs::path(model_dir) / kBestDir).string(); }

SelectionScore selection_score(const Metrics& m) {
  const double dice = m.class_dice.empty() ? NAN
                                           : std::accumulate(m.class_dice.begin(), m.class_dice.end(), 0.0) /
                                                 static_cast<double>(m.class_dice.size());
  // Without truth objects F1 is 1 for a model that finds none: it would rank nothing.
  if (m.has_objects && m.objects.truth_objects > 0) return {"objects F1 at IoU 0.5", m.objects.f1(0), dice};
  return {"mean Dice", dice, dice};
}

namespace {

std::string record_path(const std::string& model_dir) { return (fs::path(best_dir(model_dir)) / kBestRecord).string(); }

/// Links (or copies) `from` to a temporary name beside `to` and renames it onto `to`.
void replace_with_link(const std::string& from, const std::string& to) {
  const std::string tmp = (fs::path(to).parent_path() / ("." + fs::path(to).filename().string() + ".link" +
                                                         std::to_string(::getpid()))).string();
  std::error_code ec;
  fs::remove(tmp, ec);
  fs::create_hard_link(from, tmp, ec);
  if (ec) {
    ec.clear();
    fs::copy_file(from, tmp, fs::copy_options::overwrite_existing, ec);
  }
  if (!ec) fs::rename(tmp, to, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    fail_file(to, "cannot keep the best checkpoint: " + ec.message());
  }
}

}  // namespace

BestCheckpoint::BestCheckpoint(std::string model_dir, bool writes, int64_t resumed_step)
    : model_dir_(std::move(model_dir)), writes_(writes && !model_dir_.empty()) {
  if (model_dir_.empty()) return;
  const std::string record = record_path(model_dir_);
  if (resumed_step >= 0) {
    // A record that cannot be read starts the ranking afresh (the next evaluation becomes the best).
    std::ifstream in(record);
    const auto j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    const auto number = [&j](const char* key) { return j.contains(key) && j[key].is_number() ? j[key].get<double>() : NAN; };
    if (j.is_object() && j.contains("step") && j["step"].is_number_unsigned() && j["step"].get<int64_t>() <= resumed_step &&
        std::isfinite(number("value"))) {
      step_ = j["step"].get<int64_t>();
      score_ = {j.contains("criterion") && j["criterion"].is_string() ? j["criterion"].get<std::string>() : "",
                number("value"), number("mean_dice")};
    }
  } else if (writes_) {
    // A fresh run (prepare_model_dir allowed it: --overwrite, or nothing there) owns model_dir.
    std::error_code ignored;
    fs::remove(checkpoint_path(best_dir(model_dir_)), ignored);
    fs::remove(record, ignored);
  }
}

bool BestCheckpoint::improves(const SelectionScore& score) const {
  if (!std::isfinite(score.value)) return false;
  if (step_ < 0 || score.value > score_.value) return true;
  return score.value == score_.value && score.mean_dice > score_.mean_dice;
}

void BestCheckpoint::keep(int64_t step, const SelectionScore& score) {
  step_ = step;
  score_ = score;
  if (!writes_) return;
  const std::string dir = best_dir(model_dir_);
  ensure_writable_directory(dir, "best-checkpoint");
  replace_with_link(checkpoint_path(model_dir_), checkpoint_path(dir));
  write_text_atomically(record_path(model_dir_),
                        json_text(nlohmann::json{{"step", step}, {"criterion", score.name}, {"value", score.value}, {"mean_dice", score.mean_dice}}) + "\n");
}

}  // namespace unet
