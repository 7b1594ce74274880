// The run context of a command: threads, determinism, the launcher's ranks, the device, the process group.
#include "unet/dist/dist.h"

#include "unet/runtime/device.h"

#include <ATen/Parallel.h>
#include <torch/cuda.h>

namespace unet {

RunContext make_run_context(const RuntimeOptions& options, const DistEnv& env) {
  options.validate();
  configure_cpu_threads(options.threads);
  configure_determinism(options.deterministic);
  RunContext context;
  context.env = env;
  context.precision = options.precision;
  context.threads = at::get_num_threads();
  context.loader_threads = options.loader_threads;
  context.quiet = options.quiet || env.rank > 0;
  if (options.device) {
    context.device = *options.device;
  } else if (torch::cuda::is_available()) {
    context.device = c10::Device(c10::kCUDA, 0);
  }
  if (context.device.is_cuda() && env.launcher != "none") {
    if (env.local_rank >= static_cast<int>(torch::cuda::device_count()))
      throw Error("LOCAL_RANK " + std::to_string(env.local_rank) + " has no GPU: only " +
                  std::to_string(torch::cuda::device_count()) + " are visible");
    context.device = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank));
  }
  require_available(context.device);
  context.precision = resolve_precision(options.precision, context.device);
  return context;
}

void connect(RunContext& context, int timeout_s) {
  // A launched job uses a process group even at world size 1, so that its cost can be measured.
  if (context.env.launcher == "none" || context.dist) return;
  context.dist = std::make_shared<Distributed>(context.env, context.device, std::chrono::seconds(timeout_s));
}

}  // namespace unet
