// libFuzzer target: the command-line parser (every subcommand's flags, their transformers and the
// checks that run as parsing completes) on arbitrary argument lists; nothing is run. Inputs are
// split into arguments at newlines. Every input must parse or end in a CLI11 or unet error.
#include "options.h"

#include <cstdint>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::string> args{"unet"};
  std::string current;
  for (size_t i = 0; i < size && args.size() < 64; ++i) {
    if (data[i] == '\n') {
      args.push_back(current);
      current.clear();
    } else {
      current.push_back(static_cast<char>(data[i]));
    }
  }
  if (!current.empty()) args.push_back(current);
  CLI::App app{"unet"};
  unet::cli::register_commands(app);
  unet::cli::set_parse_only(true);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::Error&) {
  } catch (const unet::Error&) {
  }
  return 0;
}
