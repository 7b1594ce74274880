// The field-to-flag map and the on/off switches of the command line.
#include "flags.h"

#include <algorithm>
#include <cctype>
#include <map>

namespace unet::cli {
namespace {

std::map<std::string, std::string>& field_flags() {
  static std::map<std::string, std::string> flags;
  return flags;
}

/// The items of a comma-separated `text` ("a, b" is "a" and "b"); an empty item is an `OptionError`.
std::vector<std::string> split_list(const std::string& text, const std::string& field) {
  std::vector<std::string> items;
  for (size_t start = 0;;) {
    const size_t comma = text.find(',', start);
    std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    item.erase(0, item.find_first_not_of(" \t"));  // "a, b" is "a" and "b"
    item.erase(item.find_last_not_of(" \t") + 1);
    items.push_back(std::move(item));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  for (const auto& item : items)
    if (item.empty()) throw OptionError(field, ": an empty item in '" + text + "' (comma-separated, none empty)");
  return items;
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

CLI::Option* add_list(CLI::App& app, const std::string& names, const std::string& field, std::vector<std::string>& values,
                      const std::string& help, std::function<std::string(const std::string&)> each) {
  CLI::Option* option = app.add_option_function<std::string>(
      names,
      [&values, field, each](const std::string& text) {
        std::vector<std::string> items = split_list(text, field);
        if (each)
          for (std::string& item : items) item = each(item);
        values = std::move(items);
      },
      help);
  name_field(field, option->get_name());
  return option;
}

namespace {

/// "--log-dir", "-q": a token that names an option rather than giving a value. "-1", "-0.5" and "-"
/// are values.
bool looks_like_option(const std::string& value) {
  return value.size() >= 2 && value[0] == '-' && (value[1] == '-' || std::isalpha(static_cast<unsigned char>(value[1])));
}

}  // namespace

void refuse_doubtful_values(const CLI::App& command) {
  for (const CLI::Option* option : command.get_options()) {
    // Switches and flags may be given without a value; their results are not values typed by the user.
    if (option->get_expected_min() < 1 || option->get_type_size() == 0) continue;
    for (const std::string& value : option->results()) {
      if (value.empty()) throw OptionError("", option->get_name() + ": an empty value (leave the option out for its default)");
      if (looks_like_option(value))
        throw OptionError("", option->get_name() + ": got '" + value + "', an option, as its value; a value is missing before it");
    }
  }
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
