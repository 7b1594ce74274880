// Checkpoint files on LibTorch's serialization archive: a format tag, a checksum of the weights,
// validation of everything read, and atomic replacement through a writer that cannot fail midway.
#include "unet/model/checkpoint.h"
#include "runtime/json.h"

#include "model/json.h"
#include "unet/model/geometry.h"
#include "unet/runtime/files.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/ivalue.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <cstdio>
#include <filesystem>
#include <map>

namespace unet {
namespace {

constexpr const char* kFormatTag = "unet-checkpoint/1";
/// Steps, sides and image sizes beyond these are damage, not training.
constexpr int64_t kMaxStep = int64_t{1} << 40;

/// CRC-32C of the model's parameters and buffers (their values in NCHW order, as float32 bytes),
/// in the order the model names them: what a flipped byte in the weights changes.
int64_t weights_checksum(UNet& model) {
  uint32_t crc = 0;
  const auto add = [&](const at::Tensor& t) {
    const at::Tensor dense = t.detach().to(at::kCPU, at::kFloat).contiguous();
    crc = crc32c(dense.data_ptr(), static_cast<size_t>(dense.numel()) * sizeof(float), crc);
  };
  for (const auto& p : model->named_parameters()) add(p.value());
  for (const auto& b : model->named_buffers()) add(b.value());
  return static_cast<int64_t>(crc);
}

/// Every tensor of `model` against the sizes and types it had before loading, then finite.
void check_loaded_weights(UNet& model, const std::map<std::string, std::pair<std::vector<int64_t>, at::ScalarType>>& expected) {
  for (const auto& p : model->named_parameters()) {
    const auto it = expected.find(p.key());
    const at::Tensor& t = p.value();
    if (it == expected.end() || t.sizes().vec() != it->second.first || t.scalar_type() != it->second.second)
      throw Error("the tensor '" + p.key() + "' has the wrong shape or type for this architecture");
    if (!at::isfinite(t).all().item<bool>()) throw Error("the weights '" + p.key() + "' are not finite (a diverged run?)");
  }
}

torch::serialize::InputArchive open_archive(const std::string& path) {
  require_readable_file(path);
  torch::serialize::InputArchive archive;
  try {
    // Reading a checkpoint needs about its size in memory; a crafted one may declare far more.
    MemoryBudget budget(MemoryBudget::for_reading(path));
    archive.load_from(path, c10::Device(c10::kCPU));
  } catch (const std::exception&) {  // c10::Error, and TorchScript's ErrorReport for crafted archives
    fail_file(path, "not a unet checkpoint (unreadable or truncated archive)");
  }
  return archive;
}

std::string read_string(torch::serialize::InputArchive& archive, const char* key, const std::string& path) {
  c10::IValue value;
  if (!archive.try_read(key, value) || !value.isString()) fail_file(path, std::string("not a unet checkpoint (no '") + key + "')");
  return value.toStringRef();
}

int64_t read_int(torch::serialize::InputArchive& archive, const char* key, const std::string& path) {
  c10::IValue value;
  if (!archive.try_read(key, value) || !value.isInt()) fail_file(path, std::string("not a unet checkpoint (no '") + key + "')");
  return value.toInt();
}

/// The recorded class names and headline ({"names": [...], "headline": h}), or the defaults for
/// checkpoints written before they were recorded.
ClassNaming read_class_naming(torch::serialize::InputArchive& archive, const UNetOptions& model, const std::string& path) {
  c10::IValue value;
  if (!archive.try_read("class_names", value)) return recorded_naming({}, model.classes(), model.scheme());
  const auto j = value.isString() ? nlohmann::json::parse(value.toStringRef(), nullptr, /*allow_exceptions=*/false)
                                  : nlohmann::json();
  ClassNaming naming;
  const bool ok = j.is_object() && j.contains("names") && j["names"].is_array() &&
                  static_cast<int64_t>(j["names"].size()) == model.classes() && j.contains("headline") &&
                  j["headline"].is_number_integer();
  if (ok) {
    for (const auto& name : j["names"]) {
      if (!name.is_string() || name.get<std::string>().empty()) fail_file(path, "damaged checkpoint (class names)");
      naming.names.push_back(name.get<std::string>());
    }
    naming.headline = j["headline"].get<int64_t>();
  }
  if (!ok || naming.headline < -1 || naming.headline >= model.classes()) fail_file(path, "damaged checkpoint (class names)");
  return naming;
}

/// The training record's "normalisation" object (written by `save_checkpoint`).
Normalisation read_normalisation(const nlohmann::json& j, const std::string& path) {
  Normalisation n;
  try {
    n = j.get<Normalisation>();
  } catch (const nlohmann::json::exception&) {
    fail_file(path, "damaged checkpoint (normalisation record)");
  } catch (const OptionError& e) {
    fail_file(path, std::string("damaged checkpoint (normalisation record: ") + e.what() + ")");
  }
  return n;
}

CheckpointInfo read_fields(torch::serialize::InputArchive& archive, const std::string& path) {
  c10::IValue tag;
  if (!archive.try_read("format", tag) || !tag.isString() || tag.toStringRef() != kFormatTag)
    fail_file(path, "not a unet checkpoint (missing or foreign format tag)");
  CheckpointInfo info;
  c10::IValue scaler;
  if (archive.try_read("loss_scaler", scaler) && scaler.isTensor()) info.scaler_state = scaler.toTensor();
  try {
    info.model = nlohmann::json::parse(read_string(archive, "model_config", path)).get<UNetOptions>();
  } catch (const nlohmann::json::exception&) {
    fail_file(path, "damaged checkpoint (malformed model configuration)");
  } catch (const OptionError& e) {
    fail_file(path, std::string("damaged checkpoint (stored model configuration: ") + e.what() + ")");
  }
  info.input_size = read_int(archive, "input_size", path);
  info.step = read_int(archive, "step", path);
  if (info.step < 0 || info.step > kMaxStep) fail_file(path, "damaged checkpoint (step " + std::to_string(info.step) + ")");
  if (info.input_size > kMaxRecordedSide || output_size_or_invalid(info.model, info.input_size) <= 0)
    fail_file(path, "damaged checkpoint (input size " + std::to_string(info.input_size) + " is not legal for its U-Net of " +
                        info.model.describe() + ")");
  // The typed fields live in the training record (as every version of unet wrote them).
  info.training_record = read_string(archive, "train_config", path);
  const auto record = nlohmann::json::parse(info.training_record, nullptr, /*allow_exceptions=*/false);
  if (record.is_object()) {
    const auto mode = record.find("input_mode");
    if (mode != record.end() && mode->is_string() && *mode == "tile") info.input_mode = InputMode::kTile;
    if (const auto n = record.find("normalisation"); n != record.end()) info.normalisation = read_normalisation(*n, path);
    try {
      info.objects = read_object_record(record);
    } catch (const Error& e) {
      fail_file(path, std::string("damaged checkpoint (") + e.what() + ")");
    }
    if (const auto d = record.find("object_diameter"); d != record.end()) {
      if (!d->is_number() || !(d->get<double>() >= 0) || d->get<double>() > static_cast<double>(kMaxRecordedSide))
        fail_file(path, "damaged checkpoint (object diameter)");
      info.object_diameter = d->get<double>();
    }
    const auto size = record.find("image_size");
    if (size != record.end() && size->is_array() && size->size() == 2 && (*size)[0].is_number_integer() &&
        (*size)[1].is_number_integer()) {
      info.image_height = (*size)[0].get<int64_t>();
      info.image_width = (*size)[1].get<int64_t>();
    }
  }
  c10::IValue data;
  if (archive.try_read("data_config", data)) {
    if (!data.isString() || !nlohmann::json::parse(data.toStringRef(), nullptr, /*allow_exceptions=*/false).is_object())
      fail_file(path, "damaged checkpoint (data record)");
    info.data_record = data.toStringRef();
  }
  info.class_naming = read_class_naming(archive, info.model, path);
  if (info.image_height < 0 || info.image_width < 0 || info.image_height > kMaxRecordedSide || info.image_width > kMaxRecordedSide)
    fail_file(path, "damaged checkpoint (training image size)");
  if (info.scaler_state.defined() &&
      (info.scaler_state.numel() != 2 || !at::isfinite(info.scaler_state).all().item<bool>() ||
       info.scaler_state.to(at::kDouble)[0].item<double>() <= 0.0))
    fail_file(path, "damaged checkpoint (loss scaler state)");
  return info;
}

/// The header, with LibTorch's own errors about a crafted archive turned into one line.
CheckpointInfo read_info(torch::serialize::InputArchive& archive, const std::string& path) {
  try {
    return read_fields(archive, path);
  } catch (const Error&) {
    throw;
  } catch (const std::exception&) {
    fail_file(path, "damaged checkpoint (unreadable header)");
  }
}

}  // namespace

std::string checkpoint_path(const std::string& model_dir) {
  return (std::filesystem::path(model_dir) / kCheckpointFile).string();
}

std::string training_record_text(const CheckpointInfo& info) {
  // The typed fields go into the training record, where earlier versions read them.
  auto record = nlohmann::json::parse(info.training_record, nullptr, /*allow_exceptions=*/false);
  if (!record.is_object()) record = nlohmann::json::object();
  record["input_mode"] = to_string(info.input_mode);
  record["normalisation"] = info.normalisation;
  // Each object field only where recorded (0: none), so that a record set back to 0 is gone.
  record.erase("object_area_median");
  record.erase("object_threshold");
  record.erase("min_object_probability");
  if (info.objects.median_area > 0) record["object_area_median"] = info.objects.median_area;
  if (info.object_diameter > 0) record["object_diameter"] = info.object_diameter;
  if (info.objects.threshold > 0) record["object_threshold"] = info.objects.threshold;
  if (info.objects.min_probability > 0) record["min_object_probability"] = info.objects.min_probability;
  if (info.image_height > 0 && info.image_width > 0) record["image_size"] = {info.image_height, info.image_width};
  return json_text(record);
}

void save_checkpoint(const std::string& path, UNet& model, torch::optim::Optimizer* optimizer,
                     const CheckpointInfo& info) {
  torch::serialize::OutputArchive archive;
  archive.write("format", c10::IValue(std::string(kFormatTag)));
  archive.write("model_config", c10::IValue(json_text(nlohmann::json(info.model))));
  archive.write("input_size", c10::IValue(info.input_size));
  archive.write("step", c10::IValue(info.step));
  archive.write("train_config", c10::IValue(training_record_text(info)));
  if (!info.data_record.empty()) archive.write("data_config", c10::IValue(info.data_record));
  if (!info.class_naming.names.empty())
    archive.write("class_names", c10::IValue(json_text(nlohmann::json{{"names", info.class_naming.names},
                                                                       {"headline", info.class_naming.headline}})));
  torch::serialize::OutputArchive model_archive;
  model->save(model_archive);
  archive.write("model", model_archive);
  archive.write("weights_crc32c", c10::IValue(weights_checksum(model)));
  if (optimizer) {
    torch::serialize::OutputArchive optimizer_archive;
    optimizer->save(optimizer_archive);
    archive.write("optimizer", optimizer_archive);
  }
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    archive.write("rng_cpu", gen.get_state());
  }
  if (info.scaler_state.defined()) archive.write("loss_scaler", info.scaler_state);
  write_atomically(path, [&](const std::string& tmp) {
    // The writer reports success to LibTorch whatever happens: an exception inside the archive
    // writer would leave its destructor and end the process. Failures surface in finish().
    CheckedFileWriter out(tmp);
    try {
      archive.save_to([&out](const void* data, size_t size) { return out.write(data, size); });
    } catch (const c10::Error& e) {
      fail_file(path, "cannot write checkpoint (" + std::string(e.what_without_backtrace()) + ")");
    }
    out.finish(path);
  });
}

CheckpointInfo read_checkpoint_info(const std::string& path) {
  auto archive = open_archive(path);
  return read_info(archive, path);
}

CheckpointInfo load_checkpoint(const std::string& path, UNet& model, torch::optim::Optimizer* optimizer,
                               bool restore_rng) {
  auto archive = open_archive(path);
  const CheckpointInfo info = read_info(archive, path);
  if (!(info.model == model->options())) {
    std::string stored = info.model.describe(), wanted = model->options().describe();
    if (stored == wanted) {
      char a[32], b[32];
      std::snprintf(a, sizeof(a), ", dropout %g", info.model.dropout());
      std::snprintf(b, sizeof(b), ", dropout %g", model->options().dropout());
      stored += a;
      wanted += b;
    }
    fail_file(path, "checkpoint is for a U-Net of " + stored + ", not " + wanted);
  }
  torch::serialize::InputArchive optimizer_archive;
  if (optimizer && !archive.try_read("optimizer", optimizer_archive))
    fail_file(path, "holds the model without its optimizer state (a model-only checkpoint): it evaluates and predicts, "
                    "but training cannot resume from it");
  std::map<std::string, std::pair<std::vector<int64_t>, at::ScalarType>> expected;
  for (const auto& p : model->named_parameters()) expected[p.key()] = {p.value().sizes().vec(), p.value().scalar_type()};
  try {
    torch::serialize::InputArchive model_archive;
    archive.read("model", model_archive);
    model->load(model_archive);
    check_loaded_weights(model, expected);
    c10::IValue checksum;
    if (archive.try_read("weights_crc32c", checksum) && (!checksum.isInt() || checksum.toInt() != weights_checksum(model)))
      throw Error("the weights do not match their checksum");
    if (optimizer) optimizer->load(optimizer_archive);
    if (restore_rng) {
      at::Tensor state;
      archive.read("rng_cpu", state);
      auto gen = at::detail::getDefaultCPUGenerator();
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(state);
    }
  } catch (const Error& e) {
    fail_file(path, std::string("damaged checkpoint (") + e.what() + ")");
  } catch (const std::exception&) {  // LibTorch's own errors about the archive's contents
    fail_file(path, "damaged checkpoint (unreadable tensors)");
  }
  return info;
}

UNet load_model(const std::string& path, const CheckpointInfo& info) {
  UNet model(info.model);
  load_checkpoint(path, model, nullptr, /*restore_rng=*/false);
  return model;
}

}  // namespace unet
