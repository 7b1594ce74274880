// The embedding API: load a checkpoint or an exported module, segment image buffers of any size.
#pragma once

#include "unet/infer/tiled.h"
#include "unet/model/unet.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>

namespace unet {

class Predictor;

/// What `Segmenter::segment` returns for one image of H x W pixels.
struct Segmentation {
  /// float32 [classes, H, W], summing to 1 over classes.
  at::Tensor probabilities;
  /// uint8 [H, W] class per pixel (for two classes: 1 where p(class 1) >= 0.5).
  at::Tensor mask;
};

/// A trained U-Net ready to segment images at their native resolution with overlapping tiles: a
/// `Predictor` in tile mode behind a small interface.
///
///     unet::Segmenter seg = unet::Segmenter::from_checkpoint("results/checkpoint.pt");
///     unet::Segmentation out = seg.segment(pixels, height, width);   // 8-bit grayscale buffer
class Segmenter {
 public:
  /// From a `unet train` checkpoint (the architecture comes from the file). `precision`: fp32,
  /// bf16, fp16, or int8 (CPUs; the calibration `unet quantize` wrote beside the checkpoint).
  static Segmenter from_checkpoint(const std::string& path, const std::string& device = "cpu",
                                   const std::string& precision = "fp32");
  /// From a `unet export` TorchScript module.
  static Segmenter from_export(const std::string& path, const std::string& device = "cpu");

  /// Segments an image given as tensor [C, H, W] or [H, W]: 8-bit (uint8) and 16-bit (int32
  /// holding 0..65535) intensities are scaled by their range, float ones taken as [0, 1].
  Segmentation segment(const at::Tensor& image) const;
  /// Segments a row-major 8-bit buffer of height x width x channels (interleaved) pixels.
  Segmentation segment(const uint8_t* pixels, int64_t height, int64_t width, int64_t channels = 1) const;

  /// Tiling and test-time augmentation (defaults: the model's training input size, Gaussian
  /// blending, 4 tiles per pass, no TTA).
  TileOptions& tiles() { return tiles_; }
  const UNetOptions& model_options() const;

 private:
  Segmenter() = default;
  std::shared_ptr<Predictor> predictor_;
  TileOptions tiles_;
};

}  // namespace unet
