// The `unet` executable: subcommand dispatch and the one place where errors become exit codes.
#include "options.h"

#include <c10/util/Exception.h>

#include <iostream>

int main(int argc, char** argv) {
  CLI::App app{"unet: U-Net segmentation for 2D biomedical images (train, evaluate, predict, benchmark)"};
  app.set_version_flag("--version", "unet 0.1.0");
  app.require_subcommand(1);
  app.fallthrough();
  // A repeated option takes its last value, so that scripts can override defaults they pass.
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  unet::cli::register_train(app);
  unet::cli::register_evaluate(app);
  unet::cli::register_predict(app);
  unet::cli::register_benchmark(app);
  unet::cli::register_cross_validate(app);
  unet::cli::register_demo(app);
  unet::cli::register_export(app);
  unet::cli::register_launch(app);
  unet::cli::register_dist_info(app);
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
  } catch (const unet::OptionError& e) {
    // The library names its fields; the command line names its flags.
    std::cerr << "unet: error: " << unet::cli::describe(e) << std::endl;
    return 1;
  } catch (const unet::Error& e) {
    std::cerr << "unet: error: " << e.what() << std::endl;
    return 1;
  } catch (const c10::Error& e) {
    std::cerr << "unet: error: " << e.what_without_backtrace() << std::endl;
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "unet: error: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}
