// Data-parallel training on LibTorch's c10d: launcher environments, process group, gradient buckets.
#pragma once

#include "unet/runtime/collectives.h"
#include "unet/runtime/context.h"

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace unet {

using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;

/// Reads torchrun's (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), SLURM's
/// (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID; master from MASTER_ADDR or the first host of
/// SLURM_STEP_NODELIST / SLURM_JOB_NODELIST) or Open MPI's (OMPI_COMM_WORLD_RANK, _SIZE,
/// _LOCAL_RANK; master from MASTER_ADDR, or 127.0.0.1 when every rank is local) variables, in
/// that order of precedence. None of them: world size 1. Throws `unet::Error` on inconsistent values.
DistEnv detect_environment(const EnvLookup& lookup);
DistEnv detect_environment();

/// The first host name of a SLURM node list: "gpu[07-09,12],cpu1" -> "gpu07".
std::string first_slurm_host(const std::string& nodelist);

/// The command's run context: validates `options`, applies the CPU threads and the determinism
/// switches, reads the launcher's environment (rank, world size, local rank), and picks the
/// device (unset: the first visible GPU, else the CPU; a launched job's CUDA rank gets the GPU of
/// its local rank). Throws `OptionError` / `unet::Error` for a device that is not there.
RunContext make_run_context(const RuntimeOptions& options, const DistEnv& env = detect_environment());

/// Joins the process group when a launcher (unet launch, torchrun, srun, mpirun) started this
/// process (at any world size, 1 included); nothing otherwise. Call it once every local check
/// has passed: it waits for the other ranks (at most `timeout_s` seconds).
void connect(RunContext& context, int timeout_s);

/// A connected process group (Gloo for CPU tensors, NCCL for CUDA tensors where built with it).
class Distributed final : public Collectives {
 public:
  /// Rendezvous through a TCP store at master_addr:master_port (rank 0 serves it). Collectives
  /// that wait longer than `timeout` for another rank fail with an error instead of hanging.
  Distributed(const DistEnv& env, c10::Device device, std::chrono::milliseconds timeout);
  ~Distributed() override;
  Distributed(const Distributed&) = delete;
  Distributed& operator=(const Distributed&) = delete;

  int rank() const override { return env_.rank; }
  int world_size() const override { return env_.world_size; }
  const DistEnv& env() const { return env_; }

  void broadcast(std::vector<at::Tensor>& tensors, int root) override;
  void all_reduce_sum(at::Tensor& tensor) override;
  std::function<void()> all_reduce_sum_async(at::Tensor& tensor) override;
  void require_same(const std::string& what, const std::string& fingerprint) override;
  void barrier() override;

 private:
  struct Impl;
  DistEnv env_;
  std::unique_ptr<Impl> impl_;
};

/// Averages gradients over ranks with bucketed all-reduces that start during the backward pass,
/// as soon as every gradient of a bucket is ready, so that communication overlaps computation.
class GradientReducer {
 public:
  /// `parameters` in forward order; buckets are filled in reverse (the order backward produces
  /// gradients), each up to `bucket_bytes`.
  GradientReducer(Collectives& dist, std::vector<at::Tensor> parameters, size_t bucket_bytes = 25u << 20);
  /// After backward: waits for the reductions and writes the averaged gradients into `.grad()`.
  void finish();
  size_t bucket_count() const { return buckets_.size(); }

 private:
  struct Bucket {
    std::vector<size_t> members;  // indices into parameters_
    std::vector<int64_t> offsets;
    at::Tensor flat;
    size_t pending = 0;
    std::function<void()> wait;
  };
  void on_gradient(size_t parameter, const at::Tensor& grad);
  void launch_ready();

  Collectives& dist_;
  std::vector<at::Tensor> parameters_;
  std::vector<Bucket> buckets_;
  std::vector<std::pair<size_t, size_t>> location_;  // parameter -> (bucket, member)
  size_t next_launch_ = 0;
};

}  // namespace unet
