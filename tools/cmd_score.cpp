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
// channels differ, a truth that is no mask (a float image, or an image of many values whose
// neighbouring pixels mostly differ: a raw image, not regions of one value), a folder holding two images of one stem ("a.png" and "a.tif"), with
// `--instances` a binary mask (its only non-zero value 255 or 65535), which would score as one
// object, and without it a 16-bit prediction that holds instance labels (read as probabilities
// they would all be near 0). A truth of instance labels scored without `--instances` is scored
// (the prediction's objects are then its 4-connected cells, a fair score of a probability map) with
// a one-line warning, since touching objects merge that way.
//
// The classes are named by the truth's layout, as training names them: membrane (the headline, as
// ISBI) and cell for binary masks in one multi-page stack, background and foreground (the headline)
// for masks in a folder and for instance labels. With `--instances` the ISBI
// scores (V_Rand, V_Info: boundaries between touching cells) do not apply and are left out.
#include "embed.h"
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

/// The cell probability [H, W] of one page: one channel, values in [0, 1]; of a palette image
/// (predict's class-index masks) its non-zero classes.
at::Tensor cell_probability(const RawImage& page, const std::string& file, bool invert) {
  if (page.palette.defined()) {
    const at::Tensor cells = (page.pixels[0] != 0).to(at::kFloat);
    return invert ? 1.0 - cells : cells;
  }
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

/// Refuses a truth page that is no mask but an image: more than 16 values, and most neighbouring
/// object pixels (side by side, both non-zero) differ, as noise and texture make them, where masks
/// and instance labels are regions of one value. Float images `label_values` refuses.
void check_truth_is_mask(const at::Tensor& values, const std::string& file) {
  const int64_t distinct = std::get<0>(at::_unique(values)).numel();
  if (distinct <= 16 || values.size(1) < 2) return;
  const at::Tensor left = values.narrow(1, 0, values.size(1) - 1), right = values.narrow(1, 1, values.size(1) - 1);
  const at::Tensor both = (left != 0) & (right != 0);
  const int64_t pairs = both.sum().item<int64_t>();
  const double differ = pairs > 0 ? (both & (left != right)).sum().item<double>() / static_cast<double>(pairs) : 0.0;
  if (differ > 0.5) {
    char share[32];
    std::snprintf(share, sizeof share, "%.0f%%", 100.0 * differ);
    fail_file(file, "does not look like a mask (" + std::to_string(distinct) + " distinct values, and " + share +
                        " of neighbouring pixels differ, as in an image: a raw image?); --truth takes masks (0 = background "
                        "or boundary) or instance labels");
  }
}

/// Refuses a prediction that holds instance labels without `--instances`: 16-bit, more than two
/// values, none in the upper half of the range (a probability map spans it).
void check_not_instance_labels(const RawImage& page, const std::string& file) {
  if (page.format != SampleFormat::kUInt16 || page.channels() != 1) return;
  const at::Tensor values = std::get<0>(at::_unique(page.pixels));
  if (values.numel() > 2 && values.max().item<int64_t>() < 32768)
    fail_file(file, "holds 16-bit instance labels (" + std::to_string(values.numel() - 1) +
                        " objects), not a probability map or mask: pass --instances to score its objects");
}

/// The classes by the truth's layout, as training names them (unet/data/source.h): binary masks in
/// one multi-page stack (ISBI's train-labels.tif) are membrane/cell, masks in a folder and
/// instance labels background/foreground.
ClassNaming truth_naming(const at::Tensor& raw_truth, bool stack) {
  const bool instances = std::get<0>(at::_unique(raw_truth)).numel() > 2;
  return default_class_naming(2, ClassScheme::kPlain, /*membranes=*/stack && !instances);
}

nlohmann::json image_record(const std::string& name, int64_t page, const Metrics& m, const ClassNaming& naming,
                            bool isbi_scores) {
  nlohmann::json j = {{"prediction", name}, {"page", page}, {"pixel_error", m.pixel_error},
                      {"class_dice", m.class_dice}, {"class_iou", m.class_iou}};
  j.update(class_record(m, naming));
  if (isbi_scores)
    j.update(nlohmann::json{{"v_rand_thinned", m.v_rand_thinned}, {"v_rand_thinned_threshold", m.v_rand_thinned_threshold},
                            {"v_info_thinned", m.v_info_thinned}, {"v_info_thinned_threshold", m.v_info_thinned_threshold},
                            {"v_rand", m.v_rand}, {"v_info", m.v_info}});
  return j;
}

/// The Dice and IoU of `naming`'s headline class.
std::pair<double, double> headline_scores(const Metrics& m, const ClassNaming& naming) {
  const auto h = static_cast<size_t>(naming.headline);
  return h < m.class_dice.size() ? std::make_pair(m.class_dice[h], m.class_iou[h]) : std::make_pair(0.0, 0.0);
}

void print_header(const ClassNaming& naming, bool isbi_scores) {
  const std::string dice = naming.name(naming.headline) + " Dice";
  if (isbi_scores)
    std::printf("%-32s %11s %16s %15s %15s %15s %7s\n", "image", "pixel error", dice.c_str(), "V_Rand thinned",
                "V_Info thinned", "objects t/p", "F1@0.5");
  else
    std::printf("%-32s %11s %16s %15s %7s\n", "image", "pixel error", dice.c_str(), "objects t/p", "F1@0.5");
}

void print_row(const std::string& name, const Metrics& m, const ClassNaming& naming, bool isbi_scores) {
  const std::string counts = std::to_string(m.objects.truth_objects) + "/" + std::to_string(m.objects.predicted_objects);
  const double dice = headline_scores(m, naming).first;
  if (isbi_scores)
    std::printf("%-32s %11.4f %16.4f %15.4f %15.4f %15s %7.4f\n", name.c_str(), m.pixel_error, dice, m.v_rand_thinned,
                m.v_info_thinned, counts.c_str(), m.objects.f1(0));
  else
    std::printf("%-32s %11.4f %16.4f %15s %7.4f\n", name.c_str(), m.pixel_error, dice, counts.c_str(), m.objects.f1(0));
}

void print_overall(const Metrics& m, const ClassNaming& naming, bool isbi_scores) {
  const auto [dice, iou] = headline_scores(m, naming);
  const std::string name = naming.name(naming.headline);
  std::printf("overall (%lld images): pixel error %.4f  %s Dice %.4f  %s IoU %.4f\n", static_cast<long long>(m.images),
              m.pixel_error, name.c_str(), dice, name.c_str(), iou);
  if (isbi_scores) {
    std::printf("  V_Rand (ISBI challenge, thinned)  %.4f at threshold %.1f;  unthinned %.4f (0.5), best %.4f\n",
                m.v_rand_thinned, m.v_rand_thinned_threshold, m.v_rand, m.v_rand_best);
    std::printf("  V_Info (ISBI challenge, thinned)  %.4f at threshold %.1f;  unthinned %.4f (0.5), best %.4f\n",
                m.v_info_thinned, m.v_info_thinned_threshold, m.v_info, m.v_info_best);
  } else {
    std::printf("  (V_Rand and V_Info left out: they score boundaries between cells, as ISBI, not instance labels)\n");
  }
  const ObjectScores& o = m.objects;
  std::printf("  objects: %lld true, %lld predicted; F1 %.4f at IoU 0.5, %.4f at 0.75; mean AP (IoU 0.5-0.95) %.4f; "
              "%lld split, %lld merged\n",
              static_cast<long long>(o.truth_objects), static_cast<long long>(o.predicted_objects), o.f1(0), o.f1(5),
              o.mean_average_precision(), static_cast<long long>(o.split), static_cast<long long>(o.merged));
  std::printf("  panoptic quality (IoU 0.5): PQ %.4f = SQ %.4f x RQ %.4f (pooled); PQ per image, averaged %.4f\n",
              o.panoptic_quality(), o.segmentation_quality(), o.f1(0), o.mean_image_panoptic_quality());
  std::printf("  aggregated Jaccard index: AJI %.4f (pooled); per image, averaged %.4f\n", o.aggregated_jaccard_index(),
              o.mean_image_aggregated_jaccard_index());
}

/// The overall record: the metrics without the network-output terms (not defined for a prediction
/// map) and, with `--instances`, without the ISBI scores.
nlohmann::json overall_record(const Metrics& m, const ClassNaming& naming, bool isbi_scores) {
  nlohmann::json j = m;
  j.erase("dice_score");
  j.erase("cross_entropy");
  if (!isbi_scores)
    for (const char* key : {"v_rand", "v_info", "v_rand_best", "v_rand_threshold", "v_info_best", "v_info_threshold",
                            "v_rand_thinned", "v_rand_thinned_threshold", "v_info_thinned", "v_info_thinned_threshold"})
      j.erase(key);
  j.update(class_record(m, naming));
  return j;
}

void run_score(const ScoreCommand& o) {
  CommandFiles().reads(image_files(o.prediction)).reads(image_files(o.truth)).writes(o.output).check();
  MetricAccumulator overall;
  nlohmann::json images = nlohmann::json::array();
  const auto pairs = pair_files(o.prediction, o.truth, o.instances);
  const bool isbi_scores = !o.instances;
  ClassNaming naming;  // from the first truth page
  bool warned = false;
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
      const at::Tensor raw_truth = label_values(truth[k], truth_file, "truth masks");
      check_truth_is_mask(raw_truth, truth_file);
      if (!o.instances) check_not_instance_labels(pred[k], pred_file);
      if (naming.names.empty()) {
        std::error_code ec;
        naming = truth_naming(raw_truth, truth.size() > 1 && !std::filesystem::is_directory(o.truth, ec));
        print_header(naming, isbi_scores);
      }
      if (!o.instances && !warned && std::get<0>(at::_unique(raw_truth)).numel() > 2) {
        std::fflush(stdout);
        std::fprintf(stderr, "unet: warning: %s looks like instance labels; the prediction's objects are its 4-connected "
                             "cells, which merge touching objects: for object scores give predict --instances's labels "
                             "with --instances\n", truth_file.c_str());
        warned = true;
      }
      at::Tensor predicted_objects;
      if (o.instances) predicted_objects = label_values(pred[k], pred_file, "instance labels");
      const at::Tensor p = o.instances ? (predicted_objects != 0).to(at::kFloat)
                                       : cell_probability(pred[k], pred_file, o.invert_prediction);
      const at::Tensor cells = raw_truth != 0;  // any label is a cell: 0/255 masks and 16-bit instance labels
      const at::Tensor labels = cells.to(at::kLong);  // 1 = cell, 0 = boundary
      static_assert(kMembraneClass == 0, "class 0 is the boundary");
      const at::Tensor probabilities = at::stack({1.0 - p, p});
      MetricAccumulator one;
      one.add_original(probabilities, labels, truth_objects(raw_truth, cells), predicted_objects);
      overall.add(one);
      const Metrics m = one.result();
      const std::string name = std::filesystem::path(pred_file).filename().string() +
                               (pred.size() > 1 ? " #" + std::to_string(k) : std::string());
      print_row(name, m, naming, isbi_scores);
      nlohmann::json record = image_record(pred_file, static_cast<int64_t>(k), m, naming, isbi_scores);
      record["objects"] = nlohmann::json(m.objects);
      images.push_back(record);
    }
  }
  const Metrics m = overall.result();
  print_overall(m, naming, isbi_scores);
  if (!o.output.empty()) {
    const nlohmann::json record = {{"prediction", o.prediction}, {"truth", o.truth}, {"images", images},
                                   {"overall", overall_record(m, naming, isbi_scores)}};
    write_text_atomically(o.output, json_text(record, 2) + "\n");
    report_results(o.output);
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
            "Truth masks: objects or cells non-zero, background or boundaries 0, or instance labels (file or folder; one "
            "channel, or RGB with equal channels)")
      ->required();
  add_value(*cmd, "--output,-o", "output", o->output, "JSON file for per-image and overall scores (optional)");
  add_switch(*cmd, "--invert-prediction", "invert_prediction", o->invert_prediction,
             "The prediction maps class 0 (the background or boundaries) instead of the objects or cells");
  add_switch(*cmd, "--instances", "instances", o->instances,
             "The predictions are instance-label images (objects as labelled; in a folder <stem>_instances files "
             "first); a file whose only non-zero value is 255 or 65535 is a binary mask and refused");
  add_image_limit(*cmd);
  on_run(*cmd, [o] { run_score(*o); });
}

}  // namespace unet::cli
