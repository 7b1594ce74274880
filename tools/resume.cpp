// `train --resume` reads its network back from the checkpoint, as evaluate, predict and export do.
#include "resume.h"

#include "flags.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <sstream>

namespace unet::cli {
namespace {

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
  if (command.count(flag) == 0) {
    value = stored;
  } else if (!(value == stored)) {
    throw OptionError("", flag + " " + text_of(value) + " contradicts the checkpoint " + ckpt + ", trained with " +
                              flag.substr(2) + " " + text_of(stored) + ": leave it out to resume, or start over with --overwrite");
  }
}

/// `value` takes the training record's `key` unless `flag` was given (a given value wins: e.g. more
/// --max-steps to train on).
template <typename T>
void adopt_recorded(const CLI::App& command, const std::string& flag, T& value, const nlohmann::json& record, const char* key) {
  if (command.count(flag) > 0 || !record.contains(key)) return;
  try {
    value = record[key].get<T>();
  } catch (const nlohmann::json::exception&) {
    // A record of another shape keeps the command line's value.
  }
}

/// The optimisation of the interrupted run: batch, rates, steps, augmentation, border weights.
void adopt_training(const CLI::App& command, const std::string& training_record, TrainOptions& train) {
  const auto record = nlohmann::json::parse(training_record, nullptr, /*allow_exceptions=*/false);
  if (!record.is_object()) return;
  adopt_recorded(command, "--batch-size", train.batch_size, record, "batch_size");
  adopt_recorded(command, "--learning-rate", train.learning_rate, record, "learning_rate");
  adopt_recorded(command, "--weight-decay", train.weight_decay, record, "weight_decay");
  adopt_recorded(command, "--max-steps", train.max_steps, record, "max_steps");
  adopt_recorded(command, "--augment", train.augment, record, "augment");
  adopt_recorded(command, "--elastic", train.augment_options.elastic, record, "elastic");
  adopt_recorded(command, "--border-weights", train.border_weights, record, "border_weights");
  adopt_recorded(command, "--border-w0", train.weight_map.w0, record, "border_w0");
  adopt_recorded(command, "--border-sigma", train.weight_map.sigma, record, "border_sigma");
  adopt_recorded(command, "--lr-warmup-steps", train.schedule.warmup_steps, record, "lr_warmup_steps");
  adopt_recorded(command, "--final-lr-factor", train.schedule.final_factor, record, "final_lr_factor");
  if (command.count("--lr-schedule") == 0 && record.contains("lr_schedule") && record["lr_schedule"].is_string())
    train.schedule.kind = parse_schedule(record["lr_schedule"].get<std::string>());
}

}  // namespace

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
  adopt_training(command, info.training_record, train);
  // An interior/boundary model learnt from instance masks: its data are read as instance masks.
  if (info.model.scheme() == ClassScheme::kInteriorBoundary && command.count("--mask-encoding") == 0)
    data.mask_encoding = MaskEncoding::kInstances;
  if (!data.dir.empty() || data.use_synthetic) return;
  if (info.synthetic_data)
    throw OptionError("dir", ": " + ckpt + " was trained on the built-in synthetic data; pass --synthetic (and the "
                                           "--synthetic-* options it was trained with) to resume on it");
  if (info.data_dir.empty())
    throw OptionError("dir", ": " + ckpt + " does not record its training data; name it with {dir} DIR");
  data.dir = info.data_dir;
  if (verbose) std::fprintf(stderr, "unet train: resuming on the data the checkpoint was trained on, %s\n", data.dir.c_str());
}

}  // namespace unet::cli
