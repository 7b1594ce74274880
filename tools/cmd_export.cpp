// `unet export`: write a trained checkpoint as a self-contained TorchScript module.
#include "options.h"

#include "unet/infer/export.h"
#include "unet/model/checkpoint.h"

#include <cstdio>
#include <filesystem>
#include <memory>

namespace unet::cli {
namespace {

enum class ExportFormat { kTorchScript };

struct ExportCommand {
  std::string model_dir = "results";
  std::string output;
  ExportFormat format = ExportFormat::kTorchScript;
};

void run_export(const ExportCommand& o) {
  const std::string ckpt = checkpoint_path(o.model_dir);
  if (!std::filesystem::exists(ckpt)) fail_file(o.model_dir, "no checkpoint.pt: nothing trained to export");
  const CheckpointInfo info = read_checkpoint_info(ckpt);
  UNet model = load_model(ckpt, info);
  const std::string out = o.output.empty() ? (std::filesystem::path(o.model_dir) / "unet.torchscript.pt").string() : o.output;
  refuse_to_overwrite(out, {ckpt});
  export_torchscript(model, info.input_size, out);
  std::printf("exported %s (step %lld) to %s\n", ckpt.c_str(), static_cast<long long>(info.step), out.c_str());
  std::printf("contract: %s\n", export_contract(info.model, info.input_size, /*indent=*/2).c_str());
  std::printf("Python: import torch; m = torch.jit.load('%s'); p = m.probabilities(torch.zeros(1, %lld, %lld, %lld))\n",
              out.c_str(), static_cast<long long>(info.model.in_channels()), static_cast<long long>(info.input_size),
              static_cast<long long>(info.input_size));
}

}  // namespace

void register_export(CLI::App& app) {
  auto o = std::make_shared<ExportCommand>();
  CLI::App* cmd = app.add_subcommand("export", "Export a checkpoint as a TorchScript module for LibTorch or PyTorch");
  add_value(*cmd, "--model-dir,--model_dir", "model_dir", o->model_dir, "Directory with checkpoint.pt");
  add_value(*cmd, "--output,-o", "output", o->output, "Module file (default: <model-dir>/unet.torchscript.pt)");
  static const EnumNames<ExportFormat> formats = {{"torchscript", ExportFormat::kTorchScript}};
  add_choice(*cmd, "--format", "format", o->format, formats, "torchscript");
  on_run(*cmd, [o] { run_export(*o); });
}

}  // namespace unet::cli
