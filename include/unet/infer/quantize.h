// Post-training int8 quantization: calibration of the activation scales on real inputs, the
// calibration's record beside the checkpoint, and the accuracy it keeps.
#pragma once

#include "unet/eval/metrics.h"
#include "unet/model/int8_ops.h"
#include "unet/model/scheme.h"
#include "unet/model/unet.h"
#include "unet/runtime/error.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace unet {

/// How a convolution's output range is clipped to u8: the largest value seen (min-max), the
/// `percentile` of the values seen, or the clip that minimizes the squared quantization error
/// over the values seen (MSE: rounding inside, clipping outside).
enum class CalibrationMethod { kMinMax, kPercentile, kMse };
/// "minmax", "percentile", "mse".
const EnumNames<CalibrationMethod>& calibration_method_names();

/// Gathers the ranges of every convolution's output over calibration inputs (`observe`), then
/// gives the u8 scales by a method (`scales`). One histogram of 2048 bins per layer, its range
/// doubled (bins merged in pairs) when a larger value arrives, so one pass suffices.
class Calibrator {
 public:
  explicit Calibrator(const UNetOptions& options, int64_t max_tiles = 0);

  /// Records the float32 forward pass of `model` on preprocessed inputs [N, C, S, S] (at most
  /// `max_tiles` in all, the rest ignored when `max_tiles` > 0).
  void observe(const UNet& model, const at::Tensor& inputs);

  /// Network inputs observed so far.
  int64_t tiles() const { return tiles_; }

  /// The scales by `method` (`percentile` in percent, for kPercentile); concatenated layers share
  /// the larger of their two. Throws `unet::Error` when nothing was observed.
  Int8Scales scales(CalibrationMethod method, double percentile = 99.99) const;

  /// The input's u8 grid (scale, zero point) over [lo, hi]: 255 steps, or a step up to 1.1%
  /// larger where `values` (the distinct inputs seen) would sit on rounding ties, as every pixel
  /// of an 8-bit image normalised to [-1, 1] does at 255 steps.
  static std::pair<float, int64_t> input_grid(const at::Tensor& values, double lo, double hi);

 private:
  struct Histogram {
    double width = 0.0;  // of a bin; 0 until a positive value arrives
    std::vector<double> counts;
    double max = 0.0;
  };
  UNetOptions options_;
  int64_t max_tiles_;
  int64_t tiles_ = 0;
  double input_min_ = 0.0, input_max_ = 0.0;
  static constexpr int64_t kInputValues = 65536;
  at::Tensor input_values_;  // distinct inputs seen, sorted (at most kInputValues)
  std::vector<Histogram> histograms_;

  void add(Histogram& h, const at::Tensor& values) const;
  static double threshold(const Histogram& h, CalibrationMethod method, double percentile);
};

/// What `quantize` records beside a checkpoint (`int8_scales_path`): the scales, how they were
/// measured, and which weights they belong to.
struct Int8Record {
  Int8Scales scales;
  std::string method;
  /// The checkpoint's training step and weights' fingerprint (`weights_fingerprint`) when calibrated.
  int64_t step = 0;
  double fingerprint = 0.0;
  /// Everything else the command reports (calibration images, accuracy), kept as JSON text.
  std::string report_json = "{}";
};

/// `dirname(checkpoint)/int8.json`.
std::string int8_scales_path(const std::string& checkpoint);

/// A number that changes when the weights do: the sum of |w| over every parameter, in double.
double weights_fingerprint(const UNet& model);

/// The record as JSON text, and back (`unet::Error` naming `path` for a malformed file).
std::string int8_record_json(const Int8Record& record, const UNetOptions& options);
Int8Record read_int8_record(const std::string& path, const UNetOptions& options);

/// The scales for `model` (from `checkpoint`, at training step `step`): read from beside the
/// checkpoint, checked against the weights. Throws `unet::Error` (one line) when there is no
/// calibration (run `unet quantize`), or it belongs to other weights.
Int8Scales load_int8_scales(const std::string& checkpoint, const UNet& model, int64_t step);

/// The accuracy figures compared between fp32 and int8: the headline class's Dice, the ISBI
/// thinned V_Rand and V_Info, object F1 (when the truth has objects).
struct AccuracyChange {
  double dice_fp32 = 0, dice_int8 = 0, v_rand_fp32 = 0, v_rand_int8 = 0, v_info_fp32 = 0, v_info_int8 = 0;
  bool has_objects = false;
  double f1_fp32 = 0, f1_int8 = 0;
  double dice_drop() const { return dice_fp32 - dice_int8; }
  double f1_drop() const { return has_objects ? f1_fp32 - f1_int8 : 0.0; }
};
AccuracyChange compare_accuracy(const Metrics& fp32, const Metrics& int8, const ClassNaming& naming);

}  // namespace unet
