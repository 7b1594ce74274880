// Outputs checked against inputs by identity on the file system (device and inode), before work starts.
#include "io_check.h"

#include "unet/model/checkpoint.h"
#include "unet/runtime/error.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <utility>

namespace unet::cli {
namespace fs = std::filesystem;
namespace {

using FileId = std::pair<dev_t, ino_t>;

/// The file `path` resolves to (symbolic links followed); false when nothing is there. A link loop
/// or an unreadable path component is an error naming `path`.
bool resolve(const std::string& path, struct stat& st) {
  if (::stat(path.c_str(), &st) == 0) return true;
  if (errno == ENOENT || errno == ENOTDIR) return false;
  fail_file(path, std::string("cannot be resolved (") + std::strerror(errno) + ")");
}

/// Whether `path` is a unet checkpoint. Checkpoints are zip archives: other files are told apart by
/// their first four bytes, without LibTorch opening every existing prediction of a re-run.
bool is_checkpoint(const std::string& path) {
  char magic[4] = {};
  std::ifstream in(path, std::ios::binary);
  if (!in.read(magic, sizeof magic) || std::string(magic, 4) != std::string("PK\x03\x04", 4)) return false;
  try {
    read_checkpoint_info(path);
    return true;
  } catch (const Error&) {
    return false;
  }
}

/// The same path as `path` for files that do not exist yet: its absolute, normalised form.
std::string normal_path(const std::string& path) {
  std::error_code ec;
  const fs::path p = fs::weakly_canonical(fs::absolute(path, ec), ec);
  return ec ? path : p.lexically_normal().string();
}

}  // namespace

CommandFiles& CommandFiles::reads(const std::string& path) {
  if (!path.empty()) inputs_.push_back(path);
  return *this;
}

CommandFiles& CommandFiles::reads(const std::vector<std::string>& paths) {
  for (const auto& p : paths) reads(p);
  return *this;
}

CommandFiles& CommandFiles::writes(const std::string& path) {
  if (!path.empty()) outputs_.push_back({path, false});
  return *this;
}

CommandFiles& CommandFiles::writes(const std::vector<std::string>& paths) {
  for (const auto& p : paths) writes(p);
  return *this;
}

CommandFiles& CommandFiles::writes_checkpoint(const std::string& path) {
  if (!path.empty()) outputs_.push_back({path, true});
  return *this;
}

CommandFiles& CommandFiles::writes_into(const std::string& dir) {
  if (!dir.empty()) folders_.push_back(dir);
  return *this;
}

void CommandFiles::check() const {
  std::map<FileId, std::string> inputs;
  for (const auto& path : inputs_) {
    struct stat st {};
    if (resolve(path, st) && !S_ISDIR(st.st_mode)) inputs.emplace(FileId{st.st_dev, st.st_ino}, path);
  }
  for (const auto& dir : folders_) {
    struct stat st {};
    if (resolve(dir, st) && !S_ISDIR(st.st_mode)) fail_file(dir, "is a file, not a folder; cannot write into it");
  }
  std::map<FileId, std::string> written;
  std::map<std::string, std::string> written_names;
  for (const auto& [path, checkpoint] : outputs_) {
    const auto [other, fresh] = written_names.emplace(normal_path(path), path);
    if (!fresh) fail_file(path, "would be written twice by this command (also as " + other->second + ")");
    struct stat st {};
    if (!resolve(path, st)) continue;  // a new file replaces nothing
    if (S_ISDIR(st.st_mode)) fail_file(path, "is a folder; cannot write a file there");
    if (!S_ISREG(st.st_mode)) fail_file(path, "is not a regular file (a FIFO, socket or device); refusing to write there");
    const FileId id{st.st_dev, st.st_ino};
    if (const auto input = inputs.find(id); input != inputs.end()) {
      std::error_code ec;
      const bool same_name = fs::absolute(input->second, ec).lexically_normal() == fs::absolute(path, ec).lexically_normal();
      fail_file(path, "is an input of this command" + (same_name ? std::string() : " (" + input->second + ", the same file through a link)") +
                          "; refusing to write over it");
    }
    if (const auto [first, added] = written.emplace(id, path); !added)
      fail_file(path, "is the same file as " + first->second + ", another output of this command");
    if (!checkpoint && is_checkpoint(path)) fail_file(path, "is a unet checkpoint; refusing to write over it");
  }
}

}  // namespace unet::cli
