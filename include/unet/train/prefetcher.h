// The batch uploader: the next batch copied to the GPU on a side stream while the current step runs.
#pragma once

#include "unet/data/loader.h"

#include <c10/core/Device.h>

#include <functional>
#include <memory>

namespace unet {

/// Hands out loader batches already on `device` (channels-last images when asked). On CUDA the
/// upload of the next batch runs on a copy stream from pinned memory while the current step
/// computes: call `next()` before a step and `prefetch()` right after launching it. On a CPU it
/// returns the loader's batches as they are.
class DevicePrefetcher {
 public:
  DevicePrefetcher(std::function<Batch()> source, c10::Device device, bool channels_last);
  ~DevicePrefetcher();
  DevicePrefetcher(const DevicePrefetcher&) = delete;
  DevicePrefetcher& operator=(const DevicePrefetcher&) = delete;

  /// The next batch, ready for use on the current stream.
  Batch next();
  /// Starts the upload of the batch after (no-op on a CPU or when one is already under way).
  void prefetch();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace unet
