// The data a command trains or evaluates on: a data directory or the synthetic set, and a fold of it.
#include "unet/data/source.h"

namespace unet {

void DataOptions::validate() const {
  require_option(fold >= -1 && fold < fold_count(), "fold", "must be between 0 and " + std::to_string(fold_count() - 1) +
                                                                 " or none", static_cast<int64_t>(fold));
  require_option(synthetic.size >= 16, "synthetic.size", "must be at least 16", synthetic.size);
  require_option(synthetic.train_count >= 1, "synthetic.train_count", "must be at least 1", synthetic.train_count);
  require_option(boundary_width >= 1 && boundary_width <= 64, "boundary_width", "must be between 1 and 64", boundary_width);
  validate_instance_scheme(instance_scheme);
  validate_class_names(class_names);
}

void validate_class_names(const std::vector<std::string>& names) {
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string& name = names[i];
    const std::string which = ": name " + std::to_string(i + 1);  // 1-based, as typed
    if (name.find_first_not_of(' ') == std::string::npos) throw OptionError("class_names", which + " is empty");
    require_printable("class_names", "name " + std::to_string(i + 1), name);
    for (size_t k = 0; k < i; ++k)
      if (names[k] == name) throw OptionError("class_names", ": '" + name + "' is given twice (names " + std::to_string(k + 1) + " and " + std::to_string(i + 1) + ")");
  }
}

namespace {

void name_classes(DataSet& data, const std::vector<std::string>& given, int64_t classes) {
  // Membranes (class 0) are what ISBI-style masks mark; instance masks mark objects.
  const bool membranes = data.layout != DataLayout::kFolder && !data.has_instances();
  const ClassNaming naming = rename_classes(default_class_naming(classes, data.scheme, membranes), given);
  data.class_names = naming.names;
  data.headline_class = naming.headline;
}

}  // namespace

DataSet load_data(const DataOptions& options, int64_t classes) {
  options.validate();
  // Before the (slow) reading: names that do not fit are an option error.
  require_option(options.class_names.empty() || static_cast<int64_t>(options.class_names.size()) == classes, "class_names",
                 "needs one name per class (" + std::to_string(classes) + ")", static_cast<int64_t>(options.class_names.size()));
  // A forgotten directory is an error, not the synthetic data: a user's model must never be
  // trained or scored on data the user did not name.
  if (options.dir.empty() && !options.use_synthetic)
    throw OptionError("", "no data named; give {dir} DIR (the ISBI layout or images/ + masks/), or {use_synthetic} "
                             "for the built-in synthetic data");
  DataSet data;
  if (!options.dir.empty()) {
    data = load_dataset(options.dir, classes, options.mask_encoding, options.instance_targets());
  } else {
    SyntheticOptions synthetic = options.synthetic;
    synthetic.seed = options.seed;
    data = synthetic_dataset(synthetic, classes, options.instance_targets());
  }
  name_classes(data, options.class_names, classes);
  return data;
}

FoldData fold_data(const DataSet& data, const DataOptions& options) {
  const FoldSplit split = fold_split(static_cast<int64_t>(data.train.size()), options.fold, options.seed);
  return {select(data.train, split.train), select(data.train, split.eval)};
}

}  // namespace unet
