// Helpers shared by the tests: temporary directories, running the unet binary, file snapshots.
#include "test_support.h"

#include "unet/runtime/device.h"
#include "unet/runtime/files.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

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

std::string python_with(const std::string& modules) {
  const std::string python = UNET_TEST_PYTHON;
  if (python.empty() || !fs::exists(python)) return "";
  const std::string probe = "'" + python + "' -c 'import " + modules + "' >/dev/null 2>&1";
  return std::system(probe.c_str()) == 0 ? python : "";
}

void write_floats(const std::string& path, const at::Tensor& t) {
  const at::Tensor c = t.detach().to(at::kCPU, at::kFloat).contiguous();
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(c.data_ptr<float>()), c.numel() * sizeof(float));
}

at::Tensor read_floats(const std::string& path, at::IntArrayRef shape) {
  const std::string bytes = read_file(path);
  at::Tensor t = at::zeros(shape, at::kFloat);
  EXPECT_EQ(bytes.size(), t.numel() * sizeof(float)) << path;
  std::memcpy(t.data_ptr<float>(), bytes.data(), std::min<size_t>(bytes.size(), t.numel() * sizeof(float)));
  return t;
}

at::Tensor ellipses(int64_t h, int64_t w, const std::vector<std::array<double, 5>>& list) {
  at::Tensor labels = at::zeros({h, w}, at::kLong);
  auto* l = labels.data_ptr<int64_t>();
  for (const auto& e : list)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x)
        if (std::hypot((y - e[0]) / e[2], (x - e[1]) / e[3]) <= 1.0) l[y * w + x] = static_cast<int64_t>(e[4]);
  return labels;
}

at::Tensor rim_pixels(const at::Tensor& labels) {
  const at::Tensor object = (labels > 0).to(at::kFloat).view({1, 1, labels.size(0), labels.size(1)});
  const at::Tensor inner = -at::max_pool2d(-object, {3, 3}, {1, 1}, {1, 1});  // 8-neighbours all object
  return (object - inner).view({labels.size(0), labels.size(1)}) > 0;
}

at::Tensor blurred(const at::Tensor& one_hot) {
  const at::Tensor p = at::avg_pool2d(at::replication_pad2d(one_hot.unsqueeze(0), {1, 1, 1, 1}), {3, 3}, {1, 1})[0];
  return p / p.sum(0, true);
}

RunResult run_unet(const std::string& arguments, const std::string& prefix) {
  TempDir io;
  const std::string out = io.file("out"), err = io.file("err");
  const std::string command = prefix + "'" + UNET_EXE + "' " + arguments + " >'" + out + "' 2>'" + err + "' </dev/null";
  const int status = std::system(command.c_str());
  RunResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  r.out = read_file(out);
  r.err = read_file(err);
  return r;
}

Background::Background(const std::vector<std::string>& arguments) {
  const std::string out = io_.file("out"), err = io_.file("err");
  pid_ = ::fork();
  if (pid_ == 0) {
    const int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644), e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(o, 1);
    ::dup2(e, 2);
    std::vector<char*> argv;
    std::string exe = UNET_EXE;
    argv.push_back(exe.data());
    std::vector<std::string> args = arguments;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(UNET_EXE, argv.data());
    ::_exit(127);
  }
}

Background::~Background() {
  if (status_ < 0 && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    wait();
  }
}

void Background::signal(int signal) const { ::kill(pid_, signal); }

int Background::wait() {
  if (status_ < 0) {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  return status_;
}

std::string Background::err() const { return read_file(io_.file("err")); }

SmallDisk::SmallDisk(int64_t budget, const std::vector<std::pair<std::string, std::string>>& seed) {
  dir_ = base_.file("disk");
  fs::create_directory(dir_);
  int64_t size = budget;
  for (const auto& [name, source] : seed) size += (static_cast<int64_t>(fs::file_size(source)) + 4095) / 4096 * 4096;
  // tmpfs counts whole pages, and a size of 0 would mean no limit at all.
  const int64_t pages = std::max<int64_t>(1, (size + 4095) / 4096);
  const std::string mount = "mount -t tmpfs -o size=" + std::to_string(pages * 4096) + " tmpfs '" + dir_ +
                            "' 2>/dev/null";
  mounted_ = ::geteuid() == 0 && std::system(mount.c_str()) == 0;
  // The fallback: a file-size limit in POSIX sh's 512-byte blocks (at least one, so that the
  // command's stderr can still be written); larger writes fail (EFBIG).
  if (!mounted_) prefix_ = "ulimit -f " + std::to_string(std::max<int64_t>(budget / 512, 1)) + "; trap '' XFSZ; ";
  for (const auto& [name, source] : seed) fs::copy_file(source, file(name));
}

SmallDisk::~SmallDisk() {
  if (mounted_) std::system(("umount '" + dir_ + "' 2>/dev/null").c_str());
}

std::string SmallDisk::file(const std::string& name) const { return (fs::path(dir_) / name).string(); }

std::map<std::string, std::string> snapshot(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file()) files[e.path().filename().string()] = read_file(e.path().string());
  return files;
}

void expect_one_line_error(const RunResult& r, const std::string& expected) {
  EXPECT_NE(r.exit_code, 0);
  EXPECT_LT(r.exit_code, 128) << "crashed:\n" << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.err.rfind("unet: error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(expected), std::string::npos) << "expected '" << expected << "' in: " << r.err;
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
