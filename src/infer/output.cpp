// Prediction files: masks and probabilities as multi-page TIFFs (a stack in) or one file per input
// file (a folder in), overlays as PNGs.
#include "unet/infer/output.h"

#include "unet/data/image_io.h"
#include "unet/data/preprocess.h"
#include "unet/runtime/error.h"
#include "unet/runtime/files.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cctype>
#include <filesystem>

namespace unet {
namespace fs = std::filesystem;


namespace {

/// Page 3 of "stack.tif" -> "<dir>/<folder>/stack_3.png", "image.png" -> "<dir>/<folder>/image.png".
std::string page_png(const std::string& dir, const char* folder, const Sample& s) {
  const std::string file = fs::path(s.source).stem().string() + (s.page >= 0 ? "_" + std::to_string(s.page) : "") + ".png";
  return (fs::path(dir) / folder / file).string();
}

std::string overlay_path(const std::string& dir, const Sample& s) { return page_png(dir, "overlays", s); }

/// The image as 8-bit gray [H, W] float (0..255).
at::Tensor gray_of(const Sample& s) { return denormalise(s.image).mean(0).mul(255.0).clamp(0, 255); }

/// RGB [3] in 0..255 of hue `h` (turns), saturation 0.8, value 1.
std::array<double, 3> hue_colour(double h) {
  h = (h - std::floor(h)) * 6.0;
  const double s = 0.8, f = h - std::floor(h);
  const double p = 1.0 - s, q = 1.0 - s * f, t = 1.0 - s * (1.0 - f);
  const std::array<std::array<double, 3>, 6> sector = {{{1, t, p}, {q, 1, p}, {p, 1, t}, {p, q, 1}, {t, p, 1}, {1, p, q}}};
  const auto& c = sector[static_cast<size_t>(h) % 6];
  return {255.0 * c[0], 255.0 * c[1], 255.0 * c[2]};
}

/// `gray` [H, W] (0..255) with the pixels of `where` [H, W] bool blended towards `rgb`.
void tint(at::Tensor& out, const at::Tensor& gray, const at::Tensor& where, const std::array<double, 3>& rgb) {
  for (int64_t k = 0; k < 3; ++k) out[k] = at::where(where, gray * 0.4 + 0.6 * rgb[static_cast<size_t>(k)], out[k]);
}

/// One PNG per sample in `dir/overlays`: the classes that are objects tinted over the image
/// (`overlay_image`).
void write_overlays(const std::string& dir, const std::vector<Sample>& samples, const std::vector<at::Tensor>& probabilities,
                    const PredictionFiles& files, std::vector<std::string>& written) {
  const fs::path overlay_dir = fs::path(dir) / "overlays";
  ensure_writable_directory(overlay_dir.string(), "overlay");
  for (size_t i = 0; i < samples.size(); ++i) {
    const std::string path = overlay_path(dir, samples[i]);
    write_png(path, overlay_image(samples[i], probabilities[i], files.naming));
    written.push_back(path);
  }
}

bool is_png(const std::string& name) {
  std::string ext = fs::path(name).extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext == ".png";
}

/// [first, last) index ranges of the samples of each input file, in order.
std::vector<std::pair<size_t, size_t>> file_groups(const std::vector<Sample>& samples) {
  std::vector<std::pair<size_t, size_t>> groups;
  for (size_t i = 0; i < samples.size(); ++i) {
    if (groups.empty() || samples[i].source != samples[groups.back().first].source || samples[i].page <= 0) {
      groups.emplace_back(i, i + 1);
    } else {
      groups.back().second = i + 1;
    }
  }
  return groups;
}

/// Instance labels need class 1 of a two-class model, or interior/boundary classes.
void check_instances(const std::vector<at::Tensor>& probabilities, const PredictionFiles& files) {
  if (files.instances && !probabilities.empty() && !has_objects(probabilities.front().size(0), files.scheme)) {
    throw Error("instance labels cut out the objects of class 1 of a two-class model, or of an interior/boundary model; "
                "this model has " + std::to_string(probabilities.front().size(0)) + " " + to_string(files.scheme) + " classes");
  }
}

/// Instance labels of one probability map as a 16-bit TIFF page (int32 holding 0..65535).
at::Tensor instance_page(const at::Tensor& p, const PredictionFiles& files, size_t sample, const std::string& where) {
  ObjectRule rule = files.objects;
  if (sample < files.object_scales.size()) rule.scale = files.object_scales[sample];
  const at::Tensor scaled = sample < files.scaled_probabilities.size() ? files.scaled_probabilities[sample] : at::Tensor();
  const at::Tensor labels = objects_at_scale(scaled, p, files.scheme, files.instance_method, rule);
  const int64_t n = labels.max().item<int64_t>();
  if (n > 65535) fail_file(where, std::to_string(n) + " objects in one image, more than a 16-bit label image holds");
  return labels.to(at::kInt).unsqueeze(0);
}

/// The previews of samples `first`..`last`'s instance labels, as the overlays are named:
/// `<dir>/instances/<stem>.png` (`<stem>_<page>.png` for the pages of a stack). A folder of their
/// own: beside `<stem>_instances.tif` a `<stem>_instances.png` would make `score`'s matching by stem
/// ambiguous.
std::vector<std::string> preview_paths(const std::string& dir, const std::vector<Sample>& samples, size_t first, size_t last) {
  std::vector<std::string> paths;
  for (size_t i = first; i < last; ++i) paths.push_back(page_png(dir, "instances", samples[i]));
  return paths;
}

/// Writes the previews of `labels` (one [1, H, W] page per sample of `first`..`last`).
void write_previews(const std::vector<std::string>& paths, const std::vector<Sample>& samples, size_t first,
                    const std::vector<at::Tensor>& labels, std::vector<std::string>& written) {
  for (size_t k = 0; k < paths.size(); ++k) {
    ensure_writable_directory(fs::path(paths[k]).parent_path().string(), "instance preview");
    write_png(paths[k], instance_preview(samples[first + k], labels[k][0]));
    written.push_back(paths[k]);
  }
}

}  // namespace

at::Tensor mask_of(const at::Tensor& p, bool index_masks) {
  const at::Tensor classes = maps_to_classes(p);
  return p.size(0) == 2 && !index_masks ? classes.mul(255).to(at::kByte) : classes.to(at::kByte);
}

at::Tensor probability_values(const at::Tensor& probabilities, int bits) {
  const at::Tensor p = probabilities.to(at::kFloat);
  return bits == 8 ? p.mul(255.0).round_().clamp_(0, 255).to(at::kByte) : p.contiguous();
}

at::Tensor mask_palette(int64_t classes, bool index_masks) {
  return classes == 2 && !index_masks ? at::Tensor() : class_palette(classes);
}

at::Tensor class_palette(int64_t classes) {
  static const std::array<std::array<uint8_t, 3>, 10> kColours = {{{0, 0, 0},
                                                                    {230, 25, 75},
                                                                    {60, 180, 75},
                                                                    {0, 130, 200},
                                                                    {255, 225, 25},
                                                                    {245, 130, 48},
                                                                    {145, 30, 180},
                                                                    {70, 240, 240},
                                                                    {240, 50, 230},
                                                                    {210, 245, 60}}};
  at::Tensor palette = at::empty({classes, 3}, at::kByte);
  auto* rgb = palette.data_ptr<uint8_t>();
  for (int64_t c = 0; c < classes; ++c) {
    const auto colour = c < static_cast<int64_t>(kColours.size()) ? kColours[static_cast<size_t>(c)] : [&] {
      const auto h = hue_colour(0.61803398875 * static_cast<double>(c));
      return std::array<uint8_t, 3>{static_cast<uint8_t>(h[0]), static_cast<uint8_t>(h[1]), static_cast<uint8_t>(h[2])};
    }();
    for (size_t k = 0; k < 3; ++k) rgb[c * 3 + static_cast<int64_t>(k)] = colour[k];
  }
  return palette;
}

at::Tensor overlay_image(const Sample& sample, const at::Tensor& probabilities, const ClassNaming& naming) {
  const at::Tensor gray = gray_of(sample);
  const at::Tensor classes = maps_to_classes(probabilities);
  const int64_t n = probabilities.size(0);
  const at::Tensor palette = class_palette(n).to(at::kDouble);
  const int64_t background = naming.background();
  at::Tensor rgb = gray.unsqueeze(0).repeat({3, 1, 1});
  for (int64_t c = 0; c < n; ++c) {
    if (c == background) continue;
    // Two classes: the one object class in red; more: each class in its palette colour (class 0,
    // black in the palette, in red when it is the headline).
    const bool red = n == 2 || c == 0;
    const std::array<double, 3> colour =
        red ? std::array<double, 3>{230, 25, 75}
            : std::array<double, 3>{palette[c][0].item<double>(), palette[c][1].item<double>(), palette[c][2].item<double>()};
    tint(rgb, gray, classes == c, colour);
  }
  return rgb.round().to(at::kByte);
}

at::Tensor instance_preview(const Sample& sample, const at::Tensor& labels) {
  const at::Tensor gray = gray_of(sample);
  const at::Tensor l = labels.to(at::kLong);
  const int64_t count = l.numel() > 0 ? l.max().item<int64_t>() : 0;
  // A colour per label, golden-ratio hues apart (neighbouring labels differ), background black.
  at::Tensor lut = at::zeros({count + 1, 3}, at::kFloat);
  for (int64_t k = 1; k <= count; ++k) {
    const auto c = hue_colour(0.61803398875 * static_cast<double>(k));
    for (int64_t j = 0; j < 3; ++j) lut[k][j] = c[static_cast<size_t>(j)];
  }
  const at::Tensor colours = lut.index_select(0, l.flatten()).t().reshape({3, l.size(0), l.size(1)});
  const at::Tensor object = (l > 0).unsqueeze(0);
  const at::Tensor shown = at::where(object, colours * 0.7 + gray.unsqueeze(0) * 0.3, gray.unsqueeze(0) * 0.35);
  return shown.round().clamp(0, 255).to(at::kByte);
}

OutputNames output_names(const std::string& dir, const std::string& source, const PredictionFiles& files) {
  const fs::path d(dir);
  const std::string stem = fs::path(source).stem().string();
  const bool per_file = !source.empty();
  OutputNames names;
  names.masks = (d / (per_file ? stem + (is_png(source) ? ".png" : ".tif") : "test-masks.tif")).string();
  if (files.probabilities) names.probabilities = (d / (per_file ? stem + "_probabilities.tif" : "test-probabilities.tif")).string();
  if (files.instances) names.instances = (d / (per_file ? stem + "_instances.tif" : "test-instances.tif")).string();
  return names;
}

std::vector<std::string> prediction_outputs(const std::string& dir, const std::vector<Sample>& samples,
                                            const PredictionFiles& files, bool per_file) {
  const fs::path d(dir);
  std::vector<std::string> out;
  // The writers take their names from the front of this list; the overlays come last.
  const auto with_overlays = [&] {
    if (files.overlays)
      for (const Sample& s : samples) out.push_back(overlay_path(dir, s));
    return out;
  };
  if (!per_file) {
    const OutputNames names = output_names(dir, "", files);
    out.push_back(names.masks);
    if (files.probabilities) out.push_back(names.probabilities);
    if (files.instances) {
      out.push_back(names.instances);
      if (!samples.empty())
        for (const std::string& path : preview_paths(dir, samples, 0, samples.size())) out.push_back(path);
    }
    return with_overlays();
  }
  for (const auto& [first, last] : file_groups(samples)) {
    const std::string stem = fs::path(samples[first].source).stem().string();
    const OutputNames names = output_names(dir, samples[first].source, files);
    std::vector<std::string> paths = {names.masks};
    if (files.probabilities) paths.push_back(names.probabilities);
    if (files.instances) {
      paths.push_back(names.instances);
      for (const std::string& path : preview_paths(dir, samples, first, last)) paths.push_back(path);
    }
    for (const std::string& path : paths) {
      if (std::find(out.begin(), out.end(), path) != out.end()) {
        fail_file(path, "two input files would write it (" + samples[first].source + " and another with the stem " + stem + ")");
      }
      out.push_back(path);
    }
  }
  return with_overlays();
}

std::vector<std::string> write_predictions_per_file(const std::string& dir, const std::vector<Sample>& samples,
                                                    const std::vector<at::Tensor>& probabilities,
                                                    const PredictionFiles& files) {
  TORCH_CHECK(samples.size() == probabilities.size(), "write_predictions_per_file: one probability map per sample");
  check_instances(probabilities, files);
  ensure_writable_directory(dir, "prediction");
  const int64_t classes = probabilities.empty() ? 2 : probabilities.front().size(0);
  const at::Tensor palette = mask_palette(classes, files.index_masks);
  const std::vector<std::string> names = prediction_outputs(dir, samples, files, /*per_file=*/true);
  std::vector<std::string> written;
  size_t name = 0;
  for (const auto& [first, last] : file_groups(samples)) {
    std::vector<at::Tensor> masks, maps, labels;
    for (size_t i = first; i < last; ++i) {
      masks.push_back(mask_of(probabilities[i], files.index_masks));
      const at::Tensor p = probabilities[i].to(at::kFloat);
      if (classes == 2) {
        maps.push_back(probability_values(p[1], files.probability_bits));
      } else {
        for (int64_t c = 0; c < classes; ++c) maps.push_back(probability_values(p[c], files.probability_bits));
      }
      if (files.instances) labels.push_back(instance_page(p, files, i, samples[i].name()));
    }
    const std::string& mask_path = names[name++];
    if (is_png(samples[first].source)) {
      write_png(mask_path, masks.front(), palette);
    } else {
      write_tiff(mask_path, masks, /*deflate=*/true, palette);
    }
    written.push_back(mask_path);
    if (files.probabilities) {
      write_tiff(names[name], maps, /*deflate=*/true);
      written.push_back(names[name++]);
    }
    if (files.instances) {
      write_tiff(names[name], labels, /*deflate=*/true);
      written.push_back(names[name++]);
      const std::vector<std::string> previews(names.begin() + static_cast<std::ptrdiff_t>(name),
                                              names.begin() + static_cast<std::ptrdiff_t>(name + (last - first)));
      write_previews(previews, samples, first, labels, written);
      name += last - first;
    }
  }
  if (files.overlays) write_overlays(dir, samples, probabilities, files, written);
  return written;
}

std::vector<std::string> write_predictions(const std::string& dir, const std::vector<Sample>& samples,
                                           const std::vector<at::Tensor>& probabilities, const PredictionFiles& files) {
  TORCH_CHECK(samples.size() == probabilities.size(), "write_predictions: one probability map per sample");
  check_instances(probabilities, files);
  ensure_writable_directory(dir, "prediction");
  std::vector<std::string> written;
  std::vector<at::Tensor> masks, class1, labels;
  const int64_t classes = probabilities.empty() ? 2 : probabilities.front().size(0);
  const bool two_classes = classes == 2;
  for (size_t i = 0; i < probabilities.size(); ++i) {
    const at::Tensor& p = probabilities[i];
    masks.push_back(mask_of(p, files.index_masks));
    if (two_classes) class1.push_back(probability_values(p[1], files.probability_bits));
    if (files.instances) labels.push_back(instance_page(p.to(at::kFloat), files, i, samples[i].name()));
  }
  // Pages of different sizes are fine in a multi-page TIFF, so one file holds every prediction.
  const std::vector<std::string> names = prediction_outputs(dir, samples, files, /*per_file=*/false);
  size_t name = 0;
  write_tiff(names[name], masks, /*deflate=*/true, mask_palette(classes, files.index_masks));
  written.push_back(names[name++]);
  if (files.probabilities) {
    if (two_classes) {
      write_tiff(names[name], class1, /*deflate=*/true);
      written.push_back(names[name]);
    }
    ++name;
  }
  if (files.instances) {
    write_tiff(names[name], labels, /*deflate=*/true);
    written.push_back(names[name++]);
    const std::vector<std::string> previews(names.begin() + static_cast<std::ptrdiff_t>(name),
                                            names.begin() + static_cast<std::ptrdiff_t>(name + samples.size()));
    write_previews(previews, samples, 0, labels, written);
  }
  if (files.overlays) write_overlays(dir, samples, probabilities, files, written);
  return written;
}

}  // namespace unet
