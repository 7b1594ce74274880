// Subcommands run from another program: one CLI::App per run, the hooks set while it runs.
#include "embed.h"

#include "options.h"

#include "unet/runtime/error.h"

#include <CLI/CLI.hpp>

#include <algorithm>

namespace unet::cli {
namespace {

CommandHooks& current_hooks() {
  static CommandHooks hooks;
  return hooks;
}

/// Sets the hooks for one run and clears them after it, also when it throws.
class HooksSet {
 public:
  explicit HooksSet(const CommandHooks& hooks) { current_hooks() = hooks; }
  ~HooksSet() { current_hooks() = CommandHooks{}; }
  HooksSet(const HooksSet&) = delete;
  HooksSet& operator=(const HooksSet&) = delete;
};

std::vector<CLI::App*> subcommands(CLI::App& app) {
  return app.get_subcommands([](CLI::App*) { return true; });
}

CLI::App& subcommand(CLI::App& app, const std::string& command) {
  std::string names;
  for (CLI::App* sub : subcommands(app)) {
    if (sub->get_name() == command) return *sub;
    names += (names.empty() ? "" : ", ") + sub->get_name();
  }
  throw Error("no command '" + command + "' (commands: " + names + ")");
}

}  // namespace

const CommandHooks& command_hooks() { return current_hooks(); }

void report_results(const std::string& path) {
  if (current_hooks().results_written) current_hooks().results_written(path);
}

std::string run_command(const std::vector<std::string>& args, const CommandHooks& hooks) {
  CLI::App app{"unet"};
  register_commands(app);
  if (!args.empty()) subcommand(app, args.front());  // an unknown command by name, not as a stray argument
  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 takes them last first
  HooksSet set(hooks);
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    return app.help();
  } catch (const CLI::CallForAllHelp&) {
    return app.help("", CLI::AppFormatMode::All);
  }
  return "";
}

static std::vector<OptionInfo> options_of(const CLI::App& app) {
  std::vector<OptionInfo> options;
  for (const CLI::Option* option : app.get_options()) {
    if (option->get_lnames().empty() || option->get_lnames().front() == "help") continue;
    OptionInfo info;
    info.names = option->get_lnames();
    info.flag = option->get_expected_max() == 0;
    info.optional_value = option->get_expected_min() == 0 && option->get_expected_max() > 0;
    info.many = option->get_expected_max() > 1;
    info.default_text = option->get_default_str();
    info.help = option->get_description();
    options.push_back(std::move(info));
  }
  return options;
}

std::vector<OptionInfo> command_options(const std::string& command) {
  CLI::App app{"unet"};
  register_commands(app);
  return options_of(subcommand(app, command));
}

SegmentOptions parse_segment_options(const std::vector<std::string>& args) {
  SegmentOptions o;
  CLI::App app{"segment"};
  take_last_values(app);
  add_segment_options(app, o.infer, o.runtime);
  check_after_parse(app, [&o] {  // as predict checks them
    o.infer.validate();
    o.runtime.validate();
  });
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  app.parse(reversed);
  return o;
}

std::vector<OptionInfo> segment_options() {
  SegmentOptions o;
  CLI::App app{"segment"};
  add_segment_options(app, o.infer, o.runtime);
  return options_of(app);
}

std::vector<std::string> command_names() {
  CLI::App app{"unet"};
  register_commands(app);
  std::vector<std::string> names;
  for (const CLI::App* sub : subcommands(app)) names.push_back(sub->get_name());
  return names;
}

}  // namespace unet::cli
