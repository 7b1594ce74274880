// Deterministic batch construction and the multi-threaded prefetching loader.
#include "unet/data/loader.h"

#include "unet/data/components.h"
#include "unet/data/instance_targets.h"
#include "unet/data/tiles.h"
#include "unet/runtime/error.h"

#include <ATen/ATen.h>

#include <numeric>

namespace unet {
namespace {

uint64_t mix(uint64_t a, uint64_t b) {
  // splitmix64 finaliser over a combination: decorrelates nearby (seed, step, slot) triples.
  uint64_t z = a * 0x9E3779B97F4A7C15ULL + b + 0x632BE59BD9B4E019ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(mix(seed, static_cast<uint64_t>(epoch)));
  for (int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(rng() % static_cast<uint64_t>(i + 1));
    std::swap(order[i], order[j]);
  }
  return order;
}

}  // namespace

std::vector<int64_t> batch_indices(int64_t dataset_size, int64_t batch_size, uint64_t seed, int64_t step, int rank,
                                   int world_size) {
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(batch_size));
  const int64_t first = (step * world_size + rank) * batch_size;
  int64_t cached_epoch = -1;
  std::vector<int64_t> order;
  for (int64_t k = first; k < first + batch_size; ++k) {
    const int64_t epoch = k / dataset_size;
    if (epoch != cached_epoch) {
      order = epoch_permutation(dataset_size, seed, epoch);
      cached_epoch = epoch;
    }
    out.push_back(order[static_cast<size_t>(k % dataset_size)]);
  }
  return out;
}

namespace {

/// Direction classes of a training window's instance labels, each 8-connected region an object.
at::Tensor window_directions(const at::Tensor& labels) {
  return direction_classes(connected_regions(labels, /*diagonal=*/true));
}

}  // namespace

Batch make_batch(const std::vector<Sample>& samples, const Geometry& geometry, int64_t classes,
                 const LoaderOptions& options, int64_t step) {
  const auto indices = batch_indices(static_cast<int64_t>(samples.size()), options.batch_size, options.seed, step,
                                     options.rank, options.world_size);
  std::vector<at::Tensor> images, labels, weights;
  // Direction classes are derived from the instance labels after the geometry, from the tile's
  // whole input window (objects whole as far as the network sees them), each 8-connected region
  // an object: a mirrored copy of an object that touches the image's edge joins it (prediction's
  // tiles mirror it alike), a copy of one that does not is an object of its own.
  const bool directions = options.scheme == ClassScheme::kDirections;
  const int64_t mask_classes = directions ? kInstanceLabels : classes;
  for (size_t slot = 0; slot < indices.size(); ++slot) {
    const Sample& s = samples[static_cast<size_t>(indices[slot])];
    if (directions && !s.instances.defined()) throw Error("direction classes need instance labels; a training sample has none");
    at::Tensor image = s.image, mask = directions ? s.instances : s.mask, w = s.weights;
    std::mt19937_64 rng(mix(mix(options.seed ^ 0xA5A5A5A5ULL, static_cast<uint64_t>(step)),
                            static_cast<uint64_t>(options.rank) * 1024 + slot));
    if (options.augment && !geometry.tile) augment_sample(image, mask, mask_classes, *options.augment, rng, &w, &s.intensity);
    if (geometry.tile) {
      // Augmented tiles warp only the region each tile reads (`augment_tile`).
      at::Tensor w_window, whole;
      auto [tile, window] = options.augment
                                ? augment_tile(image, mask, mask_classes, *options.augment, geometry.input, geometry.output,
                                               rng, w, &w_window, &s.intensity, directions ? &whole : nullptr)
                                : random_tile(image, mask, geometry.input, geometry.output, rng, w, &w_window,
                                              directions ? &whole : nullptr);
      images.push_back(tile);
      if (directions) {
        const int64_t margin = geometry.margin();
        window = window_directions(whole).slice(0, margin, margin + geometry.output).slice(1, margin, margin + geometry.output).contiguous();
      }
      labels.push_back(window);
      if (w.defined()) weights.push_back(w_window);
    } else {
      images.push_back(image_to_input(image, geometry));
      labels.push_back(mask_to_output(directions ? window_directions(mask) : mask, geometry, classes));
      if (w.defined())
        weights.push_back(w.size(0) == geometry.output && w.size(1) == geometry.output
                              ? w
                              : resize_maps(w.unsqueeze(0), geometry.output, geometry.output)[0]);
    }
  }
  Batch batch;
  batch.step = step;
  batch.images = at::stack(images);
  batch.labels = at::stack(labels);
  if (!weights.empty()) {
    if (weights.size() != labels.size()) throw Error("some training samples have weight maps and others not");
    batch.weights = at::stack(weights);
  }
  if (options.pin_memory) {
    batch.images = batch.images.pin_memory();
    batch.labels = batch.labels.pin_memory();
    if (batch.weights.defined()) batch.weights = batch.weights.pin_memory();
  }
  return batch;
}

Batch make_eval_batch(const std::vector<Sample>& samples, const Geometry& geometry, int64_t classes) {
  std::vector<at::Tensor> images, labels;
  for (const auto& s : samples) {
    images.push_back(image_to_input(s.image, geometry));
    if (s.mask.defined()) labels.push_back(mask_to_output(s.mask, geometry, classes));
  }
  Batch batch;
  batch.images = at::stack(images);
  if (labels.size() == samples.size() && !labels.empty()) batch.labels = at::stack(labels);
  return batch;
}

BatchLoader::BatchLoader(std::shared_ptr<const std::vector<Sample>> samples, Geometry geometry, int64_t classes,
                         LoaderOptions options)
    : samples_(std::move(samples)),
      geometry_(geometry),
      classes_(classes),
      options_(options),
      next_to_build_(options.start_step),
      next_to_return_(options.start_step) {
  if (!samples_ || samples_->empty()) throw Error("the training set is empty");
  require_option(options_.batch_size >= 1, "batch_size", "must be at least 1", options_.batch_size);
  const int threads = std::max(1, options_.threads);
  options_.prefetch = std::max(options_.prefetch, threads);
  for (int i = 0; i < threads; ++i) workers_.emplace_back([this] { work(); });
}

BatchLoader::~BatchLoader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  space_.notify_all();
  ready_.notify_all();
  for (auto& t : workers_) t.join();
}

void BatchLoader::work() {
  for (;;) {
    int64_t step;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      space_.wait(lock, [&] { return stop_ || next_to_build_ < next_to_return_ + options_.prefetch; });
      if (stop_) return;
      step = next_to_build_++;
    }
    try {
      Batch batch = make_batch(*samples_, geometry_, classes_, options_, step);
      std::lock_guard<std::mutex> lock(mutex_);
      done_.emplace(step, std::move(batch));
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
    }
    ready_.notify_all();
  }
}

Batch BatchLoader::next() {
  std::unique_lock<std::mutex> lock(mutex_);
  ready_.wait(lock, [&] { return error_ || done_.count(next_to_return_) > 0; });
  if (error_) std::rethrow_exception(error_);
  auto node = done_.extract(next_to_return_);
  ++next_to_return_;
  lock.unlock();
  space_.notify_all();
  return std::move(node.mapped());
}

}  // namespace unet
