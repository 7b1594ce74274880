// Range checks of the runtime options (the context itself is built by make_run_context, unet/dist/dist.h).
#include "unet/runtime/context.h"

#include <algorithm>
#include <thread>

namespace unet {

int max_threads_per_machine() { return std::max(8, 4 * static_cast<int>(std::thread::hardware_concurrency())); }

void RuntimeOptions::validate() const {
  const int most = max_threads_per_machine();
  const std::string bound = "at most " + std::to_string(most) + " (4 per core of this machine)";
  require_option(threads >= 0, "threads", "must not be negative", static_cast<int64_t>(threads));
  require_option(threads <= most, "threads", "must be " + bound, static_cast<int64_t>(threads));
  require_option(loader_threads >= 1, "loader_threads", "must be at least 1", static_cast<int64_t>(loader_threads));
  require_option(loader_threads <= most, "loader_threads", "must be " + bound, static_cast<int64_t>(loader_threads));
  require_option(dist_timeout_s >= 1, "dist_timeout_s", "must be at least 1 second", static_cast<int64_t>(dist_timeout_s));
}

}  // namespace unet
