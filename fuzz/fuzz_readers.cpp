// libFuzzer target: the readers of `unet score` and `unet benchmark --baseline`. The first byte
// chooses: even, the baseline reader on the rest as JSON text; odd, `unet score` on two files (a
// prediction and its truth) cut from the rest at the offset in the second and third bytes, run
// through the real command line. Every input must give a result or end in a unet or CLI11 error.
#include "options.h"

#include "unet/runtime/timing.h"

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

void write(const std::string& path, const uint8_t* data, size_t size) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
}

void score(const uint8_t* data, size_t size) {
  if (size < 2) return;
  const size_t cut = std::min<size_t>(size - 2, static_cast<size_t>(data[0]) << 8 | data[1]);
  static const std::string dir = [] {
    const auto d = std::filesystem::temp_directory_path() / ("unet-fuzz-readers-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d.string();
  }();
  const std::string prediction = dir + "/prediction.tif", truth = dir + "/truth.tif";
  write(prediction, data + 2, cut);
  write(truth, data + 2 + cut, size - 2 - cut);
  CLI::App app{"unet"};
  unet::cli::register_commands(app);
  std::vector<std::string> args = {"unet", "score", "--prediction", prediction, "--truth", truth, "--max-image-pixels", "65536"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::Error&) {
  } catch (const unet::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool quiet = [] { return std::freopen("/dev/null", "w", stdout) != nullptr; }();  // score prints tables
  (void)quiet;
  if (size < 1) return 0;
  if (data[0] % 2 == 0) {
    try {
      unet::parse_baseline_images_per_second(std::string(reinterpret_cast<const char*>(data + 1), size - 1), "baseline.json");
    } catch (const unet::Error&) {
    }
  } else {
    score(data + 1, size - 1);
  }
  return 0;
}
