// The c10d process group behind `Distributed`: TCP-store rendezvous, Gloo on CPU, NCCL on CUDA.
#include "unet/dist/dist.h"
#include "unet/runtime/error.h"

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef UNET_HAS_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <cstdlib>

namespace unet {
namespace {

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

/// Runs a collective, turning c10d's multi-line errors into one line that says what happened.
template <typename F>
auto guarded(const DistEnv& env, const std::string& what, F&& f) {
  auto fail = [&](const std::string& cause) {
    return Error("rank " + std::to_string(env.rank) + ": " + what + " failed: another rank stopped or stopped answering (" +
                 first_line(cause) + ")");
  };
  try {
    return f();
  } catch (const Error&) {
    throw;
  } catch (const c10::Error& e) {
    throw fail(e.what_without_backtrace());
  } catch (const std::exception& e) {  // Gloo's own I/O and timeout exceptions
    throw fail(e.what());
  }
}

uint64_t fnv1a(const std::string& text) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ULL;
  return h;
}

/// The TCP store at MASTER_ADDR:MASTER_PORT (rank 0 serves it), with the two set-up mistakes that
/// users make named as such rather than as a lost rank.
c10::intrusive_ptr<c10d::Store> rendezvous(const DistEnv& env, std::chrono::milliseconds timeout) {
  const std::string where = env.master_addr + ":" + std::to_string(env.master_port);
  c10d::TCPStoreOptions options;
  options.port = static_cast<uint16_t>(env.master_port);
  options.isServer = env.rank == 0;
  options.numWorkers = env.world_size;
  options.waitWorkers = true;
  options.timeout = timeout;
  try {
    return c10::make_intrusive<c10d::TCPStore>(env.master_addr, options);
  } catch (const std::exception& e) {
    const std::string cause = first_line(e.what());
    if (cause.find("EADDRINUSE") != std::string::npos || cause.find("address already in use") != std::string::npos)
      throw Error("rank 0: cannot serve the rendezvous on port " + std::to_string(env.master_port) +
                  ": another program uses it (choose another MASTER_PORT)");
    if (cause.find("timed out") != std::string::npos || cause.find("cannot be retrieved") != std::string::npos ||
        cause.find("Name or service") != std::string::npos)
      throw Error("rank " + std::to_string(env.rank) + ": cannot reach the rendezvous at " + where +
                  " within " + std::to_string(timeout.count() / 1000) + " s (check MASTER_ADDR and MASTER_PORT, and that rank 0 runs)");
    throw Error("rank " + std::to_string(env.rank) + ": rendezvous at " + where + " failed (" + cause + ")");
  }
}

}  // namespace

struct Distributed::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
  c10::Device device{c10::kCPU};
};

Distributed::Distributed(const DistEnv& env, c10::Device device, std::chrono::milliseconds timeout)
    : env_(env), impl_(std::make_unique<Impl>()) {
  impl_->device = device;
  impl_->store = rendezvous(env_, timeout);
  guarded(env_, "process group set-up", [&] {
    if (device.is_cuda()) {
#ifdef UNET_HAS_NCCL
      auto nccl = c10d::ProcessGroupNCCL::Options::create();
      nccl->timeout = timeout;
      impl_->backend = c10::make_intrusive<c10d::ProcessGroupNCCL>(impl_->store, env_.rank, env_.world_size, nccl);
#else
      throw OptionError("device", ": this build has no NCCL support; train on {device} cpu or rebuild with NCCL headers");
#endif
    } else {
      auto gloo = c10d::ProcessGroupGloo::Options::create(timeout);
      const char* interface = std::getenv("GLOO_SOCKET_IFNAME");
      const bool loopback = env_.master_addr == "localhost" || env_.master_addr.rfind("127.", 0) == 0;
      gloo->devices.push_back(interface && *interface ? c10d::ProcessGroupGloo::createDeviceForInterface(interface)
                              : loopback              ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                                      : c10d::ProcessGroupGloo::createDefaultDevice());
      impl_->backend = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, env_.rank, env_.world_size, gloo);
    }
    return 0;
  });
}

Distributed::~Distributed() = default;

void Distributed::broadcast(std::vector<at::Tensor>& tensors, int root) {
  guarded(env_, "broadcast", [&] {
    for (auto& t : tensors) {
      // Collectives need dense tensors; channels-last weights are broadcast through a copy.
      at::Tensor dense = t.is_contiguous() ? t : t.contiguous();
      std::vector<at::Tensor> one{dense};
      c10d::BroadcastOptions options;
      options.rootRank = root;
      impl_->backend->broadcast(one, options)->wait();
      if (!dense.is_same(t)) t.copy_(dense);
    }
    return 0;
  });
}

void Distributed::all_reduce_sum(at::Tensor& tensor) { all_reduce_sum_async(tensor)(); }

std::function<void()> Distributed::all_reduce_sum_async(at::Tensor& tensor) {
  return guarded(env_, "all-reduce", [&] {
    std::vector<at::Tensor> one{tensor};
    auto work = impl_->backend->allreduce(one);
    const DistEnv env = env_;
    return std::function<void()>([work, env] { guarded(env, "gradient all-reduce", [&] { return work->wait(); }); });
  });
}

void Distributed::require_same(const std::string& what, const std::string& fingerprint) {
  const auto options = at::TensorOptions(at::kLong).device(impl_->device);
  const auto mine = static_cast<int64_t>(fnv1a(fingerprint));
  std::vector<at::Tensor> root{at::full({1}, mine, options)};
  broadcast(root, 0);
  at::Tensor differs = at::full({1}, root[0].item<int64_t>() != mine ? 1 : 0, options);
  all_reduce_sum(differs);
  const int64_t n = differs.item<int64_t>();
  if (n > 0)
    throw Error("rank " + std::to_string(env_.rank) + ": " + std::to_string(n) + " rank(s) start with a different " + what +
                " than rank 0; every rank must run the same command on the same data");
}

void Distributed::barrier() {
  guarded(env_, "barrier", [&] { return impl_->backend->barrier()->wait(); });
}

GradientReducer::GradientReducer(Collectives& dist, std::vector<at::Tensor> parameters, size_t bucket_bytes)
    : dist_(dist), parameters_(std::move(parameters)), location_(parameters_.size()) {
  // Reverse order: backward produces the last layers' gradients first.
  Bucket current;
  size_t bytes = 0;
  auto close = [&] {
    if (current.members.empty()) return;
    int64_t total = 0;
    for (size_t m : current.members) {
      current.offsets.push_back(total);
      total += parameters_[m].numel();
    }
    current.flat = at::zeros({total}, parameters_[current.members.front()].options());
    buckets_.push_back(std::move(current));
    current = Bucket{};
    bytes = 0;
  };
  for (size_t i = parameters_.size(); i-- > 0;) {
    current.members.push_back(i);
    bytes += static_cast<size_t>(parameters_[i].numel() * parameters_[i].element_size());
    if (bytes >= bucket_bytes) close();
  }
  close();
  for (size_t b = 0; b < buckets_.size(); ++b) {
    buckets_[b].pending = buckets_[b].members.size();
    for (size_t k = 0; k < buckets_[b].members.size(); ++k) location_[buckets_[b].members[k]] = {b, k};
  }
  for (size_t i = 0; i < parameters_.size(); ++i) {
    parameters_[i].register_hook([this, i](const at::Tensor& grad) { on_gradient(i, grad); });
  }
}

void GradientReducer::on_gradient(size_t parameter, const at::Tensor& grad) {
  const auto [b, k] = location_[parameter];
  Bucket& bucket = buckets_[b];
  bucket.flat.narrow(0, bucket.offsets[k], grad.numel()).copy_(grad.reshape({-1}));
  if (--bucket.pending == 0) launch_ready();
}

void GradientReducer::launch_ready() {
  // Collectives are matched across ranks by the order of the calls: start buckets strictly in
  // index order, whatever order their gradients arrive in.
  while (next_launch_ < buckets_.size() && buckets_[next_launch_].pending == 0) {
    Bucket& bucket = buckets_[next_launch_++];
    bucket.wait = dist_.all_reduce_sum_async(bucket.flat);
  }
}

void GradientReducer::finish() {
  const double scale = 1.0 / dist_.world_size();
  for (auto& bucket : buckets_) {
    if (bucket.pending > 0) {
      // A parameter without a gradient this step contributes zeros, so that every rank still
      // joins the same collectives in the same order.
      for (size_t k = 0; k < bucket.members.size(); ++k) {
        if (!parameters_[bucket.members[k]].grad().defined())
          bucket.flat.narrow(0, bucket.offsets[k], parameters_[bucket.members[k]].numel()).zero_();
      }
      bucket.pending = 0;
    }
  }
  launch_ready();
  next_launch_ = 0;
  for (auto& bucket : buckets_) {
    bucket.wait();
    bucket.wait = nullptr;
    bucket.pending = bucket.members.size();
    bucket.flat.mul_(scale);
    for (size_t k = 0; k < bucket.members.size(); ++k) {
      at::Tensor& p = parameters_[bucket.members[k]];
      const at::Tensor averaged = bucket.flat.narrow(0, bucket.offsets[k], p.numel()).view(p.sizes());
      if (p.grad().defined()) p.mutable_grad().copy_(averaged);
      else p.mutable_grad() = averaged.clone();
    }
  }
}

}  // namespace unet
