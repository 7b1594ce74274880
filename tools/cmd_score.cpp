// `unet score`: scores any two-class segmentation of cells and boundaries (unet's or another
// tool's) against the truth the way the ISBI 2012 challenge does, per image and overall.
//
// The prediction is a map of the cell (non-boundary) class: probabilities in [0, 1] (float TIFF)
// or 0-255 (8-bit; 16-bit is scaled by 65535), or a binary mask; `--invert-prediction` for maps
// of the boundary class. The truth is a binary mask (cells non-zero, boundaries 0), as the ISBI
// labels are. Both may be multi-page TIFFs (pages in order), single images, or folders whose files
// are matched by stem. Objects: the truth's instance labels when it has more than two values,
// else its 4-connected cells; the prediction's 4-connected cells where the probability is at least
// 0.5, as everywhere else, or with `--instances` the prediction's own labels (an instance-label
// image: `predict --instances`'s, or another tool's).
//
// Doubtful input is refused rather than guessed at: a truth (or instance-label image) whose
// channels differ, a folder holding two images of one stem ("a.png" and "a.tif"), and with
// `--instances` a binary mask (its only non-zero value 255 or 65535), which would score as one object.
#include "options.h"
#include "runtime/json.h"

#include "eval/json.h"
#include "unet/data/components.h"
#include "unet/data/dataset.h"
#include "unet/data/image_io.h"
#include "unet/eval/metrics.h"
#include "unet/eval/objects.h"
#include "unet/runtime/error.h"
#include "unet/runtime/files.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>

namespace unet::cli {
namespace {

struct ScoreCommand {
  std::string prediction, truth, output;
  bool invert_prediction = false;
  /// The predictions are instance-label images (0 background, one value per object).
  bool instances = false;
};

/// The PNG and TIFF files of `folder` by stem (stem -> file). Two files of one stem ("a.png" and
/// "a.tif") are refused: files are matched by stem, and picking one would be a silent guess.
std::map<std::string, std::string> images_by_stem(const std::string& folder) {
  std::map<std::string, std::string> by_stem;
  for (const std::string& f : image_files(folder)) {  // sorted, as load_images reads a folder
    const auto [it, added] = by_stem.emplace(std::filesystem::path(f).stem().string(), f);
    if (!added)
      fail_file(folder, "holds both " + std::filesystem::path(it->second).filename().string() + " and " +
                            std::filesystem::path(f).filename().string() +
                            " (files are matched by stem, so one would be ignored); keep one");
  }
  return by_stem;
}

/// Pairs of (prediction file, truth file): the two files, or a folder's files matched by stem.
/// With `instances`, a folder's `<stem>_instances` file is the prediction for `<stem>` when present
/// (as `predict --instances` names them).
std::vector<std::pair<std::string, std::string>> pair_files(const std::string& prediction, const std::string& truth,
                                                            bool instances) {
  namespace fs = std::filesystem;
  if (!fs::exists(prediction)) fail_file(prediction, "does not exist");
  if (!fs::exists(truth)) fail_file(truth, "does not exist");
  if (fs::is_directory(prediction) != fs::is_directory(truth))
    fail_file(prediction, "is a " + std::string(fs::is_directory(prediction) ? "folder" : "file") + " but --truth " +
                              truth + " is not: give two files or two folders");
  if (!fs::is_directory(truth)) return {{prediction, truth}};
  const std::map<std::string, std::string> predicted = images_by_stem(prediction);
  std::vector<std::pair<std::string, std::string>> pairs;
  std::vector<std::string> truths;
  for (const auto& entry : images_by_stem(truth)) truths.push_back(entry.second);
  std::sort(truths.begin(), truths.end());  // in file name order
  for (const std::string& t : truths) {
    const std::string stem = fs::path(t).stem().string();
    auto it = instances ? predicted.find(stem + "_instances") : predicted.end();
    if (it == predicted.end()) it = predicted.find(stem);
    if (it == predicted.end()) fail_file(prediction, "has no prediction for " + t + " (files are matched by stem)");
    pairs.emplace_back(it->second, t);
  }
  if (pairs.empty()) fail_file(truth, "holds no PNG or TIFF images");
  return pairs;
}

/// The cell probability [H, W] of one page: one channel, values in [0, 1].
at::Tensor cell_probability(const RawImage& page, const std::string& file, bool invert) {
  if (page.channels() != 1) fail_file(file, "has " + std::to_string(page.channels()) + " channels; a prediction map has one");
  at::Tensor p = page.pixels[0].to(at::kFloat);
  if (page.format == SampleFormat::kFloat32) {
    const double lo = p.min().item<double>(), hi = p.max().item<double>();
    if (!(lo >= 0.0 && hi <= 1.0)) fail_file(file, "holds values from " + std::to_string(lo) + " to " + std::to_string(hi) +
                                                       "; float predictions must be probabilities in [0, 1]");
  } else {
    p = to_unit_range(page)[0];
  }
  return invert ? 1.0 - p : p;
}

/// Refuses `--instances` predictions that are not instance labels: float images, and binary masks,
/// whose only non-zero value (over all pages) is 255 or 65535, the full scale of 8 or 16 bits.
void check_instance_labels(const std::vector<RawImage>& pages, const std::string& file) {
  std::vector<at::Tensor> values;
  for (const RawImage& page : pages) {
    values.push_back(std::get<0>(at::_unique(label_values(page, file, "instance labels"))));
  }
  const at::Tensor all = std::get<0>(at::_unique(at::cat(values))).to(at::kLong);
  const at::Tensor labels = all.masked_select(all != 0);
  if (labels.numel() != 1) return;
  const int64_t only = labels.item<int64_t>();
  if (only == (pages.front().format == SampleFormat::kUInt16 ? 65535 : 255))
    fail_file(file, "--instances expects instance labels (one value per object), but this mask holds only " +
                        std::string(all.numel() == 2 ? "0 and " : "") + std::to_string(only) +
                        ": a binary mask; drop --instances");
}

/// Truth objects of one page (`raw`: its pixel values): its labels when it holds more than two
/// values (an instance-label image), else the 4-connected components of its cells.
at::Tensor truth_objects(const at::Tensor& raw, const at::Tensor& cells) {
  return std::get<0>(at::_unique(raw)).numel() > 2 ? raw : connected_components(cells);
}

nlohmann::json image_record(const std::string& name, int64_t page, const Metrics& m) {
  return {{"prediction", name},   {"page", page},
          {"pixel_error", m.pixel_error}, {"membrane_dice", m.membrane_dice}, {"membrane_iou", m.membrane_iou},
          {"v_rand_thinned", m.v_rand_thinned}, {"v_rand_thinned_threshold", m.v_rand_thinned_threshold},
          {"v_info_thinned", m.v_info_thinned}, {"v_info_thinned_threshold", m.v_info_thinned_threshold},
          {"v_rand", m.v_rand},   {"v_info", m.v_info}};
}

void run_score(const ScoreCommand& o) {
  CommandFiles().reads(image_files(o.prediction)).reads(image_files(o.truth)).writes(o.output).check();
  MetricAccumulator overall;
  nlohmann::json images = nlohmann::json::array();
  const auto pairs = pair_files(o.prediction, o.truth, o.instances);
  std::printf("%-32s %11s %14s %15s %15s %15s %7s\n", "image", "pixel error", "membrane Dice", "V_Rand thinned",
              "V_Info thinned", "objects t/p", "F1@0.5");
  for (const auto& [pred_file, truth_file] : pairs) {
    const std::vector<RawImage> pred = read_image_file(pred_file), truth = read_image_file(truth_file);
    if (o.instances) check_instance_labels(pred, pred_file);
    if (pred.size() != truth.size())
      fail_file(pred_file, "has " + std::to_string(pred.size()) + " pages but " + truth_file + " has " + std::to_string(truth.size()));
    for (size_t k = 0; k < pred.size(); ++k) {
      if (pred[k].height() != truth[k].height() || pred[k].width() != truth[k].width())
        fail_file(pred_file, "page " + std::to_string(k) + " is " + std::to_string(pred[k].width()) + "x" +
                                 std::to_string(pred[k].height()) + " but the truth " + truth_file + " is " +
                                 std::to_string(truth[k].width()) + "x" + std::to_string(truth[k].height()));
      at::Tensor predicted_objects;
      if (o.instances) predicted_objects = label_values(pred[k], pred_file, "instance labels");
      const at::Tensor p = o.instances ? (predicted_objects != 0).to(at::kFloat)
                                       : cell_probability(pred[k], pred_file, o.invert_prediction);
      const at::Tensor raw_truth = label_values(truth[k], truth_file, "truth masks");
      const at::Tensor cells = raw_truth != 0;  // any label is a cell: 0/255 masks and 16-bit instance labels
      const at::Tensor labels = cells.to(at::kLong);  // 1 = cell, 0 = boundary
      static_assert(kMembraneClass == 0, "class 0 is the boundary");
      const at::Tensor probabilities = at::stack({1.0 - p, p});
      MetricAccumulator one;
      one.add_original(probabilities, labels, truth_objects(raw_truth, cells), predicted_objects);
      overall.add(one);
      const Metrics m = one.result();
      const ObjectScores& objects = m.objects;
      const std::string name = std::filesystem::path(pred_file).filename().string() +
                               (pred.size() > 1 ? " #" + std::to_string(k) : std::string());
      const std::string counts = std::to_string(objects.truth_objects) + "/" + std::to_string(objects.predicted_objects);
      std::printf("%-32s %11.4f %14.4f %15.4f %15.4f %15s %7.4f\n", name.c_str(), m.pixel_error, m.membrane_dice,
                  m.v_rand_thinned, m.v_info_thinned, counts.c_str(), objects.f1(0));
      nlohmann::json record = image_record(pred_file, static_cast<int64_t>(k), m);
      record["objects"] = nlohmann::json(objects);
      images.push_back(record);
    }
  }
  const Metrics m = overall.result();
  std::printf("overall (%lld images): pixel error %.4f  membrane Dice %.4f  membrane IoU %.4f\n",
              static_cast<long long>(m.images), m.pixel_error, m.membrane_dice, m.membrane_iou);
  std::printf("  V_Rand (ISBI challenge, thinned)  %.4f at threshold %.1f;  unthinned %.4f (0.5), best %.4f\n",
              m.v_rand_thinned, m.v_rand_thinned_threshold, m.v_rand, m.v_rand_best);
  std::printf("  V_Info (ISBI challenge, thinned)  %.4f at threshold %.1f;  unthinned %.4f (0.5), best %.4f\n",
              m.v_info_thinned, m.v_info_thinned_threshold, m.v_info, m.v_info_best);
  std::printf("  objects: %lld true, %lld predicted; F1 %.4f at IoU 0.5, %.4f at 0.75; mean AP (IoU 0.5-0.95) %.4f; "
              "%lld split, %lld merged\n",
              static_cast<long long>(m.objects.truth_objects), static_cast<long long>(m.objects.predicted_objects),
              m.objects.f1(0), m.objects.f1(5), m.objects.mean_average_precision(),
              static_cast<long long>(m.objects.split), static_cast<long long>(m.objects.merged));
  if (!o.output.empty()) {
    nlohmann::json overall_json = m;
    overall_json.erase("dice_score");  // network-output terms: not defined for a prediction map
    overall_json.erase("cross_entropy");
    const nlohmann::json record = {{"prediction", o.prediction}, {"truth", o.truth}, {"images", images}, {"overall", overall_json}};
    write_text_atomically(o.output, json_text(record, 2) + "\n");
    std::printf("wrote %s\n", o.output.c_str());
    bool lossy = !is_utf8(o.prediction) || !is_utf8(o.truth);
    for (const auto& pair : pairs) lossy = lossy || !is_utf8(pair.first);
    if (lossy)
      std::fprintf(stderr, "unet: note: %s names files whose names are not UTF-8 with U+FFFD in place of their invalid bytes\n",
                   o.output.c_str());
  }
  std::fflush(stdout);
}

}  // namespace

void register_score(CLI::App& app) {
  auto o = std::make_shared<ScoreCommand>();
  CLI::App* cmd = app.add_subcommand(
      "score", "Score a segmentation of cells and boundaries against the truth as the ISBI 2012 challenge does");
  add_value(*cmd, "--prediction", "prediction", o->prediction,
            "Cell probability maps or masks: a (multi-page) TIFF or PNG, or a folder matched to --truth by stem")
      ->required();
  add_value(*cmd, "--truth", "truth", o->truth,
            "Binary truth: cells non-zero, boundaries 0 (file or folder; one channel, or RGB with equal channels)")
      ->required();
  add_value(*cmd, "--output,-o", "output", o->output, "JSON file for per-image and overall scores (optional)");
  add_switch(*cmd, "--invert-prediction", "invert_prediction", o->invert_prediction,
             "The prediction maps the boundary (membrane) class instead of the cells");
  add_switch(*cmd, "--instances", "instances", o->instances,
             "The predictions are instance-label images (objects as labelled; in a folder <stem>_instances files "
             "first); a file whose only non-zero value is 255 or 65535 is a binary mask and refused");
  add_image_limit(*cmd);
  on_run(*cmd, [o] { run_score(*o); });
}

}  // namespace unet::cli
