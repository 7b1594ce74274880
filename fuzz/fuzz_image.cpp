// libFuzzer target: the image readers (TIFF through libtiff, PNG through libpng) on arbitrary bytes.
// Every input must end in an image or a unet::Error; a crash, a sanitizer report or any other
// exception is a finding.
#include "unet/data/image_io.h"
#include "unet/runtime/error.h"

#include <unistd.h>

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
  return 0;
}
