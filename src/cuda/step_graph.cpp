// CUDA graph capture and replay, and the copy-stream batch uploader (built only with CUDA).
#include "unet/step_graph.h"

#include "unet/error.h"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <optional>

namespace unet {

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

struct DevicePrefetcher::Impl {
  std::function<Batch()> source;
  c10::Device device{c10::kCPU};
  bool channels_last = true;
  std::optional<c10::cuda::CUDAStream> copy_stream;
  at::cuda::CUDAEvent ready;
  std::optional<Batch> pending;

  Batch upload(Batch host) {
    if (!device.is_cuda()) return host;
    c10::cuda::CUDAGuard device_guard(device);
    c10::cuda::CUDAStreamGuard stream_guard(*copy_stream);
    Batch out = host;
    // Non-blocking copies from pinned memory return at once; the host allocator keeps the
    // pinned block alive until the copy stream has read it.
    out.images = host.images.to(device, /*non_blocking=*/true);
    if (channels_last) out.images = out.images.contiguous(at::MemoryFormat::ChannelsLast);
    out.labels = host.labels.to(device, /*non_blocking=*/true);
    if (host.weights.defined()) out.weights = host.weights.to(device, /*non_blocking=*/true);
    ready.record(*copy_stream);
    return out;
  }
};

DevicePrefetcher::DevicePrefetcher(std::function<Batch()> source, c10::Device device, bool channels_last)
    : impl_(std::make_unique<Impl>()) {
  impl_->source = std::move(source);
  impl_->device = device;
  impl_->channels_last = channels_last;
  if (device.is_cuda()) impl_->copy_stream = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device.index());
}

DevicePrefetcher::~DevicePrefetcher() = default;

Batch DevicePrefetcher::next() {
  prefetch();
  Batch out = std::move(*impl_->pending);
  impl_->pending.reset();
  if (impl_->device.is_cuda()) {
    const c10::cuda::CUDAStream current = c10::cuda::getCurrentCUDAStream(impl_->device.index());
    impl_->ready.block(current);
    // The tensors were allocated on the copy stream; tell the allocator that the compute stream
    // uses them too, so their memory is not handed out again while a step still reads it.
    out.images.record_stream(current);
    out.labels.record_stream(current);
    if (out.weights.defined()) out.weights.record_stream(current);
  }
  return out;
}

void DevicePrefetcher::prefetch() {
  if (!impl_->pending) impl_->pending = impl_->upload(impl_->source());
}

}  // namespace unet
