// Learning curves as a PNG: panels of line series with axes, ticks and legends (libgd).
#pragma once

#include <array>
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
};

/// Whether this build can draw PNG plots (it was built with libgd).
bool plotting_available();

/// Draws `panels` side by side against a shared x label into an RGB PNG at `path` (written
/// atomically). Throws `unet::Error` naming the file when it cannot be written, or when this
/// build has no plotting support.
void plot_panels(const std::string& path, const std::vector<Panel>& panels, const std::string& x_label);

/// Reads a run's `log.jsonl` and draws `training_curves.png` beside it: training losses, the
/// evaluation metrics and the learning rate against the step. Returns the PNG's path.
std::string plot_training_log(const std::string& log_dir);

/// "Nice" axis ticks (multiples of 1, 2 or 5 times a power of ten) covering [lo, hi].
std::vector<double> nice_ticks(double lo, double hi, int target_count = 5);

}  // namespace unet
