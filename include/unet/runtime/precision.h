// Arithmetic precision: autocast to fp16/bf16 and the TF32 switches, scoped.
#pragma once

#include "unet/runtime/error.h"

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <string>

namespace unet {

/// fp32: strict float32 (TF32 off); tf32: float32 storage with TF32 Tensor Core convolutions and
/// matrix products on GPUs that have them (plain fp32 on CPUs); fp16 and bf16: autocast mixed
/// precision with float32 master weights, optimizer state and loss. Every precision runs on CPUs
/// (fp16 and bf16 through CPU autocast, tf32 as fp32) and CUDA GPUs. `kAuto` is resolved by
/// `resolve_precision` when a run context is made. int8: inference only, on CPUs, with the
/// calibration `unet quantize` wrote beside the checkpoint (unet/infer/quantize.h).
enum class Precision { kFP32, kTF32, kFP16, kBF16, kAuto, kInt8 };
/// "fp32", "tf32", "fp16" (alias "amp"), "bf16", "auto", "int8".
const EnumNames<Precision>& precision_names();
/// Throws `OptionError` (field "precision") for other names.
Precision parse_precision(const std::string& text);
std::string to_string(Precision precision);

/// The CPU's feature flags as /proc/cpuinfo lists them (" flag1 flag2 ... ", spaces around each;
/// empty where there is no such file), read once.
const std::string& cpu_flags();
/// Whether the CPU lists feature flag `name` (e.g. "avx512bw").
bool cpu_has_flag(const std::string& name);

/// Whether this CPU runs bf16 convolutions at all: on x86 oneDNN's bf16 path needs AVX-512 (BW,
/// VL, DQ) or AVX-NE-CONVERT (AVX2-only CPUs, such as earlier AMD EPYCs, have neither); true
/// elsewhere and where the flags cannot be read (oneDNN then decides).
bool cpu_runs_bf16();

/// Whether this CPU has matrix engines for bf16 (Intel AMX: the `amx_bf16` flag), where bf16
/// inference runs about twice as fast as fp32. (AVX512-BF16 alone is slower than fp32 in oneDNN's
/// convolutions on the CPUs measured; see docs/performance.md.)
bool cpu_has_bf16_matrix_engine();

/// `precision`, with `kAuto` made concrete for `device`: bf16 on CPUs with a bf16 matrix engine,
/// fp32 elsewhere (GPUs included, until their measurements decide). Throws `OptionError` for bf16
/// on a CPU that cannot run it (`cpu_runs_bf16`).
Precision resolve_precision(Precision precision, const c10::Device& device);

/// Within its scope, operations on `device` run in `precision` (autocast for fp16 and bf16), and
/// TF32 is allowed exactly when `precision` is tf32. Restores the previous state on exit.
class PrecisionScope {
 public:
  PrecisionScope(const c10::Device& device, Precision precision);
  ~PrecisionScope();
  PrecisionScope(const PrecisionScope&) = delete;
  PrecisionScope& operator=(const PrecisionScope&) = delete;

 private:
  c10::DeviceType device_type_;
  bool was_enabled_;
  at::ScalarType old_dtype_;
  bool autocast_;
  bool was_caching_ = true;
};

}  // namespace unet
