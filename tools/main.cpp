// The `unet` executable: subcommand dispatch and the one place where errors become exit codes.
#include "options.h"

#include "unet/runtime/signals.h"

#include <c10/util/Exception.h>
#include <c10/util/Logging.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <new>

namespace {

constexpr const char* kMemoryHint = "; try a smaller --batch-size, --input-size or --tile-batch";

}  // namespace

int main(int argc, char** argv) {
  // LibTorch's own log lines (c10d's socket warnings and retries, with stack traces) would come
  // before our one-line errors; its errors reach the user through the exceptions below. Set
  // TORCH_CPP_LOG_LEVEL to see them.
  if (!std::getenv("TORCH_CPP_LOG_LEVEL")) FLAGS_caffe2_log_level = c10::GLOG_FATAL;
  CLI::App app{"unet: U-Net segmentation for 2D biomedical images (train, evaluate, predict, benchmark)"};
  unet::cli::register_commands(app);
  try {
    app.parse(unet::cli::split_launch_command(argc, argv), argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // One line, like every other error; --help has the details.
    std::cerr << "unet: error: " << e.what() << " (see unet --help or unet SUBCOMMAND --help)" << std::endl;
    return 2;
  } catch (const unet::Stopped& e) {
    const std::string text = e.what();
    std::cerr << "unet: " << text << (text.find("; checkpoint ") != std::string::npos ? " (continue with --resume)" : "")
              << std::endl;
    return e.exit_code();
  } catch (const unet::OptionError& e) {
    // The library names its fields; the command line names its flags.
    std::cerr << "unet: error: " << unet::cli::describe(e) << std::endl;
    return 1;
  } catch (const unet::Error& e) {
    std::cerr << "unet: error: " << e.what() << std::endl;
    return 1;
  } catch (const c10::OutOfMemoryError&) {
    std::cerr << "unet: error: out of memory" << kMemoryHint << std::endl;
    return 1;
  } catch (const std::bad_alloc&) {
    std::cerr << "unet: error: out of memory" << kMemoryHint << std::endl;
    return 1;
  } catch (const c10::Error& e) {
    const std::string text = e.what_without_backtrace();
    if (text.find("not enough memory") != std::string::npos) {
      std::cerr << "unet: error: out of memory" << kMemoryHint << std::endl;
      return 1;
    }
    std::cerr << "unet: error: " << text.substr(0, text.find('\n')) << std::endl;
    return 1;
  } catch (const std::filesystem::filesystem_error& e) {
    // One line naming the file, not the library's "filesystem error: status: ..." wording.
    std::cerr << "unet: error: " << (e.path1().empty() ? std::string() : e.path1().string() + ": ")
              << e.code().message() << std::endl;
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "unet: error: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}
