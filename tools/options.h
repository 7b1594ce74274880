// The option groups of the subcommands: each binds its flags straight into one library options
// structure, so that a command holds typed values only.
#pragma once

#include "flags.h"
#include "io_check.h"

#include "unet/data/source.h"
#include "unet/eval/metrics.h"
#include "unet/infer/predictor.h"
#include "unet/model/checkpoint.h"
#include "unet/model/unet.h"
#include "unet/runtime/context.h"
#include "unet/train/options.h"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace unet::cli {

/// Where a command keeps or finds its model when --model-dir is not given.
inline constexpr const char* kDefaultModelDir = "results";

/// --data-dir, --fold, --mask-encoding, --synthetic (when `synthetic_flag`: benchmark's --synthetic
/// means random tensors), --synthetic-kind/-size/-count (each asks for the synthetic data),
/// --max-image-pixels, --class-names.
void add_data_options(CLI::App& app, DataOptions& data, bool synthetic_flag = true);
/// --max-image-pixels: the largest image a file may declare (`set_max_image_pixels`).
void add_image_limit(CLI::App& app);
/// The architecture (--filters, --depth, --padding, --up-kernel, --classes, --dropout) and how
/// training images meet it (--input-size, --input-mode resize|tile).
void add_model_options(CLI::App& app, UNetOptions& model, TrainOptions& train);
/// Batch, optimiser, schedule, logging, checkpoints, augmentation, border weights, resume, and
/// the execution choices (`add_exec_options`).
void add_train_options(CLI::App& app, TrainOptions& train);
/// --input-mode resize|tile|auto, --tile-size, --tile-overlap, --blend, --tile-batch, --tta and
/// the execution choices (not --batch-size: the commands name it themselves).
void add_inference_options(CLI::App& app, InferenceOptions& infer);
/// `--ensemble` (evaluate, predict and the embedding API's options; not quantize, which calibrates
/// one model).
void add_ensemble_option(CLI::App& app, InferenceOptions& infer);
/// How a model predicts, as `predict` takes it (the Python package's Segmenter takes the same):
/// --batch-size, the inference options, --max-image-pixels and the runtime options.
void add_segment_options(CLI::App& app, InferenceOptions& infer, RuntimeOptions& runtime);
/// The execution choices, one flag each for training and prediction: --channels-last, --graphs
/// (alias --xla for on), --fused, --cpu-engine, --conv-algorithm.
void add_exec_options(CLI::App& app, ExecOptions& exec);
/// --conv-algorithm auto|direct|winograd (the CPU engine's float32 3x3 convolutions).
void add_conv_algorithm(CLI::App& app, ConvAlgorithm& algorithm);
/// --seed (into each of `seeds`; none: no --seed), --device, --precision (--amp for fp16),
/// --threads, --deterministic, --quiet, and for `training` commands --loader-threads and
/// --dist-timeout (inference commands neither load batches nor join other ranks).
void add_runtime_options(CLI::App& app, RuntimeOptions& runtime, const std::vector<uint64_t*>& seeds, bool training = true);

/// Sets `run` as `command`'s action. In parse-only mode (`set_parse_only`: the option-parser fuzz
/// target) actions do nothing while everything they own stays alive.
void on_run(CLI::App& command, std::function<void()> run);
void set_parse_only(bool on);

/// Runs `check` once parsing is complete, before the command's callback: option values are
/// checked at parse time, before anything is read or written.
void check_after_parse(CLI::App& command, std::function<void()> check);

/// The model of `data`: `model` with the data's channels, checked against `input_size` (throws
/// `unet::Error` naming the nearest legal sizes).
UNetOptions model_for(UNetOptions model, const DataSet& data, int64_t input_size);

/// The files that the data set `data` names may be read from (none for the synthetic data), for a
/// command's `CommandFiles` (io_check.h).
std::vector<std::string> data_files(const DataOptions& data);

/// Says on stderr, when `verbose` and the data directory holds `kAnnouncedFiles` image files or more,
/// that they are being read (`who` starts the line): reading a large folder takes a while in silence.
void announce_reading(const DataOptions& data, const char* who, bool verbose);
constexpr size_t kAnnouncedFiles = 50;

/// With `diameter` (train --object-diameter; 0: nothing), rescales every labelled image of `data`
/// so that its median object is `diameter` pixels across (`rescale_to_object_diameter`), saying so
/// on stderr when `verbose`. Throws `OptionError` when the masks are not instance labels.
void rescale_training_objects(DataSet& data, const DataOptions& options, int64_t classes, double diameter, const char* who,
                              bool verbose);

/// `--object-diameter` implies `--input-mode tile` where no input mode is given: objects rescaled
/// to one size keep it only in tiles.
void imply_tiles_for_object_size(const CLI::App& command, TrainOptions& train);

/// Throws `OptionError` when `command` was given both --data-dir and --synthetic: two data sets.
void refuse_two_data_sources(const CLI::App& command);

/// Throws `OptionError` for an empty model directory (the run would save nothing).
void require_model_dir(const std::string& model_dir);

/// The metrics as an aligned block on stdout: the headline class's Dice and IoU (named), Dice per
/// class, objects (what `scheme` makes of the classes), the ISBI scores.
void print_metrics(const std::string& title, const Metrics& m, const ClassNaming& naming, ClassScheme scheme);

/// `class_names` and the `headline` class's scores ({class, index, dice, iou}; none without a
/// headline class), for the JSON records.
nlohmann::json class_record(const Metrics& m, const ClassNaming& naming);

/// The names a command reports a model's classes by: the checkpoint's, renamed by `given`
/// (--class-names) when given; `OptionError` for `class_names` when their count is not the model's.
ClassNaming model_naming(const CheckpointInfo& info, const std::vector<std::string>& given);

/// The whole command line: every subcommand, `--version`, and the option policies.
void register_commands(CLI::App& app);
/// The policy for repeated options (the last value counts), for `app` and what it adds after.
void take_last_values(CLI::App& app);

/// Registration of each subcommand (one file each).
void register_train(CLI::App& app);
void register_evaluate(CLI::App& app);
void register_predict(CLI::App& app);
void register_benchmark(CLI::App& app);
void register_cross_validate(CLI::App& app);
void register_demo(CLI::App& app);
void register_export(CLI::App& app);
void register_quantize(CLI::App& app);
void register_score(CLI::App& app);
void register_launch(CLI::App& app);
/// For `unet launch ... -- COMMAND`: keeps COMMAND aside and returns the argc that CLI11 parses.
int split_launch_command(int argc, char** argv);
void register_dist_info(CLI::App& app);

}  // namespace unet::cli
