// The CPU inference path on LibTorch's oneDNN operators: prepacked weights, fused bias + ReLU.
#include "unet/infer/cpu_engine.h"

#include "unet/model/geometry.h"
#include "unet/model/onednn_ops.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

namespace unet {
CpuEngine::CpuEngine(UNet model, at::ScalarType dtype) : model_(std::move(model)), dtype_(dtype) {
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
  const UNetOptions& o = model_->options();
  const auto params = model_->named_parameters();
  const int64_t pad = o.padding() == Padding::kSame ? 1 : 0, shrink = 2 - 2 * pad;
  const int64_t up_pad = o.up_kernel() == 3 ? 1 : 0;
  Packed p;
  const int64_t n = shape[0];
  int64_t side = shape[2], channels = shape[1];
  auto conv = [&](const std::string& name, bool transpose = false) {
    const at::Tensor w = params[name + ".weight"].detach().to(dtype_).contiguous();
    const std::vector<int64_t> input{n, channels, side, side};
    p.weights.push_back(transpose ? onednn_pack_conv_transpose(w, up_pad, input) : onednn_pack_conv(w, name == "head" ? 0 : pad, input));
    p.biases.push_back(params[name + ".bias"].detach().to(dtype_).contiguous());
    channels = transpose ? w.size(1) : w.size(0);
  };
  for (int64_t level = 0; level < o.depth(); ++level) {
    conv("down." + std::to_string(level) + ".conv1");
    side -= shrink;
    conv("down." + std::to_string(level) + ".conv2");
    side = (side - shrink) / 2;
  }
  conv("bottleneck.conv1");
  side -= shrink;
  conv("bottleneck.conv2");
  side -= shrink;
  for (int64_t i = 0; i < o.depth(); ++i) {
    conv("up_sample." + std::to_string(i), /*transpose=*/true);
    side *= 2;
    channels *= 2;  // the skip connection's channels join
    conv("up." + std::to_string(i) + ".conv1");
    side -= shrink;
    conv("up." + std::to_string(i) + ".conv2");
    side -= shrink;
  }
  conv("head");
  ++packings_;
  return p;
}

at::Tensor CpuEngine::forward(const at::Tensor& images) {
  const UNetOptions& o = model_->options();
  output_size(o, images.size(2));  // a legal size, or the error that names the nearest ones
  if (weights_changed()) {
    packed_.clear();
    versions_.clear();
    for (const auto& p : model_->parameters()) versions_.emplace_back(p.data_ptr(), p._version());
  }
  const std::vector<int64_t> shape = images.sizes().vec();
  auto it = packed_.find(shape);
  if (it == packed_.end()) it = packed_.emplace(shape, pack(shape)).first;
  const Packed& p = it->second;
  c10::InferenceMode guard;
  const int64_t pad = o.padding() == Padding::kSame ? 1 : 0, up_pad = o.up_kernel() == 3 ? 1 : 0;
  size_t k = 0;
  auto conv = [&](const at::Tensor& x, bool relu = true) {
    const at::Tensor y = onednn_conv(x, p.weights[k], p.biases[k], k + 1 == p.weights.size() ? 0 : pad, relu);
    ++k;
    return y;
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
    x = onednn_conv_transpose_relu(x, p.weights[k], p.biases[k], up_pad);
    ++k;
    x = conv(conv(at::cat({x, centre_crop(skips[skips.size() - 1 - static_cast<size_t>(i)], x)}, 1)));
  }
  return conv(x, /*relu=*/false).to(at::kFloat);
}

}  // namespace unet
