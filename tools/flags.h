// Typed command-line options: flags bound straight into the library's option fields, strings
// turned into enumerations and switches at parse time, and the one map from a library field to
// the flag that sets it (how a library error about a field reaches the user).
#pragma once

#include "unet/runtime/error.h"

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace unet::cli {

/// Records that `flag` ("--batch-size") sets the library field `field` ("batch_size").
void name_field(const std::string& field, const std::string& flag);
/// The flag that sets `field`, or `field` itself when no flag does.
std::string flag_for(const std::string& field);
/// An `OptionError` in the command line's words: "--batch-size must be at least 1 (got 0)".
std::string describe(const OptionError& error);

/// A value option (number or text) bound to `value`, the library field `field`. Numbers are
/// type-checked by CLI11 at parse time; their ranges by the library's `validate()`, which every
/// command calls as soon as parsing completes.
template <typename T>
CLI::Option* add_value(CLI::App& app, const std::string& names, const std::string& field, T& value,
                       const std::string& help) {
  CLI::Option* option = app.add_option(names, value, help)->capture_default_str();
  name_field(field, option->get_name());
  return option;
}

/// A non-negative number option bound to `value` (the library field `field`) that also takes "auto",
/// which sets `auto_value` (a negative value the library resolves, e.g. from the checkpoint). Other
/// text, or a negative number, is an `OptionError` at parse time ("expected `what` (0 or more) or
/// 'auto'"); upper bounds are the library's `validate()`'s.
template <typename T>
CLI::Option* add_value_or_auto(CLI::App& app, const std::string& name, const std::string& field, T& value, T auto_value,
                               const std::string& what, const std::string& help) {
  CLI::Option* option = app.add_option_function<std::string>(
      name,
      [&value, auto_value, field, what](const std::string& text) {
        T parsed{};
        if (text == "auto") {
          value = auto_value;
        } else if (CLI::detail::lexical_cast(text, parsed) && parsed >= 0) {
          value = parsed;
        } else {
          throw OptionError(field, " " + text + ": expected " + what + " (0 or more) or 'auto'");
        }
      },
      help);
  option->default_str(value == auto_value ? "auto" : CLI::detail::to_string(value))->type_name("N|auto");
  name_field(field, option->get_name());
  return option;
}

/// The transformer that maps a name of `names` to its value at parse time; other names are an
/// `OptionError` for `field` ("--precision: expected fp32, tf32, fp16 or bf16, got 'fp8'").
template <typename E>
CLI::Validator choice_transform(const EnumNames<E>& names, const std::string& field) {
  std::string description;
  for (const auto& n : names)
    if (n.canonical) description += (description.empty() ? "" : "|") + n.name;
  return CLI::Validator(
      [names, field](std::string& text) {
        text = std::to_string(static_cast<int>(parse_name(names, field, text)));
        return std::string();
      },
      description);
}

/// An option that takes one of `names`, bound to the enumeration `value` (the library field `field`).
template <typename E>
CLI::Option* add_choice(CLI::App& app, const std::string& names_text, const std::string& field, E& value,
                        const EnumNames<E>& names, const std::string& help) {
  // The help shows "resize|tile", not CLI11's "ENUM:resize|tile" or "BOOLEAN:binary|index".
  CLI::Validator transform = choice_transform(names, field);
  const std::string choices = transform.get_description();
  CLI::Option* option = app.add_option(names_text, value, help)->transform(transform.description(""));
  option->default_str(name_of(names, value));
  option->type_name(choices);
  name_field(field, option->get_name());
  return option;
}

/// A comma-separated list option bound to `values` (the library field `field`): "a,b,c" or
/// "a, b, c" (spaces around items dropped). An empty list or an empty item ("a,,b", ",") is an
/// `OptionError` at parse time, not a shorter list. Given twice, the last list counts. `each`, when
/// given, maps every item as it is parsed (and may throw `OptionError`).
CLI::Option* add_list(CLI::App& app, const std::string& names, const std::string& field, std::vector<std::string>& values,
                      const std::string& help, std::function<std::string(const std::string&)> each = {});

/// Throws `OptionError` for a value that `command`'s options took but that is empty or looks like an
/// option ("--log-dir", "-q"): a value forgotten before the next option, which would otherwise swallow
/// it ("--class-names , --log-dir X" named the classes "--log-dir" and "X"). Negative numbers pass.
void refuse_doubtful_values(const CLI::App& command);

/// An on/off setting, in the one style of every switch: `--name` or `--name on` turns it on,
/// `--name off` or `--no-name` off (`aliases` name the same option, e.g. "--resume_training";
/// `also_on` lists more words for on, e.g. "auto" for --graphs). Other values are an `OptionError`.
CLI::Option* add_switch(CLI::App& app, const std::string& name, const std::string& field, bool& value,
                        const std::string& help, const std::vector<std::string>& aliases = {},
                        const std::vector<std::string>& also_on = {});

}  // namespace unet::cli
