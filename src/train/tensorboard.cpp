// TFRecord framing and the few protocol-buffer fields of a scalar Event, for TensorBoard.
#include "unet/train/tensorboard.h"

#include "unet/runtime/error.h"
#include "unet/runtime/files.h"

#include <unistd.h>

#include <array>
#include <chrono>
#include <cstring>
#include <filesystem>

namespace unet {
namespace {

// Protocol-buffer wire format: a key is (field << 3) | wire type; 0 varint, 1 fixed64,
// 2 length-delimited, 5 fixed32. Integers are little-endian.
void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

template <typename T>
void put_fixed(std::string& out, T v) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &v, sizeof(T));  // little-endian hosts only (x86-64, aarch64)
  out.append(bytes, sizeof(T));
}

void put_bytes(std::string& out, int field, std::string_view bytes) {
  put_varint(out, static_cast<uint64_t>(field) << 3 | 2);
  put_varint(out, bytes.size());
  out.append(bytes);
}

std::string event_header(double wall_time, int64_t step) {
  std::string e;
  if (wall_time != 0.0) {
    put_varint(e, 1 << 3 | 1);
    put_fixed(e, wall_time);
  }
  if (step != 0) {
    put_varint(e, 2 << 3 | 0);
    put_varint(e, static_cast<uint64_t>(step));
  }
  return e;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

uint32_t crc32c(std::string_view data) { return crc32c(data.data(), data.size()); }

uint32_t masked_crc32c(std::string_view data) {
  const uint32_t c = crc32c(data);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

std::string encode_scalar_event(double wall_time, int64_t step, const std::string& tag, float value) {
  std::string summary_value;
  put_bytes(summary_value, /*field=*/1, tag);  // Summary.Value.tag
  put_varint(summary_value, 2 << 3 | 5);       // Summary.Value.simple_value (a oneof: always written)
  put_fixed(summary_value, value);
  std::string summary;
  put_bytes(summary, /*field=*/1, summary_value);  // Summary.value
  std::string e = event_header(wall_time, step);
  put_bytes(e, /*field=*/5, summary);  // Event.summary
  return e;
}

std::string encode_file_version_event(double wall_time) {
  std::string e = event_header(wall_time, 0);
  put_bytes(e, /*field=*/3, "brain.Event:2");  // Event.file_version
  return e;
}

EventWriter::EventWriter(const std::string& dir) {
  const double t = now_seconds();
  char host[256] = "localhost";
  ::gethostname(host, sizeof(host) - 1);
  path_ = (std::filesystem::path(dir) / ("events.out.tfevents." + std::to_string(static_cast<int64_t>(t)) + "." + host)).string();
  // A second writer within the same second (a quick resume) must not overwrite the first file.
  for (int n = 1; std::filesystem::exists(path_); ++n) path_ += "." + std::to_string(n);
  out_ = std::make_unique<AppendFile>(path_, "TensorBoard event file");
  write_record(encode_file_version_event(t));
}

EventWriter::~EventWriter() = default;

void EventWriter::write_record(const std::string& data) {
  std::string length;
  put_fixed(length, static_cast<uint64_t>(data.size()));
  std::string frame = length;
  put_fixed(frame, masked_crc32c(length));
  frame += data;
  put_fixed(frame, masked_crc32c(data));
  out_->append(frame);
}

void EventWriter::scalar(const std::string& tag, double value, int64_t step) {
  write_record(encode_scalar_event(now_seconds(), step, tag, static_cast<float>(value)));
}

void EventWriter::flush() {}

}  // namespace unet
