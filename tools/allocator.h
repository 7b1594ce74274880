// The process's memory allocator: which one runs (jemalloc in builds that link it, else the C
// library's malloc), and the process's peak memory, for the benchmark's record.
#pragma once

#include <cstdint>
#include <string>

namespace unet::cli {

/// "jemalloc 5.3.0-0-g54eaed1..." where the build links jemalloc and it serves this process's
/// allocations, else "system malloc".
std::string memory_allocator();

/// The most resident memory this process has held so far (Linux: getrusage's maximum resident
/// set), bytes.
int64_t peak_host_memory_bytes();

}  // namespace unet::cli
