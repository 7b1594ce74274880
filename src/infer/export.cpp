// TorchScript export: the U-Net written out as TorchScript source over its own weights.
#include "unet/infer/export.h"

#include "model/json.h"
#include "unet/model/geometry.h"
#include "unet/runtime/files.h"

#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/serialization/export.h>
#include <torch/csrc/jit/serialization/import.h>

#include <sstream>

namespace unet {
namespace {

std::string attribute(const std::string& name) {
  std::string out = name;
  for (char& c : out)
    if (c == '.') c = '_';
  return out;
}

/// TorchScript source of the forward pass for `o`, naming the weights as `attribute` does.
std::string forward_source(const UNetOptions& o) {
  const int p = o.padding() == Padding::kSame ? 1 : 0;
  std::ostringstream s;
  auto conv = [&](const std::string& module) {
    s << "        x = torch.relu(torch.conv2d(x, self." << attribute(module + ".weight") << ", self."
      << attribute(module + ".bias") << ", [1, 1], [" << p << ", " << p << "]))\n";
  };
  s << "    def forward(self, x: Tensor) -> Tensor:\n";
  for (int64_t level = 0; level < o.depth(); ++level) {
    conv("down." + std::to_string(level) + ".conv1");
    conv("down." + std::to_string(level) + ".conv2");
    s << "        skip" << level << " = x\n";
    s << "        x = torch.max_pool2d(x, [2, 2], [2, 2])\n";
  }
  conv("bottleneck.conv1");
  conv("bottleneck.conv2");
  const bool k3 = o.up_kernel() == 3;
  for (int64_t i = 0; i < o.depth(); ++i) {
    const int64_t level = o.depth() - 1 - i;
    const std::string up = "up_sample." + std::to_string(i);
    s << "        x = torch.relu(torch.conv_transpose2d(x, self." << attribute(up + ".weight") << ", self."
      << attribute(up + ".bias") << ", [2, 2], " << (k3 ? "[1, 1], [1, 1]" : "[0, 0], [0, 0]") << "))\n";
    s << "        top = (skip" << level << ".size(2) - x.size(2)) // 2\n";
    s << "        left = (skip" << level << ".size(3) - x.size(3)) // 2\n";
    s << "        x = torch.cat([x, skip" << level << "[:, :, top:top + x.size(2), left:left + x.size(3)]], 1)\n";
    conv("up." + std::to_string(i) + ".conv1");
    conv("up." + std::to_string(i) + ".conv2");
  }
  s << "        return torch.conv2d(x, self.head_weight, self.head_bias)\n";
  s << "\n    def probabilities(self, x: Tensor) -> Tensor:\n";
  s << "        return torch.softmax(self.forward(x), 1)\n";
  return s.str();
}

}  // namespace

std::string export_contract(const UNetOptions& o, int64_t input_size, int indent) {
  const int64_t minimum = minimum_input_size(o);
  nlohmann::json j = {
      {"format", "unet-torchscript/1"},
      {"model", o},
      {"input", {{"shape", "[N, " + std::to_string(o.in_channels()) + ", S, S] float32"},
                 {"channels", o.in_channels()},
                 {"trained_size", input_size},
                 {"minimum_size", minimum},
                 {"legal_sizes", o.padding() == Padding::kSame
                                     ? "multiples of " + std::to_string(int64_t{1} << o.depth())
                                     : std::to_string(minimum) + " + k * " + std::to_string(int64_t{1} << o.depth())},
                 {"normalisation", "intensity / max_value * 2 - 1 (8-bit: x / 127.5 - 1), in [-1, 1]"}}},
      {"output", {{"shape", "[N, " + std::to_string(o.classes()) + ", S', S'] logits"},
                  {"trained_output_size", output_size(o, input_size)},
                  {"classes", o.classes()},
                  {"class_0", "membrane / boundary (mask value 0)"},
                  {"methods", "forward(x) -> logits, probabilities(x) -> softmax over classes"}}}};
  return j.dump(indent);
}

void export_torchscript(UNet& model, int64_t input_size, const std::string& path) {
  const UNetOptions& o = model->options();
  output_size(o, input_size);  // a legal size
  torch::jit::Module module("__torch__.unet.UNetExport");
  for (const auto& item : model->named_parameters()) {
    module.register_parameter(attribute(item.key()), item.value().detach().contiguous().cpu(), /*is_buffer=*/false);
  }
  const std::string contract = export_contract(o, input_size);
  module.register_attribute("contract", c10::StringType::get(), contract);
  try {
    module.define(forward_source(o));
  } catch (const c10::Error& e) {
    throw Error("export failed: " + std::string(e.what_without_backtrace()));
  }
  module.eval();
  write_atomically(path, [&](const std::string& tmp) {
    // As for checkpoints: LibTorch's writer must not see a failure (it would abort the process
    // from a destructor); the checked writer reports it afterwards.
    CheckedFileWriter out(tmp);
    try {
      torch::jit::ExportModule(module, [&out](const void* data, size_t size) { return out.write(data, size); },
                               {{"contract.json", contract}});
    } catch (const c10::Error& e) {
      fail_file(path, "cannot write the module (" + std::string(e.what_without_backtrace()) + ")");
    }
    out.finish(path);
  });
}

LoadedExport load_export(const std::string& path, c10::Device device) {
  require_readable_file(path);
  torch::jit::ExtraFilesMap extra{{"contract.json", ""}};
  std::shared_ptr<torch::jit::Module> module;
  try {
    MemoryBudget budget(MemoryBudget::for_reading(path));
    module = std::make_shared<torch::jit::Module>(torch::jit::load(path, device, extra));
  } catch (const std::exception&) {  // c10::Error, and TorchScript's ErrorReport for crafted archives
    fail_file(path, "not a TorchScript module");
  }
  LoadedExport out;
  try {
    const auto j = nlohmann::json::parse(extra["contract.json"]);
    if (j.at("format") != "unet-torchscript/1") throw nlohmann::json::other_error::create(501, "format", nullptr);
    out.options = j.at("model").get<UNetOptions>();
    out.input_size = j.at("input").at("trained_size").get<int64_t>();
    out.contract = j.dump();
  } catch (const nlohmann::json::exception&) {
    fail_file(path, "not a unet export (no unet contract in the archive)");
  } catch (const Error& e) {
    fail_file(path, std::string("damaged unet contract: ") + e.what());
  }
  module->eval();
  out.forward = [module](const at::Tensor& x) { return module->forward({x}).toTensor(); };
  return out;
}

}  // namespace unet
