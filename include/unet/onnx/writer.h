// An ONNX file of the U-Net, built from plain weights with the ONNX project's own protobuf
// classes and checked with its checker and shape inference.
//
// This part sees neither LibTorch nor the other parts: LibTorch's wheel ships its own protobuf
// headers (and a private protobuf with the ONNX classes renamed onnx_torch), so a translation unit
// that includes both would mix two protobuf versions. Here the system's libonnx and libprotobuf
// are compiled alone, behind an interface of standard types; unet_infer turns a model into it.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace unet::onnx_export {

/// A float32 weight: its name (the network's parameter name, e.g. `down.0.conv1.weight`), its
/// shape and its values in row-major order.
struct Weight {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> values;
};

/// What the graph needs of the network: its architecture and its weights, by the names
/// `UNet::named_parameters` gives them (down.L.conv1/conv2, bottleneck.conv1/conv2, up_sample.I,
/// up.I.conv1/conv2, head; .weight and .bias each).
struct Network {
  int64_t in_channels = 1;
  int64_t classes = 2;
  int64_t depth = 4;
  /// Same padding (1) keeps the size; valid padding (0) shrinks each 3x3 convolution by 2.
  bool same_padding = false;
  /// 2 or 3: the transposed convolution of the up-sampling path (3: padding 1, output padding 1).
  int64_t up_kernel = 3;
  std::vector<Weight> weights;
};

/// The file's outputs: logits and their softmax, or the softmax alone (for consumers that take one
/// output, such as bioimage.io packages).
enum class Outputs { kLogitsAndProbabilities, kProbabilities };

/// Describes the file beyond its graph.
struct FileInfo {
  std::string producer_version;
  std::string doc;
  /// Written to the model's metadata_props, in order.
  std::vector<std::pair<std::string, std::string>> metadata;
  Outputs outputs = Outputs::kLogitsAndProbabilities;
};

/// The ONNX opset the graph is written for.
constexpr int64_t kOpset = 17;

/// Builds the graph (input `image` [N, in_channels, H, W] float32 with symbolic N, H and W;
/// outputs `logits` and `probabilities` [N, classes, H', W']), runs ONNX's checker and its strict
/// shape inference on it and returns the serialised model. Throws std::runtime_error with the
/// reason when a weight is missing or mis-shaped or the checker rejects the graph.
std::string build_model(const Network& network, const FileInfo& info);

/// Whether this build has the ONNX writer (libonnx and libprotobuf were found).
bool available();

}  // namespace unet::onnx_export
