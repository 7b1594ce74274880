// `unet quantize`: post-training int8 calibration of a trained model, with its accuracy checked.
//
// Why a command of its own (rather than an export format): the int8 model is something unet
// itself runs (predict, evaluate, benchmark and the C++ API with --precision int8), it needs the
// model's data (calibration tiles from the training split, the accuracy check on the held-out
// split), and it can be refused. What it writes is small: int8.json beside the checkpoint holds
// the activation scales; the int8 weights are derived from the checkpoint's (per output channel,
// symmetric), so they cannot drift apart from it (a changed checkpoint is refused until
// quantized again). `export --precision int8` writes the same model as an ONNX QDQ file.
#include "options.h"
#include "pretrained.h"
#include "resume.h"
#include "runtime/json.h"

#include "unet/dist/dist.h"
#include "unet/infer/evaluate.h"
#include "unet/infer/quantize.h"
#include "unet/model/checkpoint.h"
#include "unet/runtime/files.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <numeric>
#include <random>

namespace unet::cli {
namespace {

/// --method: one calibration method, or auto (each, the most accurate kept).
enum class MethodChoice { kAuto, kMinMax, kPercentile, kMse };
const EnumNames<MethodChoice>& method_choices() {
  static const EnumNames<MethodChoice> names = {{"auto", MethodChoice::kAuto},
                                                {"minmax", MethodChoice::kMinMax},
                                                {"percentile", MethodChoice::kPercentile},
                                                {"mse", MethodChoice::kMse}};
  return names;
}

/// A signed difference for messages: "-0.0123".
std::string signed_number(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%+.4f", v);
  return text;
}

struct QuantizeCommand {
  DataOptions data;
  InferenceOptions infer;
  RuntimeOptions runtime;
  std::string model_dir = kDefaultModelDir;
  /// With --model: the folder (./NAME) that gets a copy of the shipped checkpoint and its int8.json,
  /// so that the shipped folder stays as shipped.
  std::string output_dir;
  MethodChoice method = MethodChoice::kAuto;
  int64_t calibration_tiles = 32;
  double max_accuracy_drop = 0.005;
  bool force = false;
};

/// `folder`/checkpoint.pt made a copy of the shipped model in `shipped` (kept if it is one already);
/// a different checkpoint there is refused, not replaced.
std::string copy_of_shipped(const std::string& shipped, const std::string& folder) {
  namespace fs = std::filesystem;
  const std::string from = checkpoint_path(shipped), to = (fs::path(folder) / "checkpoint.pt").string();
  std::error_code ec;
  if (fs::equivalent(folder, shipped, ec))
    fail_file(folder, "is the shipped model's own folder, which stays as shipped; run quantize from another folder");
  if (fs::exists(to, ec)) {
    std::ifstream a(from, std::ios::binary), b(to, std::ios::binary);
    if (!b) fail_file(to, "cannot be read");
    const bool same = fs::file_size(from, ec) == fs::file_size(to, ec) &&
                      std::equal(std::istreambuf_iterator<char>(a), {}, std::istreambuf_iterator<char>(b), {});
    if (!same) fail_file(to, "holds another checkpoint than the shipped one; move it, or quantize it with --model-dir " + folder);
    return to;
  }
  fs::create_directories(folder, ec);
  if (ec) fail_file(folder, "cannot make the folder: " + ec.message());
  write_atomically(to, [&from](const std::string& temp) {
    std::error_code e;
    if (!fs::copy_file(from, temp, fs::copy_options::overwrite_existing, e)) fail_file(temp, "cannot write: " + e.message());
  });
  return to;
}

/// One method's result on the held-out images.
struct Trial {
  std::string method;
  Int8Scales scales;
  AccuracyChange change;
};

/// The training fold's images (every image with no held-out fold) in a seeded order: calibration
/// takes them until it has its tiles.
std::vector<Sample> calibration_order(const std::vector<Sample>& train, uint64_t seed) {
  std::vector<size_t> order(train.size());
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<Sample> out;
  for (size_t i : order) out.push_back(train[i]);
  return out;
}

std::vector<std::string> names_of(const std::vector<Sample>& samples) {
  std::vector<std::string> names;
  for (const Sample& s : samples) names.push_back(s.name());
  return names;
}

void print_trial(const Trial& t, bool chosen) {
  const AccuracyChange& a = t.change;
  std::printf("  %-10s Dice %.4f (%+.4f)  V_Rand %.4f (%+.4f)  V_Info %.4f (%+.4f)", t.method.c_str(), a.dice_int8,
              -a.dice_drop(), a.v_rand_int8, a.v_rand_int8 - a.v_rand_fp32, a.v_info_int8, a.v_info_int8 - a.v_info_fp32);
  if (a.has_objects) std::printf("  object F1 %.4f (%+.4f)", a.f1_int8, a.f1_int8 - a.f1_fp32 + 0.0);
  std::printf("%s\n", chosen ? "  <- chosen" : "");
}

nlohmann::json trial_json(const Trial& t) {
  const AccuracyChange& a = t.change;
  nlohmann::json j = {{"method", t.method},     {"dice_fp32", a.dice_fp32},     {"dice_int8", a.dice_int8},
                      {"v_rand_thinned_fp32", a.v_rand_fp32}, {"v_rand_thinned_int8", a.v_rand_int8},
                      {"v_info_thinned_fp32", a.v_info_fp32}, {"v_info_thinned_int8", a.v_info_int8}};
  if (a.has_objects) {
    j["object_f1_fp32"] = a.f1_fp32;
    j["object_f1_int8"] = a.f1_int8;
  }
  return j;
}

/// How much worse than fp32 a trial is, for choosing: the largest of its drops (Dice, thinned
/// V_Rand, half the object F1's), each measured against its own allowance.
double worst_drop(const AccuracyChange& a) {
  return std::max({a.dice_drop(), a.v_rand_fp32 - a.v_rand_int8, a.f1_drop() / 2.0});
}

void run_quantize(const QuantizeCommand& o, const CLI::App& command) {
  RuntimeOptions runtime = o.runtime;
  runtime.device = c10::Device(c10::kCPU);
  runtime.precision = Precision::kFP32;
  const RunContext context = make_run_context(runtime);
  if (!context.leader()) return;
  if (!Int8Engine::available())
    throw Error(int8_available() ? "this CPU has no int8 units oneDNN can use (AVX2, AVX-VNNI, AVX512-VNNI or AMX): int8 "
                                   "cannot run here"
                                 : "this LibTorch has no oneDNN int8 convolutions (onednn::qconv_pointwise)");
  const std::string ckpt = o.output_dir.empty() ? checkpoint_path(o.model_dir) : copy_of_shipped(o.model_dir, o.output_dir);
  const std::string out = int8_scales_path(ckpt);
  const CheckpointInfo info = read_checkpoint_info(ckpt);
  DataOptions data_options = o.data;
  adopt_training_data(command, info, ckpt, data_options, context.verbose());
  CommandFiles().reads(ckpt).reads(data_files(data_options)).writes(out).check();
  const DataSet data = model_data(data_options, info);
  if (data.channels != info.model.in_channels())
    throw Error(data.description + ": images have " + std::to_string(data.channels) + " channels, but the model expects " +
                std::to_string(info.model.in_channels()));
  const ClassNaming naming = model_naming(info, data_options.class_names);
  const FoldData fold = fold_data(data, data_options);
  if (fold.train.empty()) throw Error(data.description + ": no training images to calibrate on");
  const bool held_out = !fold.eval.empty();
  const std::vector<Sample>& check = held_out ? fold.eval : fold.train;

  // Calibration: the float32 pass on exactly the inputs prediction feeds the network.
  Predictor fp32 = load_predictor(ckpt, info, o.infer, context, check);
  Calibrator calibrator(info.model, o.calibration_tiles);
  fp32.observe_inputs(&calibrator);
  std::vector<std::string> calibration_images;
  for (const Sample& s : calibration_order(fold.train, data_options.seed)) {
    if (calibrator.tiles() >= o.calibration_tiles) break;
    fp32.run({s}, [](const PredictedBatch&) {});
    calibration_images.push_back(s.name());
  }
  fp32.observe_inputs(nullptr);
  if (context.verbose())
    std::fprintf(stderr, "unet quantize: calibrated on %lld network inputs from %zu %simages; checking on %zu %s\n",
                 static_cast<long long>(calibrator.tiles()), calibration_images.size(), held_out ? "training " : "",
                 check.size(), held_out ? "held-out images" : "images (all of them: no held-out fold)");
  const Metrics reference = evaluate(fp32, check);

  // Each method on the same images; the one that loses least is kept.
  const UNet model = load_model(ckpt, info);
  std::vector<Trial> trials;
  for (const auto& entry : calibration_method_names()) {
    const std::string& name = entry.name;
    const CalibrationMethod method = entry.value;
    if (o.method != MethodChoice::kAuto && name_of(method_choices(), o.method) != name) continue;
    Trial t{name, calibrator.scales(method), {}};
    Predictor int8 = fp32;
    int8.use_precision(Precision::kInt8);
    int8.use_int8(std::make_shared<Int8Engine>(model, t.scales));
    t.change = compare_accuracy(reference, evaluate(int8, check), naming);
    trials.push_back(t);
  }
  // The smallest worst drop; among equals, the best Dice.
  const auto best = std::min_element(trials.begin(), trials.end(), [](const Trial& a, const Trial& b) {
    const double wa = worst_drop(a.change), wb = worst_drop(b.change);
    return wa != wb ? wa < wb : a.change.dice_int8 > b.change.dice_int8;
  });
  std::printf("int8 calibration of %s (step %lld) on %s, fold %s; %s units\n", ckpt.c_str(), static_cast<long long>(info.step),
              data.description.c_str(), data_options.fold < 0 ? "none" : std::to_string(data_options.fold).c_str(),
              cpu_int8_units().c_str());
  const AccuracyChange& a = best->change;
  std::printf("  %-10s Dice %.4f           V_Rand %.4f           V_Info %.4f", "fp32", a.dice_fp32, a.v_rand_fp32, a.v_info_fp32);
  if (a.has_objects) std::printf("           object F1 %.4f", a.f1_fp32);
  std::printf("\n");
  for (const Trial& t : trials) print_trial(t, &t == &*best);

  const double dice_drop = a.dice_drop(), v_rand_drop = a.v_rand_fp32 - a.v_rand_int8, f1_drop = a.f1_drop();
  const bool refused = dice_drop > o.max_accuracy_drop || v_rand_drop > o.max_accuracy_drop || f1_drop > 2 * o.max_accuracy_drop;
  if (refused && !o.force)
    throw Error(ckpt + ": int8 loses too much accuracy (Dice " + signed_number(-dice_drop) + ", V_Rand " +
                signed_number(-v_rand_drop) + (a.has_objects ? ", object F1 " + signed_number(-f1_drop) : std::string()) +
                "; allowed: -" + std::to_string(o.max_accuracy_drop).substr(0, 6) + ", object F1 -" +
                std::to_string(2 * o.max_accuracy_drop).substr(0, 6) +
                "): nothing written; more calibration tiles may help, or --force writes it anyway");

  Int8Record record;
  record.scales = best->scales;
  record.method = best->method;
  record.step = info.step;
  record.fingerprint = weights_fingerprint(model);
  nlohmann::json report = {{"data", data.description},
                           {"fold", data_options.fold < 0 ? "none" : std::to_string(data_options.fold)},
                           {"seed", data_options.seed},
                           {"calibration_tiles", calibrator.tiles()},
                           {"calibration_images", calibration_images},
                           {"checked_on", held_out ? "held-out images" : "all images (no held-out fold)"},
                           {"checked_images", names_of(check)},
                           {"cpu_int8_units", cpu_int8_units()},
                           {"forced", refused},
                           {"trials", nlohmann::json::array()}};
  for (const Trial& t : trials) report["trials"].push_back(trial_json(t));
  record.report_json = report.dump();
  write_text_atomically(out, int8_record_json(record, info.model));
  std::printf("wrote %s (%s%s)\n  use it: unet predict --model-dir %s --precision int8 --input IMAGES\n", out.c_str(),
              best->method.c_str(), refused ? "; forced past the accuracy check" : "",
              std::filesystem::path(ckpt).parent_path().string().c_str());
}

}  // namespace

void register_quantize(CLI::App& app) {
  auto o = std::make_shared<QuantizeCommand>();
  CLI::App* cmd = app.add_subcommand(
      "quantize", "Calibrate a trained model for int8 inference on CPUs and check its accuracy against fp32 (writes int8.json)");
  add_data_options(*cmd, o->data);
  add_value(*cmd, "--model-dir,--model_dir", "model_dir", o->model_dir, "Directory with checkpoint.pt");
  add_model_option(*cmd, o->model_dir, o->output_dir);
  add_choice(*cmd, "--method", "method", o->method, method_choices(),
             "Calibration: auto (try each, keep the most accurate), minmax, percentile (99.99%) or mse");
  add_value(*cmd, "--calibration-tiles", "calibration_tiles", o->calibration_tiles,
            "Network inputs (tiles) to calibrate on, from the training fold's images (every image with --fold none), in a seeded order");
  add_value(*cmd, "--max-accuracy-drop", "max_accuracy_drop", o->max_accuracy_drop,
            "Largest drop allowed in Dice and thinned V_Rand (object F1: twice this); beyond it nothing is written");
  cmd->add_flag("--force", o->force, "Write the calibration even when it loses more than --max-accuracy-drop");
  add_value(*cmd, "--batch-size,--batch_size", "batch_size", o->infer.batch_size, "Images per forward pass");
  add_inference_options(*cmd, o->infer);
  add_runtime_options(*cmd, o->runtime, {&o->data.seed}, /*training=*/false);
  check_after_parse(*cmd, [o, cmd] {
    refuse_two_data_sources(*cmd);
    o->data.validate();
    o->infer.validate();
    o->runtime.validate();
    require_option(o->calibration_tiles >= 1 && o->calibration_tiles <= 100000, "calibration_tiles", "must be between 1 and 100000",
                   o->calibration_tiles);
    require_option(o->max_accuracy_drop >= 0.0 && o->max_accuracy_drop <= 1.0, "max_accuracy_drop", "must be between 0 and 1",
                   o->max_accuracy_drop);
  });
  on_run(*cmd, [o, cmd] { run_quantize(*o, *cmd); });
}

}  // namespace unet::cli
