// The ONNX writer of a build without libonnx: every call says what to install.
#include "unet/onnx/writer.h"

#include <stdexcept>

namespace unet::onnx_export {

bool available() { return false; }

std::string build_model(const Network&, const FileInfo&) {
  throw std::runtime_error(
      "this unet was built without ONNX support: install libonnx-dev and libprotobuf-dev (Debian/Ubuntu) and rebuild");
}

}  // namespace unet::onnx_export
