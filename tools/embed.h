// Running the subcommands from another program (the Python package): the same option table, the
// same checks and the same one-line errors as the `unet` program, with hooks for what that program
// shows while a command runs. The options are not described a second time anywhere.
#pragma once

#include "unet/infer/predictor.h"
#include "unet/runtime/context.h"
#include "unet/train/options.h"

#include <functional>
#include <string>
#include <vector>

namespace unet::cli {

/// What an embedding program hooks into the commands while one runs.
struct CommandHooks {
  /// Called with each logged training step of `train` (rank 0).
  std::function<void(const TrainProgress&)> train_progress;
  /// Called with each file of results (JSON) that a command writes: evaluate's eval_results*.json,
  /// score's --output, cross-validate's cv_results.json, benchmark's record.
  std::function<void(const std::string&)> results_written;
};

/// The hooks of the command running now (none in the `unet` program).
const CommandHooks& command_hooks();

/// Tells the running command's hooks that `path`, a JSON file of results, was written.
void report_results(const std::string& path);

/// Parses `args` (a subcommand and its options, as they would follow `unet` on a command line) with
/// the `unet` program's option table and runs the command, with `hooks` set while it runs. Throws
/// what the command throws, and `CLI::ParseError` for options it does not take. A request for help
/// (--help) runs nothing and returns the help text; otherwise returns "".
std::string run_command(const std::vector<std::string>& args, const CommandHooks& hooks = {});

/// One option of a subcommand, as the option table defines it.
struct OptionInfo {
  /// Long names without dashes, the first the canonical one ("data-dir", "data_dir").
  std::vector<std::string> names;
  /// Takes no value (present or absent).
  bool flag = false;
  /// Takes an optional value (on|off switches, --instances [method]).
  bool optional_value = false;
  /// Takes several values.
  bool many = false;
  /// The default as the help shows it ("" when none is shown).
  std::string default_text;
  std::string help;
};

/// The options of the subcommand `command` (throws `unet::Error` for an unknown one).
std::vector<OptionInfo> command_options(const std::string& command);

/// How a model predicts (`add_segment_options`: predict's options less its files), parsed from
/// `args` ("--tile-size", "256", ...) and checked; throws as `run_command`.
struct SegmentOptions {
  InferenceOptions infer;
  RuntimeOptions runtime;
};
SegmentOptions parse_segment_options(const std::vector<std::string>& args);
/// Those options, as `command_options` lists a subcommand's.
std::vector<OptionInfo> segment_options();

/// The names of the subcommands the `unet` program offers.
std::vector<std::string> command_names();

}  // namespace unet::cli
