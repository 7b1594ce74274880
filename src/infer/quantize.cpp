// Calibration of the int8 activation scales, and the record that carries them beside a checkpoint.
//
// Why histograms: min-max calibration lets one rare large activation coarsen a whole layer's
// steps; clipping at a percentile or at the MSE-optimal point keeps the steps fine where the
// values are. Which wins is measured per model (`unet quantize` tries each on held-out images),
// so the calibrator keeps enough to compute all three from one pass over the inputs.
#include "unet/infer/quantize.h"

#include "runtime/json.h"
#include "unet/infer/int8_engine.h"
#include "unet/runtime/files.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <tuple>

namespace unet {
namespace {

constexpr int64_t kBins = 2048;
constexpr const char* kFormat = "unet-int8/1";

}  // namespace

const EnumNames<CalibrationMethod>& calibration_method_names() {
  static const EnumNames<CalibrationMethod> names = {{"minmax", CalibrationMethod::kMinMax},
                                                    {"percentile", CalibrationMethod::kPercentile},
                                                    {"mse", CalibrationMethod::kMse}};
  return names;
}

Calibrator::Calibrator(const UNetOptions& options, int64_t max_tiles)
    : options_(options), max_tiles_(max_tiles), histograms_(conv_layers(options).size()) {}

void Calibrator::add(Histogram& h, const at::Tensor& values) const {
  const double max = values.max().item<double>();
  if (max <= 0.0) {
    if (h.counts.empty()) h.counts.assign(kBins, 0.0);
    h.counts[0] += static_cast<double>(values.numel());
    return;
  }
  if (h.width == 0.0) {
    const double zeros = h.counts.empty() ? 0.0 : h.counts[0];
    h.counts.assign(kBins, 0.0);
    h.counts[0] = zeros;
    h.width = max / kBins;
  }
  while (max > h.width * kBins) {  // double the range: merge bins in pairs
    for (int64_t i = 0; i < kBins / 2; ++i) h.counts[i] = h.counts[2 * i] + h.counts[2 * i + 1];
    std::fill(h.counts.begin() + kBins / 2, h.counts.end(), 0.0);
    h.width *= 2;
  }
  h.max = std::max(h.max, max);
  const at::Tensor counts = at::histc(values.to(at::kFloat).flatten(), kBins, 0.0, h.width * kBins).to(at::kDouble);
  const double* c = counts.data_ptr<double>();
  for (int64_t i = 0; i < kBins; ++i) h.counts[i] += c[i];
}

namespace {

/// How far the values' quantized positions (v / scale + zero_point) come to a rounding tie (0.5:
/// none on a tie; 0: one on it).
double tie_distance(const at::Tensor& values, double scale, int64_t zero_point) {
  if (!values.defined() || values.numel() == 0) return 0.5;
  const at::Tensor q = values.to(at::kDouble) / scale + static_cast<double>(zero_point);
  return (q - q.floor() - 0.5).abs().min().item<double>();
}

}  // namespace

std::pair<float, int64_t> Calibrator::input_grid(const at::Tensor& values, double lo, double hi) {
  // 255 steps over [lo, hi] put an 8-bit image normalised to [-1, 1] (k / 127.5 - 1) on a tie at
  // every pixel: a runtime that normalises with another float rounding (a bioimage.io consumer's
  // gain and offset) then quantizes it a step apart (1.2% of a package's test outputs failed).
  // A step slightly larger moves the grid off the ties; the first that clears them by 1e-3 of a
  // step (float32 rounding moves values by about 1e-5 of one) is kept, else the clearest.
  float best_scale = 0.0f;
  int64_t best_zero_point = 0;
  double best_distance = -1.0;
  for (double factor : {1.0, 1.0047, 1.00173, 1.0031, 1.0071, 1.0113, 1.0019}) {
    const float scale = static_cast<float>(std::max(hi - lo, 1e-6) / 255.0 * factor);
    const int64_t zero_point = std::clamp<int64_t>(std::llround(-lo / scale), 0, 255);
    const double distance = tie_distance(values, scale, zero_point);
    if (distance > best_distance) std::tie(best_scale, best_zero_point, best_distance) = std::tie(scale, zero_point, distance);
    if (distance >= 1e-3) break;
  }
  return {best_scale, best_zero_point};
}

void Calibrator::observe(const UNet& model, const at::Tensor& inputs) {
  if (max_tiles_ > 0 && tiles_ >= max_tiles_) return;
  c10::InferenceMode guard;
  at::Tensor x = inputs;
  if (max_tiles_ > 0 && tiles_ + x.size(0) > max_tiles_) x = x.narrow(0, 0, max_tiles_ - tiles_);
  const double lo = x.min().item<double>(), hi = x.max().item<double>();
  input_min_ = tiles_ == 0 ? lo : std::min(input_min_, lo);
  input_max_ = tiles_ == 0 ? hi : std::max(input_max_, hi);
  // The distinct input values (at most kInputValues, evenly spread), for the input's grid.
  at::Tensor values = std::get<0>(at::_unique(x.flatten().to(at::kFloat), /*sorted=*/true));
  if (input_values_.defined()) values = std::get<0>(at::_unique(at::cat({input_values_, values}), /*sorted=*/true));
  if (values.numel() > kInputValues)
    values = values.index_select(0, at::linspace(0, static_cast<double>(values.numel() - 1), kInputValues).round().to(at::kLong));
  input_values_ = values;
  const size_t head = histograms_.size() - 1;
  observed_forward(model, x, [&](size_t k, const at::Tensor& y) {
    if (k != head) add(histograms_[k], y);
  });
  tiles_ += x.size(0);
}

double Calibrator::threshold(const Histogram& h, CalibrationMethod method, double percentile) {
  if (h.width == 0.0) return 1.0;  // never positive: any scale will do
  double total = 0.0;
  for (double c : h.counts) total += c;
  if (method == CalibrationMethod::kMinMax) return h.max;
  if (method == CalibrationMethod::kPercentile) {
    double seen = 0.0;
    for (int64_t i = 0; i < kBins; ++i) {
      seen += h.counts[i];
      if (seen >= total * percentile / 100.0) return std::min(h.max, (static_cast<double>(i) + 1) * h.width);
    }
    return h.max;
  }
  // MSE: each candidate clip t (a bin edge) costs uniform rounding noise (t/255)^2/12 for the
  // values below it and (x - t)^2 for those above.
  double best = h.max, best_error = -1.0;
  for (int64_t edge = kBins / 32; edge <= kBins; ++edge) {
    const double t = static_cast<double>(edge) * h.width, step = t / 255.0;
    double below = 0.0, clipped = 0.0;
    for (int64_t i = 0; i < kBins; ++i) {
      const double centre = (static_cast<double>(i) + 0.5) * h.width;
      if (centre <= t) below += h.counts[i];
      else clipped += h.counts[i] * (centre - t) * (centre - t);
    }
    const double error = below * step * step / 12.0 + clipped;
    if (best_error < 0.0 || error < best_error) {
      best_error = error;
      best = std::min(t, h.max);
    }
  }
  return best;
}

Int8Scales Calibrator::scales(CalibrationMethod method, double percentile) const {
  if (tiles_ == 0) throw Error("int8 calibration: no inputs were observed");
  Int8Scales s;
  // The image: asymmetric u8 over the range seen (it holds negative values), on a grid whose
  // rounding ties no input value sits on (`input_grid`).
  const double lo = std::min(0.0, input_min_), hi = std::max(0.0, input_max_);
  std::tie(s.input_scale, s.input_zero_point) = input_grid(input_values_, lo, hi);
  std::vector<double> t;
  for (const Histogram& h : histograms_) t.push_back(std::max(threshold(h, method, percentile), 1e-6));
  for (const auto& [up, skip] : concatenated_layers(options_)) t[up] = t[skip] = std::max(t[up], t[skip]);
  for (double v : t) s.outputs.push_back(static_cast<float>(v / 255.0));
  return s;
}

std::string int8_scales_path(const std::string& checkpoint) {
  return (std::filesystem::path(checkpoint).parent_path() / "int8.json").string();
}

double weights_fingerprint(const UNet& model) {
  c10::InferenceMode guard;
  double sum = 0.0;
  for (const auto& p : model->parameters()) sum += p.detach().to(at::kDouble).abs().sum().item<double>();
  return sum;
}

std::string int8_record_json(const Int8Record& r, const UNetOptions& options) {
  nlohmann::json layers = nlohmann::json::array();
  const auto conv = conv_layers(options);
  for (size_t k = 0; k < conv.size(); ++k)
    layers.push_back({{"name", conv[k].name}, {"output_scale", conv[k].kind == ConvLayer::kHead ? 0.0f : r.scales.outputs.at(k)}});
  nlohmann::json j = {{"format", kFormat},
                      {"method", r.method},
                      {"checkpoint_step", r.step},
                      {"weights_fingerprint", r.fingerprint},
                      {"input", {{"scale", r.scales.input_scale}, {"zero_point", r.scales.input_zero_point}}},
                      {"layers", layers},
                      {"report", nlohmann::json::parse(r.report_json)}};
  return json_text(j, 2) + "\n";
}

Int8Record read_int8_record(const std::string& path, const UNetOptions& options) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot read the int8 calibration");
  std::stringstream text;
  text << in.rdbuf();
  const auto j = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  auto bad = [&](const std::string& what) { return Error(path + ": not a unet int8 calibration (" + what + ")"); };
  if (!j.is_object() || j.value("format", "") != kFormat) throw bad("format is not " + std::string(kFormat));
  try {
    Int8Record r;
    r.method = j.at("method").get<std::string>();
    r.step = j.at("checkpoint_step").get<int64_t>();
    r.fingerprint = j.at("weights_fingerprint").get<double>();
    r.scales.input_scale = j.at("input").at("scale").get<float>();
    r.scales.input_zero_point = j.at("input").at("zero_point").get<int64_t>();
    const auto conv = conv_layers(options);
    const auto& layers = j.at("layers");
    if (!layers.is_array() || layers.size() != conv.size())
      throw bad("it has " + std::to_string(layers.is_array() ? layers.size() : 0) + " layers, the model " + std::to_string(conv.size()));
    for (size_t k = 0; k < conv.size(); ++k) {
      if (layers[k].at("name").get<std::string>() != conv[k].name) throw bad("layer " + std::to_string(k) + " is not " + conv[k].name);
      const float s = layers[k].at("output_scale").get<float>();
      if (conv[k].kind != ConvLayer::kHead && !(s > 0.0f && std::isfinite(s))) throw bad(conv[k].name + "'s scale is not positive");
      r.scales.outputs.push_back(s);
    }
    if (!(r.scales.input_scale > 0.0f) || r.scales.input_zero_point < 0 || r.scales.input_zero_point > 255) throw bad("input quantization");
    if (j.contains("report")) r.report_json = j["report"].dump();
    return r;
  } catch (const nlohmann::json::exception&) {
    throw bad("a field is missing or of the wrong type");
  }
}

Int8Scales load_int8_scales(const std::string& checkpoint, const UNet& model, int64_t step) {
  const std::string path = int8_scales_path(checkpoint);
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    throw Error(checkpoint + " has no int8 calibration (" + path + "): run unet quantize --model-dir " +
                std::filesystem::path(checkpoint).parent_path().string() + " first");
  const Int8Record r = read_int8_record(path, model->options());
  const double now = weights_fingerprint(model);
  if (r.step != step || std::abs(r.fingerprint - now) > 1e-9 * std::max(1.0, std::abs(now)))
    throw Error(path + " was calibrated for the weights of step " + std::to_string(r.step) + ", not these (step " +
                std::to_string(step) + "): run unet quantize again");
  return r.scales;
}

AccuracyChange compare_accuracy(const Metrics& fp32, const Metrics& int8, const ClassNaming& naming) {
  auto dice = [&](const Metrics& m) {
    if (naming.has_headline() && static_cast<size_t>(naming.headline) < m.class_dice.size())
      return m.class_dice[static_cast<size_t>(naming.headline)];
    double sum = 0.0;
    for (double d : m.class_dice) sum += d;
    return m.class_dice.empty() ? 0.0 : sum / static_cast<double>(m.class_dice.size());
  };
  AccuracyChange a;
  a.dice_fp32 = dice(fp32);
  a.dice_int8 = dice(int8);
  a.v_rand_fp32 = fp32.v_rand_thinned;
  a.v_rand_int8 = int8.v_rand_thinned;
  a.v_info_fp32 = fp32.v_info_thinned;
  a.v_info_int8 = int8.v_info_thinned;
  a.has_objects = fp32.has_objects && fp32.objects.truth_objects > 0;
  if (a.has_objects) {
    a.f1_fp32 = fp32.objects.f1(0);
    a.f1_int8 = int8.objects.f1(0);
  }
  return a;
}

}  // namespace unet
