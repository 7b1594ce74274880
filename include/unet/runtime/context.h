// The run context: where and how one command runs (device, precision, threads, rank), built once.
#pragma once

#include "unet/runtime/precision.h"

#include <c10/core/Device.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace unet {

class Collectives;

/// The most threads, or processes on one machine, that a command may ask for: four per core of this
/// machine, at least 8 (more only oversubscribe the cores; 100000 threads took minutes to start).
int max_threads_per_machine();

/// The seed of every random draw when none is given (weights, data order, augmentation, fold split).
inline constexpr uint64_t kDefaultSeed = 0;
/// Worker threads of the training data loader when none are asked for.
inline constexpr int kDefaultLoaderThreads = 2;

/// How a command asks to run; `make_run_context` (unet/dist/dist.h) resolves it.
struct RuntimeOptions {
  /// The compute device; unset: the first CUDA GPU when one is visible, else the CPU.
  std::optional<c10::Device> device;
  Precision precision = Precision::kFP32;
  /// Intra-op CPU threads (0: every core).
  int threads = 0;
  /// Worker threads of the training data loader.
  int loader_threads = kDefaultLoaderThreads;
  /// Deterministic GPU algorithms (no cuDNN autotuning): same seed, same weights; slower.
  bool deterministic = false;
  /// Seconds a rank waits for the others before giving up (data-parallel runs).
  int dist_timeout_s = 300;
  /// Print only the final results.
  bool quiet = false;

  /// Throws `OptionError` for out-of-range values.
  void validate() const;
};

/// Where this process sits in a job, as its launcher describes it.
struct DistEnv {
  int rank = 0;
  int world_size = 1;
  /// Rank among the processes of this machine: selects the GPU.
  int local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  /// "torchrun" (also `unet launch`), "slurm", "mpi" or "none".
  std::string launcher = "none";
};

/// The one source of truth for a command's device, precision, threads and place in a job.
struct RunContext {
  c10::Device device{c10::kCPU};
  Precision precision = Precision::kFP32;
  /// Intra-op CPU threads in use, and the data loader's worker threads.
  int threads = 1;
  int loader_threads = kDefaultLoaderThreads;
  DistEnv env;
  /// No progress output (set on ranks other than 0).
  bool quiet = false;
  /// The process group of a data-parallel job once connected (null: one process); the dist part's
  /// `connect` sets it, users call it through `Collectives` (unet/runtime/collectives.h).
  std::shared_ptr<Collectives> dist;

  int rank() const { return env.rank; }
  int world_size() const { return env.world_size; }
  /// Rank 0 writes files and prints results.
  bool leader() const { return env.rank == 0; }
  /// Progress lines and notices are printed.
  bool verbose() const { return env.rank == 0 && !quiet; }
};

}  // namespace unet
