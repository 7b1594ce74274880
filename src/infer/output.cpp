// Prediction files: masks and probabilities as multi-page TIFFs (a stack in) or one file per input
// file (a folder in), overlays as PNGs.
#include "unet/infer/output.h"

#include "unet/data/image_io.h"
#include "unet/data/preprocess.h"
#include "unet/runtime/error.h"
#include "unet/runtime/files.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cctype>
#include <filesystem>

namespace unet {
namespace fs = std::filesystem;


namespace {

/// Page 3 of "stack.tif" -> "<dir>/overlays/stack_3.png", "image.png" -> "<dir>/overlays/image.png".
std::string overlay_path(const std::string& dir, const Sample& s) {
  const std::string file = fs::path(s.source).stem().string() + (s.page >= 0 ? "_" + std::to_string(s.page) : "") + ".png";
  return (fs::path(dir) / "overlays" / file).string();
}

/// One PNG per sample in `dir/overlays` with the predicted membrane tinted red over the image.
void write_overlays(const std::string& dir, const std::vector<Sample>& samples, const std::vector<at::Tensor>& probabilities,
                    std::vector<std::string>& written) {
  const fs::path overlay_dir = fs::path(dir) / "overlays";
  ensure_writable_directory(overlay_dir.string(), "overlay");
  for (size_t i = 0; i < samples.size(); ++i) {
    const at::Tensor gray = denormalise(samples[i].image).mean(0).mul(255.0).clamp(0, 255);  // [H, W]
    const at::Tensor membrane = maps_to_classes(probabilities[i]) == kMembraneClass;
    at::Tensor rgb = gray.unsqueeze(0).repeat({3, 1, 1});
    // Tint predicted membrane: keep some of the image so that the underlying structure shows.
    rgb[0] = at::where(membrane, gray * 0.4 + 153.0, gray);
    rgb[1] = at::where(membrane, gray * 0.4, gray);
    rgb[2] = at::where(membrane, gray * 0.4, gray);
    const std::string path = overlay_path(dir, samples[i]);
    write_png(path, rgb.round().to(at::kByte));
    written.push_back(path);
  }
}

at::Tensor mask_of(const at::Tensor& p, bool index_masks) {
  const at::Tensor classes = maps_to_classes(p);
  return p.size(0) == 2 && !index_masks ? classes.mul(255).to(at::kByte) : classes.to(at::kByte);
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
at::Tensor instance_page(const at::Tensor& p, const PredictionFiles& files, const std::string& where) {
  const at::Tensor labels = objects_of(p, files.scheme, files.instance_method);
  const int64_t n = labels.max().item<int64_t>();
  if (n > 65535) fail_file(where, std::to_string(n) + " objects in one image, more than a 16-bit label image holds");
  return labels.to(at::kInt).unsqueeze(0);
}

}  // namespace

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
    out.push_back((d / "test-masks.tif").string());
    if (files.probabilities) out.push_back((d / "test-probabilities.tif").string());
    if (files.instances) out.push_back((d / "test-instances.tif").string());
    return with_overlays();
  }
  for (const auto& [first, last] : file_groups(samples)) {
    const std::string stem = fs::path(samples[first].source).stem().string();
    std::vector<std::string> paths = {(d / (stem + (is_png(samples[first].source) ? ".png" : ".tif"))).string()};
    if (files.probabilities) paths.push_back((d / (stem + "_probabilities.tif")).string());
    if (files.instances) paths.push_back((d / (stem + "_instances.tif")).string());
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
  const std::vector<std::string> names = prediction_outputs(dir, samples, files, /*per_file=*/true);
  std::vector<std::string> written;
  size_t name = 0;
  for (const auto& [first, last] : file_groups(samples)) {
    std::vector<at::Tensor> masks, maps, labels;
    for (size_t i = first; i < last; ++i) {
      masks.push_back(mask_of(probabilities[i], files.index_masks));
      const at::Tensor p = probabilities[i].to(at::kFloat);
      if (classes == 2) {
        maps.push_back(p[1].contiguous());
      } else {
        for (int64_t c = 0; c < classes; ++c) maps.push_back(p[c].contiguous());
      }
      if (files.instances) labels.push_back(instance_page(p, files, samples[i].name()));
    }
    const std::string& mask_path = names[name++];
    if (is_png(samples[first].source)) {
      write_png(mask_path, masks.front());
    } else {
      write_tiff(mask_path, masks, /*deflate=*/true);
    }
    written.push_back(mask_path);
    if (files.probabilities) {
      write_tiff(names[name], maps, /*deflate=*/true);
      written.push_back(names[name++]);
    }
    if (files.instances) {
      write_tiff(names[name], labels, /*deflate=*/true);
      written.push_back(names[name++]);
    }
  }
  if (files.overlays) write_overlays(dir, samples, probabilities, written);
  return written;
}

std::vector<std::string> write_predictions(const std::string& dir, const std::vector<Sample>& samples,
                                           const std::vector<at::Tensor>& probabilities, const PredictionFiles& files) {
  TORCH_CHECK(samples.size() == probabilities.size(), "write_predictions: one probability map per sample");
  check_instances(probabilities, files);
  ensure_writable_directory(dir, "prediction");
  std::vector<std::string> written;
  std::vector<at::Tensor> masks, class1, labels;
  const bool two_classes = !probabilities.empty() && probabilities.front().size(0) == 2;
  for (size_t i = 0; i < probabilities.size(); ++i) {
    const at::Tensor& p = probabilities[i];
    masks.push_back(mask_of(p, files.index_masks));
    if (two_classes) class1.push_back(p[1].to(at::kFloat).contiguous());
    if (files.instances) labels.push_back(instance_page(p.to(at::kFloat), files, samples[i].name()));
  }
  // Pages of different sizes are fine in a multi-page TIFF, so one file holds every prediction.
  const std::vector<std::string> names = prediction_outputs(dir, samples, files, /*per_file=*/false);
  write_tiff(names[0], masks, /*deflate=*/true);
  written.push_back(names[0]);
  if (two_classes && files.probabilities) {
    write_tiff(names[1], class1, /*deflate=*/true);
    written.push_back(names[1]);
  }
  if (files.instances) {
    write_tiff(names.back(), labels, /*deflate=*/true);
    written.push_back(names.back());
  }
  if (files.overlays) write_overlays(dir, samples, probabilities, written);
  return written;
}

}  // namespace unet
