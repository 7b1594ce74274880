// Directory checks and atomic replacement of output files.
#include "unet/runtime/files.h"

#include "unet/runtime/error.h"

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>

namespace unet {
namespace fs = std::filesystem;

void ensure_writable_directory(const std::string& dir, const std::string& what) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) fail_file(dir, "cannot create " + what + " directory (" + ec.message() + ")");
  if (::access(dir.c_str(), W_OK | X_OK) != 0) fail_file(dir, what + " directory is not writable");
}

void require_readable_file(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) fail_file(path, "no such file");
  if (!fs::is_regular_file(path, ec)) fail_file(path, "not a regular file");
  if (::access(path.c_str(), R_OK) != 0) fail_file(path, "not readable");
}

void write_atomically(const std::string& path, const std::function<void(const std::string&)>& write) {
  static std::atomic<int> counter{0};
  const fs::path target(path);
  const fs::path tmp = target.parent_path() /
                       ("." + target.filename().string() + ".tmp" + std::to_string(::getpid()) + "." +
                        std::to_string(counter++));
  try {
    write(tmp.string());
    std::error_code ec;
    fs::rename(tmp, target, ec);
    if (ec) fail_file(path, "cannot write (" + ec.message() + ")");
  } catch (...) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw;
  }
}

void write_text_atomically(const std::string& path, const std::string& text) {
  write_atomically(path, [&](const std::string& tmp) {
    std::ofstream out(tmp, std::ios::binary);
    out << text;
    out.close();
    if (!out) fail_file(path, "cannot write");
  });
}

}  // namespace unet
