// The field-to-flag map and the on/off switches of the command line.
#include "flags.h"

#include <algorithm>
#include <map>

namespace unet::cli {
namespace {

std::map<std::string, std::string>& field_flags() {
  static std::map<std::string, std::string> flags;
  return flags;
}

}  // namespace

void name_field(const std::string& field, const std::string& flag) { field_flags()[field] = flag; }

std::string flag_for(const std::string& field) {
  const auto it = field_flags().find(field);
  return it == field_flags().end() ? field : it->second;
}

std::string describe(const OptionError& error) {
  std::string problem = error.problem();
  for (size_t open; (open = problem.find('{')) != std::string::npos;) {
    const size_t close = problem.find('}', open);
    if (close == std::string::npos) break;
    problem.replace(open, close - open + 1, flag_for(problem.substr(open + 1, close - open - 1)));
  }
  return (error.field().empty() ? "" : flag_for(error.field())) + problem;
}

CLI::Option* add_switch(CLI::App& app, const std::string& name, const std::string& field, bool& value,
                        const std::string& help, const std::vector<std::string>& aliases,
                        const std::vector<std::string>& also_on) {
  std::vector<std::string> words = also_on;
  words.insert(words.end(), {"on", "off"});
  std::string names = name;
  for (const auto& alias : aliases) names += "," + alias;
  CLI::Option* option = app.add_option(names, value, help)->expected(0, 1);
  option->transform(CLI::Validator(
      [field, words, also_on](std::string& text) {
        if (text.empty() || text == "on" || std::find(also_on.begin(), also_on.end(), text) != also_on.end()) {
          text = "true";
        } else if (text == "off") {
          text = "false";
        } else {
          throw OptionError(field, ": expected " + one_of(words) + ", got '" + text + "'");
        }
        return std::string();
      },
      "on|off"));
  // A switch without a value takes the default string: "on". The help shows the real default.
  option->default_str("on");
  std::string choices;
  for (const auto& word : words) choices += (choices.empty() ? "" : "|") + word;
  option->option_text("[" + choices + "]=" + (value ? "on" : "off"));
  app.add_flag_callback("--no-" + name.substr(2), [&value] { value = false; }, "Same as " + name + " off");
  name_field(field, option->get_name());
  return option;
}

}  // namespace unet::cli
