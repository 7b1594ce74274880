// The CPU inference path: oneDNN's operators with prepacked weights and fused bias + ReLU, and
// Winograd F(4x4, 3x3) or F(6x6, 3x3) for the 3x3 convolutions where conv_plan.h says so.
#include "unet/infer/cpu_engine.h"

#include "unet/model/geometry.h"
#include "unet/model/onednn_ops.h"
#include "unet/model/winograd_conv.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

namespace unet {
CpuEngine::CpuEngine(UNet model, at::ScalarType dtype, ConvAlgorithm algorithm)
    : model_(std::move(model)), dtype_(dtype), algorithm_(algorithm) {
  if (dtype_ != at::kFloat && dtype_ != at::kBFloat16) throw Error("the CPU engine runs in float32 or bfloat16");
}

bool CpuEngine::available() { return onednn_fusion_available(); }

bool CpuEngine::weights_changed() const {
  const auto parameters = model_->parameters();
  if (parameters.size() != versions_.size()) return true;
  for (size_t i = 0; i < parameters.size(); ++i) {
    const auto& p = parameters[i];
    if (p.data_ptr() != versions_[i].first || p._version() != versions_[i].second) return true;
  }
  return false;
}

CpuEngine::Packed CpuEngine::pack(const std::vector<int64_t>& shape) {
  c10::InferenceMode guard;
  const auto params = model_->named_parameters();
  Packed p;
  const std::vector<ConvStep> steps = conv_steps(model_->options(), shape[2]);
  const std::vector<ConvKernel> chosen = conv_kernels(model_->options(), shape[2], algorithm_, dtype_, Pass::kInference);
  winograd_.resize(2 * steps.size());  // one transform per layer and variant, shared by every shape
  for (size_t i = 0; i < steps.size(); ++i) {
    const ConvStep& step = steps[i];
    Layer layer;
    const at::Tensor w = params[step.layer.name + ".weight"].detach().to(dtype_).contiguous();
    layer.bias = params[step.layer.name + ".bias"].detach().to(dtype_).contiguous();
    layer.padding = step.padding;
    const std::vector<int64_t> input{shape[0], step.in_channels, step.input_side, step.input_side};
    const ConvKernel kernel = chosen[i];
    if (kernel != ConvKernel::kOnednnDirect) {
      const bool six = kernel == ConvKernel::kWinograd6;
      WinogradWeights& transformed = winograd_[2 * i + (six ? 1 : 0)];
      if (!transformed.u.defined()) transformed = winograd_pack(w, layer.bias, six ? 6 : 4);
      layer.winograd = &transformed;
    } else {
      layer.weight = step.layer.kind == ConvLayer::kUpSample ? onednn_pack_conv_transpose(w, step.padding, input)
                                                              : onednn_pack_conv(w, step.padding, input);
    }
    p.layers.push_back(std::move(layer));
  }
  ++packings_;
  return p;
}

const CpuEngine::Packed& CpuEngine::packed_for(const std::vector<int64_t>& shape) {
  output_size(model_->options(), shape[2]);  // a legal size, or the error that names the nearest ones
  if (weights_changed()) {
    packed_.clear();
    winograd_.clear();
    versions_.clear();
    for (const auto& p : model_->parameters()) versions_.emplace_back(p.data_ptr(), p._version());
  }
  auto it = packed_.find(shape);
  if (it == packed_.end()) it = packed_.emplace(shape, pack(shape)).first;
  return it->second;
}

std::vector<ConvKernel> CpuEngine::kernels(const std::vector<int64_t>& shape) {
  std::vector<ConvKernel> built;
  for (const Layer& l : packed_for(shape).layers) {
    if (l.winograd == nullptr) built.push_back(ConvKernel::kOnednnDirect);
    else built.push_back(l.winograd->tile == 6 ? ConvKernel::kWinograd6 : ConvKernel::kWinograd4);
  }
  return built;
}

int64_t CpuEngine::winograd_layers(const std::vector<int64_t>& shape) const {
  int64_t count = 0;  // from the plan, without packing anything
  for (const ConvKernel kernel : conv_kernels(model_->options(), shape[2], algorithm_, dtype_, Pass::kInference))
    count += kernel != ConvKernel::kOnednnDirect;
  return count;
}

at::Tensor CpuEngine::forward(const at::Tensor& images) {
  const UNetOptions& o = model_->options();
  const Packed& p = packed_for(images.sizes().vec());
  c10::InferenceMode guard;
  size_t k = 0;
  auto conv = [&](const at::Tensor& x, bool relu = true) {
    const Layer& l = p.layers[k++];
    return l.winograd != nullptr ? winograd_conv(x, *l.winograd, l.padding, relu)
                                  : onednn_conv(x, l.weight, l.bias, l.padding, relu);
  };
  at::Tensor x = images.to(dtype_).contiguous(at::MemoryFormat::ChannelsLast);
  std::vector<at::Tensor> skips;
  for (int64_t level = 0; level < o.depth(); ++level) {
    x = conv(conv(x));
    skips.push_back(x);
    x = at::max_pool2d(x, {2, 2}, {2, 2});
  }
  x = conv(conv(x));
  for (int64_t i = 0; i < o.depth(); ++i) {
    const Layer& up = p.layers[k++];
    x = onednn_conv_transpose_relu(x, up.weight, up.bias, up.padding);
    x = conv(conv(at::cat({x, centre_crop(skips[skips.size() - 1 - static_cast<size_t>(i)], x)}, 1)));
  }
  return conv(x, /*relu=*/false).to(at::kFloat);
}

}  // namespace unet
