// The forward pass's convolutions, their shapes and their CPU kernels (include/unet/model/conv_plan.h).
#include "unet/model/conv_plan.h"

#include "unet/model/onednn_ops.h"

#include <algorithm>

namespace unet {

std::vector<ConvLayer> conv_layers(const UNetOptions& o) {
  std::vector<ConvLayer> layers;
  for (const ConvStep& step : conv_steps(o, 0)) layers.push_back(step.layer);  // names need no sizes
  return layers;
}

std::vector<std::pair<size_t, size_t>> concatenated_layers(const UNetOptions& o) {
  std::vector<std::pair<size_t, size_t>> pairs;
  const size_t depth = static_cast<size_t>(o.depth());
  for (size_t i = 0; i < depth; ++i) pairs.emplace_back(2 * depth + 2 + 3 * i, 2 * (depth - 1 - i) + 1);
  return pairs;
}

std::vector<ConvStep> conv_steps(const UNetOptions& o, int64_t input_side) {
  const int64_t pad = o.padding() == Padding::kSame ? 1 : 0, shrink = 2 - 2 * pad;
  int64_t side = input_side, channels = o.in_channels();
  std::vector<ConvStep> steps;
  auto conv = [&](const std::string& name, int64_t out) {
    steps.push_back({{name}, channels, out, 3, pad, side});
    channels = out;
    side -= shrink;
  };
  for (int64_t level = 0; level < o.depth(); ++level) {
    conv("down." + std::to_string(level) + ".conv1", o.filters() << level);
    conv("down." + std::to_string(level) + ".conv2", o.filters() << level);
    side /= 2;  // max pooling
  }
  conv("bottleneck.conv1", o.filters() << o.depth());
  conv("bottleneck.conv2", o.filters() << o.depth());
  for (int64_t i = 0; i < o.depth(); ++i) {
    const int64_t out = o.filters() << (o.depth() - 1 - i);
    steps.push_back({{"up_sample." + std::to_string(i), ConvLayer::kUpSample}, channels, out, o.up_kernel(),
                     o.up_kernel() == 3 ? 1 : 0, side});
    side *= 2;
    channels = 2 * out;  // the skip connection's channels join
    conv("up." + std::to_string(i) + ".conv1", out);
    conv("up." + std::to_string(i) + ".conv2", out);
  }
  steps.push_back({{"head", ConvLayer::kHead}, channels, o.classes(), 1, 0, side});
  return steps;
}

const EnumNames<ConvAlgorithm>& conv_algorithm_names() {
  static const EnumNames<ConvAlgorithm> names = {
      {"auto", ConvAlgorithm::kAuto},
      {"direct", ConvAlgorithm::kDirect},
      {"winograd", ConvAlgorithm::kWinograd},
      {"winograd6", ConvAlgorithm::kWinograd6}};
  return names;
}

ModulePath module_path(const at::Tensor& x, bool fused, bool cpu_fusion) {
  if (fused && x.is_cuda()) return ModulePath::kCudaFused;
  if (cpu_fusion && x.dim() == 4 && onednn_trainable(x)) return ModulePath::kCpuFused;
  return ModulePath::kPlain;
}

InferencePath inference_path(bool int8, bool on_cpu, bool engine_precision, bool has_model, bool cpu_engine,
                             bool fused, bool engine_available) {
  if (int8) return InferencePath::kInt8Engine;
  if (has_model && cpu_engine && on_cpu && engine_precision && !fused && engine_available) return InferencePath::kCpuEngine;
  return InferencePath::kModules;
}

const char* conv_kernel_name(ConvKernel kernel) {
  switch (kernel) {
    case ConvKernel::kOnednnDirect:
      return "direct";
    case ConvKernel::kWinograd4:
      return "winograd F(4x4,3x3)";
    case ConvKernel::kWinograd6:
      return "winograd F(6x6,3x3)";
  }
  return "?";
}

ConvKernel conv_kernel(ConvAlgorithm algorithm, const ConvStep& step, at::ScalarType dtype, Pass pass) {
  if (algorithm == ConvAlgorithm::kDirect || dtype != at::kFloat) return ConvKernel::kOnednnDirect;
  if (step.layer.kind != ConvLayer::kConv || step.kernel != 3) return ConvKernel::kOnednnDirect;
  const bool inference = pass == Pass::kInference;
  if (algorithm == ConvAlgorithm::kWinograd) return ConvKernel::kWinograd4;
  if (algorithm == ConvAlgorithm::kWinograd6) return inference ? ConvKernel::kWinograd6 : ConvKernel::kWinograd4;
  if (std::min(step.in_channels, step.out_channels) < kWinogradMinChannels) return ConvKernel::kOnednnDirect;
  if (!inference) return ConvKernel::kWinograd4;
  // F(6x6) unless its tiles overhang the output by more than F(4x4)'s (a 28-pixel map: 30 x 30 in
  // tiles of 6, 28 x 28 in tiles of 4), which costs more than its fewer products save: the
  // threshold lies between the 6% overhang of a 64-pixel map, where F(6x6) measured faster, and
  // the 8% of a 52-pixel one, where it measured slower.
  const int64_t out = step.input_side + 2 * step.padding - 2;
  const auto covered = [out](int64_t tile) { return static_cast<double>((out + tile - 1) / tile * tile); };
  const double ratio = covered(6) * covered(6) / (covered(4) * covered(4));
  return ratio <= kWinograd6MaxOverhang ? ConvKernel::kWinograd6 : ConvKernel::kWinograd4;
}

std::vector<ConvKernel> conv_kernels(const UNetOptions& options, int64_t input_side, ConvAlgorithm algorithm,
                                     at::ScalarType dtype, Pass pass) {
  std::vector<ConvKernel> kernels;
  for (const ConvStep& step : conv_steps(options, input_side)) kernels.push_back(conv_kernel(algorithm, step, dtype, pass));
  return kernels;
}

}  // namespace unet
