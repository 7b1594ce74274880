// The data a command trains or evaluates on: a data directory or the synthetic set, and a fold of it.
#include "unet/data/source.h"

namespace unet {

void DataOptions::validate() const {
  require_option(fold >= -1 && fold < fold_count(), "fold", "must be between 0 and " + std::to_string(fold_count() - 1) +
                                                                 " or none", static_cast<int64_t>(fold));
  require_option(synthetic.size >= 16, "synthetic.size", "must be at least 16", synthetic.size);
  require_option(synthetic.train_count >= 1, "synthetic.train_count", "must be at least 1", synthetic.train_count);
}

DataSet load_data(const DataOptions& options, int64_t classes) {
  options.validate();
  if (!options.dir.empty()) return load_dataset(options.dir, classes, options.mask_encoding);
  SyntheticOptions synthetic = options.synthetic;
  synthetic.seed = options.seed;
  return synthetic_dataset(synthetic);
}

FoldData fold_data(const DataSet& data, const DataOptions& options) {
  const FoldSplit split = fold_split(static_cast<int64_t>(data.train.size()), options.fold, options.seed);
  return {select(data.train, split.train), select(data.train, split.eval)};
}

}  // namespace unet
