// Helpers shared by the tests: temporary directories, running the unet binary, file snapshots.
#include "test_support.h"

#include "unet/runtime/device.h"
#include "unet/runtime/files.h"

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <sys/wait.h>

namespace unet::test {
namespace fs = std::filesystem;

TempDir::TempDir() {
  std::random_device rd;
  for (;;) {
    fs::path p = fs::temp_directory_path() / ("unet-test-" + std::to_string(rd()));
    if (fs::create_directory(p)) {
      path_ = p.string();
      break;
    }
  }
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::string TempDir::file(const std::string& name) const { return (fs::path(path_) / name).string(); }

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::binary) << content;
}

RunResult run_unet(const std::string& arguments) {
  TempDir io;
  const std::string out = io.file("out"), err = io.file("err");
  const std::string command = std::string("'") + UNET_EXE + "' " + arguments + " >'" + out + "' 2>'" + err + "' </dev/null";
  const int status = std::system(command.c_str());
  RunResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  r.out = read_file(out);
  r.err = read_file(err);
  return r;
}

std::string isbi_dir() {
  const char* env = std::getenv("UNET_ISBI_DIR");
  const std::string dir = env && *env ? env : UNET_ISBI_DIR;
  return fs::exists(fs::path(dir) / "train-volume.tif") && fs::exists(fs::path(dir) / "train-labels.tif") ? dir : "";
}

RunContext quiet_context(c10::Device device, Precision precision) {
  RunContext context;
  context.device = device;
  context.precision = precision;
  context.quiet = true;
  return context;
}

UNetOptions tiny_options() {
  UNetOptions o;
  o.depth(2).filters(4);
  return o;
}

}  // namespace unet::test
