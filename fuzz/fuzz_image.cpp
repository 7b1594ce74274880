// libFuzzer target: the image readers (TIFF through libtiff, PNG through libpng, and the streamed
// TIFF region reader) on arbitrary bytes.
// Every input must end in an image or a unet::Error; a crash, a sanitizer report or any other
// exception is a finding.
#include "unet/data/image_io.h"
#include "unet/data/tiff_region.h"
#include "unet/runtime/error.h"

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  unet::set_max_image_pixels(int64_t{1} << 22);  // keep each input cheap; the limit's check is itself under test
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/unet-fuzz-image-" + std::to_string(::getpid());
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  try {
    for (const auto& page : unet::read_image_file(path)) (void)unet::to_unit_range(page);
  } catch (const unet::Error&) {
  }
  try {
    unet::TiffRegionReader reader(path, int64_t{1} << 20);
    const unet::TiffLayout& l = reader.layout();
    // The corner and the last rows, when a block stays small enough for the fuzzer's memory.
    if (l.block_width * l.block_height * l.channels <= (int64_t{1} << 22)) {
      (void)reader.read(0, 0, std::min<int64_t>(l.height, 40), std::min<int64_t>(l.width, 40));
      if (l.width <= 4096) (void)reader.read_rows(l.height - 1, 1);
    }
  } catch (const unet::Error&) {
  }
  return 0;
}
