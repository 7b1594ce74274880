// jemalloc's configuration for the `unet` program (UNET_JEMALLOC; see tools/allocator.cpp for why):
// freed memory is kept for reuse. These are the settings of PyTorch's CPU launcher
// (`torch.backends.xeon.run_cpu`) less its background thread; MALLOC_CONF still overrides them.

// Read by jemalloc when it starts (its documented `malloc_conf` hook).
extern "C" {
// NOLINTNEXTLINE(cppcoreguidelines-avoid-non-const-global-variables)
const char* malloc_conf = "oversize_threshold:1,dirty_decay_ms:-1,muzzy_decay_ms:-1,metadata_thp:auto";
}
