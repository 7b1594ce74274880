// `unet export`: write a trained checkpoint as a self-contained TorchScript module, an ONNX model
// (fp32, or with --precision int8 the QDQ form of the int8 model, with unet quantize's scales) or a
// bioimage.io model package (fp32, or int8 with that file as its one weight format).
#include "options.h"
#include "pretrained.h"
#include "resume.h"

#include "unet/eval/instances.h"
#include "unet/infer/bioimageio.h"
#include "unet/infer/export.h"
#include "unet/infer/quantize.h"
#include "unet/model/checkpoint.h"
#include "unet/runtime/precision.h"
#include "unet/runtime/text.h"

#include <cstdio>
#include <filesystem>
#include <memory>

namespace unet::cli {
namespace {

enum class Format { kTorchScript, kOnnx, kBioimageio, kCheckpoint };

struct ExportCommand {
  std::string model_dir = kDefaultModelDir;
  std::string output;
  /// Where the default output name goes: --model-dir, or ./NAME for a shipped model (--model).
  std::string output_dir;
  Format format = Format::kTorchScript;
  /// fp32, or int8: the ONNX QDQ file of the int8 engine (scales from `unet quantize`), alone or in a package.
  Precision precision = Precision::kFP32;
  BioimageioOptions package;
  /// What the two object values below hold for "the checkpoint's, as it is" (`auto`, the default).
  static constexpr double kKeepRecorded = -1.0;
  /// The object threshold to record (0: none, so evaluate's and predict's default applies;
  /// `kKeepRecorded`: the checkpoint's).
  double object_threshold = kKeepRecorded;
  /// The smallest mean object probability to record (0: none; `kKeepRecorded`: the checkpoint's).
  double min_object_probability = kKeepRecorded;
};

/// `info` with the object threshold and smallest mean object probability the command gives recorded
/// (the rest as it is), in the typed fields and in the training record that every format carries.
/// A value that would not apply to the model's objects is refused (`OptionError`).
void record_objects(CheckpointInfo& info, const ExportCommand& o) {
  check_object_values(info.model.classes(), info.model.scheme(), o.object_threshold > 0, o.min_object_probability > 0,
                      "object_threshold", "min_object_probability");
  if (o.object_threshold != ExportCommand::kKeepRecorded) info.objects.threshold = o.object_threshold;
  if (o.min_object_probability != ExportCommand::kKeepRecorded) info.objects.min_probability = o.min_object_probability;
  info.training_record = training_record_text(info);
}

/// The object defaults `info` records, for the people exporting it.
void print_object_record(const CheckpointInfo& info) {
  if (info.objects.threshold > 0 && objects_grow(info.model.scheme()))
    std::printf("object threshold: %s (evaluate's and predict's default)\n", number_text(info.objects.threshold).c_str());
  if (info.objects.min_probability > 0)
    std::printf("smallest mean object probability: %s (evaluate's and predict's default)\n",
                number_text(info.objects.min_probability).c_str());
}

const char* default_name(Format f, Precision p) {
  if (f == Format::kOnnx) return p == Precision::kInt8 ? "unet_int8.onnx" : "unet.onnx";
  if (f == Format::kBioimageio) return p == Precision::kInt8 ? "unet_int8.bioimageio.zip" : "unet.bioimageio.zip";
  if (f == Format::kCheckpoint) return "model-only/checkpoint.pt";
  return "unet.torchscript.pt";
}

/// The precisions an export writes: precision_names()' fp32 and int8.
const EnumNames<Precision>& export_precision_names() {
  static const EnumNames<Precision> names = [] {
    EnumNames<Precision> out;
    for (const auto& n : precision_names())
      if (n.value == Precision::kFP32 || n.value == Precision::kInt8) out.push_back(n);
    return out;
  }();
  return names;
}

void print_usage_line(Format format, const std::string& out, const CheckpointInfo& info) {
  const long long c = info.model.in_channels(), s = info.input_size, n = output_size(info.model, info.input_size);
  if (format == Format::kOnnx) {
    std::printf("try it: python3 -c \"import numpy as np, onnxruntime as ort; s = ort.InferenceSession('%s'); "
                "p = s.run(['probabilities'], {'image': np.zeros((1, %lld, %lld, %lld), np.float32)})[0]; "
                "print(p.shape)\"   # (1, %lld, %lld, %lld)\n",
                out.c_str(), c, s, s, static_cast<long long>(info.model.classes()), n, n);
  } else if (format == Format::kTorchScript) {
    std::printf("try it: python3 -c \"import torch; m = torch.jit.load('%s'); "
                "print(m.probabilities(torch.zeros(1, %lld, %lld, %lld)).shape)\"   # (1, %lld, %lld, %lld)\n",
                out.c_str(), c, s, s, static_cast<long long>(info.model.classes()), n, n);
  } else {
    // pydantic 2.12+ breaks bioimageio.spec 0.5.12 (every package fails): the versions scripts/run.sh tests with.
    std::printf("check: bioimageio test %s   (pip install bioimageio.core==0.11.0 bioimageio.spec==0.5.12.0 "
                "pydantic==2.11.10 onnxruntime==1.32.0 torch)\n"
                "Fiji: deepImageJ > Install model > From a zip file; napari: the bioimage.io plugin\n",
                out.c_str());
    return;
  }
  // A resize-trained model given a native-size image returns a map of another scale: say so.
  if (info.input_mode == InputMode::kResize)
    std::printf("input: trained in resize mode, this model expects the whole image scaled to %lldx%lld and padded to "
                "%lldx%lld (the contract's \"preprocessing\"); its %lldx%lld output scaled back is the prediction\n",
                n, n, s, s, n, n);
  else
    std::printf("input: trained on tiles at native resolution; mirror-pad the image by %lld pixels and tile it "
                "(the contract's \"preprocessing\")\n",
                (s - n) / 2);
}

/// A bioimage.io package's default sample: the first test image of the data the model was trained
/// on (or its first training image), so that its test tensors and cover show the user's data; ""
/// (a synthetic slice) when the checkpoint records no data directory or it is gone.
std::string training_sample(const CheckpointInfo& info) {
  const std::filesystem::path dir = recorded_data_dir(info);
  if (dir.empty()) return "";
  for (const auto& candidate : {dir / "test-volume.tif", dir / "train-volume.tif", dir / "test", dir / "images"}) {
    std::error_code ec;
    if (!std::filesystem::exists(candidate, ec)) continue;
    try {
      const std::vector<std::string> files = image_files(candidate.string());
      if (!files.empty()) return files.front();
    } catch (const Error&) {
    }
  }
  return "";
}

void run_export(const ExportCommand& o) {
  const std::string ckpt = checkpoint_path(o.model_dir);
  if (!std::filesystem::exists(ckpt)) fail_file(o.model_dir, "no checkpoint.pt: nothing trained to export");
  const std::string out =
      o.output.empty() ? (std::filesystem::path(o.output_dir.empty() ? o.model_dir : o.output_dir) / default_name(o.format, o.precision)).string()
                       : o.output;
  CheckpointInfo info = read_checkpoint_info(ckpt);
  // The model's class names, unless --class-names renames them (every format carries them), and the
  // object values to record: both refused before anything is written.
  info.class_naming = model_naming(info, o.package.class_names);
  record_objects(info, o);
  std::error_code ec;  // the default output's folder (./NAME for a shipped model, model-only/) may be new
  if (o.output.empty()) std::filesystem::create_directories(std::filesystem::path(out).parent_path(), ec);
  BioimageioOptions package = o.package;
  if (o.format == Format::kBioimageio && package.sample.empty()) package.sample = training_sample(info);
  const bool int8 = o.precision == Precision::kInt8;
  CommandFiles().reads(ckpt).reads(int8 ? int8_scales_path(ckpt) : "").reads(package.sample).writes(out).check();
  UNet model = load_model(ckpt, info);
  ExportFormat contract_format = ExportFormat::kTorchScript;
  const Int8Scales scales = int8 ? load_int8_scales(ckpt, model, info.step) : Int8Scales{};
  if (o.format == Format::kCheckpoint) {
    // The weights and records without the optimizer's state: a third of the size, for sharing and
    // for evaluate/predict (--model-dir of its folder), not for --resume.
    if (!o.output.empty()) std::filesystem::create_directories(std::filesystem::path(out).parent_path(), ec);
    save_checkpoint(out, model, nullptr, info);
    std::printf("exported %s (step %lld) without its optimizer state to %s\n", ckpt.c_str(), static_cast<long long>(info.step),
                out.c_str());
    print_object_record(info);
    return;
  }
  if (o.format == Format::kOnnx) {
    contract_format = ExportFormat::kOnnx;
    export_onnx(model, info.input_size, out, contract_format, info.training_record, info.class_naming,
                int8 ? &scales : nullptr);
  } else if (o.format == Format::kTorchScript) {
    export_torchscript(model, info.input_size, out, info.training_record, ExportFormat::kTorchScript, info.class_naming);
  } else {
    contract_format = ExportFormat::kOnnxProbabilities;
    BioimageioPackage p;
    try {
      p = export_bioimageio(model, info, out, package, int8 ? &scales : nullptr);
    } catch (const Error& e) {
      // Only a sample the user did not choose and that the package cannot use falls back.
      if (package.sample == o.package.sample || std::string(e.what()).find(package.sample) == std::string::npos) throw;
      std::fprintf(stderr, "unet export: note: %s; the package's sample is a synthetic slice instead (--sample to choose)\n",
                   e.what());
      p = export_bioimageio(model, info, out, o.package, int8 ? &scales : nullptr);
    }
    std::printf("package: ");
    for (size_t i = 0; i < p.files.size(); ++i) std::printf("%s%s", i ? ", " : "", p.files[i].c_str());
    std::printf("\ntest tensors: %lld x %lld input from %s -> %lld x %lld probabilities\n",
                static_cast<long long>(p.test_height), static_cast<long long>(p.test_width), p.sample.c_str(),
                static_cast<long long>(p.output_height), static_cast<long long>(p.output_width));
  }
  std::printf("exported %s (step %lld%s) to %s\n", ckpt.c_str(), static_cast<long long>(info.step),
              int8 ? ", int8 QDQ with the scales of int8.json" : "", out.c_str());
  std::printf("contract: %s\n", export_contract(info.model, info.input_size, contract_format, info.training_record, 2,
                                                      info.class_naming, int8).c_str());
  print_usage_line(o.format, out, info);
}

}  // namespace

void register_export(CLI::App& app) {
  auto o = std::make_shared<ExportCommand>();
  CLI::App* cmd = app.add_subcommand(
      "export", "Export a checkpoint as TorchScript (LibTorch, PyTorch), ONNX (ONNX Runtime, OpenVINO, TensorRT) or a "
                "bioimage.io package (deepImageJ, ilastik, napari, QuPath)");
  add_value(*cmd, "--model-dir,--model_dir", "model_dir", o->model_dir, "Directory with checkpoint.pt");
  add_model_option(*cmd, o->model_dir, o->output_dir);
  add_value(*cmd, "--output,-o", "output", o->output,
            "Output file (default: <model-dir>/unet.torchscript.pt, unet.onnx or unet.bioimageio.zip; int8: unet_int8.onnx, "
            "unet_int8.bioimageio.zip)");
  static const EnumNames<Format> formats = {
      {"torchscript", Format::kTorchScript}, {"onnx", Format::kOnnx}, {"bioimageio", Format::kBioimageio},
      {"checkpoint", Format::kCheckpoint}};
  add_choice(*cmd, "--format", "format", o->format, formats,
             "torchscript (LibTorch, C++ or Python), onnx (ONNX Runtime, OpenVINO), bioimageio (a zip for deepImageJ, "
             "ilastik, napari, QuPath) or checkpoint (the model without its optimizer state, a third of the size: for "
             "sharing, evaluate and predict, not --resume; default <model-dir>/model-only/checkpoint.pt)");
  add_choice(*cmd, "--precision", "precision", o->precision, export_precision_names(),
             "fp32, or int8 (onnx, bioimageio): a QDQ file that ONNX Runtime and OpenVINO run with int8 kernels, "
             "with the scales unet quantize wrote beside the checkpoint");
  add_value(*cmd, "--sample", "sample", o->package.sample,
            "bioimageio: a real image (TIFF or PNG, same encoding as the training data) for the test tensors and the "
            "cover (default: the first test image of the data the model was trained on, else a synthetic slice)");
  add_value(*cmd, "--name", "name", o->package.name, "bioimageio: the model's name");
  add_value(*cmd, "--description", "description", o->package.description, "bioimageio: one paragraph about the model");
  add_list(*cmd, "--authors", "authors", o->package.authors, "bioimageio: authors' names, comma-separated");
  add_value(*cmd, "--license", "license", o->package.license,
            "bioimageio: SPDX license identifier of the weights, spelt as on https://spdx.org/licenses/ (case included)");
  add_value_or_auto(*cmd, "--object-threshold", "object_threshold", o->object_threshold, ExportCommand::kKeepRecorded,
                    "a probability",
                    "The object threshold to record in the export, above 0 and below 1: evaluate's and predict's default "
                    "(--object-threshold auto) for the objects of an interior/boundary, distance or direction model (0: "
                    "record none, so that " + number_text(kObjectThreshold) + " applies; auto, the default: the "
                    "checkpoint's as it is)");
  add_value_or_auto(*cmd, "--min-object-probability", "min_object_probability", o->min_object_probability,
                    ExportCommand::kKeepRecorded, "a probability",
                    "The smallest mean object probability to record in the export, at least 0 and below 1: evaluate's and "
                    "predict's default (--min-object-probability auto), under which objects are dropped (0: keep every "
                    "object; auto, the default: the checkpoint's as it is, 0 where it records none)");
  add_list(*cmd, "--class-names", "class_names", o->package.class_names,
           "One name per class, comma-separated, carried by the export (default: the names the model was trained with)");
  // The package's texts are checked as the command line is parsed, before the checkpoint is read.
  check_after_parse(*cmd, [o] {
    o->package.validate();
    require_option(legal_object_threshold(o->object_threshold) || o->object_threshold == 0 ||
                       o->object_threshold == ExportCommand::kKeepRecorded,
                   "object_threshold", "must be auto, 0 (none), or above 0 and below 1", o->object_threshold);
    require_option(legal_min_object_probability(o->min_object_probability) ||
                       o->min_object_probability == ExportCommand::kKeepRecorded,
                   "min_object_probability", "must be auto, or at least 0 and below 1", o->min_object_probability);
    if (o->precision == Precision::kInt8 && (o->format == Format::kTorchScript || o->format == Format::kCheckpoint))
      throw OptionError("precision", " int8 is exported as ONNX or a bioimage.io package: add {format} onnx or {format} bioimageio");
  });
  on_run(*cmd, [o] { run_export(*o); });
}

}  // namespace unet::cli
