// Prediction files: masks and probabilities as multi-page TIFFs, overlays as PNGs.
#include "unet/infer/output.h"

#include "unet/data/image_io.h"
#include "unet/data/preprocess.h"
#include "unet/runtime/files.h"

#include <ATen/ATen.h>

#include <filesystem>

namespace unet {
namespace fs = std::filesystem;

std::vector<std::string> write_predictions(const std::string& dir, const std::vector<Sample>& samples,
                                           const std::vector<at::Tensor>& probabilities, bool overlays,
                                           bool index_masks) {
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
  if (two_classes) {
    const std::string prob_path = (fs::path(dir) / "test-probabilities.tif").string();
    write_tiff(prob_path, class1, /*deflate=*/true);
    written.push_back(prob_path);
  }
  if (overlays) {
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
      const std::string file =
          fs::path(s.source).stem().string() + (s.page >= 0 ? "_" + std::to_string(s.page) : "") + ".png";
      const std::string path = (overlay_dir / file).string();
      write_png(path, rgb.round().to(at::kByte));
      written.push_back(path);
    }
  }
  return written;
}

}  // namespace unet
