// Safe file output: directories checked before work starts, files replaced atomically.
#pragma once

#include <functional>
#include <string>

namespace unet {

/// Creates `dir` (and parents) if needed and checks that a file can be created in it; throws
/// `unet::Error` naming the directory otherwise. `what` says which directory ("model", "log").
void ensure_writable_directory(const std::string& dir, const std::string& what);

/// Checks that `path` is an existing regular, readable file; throws `unet::Error` otherwise.
void require_readable_file(const std::string& path);

/// Calls `write(temporary_path)` and then renames the temporary file onto `path`, so that `path`
/// is either its old content or the complete new one, never a partial file.
void write_atomically(const std::string& path, const std::function<void(const std::string&)>& write);

/// Writes `text` to `path` atomically; throws `unet::Error` naming the file when a write fails.
void write_text_atomically(const std::string& path, const std::string& text);

}  // namespace unet
