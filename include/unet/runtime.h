// Process-wide runtime helpers: devices, CPU threads, seeding, and safe file output.
#pragma once

#include <c10/core/Device.h>

#include <functional>
#include <string>

namespace unet {

/// Parses "cpu", "cuda" or "cuda:N" and checks that the device exists; throws `unet::Error`
/// with the reason (e.g. LibTorch built without CUDA, or no GPU visible) otherwise.
c10::Device parse_device(const std::string& text);

/// Uses `threads` intra-op CPU threads (0: every core). LibTorch may otherwise start with one.
void configure_cpu_threads(int threads);

/// cuDNN autotuning (the fastest convolution algorithms, chosen per shape) when `deterministic` is
/// false; otherwise deterministic algorithms only (cuDNN, cuBLAS with a fixed workspace, and
/// LibTorch's deterministic mode, which makes an op without a deterministic kernel an error), so
/// that two GPU runs with the same seed give identical weights. CPU runs are deterministic anyway.
void configure_determinism(bool deterministic);

/// One line "unet: notice: <text>" on stderr: a fallback the user should know about.
void notice(const std::string& text);

/// Seeds LibTorch's CPU (and, when present, CUDA) generators.
void seed_everything(uint64_t seed);

/// Creates `dir` (and parents) if needed and checks that a file can be created in it; throws
/// `unet::Error` naming the directory otherwise.
void ensure_writable_directory(const std::string& dir, const std::string& what);

/// Checks that `path` is an existing regular, readable file; throws `unet::Error` otherwise.
void require_readable_file(const std::string& path);

/// Calls `write(temporary_path)` and then renames the temporary file onto `path`, so that `path`
/// is either its old content or the complete new one, never a partial file.
void write_atomically(const std::string& path, const std::function<void(const std::string&)>& write);

}  // namespace unet
