// Helpers shared by the tests: temporary directories, running the unet binary, file snapshots.
#pragma once

#include "unet/model/geometry.h"
#include "unet/model/unet.h"
#include "unet/runtime/context.h"

#include <gtest/gtest.h>

#include <array>
#include <map>
#include <string>
#include <utility>
#include <vector>

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

/// Runs `unet <arguments>` (a shell-quoted argument string) and captures its output; `prefix`
/// goes before the command in the shell (e.g. `SmallDisk::prefix()`).
RunResult run_unet(const std::string& arguments, const std::string& prefix = "");

/// A unet process running in the background (stdout and stderr to files), for signals and kills.
class Background {
 public:
  /// Starts `unet` with `arguments` (one per element).
  explicit Background(const std::vector<std::string>& arguments);
  ~Background();
  int pid() const { return pid_; }
  /// Sends `signal` to the process.
  void signal(int signal) const;
  /// Waits for the exit; returns the exit code (128 + signal when killed).
  int wait();
  std::string err() const;

 private:
  int pid_ = -1;
  int status_ = -1;
  TempDir io_;
};

/// A directory where writes run out of room after `budget` more bytes: a tmpfs sized to the
/// files copied in plus the budget when this process may mount one (root), otherwise an
/// ordinary folder and a file-size limit of `budget` bytes, at least 512 (`prefix()` for
/// `run_unet`, which makes every larger write fail). Either way a write that needs more than the
/// budget (or 512 bytes) fails.
class SmallDisk {
 public:
  /// `seed`: files to copy in first (name -> source path).
  SmallDisk(int64_t budget, const std::vector<std::pair<std::string, std::string>>& seed = {});
  ~SmallDisk();
  const std::string& path() const { return dir_; }
  std::string file(const std::string& name) const;
  /// Put before a run_unet command line.
  const std::string& prefix() const { return prefix_; }
  bool tmpfs() const { return mounted_; }

 private:
  TempDir base_;
  std::string dir_, prefix_;
  bool mounted_ = false;
};

/// The names of the files in `dir` (not recursive) and their contents.
std::map<std::string, std::string> snapshot(const std::string& dir);

/// A bad-input or failure run: non-zero exit without a crash, exactly one stderr line
/// "unet: error: ..." that contains `expected`.
void expect_one_line_error(const RunResult& r, const std::string& expected);

/// The whole content of a file ("" when missing).
std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& content);

/// UNET_TEST_PYTHON when it imports every module in `modules` ("numpy, onnxruntime"), else ""
/// (tests that need it then skip).
std::string python_with(const std::string& modules);

/// A float32 tensor as a raw little-endian file, and back (for the Python side of a test).
void write_floats(const std::string& path, const at::Tensor& t);
at::Tensor read_floats(const std::string& path, at::IntArrayRef shape);

/// Labels int64 [h, w] with ellipses (centre y, x, radius y, radius x, label) painted in order
/// (the later over the earlier): drawn objects for target and object tests.
at::Tensor ellipses(int64_t h, int64_t w, const std::vector<std::array<double, 5>>& list);

/// The rims of the objects of `labels` [H, W], bool [H, W]: object pixels with a background
/// 8-neighbour (beyond the image's edge is not background).
at::Tensor rim_pixels(const at::Tensor& labels);

/// Class maps [K, H, W] blurred by a 3x3 box and renormalised to sum to 1 per pixel: a network's
/// soft output, roughly, from one-hot maps.
at::Tensor blurred(const at::Tensor& one_hot);

/// The ISBI 2012 directory, or "" when it is not there (tests then skip).
std::string isbi_dir();

/// A small U-Net for fast tests: depth 2, 4 filters, valid padding (legal input 44 -> output 4).
UNetOptions tiny_options();

/// A run context on `device` in `precision` that prints nothing.
RunContext quiet_context(c10::Device device = c10::Device(c10::kCPU), Precision precision = Precision::kFP32);

}  // namespace unet::test
