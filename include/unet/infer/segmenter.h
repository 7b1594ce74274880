// The embedding API: load a checkpoint or an exported module, segment image buffers of any size.
#pragma once

#include "unet/data/image_io.h"
#include "unet/eval/instances.h"
#include "unet/infer/predictor.h"
#include "unet/infer/tiled.h"
#include "unet/model/unet.h"
#include "unet/runtime/context.h"

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
  /// int32 [H, W] object labels, 0 the background, when asked for (`segment` with instances).
  at::Tensor labels;
};

/// A trained U-Net ready to segment images of any size with overlapping tiles, outputs at each
/// image's own resolution (predicted at the model's object size where it was trained at one): a
/// `Predictor` in tile mode behind a small interface.
///
///     unet::Segmenter seg = unet::Segmenter::from_checkpoint("results/checkpoint.pt");
///     unet::Segmentation out = seg.segment(pixels, height, width);   // 8-bit grayscale buffer
class Segmenter {
 public:
  /// From a `unet train` checkpoint (the architecture comes from the file). `precision`: fp32,
  /// bf16, fp16, or int8 (CPUs; the calibration `unet quantize` wrote beside the checkpoint).
  /// `load` with predict's defaults in tiles: objects as predict cuts them (the model's smallest
  /// object, neck split, object threshold and smallest mean object probability; a model trained
  /// at an object size measures each image's).
  static Segmenter from_checkpoint(const std::string& path, const std::string& device = "cpu",
                                   const std::string& precision = "fp32");
  /// From a `unet export` TorchScript module: objects as from the checkpoint (the contract's
  /// smallest object, neck split, object threshold and smallest mean object probability; an
  /// object size in it: measured per image).
  static Segmenter from_export(const std::string& path, const std::string& device = "cpu");
  /// As `unet predict` predicts with `options` on `context`'s device and precision: `path` a
  /// checkpoint, the model folder holding one, or a TorchScript export (tiles always). The input
  /// mode is resolved per image as predict resolves it (`resolved_input_mode`), so that the same
  /// pixels give the same probabilities, masks and objects as predict's files.
  static Segmenter load(const std::string& path, const InferenceOptions& options, const RunContext& context);

  /// Segments `image` as `read_image` gives a file's page (8-bit, 16-bit or float samples,
  /// [C, H, W]): in `load`'s input mode, resolved per image, or (other constructors) in tiles. With
  /// `instances`: also the objects (`objects_of` with the model's scheme and object rule, cut by
  /// `method`); throws `unet::Error` for a model without objects.
  Segmentation segment(const RawImage& image, bool instances, InstanceMethod method = InstanceMethod::kComponents) const;

  /// Segments an image given as tensor [C, H, W] or [H, W]: 8-bit (uint8) and 16-bit (int32
  /// holding 0..65535) intensities are scaled by their range, float ones taken as [0, 1].
  Segmentation segment(const at::Tensor& image) const;
  /// Segments a row-major 8-bit buffer of height x width x channels (interleaved) pixels.
  Segmentation segment(const uint8_t* pixels, int64_t height, int64_t width, int64_t channels = 1) const;

  /// Tiling and test-time augmentation (defaults: the model's training input size, Gaussian
  /// blending, 4 tiles per pass, no TTA).
  TileOptions& tiles() { return tiles_; }
  const UNetOptions& model_options() const;
  /// The network's input side in training (tiles of that side by default), pixels.
  int64_t input_size() const { return tiles_.input; }
  /// How intensities are normalised before the network (the model's record).
  const Normalisation& normalisation() const { return predictor_->normalisation(); }
  /// The class names and the headline class, where the checkpoint records them (exports: defaults).
  const ClassNaming& naming() const { return naming_; }

 private:
  Segmenter() = default;
  std::shared_ptr<Predictor> predictor_;
  /// `load`'s predictor for images resized to the network input (resize mode), and the checkpoint's
  /// header for the per-image input mode (none for exports).
  std::shared_ptr<Predictor> resizing_;
  std::shared_ptr<CheckpointInfo> info_;
  InputMode input_mode_ = InputMode::kTile;
  /// The object diameter the model was trained at, pixels (0: none recorded).
  double object_diameter_ = 0.0;
  /// Exports: what the model records about its objects (the checkpoint's is in `info_`).
  ObjectRecord objects_;
  TileOptions tiles_;
  ClassNaming naming_ = recorded_naming({}, 2, ClassScheme::kPlain);
};

}  // namespace unet
