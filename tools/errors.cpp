// Exceptions to one-line messages, for the unet program and the Python module alike.
#include "errors.h"

#include "flags.h"

#include "unet/runtime/error.h"
#include "unet/runtime/signals.h"

#include <CLI/CLI.hpp>
#include <c10/util/Exception.h>

#include <filesystem>
#include <new>

namespace unet::cli {
namespace {

const std::string kOutOfMemory = "out of memory; try a smaller --batch-size, --input-size or --tile-batch";

}  // namespace

std::optional<ErrorReport> describe_error(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const CLI::ParseError& e) {
    // One line, like every other error; --help has the details.
    return ErrorReport{ErrorKind::kUsage, e.what(), 2};
  } catch (const Stopped& e) {
    return ErrorReport{ErrorKind::kStopped, e.what(), e.exit_code()};
  } catch (const OptionError& e) {
    // The library names its fields; the command line names its flags.
    return ErrorReport{ErrorKind::kOption, describe(e), 1};
  } catch (const Error& e) {
    return ErrorReport{ErrorKind::kFailure, e.what(), 1};
  } catch (const c10::OutOfMemoryError&) {
    return ErrorReport{ErrorKind::kMemory, kOutOfMemory, 1};
  } catch (const std::bad_alloc&) {
    return ErrorReport{ErrorKind::kMemory, kOutOfMemory, 1};
  } catch (const c10::Error& e) {
    const std::string text = e.what_without_backtrace();
    if (text.find("not enough memory") != std::string::npos) return ErrorReport{ErrorKind::kMemory, kOutOfMemory, 1};
    return ErrorReport{ErrorKind::kFailure, text.substr(0, text.find('\n')), 1};
  } catch (const std::filesystem::filesystem_error& e) {
    // One line naming the file, not the library's "filesystem error: status: ..." wording.
    return ErrorReport{ErrorKind::kFailure,
                       (e.path1().empty() ? std::string() : e.path1().string() + ": ") + e.code().message(), 1};
  } catch (...) {
    return std::nullopt;
  }
}

}  // namespace unet::cli
