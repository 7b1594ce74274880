// Shipped models by name: the registry (models/models.json), the folder they live in, and the
// check that a file is the one shipped (its size and CRC-32C) before a command trusts it.
#include "pretrained.h"

#include "flags.h"

#include "unet/model/checkpoint.h"
#include "unet/runtime/error.h"
#include "unet/runtime/files.h"

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>

#ifndef UNET_MODELS_DIR
#define UNET_MODELS_DIR "models"
#endif

namespace unet::cli {
namespace fs = std::filesystem;
namespace {

std::string names(const std::vector<PretrainedModel>& models) {
  std::string s;
  for (const auto& m : models) s += (s.empty() ? "" : ", ") + m.name;
  return s;
}

/// Shipped model `name`'s folder, its checkpoint checked against `models` (size and CRC-32C);
/// none for a name not among them.
std::optional<std::string> shipped_model_dir(const std::string& name, const std::vector<PretrainedModel>& models) {
  for (const auto& m : models) {
    if (m.name != name) continue;
    const std::string file = (fs::path(models_dir()) / m.file).string();
    std::error_code ec;
    const auto size = fs::file_size(file, ec);
    if (ec) fail_file(file, "the shipped model '" + name + "' is missing");
    if (size != m.bytes || file_crc32c(file) != m.crc32c)
      fail_file(file, "is not the file shipped as '" + name + "' (its size or CRC-32C differs from models.json)");
    return fs::path(file).parent_path().string();
  }
  return std::nullopt;
}

}  // namespace

std::string models_dir() {
  const char* env = std::getenv("UNET_MODELS_DIR");
  return env && *env ? env : UNET_MODELS_DIR;
}

std::vector<PretrainedModel> pretrained_models() {
  const std::string path = (fs::path(models_dir()) / "models.json").string();
  std::ifstream in(path);
  if (!in) fail_file(path, "no list of shipped models here (set UNET_MODELS_DIR to the folder of models.json)");
  const auto j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) fail_file(path, "not a JSON object of models");
  std::vector<PretrainedModel> models;
  for (const auto& [name, m] : j.items()) {
    if (!m.is_object() || !m.contains("file") || !m["file"].is_string() || !m.contains("bytes") ||
        !m["bytes"].is_number_unsigned() || !m.contains("crc32c") || !m["crc32c"].is_number_unsigned())
      fail_file(path, "model '" + name + "' needs file, bytes and crc32c");
    if (m.contains("summary") && !m["summary"].is_string()) fail_file(path, "model '" + name + "': its summary is not text");
    models.push_back({name, m["file"].get<std::string>(), m["bytes"].get<uint64_t>(),
                      static_cast<uint32_t>(m["crc32c"].get<uint64_t>()), m.value("summary", std::string())});
  }
  return models;
}

std::string pretrained_model_dir(const std::string& name) {
  const auto models = pretrained_models();
  if (auto dir = shipped_model_dir(name, models)) return *dir;
  throw OptionError("model", " " + name + ": no such shipped model (shipped: " + names(models) + ")");
}

std::string model_folder_or_name(const std::string& given, const std::string& field) {
  std::error_code ec;
  if (fs::is_regular_file(given, ec) || fs::is_regular_file(checkpoint_path(given), ec)) return given;
  std::vector<PretrainedModel> models;
  try {
    models = pretrained_models();
  } catch (const Error& e) {
    throw OptionError(field, " " + given + ": no such file or model folder, and the shipped models' list is unreadable (" +
                                 e.what() + ")");
  }
  if (auto dir = shipped_model_dir(given, models)) return *dir;
  throw OptionError(field, " " + given + ": no such file or model folder, nor a shipped model (shipped: " + names(models) + ")");
}

void add_model_option(CLI::App& cmd, std::string& model_dir, std::string& outputs, std::string* chosen) {
  CLI::Option* model = cmd.add_option_function<std::string>(
      "--model",
      [&model_dir, &outputs, chosen](const std::string& name) {
        model_dir = pretrained_model_dir(name);
        if (outputs.empty()) outputs = name;
        if (chosen) *chosen = name;
      },
      "A model shipped with unet, by name (docs/models.md), instead of --model-dir: nuclei-fluorescence "
      "(nuclei in fluorescence images) or nuclei-he (nuclei in H&E-stained tissue); what would go into "
      "--model-dir goes to ./NAME");
  name_field("model", model->get_name());
  if (CLI::Option* dir = cmd.get_option_no_throw("--model-dir")) model->excludes(dir);
}

}  // namespace unet::cli
