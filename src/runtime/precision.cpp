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

const std::string& cpu_flags() {
  static const std::string flags = [] {
    std::ifstream cpuinfo("/proc/cpuinfo");
    for (std::string line; std::getline(cpuinfo, line);)
      if (line.rfind("flags", 0) == 0) return line.substr(line.find(':') + 1) + " ";  // npos + 1: the whole line
    return std::string();
  }();
  return flags;
}

bool cpu_has_flag(const std::string& name) { return cpu_flags().find(" " + name + " ") != std::string::npos; }

bool cpu_has_bf16_matrix_engine() { return cpu_has_flag("amx_bf16"); }

bool cpu_runs_bf16() {
#if defined(__x86_64__) || defined(__i386__)
  if (cpu_flags().empty()) return true;  // flags unknown: oneDNN decides
  return (cpu_has_flag("avx512bw") && cpu_has_flag("avx512vl") && cpu_has_flag("avx512dq")) || cpu_has_flag("avx_ne_convert");
#else
  return true;  // other architectures list other flags: oneDNN decides
#endif
}

Precision resolve_precision(Precision precision, const c10::Device& device) {
  if (precision == Precision::kAuto)
    return device.is_cpu() && cpu_has_bf16_matrix_engine() ? Precision::kBF16 : Precision::kFP32;
  if (precision == Precision::kBF16 && device.is_cpu() && !cpu_runs_bf16())
    throw OptionError("precision", " bf16 needs a CPU with AVX-512 (avx512bw, avx512vl, avx512dq) or AVX-NE-CONVERT for "
                                   "oneDNN's bf16 convolutions, and this one has neither: use fp32 (or auto, which picks "
                                   "what the CPU runs best)");
  return precision;
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
