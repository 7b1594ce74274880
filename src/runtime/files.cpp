// Directory checks, atomic replacement of output files, checked writers, append-only logs.
#include "unet/runtime/files.h"

#include "unet/runtime/error.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <regex>
#include <vector>

namespace unet {
namespace fs = std::filesystem;
namespace {

std::string reason(int error) { return error == ENOSPC ? "no space left on the device" : std::strerror(error); }

/// Writes everything or returns the errno of the failure (0 on success).
int write_all(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return ENOSPC;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return 0;
}

/// fsync of an existing file or directory; the errno of the failure, or 0.
int sync_path(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), (directory ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  const int result = ::fsync(fd) == 0 || errno == EINVAL ? 0 : errno;
  ::close(fd);
  return result;
}

}  // namespace

void ensure_writable_directory(const std::string& dir, const std::string& what) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) fail_file(dir, "cannot create " + what + " directory (" + ec.message() + ")");
  if (::access(dir.c_str(), W_OK | X_OK) != 0) fail_file(dir, what + " directory is not writable");
  remove_stale_temporaries(dir);
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
    if (const int e = sync_path(tmp.string(), false)) fail_file(path, "cannot write (" + reason(e) + ")");
    std::error_code ec;
    fs::rename(tmp, target, ec);
    if (ec) fail_file(path, "cannot write (" + ec.message() + ")");
  } catch (...) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw;
  }
  // The rename itself reaches the disk with the directory (best effort: not every file system can).
  sync_path(target.parent_path().empty() ? "." : target.parent_path().string(), true);
}

void write_text_atomically(const std::string& path, const std::string& text) {
  write_atomically(path, [&](const std::string& tmp) {
    CheckedFileWriter out(tmp);
    out.write(text.data(), text.size());
    out.finish(path);
  });
}

int remove_stale_temporaries(const std::string& dir) {
  static const std::regex temporary(R"(\..+\.tmp([0-9]+)\.[0-9]+)");
  int removed = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::smatch m;
    const std::string name = entry.path().filename().string();
    if (!std::regex_match(name, m, temporary) || !entry.is_regular_file(ec)) continue;
    const long pid = std::stol(m[1].str());
    // Another live process (this one included) may still be writing it.
    if (pid > 0 && pid < (1L << 22) && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH)) continue;
    if (fs::remove(entry.path(), ec)) ++removed;
  }
  return removed;
}

CheckedFileWriter::CheckedFileWriter(const std::string& path) {
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) error_ = errno;
}

CheckedFileWriter::~CheckedFileWriter() {
  if (fd_ >= 0) ::close(fd_);
}

size_t CheckedFileWriter::write(const void* data, size_t size) {
  if (error_ == 0) error_ = write_all(fd_, static_cast<const char*>(data), size);
  return size;
}

void CheckedFileWriter::finish(const std::string& reported_path) {
  if (error_ == 0 && ::fsync(fd_) != 0 && errno != EINVAL) error_ = errno;
  if (fd_ >= 0 && ::close(fd_) != 0 && error_ == 0) error_ = errno;
  fd_ = -1;
  if (error_ != 0) fail_file(reported_path, "cannot write (" + reason(error_) + ")");
}

AppendFile::AppendFile(const std::string& path, const std::string& what) : path_(path) {
  fd_ = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd_ < 0 && errno == ENOENT) {
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
    created_ = fd_ >= 0;
  }
  if (fd_ < 0) fail_file(path, "cannot create " + what + " (" + reason(errno) + ")");
}

AppendFile::~AppendFile() {
  if (fd_ >= 0) ::close(fd_);
}

void AppendFile::append(std::string_view record) {
  struct stat st {};
  const off_t start = ::fstat(fd_, &st) == 0 ? st.st_size : -1;
  if (const int e = write_all(fd_, record.data(), record.size())) {
    if (start >= 0 && ::ftruncate(fd_, start) != 0) {
      // Nothing more to do: the reason below is what the user needs.
    }
    // A file this run created and could not write a first record to is not left behind empty.
    if (created_ && start == 0) ::unlink(path_.c_str());
    fail_file(path_, "cannot write (" + reason(e) + ")");
  }
}

MemoryBudget::MemoryBudget(int64_t bytes) {
  // The data mappings in use now (/proc/self/statm: size resident shared text lib data dt, pages).
  FILE* statm = std::fopen("/proc/self/statm", "r");
  unsigned long pages[7] = {};
  const bool read = statm && std::fscanf(statm, "%lu %lu %lu %lu %lu %lu %lu", &pages[0], &pages[1], &pages[2], &pages[3],
                                         &pages[4], &pages[5], &pages[6]) == 7;
  if (statm) std::fclose(statm);
  struct rlimit limit {};
  if (!read || ::getrlimit(RLIMIT_DATA, &limit) != 0) return;
  const uint64_t wanted = static_cast<uint64_t>(pages[5]) * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE)) +
                          static_cast<uint64_t>(std::max<int64_t>(bytes, 0));
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur <= wanted) return;
  soft_ = limit.rlim_cur;
  limit.rlim_cur = wanted;
  set_ = ::setrlimit(RLIMIT_DATA, &limit) == 0;
}

int64_t MemoryBudget::for_reading(const std::string& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  return 4 * static_cast<int64_t>(ec ? 0 : size) + (int64_t{1} << 30);
}

MemoryBudget::~MemoryBudget() {
  if (!set_) return;
  struct rlimit limit {};
  if (::getrlimit(RLIMIT_DATA, &limit) != 0) return;
  limit.rlim_cur = soft_;
  ::setrlimit(RLIMIT_DATA, &limit);
}

uint32_t crc32c(const void* data, size_t size, uint32_t crc) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1u) ? (c >> 1) ^ 0x82F63B78u : c >> 1;  // reflected Castagnoli
      t[i] = c;
    }
    return t;
  }();
  const auto* p = static_cast<const unsigned char*>(data);
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) crc = table[(crc ^ p[i]) & 0xFFu] ^ (crc >> 8);
  return ~crc;
}

uint32_t file_crc32c(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) fail_file(path, "cannot be read (" + std::string(std::strerror(errno)) + ")");
  std::vector<unsigned char> block(1 << 20);
  uint32_t crc = 0;
  size_t n = 0;
  while ((n = std::fread(block.data(), 1, block.size(), f)) > 0) crc = crc32c(block.data(), n, crc);
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) fail_file(path, "read error");
  return crc;
}

}  // namespace unet
