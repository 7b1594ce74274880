// The `unet` executable: subcommand dispatch and the one place where errors become exit codes.
#include "errors.h"
#include "options.h"

#include "unet/runtime/signals.h"

#include <c10/util/Logging.h>

#include <cstdlib>
#include <iostream>
#include <optional>

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
  } catch (const std::exception& e) {
    const std::optional<unet::cli::ErrorReport> report = unet::cli::describe_error(std::current_exception());
    if (!report) {
      std::cerr << "unet: error: " << e.what() << std::endl;
      return 1;
    }
    if (report->kind == unet::cli::ErrorKind::kStopped)
      std::cerr << "unet: " << report->message
                << (report->message.find("; checkpoint ") != std::string::npos ? " (continue with --resume)" : "") << std::endl;
    else if (report->kind == unet::cli::ErrorKind::kUsage)
      std::cerr << "unet: error: " << report->message << " (see unet --help or unet SUBCOMMAND --help)" << std::endl;
    else
      std::cerr << "unet: error: " << report->message << std::endl;
    return report->exit_code;
  }
  return 0;
}
