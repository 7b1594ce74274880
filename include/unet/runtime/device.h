// Process-wide runtime switches: devices, CPU threads, determinism, seeding, notices.
#pragma once

#include <c10/core/Device.h>

#include <cstdint>
#include <string>

namespace unet {

/// Parses "cpu", "cuda" or "cuda:N" (the spelling only); throws `OptionError` for field "device".
c10::Device parse_device_name(const std::string& text);

/// Throws `OptionError` (field "device") unless `device` exists here: the CPU, or a CUDA device
/// of a CUDA build that this process can see.
void require_available(const c10::Device& device);

/// Uses `threads` intra-op CPU threads (0: every core; LibTorch may otherwise start with one), and
/// flushes subnormal floats to zero in them (subnormal arithmetic is far slower on x86 CPUs).
void configure_cpu_threads(int threads);

/// The threads unet's own parallel loops (`at::parallel_for` in unet's files: the Winograd
/// convolutions, per-image preprocessing) run on: LibTorch's intra-op threads in a build with
/// OpenMP, 1 in one without (ATen's loop is inline and serial in a file compiled without it).
int parallel_loop_threads();

/// cuDNN autotuning (the fastest convolution algorithms, chosen per shape) when `deterministic` is
/// false; otherwise deterministic algorithms only (cuDNN, cuBLAS with a fixed workspace, and
/// LibTorch's deterministic mode, which makes an op without a deterministic kernel an error), so
/// that two GPU runs with the same seed give identical weights. CPU runs are deterministic anyway.
void configure_determinism(bool deterministic);

/// One line "unet: notice: <text>" on stderr: a fallback the user should know about.
void notice(const std::string& text);

/// Seeds LibTorch's CPU (and, when present, CUDA) generators.
void seed_everything(uint64_t seed);

/// Waits for the work queued on `device` (nothing to wait for on a CPU).
void synchronize(const c10::Device& device);

}  // namespace unet
