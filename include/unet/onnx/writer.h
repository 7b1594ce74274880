// An ONNX file of the U-Net, built from plain weights with the ONNX project's own protobuf
// classes and checked with its checker and shape inference.
//
// This part sees neither LibTorch nor the other parts: LibTorch's wheel ships its own protobuf
// headers (and a private protobuf with the ONNX classes renamed onnx_torch), so a translation unit
// that includes both would mix two protobuf versions. Here the system's libonnx and libprotobuf
// are compiled alone, behind an interface of standard types; unet_infer turns a model into it.
#pragma once

#include <cstdint>
#include <optional>
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

/// One convolution quantized for a QDQ graph: its weights as int8 values (in [-127, 127]) with one
/// float scale per output channel, w ~ scales[o] * values[o, ...]: a convolution's in its float
/// weight's shape [O, C, k, k]; an up-sampling's (transposed convolution [C, O, k, k]) in the
/// sub-pixel form of `unet::subpixel_weight`, [4O, C, k', k'] (k' = 1 for k = 2, 2 for k = 3)
/// with channel 4o + 2a + b producing output pixel (2i + a, 2j + b), and 4O scales.
struct QuantizedConv {
  /// The module, e.g. `down.0.conv1`, `up_sample.1`, `head`.
  std::string name;
  std::vector<int8_t> values;
  std::vector<float> scales;
  /// The u8 scale of its output after the ReLU (zero point 0); unused for the head (float logits).
  float output_scale = 1.0f;
};

/// An int8 network: the image quantized to u8 at (input_scale, input_zero_point), every
/// convolution's weights and output scale. A concatenated pair (an up-sampling and the skip it
/// joins) must share its output scale.
struct Quantization {
  float input_scale = 1.0f;
  int64_t input_zero_point = 0;
  std::vector<QuantizedConv> convs;
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
  /// When set, the graph is written in QDQ form (QuantizeLinear/DequantizeLinear pairs around
  /// every activation, int8 weight initializers, int32 biases) for runtimes' int8 kernels; the
  /// float weights still give the shapes and the biases.
  std::optional<Quantization> int8;
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
/// outputs `logits` and `probabilities` [N, classes, H', W']; int8 inside when `network.int8` is
/// set, float32 at the edges), runs ONNX's checker and its strict
/// shape inference on it and returns the serialised model. Throws std::runtime_error with the
/// reason when a weight is missing or mis-shaped or the checker rejects the graph.
std::string build_model(const Network& network, const FileInfo& info);

/// Whether this build has the ONNX writer (libonnx and libprotobuf were found).
bool available();

}  // namespace unet::onnx_export
