// Checkpoint files on LibTorch's serialization archive, with a format tag and atomic replacement.
#include "unet/model/checkpoint.h"

#include "model/json.h"
#include "unet/runtime/files.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/ivalue.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <filesystem>

namespace unet {
namespace {

constexpr const char* kFormatTag = "unet-checkpoint/1";

torch::serialize::InputArchive open_archive(const std::string& path) {
  require_readable_file(path);
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path, c10::Device(c10::kCPU));
  } catch (const c10::Error&) {
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

CheckpointInfo read_info(torch::serialize::InputArchive& archive, const std::string& path) {
  c10::IValue tag;
  if (!archive.try_read("format", tag) || !tag.isString() || tag.toStringRef() != kFormatTag)
    fail_file(path, "not a unet checkpoint (missing or foreign format tag)");
  CheckpointInfo info;
  c10::IValue scaler;
  if (archive.try_read("loss_scaler", scaler) && scaler.isTensor()) info.scaler_state = scaler.toTensor();
  try {
    info.model = unet_options_from_json(read_string(archive, "model_config", path));
  } catch (const Error& e) {
    fail_file(path, e.what());
  }
  info.input_size = read_int(archive, "input_size", path);
  info.step = read_int(archive, "step", path);
  // The typed fields live in the training record (as every version of unet wrote them).
  info.training_record = read_string(archive, "train_config", path);
  const auto record = nlohmann::json::parse(info.training_record, nullptr, /*allow_exceptions=*/false);
  if (record.is_object()) {
    const auto mode = record.find("input_mode");
    if (mode != record.end() && mode->is_string() && *mode == "tile") info.input_mode = InputMode::kTile;
    const auto size = record.find("image_size");
    if (size != record.end() && size->is_array() && size->size() == 2 && (*size)[0].is_number_integer() &&
        (*size)[1].is_number_integer()) {
      info.image_height = (*size)[0].get<int64_t>();
      info.image_width = (*size)[1].get<int64_t>();
    }
  }
  return info;
}

}  // namespace

std::string checkpoint_path(const std::string& model_dir) {
  return (std::filesystem::path(model_dir) / kCheckpointFile).string();
}

void save_checkpoint(const std::string& path, UNet& model, torch::optim::Optimizer* optimizer,
                     const CheckpointInfo& info) {
  torch::serialize::OutputArchive archive;
  archive.write("format", c10::IValue(std::string(kFormatTag)));
  archive.write("model_config", c10::IValue(nlohmann::json(info.model).dump()));
  archive.write("input_size", c10::IValue(info.input_size));
  archive.write("step", c10::IValue(info.step));
  // The typed fields go into the training record, where earlier versions read them.
  auto record = nlohmann::json::parse(info.training_record, nullptr, /*allow_exceptions=*/false);
  if (!record.is_object()) record = nlohmann::json::object();
  record["input_mode"] = to_string(info.input_mode);
  if (info.image_height > 0 && info.image_width > 0) record["image_size"] = {info.image_height, info.image_width};
  archive.write("train_config", c10::IValue(record.dump()));
  torch::serialize::OutputArchive model_archive;
  model->save(model_archive);
  archive.write("model", model_archive);
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
    try {
      archive.save_to(tmp);
    } catch (const c10::Error& e) {
      fail_file(path, "cannot write checkpoint (" + std::string(e.what_without_backtrace()) + ")");
    }
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
  if (!(info.model == model->options()))
    fail_file(path, "checkpoint is for a U-Net of " + info.model.describe() + ", not " + model->options().describe());
  try {
    torch::serialize::InputArchive model_archive;
    archive.read("model", model_archive);
    model->load(model_archive);
    if (optimizer) {
      torch::serialize::InputArchive optimizer_archive;
      if (!archive.try_read("optimizer", optimizer_archive)) fail_file(path, "checkpoint holds no optimizer state to resume from");
      optimizer->load(optimizer_archive);
    }
    if (restore_rng) {
      at::Tensor state;
      archive.read("rng_cpu", state);
      auto gen = at::detail::getDefaultCPUGenerator();
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(state);
    }
  } catch (const c10::Error& e) {
    fail_file(path, "damaged checkpoint (" + std::string(e.what_without_backtrace()) + ")");
  }
  return info;
}

UNet load_model(const std::string& path, const CheckpointInfo& info) {
  UNet model(info.model);
  load_checkpoint(path, model, nullptr, /*restore_rng=*/false);
  return model;
}

}  // namespace unet
