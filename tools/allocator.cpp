// jemalloc, configured to keep freed memory for reuse, in builds that link it (UNET_JEMALLOC).
//
// Why: a U-Net step on a CPU allocates and frees activations of tens to hundreds of megabytes.
// glibc's malloc serves every block above 32 MiB with its own mmap and returns it on free, so each
// step faults every page of its activations in again and the kernel zeroes them: at 572x572,
// batch 2, about 1.3 million page faults and 1.4 s of a 12 s training step (fp32, 2-core Xeon,
// 2026-11-28). jemalloc keeps freed extents and hands them out again; with decay off they are
// never returned to the system, so a process holds its peak memory, as GPU caching allocators do.
// These are the settings of PyTorch's CPU launcher (`torch.backends.xeon.run_cpu`) less its
// background thread. MALLOC_CONF in the environment still overrides them.
#include "allocator.h"

#include <dlfcn.h>
#include <sys/resource.h>

#include <cstddef>
#include <cstring>

// The configuration itself lives in the program that links jemalloc (tools/jemalloc_conf.cpp): a
// library that embeds the commands (the Python module) must not bring jemalloc into its host.
namespace unet::cli {

std::string memory_allocator() {
  // Linked is not enough: the process's malloc must be jemalloc's (not, e.g., a preloaded one).
  Dl_info where{};
  void* used = dlsym(RTLD_DEFAULT, "malloc");
  const bool serving = used != nullptr && dladdr(used, &where) != 0 && where.dli_fname != nullptr &&
                       std::strstr(where.dli_fname, "jemalloc") != nullptr;
  using Mallctl = int (*)(const char*, void*, size_t*, void*, size_t);
  const auto mallctl = reinterpret_cast<Mallctl>(dlsym(RTLD_DEFAULT, "mallctl"));
  const char* version = nullptr;
  size_t size = sizeof(version);
  if (serving && mallctl && mallctl("version", static_cast<void*>(&version), &size, nullptr, 0) == 0 && version)
    return std::string("jemalloc ") + version;
  return "system malloc";
}

int64_t peak_host_memory_bytes() {
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) != 0) return 0;
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;  // kilobytes on Linux
}

}  // namespace unet::cli
