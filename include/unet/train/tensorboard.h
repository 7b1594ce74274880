// TensorBoard event files: scalar summaries that `tensorboard --logdir` reads, written by unet itself.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace unet {

class AppendFile;

/// CRC-32C (Castagnoli polynomial), as TFRecord framing uses it.
uint32_t crc32c(std::string_view data);
/// TFRecord's masked CRC: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
uint32_t masked_crc32c(std::string_view data);

/// Serialised `tensorflow.Event` protocol buffers (proto3 encoding, default values left out).
std::string encode_scalar_event(double wall_time, int64_t step, const std::string& tag, float value);
std::string encode_file_version_event(double wall_time);

/// Appends scalars to `dir`/events.out.tfevents.<unix seconds>.<host>: TFRecord frames (length,
/// masked CRC of the length, event, masked CRC of the event) around Event messages, after the
/// "brain.Event:2" version record. A resumed run starts a new file; TensorBoard merges them.
class EventWriter {
 public:
  /// Throws `unet::Error` naming the file when it cannot be created.
  explicit EventWriter(const std::string& dir);
  ~EventWriter();

  /// One scalar at `step` (`tag` such as "train/loss"), stamped with the current time. Each
  /// record is written whole or not at all; a failed write throws `unet::Error` naming the file.
  void scalar(const std::string& tag, double value, int64_t step);
  /// Records reach the file as they are written (kept for callers that flush).
  void flush();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::unique_ptr<AppendFile> out_;

  void write_record(const std::string& data);
};

}  // namespace unet
