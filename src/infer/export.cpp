// Exports: the U-Net written out as TorchScript source over its own weights, or handed to the
// ONNX writer (unet_onnx) as plain weights; both carry the same input/output contract.
#include "unet/infer/export.h"
#include "runtime/json.h"

#include "infer/exports.h"
#include "model/json.h"
#include "unet/model/geometry.h"
#include "unet/onnx/writer.h"
#include "unet/runtime/files.h"
#include "unet/runtime/text.h"
#include "unet/runtime/version.h"

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
std::string forward_source(const UNetOptions& o, bool forward_probabilities) {
  const int p = o.padding() == Padding::kSame ? 1 : 0;
  std::ostringstream s;
  auto conv = [&](const std::string& module) {
    s << "        x = torch.relu(torch.conv2d(x, self." << attribute(module + ".weight") << ", self."
      << attribute(module + ".bias") << ", [1, 1], [" << p << ", " << p << "]))\n";
  };
  s << "    def " << (forward_probabilities ? "logits" : "forward") << "(self, x: Tensor) -> Tensor:\n";
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
  if (forward_probabilities) {
    s << "\n    def forward(self, x: Tensor) -> Tensor:\n";
    s << "        return torch.softmax(self.logits(x), 1)\n";
  } else {
    s << "\n    def probabilities(self, x: Tensor) -> Tensor:\n";
    s << "        return torch.softmax(self.forward(x), 1)\n";
  }
  return s.str();
}

/// "background (mask value 0); class 1 foreground (255)": what each class stands for, by name.
std::string class_meaning(const UNetOptions& o, const ClassNaming& naming) {
  std::string text;
  for (int64_t c = 0; c < o.classes(); ++c) {
    const std::string value = o.classes() == 2 ? std::to_string(c * 255) : std::to_string(c);
    text += (c ? "; class " + std::to_string(c) + " " : "") + naming.name(c) + (c ? " (" + value + ")" : " (mask value 0)");
  }
  if (o.scheme() == ClassScheme::kInteriorBoundary) text += "; interior and boundary from instance labels";
  if (o.scheme() == ClassScheme::kDistance)
    text += "; distance-to-edge bins from instance labels (class " + std::to_string(o.classes() - 1) + ": object centres)";
  if (o.scheme() == ClassScheme::kDirections)
    text += "; from instance labels: class 1 object centres, classes 2-9 the direction to the centre (east, then "
            "counter-clockwise in steps of 45 degrees, y pointing down)";
  return text;
}

/// How an image becomes the network's input, by the way the model was trained (the training
/// record's input_mode): a resize-trained model has only seen whole images scaled to its output
/// size, so a native-size input silently gives a map of another scale and size.
std::string preprocessing(const UNetOptions& o, int64_t input_size, const nlohmann::json& training) {
  const Geometry g = geometry_of(o, input_size);
  const int64_t out = g.output, pad = g.margin();
  const std::string n = std::to_string(out), s = std::to_string(input_size), p = std::to_string(pad);
  const bool tiles = training.is_object() && training.value("input_mode", std::string()) == "tile";
  if (!tiles)
    return "resize (as trained): scale the whole image to " + n + "x" + n + " (bilinear), normalise, pad " + p +
           " pixels of 0 on each side (" + s + "x" + s + "); the " + n + "x" + n +
           " output, scaled back to the image's size, is its prediction (unet predict does this)";
  return "tiles at native resolution (as trained): normalise, mirror the image's borders by " + p +
         " pixels, and cut inputs of a legal size (e.g. " + s + "x" + s + "); each input's output covers its central " +
         "part, " + p + " pixels in from each side (unet predict tiles and blends)";
}

}  // namespace

Normalisation recorded_normalisation(const std::string& training_record) {
  const auto record = nlohmann::json::parse(training_record, nullptr, /*allow_exceptions=*/false);
  if (!record.is_object() || !record.contains("normalisation")) return {};
  try {
    return record["normalisation"].get<Normalisation>();
  } catch (const nlohmann::json::exception&) {
    throw Error("the training record's normalisation is damaged");
  }
}

std::string normalisation_text(const Normalisation& n) {
  const std::string eps = number_text(Normalisation::kEpsilon), low = number_text(n.low), high = number_text(n.high);
  switch (n.mode) {
    case IntensityMode::kPercentile:
      return "per image and channel, its percentiles " + low + " and " + high + " (linear interpolation) to -1 and 1: (x - p" +
             low + ") / (p" + high + " - p" + low + " + " + eps + ") * 2 - 1, not clipped";
    case IntensityMode::kMeanStd:
      return "per image and channel, zero mean and unit variance: (x - mean) / (std + " + eps +
             "), std the population standard deviation";
    case IntensityMode::kRange:
      break;
  }
  return "intensity / max_value * 2 - 1 (8-bit: x / 127.5 - 1), in [-1, 1]";
}

namespace {

nlohmann::json contract_json(const UNetOptions& o, int64_t input_size, ExportFormat format,
                             const std::string& training_record, const ClassNaming& given_naming, bool int8 = false) {
  const ClassNaming naming = recorded_naming(given_naming, o.classes(), o.scheme());
  const int64_t minimum = minimum_input_size(o);
  const int64_t step = int64_t{1} << o.depth();
  const int64_t shrink = minimum - output_size(o, minimum);
  const bool onnx = format == ExportFormat::kOnnx || format == ExportFormat::kOnnxProbabilities;
  nlohmann::json training = nlohmann::json::object();
  try {
    training = nlohmann::json::parse(training_record);
  } catch (const nlohmann::json::exception&) {
    training = training_record;  // kept as text if it is not JSON
  }
  const Normalisation normalisation = recorded_normalisation(training_record);
  nlohmann::json j = {
      {"format", onnx ? "unet-onnx/1"
                 : format == ExportFormat::kTorchScript ? "unet-torchscript/1"
                                                        : "unet-torchscript-probabilities/1"},
      {"unet_version", kVersion},
      {"model", o},
      {"input", {{"shape", "[N, " + std::to_string(o.in_channels()) + (onnx ? ", H, W] float32" : ", S, S] float32")},
                 {"channels", o.in_channels()},
                 {"trained_size", input_size},
                 {"minimum_size", minimum},
                 {"size_step", step},
                 {"legal_sizes", (onnx ? "H and W each: " : "") +
                                     (o.padding() == Padding::kSame
                                          ? "multiples of " + std::to_string(step)
                                          : std::to_string(minimum) + " + k * " + std::to_string(step))},
                 {"normalisation", normalisation_text(normalisation)},
                 {"intensity", normalisation}}},
      {"output", {{"shape", "[N, " + std::to_string(o.classes()) + (onnx ? ", H', W'] " : ", S', S'] ") + "logits"},
                  {"size", shrink == 0 ? "the input's (same padding)"
                                       : "each side " + std::to_string(shrink) + " pixels shorter than the input's (valid "
                                             "convolutions use " + std::to_string(shrink / 2) +
                                             " pixels of context at each border)"},
                  {"trained_output_size", output_size(o, input_size)},
                  {"classes", o.classes()},
                  {"class_names", naming.names},
                  {"class_0", class_meaning(o, naming)},
                  {"methods", format == ExportFormat::kOnnx
                                  ? "two outputs: 'logits' (raw class scores) and 'probabilities' (their softmax over the "
                                    "class axis: per pixel, one value per class, summing to 1)"
                              : format == ExportFormat::kOnnxProbabilities
                                  ? "one output: probabilities (softmax over the class axis: per pixel, one value per class, "
                                    "summing to 1)"
                              : format == ExportFormat::kTorchScript
                                  ? "forward(x) -> logits (raw class scores), probabilities(x) -> their softmax over the class axis"
                                  : "forward(x) -> probabilities (softmax over the class axis), logits(x) -> raw class scores"}}},
      {"preprocessing", preprocessing(o, input_size, training)},
      {"training", training}};
  if (naming.has_headline()) j["output"]["headline_class"] = naming.name(naming.headline);
  if (training.is_object() && training.contains("object_diameter") && training["object_diameter"].is_number() &&
      training["object_diameter"].get<double>() > 0) {
    const double d = training["object_diameter"].get<double>();
    j["input"]["object_diameter"] = d;
    j["input"]["object_scale"] = "trained on images rescaled so that their median object is " + json_text(nlohmann::json(d)) +
                                 " pixels across: resize an image by this diameter over its objects' (bilinear), and "
                                 "the outputs back to the image's size";
  }
  if (int8)
    j["precision"] = "int8 (QDQ: the image quantized to u8, int8 weights per output channel, u8 activations, int32 "
                     "biases, float32 outputs; the scales of unet quantize)";
  return j;
}

}  // namespace

std::string export_contract(const UNetOptions& o, int64_t input_size, ExportFormat format,
                            const std::string& training_record, int indent, const ClassNaming& naming, bool int8) {
  return json_text(contract_json(o, input_size, format, training_record, naming, int8), indent);
}

namespace {

/// The TorchScript module of `model` and its contract.
std::pair<torch::jit::Module, std::string> torchscript_module(UNet& model, int64_t input_size,
                                                              const std::string& training_record, ExportFormat format,
                                                              const ClassNaming& naming) {
  const UNetOptions& o = model->options();
  if (format != ExportFormat::kTorchScript && format != ExportFormat::kTorchScriptProbabilities) {
    throw Error("export_torchscript writes TorchScript formats only");
  }
  output_size(o, input_size);  // a legal size
  torch::jit::Module module("__torch__.unet.UNetExport");
  for (const auto& item : model->named_parameters()) {
    module.register_parameter(attribute(item.key()), item.value().detach().contiguous().cpu(), /*is_buffer=*/false);
  }
  const std::string contract = export_contract(o, input_size, format, training_record, -1, naming);
  module.register_attribute("contract", c10::StringType::get(), contract);
  try {
    module.define(forward_source(o, format == ExportFormat::kTorchScriptProbabilities));
  } catch (const c10::Error& e) {
    throw Error("export failed: " + std::string(e.what_without_backtrace()));
  }
  module.eval();
  return {std::move(module), contract};
}

}  // namespace

void export_torchscript(UNet& model, int64_t input_size, const std::string& path, const std::string& training_record,
                        ExportFormat format, const ClassNaming& naming) {
  // Named references, not a structured binding: lambdas may not capture those before C++20's fix in clang 16.
  auto built = torchscript_module(model, input_size, training_record, format, naming);
  torch::jit::Module& module = built.first;
  const std::string& contract = built.second;
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

std::string torchscript_bytes(UNet& model, int64_t input_size, const std::string& training_record, ExportFormat format,
                              const ClassNaming& naming) {
  auto [module, contract] = torchscript_module(model, input_size, training_record, format, naming);
  std::string bytes;
  torch::jit::ExportModule(
      module,
      [&bytes](const void* data, size_t size) {
        bytes.append(static_cast<const char*>(data), size);
        return size;
      },
      {{"contract.json", contract}});
  return bytes;
}

namespace {

/// The int8 engine's quantization of `model` for the ONNX writer: the same weights
/// (`quantize_per_channel`, per output channel: axis 1 of the transposed convolutions, which go in
/// their sub-pixel form) and scales.
onnx_export::Quantization quantization(UNet& model, const Int8Scales& scales) {
  const std::vector<ConvLayer> layers = conv_layers(model->options());
  if (scales.outputs.size() != layers.size())
    throw Error("the int8 scales are for a network of " + std::to_string(scales.outputs.size()) +
                " convolutions, this model has " + std::to_string(layers.size()));
  onnx_export::Quantization q{scales.input_scale, scales.input_zero_point, {}};
  const auto params = model->named_parameters();
  for (size_t k = 0; k < layers.size(); ++k) {
    const at::Tensor w = params[layers[k].name + ".weight"].detach().to(at::kCPU, at::kFloat).contiguous();
    const bool up = layers[k].kind == ConvLayer::kUpSample;
    // The full [-127, 127] range: the file runs on other machines, whose runtimes guard their own kernels.
    const QuantizedWeight qw = quantize_per_channel(w, up ? 1 : 0, 127);
    // The up-sampling in the engine's sub-pixel form: its four phases share their channel's scale.
    const at::Tensor values = (up ? subpixel_weight(qw.values) : qw.values).contiguous();
    const at::Tensor s = (up ? qw.scales.repeat_interleave(4) : qw.scales).to(at::kFloat).contiguous();
    onnx_export::QuantizedConv c{layers[k].name, {}, {}, scales.outputs[k]};
    c.values.assign(values.data_ptr<int8_t>(), values.data_ptr<int8_t>() + values.numel());
    c.scales.assign(s.data_ptr<float>(), s.data_ptr<float>() + s.numel());
    q.convs.push_back(std::move(c));
  }
  return q;
}

}  // namespace

std::string onnx_bytes(UNet& model, int64_t input_size, ExportFormat format, const std::string& training_record,
                       const ClassNaming& naming, const Int8Scales* int8) {
  const UNetOptions& o = model->options();
  if (format != ExportFormat::kOnnx && format != ExportFormat::kOnnxProbabilities) {
    throw Error("export_onnx writes ONNX formats only");
  }
  if (!onnx_export::available()) {
    throw Error("this unet was built without ONNX support: install libonnx-dev and libprotobuf-dev and rebuild");
  }
  onnx_export::Network net;
  net.in_channels = o.in_channels();
  net.classes = o.classes();
  net.depth = o.depth();
  net.same_padding = o.padding() == Padding::kSame;
  net.up_kernel = o.up_kernel();
  for (const auto& item : model->named_parameters()) {
    const at::Tensor w = item.value().detach().to(at::kCPU, at::kFloat).contiguous();
    onnx_export::Weight weight{item.key(), w.sizes().vec(), {}};
    weight.values.assign(w.data_ptr<float>(), w.data_ptr<float>() + w.numel());
    net.weights.push_back(std::move(weight));
  }
  if (int8) net.int8 = quantization(model, *int8);
  const nlohmann::json j = contract_json(o, input_size, format, training_record, naming, int8 != nullptr);
  onnx_export::FileInfo info;
  info.producer_version = kVersion;
  info.doc = "U-Net (" + o.describe() + (int8 ? ", int8 QDQ" : "") + ") exported by unet " + std::string(kVersion) + ". Input: " +
             j["input"]["shape"].get<std::string>() + ", normalised as " + j["input"]["normalisation"].get<std::string>() +
             "; legal sizes: " + j["input"]["legal_sizes"].get<std::string>() + ".";
  info.outputs = format == ExportFormat::kOnnx ? onnx_export::Outputs::kLogitsAndProbabilities
                                               : onnx_export::Outputs::kProbabilities;
  info.metadata = {{"unet.contract", json_text(j)},
                   {"unet.version", kVersion},
                   {"legal_sizes", j["input"]["legal_sizes"].get<std::string>()},
                   {"minimum_size", std::to_string(j["input"]["minimum_size"].get<int64_t>())},
                   {"size_step", std::to_string(j["input"]["size_step"].get<int64_t>())},
                   {"output_size", j["output"]["size"].get<std::string>()},
                   {"normalisation", j["input"]["normalisation"].get<std::string>()},
                   {"channels", std::to_string(o.in_channels())},
                   {"classes", std::to_string(o.classes())},
                   {"class_0", j["output"]["class_0"].get<std::string>()},
                   {"class_names", json_text(j["output"]["class_names"])}};
  if (int8) info.metadata.emplace_back("precision", "int8");
  try {
    return onnx_export::build_model(net, info);
  } catch (const std::runtime_error& e) {
    throw Error(std::string("ONNX export failed: ") + e.what());
  }
}

void export_onnx(UNet& model, int64_t input_size, const std::string& path, ExportFormat format,
                 const std::string& training_record, const ClassNaming& naming, const Int8Scales* int8) {
  write_text_atomically(path, onnx_bytes(model, input_size, format, training_record, naming, int8));
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
  bool probabilities = false;
  try {
    const auto j = nlohmann::json::parse(extra["contract.json"]);
    probabilities = j.at("format") == "unet-torchscript-probabilities/1";
    if (j.at("format") != "unet-torchscript/1" && !probabilities) {
      throw nlohmann::json::other_error::create(501, "format", nullptr);
    }
    out.options = j.at("model").get<UNetOptions>();
    out.input_size = j.at("input").at("trained_size").get<int64_t>();
    if (j.at("input").contains("intensity")) out.normalisation = j["input"]["intensity"].get<Normalisation>();
    if (j.at("input").contains("object_diameter")) out.object_diameter = j["input"]["object_diameter"].get<double>();
    if (j.contains("training") && j["training"].is_object()) out.objects = read_object_record(j["training"]);
    out.contract = json_text(j);
  } catch (const nlohmann::json::exception&) {
    fail_file(path, "not a unet export (no unet contract in the archive)");
  } catch (const Error& e) {
    fail_file(path, std::string("damaged unet contract: ") + e.what());
  }
  module->eval();
  if (probabilities) {  // a bioimage.io package's module: forward gives probabilities, logits(x) the logits
    out.forward = [module](const at::Tensor& x) { return module->run_method("logits", x).toTensor(); };
  } else {
    out.forward = [module](const at::Tensor& x) { return module->forward({x}).toTensor(); };
  }
  return out;
}

}  // namespace unet
