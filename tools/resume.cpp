// `train --resume` reads its run back from the checkpoint, as evaluate, predict and export read
// their network: a resumed run is the interrupted one continued, not the defaults.
#include "resume.h"

#include "unet/data/mask_survey.h"

#include "flags.h"
#include "runtime/json.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <sstream>
#include <utility>

namespace unet::cli {
namespace {

/// Whether `flag` (or its "--no-" form, for switches) was given.
bool given(const CLI::App& command, const std::string& flag) {
  const std::string off = "--no-" + flag.substr(2);
  return command.count(flag) > 0 || (command.get_option_no_throw(off) && command.count(off) > 0);
}

template <typename T>
std::string text_of(const T& value) {
  std::ostringstream out;
  out << value;
  return out.str();
}
std::string text_of(Padding p) { return name_of(padding_names(), p); }
std::string text_of(InputMode m) { return to_string(m); }

/// `value` takes `stored` unless `flag` was given; given with another value, it is an error.
template <typename T>
void adopt(const CLI::App& command, const std::string& flag, T& value, const T& stored, const std::string& ckpt) {
  if (!given(command, flag)) {
    value = stored;
  } else if (!(value == stored)) {
    throw OptionError("", flag + " " + text_of(value) + " contradicts the checkpoint " + ckpt + ", trained with " +
                              flag.substr(2) + " " + text_of(stored) + ": leave it out to resume (or train anew elsewhere)");
  }
}

/// `value` takes the record's `key` unless `flag` was given (a given value wins: e.g. more
/// --max-steps to train on). Values of another type in the record are ignored.
template <typename T>
void adopt_recorded(const CLI::App& command, const std::string& flag, T& value, const nlohmann::json& record, const char* key) {
  if (given(command, flag) || !record.contains(key)) return;
  try {
    value = record[key].get<T>();
  } catch (const nlohmann::json::exception&) {
  }
}

/// The optimisation of the interrupted run: batch, rates, steps, schedule, augmentation, border weights.
void adopt_training(const CLI::App& command, const nlohmann::json& record, TrainOptions& train) {
  adopt_recorded(command, "--batch-size", train.batch_size, record, "batch_size");
  adopt_recorded(command, "--learning-rate", train.learning_rate, record, "learning_rate");
  adopt_recorded(command, "--weight-decay", train.weight_decay, record, "weight_decay");
  adopt_recorded(command, "--max-steps", train.max_steps, record, "max_steps");
  adopt_recorded(command, "--augment", train.augment, record, "augment");
  adopt_recorded(command, "--elastic", train.augment_options.elastic, record, "elastic");
  adopt_recorded(command, "--color-augment", train.augment_options.color, record, "color_augment");
  adopt_recorded(command, "--border-weights", train.border_weights, record, "border_weights");
  adopt_recorded(command, "--border-w0", train.weight_map.w0, record, "border_w0");
  adopt_recorded(command, "--border-sigma", train.weight_map.sigma, record, "border_sigma");
  adopt_recorded(command, "--border-class-balance", train.weight_map.class_balance, record, "border_class_balance");
  adopt_recorded(command, "--lr-warmup-steps", train.schedule.warmup_steps, record, "lr_warmup_steps");
  adopt_recorded(command, "--final-lr-factor", train.schedule.final_factor, record, "final_lr_factor");
  if (!given(command, "--lr-schedule") && record.contains("lr_schedule") && record["lr_schedule"].is_string())
    train.schedule.kind = parse_schedule(record["lr_schedule"].get<std::string>());
}

bool names_data(const CLI::App& command) {
  for (const char* flag : {"--data-dir", "--synthetic", "--synthetic-kind", "--synthetic-size", "--synthetic-count"})
    if (command.get_option_no_throw(flag) && command.count(flag) > 0) return true;
  return false;
}

/// The recorded data directory ("" for none) and whether the record names the synthetic data.
std::pair<std::string, bool> recorded_source(const nlohmann::json& record) {
  const std::string dir = record.contains("dir") && record["dir"].is_string() ? record["dir"].get<std::string>() : "";
  const bool synthetic = record.contains("synthetic") && record["synthetic"].is_boolean() && record["synthetic"].get<bool>();
  return {dir, synthetic};
}

/// Whether `data` names the recorded source.
bool same_source(const std::string& dir, bool synthetic, const DataOptions& data) {
  std::error_code ec;
  return synthetic ? data.dir.empty() : !data.dir.empty() && std::filesystem::absolute(data.dir, ec).lexically_normal() == dir;
}

/// The data source of the record, unless the command line names one (then a note if it differs).
void adopt_source(const CLI::App& command, const nlohmann::json& record, const std::string& ckpt, DataOptions& data,
                  bool verbose) {
  const auto [dir, synthetic] = recorded_source(record);
  // train and cross-validate resume a run; quantize calibrates on the model's data.
  const bool resuming = command.get_name() != "quantize";
  const std::string who = resuming ? "unet train" : "unet " + command.get_name(), verb = resuming ? "resuming on" : "calibrating on";
  if (names_data(command)) {
    const bool same = same_source(dir, synthetic, data);
    if (!same && verbose)
      std::fprintf(stderr, "%s: note: %s %s, not on the data %s was trained on (%s)\n", who.c_str(), verb.c_str(),
                   data.dir.empty() ? "the synthetic data" : data.dir.c_str(), ckpt.c_str(),
                   synthetic ? "the synthetic data" : dir.c_str());
    return;
  }
  if (synthetic) {
    data.use_synthetic = true;
    adopt_recorded(command, "--synthetic-size", data.synthetic.size, record, "synthetic_size");
    adopt_recorded(command, "--synthetic-count", data.synthetic.train_count, record, "synthetic_count");
    if (record.contains("synthetic_kind") && record["synthetic_kind"].is_string())
      data.synthetic.kind = parse_name(synthetic_kind_names(), "synthetic.kind", record["synthetic_kind"].get<std::string>());
    if (verbose) std::fprintf(stderr, "%s: %s the synthetic data the checkpoint was trained on\n", who.c_str(), verb.c_str());
    return;
  }
  if (dir.empty()) throw OptionError("dir", ": " + ckpt + " does not record its training data; name them with {dir} DIR");
  require_printable("dir", "the data directory that " + ckpt + " records", dir);
  if (!std::filesystem::is_directory(dir))
    throw OptionError("dir", ": " + ckpt + " was trained on " + dir + ", which is no longer there; name the data with {dir} DIR");
  data.dir = dir;
  if (verbose) std::fprintf(stderr, "%s: %s the data the checkpoint was trained on, %s\n", who.c_str(), verb.c_str(), dir.c_str());
}

/// A model whose classes came from instance masks reads its data as such, with its own scheme.
void adopt_instance_scheme(const CLI::App& command, const CheckpointInfo& info, const std::string& ckpt, DataOptions& data) {
  if (info.model.scheme() == ClassScheme::kPlain) {
    if (given(command, "--instance-targets"))
      throw OptionError("instance_scheme", " contradicts the checkpoint " + ckpt + ", whose " +
                                               std::to_string(info.model.classes()) + " classes are plain: leave it out");
    return;
  }
  if (!given(command, "--mask-encoding")) data.mask_encoding = MaskEncoding::kInstances;
  if (given(command, "--instance-targets") && data.instance_scheme != info.model.scheme())
    throw OptionError("instance_scheme", " " + to_string(data.instance_scheme) + " contradicts the checkpoint " + ckpt +
                                             ", whose classes are " + to_string(info.model.scheme()) + ": leave it out");
  data.instance_scheme = info.model.scheme();
}

/// How the data were read: fold, seed, mask encoding, boundary width, class names.
void adopt_reading(const CLI::App& command, const nlohmann::json& record, DataOptions& data, TrainOptions& train) {
  adopt_recorded(command, "--fold", data.fold, record, "fold");
  adopt_recorded(command, "--boundary-width", data.boundary_width, record, "boundary_width");
  adopt_recorded(command, "--class-names", data.class_names, record, "class_names");
  if (!given(command, "--seed") && record.contains("seed") && record["seed"].is_number_unsigned())
    data.seed = train.seed = record["seed"].get<uint64_t>();
  if (!given(command, "--mask-encoding") && record.contains("mask_encoding") && record["mask_encoding"].is_string())
    data.mask_encoding = parse_mask_encoding(record["mask_encoding"].get<std::string>());
}

}  // namespace

void record_data(const DataOptions& data, TrainOptions& train) {
  nlohmann::json record = {{"fold", data.fold},
                           {"seed", data.seed},
                           {"mask_encoding", name_of(mask_encoding_names(), data.mask_encoding)},
                           {"boundary_width", data.boundary_width},
                           {"class_names", data.class_names}};
  std::error_code ec;
  const std::string dir = data.dir.empty() ? std::string() : std::filesystem::absolute(data.dir, ec).lexically_normal().string();
  if (!dir.empty() && is_utf8(dir)) record["dir"] = dir;
  if (data.dir.empty() && data.use_synthetic) {
    record["synthetic"] = true;
    record["synthetic_kind"] = name_of(synthetic_kind_names(), data.synthetic.kind);
    record["synthetic_size"] = data.synthetic.size;
    record["synthetic_count"] = data.synthetic.train_count;
  }
  train.data_record = json_text(record);
}

void adopt_checkpoint(const CLI::App& command, const CheckpointInfo& info, const std::string& ckpt, DataOptions& data,
                      UNetOptions& model, TrainOptions& train, bool verbose) {
  adopt(command, "--filters", model.filters(), info.model.filters(), ckpt);
  adopt(command, "--depth", model.depth(), info.model.depth(), ckpt);
  adopt(command, "--padding", model.padding(), info.model.padding(), ckpt);
  adopt(command, "--up-kernel", model.up_kernel(), info.model.up_kernel(), ckpt);
  adopt(command, "--classes", model.classes(), info.model.classes(), ckpt);
  adopt(command, "--dropout", model.dropout(), info.model.dropout(), ckpt);
  adopt(command, "--input-size", train.input_size, info.input_size, ckpt);
  adopt(command, "--input-mode", train.input_mode, info.input_mode, ckpt);
  adopt(command, "--object-diameter", train.object_diameter, info.object_diameter, ckpt);
  // The normalisation as a whole: --normalize or --percentiles given must name the checkpoint's.
  if (!given(command, "--normalize") && !given(command, "--percentiles")) {
    train.normalisation = info.normalisation;
  } else if (!(train.normalisation == info.normalisation)) {
    throw OptionError("", "--normalize " + train.normalisation.describe() + " contradicts the checkpoint " + ckpt +
                              ", trained with --normalize " + info.normalisation.describe() +
                              ": leave it out to resume (or train anew elsewhere)");
  }
  const auto training = nlohmann::json::parse(info.training_record, nullptr, /*allow_exceptions=*/false);
  if (training.is_object()) adopt_training(command, training, train);
  // An interior/boundary or distance model learnt from instance masks (checkpoints without a data
  // record too).
  adopt_instance_scheme(command, info, ckpt, data);
  const auto record = nlohmann::json::parse(info.data_record.empty() ? "{}" : info.data_record, nullptr, false);
  if (!record.is_object()) throw Error(ckpt + ": damaged checkpoint (data record)");
  adopt_reading(command, record, data, train);
  adopt_source(command, record, ckpt, data, verbose);
}

std::string recorded_data_dir(const CheckpointInfo& info) {
  const auto record = nlohmann::json::parse(info.data_record, nullptr, /*allow_exceptions=*/false);
  return record.is_object() ? recorded_source(record).first : "";
}

std::string other_training_data(const CheckpointInfo& info, const DataOptions& data) {
  const auto record = nlohmann::json::parse(info.data_record, nullptr, /*allow_exceptions=*/false);
  if (!record.is_object()) return "";
  const auto [dir, synthetic] = recorded_source(record);
  if ((dir.empty() && !synthetic) || same_source(dir, synthetic, data)) return "";
  return synthetic ? "the synthetic data" : dir;
}

DataSet model_data(const DataOptions& options, const CheckpointInfo& info) {
  DataOptions data_options = options;
  const bool instance_model = info.model.scheme() != ClassScheme::kPlain;
  if (instance_model) data_options.instance_scheme = info.model.scheme();
  if (instance_model && data_options.mask_encoding == MaskEncoding::kAuto) data_options.mask_encoding = MaskEncoding::kInstances;
  if (!data_options.dir.empty() && data_options.mask_encoding == MaskEncoding::kAuto)
    data_options.mask_encoding = survey_masks(data_options.dir, info.model.classes()).encoding;
  if (instance_model != (data_options.mask_encoding == MaskEncoding::kInstances && info.model.classes() > 2))
    throw OptionError("mask_encoding", " " + name_of(mask_encoding_names(), data_options.mask_encoding) +
                                           (instance_model ? ": the model learnt " + to_string(info.model.scheme()) +
                                                                 " classes from instance masks: pass {mask_encoding} instances"
                                                           : ": this " + std::to_string(info.model.classes()) +
                                                                 "-class model did not learn its classes from instance masks"));
  const DataSet data = load_data(data_options, info.model.classes());
  if (data.scheme != info.model.scheme())  // synthetic data: the kind decides
    throw Error(data.description + ": its classes are " + to_string(data.scheme) + ", the model's " +
                to_string(info.model.scheme()) + (instance_model ? " (synthetic nuclei: --synthetic-kind nuclei)" : ""));
  return data;
}

void adopt_training_data(const CLI::App& command, const CheckpointInfo& info, const std::string& ckpt, DataOptions& data,
                         bool verbose) {
  adopt_instance_scheme(command, info, ckpt, data);
  const auto record = nlohmann::json::parse(info.data_record.empty() ? "{}" : info.data_record, nullptr, false);
  if (!record.is_object()) throw Error(ckpt + ": damaged checkpoint (data record)");
  TrainOptions unused;
  adopt_reading(command, record, data, unused);
  adopt_source(command, record, ckpt, data, verbose);
}

}  // namespace unet::cli
