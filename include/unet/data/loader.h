// The background batch loader: worker threads, a bounded prefetch queue, deterministic batches.
#pragma once

#include "unet/data/augment.h"
#include "unet/data/dataset.h"
#include "unet/data/preprocess.h"
#include "unet/model/geometry.h"
#include "unet/runtime/context.h"

#include <ATen/core/Tensor.h>

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace unet {

/// A training batch: `images` float32 [B, C, input, input], `labels` int64 [B, output, output].
struct Batch {
  at::Tensor images;
  at::Tensor labels;
  /// float [N, output, output] when the samples carry weight maps, else undefined.
  at::Tensor weights;
  int64_t step = 0;
};

/// The reference's batch: 8 images per training step and process, and per forward pass in prediction.
inline constexpr int64_t kDefaultBatchSize = 8;

/// What the batch loader does; `TrainOptions::loader_options` fills it from a training run's options.
struct LoaderOptions {
  /// Images per batch and process (rank).
  int64_t batch_size = kDefaultBatchSize;
  uint64_t seed = kDefaultSeed;
  /// How each sample is augmented (none: it is only preprocessed).
  std::optional<AugmentOptions> augment;
  /// What the model's classes stand for: direction classes (`ClassScheme::kDirections`) turn with
  /// the image, so they are derived anew from each augmented tile's instance labels
  /// (`Sample::instances`, moved by nearest neighbour) instead of moved with the mask.
  ClassScheme scheme = ClassScheme::kPlain;
  /// Worker threads and batches prepared ahead of the consumer.
  int threads = kDefaultLoaderThreads;
  int prefetch = 4;
  /// Place batches in page-locked memory so that host-to-GPU copies can be asynchronous.
  bool pin_memory = false;
  /// First step to produce (a resumed run starts where it stopped).
  int64_t start_step = 0;
  /// This process's shard of every global batch of batch_size * world_size samples.
  int rank = 0;
  int world_size = 1;
};

/// The dataset positions of the samples in `step`'s batch for `rank`: the global batch is the
/// next batch_size * world_size entries of an endless sequence of seeded per-epoch permutations,
/// and rank r takes its r-th slice. A pure function of its arguments, so that a resumed run (or
/// another world size) sees exactly the same samples.
std::vector<int64_t> batch_indices(int64_t dataset_size, int64_t batch_size, uint64_t seed, int64_t step,
                                   int rank = 0, int world_size = 1);

/// Builds `step`'s batch synchronously (the workers call this): each sample is augmented with an
/// RNG seeded by (seed, step, slot), then preprocessed to the network geometry.
Batch make_batch(const std::vector<Sample>& samples, const Geometry& geometry, int64_t classes,
                 const LoaderOptions& options, int64_t step);

/// Preprocesses samples without augmentation: inputs [N, C, input, input] (labels when present).
Batch make_eval_batch(const std::vector<Sample>& samples, const Geometry& geometry, int64_t classes);

/// Produces batches for steps start_step, start_step + 1, ... in order, built ahead of time by
/// worker threads (at most `prefetch` batches wait in memory).
class BatchLoader {
 public:
  BatchLoader(std::shared_ptr<const std::vector<Sample>> samples, Geometry geometry, int64_t classes,
              LoaderOptions options);
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  /// The next batch in step order; blocks until a worker has it ready. Rethrows a worker's error.
  Batch next();

 private:
  void work();

  std::shared_ptr<const std::vector<Sample>> samples_;
  Geometry geometry_;
  int64_t classes_;
  LoaderOptions options_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::condition_variable space_;
  std::map<int64_t, Batch> done_;
  int64_t next_to_build_;
  int64_t next_to_return_;
  bool stop_ = false;
  std::exception_ptr error_;
  std::vector<std::thread> workers_;
};

}  // namespace unet
