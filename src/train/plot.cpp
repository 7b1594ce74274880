// PNG learning curves drawn with libgd from a run's JSON-lines log.
#include "unet/train/plot.h"
#include "unet/train/options.h"

#include "unet/runtime/error.h"
#include "unet/runtime/files.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>

#ifdef UNET_HAS_GD
#include <gd.h>
#include <gdfontmb.h>
#include <gdfonts.h>
#endif

namespace unet {

std::vector<double> nice_ticks(double lo, double hi, int target_count) {
  if (!(hi > lo)) return {lo};
  const double raw = (hi - lo) / std::max(1, target_count);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = magnitude;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    step = m * magnitude;
    if (step >= raw) break;
  }
  std::vector<double> ticks;
  // Integer multiples of the step, so that errors do not accumulate from tick to tick.
  for (auto k = static_cast<int64_t>(std::ceil(lo / step - 1e-9)); k * step <= hi + step * 1e-9; ++k)
    ticks.push_back(static_cast<double>(k) * step);
  return ticks;
}

std::vector<double> log_ticks(double lo, double hi) {
  if (!(lo > 0.0) || !(hi >= lo)) return {lo, hi};
  const bool fine = std::log10(hi / lo) < 3.0;
  std::vector<double> ticks;
  for (double decade = std::pow(10.0, std::floor(std::log10(lo))); decade <= hi * (1 + 1e-9); decade *= 10.0)
    for (double m : {1.0, 2.0, 5.0})
      if ((m == 1.0 || fine) && decade * m >= lo * (1 - 1e-9) && decade * m <= hi * (1 + 1e-9)) ticks.push_back(decade * m);
  if (ticks.size() < 2) ticks = {lo, hi};
  return ticks;
}

namespace {

/// Tick labels of one axis share a style: exponents when its largest tick is tiny or huge.
std::vector<std::string> tick_labels(const std::vector<double>& ticks) {
  double largest = 0.0;
  for (double t : ticks) largest = std::max(largest, std::abs(t));
  const bool exponent = largest > 0.0 && (largest < 1e-2 || largest >= 1e6);
  std::vector<std::string> labels;
  for (double t : ticks) {
    char buffer[32];
    if (t == 0.0) std::snprintf(buffer, sizeof(buffer), "0");
    else std::snprintf(buffer, sizeof(buffer), exponent ? "%.1e" : "%g", t);
    labels.push_back(buffer);
  }
  return labels;
}

}  // namespace

#ifdef UNET_HAS_GD

bool plotting_available() { return true; }

namespace {

constexpr int kPanelWidth = 520, kPanelHeight = 400;
constexpr int kLeft = 70, kRight = 16, kTop = 34, kBottom = 58;

void draw_text(gdImagePtr im, gdFontPtr font, int x, int y, const std::string& s, int color) {
  gdImageString(im, font, x, y, reinterpret_cast<unsigned char*>(const_cast<char*>(s.c_str())), color);
}

void draw_panel(gdImagePtr im, int x0, const Panel& panel, const std::string& x_label, double x_min, double x_max) {
  const int black = gdTrueColor(0, 0, 0), grey = gdTrueColor(225, 225, 225), dark = gdTrueColor(90, 90, 90);
  const int px = x0 + kLeft, py = kTop, pw = kPanelWidth - kLeft - kRight, ph = kPanelHeight - kTop - kBottom;
  gdFontPtr small = gdFontGetSmall(), bold = gdFontGetMediumBold();
  draw_text(im, bold, px + pw / 2 - static_cast<int>(panel.title.size()) * bold->w / 2, 10, panel.title, black);

  // Values on the drawn scale: log10 for a logarithmic axis (values that are not positive left out).
  const auto scaled = [&panel](double y) { return !panel.log_y ? y : y > 0.0 ? std::log10(y) : NAN; };
  double y_min = std::numeric_limits<double>::infinity(), y_max = -y_min;
  for (const auto& s : panel.series)
    for (const auto& [x, y] : s.points)
      if (std::isfinite(scaled(y))) {
        y_min = std::min(y_min, scaled(y));
        y_max = std::max(y_max, scaled(y));
      }
  if (!std::isfinite(y_min)) {
    draw_text(im, small, px + 10, py + ph / 2, "no data yet", dark);
    gdImageRectangle(im, px, py, px + pw, py + ph, black);
    return;
  }
  if (y_max - y_min < 1e-12) {
    y_min -= 0.5 * std::max(1e-6, std::abs(y_min));
    y_max += 0.5 * std::max(1e-6, std::abs(y_max));
  }
  const double pad = 0.05 * (y_max - y_min);
  y_min -= pad;
  y_max += pad;
  auto sx = [&](double x) { return px + static_cast<int>(std::lround((x - x_min) / (x_max - x_min) * pw)); };
  auto sy = [&](double y) { return py + ph - static_cast<int>(std::lround((y - y_min) / (y_max - y_min) * ph)); };

  const std::vector<double> y_ticks = panel.log_y ? log_ticks(std::pow(10.0, y_min), std::pow(10.0, y_max)) : nice_ticks(y_min, y_max);
  const std::vector<double> x_ticks = nice_ticks(x_min, x_max);
  const std::vector<std::string> y_labels = tick_labels(y_ticks), x_labels = tick_labels(x_ticks);
  for (size_t i = 0; i < y_ticks.size(); ++i) {
    const double t = scaled(y_ticks[i]);
    if (t < y_min || t > y_max) continue;
    gdImageLine(im, px, sy(t), px + pw, sy(t), grey);
    const std::string& label = y_labels[i];
    draw_text(im, small, px - 6 - static_cast<int>(label.size()) * small->w, sy(t) - small->h / 2, label, black);
  }
  for (size_t i = 0; i < x_ticks.size(); ++i) {
    const double t = x_ticks[i];
    if (t < x_min || t > x_max) continue;
    gdImageLine(im, sx(t), py, sx(t), py + ph, grey);
    const std::string& label = x_labels[i];
    draw_text(im, small, sx(t) - static_cast<int>(label.size()) * small->w / 2, py + ph + 6, label, black);
  }
  gdImageRectangle(im, px, py, px + pw, py + ph, black);
  draw_text(im, small, px + pw / 2 - static_cast<int>(x_label.size()) * small->w / 2, py + ph + 22, x_label, black);
  gdImageStringUp(im, small, x0 + 6, py + ph / 2 + static_cast<int>(panel.y_label.size()) * small->w / 2,
                  reinterpret_cast<unsigned char*>(const_cast<char*>(panel.y_label.c_str())), black);

  gdImageSetClip(im, px, py, px + pw, py + ph);
  gdImageSetThickness(im, 2);
  int legend_x = px;
  for (const auto& s : panel.series) {
    const int color = gdTrueColor(s.color[0], s.color[1], s.color[2]);
    bool have_last = false;
    int lx = 0, ly = 0;
    for (const auto& [x, y] : s.points) {
      if (!std::isfinite(scaled(y))) continue;
      const int cx = sx(x), cy = sy(scaled(y));
      if (have_last) gdImageLine(im, lx, ly, cx, cy, color);
      if (s.markers) gdImageFilledEllipse(im, cx, cy, 7, 7, color);
      lx = cx;
      ly = cy;
      have_last = true;
    }
  }
  gdImageSetThickness(im, 1);
  if (std::isfinite(panel.mark_x) && panel.mark_x >= x_min && panel.mark_x <= x_max) {
    const int style[] = {dark, dark, dark, dark, gdTransparent, gdTransparent, gdTransparent};
    gdImageSetStyle(im, const_cast<int*>(style), 7);
    gdImageLine(im, sx(panel.mark_x), py, sx(panel.mark_x), py + ph, gdStyled);
    const int width = static_cast<int>(panel.mark_label.size()) * small->w;
    // Right of the line, or left of it where the panel ends.
    const int right = sx(panel.mark_x) + 4, left = sx(panel.mark_x) - 4 - width;
    draw_text(im, small, right + width <= px + pw - 2 ? right : std::max(px + 2, left), py + 3, panel.mark_label, dark);
  }
  gdImageSetClip(im, 0, 0, gdImageSX(im) - 1, gdImageSY(im) - 1);
  // The legend sits under the x label, one entry after another.
  for (const auto& s : panel.series) {
    const int color = gdTrueColor(s.color[0], s.color[1], s.color[2]);
    const int ly = py + ph + 40;
    gdImageFilledRectangle(im, legend_x, ly + 4, legend_x + 14, ly + 7, color);
    draw_text(im, small, legend_x + 18, ly, s.name, black);
    legend_x += 28 + static_cast<int>(s.name.size()) * small->w;
  }
}

}  // namespace

void plot_panels(const std::string& path, const std::vector<Panel>& panels, const std::string& x_label) {
  if (panels.empty()) throw Error("plot_panels: nothing to draw");
  double x_min = std::numeric_limits<double>::infinity(), x_max = -x_min;
  for (const auto& p : panels)
    for (const auto& s : p.series)
      for (const auto& [x, y] : s.points) {
        x_min = std::min(x_min, x);
        x_max = std::max(x_max, x);
      }
  if (!std::isfinite(x_min)) x_min = 0.0, x_max = 1.0;
  if (x_max - x_min < 1e-12) x_max = x_min + 1.0;
  gdImagePtr im = gdImageCreateTrueColor(kPanelWidth * static_cast<int>(panels.size()), kPanelHeight);
  if (!im) fail_file(path, "cannot allocate the plot image");
  gdImageFilledRectangle(im, 0, 0, gdImageSX(im) - 1, gdImageSY(im) - 1, gdTrueColor(255, 255, 255));
  for (size_t i = 0; i < panels.size(); ++i) draw_panel(im, static_cast<int>(i) * kPanelWidth, panels[i], x_label, x_min, x_max);
  int size = 0;
  void* png = gdImagePngPtr(im, &size);
  gdImageDestroy(im);
  if (!png) fail_file(path, "cannot encode the plot as PNG");
  try {
    write_text_atomically(path, std::string(static_cast<const char*>(png), static_cast<size_t>(size)));
  } catch (...) {
    gdFree(png);
    throw;
  }
  gdFree(png);
}

#else

bool plotting_available() { return false; }

void plot_panels(const std::string& path, const std::vector<Panel>&, const std::string&) {
  fail_file(path, "this build of unet has no plotting support (built without libgd)");
}

#endif

namespace {

/// The series of a training log, filled record by record.
struct LogSeries {
  Series total{"train loss", {}, {31, 119, 180}}, ce{"cross-entropy", {}, {255, 127, 14}},
      dice_loss{"1 - soft Dice", {}, {44, 160, 44}}, eval_loss{"eval loss", {}, {214, 39, 40}, true};
  Series headline{"Dice", {}, {214, 39, 40}, true}, objects{"objects F1", {}, {148, 103, 189}, true},
      pixel{"1 - pixel error", {}, {44, 160, 44}, true}, dice{"dice_score", {}, {31, 119, 180}, true};
  Series lr{"learning rate", {}, {148, 103, 189}};
  double best_step = NAN;
  std::string best_label;

  std::vector<Series*> all() { return {&total, &ce, &dice_loss, &eval_loss, &headline, &objects, &pixel, &dice, &lr}; }

  void add(const nlohmann::json& j) {
    const std::string type = j["type"].get<std::string>();
    if (type == "config") {
      // A resumed run restarts at its checkpoint's step: what the log holds beyond it was redone.
      const double start = j.value("start_step", 0.0);
      for (Series* s : all()) std::erase_if(s->points, [start](const auto& p) { return p.first > start; });
      if (best_step > start) best_step = NAN;
      return;
    }
    const double step = j["step"].get<double>();
    if (type == "train") {
      total.points.emplace_back(step, j.value("total_loss", NAN));
      ce.points.emplace_back(step, j.value("cross_entropy", NAN));
      dice_loss.points.emplace_back(step, j.value("dice_loss", NAN));
      if (j.contains("learning_rate")) lr.points.emplace_back(step, j["learning_rate"].get<double>());
    } else if (type == "eval") {
      eval_loss.points.emplace_back(step, j.value("cross_entropy", NAN) + 1.0 - j.value("dice_score", NAN));
      // The headline class under its name (logs written before names were recorded: class 0's Dice).
      if (j.contains("headline_dice")) {
        headline.name = j.value("headline_class", std::string("headline")) + " Dice";
        headline.points.emplace_back(step, j.value("headline_dice", NAN));
      } else if (j.contains("membrane_dice")) {
        headline.name = "class 0 Dice";
        headline.points.emplace_back(step, j.value("membrane_dice", NAN));
      }
      if (j.contains("objects") && j["objects"].is_object()) objects.points.emplace_back(step, j["objects"].value("f1_50", NAN));
      pixel.points.emplace_back(step, 1.0 - j.value("pixel_error", NAN));
      dice.points.emplace_back(step, j.value("dice_score", NAN));
    } else if (type == "best") {
      best_step = step;
      char label[64];
      std::snprintf(label, sizeof label, "best: step %lld", static_cast<long long>(step));
      best_label = label;
    }
  }
};

/// Whether a series changes (a constant learning rate is a flat line not worth a panel).
bool varies(const Series& s) {
  if (s.points.empty()) return false;
  const auto [lo, hi] = std::minmax_element(s.points.begin(), s.points.end(),
                                            [](const auto& a, const auto& b) { return a.second < b.second; });
  return hi->second - lo->second > 1e-12 * std::max(1.0, std::abs(hi->second));
}

}  // namespace

std::string plot_training_log(const std::string& log_dir) {
  const std::string log = (std::filesystem::path(log_dir) / kLogFile).string();
  std::ifstream in(log);
  if (!in) fail_file(log, "cannot read the training log");
  LogSeries series;
  std::string line;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) continue;  // foreign or cut-off lines
    if (j["type"] != "config" && !(j.contains("step") && j["step"].is_number())) continue;
    series.add(j);
  }
  Panel losses{"Training loss", "loss (log scale)", {series.total, series.ce, series.dice_loss, series.eval_loss}, true, NAN, ""};
  Panel scores{"Evaluation on held-out images", "score", {}, false, series.best_step, series.best_label};
  for (const Series* s : {&series.headline, &series.objects, &series.pixel, &series.dice})
    if (!s->points.empty()) scores.series.push_back(*s);
  std::vector<Panel> panels = {losses, scores};
  if (varies(series.lr)) panels.push_back({"Learning rate", "rate", {series.lr}, false, NAN, ""});
  const std::string path = (std::filesystem::path(log_dir) / kPlotFile).string();
  plot_panels(path, panels, "step");
  return path;
}

}  // namespace unet
