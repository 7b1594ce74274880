// CUDA graphs: capture a step (training or inference) once and replay it.
#pragma once

#include <c10/core/Device.h>

#include <functional>
#include <memory>

namespace unet {

/// Whether this build of unet can capture CUDA graphs (LibTorch with CUDA).
bool cuda_graphs_built();

/// One captured CUDA graph. `capture` records everything `body` launches on the device (on a
/// side stream, into a private memory pool) without running it; `replay` runs the recording on
/// the current stream. Tensors that `body` reads or writes must keep their storage while the
/// graph lives (static buffers); random numbers (dropout) are drawn afresh at every replay.
/// In builds without CUDA the constructor throws `unet::Error`.
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

}  // namespace unet
