// bioimage.io model packages. The package is what the consumers (deepImageJ, ilastik, napari,
// QuPath, bioimageio.core) need to run the model without unet: the network in two weight formats
// that give the probabilities, the preprocessing that reproduces unet's normalisation, the axes
// with the legal size rule (a minimum and a step) and the valid convolutions' shrinkage as an
// output size offset, and test tensors that unet itself computed, which `bioimageio test` checks
// each weight format against.
#include "unet/infer/bioimageio.h"
#include "unet/infer/spdx_licenses.h"

#include "infer/exports.h"
#include "runtime/json.h"
#include "unet/data/preprocess.h"
#include "unet/data/source.h"
#include "unet/data/image_io.h"
#include "unet/data/synthetic.h"
#include "unet/infer/int8_engine.h"
#include "unet/infer/output.h"
#include "unet/model/geometry.h"
#include "unet/onnx/writer.h"
#include "unet/runtime/error.h"
#include "unet/runtime/files.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <nlohmann/json.hpp>
#include <torch/headeronly/version.h>

#ifdef UNET_HAS_LIBZIP
#include <zip.h>
#endif

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <cstring>
#include <ctime>
#include <sstream>
#include <utility>

namespace unet {
namespace {

using Files = std::vector<std::pair<std::string, std::string>>;  // name in the zip, bytes

/// A float32 tensor as a NumPy .npy file (format 1.0, little-endian, C order).
std::string npy(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kFloat).contiguous();
  std::string shape = "(";
  for (int64_t d : c.sizes()) shape += std::to_string(d) + ", ";
  if (c.dim() > 1) shape.resize(shape.size() - 1);  // "(1, 2)" but "(3,)"
  shape += ")";
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }";
  const size_t unpadded = 10 + header.size() + 1;  // magic, version, length, header, newline
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  out += header;
  out.append(reinterpret_cast<const char*>(c.data_ptr<float>()), c.numel() * sizeof(float));
  return out;
}

/// The largest legal input side not above `side`, or -1.
int64_t largest_legal(const UNetOptions& o, int64_t side) {
  return output_size_or_invalid(o, side) > 0 ? side : nearest_legal_inputs(o, side).first;
}

/// How many pixels per axis the output is smaller than the input (0 with same padding).
int64_t shrink_of(const UNetOptions& o) { return minimum_input_size(o) - output_size(o, minimum_input_size(o)); }

/// The sample image: [C, H, W] intensities as stored (0..255, 0..65535 or [0, 1]) and the maximum
/// of its encoding.
std::pair<at::Tensor, double> read_sample(const std::string& path, const UNetOptions& o) {
  RawImage raw;
  if (path.empty()) {
    SyntheticOptions s;
    s.size = std::max<int64_t>(256, minimum_input_size(o));
    raw = synthetic_slice(s, 0).first;
  } else {
    raw = read_image_file(path).at(0);
  }
  const std::string where = path.empty() ? "the synthetic sample" : path;
  if (raw.palette.defined()) fail_file(where, "is a palette image, which a package cannot normalise: save it as gray or RGB");
  if (raw.channels() != o.in_channels()) {
    fail_file(where, "has " + std::to_string(raw.channels()) + " channel(s); the model takes " +
                         std::to_string(o.in_channels()));
  }
  // A package normalises by a gain alone: the stored values must be what the model's reader sees.
  if (is_signed_format(raw.format) || raw.min_is_white)
    fail_file(where, std::string(raw.min_is_white ? "is a MinIsWhite (inverted) TIFF" : "has signed samples") +
                         ", which a package cannot normalise: save it as unsigned, MinIsBlack");
  const double max_value = raw.format == SampleFormat::kUInt8 ? 255.0 : raw.format == SampleFormat::kUInt16 ? 65535.0 : 1.0;
  at::Tensor x = raw.pixels.to(at::kFloat);
  if (raw.format == SampleFormat::kFloat32 && (x.min().item<float>() < 0.f || x.max().item<float>() > 1.f)) {
    fail_file(where, "is a float image outside [0, 1]: save it with 8 or 16 bits, the encodings a package can normalise");
  }
  return {x, max_value};
}

/// The package's name: `name` (checked by `validate()`), or one made from the architecture.
std::string package_name(const UNetOptions& o, const std::string& name) {
  if (!name.empty()) return name;
  return "U-Net 2D segmentation (depth " + std::to_string(o.depth()) + " filters " + std::to_string(o.filters()) + " " +
         (o.padding() == Padding::kSame ? "same" : "valid") + " padding " + std::to_string(o.classes()) + " classes)";
}

nlohmann::json space_axes_in(const UNetOptions& o) {
  const int64_t step = int64_t{1} << o.depth(), minimum = minimum_input_size(o);
  nlohmann::json axes = nlohmann::json::array();
  for (const char* id : {"y", "x"}) axes.push_back({{"type", "space"}, {"id", id}, {"size", {{"min", minimum}, {"step", step}}}});
  return axes;
}

/// "0 background, 1 foreground".
std::string class_list(const std::vector<std::string>& classes) {
  std::string text;
  for (size_t c = 0; c < classes.size(); ++c) text += (c ? ", " : "") + std::to_string(c) + " " + classes[c];
  return text;
}

/// bioimage.io's operators for the model's normalisation, on the intensities as stored: per
/// sample and channel (axes y and x) for the per-image ones. unet's epsilon is in units of the
/// [-1, 1] scale, the operators' in stored units: max_value / 2 of them.
nlohmann::json preprocessing_ops(const Normalisation& n, double max_value) {
  const nlohmann::json to_float = {{"id", "ensure_dtype"}, {"kwargs", {{"dtype", "float32"}}}};
  const nlohmann::json per_image = {"y", "x"};
  const double eps = Normalisation::kEpsilon * max_value / 2.0;
  switch (n.mode) {
    case IntensityMode::kPercentile:
      return {to_float,
              {{"id", "scale_range"},
               {"kwargs", {{"axes", per_image}, {"min_percentile", n.low}, {"max_percentile", n.high}, {"eps", eps}}}},
              {{"id", "scale_linear"}, {"kwargs", {{"gain", 2.0}, {"offset", -1.0}}}},
              to_float};
    case IntensityMode::kMeanStd:
      return {to_float, {{"id", "zero_mean_unit_variance"}, {"kwargs", {{"axes", per_image}, {"eps", eps}}}}, to_float};
    case IntensityMode::kRange:
      break;
  }
  return {to_float, {{"id", "scale_linear"}, {"kwargs", {{"gain", 2.0 / max_value}, {"offset", -1.0}}}}, to_float};
}

nlohmann::json rdf(const UNetOptions& o, const CheckpointInfo& info, const BioimageioOptions& opt,
                   const std::vector<std::string>& classes, double max_value, const std::string& description) {
  const int64_t shrink = shrink_of(o);
  nlohmann::json authors = nlohmann::json::array();
  for (const std::string& a : opt.authors.empty() ? std::vector<std::string>{"unet user"} : opt.authors) authors.push_back({{"name", a}});
  std::vector<std::string> channel_names;
  for (int64_t c = 0; c < o.in_channels(); ++c)
    channel_names.push_back(o.in_channels() == 1 ? "raw" : o.in_channels() == 3 ? std::string(1, "RGB"[c]) : "channel" + std::to_string(c));
  nlohmann::json in_axes = {{{"type", "batch"}}, {{"type", "channel"}, {"channel_names", channel_names}}};
  for (auto& a : space_axes_in(o)) in_axes.push_back(a);
  nlohmann::json out_axes = {{{"type", "batch"}}, {{"type", "channel"}, {"channel_names", classes}}};
  for (const char* id : {"y", "x"}) {
    out_axes.push_back({{"type", "space"}, {"id", id}, {"size", {{"tensor_id", "image"}, {"axis_id", id}, {"offset", -shrink}}}});
  }
  char stamp[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", std::gmtime(&now));
  const std::string torch_version = std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
                                    std::to_string(TORCH_VERSION_PATCH);
  return {
      {"type", "model"},
      {"format_version", "0.5.4"},
      {"name", package_name(o, opt.name)},
      {"description", description},
      {"authors", authors},
      {"cite", {{{"text", "Ronneberger, Fischer and Brox: U-Net: Convolutional Networks for Biomedical Image Segmentation. MICCAI 2015"},
                 {"doi", "10.1007/978-3-319-24574-4_28"}},
                {{"text", "Arganda-Carreras et al.: Crowdsourcing the creation of image segmentation algorithms for connectomics (ISBI 2012). Front. Neuroanat. 2015"},
                 {"doi", "10.3389/fnana.2015.00142"}},
                {{"text", "NVIDIA Deep Learning Examples: UNet Medical for TensorFlow 2"},
                 {"url", "https://github.com/NVIDIA/DeepLearningExamples/tree/master/TensorFlow2/Segmentation/UNet_Medical"}}}},
      {"license", opt.license},
      {"documentation", "README.md"},
      {"covers", {"cover.png"}},
      {"tags", {"unet", "segmentation", "2d", "semantic-segmentation", "onnx", "torchscript"}},
      {"timestamp", stamp},
      {"inputs",
       {{{"id", "image"},
         {"description", "image intensities as stored (8-bit 0-255, 16-bit 0-65535 or float 0-1)"},
         {"axes", in_axes},
         {"test_tensor", {{"source", "test_input.npy"}}},
         {"sample_tensor", {{"source", "sample_input.tif"}}},
         {"data", {{"type", "float32"}}},
         {"preprocessing", preprocessing_ops(info.normalisation, max_value)}}}},
      {"outputs",
       {{{"id", "probabilities"},
         {"description", "softmax probability of each class (" + class_list(classes) + ")"},
         {"axes", out_axes},
         {"test_tensor", {{"source", "test_output.npy"}}},
         {"sample_tensor", {{"source", "sample_output.tif"}}},
         {"data", {{"type", "float32"}, {"range", {0.0, 1.0}}}}}}},
      {"weights",
       {{"onnx", {{"source", "weights.onnx"}, {"opset_version", onnx_export::kOpset}}},
        {"torchscript", {{"source", "weights.torchscript.pt"}, {"pytorch_version", torch_version}, {"parent", "onnx"}}}}},
      {"config", {{"unet", {{"checkpoint_step", info.step}, {"trained_input_size", info.input_size}}}}},
  };
}

/// The rdf of an int8 package: its one weight format, ONNX (the QDQ file), and the tolerance of
/// its test output for the runtimes' int8 rounding: one output step of the logits (`step`) as an
/// absolute tolerance of the probabilities, within the spec's limits (at most 1% of the largest
/// test value, `largest`; then 1% relative as well), and 0.1% of the elements beyond it (the spec
/// allows 0.5%).
void make_int8(nlohmann::json& rdf, double step, double largest) {
  const double cap = 0.01 * largest * 0.999;  // the spec compares in float32: stay clear of the bound
  const double absolute = std::min(std::max(1e-3, step), cap);
  rdf["weights"] = {{"onnx", {{"source", "weights.onnx"}, {"opset_version", onnx_export::kOpset}}}};
  rdf["tags"] = {"unet", "segmentation", "2d", "semantic-segmentation", "onnx", "int8"};
  rdf["config"]["bioimageio"] = {{"reproducibility_tolerance",
                                  {{{"absolute_tolerance", absolute}, {"relative_tolerance", step > absolute ? 0.01 : 0.0},
                                    {"mismatched_elements_per_million", 1000}, {"weights_formats", {"onnx"}}}}}};
  rdf["config"]["unet"]["precision"] = "int8";
}

/// What one u8 step of every input of the head moves a logit by (the head's input scale times its
/// largest absolute weight sum): the unit in which int8 runtimes differ from unet's engine.
double int8_output_step(const UNet& model, const Int8Scales& scales) {
  const at::Tensor w = model->named_parameters()["head.weight"].detach().to(at::kCPU, at::kFloat);
  return scales.outputs[scales.outputs.size() - 2] * w.abs().sum({1, 2, 3}).max().item<double>();
}

std::string readme(const UNetOptions& o, const std::string& description, const std::vector<std::string>& classes,
                   double max_value, const Normalisation& normalisation, const BioimageioPackage& p, bool int8) {
  std::ostringstream s;
  s << "# " << "U-Net for 2D segmentation\n\n" << description << "\n\n";
  s << "## Input\n\nOne image, axes batch, channel (" << o.in_channels() << "), y, x. Each side must be "
    << minimum_input_size(o) << " + k * " << (int64_t{1} << o.depth()) << " pixels"
    << (o.padding() == Padding::kSame ? " (any multiple of the step; same padding)" : "") << ".\n";
  if (normalisation.mode == IntensityMode::kRange)
    s << "Preprocessing: intensity / " << max_value << " * 2 - 1, the normalisation unet trained with.\n\n";
  else
    s << "Preprocessing: " << normalisation_text(normalisation) << ", the normalisation unet trained with.\n\n";
  s << "## Output\n\nThe softmax probability of each class (";
  for (size_t i = 0; i < classes.size(); ++i) s << (i ? ", " : "") << i << ": " << classes[i];
  s << "), ";
  const int64_t shrink = shrink_of(o);
  if (shrink > 0) {
    s << "smaller than the input by " << shrink << " pixels per axis: the valid convolutions see " << shrink / 2
      << " pixels of context on each border, so tiles of the input overlap by " << shrink << " pixels.\n\n";
  } else {
    s << "of the input's size.\n\n";
  }
  s << "## Validation\n\nThe test output is unet's own prediction for the test input (" << p.test_height << " x "
    << p.test_width << " pixels of " << p.sample << "); `bioimageio test` reproduces it with each weight format"
    << (int8 ? " (int8: within the tolerance in rdf.yaml's config, up to one output step of the logits as far as the "
               "specification allows; the runtimes' int8 arithmetic differs from unet's in rounding)" : "") << ".\n\n";
  s << "## Use\n\n- Fiji: deepImageJ > Install model > from a zip file; then run it on an image.\n"
       "- napari: the bioimage.io plugin (napari-bioimageio), or `bioimageio predict` from bioimageio.core.\n"
       "- Python: `bioimageio test <package.zip>`; `bioimageio predict` writes predictions.\n\n"
       "Written by unet, a U-Net trainer in C++ on LibTorch. Weights: "
    << (int8 ? "ONNX (opset 17), int8 in QDQ form: ONNX Runtime and OpenVINO run it with their int8 kernels on CPUs "
               "with VNNI or AMX.\n"
             : "ONNX (opset 17) and TorchScript.\n");
  return s.str();
}

/// The bytes that `write(path)` writes (the image writers write files): through a temporary file.
std::string bytes_of(const std::string& suffix, const std::function<void(const std::string&)>& write) {
  static int counter = 0;
  const std::filesystem::path path = std::filesystem::temp_directory_path() /
                                     ("unet-package-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + suffix);
  write(path.string());
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  in.close();
  std::filesystem::remove(path);
  return bytes;
}

/// `rgb` [3, h, w] uint8 scaled to fit a `side` x `side` square (bilinear), centred on black.
at::Tensor fit_square(const at::Tensor& rgb, int64_t side) {
  const double scale = static_cast<double>(side) / static_cast<double>(std::max(rgb.size(1), rgb.size(2)));
  const int64_t h = std::max<int64_t>(1, std::llround(rgb.size(1) * scale));
  const int64_t w = std::max<int64_t>(1, std::llround(rgb.size(2) * scale));
  const at::Tensor scaled = at::upsample_bilinear2d(rgb.unsqueeze(0).to(at::kFloat), {h, w}, /*align_corners=*/false)[0];
  at::Tensor square = at::zeros({3, side, side}, at::kFloat);
  square.slice(1, (side - h) / 2, (side - h) / 2 + h).slice(2, (side - w) / 2, (side - w) / 2 + w).copy_(scaled);
  return square;
}

/// Cover (bioimage.io recommends 2:1): the input, cropped to the output's region, beside its
/// prediction overlay (`overlay_image`: the objects tinted), each scaled into a square of side
/// 256 to 512 pixels.
std::string cover_png(const at::Tensor& input, const at::Tensor& probabilities, const ClassNaming& naming) {
  const int64_t h = probabilities.size(2), w = probabilities.size(3);
  const int64_t top = (input.size(2) - h) / 2, left = (input.size(3) - w) / 2;
  Sample sample;
  sample.image = input[0].slice(1, top, top + h).slice(2, left, left + w).contiguous();  // [-1, 1]
  const at::Tensor gray = sample.image.mean(0, true).add(1).mul(127.5).round().clamp(0, 255).to(at::kByte).repeat({3, 1, 1});
  const at::Tensor overlay = overlay_image(sample, probabilities[0], naming);
  const int64_t side = std::clamp<int64_t>(std::max(h, w), 256, 512);
  const at::Tensor both = at::cat({fit_square(gray, side), fit_square(overlay, side)}, 2);
  const at::Tensor cover = both.round().clamp(0, 255).to(at::kByte).contiguous();
  return bytes_of(".png", [&](const std::string& path) { write_png(path, cover); });
}

// Checks of the options' texts (`BioimageioOptions::validate`).

/// `text` for a one-line message: control characters as \xNN.
std::string shown(const std::string& text) {
  std::string out;
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", u);
      out += hex;
    } else {
      out += c;
    }
  }
  return out;
}

void validate_license(const std::string& license) {
  if (license.empty()) {
    throw OptionError("license", " is empty: a package needs an SPDX license identifier such as CC-BY-4.0 or MIT "
                                 "(https://spdx.org/licenses/)");
  }
  if (is_spdx_license(license)) return;
  std::string nearest;
  for (const std::string& id : nearest_spdx_licenses(license, 3)) nearest += (nearest.empty() ? "" : ", ") + id;
  throw OptionError("license", " '" + shown(license) + "' is not an SPDX license identifier (spelt as on "
                               "https://spdx.org/licenses/, case included); nearest: " + nearest);
}

void validate_name(const std::string& name) {
  if (name.empty()) return;  // one made from the architecture
  const bool allowed = std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || (c != '\0' && std::strchr("_+- ()", c) != nullptr);
  });
  if (!allowed || name.size() < 5 || name.size() > 128) {
    throw OptionError("name", " '" + shown(name) + "': a bioimage.io name has 5 to 128 letters, digits, spaces and _+-() only");
  }
}

void validate_description(const std::string& description) {
  require_printable("description", "the description", description);
  const auto characters = std::count_if(description.begin(), description.end(),
                                        [](char c) { return (static_cast<unsigned char>(c) & 0xc0) != 0x80; });
  if (characters > 1024) {
    throw OptionError("description", " has " + std::to_string(characters) + " characters; bioimage.io allows 1024");
  }
}

/// Empty or spaces only.
bool blank(const std::string& text) { return text.find_first_not_of(' ') == std::string::npos; }

void validate_authors(const std::vector<std::string>& authors) {
  for (size_t i = 0; i < authors.size(); ++i) {
    const std::string& a = authors[i];
    if (blank(a)) throw OptionError("authors", ": author " + std::to_string(i + 1) + "'s name is empty");
    require_printable("authors", "author " + std::to_string(i + 1), a);
    if (a.find_first_of("/\\") != std::string::npos) {
      throw OptionError("authors", ": '" + a + "' holds a slash, which a bioimage.io author's name may not");
    }
  }
}

}  // namespace

void BioimageioOptions::validate() const {
  validate_license(license);
  validate_name(name);
  validate_description(description);
  validate_authors(authors);
  validate_class_names(class_names);  // unet/data/source.h: the training data's rule
}

#ifdef UNET_HAS_LIBZIP
bool bioimageio_available() { return onnx_export::available(); }
#else
bool bioimageio_available() { return false; }
#endif

BioimageioPackage export_bioimageio(UNet& model, const CheckpointInfo& info, const std::string& path,
                                    const BioimageioOptions& opt, const Int8Scales* int8) {
  if (!bioimageio_available()) {
    throw Error("this unet was built without bioimage.io packages: install libzip-dev, libonnx-dev and libprotobuf-dev and rebuild");
  }
  if (int8 && int8_weight_levels() != 127) {
    throw Error("int8 bioimage.io packages are written on CPUs with VNNI or AMX (this one: " +
                (cpu_int8_units().empty() ? std::string("none") : cpu_int8_units()) +
                "): its int8 engine keeps 7-bit weights, the package's file 8-bit ones, so its test output would not be the file's");
  }
  opt.validate();
  const UNetOptions& o = model->options();
  // The checkpoint's names (the defaults for one without), renamed by the options' when given.
  const ClassNaming naming = rename_classes(recorded_naming(info.class_naming, o.classes(), o.scheme()), opt.class_names);
  const std::vector<std::string>& classes = naming.names;
  auto [pixels, max_value] = read_sample(opt.sample, o);
  BioimageioPackage p;
  p.sample = opt.sample.empty() ? "a synthetic EM-like slice" : opt.sample;
  // The largest legal centre crop, at most the reference's 572 per side: consumers run the test
  // tensors in one piece, so a large sample must not make them large.
  const int64_t cap = std::max<int64_t>(kReferenceInputSize, minimum_input_size(o));
  p.test_height = largest_legal(o, std::min(pixels.size(1), cap));
  p.test_width = largest_legal(o, std::min(pixels.size(2), cap));
  if (p.test_height < 0 || p.test_width < 0) {
    fail_file(opt.sample, "is " + std::to_string(pixels.size(1)) + " x " + std::to_string(pixels.size(2)) +
                              " pixels; the model needs at least " + std::to_string(minimum_input_size(o)) + " per side");
  }
  const int64_t top = (pixels.size(1) - p.test_height) / 2, left = (pixels.size(2) - p.test_width) / 2;
  const at::Tensor raw = pixels.slice(1, top, top + p.test_height).slice(2, left, left + p.test_width).unsqueeze(0).contiguous();
  const at::Tensor x = raw.div(max_value).mul(2).sub(1);
  // What the package's preprocessing gives on the test input (its statistics are the crop's).
  const at::Tensor input = network_intensities(x[0], info.normalisation).unsqueeze(0).contiguous();
  at::Tensor probabilities;
  {
    c10::InferenceMode guard;
    model->eval();
    probabilities = int8 ? at::softmax(Int8Engine(model, *int8).forward(input), 1)
                         : at::softmax(model->forward(input.to(model->parameters()[0].device())), 1).cpu();
  }
  p.output_height = probabilities.size(2);
  p.output_width = probabilities.size(3);
  const std::string description = opt.description.empty()
      ? "U-Net (" + o.describe() + ") trained with unet for " + std::to_string(info.step) +
            " steps; it segments 2D images into " + std::to_string(o.classes()) + " classes (" + class_list(classes) +
            ") and gives each pixel's class probabilities."
      : opt.description;
  Files files;
  nlohmann::json description_file = rdf(o, info, opt, classes, max_value, description);
  if (int8) make_int8(description_file, int8_output_step(model, *int8), probabilities.max().item<double>());
  files.emplace_back("rdf.yaml", json_text(description_file, 2) + "\n");
  files.emplace_back("weights.onnx",
                     onnx_bytes(model, info.input_size, ExportFormat::kOnnxProbabilities, info.training_record, naming, int8));
  if (!int8)
    files.emplace_back("weights.torchscript.pt", torchscript_bytes(model, info.input_size, info.training_record,
                                                                   ExportFormat::kTorchScriptProbabilities, naming));
  files.emplace_back("test_input.npy", npy(raw));
  files.emplace_back("test_output.npy", npy(probabilities));
  files.emplace_back("README.md", readme(o, description, classes, max_value, info.normalisation, p, int8 != nullptr));
  files.emplace_back("cover.png", cover_png(x, probabilities, naming));
  // Sample tensors, images for people and viewers: the input as stored, the probabilities as float.
  const at::Tensor stored = max_value == 255.0 ? raw[0].to(at::kByte) : max_value == 65535.0 ? raw[0].to(at::kInt) : raw[0];
  files.emplace_back("sample_input.tif", bytes_of(".tif", [&](const std::string& f) { write_tiff(f, {stored}); }));
  files.emplace_back("sample_output.tif", bytes_of(".tif", [&](const std::string& f) { write_tiff(f, {probabilities[0]}); }));
  for (const auto& f : files) p.files.push_back(f.first);
#ifdef UNET_HAS_LIBZIP
  write_atomically(path, [&](const std::string& tmp) {
    int code = 0;
    zip_t* zip = zip_open(tmp.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &code);
    if (zip == nullptr) fail_file(path, "cannot create the zip file");
    for (const auto& [name, bytes] : files) {
      zip_source_t* source = zip_source_buffer(zip, bytes.data(), bytes.size(), 0);
      if (source == nullptr || zip_file_add(zip, name.c_str(), source, ZIP_FL_ENC_UTF_8) < 0) {
        if (source != nullptr) zip_source_free(source);
        const std::string reason = zip_strerror(zip);
        zip_discard(zip);
        fail_file(path, "cannot add " + name + " to the zip (" + reason + ")");
      }
    }
    if (zip_close(zip) != 0) {
      const std::string reason = zip_strerror(zip);
      zip_discard(zip);
      fail_file(path, "cannot write the zip (" + reason + ")");
    }
  });
#endif
  return p;
}

}  // namespace unet
