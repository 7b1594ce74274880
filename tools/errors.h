// The one place where an exception becomes the line a user reads: the unet program prints it
// (tools/main.cpp) and the Python module raises it (python/src/module.cpp), with the same words.
#pragma once

#include <exception>
#include <optional>
#include <string>

namespace unet::cli {

/// What kind of failure a message reports.
enum class ErrorKind {
  kStopped,  ///< a stop signal ended the run (unet::Stopped); the message says where it stopped
  kUsage,    ///< an option or value the command line does not take (CLI11)
  kOption,   ///< an option out of range or contradicting another (unet::OptionError)
  kMemory,   ///< host or device memory ran out
  kFailure,  ///< everything else: a file, the data, the model (unet::Error, LibTorch, the file system)
};

struct ErrorReport {
  ErrorKind kind = ErrorKind::kFailure;
  /// One line, without the program's "unet: error: " prefix.
  std::string message;
  /// The program's exit status for it.
  int exit_code = 1;
};

/// The report of `error` when it is one of the exceptions that unet or its libraries throw for a
/// user (not an arbitrary std::exception: the caller decides about those).
std::optional<ErrorReport> describe_error(const std::exception_ptr& error);

}  // namespace unet::cli
