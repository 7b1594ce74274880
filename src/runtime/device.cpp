// Process-wide runtime switches: device names, CPU threads, determinism, seeding, notices.
#include "unet/runtime/device.h"

#include "unet/runtime/error.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <torch/cuda.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <thread>

namespace unet {

c10::Device parse_device_name(const std::string& text) {
  const std::string problem = ": '" + text + "' is not a device (expected cpu, cuda or cuda:N)";
  if (text == "cpu") return c10::Device(c10::kCPU);
  if (text == "cuda") return c10::Device(c10::kCUDA, 0);
  if (text.rfind("cuda:", 0) == 0 && text.size() > 5 && text.size() < 9 &&
      text.find_first_not_of("0123456789", 5) == std::string::npos)
    return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(std::stoi(text.substr(5))));
  throw OptionError("device", problem);
}

void require_available(const c10::Device& device) {
  if (!device.is_cuda()) return;
  const std::string name = " " + device.str();
#ifndef UNET_TORCH_HAS_CUDA
  throw OptionError("device", name + ": this build's LibTorch has no CUDA support");
#endif
  if (!torch::cuda::is_available()) throw OptionError("device", name + ": no CUDA GPU is visible to this process");
  if (device.index() >= static_cast<c10::DeviceIndex>(torch::cuda::device_count()))
    throw OptionError("device", name + ": only " + std::to_string(torch::cuda::device_count()) +
                                    " CUDA device(s) are visible");
}

void configure_cpu_threads(int threads) {
  const int n = threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // Subnormal floats are up to 100x slower on x86: a trained network's small gradients made CPU
  // training steps 4.5x slower than fresh ones. Flush them to zero (as torch.set_flush_denormal)
  // in this thread, which the worker threads created later inherit, and in every existing worker.
  at::globalContext().setFlushDenormal(true);
  at::set_num_threads(n);
  at::parallel_for(0, n, 1, [](int64_t, int64_t) { at::globalContext().setFlushDenormal(true); });
}

int parallel_loop_threads() {
  const int64_t n = at::get_num_threads();
  std::atomic<int> chunks{0};  // one chunk per thread that ran (grain 1, n items)
  at::parallel_for(0, n, 1, [&](int64_t, int64_t) { chunks.fetch_add(1); });
  return chunks.load();
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

void synchronize(const c10::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

}  // namespace unet
