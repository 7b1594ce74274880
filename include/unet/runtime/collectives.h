// The collectives a data-parallel run needs, declared where the run context lives. The runtime part
// names what it needs and the dist part implements it (`Distributed`, over LibTorch's c10d), so
// that runtime depends on no type of a part above it (dependency inversion): training, prediction
// and tests reach the process group through this interface only.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <string>
#include <vector>

namespace unet {

/// The process group of a data-parallel job, as the run context holds it (`RunContext::dist`).
/// Every call is collective: each rank of the job makes it, in the same order.
class Collectives {
 public:
  virtual ~Collectives() = default;

  virtual int rank() const = 0;
  virtual int world_size() const = 0;

  /// Overwrites `tensors` on every rank with `root`'s.
  virtual void broadcast(std::vector<at::Tensor>& tensors, int root = 0) = 0;
  /// In-place sum over ranks, blocking.
  virtual void all_reduce_sum(at::Tensor& tensor) = 0;
  /// Starts an in-place sum over ranks and returns a function that waits for it.
  virtual std::function<void()> all_reduce_sum_async(at::Tensor& tensor) = 0;
  /// Throws `unet::Error` on every rank unless all ranks pass the same `fingerprint`.
  virtual void require_same(const std::string& what, const std::string& fingerprint) = 0;
  virtual void barrier() = 0;
};

}  // namespace unet
