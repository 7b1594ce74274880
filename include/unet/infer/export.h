// Export of a trained U-Net as a self-contained TorchScript module, and loading it back.
#pragma once

#include "unet/model/unet.h"

#include <c10/core/Device.h>

#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>
#include <string>

namespace unet {

/// The input/output contract stored in an exported module (as JSON, in the archive's
/// `extra/contract.json` and the module's `contract` attribute); `indent` as nlohmann's dump
/// (-1: one line).
std::string export_contract(const UNetOptions& options, int64_t input_size, int indent = -1);

/// Writes `model` as TorchScript to `path` (atomically): a module whose `forward(x)` maps images
/// [N, in_channels, S, S] (S legal, intensities in [-1, 1]) to logits [N, classes, S', S'] and
/// whose `probabilities(x)` applies the softmax. It needs only LibTorch or PyTorch to run
/// (`torch.jit.load` in Python, `torch::jit::load` in C++), not this project.
void export_torchscript(UNet& model, int64_t input_size, const std::string& path);

/// A loaded exported module: its contract and a forward function (images -> logits).
struct LoadedExport {
  UNetOptions options;
  int64_t input_size = 0;
  std::string contract;
  std::function<at::Tensor(const at::Tensor&)> forward;
};

/// Loads a module written by `export_torchscript`; throws `unet::Error` naming the file otherwise.
LoadedExport load_export(const std::string& path, c10::Device device);

}  // namespace unet
