// Tests of the run logs: TensorBoard event encoding (against bytes written by TensorBoard itself).
#include "test_support.h"

#include "unet/error.h"
#include "unet/logger.h"
#include "unet/tensorboard.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

using namespace unet;
using unet::test::TempDir;
namespace fs = std::filesystem;

namespace {

std::string hex(const std::string& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

template <typename T>
T read_le(const std::string& s, size_t at) {
  T v;
  std::memcpy(&v, s.data() + at, sizeof(T));
  return v;
}

/// The records of a TFRecord file, each frame's two CRCs checked.
std::vector<std::string> read_records(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  const std::string file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> records;
  size_t at = 0;
  while (at < file.size()) {
    const auto length = read_le<uint64_t>(file, at);
    EXPECT_EQ(read_le<uint32_t>(file, at + 8), masked_crc32c(file.substr(at, 8))) << "length CRC of record " << records.size();
    const std::string data = file.substr(at + 12, length);
    EXPECT_EQ(read_le<uint32_t>(file, at + 12 + length), masked_crc32c(data)) << "data CRC of record " << records.size();
    records.push_back(data);
    at += 12 + length + 4;
  }
  EXPECT_EQ(at, file.size());
  return records;
}

}  // namespace

TEST(TensorBoard, Crc32cMatchesTheStandardCheckValueAndTensorBoardsMask) {
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);  // the CRC-32C check value
  EXPECT_EQ(crc32c(""), 0u);
  // tensorboard.compat.tensorflow_stub.pywrap_tensorflow.masked_crc32c(b"123456789")
  EXPECT_EQ(masked_crc32c("123456789"), 0xc78ab0e5u);
}

TEST(TensorBoard, EventsEncodeToTheBytesThatTensorBoardsProtosProduce) {
  // Event(wall_time=1.5, step=7, summary=Summary(value=[Value(tag="train/loss", simple_value=0.25)]))
  // .SerializeToString() with TensorBoard 2.21's event_pb2, and the same at step 0 with value 0.
  EXPECT_EQ(hex(encode_scalar_event(1.5, 7, "train/loss", 0.25f)),
            "09000000000000f83f10072a130a110a0a747261696e2f6c6f7373150000803e");
  EXPECT_EQ(hex(encode_scalar_event(1.5, 0, "a", 0.0f)), "09000000000000f83f2a0a0a080a01611500000000");
  EXPECT_EQ(hex(encode_file_version_event(1.5)), "09000000000000f83f1a0d627261696e2e4576656e743a32");
}

TEST(TensorBoard, RunLoggerWritesFramedEventsBesideTheJsonLog) {
  TempDir dir;
  {
    RunLogger log(dir.path(), /*enabled=*/true, /*total_steps=*/10, /*quiet=*/true);
    log.train_step(5, 0.5, 0.25, 100.0, 1e-4);
    log.train_step(10, 0.4, 0.20, 110.0, 1e-4, /*loss_scale=*/65536.0, /*skipped_steps=*/1);
  }
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir.path()))
    if (e.path().filename().string().rfind("events.out.tfevents.", 0) == 0) files.push_back(e.path().string());
  ASSERT_EQ(files.size(), 1u);
  const auto records = read_records(files[0]);
  // The version record, 5 scalars at step 5, 7 at step 10 (loss scale and skipped steps added).
  ASSERT_EQ(records.size(), 1u + 5u + 7u);
  EXPECT_NE(records[0].find("brain.Event:2"), std::string::npos);
  EXPECT_NE(records[1].find("train/total_loss"), std::string::npos);
  EXPECT_NE(records[12].find("train/skipped_steps"), std::string::npos);
  // The float of the first scalar (0.75) closes its record.
  EXPECT_EQ(read_le<float>(records[1], records[1].size() - 4), 0.75f);
  EXPECT_TRUE(fs::exists(dir.file("log.jsonl")));
}

TEST(TensorBoard, AnUnwritableDirectoryIsAClearError) {
  EXPECT_THROW(EventWriter("/proc/unet-no-such-dir"), Error);
}
