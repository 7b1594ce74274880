// Command-line options shared by the subcommands, and the helpers that turn them into configs.
#pragma once

#include "unet/dataset.h"
#include "unet/metrics.h"
#include "unet/model.h"
#include "unet/checkpoint.h"
#include "unet/dist.h"
#include "unet/predictor.h"
#include "unet/trainer.h"

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>

namespace unet::cli {

/// Every option of every subcommand, with the defaults of the reference (batch 8, 6,400 steps).
struct Options {
  // Data
  std::string data_dir;  // empty: the embedded synthetic data set
  std::string fold = "0";
  std::string mask_encoding = "auto";
  int64_t synthetic_size = 256;
  int64_t synthetic_count = 30;
  // Model
  int64_t in_channels = 0;  // 0: from the data
  int64_t classes = 2;
  int64_t depth = 4;
  int64_t filters = 64;
  std::string padding = "valid";
  int64_t up_kernel = 3;
  double dropout = 0.5;
  int64_t input_size = 572;
  std::string input_mode = "resize";
  int64_t tile_overlap = 0;
  std::string blend = "gaussian";
  int64_t tile_batch = 4;
  int64_t tile_size = 0;  // 0: the model's training input size
  bool tta = false;
  // Training
  std::string model_dir = "results";
  std::string log_dir;
  int64_t batch_size = 8;
  double learning_rate = 1e-4;
  double weight_decay = 5e-4;
  int64_t max_steps = 6400;
  int64_t log_every = 100;
  int64_t evaluate_every = 0;
  int64_t checkpoint_every = 500;
  int64_t warmup_steps = 200;
  uint64_t seed = 0;
  bool augment = false;
  bool border_weights = false;
  double border_w0 = 10.0;
  double border_sigma = 5.0;
  std::string elastic = "on";
  bool resume = false;
  bool overwrite = false;
  // Runtime
  std::string device = "auto";
  std::string precision = "fp32";
  int threads = 0;
  int loader_threads = 2;
  std::string channels_last = "on";
  std::string graphs = "auto";
  std::string fused = "off";
  bool deterministic = false;
  std::string lr_schedule = "constant";
  int64_t lr_warmup_steps = 0;
  double final_lr_factor = 0.0;
  /// Seconds a rank waits for the others before giving up (data-parallel runs).
  int dist_timeout = 300;
  bool quiet = false;
};

/// Registration of option groups on a subcommand; the reference's snake_case spellings are aliases.
void add_data_options(CLI::App& app, Options& o);
void add_model_options(CLI::App& app, Options& o);
void add_train_options(CLI::App& app, Options& o);
void add_runtime_options(CLI::App& app, Options& o);

/// Checks the options every command shares (batch size, precision), applies the CPU threads and
/// returns the chosen device ("auto": CUDA if present).
c10::Device setup_runtime(const Options& o);

/// The process group when a launcher (unet launch, torchrun, srun, mpirun) started this process
/// (at any world size, 1 included), else null. Picks this rank's GPU (LOCAL_RANK) when `device` is CUDA.
std::shared_ptr<Distributed> setup_distributed(const Options& o, c10::Device& device);

/// --channels-last as a boolean (throws `unet::Error` unless on or off).
bool channels_last(const Options& o);

/// --graphs: auto (on for CUDA devices), on or off (throws `unet::Error` otherwise). CPUs never
/// use graphs.
bool use_graphs(const Options& o, const c10::Device& device);

/// --fused: on or off (throws `unet::Error` otherwise); only CUDA devices use the kernels.
bool use_fused(const Options& o, const c10::Device& device);

/// The fold number, or -1 for "none" (train on everything, evaluate nothing).
int parse_fold(const std::string& text);

/// The data set named by --data-dir, or the embedded synthetic one when it is empty.
DataSet load_data(const Options& o, int64_t classes);

UNetOptions model_options(const Options& o, int64_t data_channels);
TrainOptions train_options(const Options& o, const c10::Device& device);

/// --input-mode, --tile-overlap, --blend, --tile-batch, --tta (evaluate, predict).
void add_inference_options(CLI::App& app, Options& o);

/// A predictor with `checkpoint`'s weights, configured for `samples` by the inference options:
/// resize or tile mode (`auto`: tile when the model was trained on tiles or an image's size differs
/// from the training images'), TTA and precision.
Predictor checkpoint_predictor(const Options& o, const std::string& checkpoint, const CheckpointInfo& info,
                               const c10::Device& device, const std::vector<Sample>& samples);

/// Prints metrics as an aligned block on stdout.
void print_metrics(const std::string& title, const Metrics& m);

/// Registration of each subcommand (one file each).
void register_train(CLI::App& app);
void register_evaluate(CLI::App& app);
void register_predict(CLI::App& app);
void register_benchmark(CLI::App& app);
void register_cross_validate(CLI::App& app);
void register_demo(CLI::App& app);
void register_export(CLI::App& app);
void register_launch(CLI::App& app);
/// For `unet launch ... -- COMMAND`: keeps COMMAND aside and returns the argc that CLI11 parses.
int split_launch_command(int argc, char** argv);
void register_dist_info(CLI::App& app);

}  // namespace unet::cli
