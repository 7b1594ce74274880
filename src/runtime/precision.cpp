// Autocast scopes and TF32 switches.
#include "unet/runtime/precision.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>

#include <fstream>

namespace unet {

const EnumNames<Precision>& precision_names() {
  static const EnumNames<Precision> names = {{"fp32", Precision::kFP32},
                                             {"tf32", Precision::kTF32},
                                             {"fp16", Precision::kFP16},
                                             {"bf16", Precision::kBF16},
                                             {"auto", Precision::kAuto},
                                             {"int8", Precision::kInt8},
                                             {"amp", Precision::kFP16, /*canonical=*/false}};
  return names;
}

Precision parse_precision(const std::string& text) { return parse_name(precision_names(), "precision", text); }

std::string to_string(Precision p) { return name_of(precision_names(), p); }

bool cpu_has_bf16_matrix_engine() {
  static const bool amx = [] {
    std::ifstream cpuinfo("/proc/cpuinfo");
    for (std::string line; std::getline(cpuinfo, line);)
      if (line.rfind("flags", 0) == 0) return line.find(" amx_bf16") != std::string::npos;
    return false;
  }();
  return amx;
}

Precision resolve_precision(Precision precision, const c10::Device& device) {
  if (precision != Precision::kAuto) return precision;
  return device.is_cpu() && cpu_has_bf16_matrix_engine() ? Precision::kBF16 : Precision::kFP32;
}

PrecisionScope::PrecisionScope(const c10::Device& device, Precision precision)
    : device_type_(device.type()),
      was_enabled_(at::autocast::is_autocast_enabled(device_type_)),
      old_dtype_(at::autocast::get_autocast_dtype(device_type_)),
      autocast_(precision == Precision::kFP16 || precision == Precision::kBF16) {
  if (device.is_cuda()) {
    at::globalContext().setAllowTF32CuDNN(precision == Precision::kTF32);
    at::globalContext().setAllowTF32CuBLAS(precision == Precision::kTF32);
  }
  if (autocast_) {
    // The cast-weight cache would keep tensors made inside a CUDA graph capture alive across
    // replays; every weight is used once per pass anyway, so caching saves nothing.
    was_caching_ = at::autocast::is_autocast_cache_enabled();
    at::autocast::set_autocast_cache_enabled(false);
    at::autocast::set_autocast_dtype(device_type_, precision == Precision::kFP16 ? at::kHalf : at::kBFloat16);
    at::autocast::set_autocast_enabled(device_type_, true);
  }
}

PrecisionScope::~PrecisionScope() {
  if (autocast_) {
    at::autocast::set_autocast_enabled(device_type_, was_enabled_);
    at::autocast::set_autocast_dtype(device_type_, old_dtype_);
    at::autocast::set_autocast_cache_enabled(was_caching_);
  }
}

}  // namespace unet
