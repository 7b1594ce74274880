// libFuzzer target: the checkpoint reader (header, then the weights into a model of the stored
// architecture) on arbitrary bytes. Every input must load or end in a unet::Error.
#include "unet/model/checkpoint.h"
#include "unet/runtime/error.h"

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/unet-fuzz-checkpoint-" + std::to_string(::getpid());
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  try {
    const unet::CheckpointInfo info = unet::read_checkpoint_info(path);
    // Building a model of a stored architecture is the caller's cost; keep the fuzzer's small.
    if ((info.model.filters() << info.model.depth()) <= 64 && info.model.classes() <= 8) unet::load_model(path, info);
  } catch (const unet::Error&) {
  }
  return 0;
}
