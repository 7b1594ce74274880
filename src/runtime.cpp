// Process-wide runtime helpers: device parsing, CPU threads, seeding, atomic file output.
#include "unet/runtime.h"

#include "unet/error.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <c10/core/DeviceType.h>
#include <torch/cuda.h>

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

namespace unet {
namespace fs = std::filesystem;

c10::Device parse_device(const std::string& text) {
  if (text == "cpu") return c10::Device(c10::kCPU);
  if (text == "cuda" || text.rfind("cuda:", 0) == 0) {
    c10::DeviceIndex index = 0;
    if (text.size() > 5) {
      try {
        index = static_cast<c10::DeviceIndex>(std::stoi(text.substr(5)));
      } catch (const std::exception&) {
        throw Error("--device: '" + text + "' is not a device (expected cpu, cuda or cuda:N)");
      }
    }
#ifndef UNET_TORCH_HAS_CUDA
    throw Error("--device " + text + ": this build's LibTorch has no CUDA support");
#endif
    if (!torch::cuda::is_available())
      throw Error("--device " + text + ": no CUDA GPU is visible to this process");
    if (index < 0 || static_cast<size_t>(index) >= static_cast<size_t>(torch::cuda::device_count()))
      throw Error("--device " + text + ": only " + std::to_string(torch::cuda::device_count()) +
                  " CUDA device(s) are visible");
    return c10::Device(c10::kCUDA, index);
  }
  throw Error("--device: '" + text + "' is not a device (expected cpu, cuda or cuda:N)");
}

void configure_cpu_threads(int threads) {
  const int n = threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(n);
}

void configure_determinism(bool deterministic) {
  // cuBLAS reads this when it creates its handles: it must be set before the first GPU matmul.
  if (deterministic) ::setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8", /*overwrite=*/0);
  auto& context = at::globalContext();
  context.setBenchmarkCuDNN(!deterministic);
  context.setDeterministicCuDNN(deterministic);
  context.setDeterministicAlgorithms(deterministic, /*warn_only=*/false);
}

void notice(const std::string& text) { std::fprintf(stderr, "unet: notice: %s\n", text.c_str()); }

void seed_everything(uint64_t seed) {
  at::manual_seed(seed);  // seeds the CPU generator and every CUDA generator that exists
}

void ensure_writable_directory(const std::string& dir, const std::string& what) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) fail_file(dir, "cannot create " + what + " directory (" + ec.message() + ")");
  if (::access(dir.c_str(), W_OK | X_OK) != 0) fail_file(dir, what + " directory is not writable");
}

void require_readable_file(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) fail_file(path, "no such file");
  if (!fs::is_regular_file(path, ec)) fail_file(path, "not a regular file");
  if (::access(path.c_str(), R_OK) != 0) fail_file(path, "not readable");
}

void write_atomically(const std::string& path, const std::function<void(const std::string&)>& write) {
  static std::atomic<int> counter{0};
  const fs::path target(path);
  const fs::path tmp = target.parent_path() /
                       ("." + target.filename().string() + ".tmp" + std::to_string(::getpid()) + "." +
                        std::to_string(counter++));
  try {
    write(tmp.string());
    std::error_code ec;
    fs::rename(tmp, target, ec);
    if (ec) fail_file(path, "cannot write (" + ec.message() + ")");
  } catch (...) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw;
  }
}

}  // namespace unet
