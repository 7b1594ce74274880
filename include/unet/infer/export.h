// Export of a trained U-Net as a self-contained TorchScript module or ONNX model, and loading
// TorchScript back.
#pragma once

#include "unet/model/geometry.h"
#include "unet/model/int8_ops.h"
#include "unet/model/unet.h"

#include <c10/core/Device.h>

#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>
#include <string>

namespace unet {

/// The formats an export can take.
enum class ExportFormat {
  kTorchScript,        ///< a TorchScript module: forward(x) -> logits, probabilities(x)
  kTorchScriptProbabilities,  ///< a TorchScript module: forward(x) -> probabilities, logits(x)
  kOnnx,               ///< an ONNX model with outputs `logits` and `probabilities`
  kOnnxProbabilities,  ///< an ONNX model with the output `probabilities` only
};

/// The input/output contract stored in an export (JSON: TorchScript's `extra/contract.json` and
/// `contract` attribute, ONNX's `unet.contract` metadata): normalisation, channels, classes,
/// legal sizes, output size, the classes by name (`naming`: the checkpoint's; empty: the default
/// naming of a checkpoint without names) with the headline class, the training options
/// (`training_record`, a JSON object text) and unet's version. `indent` as nlohmann's dump (-1:
/// one line). `int8`: the contract of an int8 (QDQ) ONNX file, which says so in "precision".
std::string export_contract(const UNetOptions& options, int64_t input_size, ExportFormat format,
                            const std::string& training_record = "{}", int indent = -1, const ClassNaming& naming = {},
                            bool int8 = false);

/// Writes `model` as TorchScript to `path` (atomically): a module whose `forward(x)` maps images
/// [N, in_channels, S, S] (S legal, intensities in [-1, 1]) to logits [N, classes, S', S'] and
/// whose `probabilities(x)` applies the softmax. It needs only LibTorch or PyTorch to run
/// (`torch.jit.load` in Python, `torch::jit::load` in C++), not this project.
/// With kTorchScriptProbabilities, `forward(x)` gives the probabilities and `logits(x)` the logits
/// (for consumers that call forward, such as bioimage.io packages).
void export_torchscript(UNet& model, int64_t input_size, const std::string& path,
                        const std::string& training_record = "{}", ExportFormat format = ExportFormat::kTorchScript,
                        const ClassNaming& naming = {});

/// Writes `model` as an ONNX model (opset 17) to `path` (atomically): input `image`
/// [N, in_channels, H, W] float32 with symbolic N, H and W (each side legal, intensities in
/// [-1, 1]), outputs `logits` (kOnnx only) and `probabilities` [N, classes, H', W']; the contract
/// in its metadata_props. Checked by ONNX's checker and strict shape inference before writing.
/// With `int8` (the model's calibrated scales, `load_int8_scales`), the graph is in QDQ form with
/// the int8 engine's arithmetic: the image quantized to u8, weights int8 per output channel,
/// activations u8, biases int32, float32 logits (see `onnx_export::Quantization`).
/// Throws `unet::Error` when the build has no ONNX writer or the graph is rejected.
void export_onnx(UNet& model, int64_t input_size, const std::string& path, ExportFormat format = ExportFormat::kOnnx,
                 const std::string& training_record = "{}", const ClassNaming& naming = {},
                 const Int8Scales* int8 = nullptr);

/// A loaded exported module: its contract and a forward function (images -> logits).
struct LoadedExport {
  UNetOptions options;
  int64_t input_size = 0;
  std::string contract;
  /// The model's intensity normalisation, from the contract (`kRange` where it names none).
  Normalisation normalisation;
  /// The median object diameter the training images were rescaled to, pixels (0: none recorded).
  double object_diameter = 0.0;
  /// What the checkpoint recorded about its objects (the contract's training record; 0: none).
  ObjectRecord objects;
  std::function<at::Tensor(const at::Tensor&)> forward;
};

/// Loads a module written by `export_torchscript` (either kind; `forward` gives logits); throws `unet::Error` naming the file otherwise.
LoadedExport load_export(const std::string& path, c10::Device device);

}  // namespace unet
