// Learning curves as a PNG: panels of line series with axes, ticks and legends (libgd).
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace unet {

struct Series {
  std::string name;
  /// (x, y) points in drawing order; non-finite y values are left out.
  std::vector<std::pair<double, double>> points;
  std::array<uint8_t, 3> color{0, 0, 0};
  /// Draw a marker at every point (sparse series such as evaluations).
  bool markers = false;
};

struct Panel {
  std::string title;
  std::string y_label;
  std::vector<Series> series;
  /// A logarithmic y axis (values that are not positive are left out): losses, which fall by
  /// orders of magnitude and look flat on a linear axis after the first steps.
  bool log_y = false;
  /// A dashed vertical line at this x with a label (NaN: none), e.g. the best evaluation's step.
  double mark_x = NAN;
  std::string mark_label;
};

/// Whether this build can draw PNG plots (it was built with libgd).
bool plotting_available();

/// Draws `panels` side by side against a shared x label into an RGB PNG at `path` (written
/// atomically). Throws `unet::Error` naming the file when it cannot be written, or when this
/// build has no plotting support.
void plot_panels(const std::string& path, const std::vector<Panel>& panels, const std::string& x_label);

/// Reads a run's `log.jsonl` and draws `training_curves.png` beside it: the training losses (log
/// axis), the evaluations (the headline class's Dice under its name, the objects' F1, 1 - pixel
/// error, the reference's dice_score; the best evaluation's step marked) and, when it changes
/// during the run, the learning rate, against the step. Returns the PNG's path.
std::string plot_training_log(const std::string& log_dir);

/// "Nice" axis ticks (multiples of 1, 2 or 5 times a power of ten) covering [lo, hi].
std::vector<double> nice_ticks(double lo, double hi, int target_count = 5);
/// Ticks of a logarithmic axis over [lo, hi] (both positive): the powers of ten inside, with 2 and 5
/// times them when the range spans fewer than three decades; at least the range's ends.
std::vector<double> log_ticks(double lo, double hi);

}  // namespace unet
