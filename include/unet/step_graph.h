// CUDA graphs: capture a step (training or inference) once and replay it, and the batch uploader.
#pragma once

#include "unet/loader.h"

#include <c10/core/Device.h>

#include <functional>
#include <memory>
#include <string>

namespace unet {

/// Whether this build of unet can capture CUDA graphs (LibTorch with CUDA).
bool cuda_graphs_built();

/// One captured CUDA graph. `capture` records everything `body` launches on the device (on a
/// side stream, into a private memory pool) without running it; `replay` runs the recording on
/// the current stream. Tensors that `body` reads or writes must keep their storage while the
/// graph lives (static buffers); random numbers (dropout) are drawn afresh at every replay.
class StepGraph {
 public:
  /// `share_memory_with`: capture into that graph's memory pool instead of a new one. Safe when
  /// the graphs never run concurrently and each one's outputs are consumed before another
  /// replays (a predictor's graphs for its batch shapes).
  explicit StepGraph(c10::Device device, const StepGraph* share_memory_with = nullptr);
  ~StepGraph();
  StepGraph(const StepGraph&) = delete;
  StepGraph& operator=(const StepGraph&) = delete;

  /// Runs `body` eagerly on the stream that the capture will use (ordered after the work queued
  /// so far): warm-up runs, so that lazy initialisation (cuDNN autotuning, cuBLAS workspaces)
  /// happens before and outside the capture.
  void warmup(const std::function<void()>& body);
  /// Captures one run of `body`; throws `unet::Error` (with CUDA's reason) when the capture fails.
  /// Other threads (data loaders pinning memory) may keep calling CUDA meanwhile.
  void capture(const std::function<void()>& body);
  void replay();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

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
