// Safe file output: directories checked before work starts, every write checked, files replaced
// atomically, append-only logs that never keep half a record, stale temporaries cleaned up.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace unet {

/// Creates `dir` (and parents) if needed and checks that a file can be created in it; throws
/// `unet::Error` naming the directory otherwise. `what` says which directory ("model", "log").
/// Removes the temporary files that killed unet processes left there (`remove_stale_temporaries`).
void ensure_writable_directory(const std::string& dir, const std::string& what);

/// Checks that `path` is an existing regular, readable file; throws `unet::Error` otherwise.
void require_readable_file(const std::string& path);

/// Calls `write(temporary_path)`, then flushes the temporary file to the disk (fsync) and renames
/// it onto `path`, so that `path` is either its old content or the complete new one, never a
/// partial file. On any failure (the callback's exception, a full disk, a failed rename) the
/// temporary file is removed and `unet::Error` names `path` and the reason.
void write_atomically(const std::string& path, const std::function<void(const std::string&)>& write);

/// Writes `text` to `path` atomically (every write checked).
void write_text_atomically(const std::string& path, const std::string& text);

/// Removes "<dir>/.<name>.tmp<pid>.<n>" files whose process no longer runs (what a killed
/// `write_atomically` leaves behind); returns how many.
int remove_stale_temporaries(const std::string& dir);

/// A byte sink for writers that must not fail midway (LibTorch's archive writers abort the
/// process when their output fails inside a destructor): every call reports success, the first
/// failure is remembered, and `finish` flushes, syncs and closes, throwing `unet::Error` naming
/// `reported_path` if anything failed.
class CheckedFileWriter {
 public:
  explicit CheckedFileWriter(const std::string& path);
  ~CheckedFileWriter();
  CheckedFileWriter(const CheckedFileWriter&) = delete;
  CheckedFileWriter& operator=(const CheckedFileWriter&) = delete;

  /// Writes `size` bytes; always returns `size`.
  size_t write(const void* data, size_t size);
  void finish(const std::string& reported_path);

 private:
  int fd_ = -1;
  int error_ = 0;
};

/// A log file that grows by whole records: `append` writes a record completely or, when the
/// write fails (a full disk), cuts the file back to where the record began and throws
/// `unet::Error` naming the file. A file that this object created and whose first record failed
/// is removed (no empty log or event file is left behind).
class AppendFile {
 public:
  /// Opens `path` for appending (created if missing); throws `unet::Error` when it cannot.
  explicit AppendFile(const std::string& path, const std::string& what);
  ~AppendFile();
  AppendFile(const AppendFile&) = delete;
  AppendFile& operator=(const AppendFile&) = delete;

  void append(std::string_view record);
  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  bool created_ = false;
  std::string path_;
};

/// Within its scope this process may map at most about `bytes` more memory (RLIMIT_DATA), so that
/// the allocations a hostile file declares (LibTorch's archive readers trust the sizes they read)
/// fail with std::bad_alloc instead of exhausting the machine. Restores the limit on exit.
class MemoryBudget {
 public:
  explicit MemoryBudget(int64_t bytes);
  /// The budget for reading the archive at `path`: four times its size plus 1 GiB.
  static int64_t for_reading(const std::string& path);
  ~MemoryBudget();
  MemoryBudget(const MemoryBudget&) = delete;
  MemoryBudget& operator=(const MemoryBudget&) = delete;

 private:
  bool set_ = false;
  uint64_t soft_ = 0;
};

/// CRC-32C (Castagnoli polynomial) of `size` bytes, continuing from `crc` (TFRecord framing,
/// checkpoint checksums).
uint32_t crc32c(const void* data, size_t size, uint32_t crc = 0);

/// CRC-32C of a whole file, read in 1 MiB blocks (a shipped model's check; which weights a stopped
/// streamed prediction was made with). Throws `unet::Error` naming `path` when it cannot be read.
uint32_t file_crc32c(const std::string& path);

}  // namespace unet
