// CUDA graph capture and replay on LibTorch's CUDA API; a stub that says so in builds without CUDA.
#include "unet/runtime/graph.h"

#include "unet/runtime/error.h"

#ifdef UNET_TORCH_HAS_CUDA

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <optional>
#endif

namespace unet {

#ifdef UNET_TORCH_HAS_CUDA

bool cuda_graphs_built() { return true; }

namespace {
c10::cuda::CUDAStream side_stream(const c10::Device& device) {
  if (!device.is_cuda()) throw Error("CUDA graphs need a CUDA device, not " + device.str());
  return c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device.index());
}
}  // namespace

struct StepGraph::Impl {
  Impl(c10::Device d, std::optional<at::cuda::MempoolId_t> p) : device(d), side(side_stream(d)), pool(p) {}

  c10::Device device;
  // Capture cannot use the legacy default stream; warm-up and capture share one side stream.
  c10::cuda::CUDAStream side;
  at::cuda::CUDAGraph graph;
  std::optional<at::cuda::MempoolId_t> pool;  // another graph's pool to share
  bool captured = false;

  /// Runs `body` on the side stream, ordered after and before the current stream's work.
  void on_side_stream(const std::function<void()>& body) {
    c10::cuda::CUDAGuard device_guard(device);
    const c10::cuda::CUDAStream current = c10::cuda::getCurrentCUDAStream(device.index());
    at::cuda::CUDAEvent before, after;
    before.record(current);
    before.block(side);
    {
      c10::cuda::CUDAStreamGuard stream_guard(side);
      body();
    }
    after.record(side);
    after.block(current);
  }
};

StepGraph::StepGraph(c10::Device device, const StepGraph* share_memory_with)
    : impl_(std::make_unique<Impl>(device, share_memory_with && share_memory_with->impl_->captured
                                               ? std::optional(share_memory_with->impl_->graph.pool())
                                               : std::nullopt)) {}

StepGraph::~StepGraph() = default;

void StepGraph::warmup(const std::function<void()>& body) { impl_->on_side_stream(body); }

void StepGraph::capture(const std::function<void()>& body) {
  if (impl_->captured) throw Error("StepGraph::capture called twice");
  try {
    impl_->on_side_stream([&] {
      // Thread-local mode: loader threads may allocate pinned memory while the capture runs,
      // which the global mode would count as an error in the capture.
      impl_->graph.capture_begin(/*pool=*/impl_->pool.value_or(at::cuda::MempoolId_t{0, 0}), cudaStreamCaptureModeThreadLocal);
      try {
        body();
      } catch (...) {
        try {
          impl_->graph.capture_end();
        } catch (...) {
        }
        throw;
      }
      impl_->graph.capture_end();
    });
  } catch (const c10::Error& e) {
    impl_->graph.reset();
    throw Error(std::string("CUDA graph capture failed: ") + e.what_without_backtrace());
  } catch (const std::exception& e) {
    impl_->graph.reset();
    throw Error(std::string("CUDA graph capture failed: ") + e.what());
  }
  impl_->captured = true;
}

void StepGraph::replay() {
  if (!impl_->captured) throw Error("StepGraph::replay before a successful capture");
  c10::cuda::CUDAGuard device_guard(impl_->device);
  impl_->graph.replay();
}

#else  // no CUDA in this build

bool cuda_graphs_built() { return false; }

struct StepGraph::Impl {};

StepGraph::StepGraph(c10::Device, const StepGraph*) {
  throw Error("this build of unet has no CUDA support: CUDA graphs are unavailable");
}
StepGraph::~StepGraph() = default;
void StepGraph::warmup(const std::function<void()>& body) { body(); }
void StepGraph::capture(const std::function<void()>&) {}
void StepGraph::replay() {}

#endif

}  // namespace unet
