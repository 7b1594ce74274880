// StepGraph and DevicePrefetcher for builds without CUDA: no graphs, batches stay where they are.
#include "unet/step_graph.h"

#include "unet/error.h"

#include <optional>

namespace unet {

bool cuda_graphs_built() { return false; }

struct StepGraph::Impl {};

StepGraph::StepGraph(c10::Device, const StepGraph*) { throw Error("this build of unet has no CUDA support: CUDA graphs are unavailable"); }
StepGraph::~StepGraph() = default;
void StepGraph::warmup(const std::function<void()>& body) { body(); }
void StepGraph::capture(const std::function<void()>&) {}
void StepGraph::replay() {}

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

}  // namespace unet
