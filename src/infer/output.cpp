// Prediction files: masks and probabilities as multi-page TIFFs (a stack in) or one file per input
// file (a folder in), overlays as PNGs.
#include "unet/infer/output.h"

#include "unet/data/image_io.h"
#include "unet/data/preprocess.h"
#include "unet/runtime/files.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cctype>
#include <filesystem>

namespace unet {
namespace fs = std::filesystem;


namespace {

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
    // Page 3 of "stack.tif" -> "stack_3.png", "image.png" -> "image.png".
    const Sample& s = samples[i];
    const std::string file = fs::path(s.source).stem().string() + (s.page >= 0 ? "_" + std::to_string(s.page) : "") + ".png";
    const std::string path = (overlay_dir / file).string();
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

}  // namespace

std::vector<std::string> per_file_outputs(const std::string& dir, const std::vector<Sample>& samples,
                                          bool probabilities_files) {
  std::vector<std::string> out;
  for (const auto& [first, last] : file_groups(samples)) {
    const std::string stem = fs::path(samples[first].source).stem().string();
    const std::string mask = (fs::path(dir) / (stem + (is_png(samples[first].source) ? ".png" : ".tif"))).string();
    const std::string prob = (fs::path(dir) / (stem + "_probabilities.tif")).string();
    for (const std::string& path : probabilities_files ? std::vector<std::string>{mask, prob} : std::vector<std::string>{mask}) {
      if (std::find(out.begin(), out.end(), path) != out.end()) {
        fail_file(path, "two input files would write it (" + samples[first].source + " and another with the stem " + stem + ")");
      }
      out.push_back(path);
    }
  }
  return out;
}

std::vector<std::string> write_predictions_per_file(const std::string& dir, const std::vector<Sample>& samples,
                                                    const std::vector<at::Tensor>& probabilities, bool overlays,
                                                    bool index_masks, bool probabilities_files) {
  TORCH_CHECK(samples.size() == probabilities.size(), "write_predictions_per_file: one probability map per sample");
  ensure_writable_directory(dir, "prediction");
  const int64_t classes = probabilities.empty() ? 2 : probabilities.front().size(0);
  const std::vector<std::string> names = per_file_outputs(dir, samples, probabilities_files);
  std::vector<std::string> written;
  size_t name = 0;
  for (const auto& [first, last] : file_groups(samples)) {
    std::vector<at::Tensor> masks, maps;
    for (size_t i = first; i < last; ++i) {
      masks.push_back(mask_of(probabilities[i], index_masks));
      const at::Tensor p = probabilities[i].to(at::kFloat);
      if (classes == 2) {
        maps.push_back(p[1].contiguous());
      } else {
        for (int64_t c = 0; c < classes; ++c) maps.push_back(p[c].contiguous());
      }
    }
    const std::string& mask_path = names[name++];
    if (is_png(samples[first].source)) {
      write_png(mask_path, masks.front());
    } else {
      write_tiff(mask_path, masks, /*deflate=*/true);
    }
    written.push_back(mask_path);
    if (probabilities_files) {
      write_tiff(names[name], maps, /*deflate=*/true);
      written.push_back(names[name++]);
    }
  }
  if (overlays) write_overlays(dir, samples, probabilities, written);
  return written;
}

std::vector<std::string> write_predictions(const std::string& dir, const std::vector<Sample>& samples,
                                           const std::vector<at::Tensor>& probabilities, bool overlays,
                                           bool index_masks, bool probabilities_file) {
  TORCH_CHECK(samples.size() == probabilities.size(), "write_predictions: one probability map per sample");
  ensure_writable_directory(dir, "prediction");
  std::vector<std::string> written;
  std::vector<at::Tensor> masks, class1;
  const bool two_classes = !probabilities.empty() && probabilities.front().size(0) == 2;
  for (const auto& p : probabilities) {
    const at::Tensor classes = maps_to_classes(p);
    masks.push_back(two_classes && !index_masks ? classes.mul(255).to(at::kByte) : classes.to(at::kByte));
    if (two_classes) class1.push_back(p[1].to(at::kFloat).contiguous());
  }
  // Pages of different sizes are fine in a multi-page TIFF, so one file holds every prediction.
  const std::string mask_path = (fs::path(dir) / "test-masks.tif").string();
  write_tiff(mask_path, masks, /*deflate=*/true);
  written.push_back(mask_path);
  if (two_classes && probabilities_file) {
    const std::string prob_path = (fs::path(dir) / "test-probabilities.tif").string();
    write_tiff(prob_path, class1, /*deflate=*/true);
    written.push_back(prob_path);
  }
  if (overlays) write_overlays(dir, samples, probabilities, written);
  return written;
}

}  // namespace unet
