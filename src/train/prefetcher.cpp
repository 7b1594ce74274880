// The batch uploader on LibTorch's CUDA streams and events; in builds without CUDA, batches stay where they are.
#include "unet/train/prefetcher.h"

#include <optional>

#ifdef UNET_TORCH_HAS_CUDA
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace unet {

#ifdef UNET_TORCH_HAS_CUDA

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

#else  // no CUDA in this build

struct DevicePrefetcher::Impl {
  std::function<Batch()> source;
  std::optional<Batch> pending;
};

DevicePrefetcher::DevicePrefetcher(std::function<Batch()> source, c10::Device, bool) : impl_(std::make_unique<Impl>()) {
  impl_->source = std::move(source);
}
DevicePrefetcher::~DevicePrefetcher() = default;

Batch DevicePrefetcher::next() {
  prefetch();
  Batch out = std::move(*impl_->pending);
  impl_->pending.reset();
  return out;
}

void DevicePrefetcher::prefetch() {
  if (!impl_->pending) impl_->pending = impl_->source();
}

#endif

}  // namespace unet
