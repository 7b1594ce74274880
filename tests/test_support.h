// Helpers shared by the tests: temporary directories, running the unet binary, file snapshots.
#pragma once

#include "unet/model/geometry.h"
#include "unet/model/unet.h"
#include "unet/runtime/context.h"

#include <gtest/gtest.h>

#include <string>

namespace unet::test {

/// A fresh directory under the system's temporary directory, removed at destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const;

 private:
  std::string path_;
};

/// Result of running the unet executable.
struct RunResult {
  int exit_code = 0;
  std::string out;
  std::string err;
};

/// Runs `unet <arguments>` (a shell-quoted argument string) and captures its output.
RunResult run_unet(const std::string& arguments);

/// The whole content of a file ("" when missing).
std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& content);

/// The ISBI 2012 directory, or "" when it is not there (tests then skip).
std::string isbi_dir();

/// A small U-Net for fast tests: depth 2, 4 filters, valid padding (legal input 44 -> output 4).
UNetOptions tiny_options();

/// A run context on `device` in `precision` that prints nothing.
RunContext quiet_context(c10::Device device = c10::Device(c10::kCPU), Precision precision = Precision::kFP32);

}  // namespace unet::test
