// The exceptions that unet throws for bad input: one line for users, ready to print after "unet: error: ".
#pragma once

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace unet {

/// A user-facing error: a bad file, option or configuration. `what()` is one line that names the
/// offending file or option and the problem.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

/// Throws `Error` with "<path>: <problem>".
[[noreturn]] inline void fail_file(const std::string& path, const std::string& problem) {
  throw Error(path + ": " + problem);
}

/// A bad value of an options structure's field. `field` is the field as the library spells it
/// ("batch_size", "schedule.warmup_steps"), `problem` the rest of the sentence, starting with a
/// space or a colon (" must be at least 1 (got 0)", ": expected on or off, got 'yes'"), so that
/// a front end can put its own name for the field in front: the command line maps fields to its
/// flags in one place and prints "--batch-size must be at least 1 (got 0)". Other fields that the
/// problem mentions are written in braces ("pass {resume} to continue it"); `what()` shows their
/// plain names, a front end its own. An empty `field`: the problem is the whole sentence.
class OptionError : public Error {
 public:
  OptionError(std::string field, std::string problem)
      : Error(field + without_braces(problem)), field_(std::move(field)), problem_(std::move(problem)) {}
  const std::string& field() const noexcept { return field_; }
  const std::string& problem() const noexcept { return problem_; }

  /// `text` with "{field}" written as "field".
  static std::string without_braces(std::string text) {
    for (size_t open; (open = text.find('{')) != std::string::npos;) {
      const size_t close = text.find('}', open);
      if (close == std::string::npos) break;
      text.erase(close, 1);
      text.erase(open, 1);
    }
    return text;
  }

 private:
  std::string field_, problem_;
};

/// Throws `OptionError` "<field> <requirement> (got <value>)" unless `ok`.
void require_option(bool ok, const std::string& field, const std::string& requirement, const std::string& value);
void require_option(bool ok, const std::string& field, const std::string& requirement, double value);
void require_option(bool ok, const std::string& field, const std::string& requirement, int64_t value);

/// Throws `OptionError` for `field` when `text` (`what` names it: "the description", "name 2") is
/// not UTF-8 text or holds a control character (below 0x20, or 0x7f): names and descriptions that
/// go into JSON and YAML files are one line of printable text.
void require_printable(const std::string& field, const std::string& what, const std::string& text);

/// "a", "a or b", "a, b or c".
std::string one_of(const std::vector<std::string>& choices);

/// Names of an enumeration's values for options, logs and files: `canonical` entries are listed in
/// messages and used by `name_of`; others are accepted aliases ("amp" for fp16).
template <typename E>
struct EnumName {
  std::string name;
  E value;
  bool canonical = true;
};
template <typename E>
using EnumNames = std::vector<EnumName<E>>;

template <typename E>
std::vector<std::string> canonical_names(const EnumNames<E>& names) {
  std::vector<std::string> out;
  for (const auto& n : names)
    if (n.canonical) out.push_back(n.name);
  return out;
}

template <typename E>
std::string name_of(const EnumNames<E>& names, E value) {
  for (const auto& n : names)
    if (n.canonical && n.value == value) return n.name;
  return "?";
}

/// The value named `text`; throws `OptionError` "<field>: expected a, b or c, got '<text>'" otherwise.
template <typename E>
E parse_name(const EnumNames<E>& names, const std::string& field, const std::string& text) {
  for (const auto& n : names)
    if (n.name == text) return n.value;
  throw OptionError(field, ": expected " + one_of(canonical_names(names)) + ", got '" + text + "'");
}

}  // namespace unet
