// The one exception type that unet throws for bad input: its message is a single line for users.
#pragma once

#include <stdexcept>
#include <string>

namespace unet {

/// A user-facing error: a bad file, option or configuration. `what()` is one line that names the
/// offending file or option and the problem, ready to print after "unet: error: ".
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

/// Throws `Error` with "<path>: <problem>".
[[noreturn]] inline void fail_file(const std::string& path, const std::string& problem) {
  throw Error(path + ": " + problem);
}

}  // namespace unet
