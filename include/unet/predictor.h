// Inference: batched forward passes, probabilities at the original image size, output files.
#pragma once

#include "unet/dataset.h"
#include "unet/model.h"
#include "unet/precision.h"
#include "unet/preprocess.h"
#include "unet/tiling.h"

#include <c10/core/Device.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace unet {

/// What `Predictor::run` hands over per batch: samples [first, first + n) of the input list.
struct PredictedBatch {
  size_t first = 0;
  /// float32 [n, classes, output, output] on the CPU.
  at::Tensor logits;
  /// int64 [n, output, output] when every sample of the batch has a mask, else undefined.
  at::Tensor labels;
  /// Softmax probabilities resized back to each sample's original size: [classes, H, W].
  std::vector<at::Tensor> probabilities;
};

/// Runs a trained U-Net in evaluation mode (no dropout, no autograd) in batches.
class Predictor {
 public:
  /// Moves `model` to `device` in evaluation mode; `channels_last` as `TrainOptions::channels_last`.
  Predictor(UNet model, Geometry geometry, c10::Device device, int64_t batch_size, bool channels_last = true);

  /// Logits (float32, CPU) for preprocessed inputs [B, C, input, input].
  /// With `to_host` false: the logits stay on the device in the network's output type (for
  /// callers that continue on the device, and for timing the device work alone).
  at::Tensor forward(const at::Tensor& inputs, bool to_host = true);

  /// Predict at native resolution with overlapping tiles (geometry's input side is the tile's)
  /// instead of resizing.
  void use_tiles(const TileOptions& options);

  /// Autocast the forward passes to fp16 or bf16 (or allow TF32) as in training.
  void use_precision(Precision precision) { precision_ = precision; }

  /// On CUDA, capture the forward pass once per input shape as a CUDA graph and replay it (the
  /// first batch of each shape runs eagerly); falls back to eager with a notice if capture fails.
  void use_graphs(bool on) { graphs_ = on && device_.is_cuda(); }
  /// On CUDA, the fused bias + ReLU kernels after the convolutions (see `UNetImpl::use_fused`).
  void use_fused(bool on) { model_->use_fused(on && device_.is_cuda()); }
  /// Test-time augmentation: average the probabilities of the 8 flips and rotations.
  void use_tta(bool on) { tta_ = on; if (tiles_) tiles_->tta = on; }

  /// Preprocesses, predicts and resizes back every sample (or tiles it, see `use_tiles`), calling
  /// `consume` once per batch; in tile mode each batch is one image and `logits` stays undefined.
  void run(const std::vector<Sample>& samples, const std::function<void(const PredictedBatch&)>& consume);

  /// Probabilities [classes, H, W] at each sample's original size.
  std::vector<at::Tensor> predict(const std::vector<Sample>& samples);

  const Geometry& geometry() const { return geometry_; }

 private:
  UNet model_;
  Geometry geometry_;
  c10::Device device_;
  int64_t batch_size_;
  bool channels_last_;
  std::optional<TileOptions> tiles_;
  bool tta_ = false;
  Precision precision_ = Precision::kFP32;
  bool graphs_ = false;
  struct CapturedForward;
  /// One captured forward pass per input shape (shared: predictors are copied).
  std::map<std::vector<int64_t>, std::shared_ptr<CapturedForward>> captured_;

  at::Tensor eager_forward(const at::Tensor& x);
};

/// Writes predictions into `dir`: `test-masks.tif` (multi-page uint8, 255 = class 1 = cell
/// interior, as the reference), `test-probabilities.tif` (float32 pages in [0, 1], the probability
/// of class 1 = non-membrane: the challenge's submission format) and, when `overlays` is set, one
/// PNG per sample in `dir/overlays` with the predicted membrane tinted red over the image.
/// Returns the paths written. Two-class models only write the probability file. `index_masks`
/// writes class indices instead of 0/255 (always so for more than two classes).
std::vector<std::string> write_predictions(const std::string& dir, const std::vector<Sample>& samples,
                                           const std::vector<at::Tensor>& probabilities, bool overlays,
                                           bool index_masks = false);

}  // namespace unet
