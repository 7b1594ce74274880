// Range checks of the runtime options (the context itself is built in unet/dist/context.h).
#include "unet/runtime/context.h"

namespace unet {

void RuntimeOptions::validate() const {
  require_option(threads >= 0, "threads", "must not be negative", static_cast<int64_t>(threads));
  require_option(loader_threads >= 1, "loader_threads", "must be at least 1", static_cast<int64_t>(loader_threads));
  require_option(dist_timeout_s >= 1, "dist_timeout_s", "must be at least 1 second", static_cast<int64_t>(dist_timeout_s));
}

}  // namespace unet
