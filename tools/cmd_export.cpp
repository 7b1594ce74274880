// `unet export`: write a trained checkpoint as a self-contained TorchScript module.
#include "options.h"

#include "unet/checkpoint.h"
#include "unet/error.h"
#include "unet/export.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <memory>

namespace unet::cli {

void register_export(CLI::App& app) {
  auto model_dir = std::make_shared<std::string>("results");
  auto output = std::make_shared<std::string>();
  auto format = std::make_shared<std::string>("torchscript");
  CLI::App* cmd = app.add_subcommand("export", "Export a checkpoint as a TorchScript module for LibTorch or PyTorch");
  cmd->add_option("--model-dir,--model_dir", *model_dir, "Directory with checkpoint.pt")->capture_default_str();
  cmd->add_option("--output,-o", *output, "Module file (default: <model-dir>/unet.torchscript.pt)");
  cmd->add_option("--format", *format, "torchscript")->capture_default_str();
  cmd->callback([model_dir, output, format] {
    if (*format != "torchscript") throw Error("--format: only torchscript is supported, got '" + *format + "'");
    const std::string ckpt = checkpoint_path(*model_dir);
    if (!std::filesystem::exists(ckpt)) fail_file(*model_dir, "no checkpoint.pt: nothing trained to export");
    const CheckpointInfo info = read_checkpoint_info(ckpt);
    UNet model(info.model);
    load_checkpoint(ckpt, model, nullptr, /*restore_rng=*/false);
    const std::string out = output->empty() ? (std::filesystem::path(*model_dir) / "unet.torchscript.pt").string() : *output;
    export_torchscript(model, info.input_size, out);
    std::printf("exported %s (step %lld) to %s\n", ckpt.c_str(), static_cast<long long>(info.step), out.c_str());
    std::printf("contract: %s\n", nlohmann::json::parse(export_contract(info.model, info.input_size)).dump(2).c_str());
    std::printf("Python: import torch; m = torch.jit.load('%s'); p = m.probabilities(torch.zeros(1, %lld, %lld, %lld))\n",
                out.c_str(), static_cast<long long>(info.model.in_channels()), static_cast<long long>(info.input_size),
                static_cast<long long>(info.input_size));
  });
}

}  // namespace unet::cli
